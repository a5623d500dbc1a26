"""A rule verifier for the synthetic arithmetic world: recompute every "a op b = c" exactly.

Steps look like "Step 1: Tom buys 4 more apples, so 5 + 4 = 9." and the last one
"Answer: \\boxed{9}". A step scores CORRECT when all its equations hold, WRONG when
any fails, and NO_ARITHMETIC (a prior) when it has none. A step that states a final
answer scores CORRECT only if the answer equals the last result computed in the
solution and no earlier step was wrong, so with the `last` reduction a solution's
score says "every computation checked and the answer follows from them". It cannot
tell a right computation of the wrong operation (adding instead of subtracting).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fractions import Fraction

from ttscale.config import VerifierConfig
from ttscale.types import Problem

CORRECT = 1.0
WRONG = 0.0
NO_ARITHMETIC = 0.5

_NUMBER = r"\d+(?:,\d{3})*(?:\.\d+)?"
_OP = r"[-+*/x×÷−]"
# a op b (op c ...) = [-]result; spaces optional; the operands are non-negative numbers
_EQUATION = re.compile(rf"({_NUMBER}(?:\s*{_OP}\s*{_NUMBER})+)\s*=\s*(-?{_NUMBER})")
_TOKEN = re.compile(rf"{_NUMBER}|{_OP}")
_BOXED = re.compile(r"\\boxed\{\s*\$?(-?" + _NUMBER + r")\s*\$?\s*\}")
_ANSWER = re.compile(r"answer(?: is)?\s*[:=]?\s*\$?(-?" + _NUMBER + ")", re.IGNORECASE)
# context that makes an equation part of a larger expression (2^3 = 8, a*2 + 3 = 7, = 9 x 2)
_BEFORE_BLOCKS = re.compile(r"(?:[\w.^)]|[*/+\-×÷−^]\s*)$")
_AFTER_BLOCKS = re.compile(rf"^(?:[\w(^]|\s*{_OP}\s*\d)")


def _number(text: str) -> Fraction:
    return Fraction(text.replace(",", ""))


def _evaluate(expression: str) -> Fraction | None:
    """Left-to-right with * and / first; None on division by zero."""
    tokens = _TOKEN.findall(expression)
    values, ops = [_number(tokens[0])], []
    for op, operand in zip(tokens[1::2], tokens[2::2]):
        value = _number(operand)
        if op in "*x×/÷":
            if op in "/÷":
                if value == 0:
                    return None
                values[-1] /= value
            else:
                values[-1] *= value
        else:
            values.append(value)
            ops.append(op)
    total = values[0]
    for op, value in zip(ops, values[1:]):
        total = total + value if op == "+" else total - value
    return total


def _matches(value: Fraction, written: str) -> bool:
    """Exact for integers; a decimal result may be the rounded value (10 / 3 = 3.33)."""
    stated = _number(written)
    decimals = len(written.split(".")[1]) if "." in written else 0
    if decimals == 0:
        return value == stated
    return abs(value - stated) <= Fraction(1, 2 * 10**decimals)


def check_equations(step: str) -> tuple[list[bool], Fraction | None]:
    """(one verdict per checkable equation, the last stated result) of a step's text."""
    verdicts, last = [], None
    for m in _EQUATION.finditer(step):
        if _BEFORE_BLOCKS.search(step[: m.start()]) or _AFTER_BLOCKS.match(step[m.end() :]):
            continue
        value = _evaluate(m.group(1))
        verdicts.append(value is not None and _matches(value, m.group(2)))
        last = _number(m.group(2))
    return verdicts, last


def stated_answer(step: str) -> Fraction | None:
    found = _BOXED.findall(step) or _ANSWER.findall(step)
    return _number(found[-1]) if found else None


class ArithmeticRulesVerifier:
    name = "arithmetic_rules"
    n_params = 0

    def __init__(
        self,
        cfg: VerifierConfig | None = None,
        *,
        correct: float = CORRECT,
        wrong: float = WRONG,
        no_arithmetic: float = NO_ARITHMETIC,
    ) -> None:
        self.correct, self.wrong, self.no_arithmetic = correct, wrong, no_arithmetic

    def score(self, problems: Sequence[Problem], steps: Sequence[Sequence[str]]) -> list[list[float]]:
        return [self.score_solution(s) for s in steps]

    def score_solution(self, steps: Sequence[str]) -> list[float]:
        scores: list[float] = []
        last_result: Fraction | None = None
        any_wrong = False
        for step in steps:
            verdicts, result = check_equations(step)
            if result is not None:
                last_result = result
            answer = stated_answer(step)
            if verdicts and not all(verdicts):
                score = self.wrong
            elif answer is not None:
                if last_result is None:
                    score = self.no_arithmetic
                elif answer == last_result and not any_wrong:
                    score = self.correct
                else:
                    score = self.wrong
            else:
                score = self.correct if verdicts else self.no_arithmetic
            any_wrong = any_wrong or (bool(verdicts) and not all(verdicts))
            scores.append(score)
        return scores

    def count_tokens(self, problem: Problem, steps: Sequence[str]) -> int:
        return 0
