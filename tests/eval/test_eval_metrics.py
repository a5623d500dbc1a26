"""Curves from hand-built completions whose right answers are known exactly."""

from itertools import combinations
from math import comb

import pytest
from eval_helpers import completion, problem, result
from hypothesis import given
from hypothesis import strategies as st

from ttscale.eval.metrics import Point, pass_at_k, search_point, subsampled_points
from ttscale.grading import correctness


@given(st.integers(1, 12).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_pass_at_k_is_the_unbiased_estimator(nck):
    n, c, k = nck
    assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k))
    # ... which is the exact fraction of k-subsets holding at least one right sample.
    hits = [any(i < c for i in s) for s in combinations(range(n), k)]
    assert pass_at_k(n, c, k) == pytest.approx(sum(hits) / len(hits))


def test_pass_at_k_known_value():
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)  # 1 - C(3,2)/C(5,2) = 1 - 3/10


def _majority_set():
    return [
        result(problem("a"), [completion("1"), completion("2"), completion("1"), completion("3")]),  # maj: 1, right
        result(problem("b"), [completion("2"), completion("1"), completion("2"), completion("3")]),  # maj: 2, wrong
        result(problem("c"), [completion("\\frac{1}{2}"), completion("0.5"), completion("7"), completion("1")]),
    ]


def test_majority_at_4_and_pass_at_k_exact():
    results = _majority_set()
    results[2] = result(problem("c", gold="0.5"), results[2].completions)  # 1/2 == 0.5: two votes, right
    correct = correctness(results)
    assert correct == {"a": [True, False, True, False], "b": [False, True, False, False],
                       "c": [True, True, False, False]}
    points = subsampled_points(results, correct, {"majority": ("majority", "last")}, seeds=4)
    at = {p.n: p for p in points["majority"]}
    assert at[4].accuracy() == pytest.approx(2 / 3) and at[4].seed_accuracy == (2 / 3,)  # N = N_max: one draw
    assert len(at[2].seed_accuracy) == 4  # smaller N: one accuracy per seed
    passes = {p.n: p.accuracy() for p in points["pass"]}
    assert passes[1] == pytest.approx((2 / 4 + 1 / 4 + 2 / 4) / 3)
    assert passes[2] == pytest.approx((pass_at_k(4, 2, 2) + pass_at_k(4, 1, 2) + pass_at_k(4, 2, 2)) / 3)
    assert passes[4] == 1.0


def test_weighted_naive_and_reductions_pick_differently():
    # gold 1. last scores: 0.9 for the lone "1", 0.3 + 0.4 for the two "2"s -> weighted and naive pick 1,
    # majority picks 2. With `min`, the "1" scores 0.1 < 0.3 + 0.4: weighted and naive flip to 2.
    r = result(problem("w"), [completion("1", [0.1, 0.9]), completion("2", [0.5, 0.3]), completion("2", [0.6, 0.4])])
    correct = correctness([r])
    methods = {"majority": ("majority", "last"), "naive": ("naive", "last"), "weighted": ("weighted", "last"),
               "naive[min]": ("naive", "min"), "weighted[min]": ("weighted", "min"), "weighted[mean]": ("weighted", "mean")}
    top = {m: ps[-1].accuracy() for m, ps in subsampled_points([r], correct, methods, seeds=2).items()}
    assert top == {"majority": 0.0, "naive": 1.0, "weighted": 1.0, "naive[min]": 0.0, "weighted[min]": 0.0,
                   "weighted[mean]": 0.0, "pass": 1.0}  # mean: 0.5 vs 0.4 + 0.5


def test_subsampled_compute_scales_by_k_over_n():
    r = result(problem("t"), [completion("1")] * 4, tokens=400, flops=800.0)
    points = subsampled_points([r], correctness([r]), {"majority": ("majority", "last")}, seeds=3)
    assert [(p.n, p.mean_tokens(), p.mean_flops()) for p in points["majority"]] == [
        (1, 100, 200), (2, 200, 400), (4, 400, 800)]


def test_failed_problem_counts_wrong_and_search_point_uses_selected():
    ok = result(problem("x"), [completion("2"), completion("1")], strategy="beam_search", selected=1, tokens=50)
    failed = result(problem("y"), [], strategy="beam_search", selected=None, error="boom", tokens=7)
    p = search_point("beam_search", 2, [ok, failed], correctness([ok, failed]))
    assert p.correct == {"x": 1.0, "y": 0.0} and p.accuracy() == 0.5 and p.mean_tokens() == pytest.approx(28.5)
    points = subsampled_points([ok, failed], correctness([ok, failed]), {"majority": ("majority", "last")}, 2)
    assert points["pass"][-1].correct == {"x": 1.0, "y": 0.0}


def test_the_interval_is_95_percent():
    # 50 of 100 problems right: a resampled accuracy is Binomial(100, 0.5) / 100, whose 2.5% and 97.5%
    # quantiles are 0.40 and 0.60 exactly (a 90% interval would be 0.42 to 0.58).
    point = Point("m", 4, {str(i): float(i < 50) for i in range(100)}, {}, {})
    assert point.interval() == pytest.approx((0.40, 0.60), abs=0.011)


def test_a_tree_search_curve_counts_a_repeated_beam_once_as_its_pick_did():
    """At k = N the majority curve is the run's own accuracy: a beam grown twice (one copy ending on its
    delimiter) votes once in both, so 7 beats 11 two to one, not on a two-two tie to the first seen."""
    from dataclasses import replace

    from ttscale.eval.metrics import run_metrics
    from ttscale.grading.select import select

    texts = [("x = 11\n", "11"), ("x = 11", "11"), ("y = 7", "7"), ("z = 7", "7")]
    cands = [replace(completion(a), text=t, steps=(t,)) for t, a in texts]
    tree = result(problem("t", gold="7"), cands, strategy="beam_search", selected=select(cands, "majority", distinct=True))
    tree = replace(tree, distinct=True)
    m = run_metrics([tree])
    assert m["accuracy"] == 1.0 and m["curves"]["majority"]["4"] == 1.0
    sampled = replace(tree, distinct=False, selected=select(cands, "majority"))  # independent samples: two votes each
    m = run_metrics([sampled])
    assert m["accuracy"] == 0.0 and m["curves"]["majority"]["4"] == 0.0
