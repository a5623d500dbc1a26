"""The Strategy protocol, the settings a strategy reads, and the strategy registry."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Protocol

from ttscale.backends.base import Generator
from ttscale.config import OutputConfig, RunConfig, SamplingConfig, SearchConfig, ThinkingConfig, VerifierConfig
from ttscale.data.prompts import PromptFormat, run_prompt_format
from ttscale.errors import ConfigError
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
    """Every search and sampling field with the same name, type and default (a setting is defined once, in
    config.py, so a strategy cannot run under a default the recipe does not show), the extras, and the
    prompt format's end markers."""
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
    """Searches a batch of problems together; returns one result per problem, in order.

    A strategy states what it needs, so the runner and the server ask it instead of knowing each one:
    """

    name: str
    needs_verifier: bool  # it ranks steps or samples by a verifier's scores: refused without one
    fixed_n: bool  # it returns exactly search.n candidates; False: at most N, as it may stop early
    step_wise: bool  # it continues partial solutions; False: whole samples, which a chat-only server can serve
    reads_logprobs: bool  # it reads the policy's token log-probabilities whatever sampling.logprobs says

    def validate(self, settings: SearchSettings) -> None:
        """Refuse settings this strategy cannot run under: one ConfigError naming the field, before any search."""
        ...

    def max_expansions(self, settings: SearchSettings) -> int:
        """The most samples one problem's search asks the generator for, each lookahead step counted: what
        a server bounds a request's work by before it starts (the caps may stop a search sooner)."""
        ...

    def search(self, problems: Sequence[Problem], prompts: Sequence[str], generator: Generator,
               verifier: Verifier | None, settings: SearchSettings) -> list[ProblemResult]: ...


class BaseStrategy:
    """The defaults of a step-wise strategy that scores with a verifier and returns N candidates.

    A strategy that differs says so by overriding the attribute or method; the contract suite
    (tests/search/test_contract.py) holds every registered strategy to what it declares.
    """

    name = "strategy"
    needs_verifier = True
    fixed_n = True
    step_wise = True
    reads_logprobs = False

    def validate(self, settings: SearchSettings) -> None:
        return None

    def max_expansions(self, settings: SearchSettings) -> int:
        """Up to N children a round for `max_iterations` rounds, each child rolled `lookahead` steps to be scored."""
        return settings.n * settings.max_iterations * (1 + settings.lookahead)

    def search(self, problems: Sequence[Problem], prompts: Sequence[str], generator: Generator,
               verifier: Verifier | None, settings: SearchSettings) -> list[ProblemResult]:
        raise NotImplementedError


STRATEGIES: Registry[Strategy] = Registry("strategy")
STRATEGIES.register("best_of_n", "ttscale.search.best_of_n:BestOfN")
STRATEGIES.register("beam_search", "ttscale.search.beam:BeamSearch")
STRATEGIES.register("dvts", "ttscale.search.dvts:DVTS")
STRATEGIES.register("particle_filtering", "ttscale.search.particle:ParticleFiltering")
STRATEGIES.register("compute_optimal", "ttscale.search.compute_optimal:ComputeOptimal")
STRATEGIES.register("adaptive_consistency", "ttscale.search.adaptive:AdaptiveConsistency")
STRATEGIES.register("deepconf", "ttscale.search.deepconf:DeepConf")
STRATEGIES.register("speculative_rejection", "ttscale.search.speculative_rejection:SpeculativeRejection")


def run_settings(cfg: RunConfig, tokenizer: Any) -> tuple[PromptFormat, SearchSettings]:
    """The recipe's prompt format for the policy's tokenizer, and the settings a search runs under, with
    that format's end markers and its thinking markers resolved for the model."""
    fmt = run_prompt_format(cfg, tokenizer)
    return fmt, SearchSettings.from_config(cfg, fmt.end_markers, fmt.thinking)


def build_strategy(name: str) -> Strategy:
    return STRATEGIES.get(name)()


def checked_strategy(cfg: RunConfig, has_verifier: bool) -> Strategy:
    """The recipe's strategy once it has accepted the recipe: what it cannot run is refused in one line,
    before a model loads (a run, a server)."""
    strategy = build_strategy(cfg.search.strategy)
    if strategy.needs_verifier and not has_verifier:
        raise ConfigError(f"search.strategy={strategy.name!r} needs a verifier; set verifier.name "
                          "(e.g. arithmetic_rules, lm_judge, rlhflow)", field="verifier.name")
    strategy.validate(SearchSettings.from_config(cfg, end_markers=()))
    return strategy
