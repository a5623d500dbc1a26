import math

import pytest

from ttscale.learn.agreement import rule_label, step_agreement
from ttscale.verifiers.arithmetic import CORRECT, INVENTED, NO_ARITHMETIC, WRONG


def test_rule_labels():
    assert [rule_label(s) for s in (CORRECT, INVENTED, WRONG, NO_ARITHMETIC)] == [True, False, False, None]


def test_step_agreement_counts_labelled_steps_only():
    rules = [[CORRECT, NO_ARITHMETIC, WRONG], [INVENTED, CORRECT]]
    prm = [[0.9, 0.1, 0.6], [0.2, 0.4]]
    a = step_agreement(prm, rules)
    assert (a.n_steps, a.n_good) == (4, 2)
    assert a.accuracy == pytest.approx(2 / 4)  # 0.9 right, 0.6 wrong, 0.2 right, 0.4 wrong
    assert a.baseline == pytest.approx(0.5)
    assert a.auc == pytest.approx(3 / 4)  # 0.9 beats both bad steps; 0.4 beats 0.2 only


def test_a_perfect_and_an_inverted_prm():
    rules = [[CORRECT, WRONG, CORRECT, INVENTED]]
    assert step_agreement([[1.0, 0.0, 0.8, 0.3]], rules).auc == 1.0
    inverted = step_agreement([[0.0, 1.0, 0.2, 0.7]], rules)
    assert inverted.auc == 0.0 and inverted.accuracy == 0.0


def test_nothing_labelled_is_nan_and_lengths_must_match():
    assert math.isnan(step_agreement([[0.5]], [[NO_ARITHMETIC]]).accuracy)
    with pytest.raises(ValueError):
        step_agreement([[0.5, 0.5]], [[CORRECT]])


def test_auc_interval_holds_the_auc_and_narrows_with_more_solutions():
    import random

    rng = random.Random(0)

    def sample(n):  # a PRM with some signal: good steps score higher on average
        rules = [[rng.choice([CORRECT, WRONG, INVENTED]) for _ in range(4)] for _ in range(n)]
        prm = [[rng.gauss(0.6 if r == CORRECT else 0.4, 0.2) for r in rs] for rs in rules]
        return prm, rules

    small, large = step_agreement(*sample(20)), step_agreement(*sample(400))
    for a in (small, large):
        low, high = a.auc_interval
        assert low <= a.auc <= high and low > 0.5 - 0.3
    assert large.auc_interval[1] - large.auc_interval[0] < 0.5 * (small.auc_interval[1] - small.auc_interval[0])
    assert large.auc_interval[0] > 0.5  # the signal is shown at 400 solutions
    prm, rules = sample(30)
    assert step_agreement(prm, rules).auc_interval == step_agreement(prm, rules).auc_interval  # seeded


def test_auc_interval_is_95_percent():
    # Every solution has one good and one bad step; in half the good one wins, in half it loses. A
    # resample's AUC is then the share of winning solutions, Binomial(100, 0.5) / 100, whose 2.5% and 97.5%
    # quantiles are 0.40 and 0.60 exactly (a 90% interval would be 0.42 to 0.58).
    prm = [[1.0, 0.5]] * 50 + [[0.0, 0.5]] * 50
    a = step_agreement(prm, [[CORRECT, WRONG]] * 100)
    assert a.auc == 0.5 and a.auc_interval == pytest.approx((0.40, 0.60), abs=0.011)


def test_label_quality_by_position_counts_precision_and_recall_of_good():
    from ttscale.learn.agreement import label_quality

    rules = [[CORRECT, CORRECT, WRONG, CORRECT, NO_ARITHMETIC], [WRONG, CORRECT]]
    values = [[0.5, 0.0, 0.25, 1.0, 1.0], [0.0, 0.75]]
    rows = {q.position: q for q in label_quality(values, rules)}
    assert list(rows) == ["1", "2", "3+", "all"]
    assert (rows["1"].n_steps, rows["1"].precision, rows["1"].recall) == (2, 1.0, 1.0)
    assert (rows["2"].n_label_good, rows["2"].recall) == (1, 0.5)  # a good step the rollouts never finished
    assert rows["3+"].n_steps == 2  # the unjudged fifth step is left out
    assert rows["3+"].precision == 0.5  # a wrong step a lucky rollout finished counts as a false "good"
    everything = rows["all"]
    assert (everything.n_steps, everything.n_rule_good, everything.n_label_good) == (6, 4, 4)
    assert everything.precision == pytest.approx(3 / 4) and everything.recall == pytest.approx(3 / 4)
    stricter = {q.position: q for q in label_quality(values, rules, threshold=0.5)}["all"]
    assert (stricter.n_label_good, stricter.precision, stricter.recall) == (2, 1.0, 0.5)


def test_within_problem_auc_ignores_what_only_tells_problems_apart():
    from ttscale.learn.agreement import rule_labels, within_problem_auc

    # A score that is high on the easy problem, whose steps are mostly good, and low on the hard one,
    # whose steps are mostly bad, orders steps across problems (pooled AUC 16/25) but inverts them inside
    # each problem: search, which compares one problem's steps, would be led the wrong way.
    rules = [[CORRECT, CORRECT, WRONG], [CORRECT, CORRECT], [CORRECT, WRONG, INVENTED], [WRONG, WRONG, NO_ARITHMETIC]]
    scores = [[0.8, 0.8, 0.9], [0.8, 0.8], [0.1, 0.2, 0.2], [0.2, 0.2, 0.0]]
    problems = ["easy", "easy", "hard", "hard"]
    assert step_agreement(scores, rules).auc == pytest.approx(16 / 25)
    w = within_problem_auc(scores, rule_labels(rules), problems)
    assert (w.auc, w.pairs, w.problems) == (0.0, 8, 2)  # 4 x 1 pairs in each; the unjudged 0.0 is left out
    ties = within_problem_auc([[0.5, 0.5]], [[True, False]], ["p"])
    assert ties.auc == 0.5
    assert within_problem_auc([[0.5, 0.1]], [[True, None]], ["p"]).pairs == 0  # no bad step: no pair
    with pytest.raises(ValueError):
        within_problem_auc([[0.5]], [[True]], ["p", "q"])


def test_within_problem_interval_resamples_problems():
    import random

    from ttscale.learn.agreement import rule_labels, within_problem_auc

    rng = random.Random(1)
    rules = [[rng.choice([CORRECT, WRONG]) for _ in range(4)] for _ in range(200)]
    scores = [[rng.gauss(0.6 if r == CORRECT else 0.4, 0.2) for r in rs] for rs in rules]
    problems = [f"p{i // 2}" for i in range(200)]  # two solutions a problem
    w = within_problem_auc(scores, rule_labels(rules), problems)
    low, high = w.interval
    assert 0.5 < low <= w.auc <= high < 1.0
    assert w.interval == within_problem_auc(scores, rule_labels(rules), problems).interval  # seeded
