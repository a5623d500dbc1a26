"""The Strategy protocol, the settings a strategy reads, and the strategy registry."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from ttscale.backends.base import Generator
from ttscale.config import (
    STRATEGY_SECTIONS,
    AdaptiveConfig,
    DeepConfConfig,
    MCTSConfig,
    OutputConfig,
    ParticleConfig,
    RejectionConfig,
    RunConfig,
    SamplingConfig,
    SearchConfig,
    ThinkingConfig,
    VerifierConfig,
    nest_flat_search_keys,
)
from ttscale.data.prompts import PromptFormat, run_prompt_format
from ttscale.errors import ConfigError
from ttscale.registry import Registry
from ttscale.types import Problem, ProblemResult, Reduction, Selection
from ttscale.verifiers.base import Verifier


def _factory(cls: type, name: str) -> Any:
    """A config field's default factory, so a list default is spelled once, in config.py."""
    return next(f.default_factory for f in dataclasses.fields(cls) if f.name == name)


@dataclass(frozen=True)
class SearchSettings:
    """Everything a strategy reads, resolved once from the recipe, so no config is threaded through a search.

    Each field has the name, type and default of the recipe field it comes from (`search.*` and `sampling.*`,
    unless its comment names another), so a strategy never runs under a default the recipe does not show.
    A new search or sampling setting is added to config.py and here; tests/search/test_settings.py fails
    until both agree. A strategy that runs under other values derives them with `dataclasses.replace`.
    """

    # search.*: the budget and the shape of the search
    n: int = SearchConfig.n  # N: samples / beams / particles per problem
    beam_width: int = SearchConfig.beam_width  # M: children per kept beam
    max_iterations: int = SearchConfig.max_iterations  # rounds of step-wise search
    lookahead: int = SearchConfig.lookahead  # greedy steps rolled out before a child is scored
    step_delimiter: str = SearchConfig.step_delimiter
    step_split: str = SearchConfig.step_split  # delimiter | paragraph | markers
    min_step_tokens: int = SearchConfig.min_step_tokens  # paragraph / markers: shorter steps merge
    step_markers: list[str] = field(default_factory=_factory(SearchConfig, "step_markers"))  # markers: open a step
    # the answer pick among the candidates; a Literal here, a str in the recipe, which checks it (config.py)
    selection: Selection = cast(Selection, SearchConfig.selection)
    filter_duplicates: bool = SearchConfig.filter_duplicates  # drop a beam repeating another of its round
    max_tokens_per_problem: int | None = SearchConfig.max_tokens_per_problem  # generated-token cap
    max_flops_per_problem: float | None = SearchConfig.max_flops_per_problem  # FLOPs cap
    policy: str | None = SearchConfig.policy  # compute_optimal: the policy.json path
    confidence_window: int = SearchConfig.confidence_window  # tokens per sliding group of confidence
    # each strategy's own section, read by that strategy only
    particle: ParticleConfig = field(default_factory=ParticleConfig)  # particle_filtering: resampling
    adaptive: AdaptiveConfig = field(default_factory=AdaptiveConfig)  # adaptive strategies: waves and stop
    deepconf: DeepConfConfig = field(default_factory=DeepConfConfig)  # deepconf: filter and early stop
    rejection: RejectionConfig = field(default_factory=RejectionConfig)  # speculative_rejection: checkpoints
    mcts: MCTSConfig = field(default_factory=MCTSConfig)  # mcts: tree policy and backup
    # sampling.*: how the policy samples
    temperature: float = SamplingConfig.temperature
    top_p: float = SamplingConfig.top_p
    max_new_tokens: int = SamplingConfig.max_new_tokens  # token cap of one whole solution
    max_step_tokens: int = SamplingConfig.max_step_tokens  # token cap of one step
    seed: int = SamplingConfig.seed  # the run seed every sample's seed derives from
    logprobs: int = SamplingConfig.logprobs  # top-k log-probabilities recorded per token (0 = off)
    # the thinking markers resolved for the model (data/prompts.py), or the recipe's as written
    thinking: ThinkingConfig = field(default_factory=ThinkingConfig)
    # from other sections
    reduction: Reduction = cast(Reduction, VerifierConfig.reduction)  # verifier.reduction: step scores to one
    save_trees: bool = OutputConfig.save_trees  # output.save_trees: record every search node
    save_logprobs: bool = OutputConfig.save_logprobs  # output.save_logprobs: keep every token's logprobs
    # the prompt format's texts that end a whole solution (a k-shot prompt's next "Question:")
    end_markers: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, cfg: RunConfig, end_markers: tuple[str, ...],
                    thinking: ThinkingConfig | None = None) -> SearchSettings:
        """`thinking`: the recipe's thinking settings with their markers resolved for the model
        (data/prompts.py); None keeps the recipe's."""
        search, sampling = cfg.search, cfg.sampling
        return cls(
            n=search.n, beam_width=search.beam_width, max_iterations=search.max_iterations,
            lookahead=search.lookahead, step_delimiter=search.step_delimiter, step_split=search.step_split,
            min_step_tokens=search.min_step_tokens, step_markers=search.step_markers,
            selection=cast(Selection, search.selection), filter_duplicates=search.filter_duplicates,
            max_tokens_per_problem=search.max_tokens_per_problem, max_flops_per_problem=search.max_flops_per_problem,
            policy=search.policy, confidence_window=search.confidence_window, particle=search.particle,
            adaptive=search.adaptive, deepconf=search.deepconf, rejection=search.rejection, mcts=search.mcts,
            temperature=sampling.temperature, top_p=sampling.top_p, max_new_tokens=sampling.max_new_tokens,
            max_step_tokens=sampling.max_step_tokens, seed=sampling.seed, logprobs=sampling.logprobs,
            thinking=sampling.thinking if thinking is None else thinking,
            reduction=cast(Reduction, cfg.verifier.reduction), save_trees=cfg.output.save_trees,
            save_logprobs=cfg.output.save_logprobs, end_markers=end_markers,
        )

    def updated(self, values: dict[str, Any]) -> SearchSettings:
        """These settings with `values` (field -> value; a strategy section as a mapping of its keys, merged
        into the current one) replaced: how a compute-optimal policy entry, read from JSON, is applied."""
        values, _ = nest_flat_search_keys(values)
        changes = {}
        for name, value in values.items():
            section = STRATEGY_SECTIONS.get(name)
            changes[name] = dataclasses.replace(getattr(self, name), **value) if section and isinstance(
                value, dict) else value
        return dataclasses.replace(self, **changes)


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
STRATEGIES.register("mcts", "ttscale.search.mcts:MCTS")


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
