"""`ttscale evaluate` over run directories: numbers, grouping, outputs, errors, and the policy it learns."""

import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest
from eval_helpers import completion, problem, result, write_run
from typer.testing import CliRunner

from ttscale.cli import app
from ttscale.errors import ConfigError
from ttscale.eval.evaluate import evaluate_runs, parse_reference
from ttscale.eval.report import write_evaluation
from ttscale.search import SearchSettings
from ttscale.search.compute_optimal import ComputeOptimal

EASY = [f"e{i}" for i in range(5)]
HARD = [f"h{i}" for i in range(5)]


def _sampling_results():
    """Easy problems: every sample right. Hard ones: one of four right, and majority picks a wrong answer."""
    out = []
    for pid in EASY:
        out.append(result(problem(pid, level=1, subject="algebra"),
                          [completion("1", [0.9]) for _ in range(4)], tokens=40, flops=400.0))
    for pid in HARD:
        out.append(result(problem(pid, level=5, subject="geometry"),
                          [completion("1", [0.2]), completion("2", [0.3]), completion("2", [0.3]), completion("3", [0.1])],
                          tokens=80, flops=800.0))
    return out


def _beam_results(n=4, beam_width=4):
    """Beam search gets the hard problems right (selected = the right beam) and the easy ones wrong."""
    out = []
    for pid in EASY:
        out.append(result(problem(pid, level=1, subject="algebra"), [completion("7", [0.5])] * n,
                          strategy="beam_search", selected=0, tokens=100 * n, flops=1000.0 * n))
    for pid in HARD:
        out.append(result(problem(pid, level=5, subject="geometry"), [completion("1", [0.5])] * n,
                          strategy="beam_search", selected=0, tokens=100 * n, flops=1000.0 * n))
    return out


@pytest.fixture
def runs(tmp_path):
    return [
        write_run(tmp_path / "bon", _sampling_results(), "verifier.name=fake"),
        write_run(tmp_path / "beam4", _beam_results(4), "verifier.name=fake"),
        write_run(tmp_path / "beam2", _beam_results(2), "verifier.name=fake"),
        write_run(tmp_path / "beam4m2", _beam_results(4), "verifier.name=fake", "search.beam_width=2"),
    ]


def test_curves_tables_and_grouping(runs):
    ev = evaluate_runs(runs, seeds=4)
    metrics, names = ev.to_dict(), [c.method for c in ev.curves]
    # beam runs that differ only in N form one curve; the beam_width=2 run is its own method
    assert "beam_search(beam_width=4)" in names and "beam_search(beam_width=2)" in names
    beam = metrics["curves"]["beam_search(beam_width=4)"]["points"]
    assert [(p["n"], p["accuracy"], p["tokens"], p["flops"]) for p in beam] == [(2, 0.5, 200, 2000), (4, 0.5, 400, 4000)]
    bon = {p["n"]: p for p in metrics["curves"]["best_of_n:majority"]["points"]}
    assert bon[4]["accuracy"] == 0.5 and bon[4]["std"] == 0.0 and (bon[1]["tokens"], bon[1]["flops"]) == (15, 150)
    assert metrics["curves"]["best_of_n:pass"]["points"][-1]["accuracy"] == 1.0
    assert metrics["by_level"]["best_of_n:majority@4"] == {"1": {"n": 5, "accuracy": 1.0}, "5": {"n": 5, "accuracy": 0.0}}
    assert metrics["by_subject"]["beam_search(beam_width=4)@4"]["geometry"]["accuracy"] == 1.0
    assert [r["accuracy"] for r in metrics["runs"]] == [1.0, 0.5, 0.5, 0.5]
    # 95% bootstrap intervals over the 10 problems, on every point and every run
    assert all(p["ci"][0] <= p["accuracy"] <= p["ci"][1] for c in metrics["curves"].values() for p in c["points"])
    assert metrics["curves"]["best_of_n:pass"]["points"][-1]["ci"] == [1.0, 1.0]
    low, high = next(p for p in beam if p["n"] == 4)["ci"]
    assert 0.1 < low < 0.5 < high < 0.9  # 5 of 10 right: a wide interval
    assert [tuple(r["ci"]) for r in metrics["runs"]][0] == (1.0, 1.0)


