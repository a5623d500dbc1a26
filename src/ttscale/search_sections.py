"""Each strategy's own section of the `search` recipe section (`search.particle.*`, ...), and the flat
keys those settings had before, which recipes, saved run configs and policy files may still hold."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ttscale.checks import check, finite, one_of
from ttscale.errors import ConfigError


@dataclass(frozen=True)
class ParticleConfig:
    """particle_filtering's resampling (Puri et al. 2025; docs/ALGORITHMS.md, "Particle filtering")."""

    temperature: float = field(default=1.0, metadata={"help": "resampling weights: softmax(logit(p) / T)"})
    resample_ess: float = field(default=1.0, metadata={
        "help": "resample when the effective sample size <= this x N (1.0: every round)"})

    def __post_init__(self) -> None:
        check(finite(self.temperature) and self.temperature > 0, "search.particle", "temperature", self.temperature,
               "a finite number > 0")
        check(finite(self.resample_ess) and 0 < self.resample_ess <= 1, "search.particle", "resample_ess",
               self.resample_ess, "a number in (0, 1]")


@dataclass(frozen=True)
class AdaptiveConfig:
    """The waves and the stop of the strategies that stop sampling a problem once its answer is settled:
    adaptive_consistency, and deepconf online (its consensus share is held to stop_confidence)."""

    wave: int = field(default=4, metadata={"help": "samples drawn per wave (ESC's window)"})
    stop_rule: str = field(default="beta", metadata={
        "help": "adaptive_consistency stop: window (ESC) | beta | dirichlet (Adaptive-Consistency)"})
    stop_confidence: float = field(default=0.95, metadata={
        "help": "stop once P(leader stays leader) (beta/dirichlet) or the deepconf consensus share reaches this"})

    def __post_init__(self) -> None:
        check(self.wave >= 1, "search.adaptive", "wave", self.wave, "an integer >= 1")
        one_of("search.adaptive", "stop_rule", self.stop_rule, ("window", "beta", "dirichlet"))
        check(finite(self.stop_confidence) and 0 < self.stop_confidence <= 1, "search.adaptive", "stop_confidence",
               self.stop_confidence, "a number in (0, 1]")


@dataclass(frozen=True)
class DeepConfConfig:
    """deepconf's trace filter and early stop (Fu et al. 2025; docs/ALGORITHMS.md, "DeepConf")."""

    mode: str = field(default="online", metadata={"help": "online (warm-up + early stop) | offline"})
    warmup: int = field(default=4, metadata={"help": "online: warm-up traces that set the threshold"})
    eta: float = field(default=90.0, metadata={"help": "keep the top eta% of traces (10 or 90, the paper)"})
    measure: str = field(default="lowest_group", metadata={
        "help": "trace confidence: mean | lowest_group | bottom10_group | tail"})
    chunk_tokens: int = field(default=16, metadata={"help": "online: tokens per chunk between checks"})

    def __post_init__(self) -> None:
        one_of("search.deepconf", "mode", self.mode, ("online", "offline"))
        check(self.warmup >= 1, "search.deepconf", "warmup", self.warmup, "an integer >= 1")
        check(finite(self.eta) and 0 < self.eta <= 100, "search.deepconf", "eta", self.eta, "a percentage in (0, 100]")
        one_of("search.deepconf", "measure", self.measure, ("mean", "lowest_group", "bottom10_group", "tail"))
        check(self.chunk_tokens >= 1, "search.deepconf", "chunk_tokens", self.chunk_tokens, ">= 1")


