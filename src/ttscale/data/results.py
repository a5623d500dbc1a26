"""The run directory, the contract between stages: config.yaml, completions.jsonl, metrics.json.

completions.jsonl is appended one problem at a time and flushed, so a crash loses at
most the problem in flight; re-running resumes from what is there.
"""

from __future__ import annotations

import json
import logging
import os
import re
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from ttscale.config import RunConfig, nest_flat_search_keys
from ttscale.data.jsonl import dumps, iter_lines
from ttscale.data.outputs import write_error, writing
from ttscale.data.rows import result_row_error, tree_row_error
from ttscale.errors import ConfigError, RunDirError
from ttscale.types import Problem, ProblemResult, TreeNode
from ttscale.yaml_values import load_yaml

log = logging.getLogger(__name__)

CONFIG = "config.yaml"
COMPLETIONS = "completions.jsonl"
TREES = "trees.jsonl"
METRICS = "metrics.json"
SERVER = "server.json"  # what a served policy honoured when probed (backends/server_probe.py)
LOG = "run.log"

LOCK = "run.lock"

# A forked child (a grading worker started mid-run) inherits the lock's open file, and an flock is
# held until every copy of it is closed: the folder stayed locked after its run ended, for as long
# as the worker lived. Process-wide by nature, as fork is: each child drops its copies at birth
# (dropping a copy never unlocks the parent's).
_HELD_LOCKS: weakref.WeakSet[Any] = weakref.WeakSet()


def _close_inherited_locks() -> None:
    for handle in list(_HELD_LOCKS):
        try:
            # /dev/null over the descriptor rather than a close: the child's file object still owns the
            # number, and a plain close would let it close whatever reuses that number later
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, handle.fileno())
            os.close(null)
        except (OSError, ValueError):
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited_locks)

# Keys that may change between a run and its resumption without changing any finished row: the
# folder's name, and how many problems are taken (more problems resume, only the new ones run; every
# reused row is checked against its problem's content anyway).
_RESUME_FREE = {("output", "dir"), ("dataset", "limit")}
# What a ttscale-owned folder may hold before it has a config.yaml: its lock, and shard dirs of a
# sharded run (whose merge lands in the shards' parent).
_SHARD_DIR = re.compile(r"shard-\d+-of-\d+")


def _comparable(cfg: dict[str, Any]) -> dict[str, Any]:
    return {s: {k: v for k, v in (sec or {}).items() if (s, k) not in _RESUME_FREE} for s, sec in cfg.items()}


