"""The `ttscale` command end to end, as a user runs it (subprocess, real SmolLM2)."""

import json
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


def test_bad_input_is_one_clear_line(tmp_path):
    bad = tmp_path / "d.jsonl"
    bad.write_text('{"problem": "1+1", "answer": "2"}\nnot json\n')
    cases = [
        (["run", "cpu_arithmetic", "--set", "search.nn=3"], "unknown key 'search.nn'"),
        (["run", "cpu_arithmetic", "--strategy", "beem_search"], "unknown strategy 'beem_search'"),
        (["run", "no_such_recipe"], "recipe not found: no_such_recipe"),
        (["run", "cpu_arithmetic", "--set", f"dataset.source={bad}", "--output-dir", str(tmp_path / "o")], "d.jsonl:2: not valid JSON"),
        (["run", "cpu_arithmetic", "--set", "model.name_or_path=/nope/model", "--set", "dataset.limit=1",
          "--output-dir", str(tmp_path / "o2")], "model path does not exist: /nope/model"),
    ]
    for args, fragment in cases:
        r = ttscale(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert fragment in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_recipes_lists_registries():
    r = ttscale("recipes", "--fields")
    assert r.returncode == 0
    assert "cpu_arithmetic" in r.stdout and "beam_search" in r.stdout and "step_delimiter" in r.stdout


def test_grade_command():
    assert ttscale("grade", "--gold", "\\frac{1}{2}", "--pred", "0.5").stdout.strip() == "true"
    r = ttscale("grade", "--gold", "3", "--pred", "4")
    assert r.stdout.strip() == "false" and r.returncode == 1


def test_tree_command(tmp_path):
    from ttscale.backends.fake import FakeGenerator
    from ttscale.config import load_config
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
                "--set", "search.step_delimiter='\n\n'", "--set", "sampling.max_new_tokens=32",
                "--output-dir", str(tmp_path / "m"), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "2 problems (0 failed)" in r.stdout
