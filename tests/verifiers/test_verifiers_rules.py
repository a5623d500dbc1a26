"""The rule verifiers, the registry and the batch planner: no model needed."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ttscale.config import VerifierConfig
from ttscale.data.synthetic import arithmetic_problem
from ttscale.types import Problem
from ttscale.verifiers import VERIFIERS, Verifier, build_verifier
from ttscale.verifiers.encoding import bucket_batches
from ttscale.verifiers.arithmetic import NO_ARITHMETIC, ArithmeticRulesVerifier, check_equations

ALL = ["arithmetic_rules", "fake", "lm_judge", "math_shepherd", "oracle", "qwen_prm", "rlhflow", "skywork", "trained_prm"]


def test_registry_names():
    assert VERIFIERS.names() == ALL


@pytest.mark.parametrize("name", ["arithmetic_rules", "oracle"])
def test_rule_verifiers_build_from_config_and_follow_the_protocol(name):
    verifier = build_verifier(VerifierConfig(name=name))
    assert isinstance(verifier, Verifier)
    assert verifier.n_params == 0
    assert verifier.count_tokens(Problem("p", "q", "1"), ["a", "b"]) == 0
    assert verifier.score([Problem("p", "q", "1")], [[]]) == [[]]


# ---- arithmetic_rules ----------------------------------------------------------------------------

EQUATIONS = [
    # (step text, verdicts)
    ("Step 1: Tom buys 4 more apples, so 5 + 4 = 9.", [True]),
    ("Step 1: Tom buys 4 more apples, so 5 + 4 = 10.", [False]),
    ("so 9 - 3 = 6 and 6 * 2 = 12", [True, True]),
    ("so 9 - 3 = 6 and 6 * 2 = 13", [True, False]),
    ("3 x 4 = 12", [True]),
    ("3 × 4 = 12", [True]),
    ("12 ÷ 4 = 3", [True]),
    ("12 / 5 = 2.4", [True]),
    ("10 / 3 = 3.33", [True]),  # a rounded decimal result is accepted
    ("10 / 4 = 2", [False]),  # an integer result must be exact
    ("2 + 3 * 4 = 14", [True]),  # precedence
    ("2 + 3 * 4 = 20", [False]),
    ("1,200 + 30 = 1,230", [True]),
    ("7 - 9 = -2", [True]),
    ("5/0 = 1", [False]),
    ("<<5+8=13>>13", [True]),  # GSM8K calculator annotations
    ("Tom has 5 apples.", []),
    ("2^3 = 8", []),  # powers are not checked
    ("a*2 + 3 = 7", []),  # part of a larger expression: not checkable
    ("2 + 3 = 5 x 2", []),
]


@pytest.mark.parametrize(("step", "verdicts"), EQUATIONS)
def test_check_equations(step, verdicts):
    assert check_equations(step)[0] == verdicts


def test_scores_of_a_right_and_a_wrong_solution():
    v = ArithmeticRulesVerifier()
    right = ["Step 1: Tom buys 4 more apples, so 5 + 4 = 9.", "Step 2: 9 x 3 = 27.", "Answer: \\boxed{27}"]
    assert v.score_solution(right) == [1.0, 1.0, 1.0]
    slip = ["Step 1: so 5 + 4 = 10.", "Step 2: 10 x 3 = 30.", "Answer: \\boxed{30}"]
    assert v.score_solution(slip) == [0.0, 1.0, 0.0]  # the answer inherits the earlier slip
    inconsistent = ["Step 1: so 5 + 4 = 9.", "Step 2: 9 x 3 = 27.", "Answer: \\boxed{26}"]
    assert v.score_solution(inconsistent) == [1.0, 1.0, 0.0]
    assert v.score_solution(["Tom thinks.", "Answer: \\boxed{3}"]) == [NO_ARITHMETIC, NO_ARITHMETIC]
    assert v.score_solution(["so 2 + 2 = 4. The answer is 4."]) == [1.0]


def test_the_constants_are_configurable():
    v = ArithmeticRulesVerifier(correct=0.9, wrong=0.1, no_arithmetic=0.3)
    assert v.score_solution(["hello", "1 + 1 = 3", "1 + 1 = 2"]) == [0.3, 0.1, 0.9]


def test_synthetic_gold_solutions_score_1_and_corrupted_ones_lose():
    rng = random.Random(0)
    v = ArithmeticRulesVerifier()
    for i in range(50):
        problem, solution = arithmetic_problem(rng, 1 + i % 5, i)
        steps = solution.split("\n")
        assert v.score([problem], [steps]) == [[1.0] * len(steps)], steps
        last = steps[-2]
        result = last.rsplit("= ", 1)[1].rstrip(".")
        bad = steps[:-2] + [last.replace(f"= {result}.", f"= {int(result) + 1}."), steps[-1]]
        assert v.score_solution(bad)[-2:] == [0.0, 0.0], bad


def test_arithmetic_scores_are_prefix_stable():
    rng = random.Random(1)
    v = ArithmeticRulesVerifier()
    for i in range(20):
        steps = arithmetic_problem(rng, 5, i)[1].split("\n")
        full = v.score_solution(steps)
        assert all(v.score_solution(steps[:k]) == full[:k] for k in range(1, len(steps)))


# ---- oracle -----------------------------------------------------------------------------------------


def test_oracle_grades_the_answer_step_and_keeps_unfinished_steps_at_1():
    v = build_verifier(VerifierConfig(name="oracle"))
    p = Problem("p", "What is 1/2 + 1/2?", "1")
    scores = v.score(
        [p, p, p],
        [
            ["1/2 + 1/2 = 1", "The final answer is $\\boxed{1}$"],
            ["1/2 + 1/2 = 2/2", "so it is \\boxed{\\frac{2}{2}}"],  # equivalent, not equal strings
            ["1/2 + 1/2 = 2", "Answer: \\boxed{2}"],
        ],
    )
    assert scores == [[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]]
    assert v.score([p], [["thinking..."]]) == [[1.0]]


# ---- batch planning ----------------------------------------------------------------------------------


@given(st.lists(st.integers(1, 300), max_size=60), st.integers(1, 2000))
def test_bucket_batches_cover_every_item_once_within_the_token_budget(lengths, budget):
    batches = bucket_batches(lengths, budget)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        padded = len(b) * max(lengths[i] for i in b)
        assert padded <= budget or len(b) == 1


def test_bucket_batches_group_similar_lengths():
    batches = bucket_batches([10, 100, 11, 101, 12, 99], 310)
    assert [sorted(b) for b in batches] == [[1, 3, 5], [0, 2, 4]]
