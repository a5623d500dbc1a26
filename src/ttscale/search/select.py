"""Picking one answer from scored candidates: majority, naive or weighted best-of-N."""

from __future__ import annotations

from collections.abc import Sequence

from ttscale.grading import vote
from ttscale.types import Completion
from ttscale.verifiers.base import reduce_scores


def solution_score(completion: Completion, reduction: str) -> float:
    return reduce_scores(completion.step_scores or (), reduction)


def select(completions: Sequence[Completion], selection: str, reduction: str = "last") -> int | None:
    """Index of the chosen completion, or None when there is none.

    weighted: a* = argmax_a sum_i 1(answer_i = a) * score_i (REFERENCE.md), then the
    best-scored member of that answer's group; naive: the best-scored completion.
    Unscored completions fall back to majority. The reduction is the caller's, not
    always `last` (a gap users hit in the reference toolkit).
    """
    if not completions:
        return None
    scored = all(c.step_scores for c in completions)
    if selection == "majority" or not scored:
        result = vote([c.answer for c in completions])
        return result.members[0] if result.members else 0
    scores = [solution_score(c, reduction) for c in completions]
    if selection == "naive":
        return max(range(len(completions)), key=lambda i: (scores[i], -i))
    result = vote([c.answer for c in completions], weights=scores)
    if not result.members:
        return max(range(len(completions)), key=lambda i: (scores[i], -i))
    return max(result.members, key=lambda i: (scores[i], -i))
