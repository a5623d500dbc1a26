"""Grading: extract the final answer, decide equivalence, vote.

    extract_answer(text) -> str | None      (how a run grades: boxed, final answer, math, number)
    stated_answer(text) -> str | None       (only an explicitly stated answer: boxed, final answer)
    is_equiv(gold, pred, timeout=5.0) -> bool
    correctness(results) -> {problem id: [bool]}   (each completion judged against its gold answer)
    canonical_key(answer) -> str
    vote(answers, weights=None) -> VoteResult
    solution_key(text) -> str               (when two candidate solutions are the same one)
"""

from ttscale.grading.equivalence import DEFAULT_TIMEOUT, is_equiv, is_equiv_many
from ttscale.grading.extract import extract_answer, stated_answer
from ttscale.grading.gold import correct_flags, correctness
from ttscale.grading.normalize import canonical_key
from ttscale.grading.pool import shutdown_pool
from ttscale.grading.vote import VoteGroup, VoteResult, solution_key, vote

__all__ = [
    "DEFAULT_TIMEOUT",
    "VoteGroup",
    "VoteResult",
    "canonical_key",
    "correct_flags",
    "correctness",
    "extract_answer",
    "is_equiv",
    "is_equiv_many",
    "shutdown_pool",
    "solution_key",
    "stated_answer",
    "vote",
]
