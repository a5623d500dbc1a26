"""Math-Verify's own test cases, graded the way a run grades a completion.

The prediction's answer comes from `extract_answer` over the whole prediction,
the gold's through `gold_answer`; no answer extracted is unequal, as in a run.
"""

from __future__ import annotations

import pytest
from math_verify_cases import CASES, SKIPPED

from ttscale.data.datasets import gold_answer
from ttscale.grading import extract_answer, is_equiv_many, vote

# Every case where ttscale and upstream's expectation differ: (index in CASES, gold, why).
DISAGREEMENTS: list[tuple[int, str, str]] = [
    (31, "$9$", "upstream extracts LaTeX only here; math across lines is no math span, but the last-number "
     "rung (like math-verify's default number extraction) finds the 9 of `Answer $ \\n 9 \\n $`"),
    (32, "$9$", "the same, for `Answer \\( \\n 9 \\n \\)`"),
    (188, "$\\\\boxed{35 cm} ++++++ \\\\boxed{4}$", "math-verify's catch-all `\\boxed{.+}` joins two boxes across "
     "`++++++`; ttscale joins boxes only across and/or/commas/\\quad (so `\\boxed{1} no no no \\boxed{2}` stays "
     "the gold 2), takes the gold as 4, and a two-element set is not 4"),
    (260, "$1 - \\frac{1}{\\mathrm{e}}$", "upstream rests on a math-verify quirk: it truncates `\\frac{1}{\\mathrm{e}}` "
     "and reads `1 - 1/e` and `1 + 1/e` as the same 1; they differ and ttscale keeps 'unequal'"),
]


def _pipeline_verdicts() -> list[bool]:
    golds = [gold_answer(gold) for _, gold, _, _ in CASES]
    preds = [extract_answer(pred) for _, _, pred, _ in CASES]
    found = [(g, p) for g, p in zip(golds, preds) if p is not None]
    verdicts = iter(is_equiv_many(found, timeout=20))  # type: ignore[arg-type]
    return [p is not None and next(verdicts) for p in preds]


@pytest.fixture(scope="module")
def verdicts() -> list[bool]:
    return _pipeline_verdicts()


def test_table_is_upstreams() -> None:
    assert len(CASES) == 265 and len(SKIPPED) == 5
    assert len({(g, p) for _, g, p, _ in CASES}) >= 250  # a few upstream rows repeat verbatim


def test_agreement_with_math_verify_suite(verdicts: list[bool], capsys: pytest.CaptureFixture) -> None:
    disagree = [i for i, (v, (*_, expected)) in enumerate(zip(verdicts, CASES)) if v != expected]
    with capsys.disabled():
        print(f"\nMath-Verify suite, graded as a run: {len(CASES) - len(disagree)}/{len(CASES)}")
    assert disagree == [i for i, _, _ in DISAGREEMENTS]
    assert len(CASES) - len(disagree) >= 0.98 * len(CASES)


@pytest.mark.parametrize(("index", "gold", "reason"), DISAGREEMENTS)
def test_listed_disagreements_are_those_rows(index: int, gold: str, reason: str) -> None:
    assert CASES[index][1] == gold and reason


def test_vote_groups_like_is_equiv(verdicts: list[bool]) -> None:
    # vote() merges by canonical key and quick_equiv before sympy: it must agree with is_equiv.
    for (_, gold, pred, _), equal in zip(CASES, verdicts):
        answer = extract_answer(pred)
        if answer is None:
            continue
        result = vote([gold_answer(gold), answer], timeout=20)
        assert (len(result.groups) == 1) is equal, (gold, answer)
