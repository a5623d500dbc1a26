"""Hand-built run directories whose right answers are known exactly."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ttscale.data.results import RunDir
from ttscale.recipe import load_config
from ttscale.types import Budget, Completion, Problem, ProblemResult


def completion(answer: str | None, scores: Sequence[float] | None = None, n_tokens: int = 10) -> Completion:
    steps = tuple(f"step {i}\n" for i in range(len(scores or [0]) - 1)) + (f"\\boxed{{{answer}}}",)
    return Completion(text="".join(steps), steps=steps, answer=answer,
                      step_scores=None if scores is None else tuple(scores), n_tokens=n_tokens)


def problem(pid: str, gold: str = "1", level: int = 1, subject: str = "algebra") -> Problem:
    return Problem(id=pid, question=f"question {pid}", answer=gold, level=level, subject=subject)


def result(p: Problem, completions: Sequence[Completion], strategy: str = "best_of_n", selected: int | None = 0,
           tokens: int = 40, flops: float = 80.0, error: str | None = None) -> ProblemResult:
    return ProblemResult(problem=p, strategy=strategy, completions=tuple(completions), selected=selected,
                         budget=Budget(generated_tokens=tokens, flops=flops), error=error)


def write_run(path: Path, results: Sequence[ProblemResult], *overrides: str) -> Path:
    """config.yaml from RunConfig.to_dict() (search.n = the first result's candidate count) + completions.jsonl."""
    n = max(len(results[0].completions), 1)
    cfg = load_config(None, [f"search.strategy={results[0].strategy}", f"search.n={n}", f"output.dir={path}",
                             *overrides])
    run_dir = RunDir(path)
    run_dir.prepare(cfg.to_dict(), overwrite=True)
    for r in results:
        run_dir.append(r)
    return path
