"""Compute-optimal scaling (Snell et al. 2024): bin each problem by difficulty, run its bin's best strategy.

The bin is model-based (no gold): a few best-of-N probe samples scored by the run's
verifier, mean score cut at the edges `ttscale evaluate` saved in policy.json. The probe's
compute is charged to the problem, so the budget stays honest; under a per-problem cap the
probe and the chosen strategy split it by their sample counts (probe_n : N), so together
they never pass it and each problem's share depends on nothing else in its batch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ttscale.backends.base import Generator
from ttscale.data.policy import Policy
from ttscale.grading.select import mean_solution_score, reselect
from ttscale.search.base import BaseStrategy, SearchSettings, build_strategy
from ttscale.search.best_of_n import BestOfN
from ttscale.search.seeds import request_seed
from ttscale.types import Problem, ProblemResult
from ttscale.verifiers.base import Verifier


class ComputeOptimal(BaseStrategy):
    name = "compute_optimal"
    needs_verifier = True  # the probe's mean verifier score is what bins a problem
    fixed_n = False  # a bin may be routed to a strategy that stops early

    def validate(self, settings: SearchSettings) -> None:
        """search.policy must name a readable policy.json, and every strategy its table may route to
        must accept the settings it would run under."""
        for entry in Policy.load(settings.policy).for_budget(settings.n).values():
            build_strategy(entry.strategy).validate(settings.updated(entry.settings))

    def max_expansions(self, settings: SearchSettings) -> int:
        """The probe's samples and the most any strategy of the budget's table may ask for."""
        policy = Policy.load(settings.policy)
        chosen = max(build_strategy(e.strategy).max_expansions(settings.updated(e.settings))
                     for e in policy.for_budget(settings.n).values())
        return BestOfN().max_expansions(replace(settings, n=policy.probe_n)) + chosen

    def search(self, problems: Sequence[Problem], prompts: Sequence[str], generator: Generator,
               verifier: Verifier | None, settings: SearchSettings) -> list[ProblemResult]:
        policy = Policy.load(settings.policy)
        # Its own seed: the probe's samples must not reappear as the first samples of the chosen strategy.
        probe_caps, chosen_caps = split_caps(settings, policy.probe_n / (policy.probe_n + settings.n))
        probe = replace(settings, n=policy.probe_n, reduction=policy.reduction, save_trees=False,
                        seed=request_seed(settings.seed, "compute_optimal:probe"), **probe_caps)
        probes = BestOfN().search(problems, prompts, generator, verifier, probe)
        by_bin: dict[int, list[int]] = defaultdict(list)
        for i, r in enumerate(probes):
            by_bin[policy.bin_of(mean_solution_score(r.completions, policy.reduction))].append(i)
        results: list[ProblemResult | None] = [None] * len(problems)
        for b, idx in sorted(by_bin.items()):
            entry = policy.choose(settings.n, b)
            chosen = build_strategy(entry.strategy)
            chosen_settings = settings.updated({**entry.settings, **chosen_caps})
            out = chosen.search([problems[i] for i in idx], [prompts[i] for i in idx], generator, verifier,
                                chosen_settings)
            for i, r in zip(idx, out):
                r.budget.add(probes[i].budget)
                if entry.pick is not None and r.error is None:
                    r = replace(r, selected=reselect(r, entry.pick, chosen_settings.reduction))
                results[i] = replace(r, strategy=self.name)
        return results  # type: ignore[return-value]


def split_caps(settings: SearchSettings, share: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """The per-problem caps as (the probe's `share` of them, the rest): fields for `replace`, none when uncapped."""
    probe: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    if settings.max_tokens_per_problem is not None:
        probe["max_tokens_per_problem"] = int(settings.max_tokens_per_problem * share)
        rest["max_tokens_per_problem"] = settings.max_tokens_per_problem - probe["max_tokens_per_problem"]
    if settings.max_flops_per_problem is not None:
        probe["max_flops_per_problem"] = settings.max_flops_per_problem * share
        rest["max_flops_per_problem"] = settings.max_flops_per_problem - probe["max_flops_per_problem"]
    return probe, rest