def test_difficulty_bins_and_compute_optimal_choose_per_bin(runs):
    ev = evaluate_runs(runs, seeds=4)
    metrics, policy = ev.to_dict(), ev.policy
    oracle = metrics["difficulty"]["oracle"]
    assert oracle["counts"]["1"] == 5 and sum(oracle["counts"].values()) == 10
    assert oracle["accuracy"]["best_of_n:majority"]["4"] == {"1": 1.0, "3": 0.0}
    co = metrics["compute_optimal"]["oracle"]
    at4 = next(r for r in co["cv"] if r["n"] == 4)
    choice = ev.compute_optimal["oracle"].choices[4]
    assert co["choices"]["4"] == {str(b): m for b, m in choice.items()}  # metrics.json spells keys as strings
    assert choice[1].startswith("best_of_n:") and choice[3].startswith("beam_search")
    assert at4["accuracy"] == 1.0  # each held-out half is answered by its bin's winner
    assert next(r for r in co["best_fixed"] if r["n"] == 4)["accuracy"] == 0.5
    # model bins (mean verifier score, no gold) separate the same two groups here
    assert ev.compute_optimal["model"].choices[4][1].startswith("best_of_n:")
    entry = policy.choose(4, policy.bin_of(0.225))  # a hard problem's mean score
    assert entry.strategy == "beam_search" and entry.settings["n"] == 4 and "beam_width" in entry.settings
    assert policy.choose(4, policy.bin_of(0.1)) == entry  # bin 5 held no problem: the nearest bin's choice
    assert policy.choose(4, policy.bin_of(0.9)).strategy == "best_of_n"


def test_reductions_option_adds_methods(runs):
    curves = evaluate_runs(runs[:1], reductions=["last", "min"], seeds=2).curves
    assert {"best_of_n:weighted", "best_of_n:weighted[min]", "best_of_n:naive[min]"} <= {c.method for c in curves}
    with pytest.raises(ConfigError, match="--reduction 'median'"):
        evaluate_runs(runs[:1], reductions=["median"])


def test_cli_writes_report_plots_and_policy(runs, tmp_path):
    out = tmp_path / "eval"
    res = CliRunner().invoke(app, ["evaluate", *map(str, runs), "--output", str(out),
                                   "--reference", "Llama-3.1-8B 0-shot=51.9", "--seeds", "2"])
    assert res.exit_code == 0, res.output
    for name in ("metrics.json", "report.md", "policy.json", "accuracy_vs_n.png", "accuracy_vs_compute.png",
                 "difficulty_oracle.png", "difficulty_model.png", "compute_optimal.png"):
        assert (out / name).stat().st_size > 0, name
    report = (out / "report.md").read_text()
    assert "![accuracy vs N](accuracy_vs_n.png)" in report and "2-fold CV" in report and "51.9%" in report
    # intervals in the tables, and the report says which differences the intervals cannot separate
    assert "95% CI" in report and "## Which differences are real" in report
    assert "| A - B (points) | differ at 95% |" in report  # every pair, paired over shared problems
    assert json.loads((out / "metrics.json").read_text())["references"] == {"Llama-3.1-8B 0-shot": pytest.approx(0.519)}


def test_half_written_last_line_is_skipped_with_a_warning(runs, caplog):
    path = Path(runs[1]) / "completions.jsonl"
    path.write_text(path.read_text() + '{"id": "h9", "problem": {"id"')
    with caplog.at_level(logging.WARNING):
        ev = evaluate_runs(runs[1:2])
    assert "half-written last line" in caplog.text
    assert ev.runs[0].n_problems == 10


def _dir(tmp_path, rows=None, config=False):
    path = tmp_path / "d"
    path.mkdir()
    if rows is not None:
        (path / "completions.jsonl").write_text(rows)
    if config:
        (path / "config.yaml").write_text("search: {n: 1}\n")
    return path


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing", "run directory not found"),
    (lambda p: _dir(p), "not a ttscale run directory (no completions.jsonl)"),
    (lambda p: _dir(p, '{"a": 1}\n', config=True), "holds no ttscale results"),
    (lambda p: _dir(p, json.dumps(result(problem("x"), [completion("1")]).to_dict()) + "\n"), "(no config.yaml)"),
])
def test_missing_or_foreign_directory_is_one_line_exit_2(tmp_path, make, message):
    res = CliRunner().invoke(app, ["evaluate", str(make(tmp_path))])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0] and "Traceback" not in res.output


def test_reference_parsing():
    assert parse_reference("Llama-3.1-8B 0-shot=51.9") == ("Llama-3.1-8B 0-shot", pytest.approx(0.519))
    for bad in ("no equals", "x=abc", "=5", "x=150"):
        with pytest.raises(ConfigError, match="--reference"):
            parse_reference(bad)


def _fake_run(fake_cfg, tmp_path, strategy, n, *extra):
    from ttscale.runner import run

    cfg = fake_cfg("verifier.name=fake", f"search.strategy={strategy}", f"search.n={n}", "dataset.limit=8",
                   f"output.dir={tmp_path / f'{strategy}{n}'}", *extra)
    return run(cfg, progress=False).run_dir