@dataclass(frozen=True)
class RejectionConfig:
    """speculative_rejection's checkpoints (Sun et al. 2024, arXiv 2410.20290)."""

    rate: float = field(default=0.5, metadata={
        "help": "the paper's rejection rate alpha, the share of the still-generating samples stopped at each "
                "checkpoint, lowest partial verifier score first (0.5 halves them)"})
    chunk_tokens: int = field(default=128, metadata={
        "help": "tokens each sample generates between checkpoints (the paper's decision token, which it sets where "
                "GPU memory fills: model-, N- and GPU-dependent, so no paper default)"})

    def __post_init__(self) -> None:
        check(finite(self.rate) and 0 <= self.rate < 1, "search.rejection", "rate", self.rate, "a number in [0, 1)")
        check(self.chunk_tokens >= 1, "search.rejection", "chunk_tokens", self.chunk_tokens, ">= 1")


@dataclass(frozen=True)
class MCTSConfig:
    """mcts's tree policy and backup (Kocsis & Szepesvari 2006; Silver et al. 2017; docs/ALGORITHMS.md, "MCTS")."""

    selection: str = field(default="uct", metadata={
        "help": "uct: Q + c sqrt(ln N_parent / N) | puct: Q + c P sqrt(N_parent) / (1 + N), P from the policy's "
                "log-probabilities of each sibling's step (needs sampling.logprobs >= 1)"})
    c: float = field(default=1.4, metadata={"help": "exploration constant (UCT's sqrt(2) by default)"})
    backup: str = field(default="mean", metadata={
        "help": "a node's value Q: mean of the verifier values below it | max of them"})

    def __post_init__(self) -> None:
        one_of("search.mcts", "selection", self.selection, ("uct", "puct"))
        check(finite(self.c) and self.c >= 0, "search.mcts", "c", self.c, "a finite number >= 0")
        one_of("search.mcts", "backup", self.backup, ("mean", "max"))


# The strategy sections inside `search`.
STRATEGY_SECTIONS: dict[str, type] = {
    "particle": ParticleConfig,
    "adaptive": AdaptiveConfig,
    "deepconf": DeepConfConfig,
    "rejection": RejectionConfig,
    "mcts": MCTSConfig,
}

# Settings that were flat keys of `search` before each strategy's knobs moved into its own section;
# a recipe, an override, a saved run config or a policy.json that spells them so is still read.
FLAT_SEARCH_KEYS: dict[str, tuple[str, str]] = {
    "particle_temperature": ("particle", "temperature"),
    "resample_ess": ("particle", "resample_ess"),
    "wave": ("adaptive", "wave"),
    "stop_rule": ("adaptive", "stop_rule"),
    "stop_confidence": ("adaptive", "stop_confidence"),
    "deepconf_mode": ("deepconf", "mode"),
    "warmup": ("deepconf", "warmup"),
    "eta": ("deepconf", "eta"),
    "confidence_measure": ("deepconf", "measure"),
    "chunk_tokens": ("deepconf", "chunk_tokens"),
    "rejection_rate": ("rejection", "rate"),
    "rejection_chunk_tokens": ("rejection", "chunk_tokens"),
}


def nest_flat_search_keys(search: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """`search` with each flat key of FLAT_SEARCH_KEYS moved into its section, and a note per key moved.

    A key set both ways to different values is refused: no spelling silently wins."""
    out = {k: (dict(v) if k in STRATEGY_SECTIONS and isinstance(v, dict) else v) for k, v in search.items()
           if k not in FLAT_SEARCH_KEYS}
    notes = []
    for flat, (section, key) in FLAT_SEARCH_KEYS.items():
        if flat not in search:
            continue
        node = out.setdefault(section, {})
        if not isinstance(node, dict):
            raise ConfigError(f"search.{section}={node!r} is invalid; accepted: a mapping of "
                              f"{STRATEGY_SECTIONS[section].__name__} keys")
        if key in node and node[key] != search[flat]:
            raise ConfigError(f"search.{flat}={search[flat]!r} and search.{section}.{key}={node[key]!r} name the "
                              f"same setting; keep search.{section}.{key}")
        node[key] = search[flat]
        notes.append(f"search.{flat} is now search.{section}.{key}; read as that")
    return out, notes
