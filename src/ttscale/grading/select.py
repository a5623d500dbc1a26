"""Deciding one answer from scored candidates: step-score reductions and the majority, naive and
weighted picks. Search (to choose), evaluation (to recompute) and the server stand on these.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ttscale.grading.vote import vote
from ttscale.types import Completion, Reduction, Selection


def reduce_scores(scores: Sequence[float], reduction: Reduction) -> float:
    """One solution score from its step scores (REFERENCE.md: `last` is the default and works best)."""
    if not scores:
        return 0.0
    if reduction == "last":
        return float(scores[-1])
    if reduction == "min":
        return float(min(scores))
    if reduction == "prod":
        return float(math.prod(scores))
    if reduction == "mean":
        return float(sum(scores) / len(scores))
    raise ValueError(f"unknown reduction {reduction!r}")


def solution_score(completion: Completion, reduction: Reduction) -> float:
    return reduce_scores(completion.step_scores or (), reduction)


def mean_solution_score(completions: Sequence[Completion], reduction: Reduction) -> float:
    """The model-based difficulty score of a problem (Snell et al. 2024): its samples' mean verifier score."""
    scores = [solution_score(c, reduction) for c in completions]
    return sum(scores) / len(scores) if scores else 0.0


def select(
    completions: Sequence[Completion], selection: Selection, reduction: Reduction = "last", distinct: bool = False
) -> int | None:
    """Index of the chosen completion, or None when there is none.

    distinct: a completion repeating an earlier one (grading.vote.solution_key) casts no vote.
    For a tree search's candidates, where one beam grown twice is one solution (issue 16); never
    for independent samples, where a repeat is evidence.

    weighted: a* = argmax_a sum_i 1(answer_i = a) * score_i (REFERENCE.md), then the
    best-scored member of that answer's group; naive: the best-scored completion.
    Unscored completions fall back to majority. The reduction is the caller's, not
    always `last` (a gap users hit in the reference toolkit).
    """
    if not completions:
        return None
    scored = all(c.step_scores for c in completions)
    texts = [c.text for c in completions] if distinct else None
    if selection == "majority" or not scored:
        result = vote([c.answer for c in completions], texts=texts)
        return result.members[0] if result.members else 0
    scores = [solution_score(c, reduction) for c in completions]
    if selection == "naive":
        return max(range(len(completions)), key=lambda i: (scores[i], -i))
    result = vote([c.answer for c in completions], weights=scores, texts=texts)
    if not result.members:
        return max(range(len(completions)), key=lambda i: (scores[i], -i))
    return max(result.members, key=lambda i: (scores[i], -i))