def test_fake_runs_of_several_strategies_evaluate_and_the_policy_applies(fake_cfg, tmp_path):
    dirs = [_fake_run(fake_cfg, tmp_path, "best_of_n", 8), _fake_run(fake_cfg, tmp_path, "beam_search", 4),
            _fake_run(fake_cfg, tmp_path, "dvts", 8)]
    metrics = write_evaluation(dirs, tmp_path / "eval", seeds=2)
    assert {"best_of_n:weighted", "beam_search", "dvts"} <= set(metrics["curves"])
    assert all(p["flops"] > 0 for c in metrics["curves"].values() for p in c["points"])
    for f in metrics["compute_optimal"]["model"]["folds"]:
        assert f["train_accuracy"] >= f["best_fixed_train_accuracy"]

    from ttscale.backends.fake import FakeGenerator
    from ttscale.data.synthetic import arithmetic_problems
    from ttscale.verifiers.fake import FakeVerifier

    problems = arithmetic_problems(4, seed=9)
    prompts = [f"Question: {p.question}\nSolution:\n" for p in problems]
    s = SearchSettings(n=4, step_delimiter="\n", end_markers=("\nQuestion:",), max_step_tokens=40, max_new_tokens=200,
                       policy=str(tmp_path / "eval" / "policy.json"))
    results = ComputeOptimal().search(problems, prompts, FakeGenerator(), FakeVerifier(), s)
    assert [r.id for r in results] == [p.id for p in problems]
    assert all(r.strategy == "compute_optimal" and r.completions and r.selected is not None for r in results)
    assert all(r.budget.generator_calls >= 2 for r in results)  # the probe is charged to the problem


@pytest.mark.skipif("policy" not in SearchSettings.__dataclass_fields__,
                    reason="SearchSettings has no `policy` field yet, so `ttscale run --policy` cannot reach the strategy")
