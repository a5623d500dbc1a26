"""Paired differences: the same problems, one difference each; and the report's section built from them."""

from ttscale.eval.metrics import Point
from ttscale.eval.paired import paired_differences
from ttscale.eval.records import Curve
from ttscale.eval.report import _paired_section


def curve(method: str, n: int, right: set[int], ids: range = range(60), kind: str = "vote") -> Curve:
    correct = {f"p{i}": float(i in right) for i in ids}
    zeros = dict.fromkeys(correct, 0.0)
    return Curve(method=method, kind=kind, strategy="best_of_n", points=[Point(method, n, correct, zeros, zeros)])


def test_a_difference_the_unpaired_intervals_hide_is_found_paired():
    # B is right on 9 problems, A on those 9 and 9 more: 30% against 15%, and each interval alone is wide
    b = set(range(9))
    a = b | set(range(30, 39))
    ca, cb = curve("beam", 16, a), curve("majority", 16, b)
    low_a, _ = ca.points[0].interval()
    _, high_b = cb.points[0].interval()
    assert low_a <= high_b  # the unpaired intervals overlap: unpaired, these two would not be told apart
    (d,) = paired_differences([cb, ca])
    assert (d.a, d.b, d.n, d.n_problems) == ("beam", "majority", 16, 60)
    assert abs(d.difference - 0.15) < 1e-9 and 0 < d.ci[0] <= d.ci[1] and d.separated


def test_pairs_use_only_shared_problems_and_skip_the_oracle_and_other_budgets():
    a = curve("weighted", 4, set(range(20)), ids=range(0, 40))
    b = curve("majority", 4, set(range(20, 40)), ids=range(20, 60))  # shares p20..p39, where only b is right
    other_n = curve("naive", 8, set(), ids=range(60))
    oracle = curve("pass", 4, set(range(60)), kind="pass")
    (d,) = paired_differences([a, b, other_n, oracle])
    assert d.n_problems == 20 and (d.a, d.b) == ("majority", "weighted") and d.difference == 1.0


def test_equal_methods_are_not_separated_and_the_report_says_so():
    same = set(range(0, 60, 3))
    flipped = set(range(1, 60, 3))  # as accurate, right on other problems
    text = _paired_section([curve("a", 4, same), curve("b", 4, flipped)])
    (d,) = paired_differences([curve("a", 4, same), curve("b", 4, flipped)])
    assert d.difference == 0.0 and not d.separated
    assert "| 4 | a | b | 60 | +0.0 [" in text and text.rstrip().endswith("| no |")
