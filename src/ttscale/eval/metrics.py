"""Accuracy of every selection method at every N, from the completions a run wrote.

Smaller N are estimated by subsampling the same completions with several seeds, so
one N=256 sampling run gives the whole curve; pass@k uses the unbiased estimator.
"""

from __future__ import annotations

import dataclasses
import random
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from math import comb
from typing import Any

from ttscale.config import OutputConfig, VerifierConfig
from ttscale.grading import correctness
from ttscale.grading.select import CONFIDENCE_SELECTIONS, reselect, select
from ttscale.types import SELECTIONS, ProblemResult, Reduction, Selection, as_reduction

METHODS = SELECTIONS


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


def _methods_for(results: Sequence[ProblemResult]) -> list[Selection]:
    """Majority always; the verifier picks where candidates were scored; the confidence picks where they
    carry token confidence (else each would only repeat majority)."""
    scored = any(c.step_scores for r in results for c in r.completions)
    confident = any(c.confidence is not None for r in results for c in r.completions)
    return [m for m in METHODS if m == "majority" or (scored if m not in CONFIDENCE_SELECTIONS else confident)]


@dataclass(frozen=True)
class Point:
    """One (method, N) point, kept per problem so difficulty bins and cross-validation can slice it.

    `correct` is each problem's expected correctness (a mean over subsample seeds, or
    pass@N's probability); `tokens` and `flops` its compute at this N. `seed_accuracy`
    holds one accuracy per subsample seed, for the spread.
    """

    method: str
    n: int
    correct: dict[str, float]
    tokens: dict[str, float]
    flops: dict[str, float]
    seed_accuracy: tuple[float, ...] = ()
    thinking: dict[str, float] = field(default_factory=dict)  # of `tokens`: inside reasoning models' thinking blocks

    def accuracy(self, ids: Iterable[str] | None = None) -> float:
        return _mean(self.correct, ids)

    def mean_tokens(self, ids: Iterable[str] | None = None) -> float:
        return _mean(self.tokens, ids)

    def mean_flops(self, ids: Iterable[str] | None = None) -> float:
        return _mean(self.flops, ids)

    def mean_thinking(self, ids: Iterable[str] | None = None) -> float:
        return _mean(self.thinking, ids) if self.thinking else 0.0

    @property
    def std(self) -> float:
        return statistics.pstdev(self.seed_accuracy) if len(self.seed_accuracy) > 1 else 0.0

    def interval(self, ids: Iterable[str] | None = None) -> tuple[float, float]:
        """95% bootstrap interval of the accuracy over problems: on a dozen problems a few points of difference
        is noise, and the interval says so."""
        keys = list(self.correct) if ids is None else list(ids)
        return bootstrap_interval([self.correct[k] for k in keys])


