"""`ttscale learn export-sft`: a run's selected (or gold-correct) solutions as a chat-format SFT dataset.

Each row is {"messages": [system, user = question, assistant = solution]}, the
conversational format TRL's SFTTrainer reads as is (rejection-sampling fine-tuning /
STaR: train the policy on what search found).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ttscale.data.jsonl import iter_lines
from ttscale.data.outputs import claim_output, writing
from ttscale.errors import ConfigError
from ttscale.grading import correct_flags, solution_key
from ttscale.learn.common import append_rows, read_run, save_dataset
from ttscale.types import Completion, ProblemResult

SFT_JSONL = "sft.jsonl"
SFT_DATASET = "dataset"
Which = Literal["selected", "correct"]


@dataclass(frozen=True)
class SFTExport:
    output: Path
    n_rows: int
    n_problems: int
    n_problems_seen: int


def _chosen(result: ProblemResult, which: Which) -> list[Completion]:
    if which == "selected":
        return [] if result.selected is None else [result.completions[result.selected]]
    return [c for c, ok in zip(result.completions, correct_flags(result)) if ok]


def _dedup(completions: list[Completion]) -> list[Completion]:
    seen: set[str] = set()
    kept = []
    for c in completions:
        key = solution_key(c.text)
        if key not in seen:
            seen.add(key)
            kept.append(c)
    return kept


def sft_rows(
    results: list[ProblemResult], system_prompt: str, which: Which, dedup: bool, max_per_problem: int | None
) -> list[dict[str, Any]]:
    rows = []
    for r in results:
        chosen = [c for c in _chosen(r, which) if c.text.strip()]
        if dedup:
            chosen = _dedup(chosen)
        for c in chosen[:max_per_problem]:
            rows.append(
                {
                    "id": r.id,
                    "messages": [
                        {"role": "system", "content": system_prompt},
                        {"role": "user", "content": r.problem.question},
                        {"role": "assistant", "content": c.text.strip()},
                    ],
                }
            )
    return rows


def _features() -> Any:
    from datasets import Features, Value

    message = {"role": Value("string"), "content": Value("string")}
    return Features({"id": Value("string"), "messages": [message]})


def _is_export(folder: Path) -> bool:
    """Whether `folder` holds an earlier export (replaced by this one): only its two names, and an
    sft.jsonl whose first row is one of ours. Anyone else's sft.jsonl is never overwritten."""
    if not all(e.name in (SFT_JSONL, SFT_DATASET) for e in folder.iterdir()):
        return False
    for line in iter_lines(folder / SFT_JSONL, surrogates=True) if (folder / SFT_JSONL).is_file() else ():
        return isinstance(line.value, dict) and set(line.value) == {"id", "messages"}
    return True


def export_sft(
    run_dir: str | Path,
    output: str | Path | None = None,
    which: Which = "selected",
    dedup: bool = True,
    max_per_problem: int | None = None,
) -> SFTExport:
    """Write OUTPUT/sft.jsonl and OUTPUT/dataset (datasets.load_from_disk); OUTPUT defaults to RUN_DIR/sft."""
    if which not in ("selected", "correct"):
        raise ConfigError(f"--which={which!r} is invalid; accepted: selected, correct")
    if max_per_problem is not None and max_per_problem < 1:
        raise ConfigError(f"--max-per-problem={max_per_problem} is invalid; accepted: an integer >= 1")
    cfg, results = read_run(run_dir)
    out = Path(output) if output is not None else Path(run_dir) / "sft"
    claim_output(out, [Path(run_dir)], _is_export)
    rows = sft_rows(results, cfg.prompt.system_prompt, which, dedup, max_per_problem)
    with writing(out):
        (out / SFT_JSONL).unlink(missing_ok=True)
        append_rows(out / SFT_JSONL, rows)
        save_dataset(rows, out / SFT_DATASET, _features())
    return SFTExport(out, len(rows), len({r["id"] for r in rows}), len(results))
