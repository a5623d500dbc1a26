"""The type checker over src: mypy with the settings in pyproject.toml ([tool.mypy]) finds no error;
and the linter (ruff, [tool.ruff.lint]) none over src, bench and tests.

Strategies, backends and verifiers meet at typed seams (SearchSettings, the Generator and
Verifier protocols, the Reduction and Selection literals); a call that passes the wrong thing
through one of them fails here rather than at run time on a GPU."""

import subprocess
import sys
from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_finds_no_error_in_src(tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "mypy-cache"
    report, errors, status = api.run(["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(cache),
                                      str(ROOT / "src" / "ttscale")])
    assert status == 0, report + errors
    assert "no issues found" in report


def test_ruff_finds_no_unused_name_undefined_name_or_unsorted_import():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "src", "bench", "tests"], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