def bootstrap_interval(values: Sequence[float], level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean, resampling the values (one per problem) with replacement.

    Seeded, so a report is the same every time it is written; (0, 0) for no values.
    """
    import numpy as np

    if not values:
        return 0.0, 0.0
    v = np.asarray(values, dtype=float)
    draws = np.random.default_rng(seed).integers(0, len(v), size=(n_boot, len(v)))
    means = v[draws].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def _mean(values: dict[str, float], ids: Iterable[str] | None) -> float:
    keys = list(values) if ids is None else list(ids)
    return sum(values[k] for k in keys) / len(keys) if keys else 0.0


def _draw(rng: random.Random, n: int, k: int) -> list[int]:
    return sorted(rng.sample(range(n), k)) if k < n else list(range(n))


def subsampled_points(
    results: Sequence[ProblemResult],
    correct: dict[str, list[bool]],
    methods: dict[str, tuple[Selection, Reduction]],
    seeds: int,
) -> dict[str, list[Point]]:
    """method name -> Points at N = 1, 2, 4, ... for {name: (selection, reduction)}, plus "pass".

    Every method sees the same subsets (one RNG per seed). Compute at k of N samples is the
    run's budget scaled by k/N. Failed problems count as wrong at their recorded cost. A tree
    search's subset votes as its own pick did (`ProblemResult.distinct`: a repeat once), so at
    k = N a method's point is the run's own accuracy with that selection.
    """
    ok = [r for r in results if r.error is None and r.completions]
    if not ok:
        return {}
    n_max = min(len(r.completions) for r in ok)
    out: dict[str, list[Point]] = {m: [] for m in [*methods, "pass"]}
    for k in budgets(n_max):
        n_draws = 1 if all(len(r.completions) == k for r in ok) else seeds
        hits = {m: [[0.0] * len(results) for _ in range(n_draws)] for m in methods}
        for seed in range(n_draws):
            rng = random.Random(seed)
            for j, r in enumerate(results):
                if r.error is not None or not r.completions:
                    continue
                idx = _draw(rng, len(r.completions), k)
                subset = [r.completions[i] for i in idx]
                for m, (selection, reduction) in methods.items():
                    pick = select(subset, selection, reduction, r.distinct)
                    hits[m][seed][j] = float(pick is not None and correct[r.id][idx[pick]])
        tokens, flops, thinking = _scaled_budget(results, k)
        for m in methods:
            per_problem = {r.id: sum(h[j] for h in hits[m]) / n_draws for j, r in enumerate(results)}
            if k == 1:
                # Every method picks the lone sample: the exact expectation is the share of correct
                # samples (= pass@1), so no subsampling noise at N=1.
                per_problem = {r.id: sum(correct[r.id]) / len(r.completions) if r.error is None and r.completions
                               else 0.0 for r in results}
            per_seed = tuple(sum(h) / len(results) for h in hits[m])
            out[m].append(Point(m, k, per_problem, tokens, flops, per_seed, thinking))
        passed = {
            r.id: pass_at_k(len(r.completions), sum(correct[r.id]), min(k, len(r.completions)))
            if r.error is None and r.completions else 0.0
            for r in results
        }
        out["pass"].append(Point("pass", k, passed, tokens, flops, thinking=thinking))
    return out


def _scaled_budget(
    results: Sequence[ProblemResult], k: int
) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    scale = {r.id: k / len(r.completions) if r.completions else 1.0 for r in results}
    tokens = {r.id: r.budget.generated_tokens * scale[r.id] for r in results}
    flops = {r.id: r.budget.flops * scale[r.id] for r in results}
    thinking = {r.id: r.budget.thinking_tokens * scale[r.id] for r in results}
    return tokens, flops, thinking


def search_point(method: str, n: int, results: Sequence[ProblemResult], correct: dict[str, list[bool]]) -> Point:
    """A search run is one point: its own selected answer at its N and its whole budget."""
    hit = {
        r.id: float(r.error is None and r.selected is not None and correct[r.id][r.selected]) for r in results
    }
    return Point(
        method, n, hit, {r.id: float(r.budget.generated_tokens) for r in results}, {r.id: r.budget.flops for r in results},
        thinking={r.id: float(r.budget.thinking_tokens) for r in results},
    )


def repick_point(method: str, n: int, results: Sequence[ProblemResult], correct: dict[str, list[bool]],
                 selection: Selection, reduction: Reduction) -> Point:
    """A search run's candidates picked by `selection` instead of its own pick (grading.select.reselect),
    at the run's N and whole budget: the candidates cost what they cost whichever one is picked."""
    own = search_point(method, n, results, correct)
    hit = {}
    for r in results:
        pick = reselect(r, selection, reduction) if r.error is None else None
        hit[r.id] = float(pick is not None and correct[r.id][pick])
    return dataclasses.replace(own, correct=hit)


def curves(
    results: Sequence[ProblemResult], correct: dict[str, list[bool]], reduction: Reduction, seeds: int
) -> dict[str, dict[int, float]]:
    """method -> {k: accuracy} for every k up to the smallest candidate count of the run (failed problems left out)."""
    ok = [r for r in results if r.error is None and r.completions]
    points = subsampled_points(ok, correct, {m: (m, reduction) for m in _methods_for(ok)}, seeds)
    return {m: {p.n: p.accuracy() for p in ps} for m, ps in points.items()}


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


def run_metrics(results: Sequence[ProblemResult], reduction: str = VerifierConfig.reduction,
                seeds: int = OutputConfig.subsample_seeds) -> dict[str, Any]:
    correct = correctness(results)
    return {
        "n_problems": len(results),
        "n_failed": sum(r.error is not None for r in results),
        "strategy": results[0].strategy if results else None,
        "accuracy": selected_accuracy(results, correct),
        "curves": {m: {str(k): v for k, v in c.items()} for m, c in curves(results, correct, as_reduction(reduction), seeds).items()},
        "by_level": by_level(results, correct),
        "mean_budget": budget_summary(results),
    }


_SHORT = {"majority": "maj", "self_certainty": "selfcert", "confidence_weighted": "conf-wtd"}


def format_table(metrics: dict[str, Any]) -> str:
    """A short text table: one row per method, one column per N."""
    curves_ = metrics.get("curves", {})
    lines = [f"{metrics['n_problems']} problems ({metrics['n_failed']} failed), strategy "
             f"{metrics['strategy']}: accuracy {100 * metrics['accuracy']:.1f}%"]
    if curves_:
        ks = sorted({int(k) for c in curves_.values() for k in c})
        lines.append("method    " + "".join(f"{'@' + str(k):>8}" for k in ks))
        for method, c in curves_.items():
            label = _SHORT.get(method, method)
            lines.append(f"{label:<10}" + "".join(f"{100 * c[str(k)]:>7.1f}%" if str(k) in c else " " * 8 for k in ks))
    return "\n".join(lines)
