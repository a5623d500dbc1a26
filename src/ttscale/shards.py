"""Deterministic problem shards (Slurm arrays, Ray tasks) and merging shard dirs into one run.

A shard is made of whole search batches (search.problems_per_batch consecutive
problems), so every batch sees the same problems in the same order as in an
unsharded run: with a fixed seed the merged results equal the unsharded ones.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from ttscale.config import OutputConfig, VerifierConfig
from ttscale.data.jsonl import dumps
from ttscale.data.outputs import writing
from ttscale.data.results import COMPLETIONS, CONFIG, TREES, RunDir, config_difference, read_results, read_trees
from ttscale.errors import ConfigError, RunDirError
from ttscale.types import Problem

SHARD_FILE = "shard.json"


def parse_shard(text: str) -> tuple[int, int]:
    """'i/K' with 0 <= i < K."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or not int(m.group(1)) < int(m.group(2)):
        raise ConfigError(f"--shard {text!r} is invalid; accepted: i/K with 0 <= i < K, e.g. 0/4")
    return int(m.group(1)), int(m.group(2))


def shard_problems(problems: Sequence[Problem], index: int, count: int, batch: int) -> list[Problem]:
    batches = [problems[s : s + batch] for s in range(0, len(problems), batch)]
    return [p for b in batches[index::count] for p in b]


def shard_dir(base: str | Path, index: int, count: int) -> Path:
    return Path(base) / f"shard-{index}-of-{count}"


def write_shard_file(run_dir: Path, index: int, count: int, ids: Sequence[str]) -> None:
    with writing(run_dir / SHARD_FILE):
        (run_dir / SHARD_FILE).write_text(json.dumps({"index": index, "count": count, "ids": list(ids)}), encoding="utf-8")


