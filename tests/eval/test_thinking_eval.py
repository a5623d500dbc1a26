"""`ttscale evaluate` on a reasoning run: thinking tokens per point, their plot and report section."""

from __future__ import annotations

import json

from ttscale.backends.fake import FakeGenerator
from ttscale.eval.report import write_evaluation
from ttscale.runner import run


def thinks_then_answers(prompt: str, rng) -> str:
    if "</think>" in prompt.rsplit("Solution:", 1)[-1]:
        return f" {rng.randint(1, 4)}}}$."
    return " ".join(f"w{rng.randint(0, 9)}" for _ in range(rng.randint(5, 40)))


def test_thinking_tokens_are_a_budget_axis(fake_cfg, tmp_path):
    cfg = fake_cfg("sampling.thinking.start=<think>", "sampling.thinking.end=</think>",
                   "sampling.thinking.max_tokens=12", "verifier.name=fake", "dataset.limit=8")
    outcome = run(cfg, generator=FakeGenerator(script=thinks_then_answers), progress=False)
    write_evaluation([outcome.run_dir], tmp_path / "eval")
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    points = [p for c in metrics["curves"].values() for p in c["points"]]
    assert points and all(0 < p["thinking_tokens"] <= 12 * p["n"] for p in points)
    assert all(p["thinking_tokens"] < p["tokens"] for p in points)  # the answers cost tokens too
    assert (tmp_path / "eval" / "accuracy_vs_thinking.png").stat().st_size > 0
    assert "## Accuracy vs thinking tokens" in (tmp_path / "eval" / "report.md").read_text()


def test_a_run_without_thinking_has_no_thinking_axis(fake_cfg, tmp_path):
    outcome = run(fake_cfg("verifier.name=fake"), progress=False)
    write_evaluation([outcome.run_dir], tmp_path / "eval")
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert all("thinking_tokens" not in p for c in metrics["curves"].values() for p in c["points"])
    assert not (tmp_path / "eval" / "accuracy_vs_thinking.png").exists()
