"""The Strategy protocol, the settings a strategy reads, and the strategy registry."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

from ttscale.backends.base import Generator
from ttscale.config import OutputConfig, RunConfig, SamplingConfig, SearchConfig, ThinkingConfig, VerifierConfig
from ttscale.registry import Registry
from ttscale.types import Problem, ProblemResult
from ttscale.verifiers.base import Verifier

# Run-level settings that no strategy reads: the runner batches problems and picks the strategy.
_RUN_LEVEL = {"strategy", "problems_per_batch"}
# What a strategy reads from outside the search and sampling sections, with where it comes from.
_EXTRA = {
    "reduction": ("verifier", "reduction"),
    "save_trees": ("output", "save_trees"),
    "save_logprobs": ("output", "save_logprobs"),
}


def _settings_fields() -> list[tuple[str, object, object]]:
    """Every search and sampling field (same name, type and default: one truth per setting, issue 17),
    the extras, and the prompt format's end markers."""
    out = []
    sections = {"search": SearchConfig, "sampling": SamplingConfig, "verifier": VerifierConfig, "output": OutputConfig}
    for cls in (SearchConfig, SamplingConfig):
        out += [(f.name, f.type, _same_default(f)) for f in dataclasses.fields(cls) if f.name not in _RUN_LEVEL]
    for name, (section, key) in _EXTRA.items():
        f = next(f for f in dataclasses.fields(sections[section]) if f.name == key)
        out.append((name, f.type, _same_default(f)))
    out.append(("end_markers", "tuple[str, ...]", dataclasses.field(default=())))
    return out


def _same_default(f: dataclasses.Field) -> object:
    if f.default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=f.default_factory)
    return dataclasses.field(default=f.default)


def _from_config(cls: type, cfg: RunConfig, end_markers: tuple[str, ...],
                 thinking: ThinkingConfig | None = None) -> SearchSettings:
    """`thinking`: the recipe's thinking settings with their markers resolved for the model (data/prompts.py)."""
    values = {f.name: getattr(section, f.name) for section in (cfg.search, cfg.sampling)
              for f in dataclasses.fields(section) if f.name not in _RUN_LEVEL}
    if thinking is not None:
        values["thinking"] = thinking
    values.update({name: getattr(getattr(cfg, section), key) for name, (section, key) in _EXTRA.items()})
    return cls(**values, end_markers=end_markers)


# Everything a strategy reads, resolved once from the recipe (no config threaded through). Built from
# the config's own fields, so a new search or sampling setting reaches every strategy by being added
# to config.py alone, with its default and help text there.
SearchSettings = dataclasses.make_dataclass(
    "SearchSettings", _settings_fields(), frozen=True,
    namespace={"from_config": classmethod(_from_config), "__module__": __name__},
)


class Strategy(Protocol):
    """Searches a batch of problems together; returns one result per problem, in order."""

    name: str
    needs_verifier: bool
    # A strategy may set `fixed_n = False`: it returns at most N candidates, stopping early,
    # and `step_wise = False`: it never continues a partial solution (a chat-only server can serve it).

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
STRATEGIES.register("speculative_rejection", "ttscale.search.speculative_rejection:SpeculativeRejection")


def build_strategy(name: str) -> Strategy:
    return STRATEGIES.get(name)()
