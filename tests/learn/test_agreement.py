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
