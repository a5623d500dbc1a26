"""What the learn commands share: reading a run's config and results, writing JSONL + datasets."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ttscale.config import RunConfig
from ttscale.data.jsonl import dumps, iter_lines
from ttscale.data.results import CONFIG, RunDir, read_results
from ttscale.errors import MissingDependencyError, RunDirError
from ttscale.recipe import config_from_dict
from ttscale.types import ProblemResult


def read_run(run_dir: str | Path) -> tuple[RunConfig, list[ProblemResult]]:
    """The run's recipe and its results that finished without error."""
    path = Path(run_dir)
    results = read_results(path)  # raises a clear RunDirError for a missing or foreign dir
    if not (path / CONFIG).is_file():
        raise RunDirError(f"{path} has no {CONFIG}; learn commands read the run's recipe from it")
    return config_from_dict(RunDir(path).config()), [r for r in results if r.error is None]


def append_rows(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Append rows in one write and fsync, so a crash loses at most the rows in flight."""
    text = "".join(dumps(r) + "\n" for r in rows)
    with path.open("a", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def read_rows(path: Path) -> list[dict[str, Any]]:
    """JSONL rows; a half-written last line (a crash mid-write, even inside a character) is dropped."""
    if not path.is_file():
        return []
    return [line.value for line in iter_lines(path, surrogates=True) if line.error is None]


def save_dataset(rows: list[dict[str, Any]], directory: Path, features: Any = None) -> None:
    """Write `rows` as a `datasets` dataset on disk (load it with datasets.load_from_disk)."""
    try:
        from datasets import Dataset
    except ImportError:
        raise MissingDependencyError("datasets", purpose="writing training datasets") from None
    Dataset.from_list(rows, features=features).save_to_disk(str(directory))
