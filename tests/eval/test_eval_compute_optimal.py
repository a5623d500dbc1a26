"""Difficulty bins and the cross-validated compute-optimal selector on cases with known answers."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttscale.data.policy import Policy, PolicyEntry, assign_bin
from ttscale.errors import ConfigError
from ttscale.eval.compute_optimal import apply, best, cross_validate, fit, folds
from ttscale.eval.difficulty import make_binning, quantile_edges
from ttscale.eval.metrics import Point


def point(method, hits, n=4, flops=1.0):
    ids = [f"p{i}" for i in range(len(hits))]
    return Point(method, n, dict(zip(ids, map(float, hits))), dict.fromkeys(ids, 10.0), dict.fromkeys(ids, flops))


def test_quantile_bins_easiest_first():
    scores = {f"p{i}": i / 9 for i in range(10)}  # two problems per quintile
    b = make_binning("model", scores)
    assert len(b.edges) == 4 and list(b.edges) == sorted(b.edges)
    assert [b.bins[f"p{i}"] for i in range(10)] == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    assert b.counts() == {1: 2, 2: 2, 3: 2, 4: 2, 5: 2}
    assert assign_bin(10.0, b.edges) == 1 and assign_bin(-1.0, b.edges) == 5
    assert quantile_edges([0.0, 0.0, 0.0, 1.0]) == pytest.approx((0.0, 0.0, 0.0, 0.4))  # ties: some bins stay empty


def test_cv_selection_when_the_best_strategy_differs_per_bin():
    # p0-p3 are easy (bin 1): only A solves them; p4-p7 are hard (bin 2): only B does.
    a, b = point("A", [1, 1, 1, 1, 0, 0, 0, 0]), point("B", [0, 0, 0, 0, 1, 1, 1, 1])
    bins = {f"p{i}": 1 if i < 4 else 2 for i in range(8)}
    ids = sorted(bins)
    chosen, _ = fit([a, b], bins, ids)
    assert {k: p.method for k, p in chosen.items()} == {1: "A", 2: "B"}
    out = cross_validate({4: [a, b]}, bins, ids)
    assert out.cv[0].accuracy == 1.0 and out.in_sample[0].accuracy == 1.0
    assert out.best_fixed[0].accuracy == 0.5 and out.choices[4] == {1: "A", 2: "B"}
    for f in out.folds:
        assert f.test_accuracy == 1.0 and f.best_fixed_train_accuracy == 0.5


def test_cv_is_honest_when_choices_overfit():
    # No bin structure: A and B each solve a different half of each bin. Chosen on one fold, the
    # winner flips on the other, so the CV number falls below the in-sample one.
    a, b = point("A", [1, 0, 1, 0, 0, 1, 0, 1]), point("B", [0, 1, 0, 1, 1, 0, 1, 0])
    bins = {f"p{i}": 1 if i < 4 else 2 for i in range(8)}
    split = folds(bins, sorted(bins))
    assert sorted(i for f in split for i in f) == sorted(bins) and all({bins[i] for i in f} == {1, 2} for f in split)
    out = cross_validate({4: [a, b]}, bins, sorted(bins))
    assert out.cv[0].accuracy <= out.in_sample[0].accuracy


def test_ties_go_to_the_cheaper_point():
    cheap, dear = point("cheap", [1, 0], flops=1.0), point("dear", [1, 0], flops=9.0)
    assert best([dear, cheap], ["p0", "p1"]).method == "cheap"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.booleans(), min_size=10, max_size=10), min_size=1, max_size=4),
       st.lists(st.integers(1, 5), min_size=10, max_size=10))
def test_never_below_the_best_fixed_strategy_on_training_folds(matrix, bin_list):
    points = [point(f"S{j}", row) for j, row in enumerate(matrix)]
    bins = {f"p{i}": b for i, b in enumerate(bin_list)}
    out = cross_validate({4: points}, bins, sorted(bins))
    for f in out.folds:
        assert f.train_accuracy >= f.best_fixed_train_accuracy - 1e-12
    assert out.in_sample[0].accuracy >= out.best_fixed[0].accuracy - 1e-12
    chosen, overall = fit(points, bins, sorted(bins))
    assert apply(chosen, overall, bins, sorted(bins)).accuracy == pytest.approx(out.in_sample[0].accuracy)


def test_policy_round_trip_and_budget_lookup(tmp_path):
    entry = PolicyEntry("beam_search", "beam_search", {"n": 4, "beam_width": 2}, 0.5)
    policy = Policy((0.2, 0.4, 0.6, 0.8), "min", {4: {1: entry}, 16: {1: entry, 5: entry}}, probe_n=2)
    policy.save(tmp_path / "policy.json")
    again = Policy.load(tmp_path / "policy.json")
    assert again == policy and again.bin_of(0.9) == 1 and again.bin_of(0.1) == 5
    assert again.for_budget(8) is again.budgets[4] and again.for_budget(64) is again.budgets[16]
    assert again.for_budget(1) is again.budgets[4]
    assert json.loads((tmp_path / "policy.json").read_text())["edges"] == [0.2, 0.4, 0.6, 0.8]


def test_bad_policy_is_a_clear_config_error(tmp_path):
    with pytest.raises(ConfigError, match="needs a policy.json: set search.policy"):
        Policy.load(None)
    with pytest.raises(ConfigError, match="file not found"):
        Policy.load(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text('{"edges": []}')
    with pytest.raises(ConfigError, match="is not a policy.json"):
        Policy.load(tmp_path / "bad.json")


def test_a_policy_with_an_unknown_reduction_is_refused_naming_it(tmp_path):
    (tmp_path / "p.json").write_text(json.dumps({"edges": [0.5], "reduction": "median",
                                                 "budgets": {"4": {"1": {"method": "m", "strategy": "best_of_n",
                                                                         "settings": {"n": 4}, "accuracy": 0.5}}}}))
    with pytest.raises(ConfigError, match="reduction 'median' is not one of last, min, prod, mean"):
        Policy.load(tmp_path / "p.json")
