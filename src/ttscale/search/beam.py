"""PRM beam search (REFERENCE.md): keep the top N/M active beams, expand each by M."""

from __future__ import annotations

from ttscale.search.base import SearchSettings
from ttscale.search.beams import Beam, CompletionPool, Expansion, top
from ttscale.search.rounds import RoundStrategy
from ttscale.types import Problem


class BeamPolicy(CompletionPool):
    """Keep the top N/M active beams by score and grow N children from them; stop once N are complete.

    As in search-and-learn, the active set is topped back up to N every round: when fewer
    than N/M beams are left, each gets more than M children. The round at `max_iterations`
    runs the surviving beams to the end of the solution (no stop at the step delimiter), so
    a search cut at the depth limit still returns answers.
    """

    def __init__(self, n: int, beam_width: int, max_iterations: int) -> None:
        super().__init__(n)
        self.keep, self.width = n // beam_width, beam_width
        self.rounds_left = max_iterations

    def initial(self) -> list[Expansion]:
        return [Expansion(None, self.n, whole=self._last_round())]

    def step(self, children: list[Beam]) -> list[Expansion]:
        self.absorb(children)
        if len(self.completed) >= self.n or not self.active:
            return []
        whole = self._last_round()
        kept = top(self.active, self.keep)
        share, extra = divmod(self.n, len(kept))
        return [Expansion(b, share + (i < extra), whole=whole) for i, b in enumerate(kept)]

    def _last_round(self) -> bool:
        self.rounds_left -= 1
        return self.rounds_left == 0


class BeamSearch(RoundStrategy):
    name = "beam_search"

    def policy(self, problem: Problem, settings: SearchSettings) -> BeamPolicy:
        return BeamPolicy(settings.n, settings.beam_width, settings.max_iterations)
