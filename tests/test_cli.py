"""The `ttscale` command end to end, as a user runs it (subprocess, real SmolLM2)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def ttscale(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "ttscale.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.mark.slow
def test_run_cpu_recipe_on_a_few_problems_then_resume(tmp_path):
    out = tmp_path / "run"
    args = ["run", "cpu_arithmetic", "--set", "dataset.limit=2", "--set", "search.n=2",
            "--set", "sampling.max_new_tokens=24", "--output-dir", str(out), "--quiet"]
    first = ttscale(*args)
    assert first.returncode == 0, first.stderr
    assert "maj" in first.stdout and "pass" in first.stdout and "2 new, 0 resumed" in first.stdout
    rows = [json.loads(line) for line in (out / "completions.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(len(r["completions"]) == 2 for r in rows)
    assert json.loads((out / "metrics.json").read_text())["n_problems"] == 2
    assert (out / "config.yaml").exists() and (out / "run.log").exists()
    again = ttscale(*args)
    assert again.returncode == 0 and "0 new, 2 resumed" in again.stdout


FAKE = ["--set", "model.backend=fake", "--set", "dataset.limit=2", "--set", "search.n=2", "--quiet"]


def _recipe(tmp, text: str | bytes) -> list[str]:
    path = tmp / "recipe.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return ["run", str(path), *FAKE, "--output-dir", str(tmp / "o")]


def _dataset(tmp, data: bytes) -> list[str]:
    (tmp / "d.jsonl").write_bytes(data)
    return ["run", "cpu_arithmetic", *FAKE, "--set", f"dataset.source={tmp / 'd.jsonl'}", "--output-dir", str(tmp / "o")]


def _finished_run(tmp) -> list[str]:
    """A finished fake run in tmp/o; returns the args that re-run it."""
    args = ["run", "cpu_arithmetic", *FAKE, "--output-dir", str(tmp / "o")]
    assert ttscale(*args).returncode == 0
    return args


def _corrupt_config(tmp) -> list[str]:
    args = _finished_run(tmp)
    (tmp / "o" / "config.yaml").write_text("model: [unclosed\n")
    return args


def _corrupt_shard(tmp) -> list[str]:
    base = ["run", "cpu_arithmetic", *FAKE, "--output-dir", str(tmp / "s")]
    assert ttscale(*base, "--shard", "0/1").returncode == 0
    (tmp / "s" / "shard-0-of-1" / "shard.json").write_text('{"index": 0, "count"')
    return ["merge", str(tmp / "s" / "shard-0-of-1"), "--output", str(tmp / "m")]


def _plain_file(tmp) -> list[str]:
    (tmp / "o").write_text("not a directory")
    return ["run", "cpu_arithmetic", *FAKE, "--output-dir", str(tmp / "o")]


def _locked(tmp) -> list[str]:
    from ttscale.data.results import RunDir
    from ttscale.recipe import load_config

    held = RunDir(tmp / "o")
    held.prepare(load_config(None, ["model.backend=fake"]).to_dict())
    _HELD.append(held)  # held (by this pid) until the test ends
    return ["run", "cpu_arithmetic", *FAKE, "--output-dir", str(tmp / "o")]


def _foreign(tmp) -> list[str]:
    (tmp / "o").mkdir()
    (tmp / "o" / "notes.txt").write_text("mine")
    return ["run", "cpu_arithmetic", *FAKE, "--output-dir", str(tmp / "o"), "--overwrite"]


def _two_shards(tmp, *extra: str) -> list[str]:
    base = ["run", "cpu_arithmetic", *FAKE, "--output-dir", str(tmp / "s"), *extra]
    for i in range(2):
        assert ttscale(*base, "--shard", f"{i}/2").returncode == 0
    return [str(tmp / "s" / f"shard-{i}-of-2") for i in range(2)]


def _merge_into_input(tmp) -> list[str]:
    shards = _two_shards(tmp)
    return ["merge", *shards, "--output", shards[0]]


def _merge_into_other_run(tmp) -> list[str]:
    _finished_run(tmp)  # tmp/o: search.n=2
    return ["merge", *_two_shards(tmp, "--set", "search.n=3"), "--output", str(tmp / "o")]


def _merge_into_foreign(tmp) -> list[str]:
    shards = _two_shards(tmp)
    (tmp / "m").mkdir()
    (tmp / "m" / "notes.txt").write_text("mine")
    return ["merge", *shards, "--output", str(tmp / "m"), "--overwrite"]


_HELD: list = []


# Each bad input is one error line naming the file, field or line, exit 2: never a traceback, never a run.
BAD_INPUT = [
    ("unknown key", lambda t: ["run", "cpu_arithmetic", "--set", "search.nn=3"], "unknown key 'search.nn'"),
    ("unknown strategy", lambda t: ["run", "cpu_arithmetic", "--strategy", "beem_search"], "unknown strategy 'beem_search'"),
    ("unknown recipe", lambda t: ["run", "no_such_recipe"], "recipe not found: no_such_recipe"),
    ("dataset bad JSON", lambda t: _dataset(t, b'{"problem": "1+1", "answer": "2"}\nnot json\n'), "d.jsonl:2: not valid JSON"),
    ("missing model", lambda t: ["run", "cpu_arithmetic", "--set", "model.name_or_path=/nope/model", "--set",
                                 "dataset.limit=1", "--output-dir", str(t / "o2")], "model path does not exist: /nope/model"),
    ("recipe is a list", lambda t: _recipe(t, "- model\n- search\n"), "recipe.yaml: a recipe must be a mapping of sections"),
    ("recipe is a string", lambda t: _recipe(t, "hello\n"), "a recipe must be a mapping of sections (model:, search:, ...), got str"),
    ("section is a scalar", lambda t: _recipe(t, "model: 5\n"), "section 'model' must be a mapping of keys to values, got 5"),
    ("recipe not UTF-8", lambda t: _recipe(t, b"search:\n  n: \xff\n"), "recipe.yaml is not UTF-8 text"),
    ("duplicate recipe key", lambda t: _recipe(t, "search:\n  n: 2\n  n: 3\n"), "duplicate key 'n' at line 3 (first at line 2)"),
    ("duplicate section", lambda t: _recipe(t, "search: {n: 2}\nsearch: {n: 3}\n"), "duplicate key 'search' at line 2"),
    ("dataset not UTF-8", lambda t: _dataset(t, b'{"problem": "1+1", "answer": "2"}\n{"problem": "\xe9"}\n'),
     "d.jsonl:2: not UTF-8 text"),
    ("temperature inf", lambda t: ["run", "cpu_arithmetic", *FAKE, "--set", "sampling.temperature=.inf"],
     "sampling.temperature=inf is invalid; accepted: a finite number"),
    ("top_p nan", lambda t: ["run", "cpu_arithmetic", *FAKE, "--set", "sampling.top_p=nan"],
     "sampling.top_p='nan' is invalid; accepted: a finite number"),
    ("flops cap inf", lambda t: ["run", "cpu_arithmetic", *FAKE, "--set", "search.max_flops_per_problem=.inf"],
     "search.max_flops_per_problem=inf is invalid"),
    ("output dir is a file", _plain_file, "is a file, not a directory"),
    ("corrupt config.yaml", _corrupt_config, "config.yaml is corrupt"),
    ("corrupt shard.json", _corrupt_shard, "shard.json is corrupt"),
    ("folder in use", _locked, f"is in use by another ttscale process (pid {os.getpid()})"),
    ("folder not a run", _foreign, "is not empty and is not a ttscale run (no config.yaml; holds notes.txt)"),
    ("merge into an input", _merge_into_input, "is inside the input shard"),
    ("merge over another run", _merge_into_other_run, "holds a run with a different config (search.n: 2 there, 3 now)"),
    ("merge into a non-run", _merge_into_foreign, "is not empty and is not a ttscale run"),
]


@pytest.mark.parametrize("make, fragment", [row[1:] for row in BAD_INPUT], ids=[row[0] for row in BAD_INPUT])
def test_bad_input_is_one_clear_line(tmp_path, make, fragment):
    try:
        r = ttscale(*make(tmp_path))
    finally:
        while _HELD:
            _HELD.pop().release()
    assert r.returncode == 2, r.stderr
    assert fragment in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_recipes_lists_registries():
    r = ttscale("recipes", "--fields")
    assert r.returncode == 0
    assert "cpu_arithmetic" in r.stdout and "beam_search" in r.stdout and "step_delimiter" in r.stdout
    assert "thinking.min_tokens" in r.stdout  # a nested section lists its keys as they are set


def test_grade_command():
    assert ttscale("grade", "--gold", "\\frac{1}{2}", "--pred", "0.5").stdout.strip() == "true"
    r = ttscale("grade", "--gold", "3", "--pred", "4")
    assert r.stdout.strip() == "false" and r.returncode == 1


def test_tree_command(tmp_path):
    from ttscale.backends.fake import FakeGenerator
    from ttscale.recipe import load_config
    from ttscale.runner import run
    from ttscale.verifiers.fake import FakeVerifier

    cfg = load_config(None, ["model.backend=fake", "verifier.name=fake", "search.strategy=beam_search", "search.n=4",
                             "search.beam_width=2", "dataset.limit=2", "output.save_trees=true", f"output.dir={tmp_path / 'r'}"])
    run(cfg, generator=FakeGenerator(), verifier=FakeVerifier(), progress=False)
    r = ttscale("tree", str(tmp_path / "r"), "--problem", "arith-1-00000")
    assert r.returncode == 0 and r.stdout.startswith("#0 [") and "\n  #" in r.stdout
    missing = ttscale("tree", str(tmp_path / "r"), "--problem", "nope")
    assert missing.returncode == 2 and "not in" in missing.stderr


@pytest.mark.slow
def test_math500_with_chat_prompt_runs(tmp_path):
    math500 = Path(__file__).resolve().parents[2] / "shared" / "data" / "math500.jsonl"
    r = ttscale("run", "cpu_arithmetic", "--set", f"dataset.source={math500}", "--set", "prompt.mode=chat",
                "--set", "dataset.levels=null", "--set", "dataset.limit=2", "--set", "search.n=2",
                "--set", "search.step_delimiter=\\n\\n", "--set", "sampling.max_new_tokens=32",
                "--output-dir", str(tmp_path / "m"), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "2 problems (0 failed)" in r.stdout
