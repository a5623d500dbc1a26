"""Particle filtering (Puri et al. 2025): extend every particle a step, resample by PRM weight."""

from __future__ import annotations

import random
from collections.abc import Sequence

from ttscale.backends.base import Generator
from ttscale.search.base import SearchSettings
from ttscale.search.expand import Beam, Expander, Expansion, problem_seed, run_rounds, softmax, top
from ttscale.types import Problem, ProblemResult
from ttscale.verifiers.base import Verifier


class ParticlePolicy:
    """Completed particles are kept aside; the active ones are resampled with replacement."""

    def __init__(self, n: int, temperature: float, seed: int) -> None:
        self.n, self.temperature = n, temperature
        self.rng = random.Random(seed)
        self.completed: list[Beam] = []
        self.active: list[Beam] = []

    def initial(self) -> list[Expansion]:
        return [Expansion(None, self.n)]

    def step(self, children: list[Beam]) -> list[Expansion]:
        self.completed += [c for c in children if c.finished]
        self.active = [c for c in children if not c.finished]
        if not self.active:
            return []
        weights = softmax([b.value for b in self.active], self.temperature)
        picks = self.rng.choices(range(len(self.active)), weights=weights, k=len(self.active))
        # A particle drawn c times gets c children from one prompt, so they are c distinct samples.
        return [Expansion(self.active[i], picks.count(i)) for i in sorted(set(picks))]

    def finish(self) -> list[Beam]:
        return self.completed + top(self.active, self.n - len(self.completed))


class ParticleFiltering:
    name = "particle_filtering"
    needs_verifier = True

    def search(
        self,
        problems: Sequence[Problem],
        prompts: Sequence[str],
        generator: Generator,
        verifier: Verifier | None,
        settings: SearchSettings,
    ) -> list[ProblemResult]:
        policies = [
            ParticlePolicy(settings.n, settings.particle_temperature, problem_seed(settings.seed + 1, p))
            for p in problems
        ]
        return run_rounds(self.name, problems, prompts, Expander(generator, verifier, settings), policies)
