"""Adaptive-Consistency: self-consistency that stops sampling a problem once its vote is settled.

Samples come in waves of `search.adaptive.wave` up to `search.n`; after each wave the stopping rule
reads the answers so far, grouped by canonical form as majority voting groups them
(grading.vote):
- window (ESC, Li et al. 2024): every answer of the last window (the wave) is the same;
- beta (Aggarwal et al. 2023): with the top two answers' counts a >= b, the posterior
  Beta(a + 1, b + 1) probability that the leader's share beats the runner-up's is at least
  `search.adaptive.stop_confidence`;
- dirichlet: the same over every answer seen (Dirichlet(counts + 1), one more category for
  answers not seen yet), estimated by a fixed-seed Monte Carlo.
The paper checks after every sample; checking per wave costs at most wave - 1 samples more
and keeps a round's samples in one generator call. Every sample drawn is kept and votes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import replace

from ttscale.backends.base import Generator
from ttscale.grading import vote
from ttscale.search.base import BaseStrategy, SearchSettings
from ttscale.search.records import Beam, Expansion
from ttscale.search.waves import Verdict, run_waves
from ttscale.types import Problem, ProblemResult
from ttscale.verifiers.base import Verifier

DIRICHLET_DRAWS = 4000


def answer_counts(answers: Sequence[str | None]) -> list[int]:
    """Sizes of the answer groups, largest first; unanswered samples do not vote."""
    return [g.count for g in vote(answers).groups if g.answer is not None]


def window_agrees(answers: Sequence[str | None], window: int) -> bool:
    """ESC's rule: the last `window` answers exist and are all one answer."""
    last = answers[-window:]
    return len(last) == window and None not in last and len(answer_counts(last)) == 1


def beta_leader_probability(counts: Sequence[int]) -> float:
    """P(p1 > p2) for p1 ~ Beta(a + 1, b + 1): exactly P(Binomial(a + b + 1, 1/2) <= a)."""
    if not counts:
        return 0.0
    a, b = counts[0], counts[1] if len(counts) > 1 else 0
    m = a + b + 1
    return sum(math.comb(m, j) for j in range(a + 1)) / 2**m


def dirichlet_leader_probability(counts: Sequence[int], draws: int = DIRICHLET_DRAWS, seed: int = 0) -> float:
    """P(the leader's share is the largest) under Dirichlet(counts + 1, 1); the last category is the unseen."""
    if not counts:
        return 0.0
    rng = random.Random(seed)  # fixed: the rule is a function of the counts alone
    alphas = [c + 1.0 for c in counts] + [1.0]
    wins = 0
    for _ in range(draws):
        g = [rng.gammavariate(a, 1.0) for a in alphas]
        wins += g[0] >= max(g[1:])
    return wins / draws


def should_stop(answers: Sequence[str | None], rule: str, confidence: float, window: int) -> bool:
    if rule == "window":
        return window_agrees(answers, window)
    counts = answer_counts(answers)
    p = beta_leader_probability(counts) if rule == "beta" else dirichlet_leader_probability(counts)
    return p >= confidence


class AdaptivePolicy:
    """One problem: waves of whole samples until the rule fires or N were drawn."""

    def __init__(self, settings: SearchSettings) -> None:
        self.s = settings
        self.beams: list[Beam] = []
        self.answers: list[str | None] = []
        self.requested = 0

    def _wave(self) -> list[Expansion]:
        k = min(self.s.adaptive.wave, self.s.n - self.requested)
        self.requested += k
        return [Expansion(None, k, whole=True)]

    def initial(self) -> list[Expansion]:
        return self._wave()

    def step(self, children: list[Beam]) -> list[Expansion]:
        self.beams += children
        self.answers += [c.answer for c in children]
        if self.requested >= self.s.n or should_stop(self.answers, self.s.adaptive.stop_rule, self.s.adaptive.stop_confidence,
                                                     self.s.adaptive.wave):
            return []
        return self._wave()

    def verdict(self) -> Verdict:
        result = vote(self.answers)
        return Verdict(tuple(self.beams), result.members[0] if result.members else (0 if self.beams else None))


class AdaptiveConsistency(BaseStrategy):
    name = "adaptive_consistency"
    needs_verifier = False
    step_wise = False
    fixed_n = False  # the point is to stop before N once the vote is settled

    def max_expansions(self, settings: SearchSettings) -> int:
        """Whole samples, one generator request each; waves roll no lookahead (search/waves.py)."""
        return settings.n

    def search(self, problems: Sequence[Problem], prompts: Sequence[str], generator: Generator,
               verifier: Verifier | None, settings: SearchSettings) -> list[ProblemResult]:
        # Self-consistency counts repeated answers, so identical samples are never filtered out.
        s = replace(settings, filter_duplicates=False)
        return run_waves(self.name, problems, prompts, generator, verifier, s, [AdaptivePolicy(s) for _ in problems])