def test_run_with_compute_optimal_policy(fake_cfg, tmp_path):
    dirs = [_fake_run(fake_cfg, tmp_path, "best_of_n", 4), _fake_run(fake_cfg, tmp_path, "beam_search", 4)]
    write_evaluation(dirs, tmp_path / "eval", seeds=2)
    run_dir = _fake_run(fake_cfg, tmp_path, "compute_optimal", 4, f"search.policy={tmp_path / 'eval' / 'policy.json'}")
    rows = [json.loads(line) for line in (run_dir / "completions.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all(r["strategy"] == "compute_optimal" and r["error"] is None for r in rows)


def test_a_search_run_is_matched_to_the_majority_point_it_equals_and_its_token_share_stated():
    from ttscale.eval.metrics import Point
    from ttscale.eval.records import Curve
    from ttscale.eval.report import _matched_section

    ids = [f"p{i}" for i in range(10)]

    def point(method, n, right, tokens):
        return Point(method, n, {i: float(j < right) for j, i in enumerate(ids)}, {i: tokens for i in ids},
                     {i: 0.0 for i in ids})

    majority = Curve("best_of_n:majority", "vote", "best_of_n",
                     [point("m", 1, 3, 50), point("m", 4, 5, 200), point("m", 8, 6, 400)])
    cheap = Curve("adaptive_consistency", "search", "adaptive_consistency", [point("a", 16, 5, 100)])
    strong = Curve("dvts", "search", "dvts", [point("d", 16, 9, 900)])
    text = _matched_section([majority, cheap, strong])
    assert "adaptive_consistency@16: 50.0" in text and "matches majority@4" in text and "saves 50% of its tokens" in text
    assert "dvts@16: 90.0" in text and "above every majority point (best: @8" in text


def _tree_results():
    """Beam-search candidates where the picks disagree. Easy problems: every pick is right. Hard ones: the
    best-scored candidate is right (naive); a beam grown twice (one vote, distinct) and another beam
    with the wrong answer "2" outvote it (majority) and outweigh it (weighted, the run's own pick)."""
    out = []
    for pid in EASY:
        out.append(result(problem(pid, level=1), [completion("1", [0.9])] * 4, strategy="beam_search"))
    for pid in HARD:
        wrong = completion("2", [0.5])
        cands = [wrong, wrong, replace(completion("2", [0.45]), text="another 2"), completion("1", [0.8])]
        r = result(problem(pid, level=5), cands, strategy="beam_search", selected=0, tokens=400, flops=4000.0)
        out.append(replace(r, distinct=True))
    return out


def test_a_search_run_is_evaluated_under_every_pick_over_its_own_candidates(tmp_path):
    from ttscale.grading.select import reselect

    beam = write_run(tmp_path / "beam", _tree_results(), "verifier.name=fake", "search.selection=weighted")
    ev = evaluate_runs([beam], seeds=2)
    curves = {c.method: c for c in ev.curves}
    # the run's own pick is the "beam_search" curve; the others are re-picks of the same candidates
    assert curves["beam_search"].kind == "search" and "beam_search:weighted" not in curves
    assert {curves[m].kind for m in ("beam_search:majority", "beam_search:naive")} == {"repick"}
    naive, majority = curves["beam_search:naive"].points[0], curves["beam_search:majority"].points[0]
    assert naive.n == majority.n == 4
    assert naive.accuracy() == 1.0  # the best-scored candidate is right everywhere
    assert majority.accuracy() == 0.5
    assert naive.tokens == curves["beam_search"].points[0].tokens  # the same candidates, the same cost
    assert curves["beam_search:naive"].settings[4]["selection"] == "naive"
    # what the re-pick records is what grading.select.reselect picks, problem by problem
    run_rows = {r.id: r for r in _tree_results()}
    assert all(naive.correct[i] == float(run_rows[i].completions[reselect(run_rows[i], "naive", "last")].answer == "1")
               for i in run_rows)


def test_compute_optimal_chooses_the_pick_per_bin_and_the_policy_replays_it(tmp_path):
    bon = write_run(tmp_path / "bon", _sampling_results(), "verifier.name=fake")
    beam = write_run(tmp_path / "beam", _tree_results(), "verifier.name=fake", "search.selection=weighted")
    ev = evaluate_runs([bon, beam], seeds=2)
    hard_bin = ev.policy.bin_of(0.225)
    entry = ev.policy.choose(4, hard_bin)
    # on the hard problems only beam search's naive pick is right: its own (weighted) pick and every
    # best-of-N pick are wrong there
    assert (entry.method, entry.strategy, entry.pick, entry.settings["selection"]) == (
        "beam_search:naive", "beam_search", "naive", "naive")
    assert ev.compute_optimal["oracle"].choices[4][3] == "beam_search:naive"
    path = tmp_path / "policy.json"
    ev.policy.save(path)
    from ttscale.data.policy import Policy

    assert Policy.load(path).choose(4, hard_bin).pick == "naive"
    raw = json.loads(path.read_text())
    raw["budgets"]["4"][str(hard_bin)]["pick"] = "best"
    path.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match="pick 'best' is not one of"):
        Policy.load(path)


def test_the_compute_optimal_strategy_re_picks_when_its_policy_says_so(tmp_path):
    from ttscale.backends.fake import FakeGenerator
    from ttscale.data.policy import Policy, PolicyEntry
    from ttscale.data.synthetic import arithmetic_problems
    from ttscale.grading.select import select
    from ttscale.verifiers.fake import FakeVerifier

    problems = arithmetic_problems(8, seed=9)
    prompts = [f"Question: {p.question}\nSolution:\n" for p in problems]

    def searched(pick):
        entry = PolicyEntry("best_of_n:x", "best_of_n", {"n": 4, "selection": "weighted"}, pick=pick)
        Policy((), "last", {4: {1: entry}}).save(tmp_path / f"{pick}.json")
        s = SearchSettings(n=4, step_delimiter="\n", end_markers=("\nQuestion:",), max_step_tokens=40,
                           max_new_tokens=200, policy=str(tmp_path / f"{pick}.json"))
        return ComputeOptimal().search(problems, prompts, FakeGenerator(), FakeVerifier(), s)

    own, voted = searched(None), searched("majority")
    assert [r.completions for r in own] == [r.completions for r in voted]  # the same search
    assert [r.selected for r in voted] == [select(r.completions, "majority", "last") for r in voted]
    assert [r.selected for r in own] == [select(r.completions, "weighted", "last") for r in own]
    assert [r.selected for r in own] != [r.selected for r in voted]  # the picks differ here, so the test can fail


def test_a_long_setting_is_named_by_a_digest_in_labels(tmp_path):
    """Runs that differ by a calibration map get labels that tell them apart without printing every knot."""
    knots = ["[[0.0, 0.01], [0.2, 0.04], [0.5, 0.05], [0.8, 0.2], [1.0, 0.35]]",
             "[[0.0, 0.02], [0.2, 0.03], [0.5, 0.06], [0.8, 0.25], [1.0, 0.3]]"]
    runs = [write_run(tmp_path / f"beam{i}", _beam_results(4), "verifier.name=fake", f"verifier.calibration={k}")
            for i, k in enumerate(knots)]
    names = sorted({c.method for c in evaluate_runs(runs, seeds=2).curves if c.kind == "search"})
    assert len(names) == 2 and all(n.startswith("beam_search(calibration=<5 items ") for n in names)
    assert all(len(n) < 60 for n in names)
