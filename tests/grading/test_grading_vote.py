from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttscale.errors import ConfigError
from ttscale.grading import canonical_key, vote


def test_majority_merges_spellings() -> None:
    result = vote(["\\frac12", "0.5", "3", "1/2", "3", None])
    assert result.winner == "\\frac12"
    assert result.members == (0, 1, 3)
    assert result.counts == (3, 2, 1)
    assert result.groups[-1].answer is None


def test_sympy_merge_beyond_keys() -> None:
    # Different keys, equal values: only math-verify sees it; together they outvote "2".
    result = vote(["2", "2", "\\frac{\\sqrt{3}}{3}", "\\frac{1}{\\sqrt{3}}", "\\sqrt{3}/3"])
    assert result.winner == "\\frac{\\sqrt{3}}{3}"
    assert result.members == (2, 3, 4)


def test_weighted_best_of_n() -> None:
    result = vote(["1", "2", "2", "1.0"], weights=[0.9, 0.3, 0.3, 0.2])
    assert result.winner == "1"
    assert result.weights == pytest.approx((1.1, 0.6))
    assert vote(["1", "2", "2"], weights=[0.9, 0.5, 0.5]).winner == "2"


def test_none_never_wins_unless_all_none() -> None:
    assert vote([None, None, "7"]).winner == "7"
    all_none = vote([None, None])
    assert all_none.winner is None and all_none.members == (0, 1)
    assert vote([]).winner is None


def test_ties_break_by_first_occurrence() -> None:
    assert vote(["b", "a", "a", "b"]).winner == "b"
    assert vote(["5", "6"]).winner == "5"


def test_weights_length_checked() -> None:
    with pytest.raises(ConfigError, match="weights"):
        vote(["1", "2"], weights=[1.0])


def test_vote_survives_pathological_answers() -> None:
    nasty = ["9^9^9^9^9", "100000!", "x^{" * 3400, "{{{\\frac{", "(10^{10^{10}})!", "\\sqrt{" * 500]
    start = time.perf_counter()
    result = vote(nasty + ["5", "5", "\\frac{10}{2}"], timeout=1.0)
    elapsed = time.perf_counter() - start
    assert result.winner == "5" and result.members == (6, 7, 8)
    assert sum(result.counts) == len(nasty) + 3
    # Bounded, not fast: each nasty item may cost a timeout once; a hang would blow far past this.
    assert elapsed < 30


def test_pool_restarts_a_hung_worker() -> None:
    from ttscale.grading.pool import VerifyPool

    pool = VerifyPool(n_workers=1)
    try:
        assert pool.verify_many([("1", "(10^{10^{10}})!")], timeout=0.5) == ["timeout"]
        assert pool.verify_many([("\\frac{1}{2}", "0.5")], timeout=20) == [True]
        assert pool.n_timeouts == 1 and len(pool._workers) == 1
    finally:
        pool.shutdown()
    assert pool._workers == []


_answers = st.lists(st.one_of(st.none(), st.sampled_from(["1", "2", "0.5", "\\frac{1}{2}", "x", "3.0", "3"])), max_size=40)


@settings(max_examples=60, deadline=None)
@given(_answers)
def test_counts_sum_to_n_and_winner_is_heaviest(answers: list[str | None]) -> None:
    result = vote(answers)
    assert sum(result.counts) == len(answers)
    assert sorted(m for g in result.groups for m in g.members) == list(range(len(answers)))
    real = [g for g in result.groups if g.answer is not None]
    if real:
        assert result.winner is not None
        assert result.groups[0].count == max(g.count for g in real)
    else:
        assert result.winner is None


@settings(max_examples=60, deadline=None)
@given(_answers, st.randoms(use_true_random=False))
def test_permutation_keeps_group_totals(answers: list[str | None], rng) -> None:
    shuffled = list(answers)
    rng.shuffle(shuffled)
    def totals(xs: list[str | None]) -> list[tuple[str | None, int]]:
        return sorted(((canonical_key(g.answer) if g.answer else None) or "", g.count) for g in vote(xs).groups)
    assert totals(answers) == totals(shuffled)


@settings(max_examples=40, deadline=None)
@given(_answers, st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=40, max_size=40))
def test_deterministic(answers: list[str | None], weights: list[float]) -> None:
    w = weights[: len(answers)]
    assert vote(answers, w) == vote(answers, w)
    result = vote(answers, w)
    real = [g for g in result.groups if g.answer is not None]
    if real:
        assert result.groups[0].weight == max(g.weight for g in real)


def test_shutdown_leaves_no_worker_processes() -> None:
    import multiprocessing

    from ttscale.grading import is_equiv, shutdown_pool

    assert is_equiv("\\sqrt{8}", "2\\sqrt{2}")
    shutdown_pool()
    assert multiprocessing.active_children() == []
    assert is_equiv("\\sqrt{12}", "2\\sqrt{3}")  # the pool comes back on next use