def _with_defaults(cfg: dict[str, Any], defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """A config written before a setting existed reads as that setting's default (it ran with that behaviour)."""
    defaults = RunConfig().to_dict() if defaults is None else defaults
    out = dict(cfg)
    for key, default in defaults.items():
        if key not in out or (out[key] is None and isinstance(default, dict)):
            out[key] = default
        elif isinstance(default, dict) and isinstance(out[key], dict):
            out[key] = _with_defaults(out[key], default)
    return out


def config_difference(there: dict[str, Any], here: dict[str, Any]) -> str | None:
    """The first setting in which two run configs differ ('section.key: a there, b now'), or None when
    they can share a run folder (settings that resume, like dataset.limit, do not count)."""
    if isinstance(there.get("search"), dict):
        # a run saved before the strategy sections existed spells their keys flat
        there = {**there, "search": nest_flat_search_keys(there["search"])[0]}
    a, b = _comparable(_with_defaults(there)), _comparable(here)
    if a == b:
        return None
    for section in sorted(set(a) | set(b)):
        sa, sb = a.get(section) or {}, b.get(section) or {}
        for key in sorted(set(sa) | set(sb)):
            if sa.get(key) != sb.get(key):
                return f"{section}.{key}: {sa.get(key)!r} there, {sb.get(key)!r} now"
    return "unknown"


class RunDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock: Any = None  # the open lock file while this process owns the folder

    def prepare(self, config: dict[str, Any], overwrite: bool = False) -> None:
        """Create and lock the dir, or check it belongs to the same config before resuming.

        The lock is held until `release()` (or the process ends, however it ends).
        """
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"output directory {self.path} is a file, not a directory; choose another --output-dir")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise write_error(self.path, e) from None
        self._refuse_foreign()
        with writing(self.path / LOCK):
            self._acquire_lock()
        try:
            with writing(self.path):
                self._check_and_write_config(config, overwrite)
        except BaseException:
            self.release()
            raise

    def _refuse_foreign(self) -> None:
        """A non-empty folder without config.yaml is someone else's: never overwrite or append to it."""
        if (self.path / CONFIG).exists():
            return
        foreign = sorted(e.name for e in self.path.iterdir() if e.name != LOCK and not _SHARD_DIR.fullmatch(e.name))
        if foreign:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise RunDirError(
                f"{self.path} is not empty and is not a ttscale run (no {CONFIG}; holds {shown}); "
                "choose a new or empty --output-dir"
            )

    def _acquire_lock(self) -> None:
        """An exclusive flock: two runs started together on one folder would each search every problem."""
        try:
            import fcntl
        except ImportError:  # not POSIX: the run goes on unlocked
            return
        handle = (self.path / LOCK).open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise RunDirError(
                f"{self.path} is in use by another ttscale process (pid {holder}); "
                "wait for it to finish, or use another --output-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock = handle
        _HELD_LOCKS.add(handle)

    def release(self) -> None:
        """Give up the folder's lock (closing the file releases the flock)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _check_and_write_config(self, config: dict[str, Any], overwrite: bool) -> None:
        cfg_file = self.path / CONFIG
        if cfg_file.exists() and not overwrite:
            diff = config_difference(self.config(), config)
            if diff is not None:
                raise RunDirError(
                    f"{self.path} holds a run with a different config ({diff}); "
                    "use another --output-dir, or --overwrite to discard it"
                )
        if overwrite:
            for name in (COMPLETIONS, TREES, METRICS, SERVER):
                (self.path / name).unlink(missing_ok=True)
        cfg_file.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
        self._repair_tail(self.path / COMPLETIONS)
        self._repair_tail(self.path / TREES)
        # A run (or a shard) with nothing to search is still a run: read_results needs the file.
        (self.path / COMPLETIONS).touch()

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

    def done(self, problems: Sequence[Problem]) -> tuple[set[str], set[str]]:
        """(ids whose finished row is for this very problem, ids whose row is for a changed problem).

        Failed rows are in neither: they are searched again on resume. A row is reused only while
        its problem's question and gold answer are unchanged: an id alone can be reused for another
        problem when the dataset file changes between runs.
        """
        if not (self.path / COMPLETIONS).exists():
            return set(), set()
        rows = {r.id: r.problem.content_hash for r in read_results(self.path, quiet=True) if r.error is None}
        for pid in self._missing_trees(rows):
            del rows[pid]
        same = {p.id for p in problems if rows.get(p.id) == p.content_hash}
        changed = {p.id for p in problems if p.id in rows and p.id not in same}
        return same, changed

    def _missing_trees(self, rows: dict[str, str]) -> list[str]:
        """Finished rows whose tree never landed (written by a version that put the row first, then was
        killed): with output.save_trees they are searched again, so the tree is rebuilt."""
        if not ((self.config().get("output") or {}).get("save_trees") and (self.path / TREES).exists()):
            return []
        trees = read_trees(self.path, quiet=True)
        missing = sorted(pid for pid in rows if pid not in trees)
        if missing:
            log.warning("%d finished problems have no search tree (first %r); searching them again to rebuild it",
                        len(missing), missing[0])
        return missing

    def append(self, result: ProblemResult) -> None:
        # The tree first: a kill between the two writes then leaves a tree without its row (the problem
        # is searched again, and its new tree wins), never a finished row whose tree is lost for good.
        if result.tree:
            self._append_line(self.path / TREES, {"id": result.id, "nodes": [n.to_dict() for n in result.tree]})
        self._append_line(self.path / COMPLETIONS, result.to_dict())

    @staticmethod
    def _append_line(path: Path, obj: dict[str, Any]) -> None:
        with writing(path), path.open("a", encoding="utf-8") as f:
            f.write(dumps(obj) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def write_server(self, capabilities: dict[str, Any]) -> None:
        """What the policy's server honoured when this run probed it (read back into metrics.json)."""
        self._write_json(SERVER, capabilities)

    def server(self) -> dict[str, Any]:
        try:
            return json.loads((self.path / SERVER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        self._write_json(METRICS, metrics)

    def _write_json(self, name: str, obj: dict[str, Any]) -> None:
        """Written whole or not at all: a reader never sees half a file."""
        tmp = self.path / (name + ".tmp")
        with writing(self.path / name):
            tmp.write_text(json.dumps(obj, indent=2), encoding="utf-8")
            tmp.replace(self.path / name)

    def config(self) -> dict[str, Any]:
        """The run's config.yaml, or RunDirError when it is missing or not a recipe mapping."""
        file = self.path / CONFIG
        if not file.is_file():
            raise RunDirError(f"{self.path} is not a ttscale run directory (no {CONFIG})")
        try:
            raw = load_yaml(file.read_text(encoding="utf-8"), str(file))
        except (ConfigError, UnicodeDecodeError) as e:
            reason = str(e).splitlines()[0]
            raise RunDirError(f"{file} is corrupt ({reason}); repair it, or --overwrite to discard the run") from None
        # keys are compared and sorted against the recipe's: a `1:` or `null:` key must not reach there
        if not isinstance(raw, dict) or not all(isinstance(k, str) and (v is None or isinstance(v, dict)
                                                and all(isinstance(key, str) for key in v)) for k, v in raw.items()):
            raise RunDirError(f"{file} is corrupt (not a mapping of sections); repair it, or --overwrite to discard the run")
        return raw


def _iter_jsonl(path: Path, quiet: bool) -> Iterator[tuple[int, dict[str, Any]]]:
    """Each object row with its line number; a bad line (cut short, bad bytes, not JSON) is skipped and named."""
    for line in iter_lines(path, surrogates=True):
        if line.error is None and isinstance(line.value, dict):
            yield line.number, line.value
        elif not quiet:
            what = "half-written last line" if line.last else "malformed line"
            log.warning("%s:%d: skipping a %s (%s)", path, line.number, what, line.error or "not a JSON object")


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
        error = result_row_error(obj)
        if error is None:
            try:
                r = ProblemResult.from_dict(obj)
            except (KeyError, TypeError, ValueError) as e:
                error = f"{type(e).__name__}: {e}"
        if error is not None:
            if not quiet:
                log.warning("%s:%d: skipping a row that is not a ttscale result (%s); its problem is searched "
                            "again on resume", file, lineno, error)
            continue
        results[r.id] = r
    return list(results.values())


def read_trees(run_dir: str | Path, quiet: bool = False) -> dict[str, list[TreeNode]]:
    """Each problem's last well-formed tree; a bad row (of any problem) is skipped and named."""
    file = Path(run_dir) / TREES
    if not file.exists():
        raise RunDirError(f"{run_dir} has no {TREES}; run with output.save_trees=true")
    trees = {}
    for lineno, obj in _iter_jsonl(file, quiet):
        error = tree_row_error(obj)
        if error is not None:
            if not quiet:
                log.warning("%s:%d: skipping a row that is not a search tree (%s)", file, lineno, error)
            continue
        trees[obj["id"]] = [TreeNode(**n) for n in obj["nodes"]]
    return trees
