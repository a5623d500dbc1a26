"""The records a search passes around: beams, expansion requests, per-problem state, and the
policy protocol a step-wise strategy implements (the core that runs them is search/expand.py)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from ttscale.grading import extract_answer
from ttscale.search.thinking import ThinkState, answer_part
from ttscale.types import Budget, FinishReason, Problem, TreeNode


@dataclass(frozen=True)
class Beam:
    """A partial or complete solution: its steps keep their delimiters, so text is their concatenation."""

    steps: tuple[str, ...] = ()
    scores: tuple[float, ...] = ()
    n_tokens: int = 0
    finished: bool = False
    finish_reason: FinishReason = "stop"
    node: int = -1
    group: int = 0
    value: float = 0.0  # what the policy ranks by: the scored (lookahead) sequence's reduction
    top_logprobs: tuple[tuple[float, ...], ...] = ()  # per generated token, when sampling.logprobs > 0
    logprobs: tuple[float, ...] = ()
    # Text that opens the next step, already in the prompt: a step marker ("Wait") or text budget forcing wrote.
    carry: str = ""
    think: ThinkState | None = None  # None: the model has no thinking block

    @property
    def text(self) -> str:
        return "".join(self.steps) + self.carry

    @property
    def answer(self) -> str | None:
        """The extracted answer, from the text after the thinking block (none while it still thinks)."""
        part = answer_part(self.text, self.think)
        return None if part is None else extract_answer(part)


@dataclass(frozen=True)
class Expansion:
    """Ask for `k` children of `parent` (None = the problem's root) in subtree `group`.

    `whole`: each child runs to the end of the solution instead of stopping at the next step.
    `max_tokens`: a whole child stops after this many new tokens (DeepConf online's and speculative rejection's
    chunks, so a trace can be judged part way).
    `cap_share`: a whole child's share of what the per-problem caps leave (search/caps.py); it
    ends there for good, as at sampling.max_new_tokens, unfinished text and all.
    """

    parent: Beam | None
    k: int
    group: int = 0
    whole: bool = False
    max_tokens: int | None = None
    cap_share: int | None = None

    @property
    def token_limit(self) -> int | None:
        """The fewest new tokens a whole child may stop at: its chunk or its share of the caps."""
        limits = [x for x in (self.max_tokens, self.cap_share) if x is not None]
        return min(limits) if limits else None


@dataclass
class ProblemState:
    """Per-problem bookkeeping while its search runs."""

    problem: Problem
    prompt: str
    budget: Budget = field(default_factory=Budget)
    tree: list[TreeNode] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    # Verifier tokens the search has committed to and not yet spent: the questions of candidates
    # that are scored once, after the last round (search/caps.py).
    verifier_tokens_owed: int = 0

    def add_node(self, parent: int | None, step: str, n_tokens: int, completed: bool) -> int:
        self.tree.append(TreeNode(len(self.tree), parent, step, None, n_tokens, completed))
        return len(self.tree) - 1

    def set_score(self, node: int, score: float) -> None:
        if 0 <= node < len(self.tree):
            self.tree[node] = replace(self.tree[node], score=score)


class Policy(Protocol):
    """The part of a strategy that differs: which beams to expand next, and what to return."""

    def initial(self) -> list[Expansion]: ...

    def step(self, children: list[Beam]) -> list[Expansion]: ...

    def finish(self) -> list[Beam]: ...


class CompletionPool:
    """Finished candidates are set aside, the rest stay active.

    Whatever the policy keeps, `finish` returns exactly N, finished first (never more: a pick
    over more than N candidates would not be a search of N, nor comparable with best-of-N).
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.completed: list[Beam] = []
        self.active: list[Beam] = []

    def absorb(self, children: list[Beam]) -> None:
        self.completed += [c for c in children if c.finished]
        self.active = [c for c in children if not c.finished]

    def finish(self) -> list[Beam]:
        done = top(self.completed, self.n)
        return done + top(self.active, self.n - len(done))


def top(beams: Sequence[Beam], k: int) -> list[Beam]:
    """The k best beams by value; ties keep generation order (deterministic)."""
    return sorted(beams, key=lambda b: -b.value)[:k]


def softmax(values: Sequence[float], temperature: float) -> list[float]:
    m = max(values)
    w = [math.exp((v - m) / temperature) for v in values]
    z = sum(w)
    return [x / z for x in w]
