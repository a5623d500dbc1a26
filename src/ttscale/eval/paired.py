"""Paired differences between methods: the same problems, one difference per problem.

Two methods' unpaired 95% intervals can overlap while the methods differ clearly: most of each
interval's width is problem difficulty, which both methods share. Resampling the per-problem
difference instead removes it (the paired bootstrap of Efron & Tibshirani 1993, ch. 16; the usual
test in NLP, Koehn 2004), so the comparison is only as wide as the methods' disagreement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

from ttscale.eval.metrics import bootstrap_interval
from ttscale.eval.records import Curve


@dataclass(frozen=True)
class PairedDifference:
    """Method `a` minus method `b` at budget N over the problems both answered."""

    n: int
    a: str
    b: str
    n_problems: int
    difference: float  # mean of a - b, in accuracy (0..1)
    ci: tuple[float, float]  # 95% bootstrap interval of that mean

    @property
    def separated(self) -> bool:
        return self.ci[0] > 0 or self.ci[1] < 0


def paired_differences(curves: Sequence[Curve]) -> list[PairedDifference]:
    """Every pair of selectable methods (not the pass@N bound) at each N they share, over the problems
    both have; the more accurate method comes first in each pair."""
    out = []
    for n in sorted({p.n for c in curves if c.kind != "pass" for p in c.points}):
        at = [(c.method, p) for c in curves if c.kind != "pass" for p in c.points if p.n == n]
        for (ma, pa), (mb, pb) in combinations(at, 2):
            shared = [k for k in pa.correct if k in pb.correct]
            if not shared:
                continue
            diffs = [pa.correct[k] - pb.correct[k] for k in shared]
            mean = sum(diffs) / len(diffs)
            if mean < 0:
                (ma, mb), diffs, mean = (mb, ma), [-d for d in diffs], -mean
            out.append(PairedDifference(n, ma, mb, len(shared), mean, bootstrap_interval(diffs)))
    return out
