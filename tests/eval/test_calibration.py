"""`ttscale calibrate`: the isotonic fit of P(right | score) over graded runs, and its refusals."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest

from ttscale.errors import ConfigError
from ttscale.eval.calibration import PRIOR, Block, fit_blocks, fit_runs, knots_of
from ttscale.eval.evaluate import load_run
from ttscale.grading.vote import solution_key
from ttscale.recipe import load_config
from ttscale.runner import run


def test_levels_whose_rate_falls_as_the_score_rises_are_pooled_until_it_never_does():
    pairs = ([(0.0, i < 1) for i in range(10)] + [(0.2, i < 1) for i in range(5)]
             + [(0.5, False)] * 10 + [(1.0, i < 4) for i in range(10)])
    blocks = fit_blocks(pairs)
    # 0.5 (0 of 10) is below 0.2 (1 of 5): pooled; the pool (1 of 15) is then below 0.0 (1 of 10): pooled
    assert blocks == [Block(0.0, 0.5, 25, 2), Block(1.0, 1.0, 10, 4)]
    assert blocks[0].chance == pytest.approx((2 + PRIOR) / (25 + 2 * PRIOR))
    assert knots_of(blocks) == [[0.0, round(2.5 / 26, 4)], [0.5, round(2.5 / 26, 4)], [1.0, round(4.5 / 11, 4)]]


@pytest.mark.parametrize("seed", range(5))
def test_the_fit_rises_with_the_score_and_keeps_every_candidate(seed):
    rng = random.Random(seed)
    pairs = [(s := rng.random(), rng.random() < 0.2 + 0.5 * s) for _ in range(400)]
    blocks = fit_blocks(pairs)
    assert sum(b.n for b in blocks) == 400 and sum(b.right for b in blocks) == sum(ok for _, ok in pairs)
    assert all(a.chance < b.chance and a.high < b.low for a, b in zip(blocks, blocks[1:]))
    assert all(0 < b.chance < 1 for b in blocks)
    knots = knots_of(blocks)
    assert len(knots) <= 2 * 101  # scores grouped at 0.01
    assert all(b[0] > a[0] and b[1] >= a[1] for a, b in zip(knots, knots[1:]))


def _run(tmp_path, name, *extra):
    cfg = load_config(None, ["model.backend=fake", "prompt.mode=completion", "search.step_delimiter=\\n",
                             "dataset.limit=8", "search.n=8", "search.beam_width=2", "search.max_iterations=4",
                             f"output.dir={tmp_path / name}", *extra])
    run(cfg, progress=False)
    return tmp_path / name


def test_a_fit_counts_each_answered_kept_candidate_once_per_distinct_text(tmp_path):
    beam = _run(tmp_path, "beam", "search.strategy=beam_search", "verifier.name=arithmetic_rules")
    loaded = load_run(beam)
    expected = 0
    for r in loaded.results:
        texts = [c.text for c in r.completions if c.dropped is None and c.step_scores and c.answer is not None]
        expected += len({solution_key(t) for t in texts}) if r.distinct else len(texts)
    fit = fit_runs([beam])
    assert fit.n_candidates == expected and fit.n_problems == 8 and fit.verifier == "arithmetic_rules"
    assert sum(b.right for b in fit.blocks) <= expected


def test_runs_it_cannot_fit_on_are_refused_with_the_reason(tmp_path):
    rules = _run(tmp_path, "rules", "search.strategy=best_of_n", "verifier.name=arithmetic_rules")
    fake = _run(tmp_path, "fake", "search.strategy=best_of_n", "verifier.name=fake")
    none = _run(tmp_path, "none", "search.strategy=best_of_n", "verifier.name=none")
    done = _run(tmp_path, "done", "search.strategy=best_of_n", "verifier.name=arithmetic_rules",
                "verifier.calibration=[[0,0.1],[1,0.4]]")
    with pytest.raises(ConfigError, match="different verifiers"):
        fit_runs([rules, fake])
    with pytest.raises(ConfigError, match="no verifier"):
        fit_runs([none])
    with pytest.raises(ConfigError, match="calibrated already"):
        fit_runs([done])


def test_the_command_prints_a_setting_that_a_run_accepts(tmp_path):
    rules = _run(tmp_path, "rules", "search.strategy=best_of_n", "verifier.name=arithmetic_rules")
    out = subprocess.run([sys.executable, "-m", "ttscale.cli", "calibrate", str(rules)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "answered candidates of 8 problems" in out.stdout
    setting = next(line for line in out.stdout.splitlines() if line.startswith("(on the command line"))
    value = setting.split('"')[1]
    assert value.startswith("verifier.calibration=[[")
    cfg = load_config(None, ["verifier.name=arithmetic_rules", value])
    assert cfg.verifier.calibration == [[s, c] for s, c in fit_runs([rules]).knots]
    bad = subprocess.run([sys.executable, "-m", "ttscale.cli", "calibrate", str(tmp_path / "nowhere")],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and len(bad.stderr.strip().splitlines()) == 1
