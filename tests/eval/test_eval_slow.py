"""`ttscale evaluate` on real CPU runs (SmolLM2-135M) of several strategies on the synthetic world."""

import json

import pytest
from typer.testing import CliRunner

from ttscale.cli import app
from ttscale.data.results import read_results
from ttscale.grading.select import reselect
from ttscale.recipe import load_config
from ttscale.runner import run
from ttscale.verifiers.base import VERIFIERS


@pytest.mark.slow
def test_evaluate_real_runs_writes_report_and_plots(smollm2, tmp_path):
    verifier = "arithmetic_rules" if "arithmetic_rules" in VERIFIERS else "fake"
    base = ["model.name_or_path=embedded:smollm2", "prompt.mode=completion", "search.step_delimiter=\\n",
            "dataset.limit=4", "dataset.levels=[1]", "sampling.max_new_tokens=48", "search.n=4",
            f"verifier.name={verifier}", "sampling.max_step_tokens=24", "search.max_iterations=8"]
    dirs = []
    for strategy in ("best_of_n", "beam_search"):
        cfg = load_config(None, [*base, f"search.strategy={strategy}", f"output.dir={tmp_path / strategy}"])
        dirs.append(str(run(cfg, generator=smollm2, progress=False).run_dir))
    out = tmp_path / "eval"
    res = CliRunner().invoke(app, ["evaluate", *dirs, "--output", str(out), "--reference", "Llama-3.2-1B 0-shot=30.6"])
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"best_of_n:majority", "best_of_n:weighted", "best_of_n:pass", "beam_search"} <= set(metrics["curves"])
    # beam search's candidates under the picks it did not make; its own (weighted) pick is the one evaluation
    # re-makes, so its curve and the run's own accuracy are one number
    assert {metrics["curves"][m]["kind"] for m in ("beam_search:majority", "beam_search:naive")} == {"repick"}
    beam_rows = read_results(dirs[1])
    assert all(r.selected == reselect(r, "weighted", "last") for r in beam_rows)
    assert [p["tokens"] for p in metrics["curves"]["beam_search:naive"]["points"]] == [
        p["tokens"] for p in metrics["curves"]["beam_search"]["points"]]
    assert [p["n"] for p in metrics["curves"]["best_of_n:majority"]["points"]] == [1, 2, 4]
    assert all(p["flops"] > 0 and p["tokens"] > 0 for c in metrics["curves"].values() for p in c["points"])
    for kind in ("oracle", "model"):
        co = metrics["compute_optimal"][kind]
        assert [r["n"] for r in co["cv"]] == [1, 2, 4]
        for f in co["folds"]:
            assert f["train_accuracy"] >= f["best_fixed_train_accuracy"] - 1e-12
    report = (out / "report.md").read_text()
    for png in ("accuracy_vs_n", "accuracy_vs_compute", "difficulty_oracle", "difficulty_model", "compute_optimal"):
        assert (out / f"{png}.png").stat().st_size > 10_000 and f"({png}.png)" in report
    assert (out / "policy.json").exists()
    print(report)  # the numbers, for a reader (pytest -s)
