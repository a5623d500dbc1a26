"""Difficulty bins (Snell et al. 2024, sec. 3.2): five quantiles of a per-problem score.

`oracle` bins use pass@1 against the gold answer; `model` bins use the mean verifier
score over the sampled solutions, so they need no gold and can bin new problems
(the compute_optimal strategy does, with the edges saved in policy.json).
Bin 1 is the easiest (highest score), bin 5 the hardest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ttscale.data.policy import assign_bin
from ttscale.grading.select import mean_solution_score
from ttscale.types import ProblemResult, Reduction

N_BINS = 5


@dataclass(frozen=True)
class Binning:
    kind: str  # oracle | model
    edges: tuple[float, ...]  # ascending score quantiles between bins
    scores: dict[str, float]  # the per-problem score the bins cut
    bins: dict[str, int]  # problem id -> 1 (easiest) .. n_bins (hardest)

    @property
    def n_bins(self) -> int:
        return len(self.edges) + 1

    def counts(self) -> dict[int, int]:
        return {b: sum(v == b for v in self.bins.values()) for b in range(1, self.n_bins + 1)}


def quantile_edges(values: Sequence[float], n_bins: int = N_BINS) -> tuple[float, ...]:
    return tuple(float(q) for q in np.quantile(np.asarray(values, dtype=float), np.arange(1, n_bins) / n_bins))


def make_binning(kind: str, scores: dict[str, float], n_bins: int = N_BINS) -> Binning:
    edges = quantile_edges(list(scores.values()), n_bins) if scores else ()
    return Binning(kind, edges, scores, {pid: assign_bin(s, edges) for pid, s in scores.items()})


def oracle_scores(results: Sequence[ProblemResult], correct: dict[str, list[bool]]) -> dict[str, float]:
    """pass@1 per problem: the fraction of its samples that match the gold (failed problems: 0)."""
    return {r.id: sum(correct[r.id]) / len(r.completions) if r.completions else 0.0 for r in results}


def model_scores(results: Sequence[ProblemResult], reduction: Reduction) -> dict[str, float]:
    """Mean verifier score per problem over its samples; no gold needed."""
    return {r.id: mean_solution_score(r.completions, reduction) for r in results}
