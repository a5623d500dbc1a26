"""DVTS (diverse verifier tree search): N/M independent subtrees, each expanded greedily by the PRM."""

from __future__ import annotations

from ttscale.search.base import SearchSettings
from ttscale.search.beam import check_beam_width
from ttscale.search.records import Beam, Expansion, top
from ttscale.search.rounds import RoundStrategy
from ttscale.types import Problem


class DVTSPolicy:
    """Each subtree returns all M candidates of its last expansion, N in all (search-and-learn's DVTS).

    A subtree ends when its best candidate finishes; the round at `max_iterations` runs the
    subtrees' best beams to the end of the solution, and a subtree cut off by a token cap
    returns its last candidates, unfinished. Votes and weighted picks then run over N.
    Subtrees are independent: `search.filter_duplicates` compares a subtree's children with
    each other only (each request carries its subtree as `group`), so a subtree may return
    fewer than M candidates, never because another subtree wrote the same text.
    """

    def __init__(self, n: int, beam_width: int, max_iterations: int) -> None:
        self.width = min(beam_width, n)
        self.n_trees = max(1, n // self.width)
        self.last: dict[int, list[Beam]] = {}
        self.done: set[int] = set()
        self.rounds_left = max_iterations

    def initial(self) -> list[Expansion]:
        self.rounds_left -= 1
        return [Expansion(None, self.width, group=g, whole=self.rounds_left == 0) for g in range(self.n_trees)]

    def step(self, children: list[Beam]) -> list[Expansion]:
        self.rounds_left -= 1
        expansions = []
        for g in range(self.n_trees):
            mine = [c for c in children if c.group == g]
            if g in self.done or not mine:
                continue
            self.last[g] = mine
            (best,) = top(mine, 1)
            if best.finished:
                self.done.add(g)
            else:
                expansions.append(Expansion(best, self.width, group=g, whole=self.rounds_left == 0))
        return expansions

    def finish(self) -> list[Beam]:
        return [b for g in range(self.n_trees) for b in top(self.last.get(g, []), self.width)]


class DVTS(RoundStrategy):
    name = "dvts"
    needs_verifier = True

    def validate(self, settings: SearchSettings) -> None:
        check_beam_width(self.name, settings)

    def policy(self, problem: Problem, settings: SearchSettings) -> DVTSPolicy:
        return DVTSPolicy(settings.n, settings.beam_width, settings.max_iterations)
