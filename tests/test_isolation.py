"""One bad item in a batch fails alone: the runner's batches of problems and the server's merged calls."""

import pytest

from ttscale.isolation import run_isolating


def test_a_failing_batch_is_run_item_by_item_and_only_the_bad_item_fails():
    calls = []

    def run(items):
        calls.append(items)
        if "bad" in items:
            raise ValueError("cannot read 'bad'")
        return [x.upper() for x in items]

    out = run_isolating(run, ["a", "bad", "c"], lambda item, e: f"{item}: {e}")
    assert out == ["A", "bad: cannot read 'bad'", "C"]
    assert calls == [["a", "bad", "c"], ["a"], ["bad"], ["c"]]
    assert run_isolating(run, ["a", "c"], lambda item, e: None) == ["A", "C"]  # a good batch: one call


def test_only_what_it_is_told_to_catch_is_caught():
    def run(items):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # a stopped run stops; it is not a problem's failure
        run_isolating(run, ["a", "b"], lambda item, e: None)
    assert run_isolating(run, ["a"], lambda item, e: type(e).__name__, catch=BaseException) == ["KeyboardInterrupt"]
