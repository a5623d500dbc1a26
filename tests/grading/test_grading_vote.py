from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttscale.errors import ConfigError
from ttscale.grading import canonical_key, vote
from ttscale.grading.vote import distinct_texts


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


# ---- a solution and its copy up to trailing whitespace are one ---------------------------------


def test_distinct_texts_ignore_trailing_whitespace_only() -> None:
    texts = ["so 9 + 2 = 11.\n", "so 9 + 2 = 11.", " so 9 + 2 = 11.", "so 9 + 2 = 11.\n\n", "a\nb", "a b"]
    assert distinct_texts(texts) == (0, 2, 4, 5)


def test_vote_counts_a_repeated_text_once() -> None:
    answers = ["11", "11", "11", "7", "7"]
    texts = ["x = 11\n", "x = 11", "x = 11 \n\n", "y = 7", "z = 7"]
    assert vote(answers).winner == "11"
    result = vote(answers, texts=texts)
    assert result.winner == "7"
    assert result.members == (3, 4)
    assert result.groups[1].members == (0,)  # members still index the full input
    weighted = vote(answers, weights=[0.4, 0.4, 0.4, 0.5, 0.1], texts=texts)
    assert weighted.winner == "7" and weighted.weights == pytest.approx((0.6, 0.4))


def test_vote_rejects_texts_of_the_wrong_length() -> None:
    with pytest.raises(ConfigError, match="texts"):
        vote(["1", "2"], texts=["a"])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["1", "2", "3"]), st.sampled_from(["a", "b", "c"]),
                          st.sampled_from(["", "\n", " \n\n"])), max_size=12))
def test_vote_with_texts_equals_a_vote_over_the_distinct_solutions(rows) -> None:
    answers = [a for a, _, _ in rows]
    texts = [a + body + tail for a, body, tail in rows]
    keep = distinct_texts(texts)
    assert len(keep) == len({t.rstrip() for t in texts})
    assert vote(answers, texts=texts).counts == vote([answers[i] for i in keep]).counts


def test_a_tree_search_pick_counts_a_repeated_beam_once() -> None:
    """select(distinct=True): the same beam with and without its final newline votes once
    (one beam grown twice is one solution);
    independent samples (distinct=False) keep every vote."""
    from ttscale.grading.select import select
    from ttscale.types import Completion

    def c(text: str, answer: str) -> Completion:
        return Completion(text=text, steps=(text,), answer=answer, step_scores=(0.5,))

    cands = [c("so 12 * 2 = 24.", "24"), c("so 12 * 2 = 24.\n", "24"), c("so 9 + 2 = 11.", "11"),
             c("so 3 + 8 = 11.", "11")]
    assert cands[select(cands, "majority")].answer == "24"  # tie 2:2, first seen wins
    assert cands[select(cands, "majority", distinct=True)].answer == "11"  # 1:2 once the repeat is one
    assert cands[select(cands, "weighted", distinct=True)].answer == "11"
