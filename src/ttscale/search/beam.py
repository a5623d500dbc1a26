"""PRM beam search (REFERENCE.md): keep the top N/M active beams, expand each by M."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ttscale.backends.base import Generator
from ttscale.search.base import SearchSettings
from ttscale.search.expand import Beam, Expander, Expansion, run_rounds, top
from ttscale.types import Problem, ProblemResult
from ttscale.verifiers.base import Verifier


class BeamPolicy:
    """Completed beams leave the active set; exactly N are returned, completed ones first."""

    def __init__(self, n: int, beam_width: int) -> None:
        self.n, self.keep = n, max(1, math.ceil(n / beam_width))
        self.width = beam_width
        self.completed: list[Beam] = []
        self.active: list[Beam] = []

    def initial(self) -> list[Expansion]:
        return [Expansion(None, self.n)]

    def step(self, children: list[Beam]) -> list[Expansion]:
        self.completed += [c for c in children if c.finished]
        self.active = [c for c in children if not c.finished]
        if len(self.completed) >= self.n or not self.active:
            return []
        return [Expansion(b, self.width) for b in top(self.active, self.keep)]

    def finish(self) -> list[Beam]:
        # Never more than N (a bug users hit in the reference toolkit), never fewer.
        done = top(self.completed, self.n)
        return done + top(self.active, self.n - len(done))


class BeamSearch:
    name = "beam_search"
    needs_verifier = True

    def search(
        self,
        problems: Sequence[Problem],
        prompts: Sequence[str],
        generator: Generator,
        verifier: Verifier | None,
        settings: SearchSettings,
    ) -> list[ProblemResult]:
        policies = [BeamPolicy(settings.n, settings.beam_width) for _ in problems]
        return run_rounds(self.name, problems, prompts, Expander(generator, verifier, settings), policies)
