"""Which candidates are right: each completion's extracted answer judged against its problem's gold answer.

Evaluation scores runs with it and `ttscale learn` keeps the right solutions (SFT) or labels steps by
it, so a solution counts as right in one place exactly when it does in the other.
"""

from __future__ import annotations

from collections.abc import Sequence

from ttscale.grading.equivalence import is_equiv_many
from ttscale.types import Completion, ProblemResult


def correctness(results: Sequence[ProblemResult]) -> dict[str, list[bool]]:
    """Per problem id, whether each completion's answer equals the gold; one batched grading pass for all."""
    return {r.id: flags for r, flags in zip(results, _judge([(r.problem.answer, r.completions) for r in results]))}


def correct_flags(result: ProblemResult, completions: Sequence[Completion] | None = None) -> list[bool]:
    """Whether each of `completions` (by default the result's own) answers the result's problem rightly."""
    return _judge([(result.problem.answer, result.completions if completions is None else completions)])[0]


def _judge(items: Sequence[tuple[str, Sequence[Completion]]]) -> list[list[bool]]:
    """A missing answer is wrong without being graded."""
    pairs, owners = [], []
    for k, (gold, completions) in enumerate(items):
        for i, c in enumerate(completions):
            if c.answer is not None:
                pairs.append((gold, c.answer))
                owners.append((k, i))
    out = [[False] * len(completions) for _, completions in items]
    for (k, i), ok in zip(owners, is_equiv_many(pairs) if pairs else []):
        out[k][i] = ok
    return out
