"""Particle filtering (Puri et al. 2025): extend every particle a step, resample by PRM weight."""

from __future__ import annotations

import random

from ttscale.search.base import SearchSettings
from ttscale.search.expand import Beam, CompletionPool, Expansion, RoundStrategy, problem_seed, softmax
from ttscale.types import Problem


class ParticlePolicy(CompletionPool):
    """Completed particles are kept aside; the active ones are resampled with replacement."""

    def __init__(self, n: int, temperature: float, seed: int) -> None:
        super().__init__(n)
        self.temperature, self.rng = temperature, random.Random(seed)

    def step(self, children: list[Beam]) -> list[Expansion]:
        self.absorb(children)
        if not self.active:
            return []
        weights = softmax([b.value for b in self.active], self.temperature)
        picks = self.rng.choices(range(len(self.active)), weights=weights, k=len(self.active))
        # A particle drawn c times gets c children from one prompt, so they are c distinct samples.
        return [Expansion(self.active[i], picks.count(i)) for i in sorted(set(picks))]


class ParticleFiltering(RoundStrategy):
    name = "particle_filtering"

    def policy(self, problem: Problem, settings: SearchSettings) -> ParticlePolicy:
        return ParticlePolicy(settings.n, settings.particle_temperature, problem_seed(settings.seed + 1, problem))
