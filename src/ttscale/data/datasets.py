"""One loader for three sources: local JSONL, hub / saved datasets, and the synthetic world.

Every row is checked here, at the edge; a malformed row stops the run before any
generation with an error naming the file and line.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ttscale.config import DatasetConfig
from ttscale.data.jsonl import iter_lines
from ttscale.data.synthetic import arithmetic_problems
from ttscale.errors import DataError, MissingDependencyError
from ttscale.types import Problem

QUESTION_FIELDS = ("problem", "question", "prompt", "input")
ANSWER_FIELDS = ("answer", "final_answer", "solution", "target")
ID_FIELDS = ("unique_id", "id", "idx", "problem_id")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
LOADERS = {".json": "json", ".csv": "csv", ".parquet": "parquet"}  # single files, by `datasets`' builders
ACCEPTED = ("a .jsonl/.ndjson file, a .json/.csv/.parquet file, a folder of data files or from "
            "save_to_disk, a hub dataset id, or synthetic:arithmetic")
_GSM8K_FINAL = re.compile(r"####\s*(.+?)\s*$", re.S)


def gold_answer(raw: Any) -> str:
    """The final answer: GSM8K's worked answer keeps only the number after '####'."""
    text = str(raw).strip()
    m = _GSM8K_FINAL.search(text)
    if m:
        return m.group(1).replace(",", "").strip()
    if "\\boxed" in text:
        from ttscale.grading import stated_answer

        # Only the boxes (joined, `\boxed{1}\boxed{2}` is `1, 2`): a gold whose box never closes is
        # kept whole rather than graded against its last number.
        return stated_answer(text) or text
    return text


def _pick(row: dict[str, Any], wanted: str | None, candidates: tuple[str, ...], what: str, where: str) -> Any:
    if wanted is not None:
        if wanted not in row:
            raise DataError(f"{where}: no field '{wanted}' (dataset.{what}_field); fields: {', '.join(row)}")
        return row[wanted]
    for name in candidates:
        if name in row and row[name] not in (None, ""):
            return row[name]
    raise DataError(
        f"{where}: no {what} field; looked for {', '.join(candidates)} and found {', '.join(row)}; "
        f"set dataset.{what}_field"
    )


def to_problem(row: dict[str, Any], cfg: DatasetConfig, where: str, id_prefix: str) -> Problem:
    """The row's problem; without an id field its id is `id_prefix:` + a digest of question and answer."""
    question = _pick(row, cfg.question_field, QUESTION_FIELDS, "question", where)
    answer = _pick(row, cfg.answer_field, ANSWER_FIELDS, "answer", where)
    level = row.get("level")
    if isinstance(level, str):
        m = re.search(r"\d", level)  # MATH on the hub spells it "Level 3"
        level = int(m.group()) if m else None
    problem = Problem(
        id="",
        question=str(question),
        answer=gold_answer(answer),
        level=level if isinstance(level, int) else None,
        subject=row.get("subject") or row.get("type"),
    )
    if _has_id(row, cfg):
        pid = str(_pick(row, cfg.id_field, ID_FIELDS, "id", where))
    else:
        # From the content, not the line number: a line inserted above must not shift every id and make
        # a resumed run pair old results with new problems.
        pid = f"{id_prefix}:{problem.content_hash[:12]}"
    return dataclasses.replace(problem, id=pid)


def _number_repeats(problems: list[Problem], id_prefix: str) -> list[Problem]:
    """Identical rows without an id field share a content id; the 2nd, 3rd ... get '#2', '#3' after it."""
    seen: dict[str, int] = {}
    out = []
    for p in problems:
        if p.id == f"{id_prefix}:{p.content_hash[:12]}":
            seen[p.id] = seen.get(p.id, 0) + 1
            if seen[p.id] > 1:
                p = dataclasses.replace(p, id=f"{p.id}#{seen[p.id]}")
        out.append(p)
    return out


def _has_id(row: dict[str, Any], cfg: DatasetConfig) -> bool:
    return cfg.id_field is not None or any(f in row for f in ID_FIELDS)


def read_jsonl(path: Path, cfg: DatasetConfig) -> list[Problem]:
    problems = []
    for line in iter_lines(path):
        where = f"{path}:{line.number}"
        if line.error is not None:
            raise DataError(f"{where}: {line.error}")
        if not isinstance(line.value, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(line.value).__name__}")
        problems.append(to_problem(line.value, cfg, where, path.stem))
    return _number_repeats(problems, path.stem)


