"""Plain frozen records that cross module boundaries; each serialises to one JSON object."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

FinishReason = Literal["stop", "length", "eos"]
# One spelling each, used by the config, the grading, the evaluation and the server, so they cannot drift apart.
Reduction = Literal["last", "min", "prod", "mean"]
Selection = Literal["majority", "naive", "weighted", "self_certainty", "confidence_weighted"]
REDUCTIONS: tuple[Reduction, ...] = typing.get_args(Reduction)
SELECTIONS: tuple[Selection, ...] = typing.get_args(Selection)


def as_reduction(value: str) -> Reduction:
    """A configured reduction name as the Reduction the score functions take (ValueError if it is none)."""
    if value not in REDUCTIONS:
        raise ValueError(f"reduction {value!r} is not one of {', '.join(REDUCTIONS)}")
    return typing.cast(Reduction, value)


@dataclass(frozen=True)
class Problem:
    """One dataset row, normalised: the question, its gold answer and its metadata."""

    id: str
    question: str
    answer: str
    level: int | None = None
    subject: str | None = None

    @property
    def content_hash(self) -> str:
        """Digest of the question and gold answer: a resumed row is reused only while its problem still matches it."""
        return hashlib.sha256(json.dumps([self.question, self.answer]).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Problem:
        values: dict[str, Any] = {f.name: d.get(f.name) for f in dataclasses.fields(cls)}
        return cls(**values)


@dataclass(frozen=True)
class SamplingParams:
    """What a Generator is asked for; validated by SamplingConfig before it gets here.

    Its defaults are those of Beeching, Tunstall & Rush 2024 (T = 0.8, up to 2048 new tokens): SamplingConfig
    reads them here.
    """

    temperature: float = 0.8
    top_p: float = 1.0
    max_new_tokens: int = 2048
    stop: tuple[str, ...] = ()
    n: int = 1
    seed: int | None = None
    logprobs: int = 0  # top-k alternatives recorded per token, for confidence measures; 0 = off, nothing paid


@dataclass(frozen=True)
class Generation:
    """One sampled continuation. `text` keeps the stop string it ended on, so steps stay delimited."""

    text: str
    n_tokens: int
    finish_reason: FinishReason
    prompt_tokens: int = 0
    # Only when SamplingParams.logprobs > 0 (the confidence measures of ttscale.confidence need them): per
    # generated token, the sampled token's log-probability and the top-k log-probabilities (descending), from
    # the model's raw distribution.
    logprobs: tuple[float, ...] = ()
    top_logprobs: tuple[tuple[float, ...], ...] = ()


@dataclass
class Budget:
    """Compute spent on one problem: counted where the work is done and summed per problem, so that
    strategies are compared at equal cost."""

    generated_tokens: int = 0
    thinking_tokens: int = 0  # of generated_tokens: those inside a thinking block (e.g. <think>...</think>)
    prompt_tokens: int = 0
    prompt_tokens_reused: int = 0
    verifier_tokens: int = 0
    generator_calls: int = 0
    verifier_calls: int = 0
    wall_time_s: float = 0.0
    flops: float = 0.0

    def add(self, other: Budget) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Budget:
        return cls(**{f.name: d.get(f.name, 0) for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class ConfidenceSummary:
    """A trace's confidence measures: what completions.jsonl keeps of its logprobs.

    Computed by ttscale.confidence; the group measures are DeepConf's (Fu et al. 2025).
    """

    mean: float
    lowest_group: float
    bottom10_group: float
    tail: float
    self_certainty: float
    n_tokens: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ConfidenceSummary:
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class Completion:
    """One candidate solution of a problem, with every step score so any reduction can be recomputed."""

    text: str
    steps: tuple[str, ...]
    answer: str | None
    step_scores: tuple[float, ...] | None = None
    n_tokens: int = 0
    finished: bool = True
    finish_reason: FinishReason = "eos"
    confidence: ConfidenceSummary | None = None
    # Why an adaptive strategy left this trace out of its vote ("stopped": cut mid-generation by
    # DeepConf online; "filtered": below the top eta%); its tokens still count in the budget.
    dropped: str | None = None
    logprobs: tuple[float, ...] = ()  # only with output.save_logprobs
    top_logprobs: tuple[tuple[float, ...], ...] = ()
    thinking_tokens: int = 0  # of n_tokens: inside the thinking block

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        # Optional fields stay out of the line when unused, so a run without confidence or thinking writes the
        # same lines as a file from before those fields existed, and both read back alike.
        for key in ("confidence", "dropped", "logprobs", "top_logprobs", "thinking_tokens"):
            if not d[key]:
                del d[key]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Completion:
        scores = d.get("step_scores")
        return cls(
            text=d["text"],
            steps=tuple(d.get("steps", ())),
            answer=d.get("answer"),
            step_scores=None if scores is None else tuple(float(s) for s in scores),
            n_tokens=int(d.get("n_tokens", 0)),
            finished=bool(d.get("finished", True)),
            finish_reason=d.get("finish_reason", "eos"),
            confidence=ConfidenceSummary.from_dict(d["confidence"]) if d.get("confidence") else None,
            dropped=d.get("dropped"),
            logprobs=tuple(d.get("logprobs", ())),
            top_logprobs=tuple(tuple(t) for t in d.get("top_logprobs", ())),
            thinking_tokens=int(d.get("thinking_tokens", 0)),
        )


@dataclass(frozen=True)
class TreeNode:
    """A node of a search tree, kept when output.save_trees is on (trees.jsonl; `ttscale tree` prints one)."""

    id: int
    parent: int | None
    step: str
    score: float | None
    n_tokens: int
    completed: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# The tree searches of files written before ProblemResult.distinct was: their picks already counted a
# repeat once. (compute_optimal's picks were either, and are read as independent samples.)
_TREE_STRATEGIES = frozenset({"beam_search", "dvts", "particle_filtering"})


@dataclass(frozen=True)
class ProblemResult:
    """One line of completions.jsonl: a problem, its candidates, the strategy's pick and the budget."""

    problem: Problem
    strategy: str
    completions: tuple[Completion, ...] = ()
    selected: int | None = None
    budget: Budget = field(default_factory=Budget)
    error: str | None = None
    tree: tuple[TreeNode, ...] = ()
    # The candidates come from one search tree: a repeated solution (grading.solution_key) is one beam
    # grown twice, so the pick counted it once and evaluation must too. Independent samples: False.
    distinct: bool = False

    @property
    def id(self) -> str:
        return self.problem.id

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.problem.id,
            "problem": self.problem.to_dict(),
            "strategy": self.strategy,
            "selected": self.selected,
            "distinct": self.distinct,
            "error": self.error,
            "budget": self.budget.to_dict(),
            "completions": [c.to_dict() for c in self.completions],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProblemResult:
        return cls(
            problem=Problem.from_dict(d["problem"]),
            strategy=d["strategy"],
            completions=tuple(Completion.from_dict(c) for c in d.get("completions", ())),
            selected=d.get("selected"),
            budget=Budget.from_dict(d.get("budget", {})),
            error=d.get("error"),
            distinct=bool(d.get("distinct", d["strategy"] in _TREE_STRATEGIES)),
        )
