"""Outputs that are not where the user thinks: every command that writes follows `run`'s rules (never
into an input, never into a folder that is not its own, one line when refused); merge refuses shards
whose problem sets do not fit; numeric options out of range are refused at the edge."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ttscale.cli import app
from ttscale.runner import run


@pytest.fixture
def finished(fake_cfg) -> Path:
    cfg = fake_cfg("dataset.limit=3")
    run(cfg, progress=False)
    return Path(cfg.output.dir)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _one_line_refusal(result, *words: str) -> None:
    lines = result.output.strip().splitlines()
    assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert all(w in lines[0] for w in words), lines[0]


def _bad_output(kind: str, run_dir: Path, tmp_path: Path, fake_cfg) -> Path:
    if kind == "a_plain_file":
        (tmp_path / "out.txt").write_text("mine\n")
        return tmp_path / "out.txt"
    if kind == "the_input_run":
        return run_dir
    if kind == "another_run":
        other = fake_cfg("dataset.limit=2", f"output.dir={tmp_path / 'other'}")
        run(other, progress=False)
        return tmp_path / "other"
    folder = tmp_path / "theirs"
    folder.mkdir()
    name = {"foreign_folder": "notes.md", "foreign_sft": "sft.jsonl", "foreign_steps": "steps.jsonl"}[kind]
    (folder / name).write_text('{"theirs": true}\n')
    return folder


COMMANDS = {
    "evaluate": lambda run_dir, out: ["evaluate", str(run_dir), "--output", str(out), "--seeds", "2"],
    "export_sft": lambda run_dir, out: ["learn", "export-sft", str(run_dir), "--output", str(out)],
    "label_steps": lambda run_dir, out: ["learn", "label-steps", str(run_dir), "--output", str(out), "--quiet",
                                         "--rollouts", "1"],
}


@pytest.mark.parametrize("kind", ["a_plain_file", "the_input_run", "another_run", "foreign_folder",
                                  "foreign_sft", "foreign_steps"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_command_never_writes_into_an_input_or_a_folder_not_its_own(finished, tmp_path, fake_cfg, command, kind):
    out = _bad_output(kind, finished, tmp_path, fake_cfg)
    before = _snapshot(tmp_path)
    result = CliRunner().invoke(app, COMMANDS[command](finished, out))
    _one_line_refusal(result, str(out))
    assert _snapshot(tmp_path) == before  # nothing written, nothing replaced


@pytest.mark.parametrize("command", ["evaluate", "export_sft"])
def test_a_command_may_write_again_over_its_own_earlier_output(finished, tmp_path, command):
    out = tmp_path / "mine"
    for _ in range(2):
        result = CliRunner().invoke(app, COMMANDS[command](finished, out))
        assert result.exit_code == 0, result.output


@pytest.mark.parametrize("seeds", ["0", "-1"])
def test_evaluate_seeds_below_one_is_refused_at_the_edge(finished, tmp_path, seeds):
    result = CliRunner().invoke(app, ["evaluate", str(finished), "--output", str(tmp_path / "e"), "--seeds", seeds])
    _one_line_refusal(result, "--seeds", seeds)


@pytest.mark.parametrize("limits", [(4, 6), (6, 4), (None, 4)])
def test_merge_refuses_shards_whose_problem_sets_do_not_fit(fake_cfg, tmp_path, limits):
    base = tmp_path / "sharded"
    for index, limit in enumerate(limits):
        cfg = fake_cfg(f"dataset.limit={'null' if limit is None else limit}", "search.problems_per_batch=1",
                       f"output.dir={base}")
        run(cfg, progress=False, shard=(index, 2))
    shards = [str(base / f"shard-{i}-of-2") for i in range(2)]
    result = CliRunner().invoke(app, ["merge", *shards, "--output", str(tmp_path / "merged")])
    _one_line_refusal(result, "do not fit", *shards)
    assert not (tmp_path / "merged").exists()