def _read_shard(d: Path) -> dict:
    if not (d / SHARD_FILE).exists():
        raise RunDirError(f"{d} is not a shard directory (no {SHARD_FILE}); run it with --shard i/K")
    try:
        shard = json.loads((d / SHARD_FILE).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise RunDirError(f"{d / SHARD_FILE} is corrupt ({e}); re-run the shard with --shard i/K") from None
    valid = (
        isinstance(shard, dict)
        and all(isinstance(shard.get(k), int) and not isinstance(shard.get(k), bool) for k in ("index", "count"))
        and isinstance(shard.get("ids"), list)
        and all(isinstance(i, str) for i in shard["ids"])
    )
    if not valid:
        raise RunDirError(f"{d / SHARD_FILE} is corrupt (needs integer 'index', 'count' and a list of 'ids'); "
                          "re-run the shard with --shard i/K")
    return shard


def _check_output(dirs: Sequence[Path], output: Path) -> None:
    """The merged run never lands in one of its inputs, nor in any other shard's folder."""
    out = output.resolve()
    for d in dirs:
        if out == d.resolve() or d.resolve() in out.parents:
            raise RunDirError(f"--output {output} is inside the input shard {d}; merge into another folder")
    if (output / SHARD_FILE).exists():
        raise RunDirError(f"--output {output} is a shard directory (it has {SHARD_FILE}); merge into another folder")


def _check_fit(dirs: Sequence[Path], shards: Sequence[dict], configs: Sequence[dict]) -> None:
    """Shards whose problem sets do not partition one dataset are refused, naming them.

    dataset.limit may differ between a run and its resumption (only the new problems run), so
    config_difference lets it pass; between shards it means each took a different dataset, and the
    merge silently kept only what the smaller ones held.
    """
    limits = [(d, (cfg.get("dataset") or {}).get("limit")) for d, cfg in zip(dirs, configs)]
    if len({limit for _, limit in limits}) > 1:
        shown = ", ".join(f"{d} has dataset.limit={limit}" for d, limit in limits)
        raise RunDirError(f"shards do not fit together ({shown}); run every shard with the same dataset.limit")
    # whole batches dealt round-robin: the shard sizes follow from the total, or the sets do not fit
    total = sum(len(s["ids"]) for s in shards)
    batch = int((configs[0].get("search") or {}).get("problems_per_batch") or 1)
    for d, s in zip(dirs, shards):
        expected = len(shard_problems(range(total), s["index"], s["count"], batch))  # type: ignore[arg-type]
        if len(s["ids"]) != expected:
            raise RunDirError(f"shards do not fit together: {d} holds {len(s['ids'])} problems, but shard "
                              f"{s['index']} of {s['count']} of {total} problems holds {expected}; "
                              "run every shard on the same dataset")


def merge(shard_dirs: Sequence[str | Path], output: str | Path, overwrite: bool = False) -> tuple[int, dict]:
    """Combine shard dirs; refuses mismatched configs, missing shards, missing or duplicate problems.

    Like `run`, the output may be new, empty, or a run of the same config (replaced by the merge);
    a run of another config only with `overwrite`, a folder that is not a run never.
    """
    dirs = [Path(d) for d in shard_dirs]
    shards = [_read_shard(d) for d in dirs]
    _check_output(dirs, Path(output))
    count = shards[0]["count"]
    indices = sorted(s["index"] for s in shards)
    if any(s["count"] != count for s in shards) or indices != list(range(count)):
        raise RunDirError(f"shards {indices} of {count} given; merge needs each of 0..{count - 1} exactly once")
    configs = [RunDir(d).config() for d in dirs]
    for d, cfg in zip(dirs[1:], configs[1:]):
        diff = config_difference(configs[0], cfg)
        if diff is not None:
            raise RunDirError(f"{d} has a different config than {dirs[0]} ({diff})")
    _check_fit(dirs, shards, configs)
    by_index = dict(zip([s["index"] for s in shards], zip(dirs, shards)))
    rows: list[str] = []
    trees: list[str] = []
    seen: set[str] = set()
    for i in range(count):
        d, shard = by_index[i]
        results = {r.id: r for r in read_results(d)}
        missing = [pid for pid in shard["ids"] if pid not in results or results[pid].error is not None]
        if missing:
            raise RunDirError(f"{d} is unfinished: {len(missing)} problems missing or failed (first: {missing[0]}); resume it first")
        dup = seen.intersection(shard["ids"])
        if dup:
            raise RunDirError(f"problem {sorted(dup)[0]!r} is in more than one shard")
        seen.update(shard["ids"])
        rows += [dumps(results[pid].to_dict()) for pid in shard["ids"]]
        if (d / TREES).exists():
            # parsed, not copied as text: a step holding U+2028 is one line, a corrupt row is skipped
            shard_trees = read_trees(d)
            trees += [dumps({"id": pid, "nodes": [n.to_dict() for n in shard_trees[pid]]})
                      for pid in shard["ids"] if pid in shard_trees]
    out = RunDir(output)
    cfg = dict(configs[0])
    cfg["output"] = {**(cfg.get("output") or {}), "dir": str(output)}
    out.prepare(cfg, overwrite=overwrite)
    try:
        with writing(out.path):
            (out.path / COMPLETIONS).write_text("".join(r + "\n" for r in rows), encoding="utf-8")
            (out.path / TREES).unlink(missing_ok=True)
            if trees:
                (out.path / TREES).write_text("".join(t + "\n" for t in trees), encoding="utf-8")
            from ttscale.eval.metrics import run_metrics

            metrics = run_metrics(read_results(out.path), (cfg.get("verifier") or {}).get("reduction", VerifierConfig.reduction),
                                  cfg["output"].get("subsample_seeds", OutputConfig.subsample_seeds))
            out.write_metrics(metrics)
    finally:
        out.release()
    return len(rows), metrics


__all__ = ["CONFIG", "merge", "parse_shard", "shard_dir", "shard_problems", "write_shard_file"]
