"""Sharded runs on Ray (`ttscale run --ray`): one task per shard, merged into one run dir.

Works with a local Ray that ttscale starts or an existing cluster (`--ray-address`).
Each task is an ordinary resumable shard run, so a failed or preempted task is
simply re-run; progress is read from the shard dirs' files, the run's contract.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ttscale.config import RunConfig
from ttscale.data.datasets import load_problems
from ttscale.errors import MissingDependencyError
from ttscale.recipe import config_from_dict
from ttscale.shards import merge, shard_dir


def _shard_task(cfg_dict: dict[str, Any], recipe_dir: str, index: int, count: int) -> int:
    from ttscale.runner import run

    return run(config_from_dict(cfg_dict), recipe_dir, shard=(index, count), progress=False).n_new


def _lines(path: Path) -> int:
    try:
        return sum(1 for line in path.open(encoding="utf-8") if line.endswith("\n"))
    except FileNotFoundError:
        return 0


def run_on_ray(
    cfg: RunConfig, recipe_dir: str | Path, n_shards: int, address: str | None = None, gpus_per_shard: float = 0.0
) -> tuple[int, dict[str, Any]]:
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("ray", extra="ray", purpose="--ray") from None
    from tqdm.auto import tqdm

    total = len(load_problems(cfg.dataset, recipe_dir))
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        task = ray.remote(num_cpus=1, num_gpus=gpus_per_shard)(_shard_task)
        pending = [task.remote(cfg.to_dict(), str(recipe_dir), i, n_shards) for i in range(n_shards)]
        files = [shard_dir(cfg.output.dir, i, n_shards) / "completions.jsonl" for i in range(n_shards)]
        with tqdm(total=total, desc=f"{n_shards} Ray shards", unit="problem") as bar:
            while pending:
                done, pending = ray.wait(pending, timeout=1.0)
                ray.get(done)  # a shard task's exception surfaces here, with its traceback
                bar.update(min(total, sum(_lines(f) for f in files)) - bar.n)
    finally:
        if started_here:
            ray.shutdown()
    return merge([shard_dir(cfg.output.dir, i, n_shards) for i in range(n_shards)], cfg.output.dir)

