"""PRM beam search (REFERENCE.md): keep the top N/M active beams, expand each by M."""

from __future__ import annotations

import math

from ttscale.search.base import SearchSettings
from ttscale.search.expand import Beam, CompletionPool, Expansion, RoundStrategy, top
from ttscale.types import Problem


class BeamPolicy(CompletionPool):
    """Keep the top N/M active beams by score and expand each by M; stop once N are complete."""

    def __init__(self, n: int, beam_width: int) -> None:
        super().__init__(n)
        self.keep, self.width = max(1, math.ceil(n / beam_width)), beam_width

    def step(self, children: list[Beam]) -> list[Expansion]:
        self.absorb(children)
        if len(self.completed) >= self.n or not self.active:
            return []
        return [Expansion(b, self.width) for b in top(self.active, self.keep)]


class BeamSearch(RoundStrategy):
    name = "beam_search"

    def policy(self, problem: Problem, settings: SearchSettings) -> BeamPolicy:
        return BeamPolicy(settings.n, settings.beam_width)
