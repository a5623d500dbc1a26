"""Best-of-N: N whole solutions per problem, scored once; majority / naive / weighted pick."""

from __future__ import annotations

from dataclasses import replace

from ttscale.search.base import SearchSettings
from ttscale.search.records import Beam, Expansion
from ttscale.search.rounds import RoundStrategy
from ttscale.types import Problem


class BestOfNPolicy:
    """One round of N whole samples. Under a cap they share it (search/caps.py): each runs to at most
    its equal share of the tokens or FLOPs left."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.samples: list[Beam] = []

    def initial(self) -> list[Expansion]:
        return [Expansion(None, self.n, whole=True)]

    def step(self, children: list[Beam]) -> list[Expansion]:
        self.samples = children
        return []

    def finish(self) -> list[Beam]:
        return self.samples


class BestOfN(RoundStrategy):
    name = "best_of_n"
    needs_verifier = False
    step_wise = False
    # Independent samples: a repeated text is a repeated vote (self-consistency), never a duplicate to drop.
    distinct = False

    def policy(self, problem: Problem, settings: SearchSettings) -> BestOfNPolicy:
        return BestOfNPolicy(settings.n)

    def settings_for(self, settings: SearchSettings) -> SearchSettings:
        return replace(settings, filter_duplicates=False)

    def max_expansions(self, settings: SearchSettings) -> int:
        """One round of N samples (lookahead would roll only a sample cut short)."""
        return settings.n * (1 + settings.lookahead)
