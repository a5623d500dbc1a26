"""Accuracy of every selection method at every N, from the completions a run wrote.

Smaller N are estimated by subsampling the same completions with several seeds, so
one N=256 sampling run gives the whole curve; pass@k uses the unbiased estimator.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from math import comb
from typing import Any

from ttscale.grading import is_equiv_many
from ttscale.search.select import select
from ttscale.types import ProblemResult

METHODS = ("majority", "naive", "weighted")


def budgets(n_max: int) -> list[int]:
    """1, 2, 4, ... up to n_max, plus n_max itself when it is not a power of two."""
    ks, k = [], 1
    while k < n_max:
        ks.append(k)
        k *= 2
    return ks + [n_max] if n_max >= 1 else []


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): 1 - C(n-c, k) / C(n, k)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def correctness(results: Sequence[ProblemResult]) -> dict[str, list[bool]]:
    """Per problem id, whether each completion's answer equals the gold (one batched grading pass)."""
    pairs, owners = [], []
    for r in results:
        for i, c in enumerate(r.completions):
            if c.answer is not None:
                pairs.append((r.problem.answer, c.answer))
                owners.append((r.id, i))
    verdicts = is_equiv_many(pairs) if pairs else []
    out = {r.id: [False] * len(r.completions) for r in results}
    for (pid, i), ok in zip(owners, verdicts):
        out[pid][i] = ok
    return out


def _methods_for(results: Sequence[ProblemResult]) -> list[str]:
    scored = any(c.step_scores for r in results for c in r.completions)
    return list(METHODS) if scored else ["majority"]


def curves(
    results: Sequence[ProblemResult], correct: dict[str, list[bool]], reduction: str, seeds: int
) -> dict[str, dict[int, float]]:
    """method -> {k: accuracy} for every k up to the smallest candidate count of the run."""
    ok = [r for r in results if r.error is None and r.completions]
    if not ok:
        return {}
    n_max = min(len(r.completions) for r in ok)
    out: dict[str, dict[int, float]] = {m: {} for m in _methods_for(ok)}
    out["pass"] = {}
    for k in budgets(n_max):
        out["pass"][k] = sum(pass_at_k(len(r.completions), sum(correct[r.id]), k) for r in ok) / len(ok)
        for method in out:
            if method == "pass":
                continue
            hits = 0.0
            n_draws = 1 if all(len(r.completions) == k for r in ok) else seeds
            for seed in range(n_draws):
                rng = random.Random(seed)
                for r in ok:
                    idx = sorted(rng.sample(range(len(r.completions)), k)) if k < len(r.completions) else list(range(k))
                    pick = select([r.completions[i] for i in idx], method, reduction)
                    hits += pick is not None and correct[r.id][idx[pick]]
            out[method][k] = hits / (n_draws * len(ok))
    return out


def selected_accuracy(results: Sequence[ProblemResult], correct: dict[str, list[bool]]) -> float:
    """The strategy's own pick; failed problems count as wrong (honest denominators)."""
    if not results:
        return 0.0
    hits = sum(r.selected is not None and r.error is None and correct[r.id][r.selected] for r in results)
    return hits / len(results)


def by_level(results: Sequence[ProblemResult], correct: dict[str, list[bool]]) -> dict[str, dict[str, float]]:
    groups: dict[str, list[ProblemResult]] = defaultdict(list)
    for r in results:
        groups[str(r.problem.level) if r.problem.level is not None else "none"].append(r)
    return {
        level: {"n": len(rs), "accuracy": selected_accuracy(rs, correct)} for level, rs in sorted(groups.items())
    }


def budget_summary(results: Sequence[ProblemResult]) -> dict[str, float]:
    if not results:
        return {}
    fields = results[0].budget.to_dict().keys()
    return {f: sum(getattr(r.budget, f) for r in results) / len(results) for f in fields}


def run_metrics(results: Sequence[ProblemResult], reduction: str = "last", seeds: int = 8) -> dict[str, Any]:
    correct = correctness(results)
    return {
        "n_problems": len(results),
        "n_failed": sum(r.error is not None for r in results),
        "strategy": results[0].strategy if results else None,
        "accuracy": selected_accuracy(results, correct),
        "curves": {m: {str(k): v for k, v in c.items()} for m, c in curves(results, correct, reduction, seeds).items()},
        "by_level": by_level(results, correct),
        "mean_budget": budget_summary(results),
    }


def format_table(metrics: dict[str, Any]) -> str:
    """A short text table: one row per method, one column per N."""
    curves_ = metrics.get("curves", {})
    lines = [f"{metrics['n_problems']} problems ({metrics['n_failed']} failed), strategy "
             f"{metrics['strategy']}: accuracy {100 * metrics['accuracy']:.1f}%"]
    if curves_:
        ks = sorted({int(k) for c in curves_.values() for k in c})
        lines.append("method    " + "".join(f"{'@' + str(k):>8}" for k in ks))
        for method, c in curves_.items():
            label = "pass" if method == "pass" else {"majority": "maj", "naive": "naive", "weighted": "weighted"}[method]
            lines.append(f"{label:<10}" + "".join(f"{100 * c[str(k)]:>7.1f}%" if str(k) in c else " " * 8 for k in ks))
    return "\n".join(lines)
