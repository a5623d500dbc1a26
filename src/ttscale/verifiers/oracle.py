"""The oracle: grades a solution's extracted answer against the gold one (an upper bound, not a verifier).

Step i scores the prefix ending at it: 1.0 or 0.0 when an answer can be extracted
from steps[: i + 1] (is the answer equivalent to problem.answer?), and UNFINISHED
(1.0) while no answer has been given yet. So a complete solution's last step holds
its grade, the `last`, `min` and `prod` reductions all return it, and a step's score
never changes when later steps are appended (beam search may prune on it).
"""

from __future__ import annotations

from collections.abc import Sequence

from ttscale.config import VerifierConfig
from ttscale.types import Problem

UNFINISHED = 1.0
STEP_JOIN = "\n\n"


class OracleVerifier:
    name = "oracle"
    n_params = 0

    def __init__(self, cfg: VerifierConfig | None = None, *, unfinished: float = UNFINISHED) -> None:
        self.unfinished = unfinished

    def score(self, problems: Sequence[Problem], steps: Sequence[Sequence[str]]) -> list[list[float]]:
        from ttscale.grading import is_equiv_many, stated_answer

        results: list[list[float]] = []
        pairs: list[tuple[str, str]] = []
        slots: list[tuple[int, int]] = []
        for p, item in zip(problems, steps):
            row = []
            for i in range(len(item)):
                answer = stated_answer(STEP_JOIN.join(item[: i + 1]))
                if answer is not None:
                    pairs.append((p.answer, answer))
                    slots.append((len(results), i))
                row.append(self.unfinished)
            results.append(row)
        for (r, i), equal in zip(slots, is_equiv_many(pairs)):
            results[r][i] = 1.0 if equal else 0.0
        return results

    def count_tokens(self, problem: Problem, steps: Sequence[str]) -> int:
        return 0
