"""The second wording family of synthetic:arithmetic, the one the few-shot prompts never show."""

import random
import re

import pytest

from ttscale.config import DatasetConfig
from ttscale.data.datasets import load_problems
from ttscale.data.prompts import exemplars
from ttscale.data.synthetic import arithmetic_problem, arithmetic_problems
from ttscale.errors import ConfigError
from ttscale.verifiers.arithmetic import ArithmeticRulesVerifier

# Phrases of the exemplar family; the alt family must use none of them.
EXEMPLAR_PHRASES = (" buys ", " gives ", " doubles ", " triples ", " quadruples ", " have now?", " has ")


def test_alt_tells_the_same_stories_in_other_words():
    base, alt = arithmetic_problems(60, seed=5), arithmetic_problems(60, seed=5, wording="alt")
    assert [p.answer for p in alt] == [p.answer for p in base]
    assert [p.level for p in alt] == [p.level for p in base]
    assert all(a.question != b.question for a, b in zip(alt, base))
    assert not {p.id for p in alt} & {p.id for p in base}  # the families never share a row id
    for p in alt:
        assert not any(phrase in p.question for phrase in EXEMPLAR_PHRASES), p.question


def test_alt_uses_number_words_and_both_sentence_orders():
    questions = [p.question for p in arithmetic_problems(200, seed=0, wording="alt")]
    assert any(" twice " in q for q in questions) and any("three times" in q for q in questions)
    assert any("a dozen" in q for q in questions)
    assert any(re.search(r"\b(two|three|four|five|six|seven|eight|nine|ten)\b \w", q) for q in questions)
    assert 40 < sum(q.startswith("How many") for q in questions) < 160


def test_alt_is_seeded():
    assert arithmetic_problems(20, seed=1, wording="alt") == arithmetic_problems(20, seed=1, wording="alt")
    assert arithmetic_problems(20, seed=1, wording="alt") != arithmetic_problems(20, seed=2, wording="alt")


@pytest.mark.parametrize("wording", ["exemplar", "alt"])
def test_gold_solutions_are_fully_grounded_in_either_wording(wording):
    # Every number of the question, written however, is an operand of the gold solution.
    rng, v = random.Random(2), ArithmeticRulesVerifier()
    for i in range(100):
        problem, solution = arithmetic_problem(rng, 1 + i % 5, i, wording)
        steps = solution.split("\n")
        assert v.score([problem], [steps]) == [[1.0] * len(steps)], (problem.question, steps)


def test_the_dataset_option_selects_the_wording():
    alt = load_problems(DatasetConfig(source="synthetic:arithmetic", synthetic_size=10, wording="alt"))
    assert alt == arithmetic_problems(10, wording="alt")
    assert load_problems(DatasetConfig(source="synthetic:arithmetic", synthetic_size=10)) == arithmetic_problems(10)
    with pytest.raises(ConfigError, match="wording"):
        DatasetConfig(wording="fancy")


def test_prompt_exemplars_keep_the_first_wording():
    for question, _ in exemplars(4, "\n"):
        assert " has " in question and question.endswith("have now?")
