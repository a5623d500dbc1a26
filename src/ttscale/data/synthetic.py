"""A seeded world of arithmetic word problems with exact integer answers.

SmolLM2-135M cannot do MATH, but it solves short arithmetic stories often enough
that sampling and search show real gains on CPU. Level 1 is one small addition or
subtraction; each level adds operations, multiplication and bigger numbers.

Two wording families tell the same stories, so a run can be measured on wording its
few-shot prompts never show. `exemplar`, the few-shot prompts' own ("Tom has 5 apples.
Tom buys 4 more apples."), and `alt`: other verbs, the question sometimes first, small
numbers as words and "twice", "three times", "a dozen". The same seed gives the same
numbers in both, so a gap between them is the wording's, not the arithmetic's.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ttscale.types import Problem

WORDINGS = ("exemplar", "alt")

NAMES = ("Tom", "Anna", "Ben", "Lucy", "Sam", "Mia", "Jack", "Emma", "Leo", "Sara", "Max", "Nina")
ITEMS = ("apples", "pens", "stickers", "books", "marbles", "cards", "shells", "coins", "cookies", "stamps")

# (operations, largest starting number, largest operand, multiplication allowed)
LEVELS: dict[int, tuple[int, int, int, bool]] = {
    1: (1, 10, 9, False),
    2: (1, 30, 20, True),
    3: (2, 20, 10, False),
    4: (2, 40, 20, True),
    5: (3, 60, 30, True),
}


@dataclass(frozen=True)
class Op:
    symbol: str
    operand: int
    sentence: str
    reason: str


def _op(rng: random.Random, value: int, name: str, item: str, max_operand: int, allow_mul: bool) -> Op:
    kinds = ["add", "sub"] + (["mul"] if allow_mul and value <= 30 else [])
    kind = rng.choice(kinds)
    if kind == "sub" and value < 2:
        kind = "add"
    if kind == "add":
        b = rng.randint(1, max_operand)
        return Op("+", b, f"{name} buys {b} more {item}.", f"{name} buys {b} more {item}")
    if kind == "sub":
        b = rng.randint(1, min(max_operand, value - 1))
        return Op("-", b, f"{name} gives {b} {item} to a friend.", f"{name} gives away {b} {item}")
    k = rng.randint(2, 4)
    word = {2: "doubles", 3: "triples", 4: "quadruples"}[k]
    return Op("*", k, f"Then {name} {word} the number of {item}.", f"{name} {word} the {item}")


def _apply(value: int, op: Op) -> int:
    return {"+": value + op.operand, "-": value - op.operand, "*": value * op.operand}[op.symbol]


# {n} is the subject's name, {i} the item, {b} the operand (a word when small); every template
# keeps exactly one number per sentence, so a grounded verifier can account for all of them.
_ALT_START = (
    "{n} started the day with {v} {i}.",
    "There were {v} {i} in {n}'s box.",
    "At first {n} owned {v} {i}.",
)
_ALT_ADD = (
    "A neighbour handed {n} {b} extra {i}.",
    "Later {n} found {b} more.",
    "{n} was given another {b} {i}.",
)
_ALT_SUB = (
    "{n} lost {b} of them on the way.",
    "Then {b} {i} were handed to a cousin.",
    "{n} sold {b} at the market.",
)
_ALT_MUL = {
    2: ("After that the pile grew to twice its size.", "{n} ended up with double the {i}."),
    3: ("After that the pile grew to three times its size.", "{n} then had three times as many {i}."),
    4: ("After that the pile grew to four times its size.", "{n} then had four times as many {i}."),
}
_ALT_QUESTION = ("How many {i} does {n} have in the end?", "How many {i} are left with {n} at the end?")
_ALT_REASON = {"+": "{n} gets {b} more", "-": "{n} loses {b}", "*": "the {i} become {b} times as many"}
_SMALL_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def _alt_number(rng: random.Random, b: int) -> str:
    """Half the small numbers as words, 12 as "a dozen": wording the exemplars never use."""
    if b == 12 and rng.random() < 0.5:
        return "a dozen"
    if 2 <= b <= 10 and rng.random() < 0.5:
        return _SMALL_WORDS[b]
    return str(b)


def _alt_sentence(rng: random.Random, op: Op, name: str, item: str) -> str:
    if op.symbol == "*":
        return rng.choice(_ALT_MUL[op.operand]).format(n=name, i=item)
    templates = _ALT_ADD if op.symbol == "+" else _ALT_SUB
    return rng.choice(templates).format(n=name, i=item, b=_alt_number(rng, op.operand))


def _alt_question(rng: random.Random, name: str, item: str, start: int, ops: list[Op]) -> str:
    opening = rng.choice(_ALT_START).format(n=name, i=item, v=start)
    story = [opening] + [_alt_sentence(rng, op, name, item) for op in ops]
    question = rng.choice(_ALT_QUESTION).format(n=name, i=item)
    # The question first half the time: the exemplars always ask last.
    return " ".join([question, *story] if rng.random() < 0.5 else [*story, question])


def _alt_reason(op: Op, name: str, item: str) -> str:
    return _ALT_REASON[op.symbol].format(n=name, i=item, b=op.operand)


def arithmetic_problem(
    rng: random.Random,
    level: int,
    index: int,
    wording: str = "exemplar",
    wording_rng: random.Random | None = None,
) -> tuple[Problem, str]:
    """One problem and its worked step-by-step solution (the few-shot format).

    `rng` draws the story (the same numbers in every wording); `wording_rng` the alt
    wording's choices (default: `rng`).
    """
    n_ops, max_start, max_operand, allow_mul = LEVELS[level]
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    start = value = rng.randint(2, max_start)
    ops, steps = [], []
    for i in range(n_ops):
        op = _op(rng, value, name, item, max_operand, allow_mul)
        new = _apply(value, op)
        reason = op.reason if wording == "exemplar" else _alt_reason(op, name, item)
        steps.append(f"Step {i + 1}: {reason}, so {value} {op.symbol} {op.operand} = {new}.")
        ops.append(op)
        value = new
    if wording == "exemplar":
        question = " ".join([f"{name} has {start} {item}.", *(op.sentence for op in ops),
                             f"How many {item} does {name} have now?"])
        prefix = "arith"
    else:
        question = _alt_question(wording_rng or rng, name, item, start, ops)
        prefix = "arith-alt"
    problem = Problem(
        id=f"{prefix}-{level}-{index:05d}",
        question=question,
        answer=str(value),
        level=level,
        subject="arithmetic",
    )
    solution = "\n".join(steps + [f"Answer: \\boxed{{{value}}}"])
    return problem, solution


def arithmetic_problems(
    n: int, seed: int = 0, levels: list[int] | None = None, wording: str = "exemplar"
) -> list[Problem]:
    """n problems cycling through the levels, reproducible from the seed; see WORDINGS."""
    rng = random.Random(seed)
    wording_rng = random.Random(f"alt:{seed}")
    levels = levels or [1, 2, 3, 4, 5]
    return [arithmetic_problem(rng, levels[i % len(levels)], i, wording, wording_rng)[0] for i in range(n)]
