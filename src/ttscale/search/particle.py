"""Particle filtering (Puri et al. 2025; its_hub's particle_gibbs): extend every particle a step,
resample the population by PRM weight."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from ttscale.search.base import SearchSettings
from ttscale.search.records import Beam, Expansion, softmax
from ttscale.search.rounds import RoundStrategy
from ttscale.search.seeds import problem_seed
from ttscale.types import Problem

_EPS = 1e-6


def particle_weights(values: Sequence[float], temperature: float) -> list[float]:
    """softmax(logit(p) / T) of the PRM probabilities p, as its_hub weighs particles.

    A softmax over raw p in [0, 1] caps any ratio at e^(1/T) (0.99 against 0.5 is 1.6:1 at
    T = 1) and makes resampling near uniform; through the logit it is 99:1.
    """
    logits = [math.log(p / (1 - p)) for p in (min(max(v, _EPS), 1 - _EPS) for v in values)]
    return softmax(logits, temperature)


def effective_sample_size(weights: Sequence[float]) -> float:
    return 1.0 / sum(w * w for w in weights)


class ParticlePolicy:
    """N particles; finished ones stay in the population that is resampled, and are kept, not extended.

    Each round extends the unfinished particles one step (a particle drawn c times gets c
    children from one request: c distinct samples), then resamples all N with replacement
    by weight when the effective sample size is at most `search.particle.resample_ess` x N (1.0: every
    round). The final pick is the run's `search.selection`; `naive` with `verifier.reduction:
    last` is its_hub's highest-weight particle.
    """

    def __init__(self, n: int, temperature: float, resample_ess: float, seed: int) -> None:
        self.n, self.temperature, self.resample_ess = n, temperature, resample_ess
        self.rng = random.Random(seed)
        self.population: list[Beam] = []

    def initial(self) -> list[Expansion]:
        return [Expansion(None, self.n)]

    def step(self, children: list[Beam]) -> list[Expansion]:
        population = [b for b in self.population if b.finished] + children
        if not population:
            return []
        weights = particle_weights([b.value for b in population], self.temperature)
        if effective_sample_size(weights) <= self.resample_ess * len(population) + 1e-9:
            population = self.rng.choices(population, weights=weights, k=self.n)
        self.population = population
        draws: dict[int, list[Beam]] = {}
        for b in population:
            if not b.finished:
                draws.setdefault(id(b), []).append(b)
        return [Expansion(same[0], len(same)) for same in draws.values()]

    def finish(self) -> list[Beam]:
        return sorted(self.population, key=lambda b: -b.value)


class ParticleFiltering(RoundStrategy):
    name = "particle_filtering"
    needs_verifier = True

    def policy(self, problem: Problem, settings: SearchSettings) -> ParticlePolicy:
        return ParticlePolicy(settings.n, settings.particle.temperature, settings.particle.resample_ess,
                              problem_seed(settings.seed + 1, problem))
