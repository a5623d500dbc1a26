"""The golden equivalence table, checked against ttscale and scored against math-verify."""

from __future__ import annotations

import pytest
from grading_golden import GOLDEN

from ttscale.grading import canonical_key, is_equiv, is_equiv_many, vote
from ttscale.grading._worker import parse_answer


@pytest.fixture(scope="module")
def verdicts() -> dict[tuple[str, str], bool]:
    # One batched call: the sympy rows run in parallel in the pool, the rest never leave the process.
    return dict(zip([(g, p) for g, p, _ in GOLDEN], is_equiv_many([(g, p) for g, p, _ in GOLDEN], timeout=20)))


def test_table_is_big_and_balanced() -> None:
    assert len(GOLDEN) >= 150
    assert len({(g, p) for g, p, _ in GOLDEN}) == len(GOLDEN)
    assert sum(1 for *_, equal in GOLDEN if not equal) >= 60


@pytest.mark.parametrize(("gold", "pred", "equal"), GOLDEN)
def test_golden(verdicts: dict[tuple[str, str], bool], gold: str, pred: str, equal: bool) -> None:
    assert verdicts[(gold, pred)] is equal


@pytest.mark.parametrize(("gold", "pred", "equal"), [row for row in GOLDEN if not row[2]])
def test_unequal_answers_never_share_a_key(gold: str, pred: str, equal: bool) -> None:
    # vote() counts equal keys as one answer without asking sympy, so keys must never over-merge.
    assert canonical_key(gold) != canonical_key(pred)


@pytest.mark.parametrize(("gold", "pred", "equal"), GOLDEN)
def test_vote_groups_as_is_equiv_decides(gold: str, pred: str, equal: bool) -> None:
    # vote() merges by canonical key, then quick_equiv, then sympy: on every row it must agree with the table.
    assert (len(vote([gold, pred], timeout=20).groups) == 1) is equal


def test_is_equiv_single_call_matches_table() -> None:
    assert is_equiv("\\frac{\\sqrt{3}}{3}", "\\frac{1}{\\sqrt{3}}")
    assert not is_equiv("\\text{east}", "seat")


def test_math_verify_score_beside_ours(verdicts: dict[tuple[str, str], bool], capsys: pytest.CaptureFixture) -> None:
    from math_verify import verify

    ours = sum(verdicts[(g, p)] is e for g, p, e in GOLDEN)
    theirs = sum(bool(verify(parse_answer(g), parse_answer(p), timeout_seconds=None)) is e for g, p, e in GOLDEN)
    with capsys.disabled():
        print(f"\ngolden table: ttscale {ours}/{len(GOLDEN)}, math-verify {theirs}/{len(GOLDEN)}")
    assert ours >= theirs
