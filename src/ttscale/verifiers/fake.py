"""A deterministic verifier for tests: scores a step by a caller-given function of its text."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

from ttscale.config import VerifierConfig
from ttscale.types import Problem


def _hash_score(problem: Problem, steps: Sequence[str], i: int) -> float:
    return (zlib.crc32(("\x00".join([problem.id, *steps[: i + 1]])).encode()) % 1000) / 1000


class FakeVerifier:
    """Default score: a hash of the prefix, so it is stable under appending later steps."""

    name = "fake"
    n_params = 0

    def __init__(
        self, cfg: VerifierConfig | None = None, fn: Callable[[Problem, Sequence[str], int], float] | None = None
    ) -> None:
        self.fn = fn or _hash_score
        self.calls = 0

    def score(self, problems: Sequence[Problem], steps: Sequence[Sequence[str]]) -> list[list[float]]:
        self.calls += 1
        return [[self.fn(p, s, i) for i in range(len(s))] for p, s in zip(problems, steps)]

    def count_tokens(self, problem: Problem, steps: Sequence[str]) -> int:
        return len(problem.question.split()) + sum(len(s.split()) for s in steps)
