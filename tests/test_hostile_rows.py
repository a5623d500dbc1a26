"""Run folders whose rows are well-formed JSON but not well-formed rows, and trees that never landed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ttscale.cli import app
from ttscale.data.results import COMPLETIONS, TREES, RunDir, read_results, read_trees
from ttscale.eval.evaluate import evaluate_runs
from ttscale.runner import run


def _set(path: str, value):
    def mutate(row):
        *keys, last = path.split(".")
        node = row
        for k in keys:
            node = node[int(k)] if isinstance(node, list) else node[k]
        node[int(last) if isinstance(node, list) else last] = value
    return mutate


BAD_ROWS = {
    "problem_is_a_string": _set("problem", "what is 1+1?"),
    "problem_question_null": _set("problem.question", None),
    "budget_is_null": _set("budget", None),
    "budget_field_is_null": _set("budget.generated_tokens", None),
    "budget_field_is_a_string": _set("budget.generated_tokens", "12"),
    "selected_out_of_range": _set("selected", 99),
    "selected_negative": _set("selected", -1),
    "selected_is_a_string": _set("selected", "0"),
    "completions_is_an_object": _set("completions", {}),
    "completion_is_a_string": _set("completions.0", "text"),
    "completion_text_is_null": _set("completions.0.text", None),
    "step_scores_are_strings": _set("completions.0.step_scores", ["high"]),
    "steps_is_a_string": _set("completions.0.steps", "one step"),
    "strategy_is_null": _set("strategy", None),
    "id_is_not_its_problems": _set("id", "someone-else"),
    "level_is_a_string": _set("problem.level", "hard"),
}


def _finished(fake_cfg, *overrides) -> tuple:
    cfg = fake_cfg("dataset.limit=3", "output.save_trees=true", *overrides)
    run(cfg, progress=False)
    return cfg, Path(cfg.output.dir)


def _rewrite_line(path: Path, index: int, mutate) -> str:
    lines = path.read_text(encoding="utf-8").split("\n")
    row = json.loads(lines[index])
    mutate(row)
    lines[index] = json.dumps(row)
    path.write_text("\n".join(lines), encoding="utf-8")
    return row.get("id") if isinstance(row.get("id"), str) else None


@pytest.mark.parametrize("bad", sorted(BAD_ROWS))
def test_a_row_of_the_wrong_shape_is_skipped_with_its_line_and_searched_again(fake_cfg, caplog, bad):
    cfg, run_dir = _finished(fake_cfg)
    _rewrite_line(run_dir / COMPLETIONS, 1, BAD_ROWS[bad])
    assert len(read_results(run_dir)) == 2
    assert any(f"{COMPLETIONS}:2: skipping" in r.message for r in caplog.records)
    evaluation = evaluate_runs([run_dir], seeds=2)
    assert evaluation.runs[0].n_problems == 2
    outcome = run(cfg, progress=False)  # resume
    assert outcome.n_new == 1 and outcome.n_skipped == 2
    assert len(read_results(run_dir)) == 3


BAD_TREES = {
    "nodes_is_a_string": _set("nodes", "root"),
    "id_is_null": _set("id", None),
    "node_lacks_a_key": lambda row: row["nodes"][0].pop("step"),
    "node_parent_is_a_string": _set("nodes.0.parent", "root"),
    "node_has_an_unknown_key": _set("nodes.0.colour", "red"),
}


@pytest.mark.parametrize("bad", sorted(BAD_TREES))
def test_tree_of_one_problem_prints_despite_a_corrupt_tree_of_another(fake_cfg, bad):
    _, run_dir = _finished(fake_cfg)
    lines = (run_dir / TREES).read_text(encoding="utf-8").split("\n")
    wanted = json.loads(lines[2])["id"]
    _rewrite_line(run_dir / TREES, 0, BAD_TREES[bad])
    result = CliRunner().invoke(app, ["tree", str(run_dir), "--problem", wanted])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("#0 [")


@pytest.mark.parametrize("nodes", [
    [{"id": 0, "parent": None}, {"id": 0, "parent": 0}],  # a node listed twice, once under itself
    [{"id": 0, "parent": None}] + [{"id": i, "parent": i - 1} for i in range(1, 20_000)],  # a very deep chain
], ids=["node_under_itself", "deep_chain"])
def test_tree_whose_ids_loop_or_run_deep_prints_each_node_once(fake_cfg, nodes):
    _, run_dir = _finished(fake_cfg)
    full = [{"step": "s", "score": None, "n_tokens": 1, "completed": False, **n} for n in nodes]
    with open(run_dir / TREES, "a", encoding="utf-8") as f:
        f.write(json.dumps({"id": "looping", "nodes": full}) + "\n")
    result = CliRunner().invoke(app, ["tree", str(run_dir), "--problem", "looping"])
    assert result.exit_code == 0 and len(result.output.splitlines()) == len({n["id"] for n in nodes})


class _Killed(BaseException):
    pass


@pytest.mark.parametrize("kill_at", range(1, 7))
def test_a_kill_between_a_rows_writes_never_leaves_a_row_without_its_tree(fake_cfg, monkeypatch, kill_at):
    cfg = fake_cfg("dataset.limit=3", "output.save_trees=true")
    real = RunDir._append_line
    calls = {"n": 0}

    def dying(path, obj):
        calls["n"] += 1
        if calls["n"] == kill_at:
            raise _Killed
        real(path, obj)

    monkeypatch.setattr(RunDir, "_append_line", staticmethod(dying))
    with pytest.raises(_Killed):
        run(cfg, progress=False)
    monkeypatch.setattr(RunDir, "_append_line", staticmethod(real))
    run(cfg, progress=False)
    assert {r.id for r in read_results(cfg.output.dir)} == set(read_trees(cfg.output.dir))


def test_resume_rebuilds_a_tree_lost_by_an_older_writer(fake_cfg):
    cfg, run_dir = _finished(fake_cfg)
    lines = (run_dir / TREES).read_text(encoding="utf-8").split("\n")
    lost = json.loads(lines[1])["id"]
    (run_dir / TREES).write_text("\n".join(lines[:1] + lines[2:]), encoding="utf-8")
    outcome = run(cfg, progress=False)
    assert outcome.n_new == 1 and lost in read_trees(run_dir)
