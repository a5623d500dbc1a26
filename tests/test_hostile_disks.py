"""Full and read-only disks: one line naming the path, exit non-zero, never a traceback.

Simulated in-process (as root, chmod does not make a folder read-only): every write under a folder
fails with EROFS, or with ENOSPC once something is written, as the kernel reports them. One test uses a
real tmpfs mount in a private mount namespace where the machine allows it.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ttscale.cli import app
from ttscale.runner import run

FAKE = ["model.backend=fake", "prompt.mode=completion", "search.step_delimiter=\\n", "search.n=2",
        "search.problems_per_batch=1", "dataset.limit=3"]
WHY = {"read_only": "read-only", "full": "the disk is full"}


class _FullFile:
    """A file whose writes fail as a full disk's do; everything else is the real file's."""

    def __init__(self, real):
        self._real = real

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._real.close()

    def __getattr__(self, name):
        return getattr(self._real, name)


def _under(path, root: Path) -> bool:
    try:
        return isinstance(path, (str, Path)) and Path(os.path.abspath(path)).is_relative_to(root)
    except (TypeError, ValueError):
        return False


def _break_disk(monkeypatch, root: Path, kind: str) -> None:
    real_open, real_mkdir, real_os_open = io.open, os.mkdir, os.open

    def fake_open(file, mode="r", *args, **kwargs):
        writes = any(c in mode for c in "wax+")
        if writes and _under(file, root):
            if kind == "read_only":
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(file))
            if Path(file).name != "run.log":  # the log handler's own file: logging reports its errors itself
                return _FullFile(real_open(file, mode, *args, **kwargs))
        return real_open(file, mode, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):
        if kind == "read_only" and _under(path, root) and not os.path.isdir(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_mkdir(path, *args, **kwargs)

    def fake_os_open(path, flags, *args, **kwargs):
        if kind == "read_only" and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and _under(path, root):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_os_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)
    monkeypatch.setattr(os, "open", fake_os_open)


def _recipe(tmp_path: Path, out: Path) -> list[str]:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model:\n  backend: fake\n")
    args = ["run", str(recipe), "--output-dir", str(out), "--quiet"]
    for item in FAKE:
        args += ["--set", item]
    return args


def _finished(fake_cfg, tmp_path: Path) -> Path:
    cfg = fake_cfg(*FAKE, f"output.dir={tmp_path / 'disk' / 'run'}")
    run(cfg, progress=False)
    return Path(cfg.output.dir)


def _one_line(result, root: Path, kind: str) -> None:
    lines = result.output.strip().splitlines()
    assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert str(root) in lines[0] and WHY[kind] in lines[0], lines[0]


COMMANDS = ["run_new", "run_resume_finished", "run_resume_unfinished", "evaluate", "export_sft", "merge"]


@pytest.mark.parametrize("kind", sorted(WHY))
@pytest.mark.parametrize("command", COMMANDS)
def test_a_full_or_read_only_disk_is_one_line_naming_the_path(fake_cfg, tmp_path, monkeypatch, command, kind):
    disk = tmp_path / "disk"
    disk.mkdir()
    if command == "run_new":
        args, root = _recipe(tmp_path, disk / "run"), disk
    elif command.startswith("run_resume"):
        run_dir = _finished(fake_cfg, tmp_path)
        if command == "run_resume_unfinished":
            lines = (run_dir / "completions.jsonl").read_text().split("\n")
            (run_dir / "completions.jsonl").write_text("\n".join(lines[:1] + lines[2:]))
        args, root = _recipe(tmp_path, run_dir), run_dir
    elif command == "merge":
        base = tmp_path / "sharded"
        for i in range(2):
            run(fake_cfg(*FAKE, f"output.dir={base}"), progress=False, shard=(i, 2))
        args, root = ["merge", str(base / "shard-0-of-2"), str(base / "shard-1-of-2"), "--output", str(disk / "m")], disk
    else:
        run_dir = _finished(fake_cfg, tmp_path)
        sub = ["evaluate", str(run_dir), "--seeds", "2"] if command == "evaluate" else ["learn", "export-sft", str(run_dir)]
        args, root = sub + ["--output", str(disk / "out")], disk / "out"
        if kind == "full":
            root.mkdir()
    _break_disk(monkeypatch, root, kind)
    _one_line(CliRunner().invoke(app, args), root, kind)


def test_a_run_on_a_real_full_tmpfs_is_one_line_and_resumes_once_there_is_room(tmp_path):
    if not shutil.which("unshare") or subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode:
        pytest.skip("no private mount namespace here (unshare -rm refused)")
    disk = tmp_path / "disk"
    disk.mkdir()
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model:\n  backend: fake\n")
    sets = " ".join(f"--set '{s}'" for s in FAKE[:-1] + ["dataset.limit=400"])
    script = (f"mount -t tmpfs -o size=64k tmpfs {disk} && {sys.executable} -m ttscale.cli run {recipe} {sets} "
              f"--output-dir {disk}/run --quiet")
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=300)
    if "mount:" in done.stderr:
        pytest.skip(f"tmpfs cannot be mounted here: {done.stderr.strip()}")
    lines = done.stderr.strip().splitlines()
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert lines[-1].startswith("error: cannot write") and "the disk is full" in lines[-1], done.stderr
