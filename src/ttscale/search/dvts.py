"""DVTS (diverse verifier tree search): N/M independent subtrees, each expanded greedily by the PRM."""

from __future__ import annotations

from ttscale.search.base import SearchSettings
from ttscale.search.expand import Beam, Expansion, RoundStrategy, top
from ttscale.types import Problem


class DVTSPolicy:
    """One result per subtree; a subtree cut off at max depth returns its best partial, unfinished."""

    def __init__(self, n: int, beam_width: int) -> None:
        self.width = min(beam_width, n)
        self.n_trees = max(1, n // self.width)
        self.best: dict[int, Beam] = {}
        self.done: set[int] = set()

    def initial(self) -> list[Expansion]:
        return [Expansion(None, self.width, group=g) for g in range(self.n_trees)]

    def step(self, children: list[Beam]) -> list[Expansion]:
        expansions = []
        for g in range(self.n_trees):
            mine = [c for c in children if c.group == g]
            if g in self.done or not mine:
                continue
            (best,) = top(mine, 1)
            self.best[g] = best
            if best.finished:
                self.done.add(g)
            else:
                expansions.append(Expansion(best, self.width, group=g))
        return expansions

    def finish(self) -> list[Beam]:
        return [self.best[g] for g in range(self.n_trees) if g in self.best]


class DVTS(RoundStrategy):
    name = "dvts"

    def policy(self, problem: Problem, settings: SearchSettings) -> DVTSPolicy:
        return DVTSPolicy(settings.n, settings.beam_width)
