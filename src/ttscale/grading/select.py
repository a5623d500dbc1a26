"""Deciding one answer from scored candidates: step-score reductions and the majority, naive and
weighted picks, and the reward-free picks by the policy's own confidence. Search (to choose),
evaluation (to recompute) and the server stand on these.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ttscale.grading.vote import vote
from ttscale.types import Completion, ProblemResult, Reduction, Selection

# Picks that read each candidate's token confidence (Completion.confidence), not verifier scores.
CONFIDENCE_SELECTIONS = ("self_certainty", "confidence_weighted")


def reduce_scores(scores: Sequence[float], reduction: Reduction) -> float:
    """One solution score from its step scores (`last` is the default: the blog found it best, docs/ALGORITHMS.md)."""
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
    For a tree search's candidates, where one beam grown twice is one solution (else a beam that
    survived two rounds votes twice); never for independent samples, where a repeat is evidence.

    weighted: a* = argmax_a sum_i 1(answer_i = a) * score_i (docs/ALGORITHMS.md, "Best-of-N"), then the
    best-scored member of that answer's group; naive: the best-scored completion.
    Unscored completions fall back to majority. The reduction is the caller's, not
    always `last` as in search-and-learn's evaluation (docs/ALGORITHMS.md, "Step-score reductions").

    self_certainty and confidence_weighted read no verifier: see `confidence_pick`.
    """
    if not completions:
        return None
    texts = [c.text for c in completions] if distinct else None
    if selection in CONFIDENCE_SELECTIONS:
        return confidence_pick(completions, selection, texts)
    scored = all(c.step_scores for c in completions)
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


def reselect(result: ProblemResult, selection: Selection, reduction: Reduction) -> int | None:
    """The candidate `selection` picks among those the strategy kept (none it dropped), as an index into
    all of them, voting as the strategy's own pick did (`result.distinct`).

    Another pick over what one search found, without searching again: evaluation's curves of each pick
    over a tree search's candidates, and the compute_optimal strategy when its policy chose such a pick.
    For beam search, DVTS, MCTS, particle filtering and early rejection it is the pick a run with
    `search.selection` set to it makes; it is also how a pick is put on strategies that make their own
    (adaptive consistency's vote, DeepConf's confidence vote).
    """
    kept = [i for i, c in enumerate(result.completions) if c.dropped is None]
    pick = select([result.completions[i] for i in kept], selection, reduction, result.distinct)
    return None if pick is None else kept[pick]


def confidence_pick(completions: Sequence[Completion], selection: Selection, texts: Sequence[str] | None) -> int:
    """Reward-free best-of-N by self-certainty (Kang et al. 2025, arXiv 2502.18581).

    self_certainty: the completion whose tokens the policy was surest of; confidence_weighted:
    a* = argmax_a sum_i 1(answer_i = a) * self_certainty_i (the confidence-weighted vote of DeepConf,
    Fu et al. 2025, with Kang et al.'s measure), then the surest member of a*. A completion recorded
    without log-probabilities counts 0; a problem none of whose completions has them falls back to
    majority, as unscored completions do for the verifier picks.
    """
    if all(c.confidence is None for c in completions):
        result = vote([c.answer for c in completions], texts=texts)
        return result.members[0] if result.members else 0
    certainty = [c.confidence.self_certainty if c.confidence is not None else 0.0 for c in completions]
    surest = max(range(len(completions)), key=lambda i: (certainty[i], -i))
    if selection == "self_certainty":
        return surest
    result = vote([c.answer for c in completions], weights=certainty, texts=texts)
    if not result.members:
        return surest
    return max(result.members, key=lambda i: (certainty[i], -i))
