"""The rule verifiers, the registry and the batch planner: no model needed."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ttscale.config import VerifierConfig
from ttscale.data.synthetic import arithmetic_problem
from ttscale.types import Problem
from ttscale.verifiers import VERIFIERS, Verifier, build_verifier
from ttscale.verifiers.arithmetic import (
    INVENTED,
    NO_ARITHMETIC,
    WRONG,
    ArithmeticRulesVerifier,
    equations,
    question_numbers,
)
from ttscale.verifiers.encoding import bucket_batches

ALL = ["arithmetic_rules", "fake", "http", "lm_judge", "math_shepherd", "oracle", "qwen_prm", "rlhflow", "self_certainty",
       "skywork", "think_judge", "trained_prm"]


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
def test_each_checkable_equation_gets_a_verdict(step, verdicts):
    assert [e.holds for e in equations(step)] == verdicts


Q = "Tom has 5 apples. Tom buys 4 more apples. Then Tom triples the number of apples. How many apples?"


def test_scores_of_a_right_and_a_wrong_solution():
    v = ArithmeticRulesVerifier()
    right = ["Step 1: Tom buys 4 more apples, so 5 + 4 = 9.", "Step 2: 9 x 3 = 27.", "Answer: \\boxed{27}"]
    assert v.score_solution(Q, right) == [1.0, 1.0, 1.0]
    slip = ["Step 1: so 5 + 4 = 10.", "Step 2: 10 x 3 = 30.", "Answer: \\boxed{30}"]
    # a wrong result grounds nothing after it, and the answer inherits the slip
    assert v.score_solution(Q, slip) == [0.0, INVENTED, 0.0]
    inconsistent = ["Step 1: so 5 + 4 = 9.", "Step 2: 9 x 3 = 27.", "Answer: \\boxed{26}"]
    assert v.score_solution(Q, inconsistent) == [1.0, 1.0, 0.0]
    assert v.score_solution(Q, ["Tom thinks.", "Answer: \\boxed{3}"]) == [NO_ARITHMETIC, NO_ARITHMETIC]


# Each rule of the module docstring, on hand-written steps: (question, steps, scores).
GROUNDING = [
    # an operand from the question's digits, then from an earlier result: grounded
    ("Ana has 29 shells. Ana gives 8 away.", ["so 29 - 8 = 21.", "Answer: 21"], [1.0, 1.0]),
    # beams seen in search: right arithmetic on numbers that are not in the problem
    ("Ana had 29 shells and gave 8 of them to a friend.", ["Ana has 12 shells, so 12*2 = 24."], [INVENTED]),
    ("Ana had 29 shells and gave 8 of them to a friend.", ["so 9 + 2 = 11."], [INVENTED]),
    # one invented operand among grounded ones is enough to lose
    ("Ana has 29 shells. Ana gives 8 away.", ["so 29 - 8 + 1 = 22."], [INVENTED]),
    # a wrong computation is lowest, grounded or not
    ("Ana has 29 shells. Ana gives 8 away.", ["so 29 - 8 = 20."], [WRONG]),
    ("Ana has 29 shells. Ana gives 8 away.", ["so 3 + 3 = 7."], [WRONG]),
    # number words: "twice", "doubles", "a dozen", spelled numbers, "three dozen"
    ("Ben has a dozen pens. He buys twice as many.", ["so 12 * 2 = 24.", "so 12 + 24 = 36."], [1.0, 1.0]),
    ("Ben has seven pens and doubles them.", ["so 7 * 2 = 14."], [1.0]),
    ("Ben has twenty-five pens and loses three.", ["so 25 - 3 = 22."], [1.0]),
    ("Ben buys three dozen pens.", ["so 36 + 0 = 36."], [INVENTED]),  # 0 is not in the question
    ("Ben buys three dozen pens and 4 more.", ["so 36 + 4 = 40."], [1.0]),
    # a result of the same step grounds a later equation of that step
    ("Ana has 9 shells, finds 3 and doubles them.", ["so 9 + 3 = 12 and 12 * 2 = 24."], [1.0]),
    # the result of an invented computation grounds nothing after it
    ("Ana has 9 shells.", ["so 4 + 4 = 8.", "so 9 + 8 = 17."], [INVENTED, INVENTED]),
    # the answer step: the last grounded result, every number used
    ("Ana has 9 shells, finds 3 and doubles them.", ["so 9 + 3 = 12.", "so 12 * 2 = 24.", "\\boxed{24}"],
     [1.0, 1.0, 1.0]),
    # ... the last grounded result before every number was used (the "doubles" is left out)
    ("Ana has 9 shells, finds 3 and doubles them.", ["so 9 + 3 = 12.", "Answer: \\boxed{12}"], [1.0, INVENTED]),
    # ... a number used twice in the question must be used twice
    ("Ana has 4 shells, finds 4 more and 4 more.", ["so 4 + 4 = 8.", "The answer is 8."], [1.0, INVENTED]),
    ("Ana has 4 shells, finds 4 more and 4 more.", ["so 4 + 4 + 4 = 12.", "The answer is 12."], [1.0, 1.0]),
    # ... an answer repeating an invented result
    ("Ana has 9 shells.", ["so 9 + 1 = 10.", "Answer: \\boxed{10}"], [INVENTED, INVENTED]),
    # ... an answer that is not the last result, or follows a wrong step
    ("Ana has 9 shells, finds 3.", ["so 9 + 3 = 12.", "Answer: \\boxed{9}"], [1.0, WRONG]),
    ("Ana has 9 shells, finds 3.", ["so 9 + 3 = 13.", "so 13 + 0 = 13.", "Answer: 13"], [WRONG, INVENTED, WRONG]),
    # ... an answer with its computation in the same step
    ("Ana has 2 shells and finds 2.", ["so 2 + 2 = 4. The answer is 4."], [1.0]),
    # ... an answer with nothing computed before it is a prior
    ("Ana has 2 shells and finds 2.", ["Answer: \\boxed{4}"], [NO_ARITHMETIC]),
    # prose is a prior whatever its numbers
    ("Ana has 2 shells.", ["Ana has 7 shells now."], [NO_ARITHMETIC]),
]


@pytest.mark.parametrize(("question", "steps", "scores"), GROUNDING)
def test_grounding_rules(question, steps, scores):
    assert ArithmeticRulesVerifier().score_solution(question, steps) == scores


def test_score_reads_each_problem_of_the_batch():
    v = ArithmeticRulesVerifier()
    steps = ["so 5 + 4 = 9.", "Answer: 9"]
    problems = [Problem("a", "Tom has 5 pens and buys 4.", "9"), Problem("b", "Tom has 6 pens and buys 3.", "9")]
    assert v.score(problems, [steps, steps]) == [[1.0, 1.0], [INVENTED, INVENTED]]


@pytest.mark.parametrize(
    ("question", "numbers"),
    [
        ("Tom has 5 apples and buys 4 more.", {5: 1, 4: 1}),
        ("Tom has 1,200 coins.", {1200: 1}),
        ("Tom has a dozen eggs and twice as many pens.", {12: 1, 2: 1}),
        ("Tom has three dozen eggs.", {3: 1, 12: 1, 36: 1}),
        ("Tom has forty-two cards, then halves them.", {42: 1, 2: 1}),
        ("Someone often writes.", {}),  # no number hides inside a longer word
    ],
)
def test_question_numbers(question, numbers):
    assert question_numbers(question) == {Fraction(k): n for k, n in numbers.items()}


def test_the_constants_are_configurable():
    v = ArithmeticRulesVerifier(correct=0.9, wrong=0.1, no_arithmetic=0.3, invented=0.6)
    assert v.score_solution("1 and 1", ["hello", "1 + 1 = 3", "1 + 1 = 2", "5 + 5 = 10"]) == [0.3, 0.1, 0.9, 0.6]


def gold_solutions(seed: int, count: int):
    """(problem, gold steps) of generated problems over the five levels."""
    rng = random.Random(seed)
    for i in range(count):
        problem, solution = arithmetic_problem(rng, 1 + i % 5, i)
        yield problem, solution.split("\n")


def test_scores_are_in_the_unit_interval():
    v = ArithmeticRulesVerifier()
    for problem, steps in gold_solutions(3, 30):
        noisy = [s.replace("1", "2") if j % 2 else s for j, s in enumerate(steps)]
        assert all(0.0 <= x <= 1.0 for x in v.score([problem], [noisy])[0])


def test_synthetic_gold_solutions_score_1_and_corrupted_ones_lose():
    v = ArithmeticRulesVerifier()
    for problem, steps in gold_solutions(0, 50):
        assert v.score([problem], [steps]) == [[1.0] * len(steps)], steps
        last = steps[-2]
        result = last.rsplit("= ", 1)[1].rstrip(".")
        bad = steps[:-2] + [last.replace(f"= {result}.", f"= {int(result) + 1}."), steps[-1]]
        assert v.score([problem], [bad])[0][-2:] == [0.0, 0.0], bad


def test_arithmetic_scores_are_prefix_stable():
    rng = random.Random(1)
    v = ArithmeticRulesVerifier()
    for i in range(20):
        problem, solution = arithmetic_problem(rng, 5, i)
        steps = solution.split("\n")
        full = v.score_solution(problem.question, steps)
        assert all(v.score_solution(problem.question, steps[:k]) == full[:k] for k in range(1, len(steps)))


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
