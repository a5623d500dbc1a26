"""perturb-steps: right solutions' steps good, one number changed bad; rows train-prm learns from."""

from __future__ import annotations

import json
import random
import re

import pytest
from typer.testing import CliRunner

from ttscale.config import VerifierConfig
from ttscale.errors import ConfigError, RunDirError
from ttscale.learn.perturb import Solution, changed_number, perturb_step, perturb_steps, perturbed_rows
from ttscale.learn.train import TrainSettings, train_prm
from ttscale.types import Problem
from ttscale.verifiers import build_verifier

NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")


def numbers(text: str) -> list[str]:
    return NUMBER.findall(text)


@pytest.mark.parametrize("text", ["0", "1", "7", "12", "250", "1,250", "3.5", "0.25"])
def test_a_changed_number_differs_keeps_its_form_and_stays_non_negative(text):
    for seed in range(40):
        new = changed_number(text, random.Random(seed))
        assert new != text
        assert ("," in new) == ("," in text) and ("." in new) == ("." in text)
        value = float(new.replace(",", ""))
        assert value >= 0
        if "." not in text:  # small numbers slip by a few, large ones by up to a tenth
            assert abs(value - float(text.replace(",", ""))) <= max(3, int(text.replace(",", "")) // 10)


def test_perturbing_a_step_changes_exactly_one_number_and_never_the_step_header():
    step = "Step 2: Tom buys 4 more apples, so 5 + 4 = 9."
    changed_spots = set()
    for seed in range(60):
        bad = perturb_step(step, random.Random(seed))
        assert bad is not None and bad.startswith("Step 2: ")
        before, after = numbers(step), numbers(bad)
        assert len(after) == len(before)
        diff = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
        assert len(diff) == 1
        changed_spots.add(diff[0])
    assert changed_spots == {1, 2, 3, 4}  # every number of the claim is drawn, the header's never
    assert perturb_step("Step 3: Now add them together.", random.Random(0)) is None


def test_rows_come_from_right_solutions_only_with_the_changed_step_last_and_its_context_unlabelled():
    right = Solution("p0", "Tom has 5 apples. He buys 4 more.", ("Step 1: so 5 + 4 = 9.", "Answer: \\boxed{9}"), True)
    wrong = Solution("p0", right.prompt, ("Step 1: so 5 + 4 = 10.", "Answer: \\boxed{10}"), False)
    prose = Solution("p1", "Q?", ("Step 1: think.", "Answer: \\boxed{3}"), True)
    rows = perturbed_rows([right, wrong, right, prose], seed=1)
    assert {r["id"] for r in rows} == {"p0", "p1"}
    whole = [r for r in rows if all(label is True for label in r["labels"])]
    assert [r["completions"] for r in whole] == [list(right.steps), list(prose.steps)]  # duplicates once
    bad = [r for r in rows if r not in whole]
    # right: both steps state numbers; prose: only its answer does
    assert [(r["id"], len(r["completions"])) for r in bad] == [("p0", 1), ("p0", 2), ("p1", 2)]
    for r in bad:
        assert r["labels"] == [None] * (len(r["completions"]) - 1) + [False]
        source = right if r["id"] == "p0" else prose
        assert r["completions"][:-1] == list(source.steps[: len(r["completions"]) - 1])
        assert r["completions"][-1] != source.steps[len(r["completions"]) - 1]
    assert perturbed_rows([right, prose], seed=1) == rows  # skipped solutions draw nothing: same changes
    three = perturbed_rows([right], copies=3)
    assert len(three) == 1 + 2 * 3 and len({tuple(r["completions"]) for r in three}) == 7  # distinct changes
    with pytest.raises(ConfigError, match="copies=0"):
        perturbed_rows([right], copies=0)


def test_perturb_steps_writes_rows_from_a_run_and_refuses_to_overwrite(make_run, tmp_path):
    run = make_run()
    out = tmp_path / "rows.jsonl"
    n = perturb_steps([run], out, seed=0)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == n
    # the fixture's right solutions: p0's (one, up to whitespace) and p1's, two steps each, every step with a number
    assert [r["id"] for r in rows if r["labels"][-1] is True] == ["p0", "p1"]
    assert sum(r["labels"][-1] is False for r in rows) == 4
    assert all("WRONG" not in step for r in rows for step in r["completions"])
    with pytest.raises(RunDirError, match="exists"):
        perturb_steps([run], out)
    with pytest.raises(ConfigError, match="ending in .jsonl"):
        perturb_steps([run], tmp_path / "rows.txt")


def test_cli_perturb_steps(make_run, tmp_path):
    from ttscale.cli import app

    run = make_run()
    out = tmp_path / "rows.jsonl"
    result = CliRunner().invoke(app, ["learn", "perturb-steps", str(run), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "6 rows" in result.output and out.is_file()
    again = CliRunner().invoke(app, ["learn", "perturb-steps", str(run), "--output", str(out)])
    assert again.exit_code == 2 and "exists" in again.output


def test_train_prm_learns_from_perturb_steps_output_on_a_tiny_llama(make_run, tiny_base, tmp_path):
    # what the rows teach SmolLM2 is measured by bench/learned_prm.py --train-on perturbed; here: the file
    # perturb-steps writes is a dataset train-prm trains on, the changed steps' context out of the loss
    rows = tmp_path / "rows.jsonl"
    n = perturb_steps([make_run()], rows, copies=2)
    out = train_prm(rows, tiny_base, tmp_path / "prm",
                    TrainSettings(max_steps=12, batch_size=4, learning_rate=3e-3, device="cpu"), progress=False)
    assert out.n_rows == n and out.steps == 12
    assert out.losses[-1] < out.losses[0]
    verifier = build_verifier(VerifierConfig(name="trained_prm", model=str(out.output), device="cpu", dtype="float32"))
    question = "Tom has 5 apples. He buys 4 more apples. How many apples does Tom have now?"
    scores = verifier.score([Problem("p0", question, "9")], [["Step 1: Tom buys 4 more apples, so 5 + 4 = 9."]])[0]
    assert len(scores) == 1 and 0.0 < scores[0] < 1.0