def read_hub(cfg: DatasetConfig) -> list[Problem]:
    """Hub ids, single .json/.csv/.parquet files, or directories written by `datasets.save_to_disk` /
    holding data files."""
    try:
        import datasets
    except ImportError:
        raise MissingDependencyError("datasets", purpose=f"loading '{cfg.source}'") from None
    path = Path(cfg.source)
    try:
        if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
            ds = datasets.load_from_disk(str(path))
            ds = ds[cfg.split] if isinstance(ds, datasets.DatasetDict) else ds
        elif path.is_file():
            # `load_dataset("x.csv")` looks for a hub repo named x.csv: a file goes to its format's
            # builder, whose one split is "train" whatever dataset.split says
            ds = datasets.load_dataset(LOADERS[path.suffix.lower()], data_files=str(path), split="train")
        else:
            ds = datasets.load_dataset(cfg.source, split=cfg.split)
        rows = [dict(row) for row in ds]  # a bad byte in a data file surfaces here, as rows are decoded
    except (datasets.exceptions.DatasetGenerationError, UnicodeDecodeError) as e:
        raise _explain_folder(path, cfg) or DataError(
            f"could not read dataset '{cfg.source}': {_cause(e)}") from None
    except (FileNotFoundError, ValueError, ConnectionError, OSError) as e:
        raise DataError(f"could not load dataset '{cfg.source}' (split {cfg.split!r}): {e}; accepted: {ACCEPTED}") from None
    except KeyError:
        raise DataError(f"dataset '{cfg.source}' has no split {cfg.split!r}") from None
    problems = [to_problem(row, cfg, f"{cfg.source}[{i}]", path.name) for i, row in enumerate(rows)]
    return _number_repeats(problems, path.name)


def _cause(e: BaseException) -> str:
    """The innermost reason `datasets` wraps in its generation error (a bad line's parse error)."""
    while e.__cause__ is not None or e.__context__ is not None:
        e = e.__cause__ or e.__context__  # type: ignore[assignment]
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def _explain_folder(path: Path, cfg: DatasetConfig) -> DataError | None:
    """For a folder of JSONL files that `datasets` could not read, our reader's file:line of the bad line."""
    if not path.is_dir():
        return None
    for file in sorted(f for f in path.rglob("*") if f.suffix.lower() in JSONL_SUFFIXES):
        try:
            read_jsonl(file, cfg)
        except DataError as e:
            return e
    return None


def _filter(problems: Iterable[Problem], cfg: DatasetConfig) -> list[Problem]:
    out = [
        p
        for p in problems
        if (cfg.levels is None or p.level in cfg.levels) and (cfg.subjects is None or p.subject in cfg.subjects)
    ]
    if cfg.shuffle:
        random.Random(cfg.seed).shuffle(out)
    return out[: cfg.limit] if cfg.limit is not None else out


def load_problems(cfg: DatasetConfig, base_dir: str | Path = ".") -> list[Problem]:
    """The run's problems, filtered; relative paths resolve against `base_dir` (the recipe's folder)."""
    if cfg.source.startswith("synthetic:"):
        kind = cfg.source.split(":", 1)[1]
        if kind != "arithmetic":
            raise DataError(f"unknown synthetic dataset '{cfg.source}'; accepted: synthetic:arithmetic")
        problems = arithmetic_problems(cfg.synthetic_size, seed=cfg.seed, levels=cfg.levels, wording=cfg.wording)
    else:
        path = Path(cfg.source).expanduser()
        if not path.is_absolute() and not path.exists() and (Path(base_dir) / path).exists():
            path = Path(base_dir) / path
        suffix = path.suffix.lower()
        if suffix in JSONL_SUFFIXES or suffix in LOADERS:
            if not path.is_file():
                raise DataError(f"dataset file not found: {cfg.source}")
        elif path.is_file():
            raise DataError(f"dataset file {cfg.source} is in no format read here; accepted: {ACCEPTED}")
        if suffix in JSONL_SUFFIXES:
            problems = read_jsonl(path, cfg)
        else:
            problems = read_hub(DatasetConfig(**{**cfg.__dict__, "source": str(path) if path.exists() else cfg.source}))
    problems = _filter(problems, cfg)
    ids = [p.id for p in problems]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise DataError(f"dataset '{cfg.source}' has duplicate problem id {dup!r}; set dataset.id_field")
    if not problems:
        raise DataError(f"dataset '{cfg.source}' has no problems after filtering (levels, subjects, limit)")
    return problems
