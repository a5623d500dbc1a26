"""The confidence measures (DeepConf, Fu et al. 2025; self-certainty) on hand-made log-probability arrays."""

import math

import pytest

from ttscale.confidence import (
    bottom_groups,
    group_confidence,
    lowest_group,
    prefix_certainty,
    self_certainty,
    split_rows,
    summarize,
    tail_confidence,
    token_confidence,
    trace_confidence,
)
from ttscale.types import Completion, ConfidenceSummary

LOG = math.log


def test_token_confidence_is_the_negative_mean_top_k_logprob():
    peaked = [LOG(0.97), LOG(0.02), LOG(0.01)]
    flat = [LOG(0.34), LOG(0.33), LOG(0.33)]
    conf = token_confidence([peaked, flat])
    assert conf[0] == pytest.approx(-(LOG(0.97) + LOG(0.02) + LOG(0.01)) / 3)
    assert conf[0] > conf[1]  # a peaked distribution is the confident one
    assert token_confidence([[]]) == [0.0]


def test_group_confidence_slides_a_window():
    assert group_confidence([1.0, 2.0, 3.0, 4.0, 5.0], 2) == [1.5, 2.5, 3.5, 4.5]
    assert group_confidence([1.0, 2.0, 6.0], 3) == [3.0]
    assert group_confidence([2.0, 4.0], 8) == [3.0]  # shorter than a window: one group, its mean
    assert group_confidence([], 4) == []


def test_lowest_group_finds_a_local_collapse_the_mean_hides():
    steady = [3.0] * 20
    dip = [4.0] * 8 + [0.5] * 4 + [4.0] * 8
    assert sum(dip) / 20 > sum(steady) / 20
    assert lowest_group(group_confidence(dip, 4)) == pytest.approx(0.5)
    assert lowest_group(group_confidence(dip, 4)) < lowest_group(group_confidence(steady, 4))


def test_bottom_ten_percent_averages_the_lowest_groups():
    groups = [float(g) for g in range(1, 21)]  # 20 groups: the lowest 2
    assert bottom_groups(groups, 0.1) == pytest.approx(1.5)
    assert bottom_groups([5.0, 7.0], 0.1) == 5.0  # at least one group
    assert bottom_groups([], 0.1) == 0.0


def test_tail_confidence_reads_the_last_tokens():
    assert tail_confidence([9.0, 9.0, 1.0, 3.0], 2) == 2.0
    assert tail_confidence([4.0], 8) == 4.0 and tail_confidence([], 3) == 0.0


def test_self_certainty_is_kl_from_uniform():
    uniform = [LOG(0.25)] * 4
    assert self_certainty([uniform]) == pytest.approx(0.0, abs=1e-12)
    p = [0.7, 0.2, 0.1]
    kl = sum((1 / 3) * LOG((1 / 3) / q) for q in p)
    assert self_certainty([[LOG(q) for q in p]]) == pytest.approx(kl)
    # only the top k are known: they are renormalised, so a scaled row is the same distribution
    assert self_certainty([[LOG(q / 2) for q in p]]) == pytest.approx(kl)
    assert self_certainty([[LOG(0.9), LOG(0.1)], uniform]) == pytest.approx(
        (0.5 * LOG(0.5 / 0.9) + 0.5 * LOG(0.5 / 0.1)) / 2)


def test_summary_and_its_round_trip_through_completions_jsonl():
    rows = [[LOG(0.9), LOG(0.05)]] * 6 + [[LOG(0.4), LOG(0.3)]] * 2
    s = summarize(rows, window=4)
    conf = token_confidence(rows)
    assert s.n_tokens == 8 and s.mean == pytest.approx(sum(conf) / 8)
    assert s.lowest_group == pytest.approx(sum(conf[4:]) / 4) == s.tail
    assert s.lowest_group <= s.bottom10_group <= s.mean
    assert trace_confidence(s, "tail") == s.tail and trace_confidence(None, "mean") == 0.0
    c = Completion(text="x", steps=("x",), answer="1", confidence=s, dropped="stopped")
    assert Completion.from_dict(c.to_dict()) == c
    plain = Completion(text="x", steps=("x",), answer="1")
    assert set(plain.to_dict()) == {"text", "steps", "answer", "step_scores", "n_tokens", "finished", "finish_reason"}
    assert ConfidenceSummary.from_dict(s.to_dict()) == s


def test_prefix_certainty_is_the_trace_measure_read_at_each_step_end():
    sure, unsure = [LOG(0.97), LOG(0.02), LOG(0.01)], [LOG(0.4), LOG(0.35), LOG(0.25)]
    steps = [[sure, sure], [unsure], [], [sure, unsure, unsure]]
    values = prefix_certainty(steps)
    flat = [row for step in steps for row in step]
    assert values[-1] == pytest.approx(self_certainty(flat))  # the last step holds the whole trace's
    assert values[0] == pytest.approx(self_certainty([sure])) and values[1] < values[0]
    assert values[2] == values[1]  # a step with no rows keeps the value before it
    # appending steps never changes an earlier step's value (beam search prunes on it)
    assert prefix_certainty(steps[:2]) == values[:2]
    assert prefix_certainty([[], []]) == [0.0, 0.0]


@pytest.mark.parametrize("n_rows,weights", [(10, [3, 3, 4]), (7, [1, 1]), (5, [0, 2, 3]), (4, [2, 2, 2, 2, 2]),
                                            (0, [3, 1]), (6, [0, 0])])
def test_split_rows_cuts_consecutive_proportional_pieces(n_rows, weights):
    rows = [[float(i)] for i in range(n_rows)]
    pieces = split_rows(rows, weights)
    assert len(pieces) == len(weights)
    assert [r for piece in pieces for r in piece] == rows  # every row once, in order
    if sum(weights):  # each boundary within half a row of its share
        ends = [sum(len(p) for p in pieces[: k + 1]) for k in range(len(pieces))]
        shares = [n_rows * sum(weights[: k + 1]) / sum(weights) for k in range(len(weights))]
        assert all(abs(e - x) <= 0.5 for e, x in zip(ends, shares))


def test_split_rows_gives_a_word_per_row_back_to_its_step():
    """The fake backend's tokens are words and so is its count: each step gets exactly its own rows."""
    steps = ["Step 1: so 2 + 2 = 4.\n", "Step 2: then 4 - 1 = 3.\n", "Answer: \\boxed{3}"]
    rows = [[float(i)] for i in range(sum(len(x.split()) for x in steps))]
    pieces = split_rows(rows, [len(x.split()) for x in steps])
    assert [len(p) for p in pieces] == [8, 8, 2] and pieces[1][0] == [8.0]
