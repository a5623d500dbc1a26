"""The per-problem caps every strategy keeps: `search.max_tokens_per_problem` and `search.max_flops_per_problem`.

A round is sized before it is asked for, at its worst case, so a cap is never passed:
every step child reaches `sampling.max_step_tokens`, every whole-solution child its token
cap, every child the verifier scores also rolls `search.lookahead` full steps, a request
with no prefix to reuse reads its prompt afresh, and the verifier reads each scored child's
prefix again plus one token per policy token. FLOPs are projected as the budget counts them
(`Expander.flops`: 2 x parameters x tokens through each model, prefix-cache hits free).

A round of steps that might not fit is not asked for: a step cut short is no step, and the
search returns what it has. Whole-solution children share what is left instead, each capped
at the largest equal share that fits, so best-of-N under a cap C draws its N samples at up to
C / N tokens each (the compute-matched comparison of Snell et al. 2024, section 3, sets a
search's budget as N samples' worth of tokens); a round where even one token each would not
fit is not asked for.

The verifier's count of text not yet written is an estimate across tokenizers: one verifier
token per policy token, exact when they share one (the fakes; the reference Llama-3.2-1B
policy and Llama-3.1-8B PRM share Llama 3's), and template tokens around new steps aside.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ttscale.search.records import Beam, Expansion, ProblemState

if TYPE_CHECKING:
    from ttscale.search.expand import Expander


@dataclass(frozen=True)
class RoundCost:
    """One problem's next round at its worst case, as a function of t, the cap on its whole-solution children."""

    fixed: int  # generated tokens that do not depend on t: step children and every lookahead roll
    whole: tuple[tuple[int, int], ...]  # (children, their own worst case) per whole-solution request
    prompt: int  # prompt tokens read without a prefix cache to reuse
    verifier_prefix: int  # verifier tokens of what exists already: the scored prefixes (or the question)

    def tokens(self, t: int) -> int:
        return self.fixed + sum(k * min(t, w) for k, w in self.whole)

    @property
    def longest(self) -> int:
        return max((w for _, w in self.whole), default=0)


def admit(ex: Expander, st: ProblemState, expansions: Sequence[Expansion]) -> list[Expansion]:
    """The part of a problem's next round that its caps admit: all of it, its whole-solution children
    capped at a shorter equal share, or nothing.

    When the verifier scores once after the last round (`ex.score_once`), an admitted round's
    new candidates commit the verifier to reading their question, so that is charged to `st` here.
    """
    s = ex.settings
    if not expansions or (s.max_tokens_per_problem is None and s.max_flops_per_problem is None):
        return list(expansions)
    cost = round_cost(ex, st, expansions)
    t = cost.longest
    if not fits(ex, st, cost, t):
        t = _largest_fitting(ex, st, cost, cost.longest - 1) if cost.whole else 0
        if t < 1:
            return []
    if ex.score_once:
        st.verifier_tokens_owed += cost.verifier_prefix
    return [replace(e, cap_share=t) if e.whole and ex.worst_tokens(e) > t else e for e in expansions]


def _largest_fitting(ex: Expander, st: ProblemState, cost: RoundCost, hi: int) -> int:
    """The largest t in [1, hi] that fits, else 0 (the cost grows with t: a binary search)."""
    lo = 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(ex, st, cost, mid) else (lo, mid - 1)
    return lo


def fits(ex: Expander, st: ProblemState, cost: RoundCost, t: int) -> bool:
    s, b = ex.settings, st.budget
    tokens = cost.tokens(t)
    if s.max_tokens_per_problem is not None and b.generated_tokens + tokens > s.max_tokens_per_problem:
        return False
    if s.max_flops_per_problem is None:
        return True
    # Scored once at the end: everything generated so far is still to be read, with its question.
    owed = st.verifier_tokens_owed + b.generated_tokens if ex.score_once else 0
    verifier_params = ex.verifier.n_params if ex.verifier is not None else 0
    flops = (ex.flops(st) + 2.0 * ex.generator.n_params * (tokens + cost.prompt)
             + 2.0 * verifier_params * (owed + cost.verifier_prefix + tokens))
    return flops <= s.max_flops_per_problem


def round_cost(ex: Expander, st: ProblemState, expansions: Sequence[Expansion]) -> RoundCost:
    s = ex.settings
    scored = ex.verifier is not None
    # Lookahead rolls unfinished children; a whole-solution child ends finished but for a chunk, and
    # chunks are scored once (waves, no lookahead).
    roll = s.lookahead * s.max_step_tokens if scored and not ex.score_once else 0
    fixed = sum(e.k * (s.max_step_tokens + roll) for e in expansions if not e.whole)
    whole = tuple((e.k, ex.worst_tokens(e)) for e in expansions if e.whole)
    prompt = verifier_prefix = 0
    if s.max_flops_per_problem is not None:
        fresh = sum(1 for e in expansions if e.parent is None or not e.parent.text)
        prompt = fresh * ex.generator.count_tokens(st.prompt) if ex.generator.n_params else 0
        if scored and ex.verifier.n_params:  # type: ignore[union-attr]
            verifier_prefix = sum(e.k * _read(ex, st, e.parent) for e in expansions
                                  if not ex.score_once or e.parent is None)
    return RoundCost(fixed, whole, prompt, verifier_prefix)


def _read(ex: Expander, st: ProblemState, parent: Beam | None) -> int:
    """The verifier tokens a child of `parent` costs besides its own new text."""
    steps = (*parent.steps, parent.carry) if parent is not None and parent.carry else (
        parent.steps if parent is not None and parent.steps else ("",))
    return ex.verifier.count_tokens(st.problem, steps)  # type: ignore[union-attr]
