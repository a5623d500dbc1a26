"""A seeded world of arithmetic word problems with exact integer answers.

SmolLM2-135M cannot do MATH, but it solves short arithmetic stories often enough
that sampling and search show real gains on CPU. Level 1 is one small addition or
subtraction; each level adds operations, multiplication and bigger numbers.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ttscale.types import Problem

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


def arithmetic_problem(rng: random.Random, level: int, index: int) -> tuple[Problem, str]:
    """One problem and its worked step-by-step solution (the few-shot format)."""
    n_ops, max_start, max_operand, allow_mul = LEVELS[level]
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    value = rng.randint(2, max_start)
    sentences = [f"{name} has {value} {item}."]
    steps = []
    for i in range(n_ops):
        op = _op(rng, value, name, item, max_operand, allow_mul)
        new = _apply(value, op)
        sentences.append(op.sentence)
        steps.append(f"Step {i + 1}: {op.reason}, so {value} {op.symbol} {op.operand} = {new}.")
        value = new
    sentences.append(f"How many {item} does {name} have now?")
    problem = Problem(
        id=f"arith-{level}-{index:05d}",
        question=" ".join(sentences),
        answer=str(value),
        level=level,
        subject="arithmetic",
    )
    solution = "\n".join(steps + [f"Answer: \\boxed{{{value}}}"])
    return problem, solution


def arithmetic_problems(n: int, seed: int = 0, levels: list[int] | None = None) -> list[Problem]:
    """n problems cycling through the levels, reproducible from the seed."""
    rng = random.Random(seed)
    levels = levels or [1, 2, 3, 4, 5]
    return [arithmetic_problem(rng, levels[i % len(levels)], i)[0] for i in range(n)]
