"""A rule verifier for the synthetic arithmetic world, grounded in the problem.

Steps look like "Step 1: Tom buys 4 more apples, so 5 + 4 = 9." and the last one
"Answer: \\boxed{9}". Every "a op b = c" is recomputed exactly, and every operand
must be *grounded*: a number of the question (digits, or number words such as
"three", "twice", "doubles", "a dozen") or the result of an earlier grounded
computation. Checking arithmetic alone gave search nothing to choose by: "so
9 + 2 = 11" scored as high as the real step on a problem without a 9 or a 2.

The score levels of a step (defaults; all in [0, 1]):

- CORRECT 1.0: every equation holds and every operand is grounded; for the answer
  step, the stated answer is the last grounded result, no step was wrong and every
  number of the question has been used as an operand.
- NO_ARITHMETIC 0.5: nothing to check (prose, or an answer with no computation
  before it): a prior, neither evidence for nor against.
- INVENTED 0.2: the equations hold but some operand is in neither the question nor
  an earlier result; also an answer that repeats such an ungrounded result, or the
  last grounded result before every number of the question was used.
- WRONG 0.0: an equation fails, or the answer contradicts the last result or
  follows an earlier wrong step.

With the `last` reduction a solution's score says "every computation checked, on the
problem's own numbers, and the answer follows from them". It still cannot tell a
right computation of the wrong operation (adding instead of subtracting).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from ttscale.config import VerifierConfig
from ttscale.types import Problem

CORRECT = 1.0
NO_ARITHMETIC = 0.5
INVENTED = 0.2
WRONG = 0.0

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


@dataclass(frozen=True)
class Equation:
    """One checkable "a op b = c": its operands, its stated result and whether it holds."""

    operands: tuple[Fraction, ...]
    result: Fraction
    holds: bool


def equations(step: str) -> list[Equation]:
    """The checkable equations of a step's text, in the order written."""
    found = []
    for m in _EQUATION.finditer(step):
        if _BEFORE_BLOCKS.search(step[: m.start()]) or _AFTER_BLOCKS.match(step[m.end() :]):
            continue
        value = _evaluate(m.group(1))
        operands = tuple(_number(t) for t in _TOKEN.findall(m.group(1))[::2])
        found.append(Equation(operands, _number(m.group(2)), value is not None and _matches(value, m.group(2))))
    return found


def stated_number(step: str) -> Fraction | None:
    """The number a step gives as its answer (boxed, or after "Answer:"), as an exact value to check."""
    found = _BOXED.findall(step) or _ANSWER.findall(step)
    return _number(found[-1]) if found else None


# fmt: off
_UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
          "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
# Words that put a number into a problem without writing it: "doubles" is "* 2", "half" is "/ 2".
_MULTIPLIERS = {
    "twice": 2, "double": 2, "doubles": 2, "doubled": 2, "half": 2, "halves": 2, "pair": 2, "pairs": 2,
    "thrice": 3, "triple": 3, "triples": 3, "tripled": 3, "quadruple": 4, "quadruples": 4, "quadrupled": 4,
    "dozen": 12, "dozens": 12, "hundred": 100,
}
# fmt: on
_WORD_VALUES: dict[str, int] = {**{w: i for i, w in enumerate(_UNITS)}, **_TENS, **_MULTIPLIERS}
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)?")


def _word_value(word: str) -> int | None:
    if "-" in word:
        tens, _, unit = word.partition("-")
        if tens in _TENS and unit in _UNITS[1:10]:
            return _TENS[tens] + _UNITS.index(unit)
        return None
    return _WORD_VALUES.get(word)


def question_numbers(question: str) -> Counter[Fraction]:
    """Every number the question states, with multiplicity: digits, number words, "a dozen".

    "three dozen" also grounds 36, the product a solution may write without showing it.
    """
    numbers: Counter[Fraction] = Counter(_number(t) for t in re.findall(_NUMBER, question))
    previous: int | None = None
    for m in _WORD.finditer(question.lower()):
        value = _word_value(m.group())
        if value is None:
            previous = None
            continue
        numbers[Fraction(value)] += 1
        if m.group() in ("dozen", "hundred") and previous is not None:
            numbers[Fraction(previous * value)] += 1
        previous = value
    return numbers


@dataclass
class _Ledger:
    """What a solution has established so far: the question's numbers and the grounded results."""

    question: Counter[Fraction]
    used: Counter[Fraction] = field(default_factory=Counter)
    grounded: set[Fraction] = field(default_factory=set)
    last_result: Fraction | None = None
    last_grounded: bool = False
    any_wrong: bool = False

    def record(self, equation: Equation) -> bool:
        """Take in one equation; whether all its operands are grounded."""
        ok = all(x in self.question or x in self.grounded for x in equation.operands)
        self.used.update(x for x in equation.operands if x in self.question)
        self.last_result, self.last_grounded = equation.result, ok and equation.holds
        if self.last_grounded:
            self.grounded.add(equation.result)
        self.any_wrong = self.any_wrong or not equation.holds
        return ok

    @property
    def all_used(self) -> bool:
        return all(self.used[x] >= n for x, n in self.question.items())


class ArithmeticRulesVerifier:
    """Scores steps by the levels of the module docstring; the constants are configurable."""

    name = "arithmetic_rules"
    n_params = 0

    def __init__(
        self,
        cfg: VerifierConfig | None = None,
        *,
        correct: float = CORRECT,
        wrong: float = WRONG,
        no_arithmetic: float = NO_ARITHMETIC,
        invented: float = INVENTED,
    ) -> None:
        self.correct, self.wrong, self.no_arithmetic, self.invented = correct, wrong, no_arithmetic, invented

    def score(self, problems: Sequence[Problem], steps: Sequence[Sequence[str]]) -> list[list[float]]:
        return [self.score_solution(p.question, s) for p, s in zip(problems, steps)]

    def score_solution(self, question: str, steps: Sequence[str]) -> list[float]:
        ledger = _Ledger(question_numbers(question))
        return [self._score_step(ledger, step) for step in steps]

    def _score_step(self, ledger: _Ledger, step: str) -> float:
        found = equations(step)
        grounded = [ledger.record(e) for e in found]
        if not all(e.holds for e in found):
            return self.wrong
        answer = stated_number(step)
        if answer is not None:
            return self._score_answer(ledger, answer)
        if not found:
            return self.no_arithmetic
        return self.correct if all(grounded) else self.invented

    def _score_answer(self, ledger: _Ledger, answer: Fraction) -> float:
        if ledger.last_result is None:
            return self.no_arithmetic
        if ledger.any_wrong or answer != ledger.last_result:
            return self.wrong
        return self.correct if ledger.last_grounded and ledger.all_used else self.invented

    def count_tokens(self, problem: Problem, steps: Sequence[str]) -> int:
        return 0
