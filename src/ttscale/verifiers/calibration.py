"""A verifier whose step scores are mapped to the chance that a solution scored so is right.

Weighted best-of-N sums scores per answer (Snell et al. 2024, section 5; Beeching, Tunstall & Rush
2024 sum raw PRM scores), which counts the expected right votes only when a score is the chance its
candidate is right. A verifier's raw scores need not be: a rule checker's "cannot judge" level (0.5)
is right far less often than half the time, and a PRM's scores depend on its training data. The map
here (`verifier.calibration`, fitted by `ttscale calibrate` on graded runs) is piecewise linear
between knots `[score, chance]` with the chance non-decreasing, so it never reorders two steps:
beam search, DVTS and the naive pick rank as before (scores the map makes equal tie, broken by order
as any tie is). What reads a score's size changes with it: the weighted vote's sums, particle
filtering's resampling weights (logits of the scores) and MCTS's backed-up values.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from typing import Any

from ttscale.types import Problem


def calibrated(score: float, knots: Sequence[Sequence[float]]) -> float:
    """`score` through the map: the chance at a knot's score, linear between knots, the end chances beyond them."""
    return _interpolate(score, [k[0] for k in knots], knots)


def _interpolate(score: float, xs: Sequence[float], knots: Sequence[Sequence[float]]) -> float:
    i = bisect_right(xs, score)
    if i == 0:
        return float(knots[0][1])
    if i == len(knots):
        return float(knots[-1][1])
    (x0, y0), (x1, y1) = knots[i - 1], knots[i]
    return float(y0 + (y1 - y0) * (score - x0) / (x1 - x0))


class CalibratedVerifier:
    """`inner` with every step score passed through `knots`; everything else (name, parameters, token
    counts, what it reads) is the inner verifier's."""

    def __init__(self, inner: Any, knots: Sequence[Sequence[float]]) -> None:
        self.inner, self.knots = inner, [tuple(k) for k in knots]
        self._xs = [k[0] for k in self.knots]  # every step of every round is mapped: the knots' scores once

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes this wrapper lacks; `inner` itself is set in __init__.
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _map(self, rows: list[list[float]]) -> list[list[float]]:
        return [[_interpolate(s, self._xs, self.knots) for s in row] for row in rows]

    def score(self, problems: Sequence[Problem], steps: Sequence[Sequence[str]]) -> list[list[float]]:
        return self._map(self.inner.score(problems, steps))

    def score_logprobs(self, problems: Sequence[Problem], steps: Sequence[Sequence[str]], rows: Any) -> list[list[float]]:
        return self._map(self.inner.score_logprobs(problems, steps, rows))
