"""The run directory, the contract between stages: config.yaml, completions.jsonl, metrics.json.

completions.jsonl is appended one problem at a time and flushed, so a crash loses at
most the problem in flight; re-running resumes from what is there.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from ttscale.errors import RunDirError
from ttscale.types import ProblemResult, TreeNode

log = logging.getLogger(__name__)

CONFIG = "config.yaml"
COMPLETIONS = "completions.jsonl"
TREES = "trees.jsonl"
METRICS = "metrics.json"
LOG = "run.log"

# Keys that may change between a run and its resumption without changing results.
_RESUME_FREE = {("output", "dir")}


def _comparable(cfg: dict[str, Any]) -> dict[str, Any]:
    return {s: {k: v for k, v in (sec or {}).items() if (s, k) not in _RESUME_FREE} for s, sec in cfg.items()}


class RunDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def prepare(self, config: dict[str, Any], overwrite: bool = False) -> None:
        """Create the dir, or check it belongs to the same config before resuming."""
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"output directory {self.path} is a file, not a directory; choose another --output-dir")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunDirError(f"cannot create output directory {self.path}: {e.strerror}") from None
        cfg_file = self.path / CONFIG
        if cfg_file.exists() and not overwrite:
            old = self.config()
            if _comparable(old) != _comparable(config):
                diff = _first_difference(_comparable(old), _comparable(config))
                raise RunDirError(
                    f"{self.path} holds a run with a different config ({diff}); "
                    "use another --output-dir, or --overwrite to discard it"
                )
        if overwrite:
            for name in (COMPLETIONS, TREES, METRICS):
                (self.path / name).unlink(missing_ok=True)
        cfg_file.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
        self._repair_tail(self.path / COMPLETIONS)
        self._repair_tail(self.path / TREES)

    @staticmethod
    def _repair_tail(path: Path) -> None:
        """Drop a half-written last line (a crash mid-write), so appends start on a clean line."""
        if not path.exists() or path.stat().st_size == 0:
            return
        data = path.read_bytes()
        if data.endswith(b"\n"):
            return
        keep = data.rfind(b"\n") + 1
        log.warning("%s: dropping a half-written last line (%d bytes) before resuming", path, len(data) - keep)
        with path.open("r+b") as f:
            f.truncate(keep)

    def done_ids(self) -> set[str]:
        """Problems finished without error; failed ones are searched again on resume."""
        if not (self.path / COMPLETIONS).exists():
            return set()
        return {r.id for r in read_results(self.path, quiet=True) if r.error is None}

    def append(self, result: ProblemResult) -> None:
        self._append_line(self.path / COMPLETIONS, result.to_dict())
        if result.tree:
            self._append_line(self.path / TREES, {"id": result.id, "nodes": [n.to_dict() for n in result.tree]})

    @staticmethod
    def _append_line(path: Path, obj: dict[str, Any]) -> None:
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(obj, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        tmp = self.path / (METRICS + ".tmp")
        tmp.write_text(json.dumps(metrics, indent=2), encoding="utf-8")
        tmp.replace(self.path / METRICS)

    def config(self) -> dict[str, Any]:
        """The run's config.yaml, or RunDirError when it is missing or not a recipe mapping."""
        file = self.path / CONFIG
        if not file.is_file():
            raise RunDirError(f"{self.path} is not a ttscale run directory (no {CONFIG})")
        try:
            raw = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            reason = str(e).splitlines()[0]
            raise RunDirError(f"{file} is corrupt ({reason}); repair it, or --overwrite to discard the run") from None
        if not isinstance(raw, dict) or not all(isinstance(v, dict | None) for v in raw.values()):
            raise RunDirError(f"{file} is corrupt (not a mapping of sections); repair it, or --overwrite to discard the run")
        return raw


def _first_difference(a: dict[str, Any], b: dict[str, Any]) -> str:
    for section in sorted(set(a) | set(b)):
        sa, sb = a.get(section) or {}, b.get(section) or {}
        for key in sorted(set(sa) | set(sb)):
            if sa.get(key) != sb.get(key):
                return f"{section}.{key}: {sa.get(key)!r} there, {sb.get(key)!r} now"
    return "unknown"


def _iter_jsonl(path: Path, quiet: bool) -> Iterator[tuple[int, dict[str, Any]]]:
    lines = path.read_text(encoding="utf-8").split("\n")
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            if not quiet:
                where = "half-written last line" if lineno == len(lines) else "malformed line"
                log.warning("%s:%d: skipping a %s", path, lineno, where)
            continue
        if isinstance(obj, dict):
            yield lineno, obj


def read_results(run_dir: str | Path, quiet: bool = False) -> list[ProblemResult]:
    """Results of a run dir; the last row per problem id wins, so a resumed duplicate cannot double-count."""
    path = Path(run_dir)
    if not path.is_dir():
        raise RunDirError(f"run directory not found: {path}")
    file = path / COMPLETIONS
    if not file.exists():
        raise RunDirError(f"{path} is not a ttscale run directory (no {COMPLETIONS})")
    results: dict[str, ProblemResult] = {}
    for lineno, obj in _iter_jsonl(file, quiet):
        try:
            r = ProblemResult.from_dict(obj)
        except (KeyError, TypeError, ValueError) as e:
            if not quiet:
                log.warning("%s:%d: skipping a row that is not a ttscale result (%s)", file, lineno, e)
            continue
        results[r.id] = r
    return list(results.values())


def read_trees(run_dir: str | Path) -> dict[str, list[TreeNode]]:
    file = Path(run_dir) / TREES
    if not file.exists():
        raise RunDirError(f"{run_dir} has no {TREES}; run with output.save_trees=true")
    return {obj["id"]: [TreeNode(**n) for n in obj["nodes"]] for _, obj in _iter_jsonl(file, quiet=False)}
