"""The Strategy protocol, the settings a strategy reads, and the strategy registry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ttscale.backends.base import Generator
from ttscale.config import RunConfig
from ttscale.registry import Registry
from ttscale.types import ProblemResult, Problem
from ttscale.verifiers.base import Verifier


@dataclass(frozen=True)
class SearchSettings:
    """Everything a strategy reads, resolved once from the recipe (no config threaded through)."""

    n: int = 16
    beam_width: int = 4
    max_iterations: int = 40
    lookahead: int = 0
    step_delimiter: str = "\n\n"
    end_markers: tuple[str, ...] = ()
    selection: str = "weighted"
    reduction: str = "last"
    filter_duplicates: bool = False
    particle_temperature: float = 1.0
    resample_ess: float = 1.0
    temperature: float = 0.8
    top_p: float = 1.0
    max_new_tokens: int = 2048
    max_step_tokens: int = 256
    seed: int = 0
    max_tokens_per_problem: int | None = None
    max_flops_per_problem: float | None = None
    save_trees: bool = False
    policy: str | None = None
    # Issue 20: token logprobs and the adaptive strategies (SearchConfig's help says what each means).
    logprobs: int = 0
    save_logprobs: bool = False
    wave: int = 4
    stop_rule: str = "beta"
    stop_confidence: float = 0.95
    deepconf_mode: str = "online"
    warmup: int = 4
    eta: float = 90.0
    confidence_window: int = 16
    confidence_measure: str = "lowest_group"
    chunk_tokens: int = 16

    @classmethod
    def from_config(cls, cfg: RunConfig, end_markers: tuple[str, ...]) -> SearchSettings:
        s, p = cfg.search, cfg.sampling
        return cls(
            n=s.n,
            beam_width=s.beam_width,
            max_iterations=s.max_iterations,
            lookahead=s.lookahead,
            step_delimiter=s.step_delimiter,
            end_markers=end_markers,
            selection=s.selection,
            reduction=cfg.verifier.reduction,
            filter_duplicates=s.filter_duplicates,
            particle_temperature=s.particle_temperature,
            resample_ess=s.resample_ess,
            temperature=p.temperature,
            top_p=p.top_p,
            max_new_tokens=p.max_new_tokens,
            max_step_tokens=p.max_step_tokens,
            seed=p.seed,
            max_tokens_per_problem=s.max_tokens_per_problem,
            max_flops_per_problem=s.max_flops_per_problem,
            save_trees=cfg.output.save_trees,
            policy=cfg.search.policy,
            logprobs=p.logprobs,
            save_logprobs=cfg.output.save_logprobs,
            **{k: getattr(s, k) for k in ("wave", "stop_rule", "stop_confidence", "deepconf_mode", "warmup", "eta",
                                          "confidence_window", "confidence_measure", "chunk_tokens")},
        )


class Strategy(Protocol):
    """Searches a batch of problems together; returns one result per problem, in order."""

    name: str
    needs_verifier: bool
    # A strategy may set `fixed_n = False`: it returns at most N candidates, stopping early (issue 20).

    def search(self, problems: Sequence[Problem], prompts: Sequence[str], generator: Generator,
               verifier: Verifier | None, settings: SearchSettings) -> list[ProblemResult]: ...


STRATEGIES: Registry[Strategy] = Registry("strategy")
STRATEGIES.register("best_of_n", "ttscale.search.best_of_n:BestOfN")
STRATEGIES.register("beam_search", "ttscale.search.beam:BeamSearch")
STRATEGIES.register("dvts", "ttscale.search.dvts:DVTS")
STRATEGIES.register("particle_filtering", "ttscale.search.particle:ParticleFiltering")
STRATEGIES.register("compute_optimal", "ttscale.search.compute_optimal:ComputeOptimal")
STRATEGIES.register("adaptive_consistency", "ttscale.search.adaptive:AdaptiveConsistency")
STRATEGIES.register("deepconf", "ttscale.search.deepconf:DeepConf")


def build_strategy(name: str) -> Strategy:
    return STRATEGIES.get(name)()
