"""verifier.calibration: step scores mapped to chances, order kept, only the weighted vote's sums change."""

from __future__ import annotations

import pytest

from ttscale.config import VerifierConfig
from ttscale.data.results import read_results
from ttscale.errors import ConfigError
from ttscale.grading.select import select
from ttscale.recipe import load_config
from ttscale.runner import run
from ttscale.types import Completion, Problem
from ttscale.verifiers import Verifier, build_verifier
from ttscale.verifiers.base import with_calibration
from ttscale.verifiers.calibration import CalibratedVerifier, calibrated

# The arithmetic rules' levels (0 wrong, 0.2 invented operand, 0.5 cannot judge, 1 checked), each given
# a chance; strictly increasing, so no two levels tie after the map.
KNOTS = [[0.0, 0.01], [0.2, 0.03], [0.5, 0.05], [1.0, 0.33]]
PROBLEMS = [Problem("c1", "Tom has 3 apples and buys 4 more. How many apples does he have?", "7"),
            Problem("c2", "What is 6 times 7?", "42")]
STEPS = [["Tom has 3 apples.", "He buys 4 more, so 3 + 4 = 7.", "The answer is \\boxed{7}."],
         ["6 * 7 = 43.", "So the answer is \\boxed{43}."], ["7 * 6 = 42.", "So 42 + 9 = 50."]]


def test_the_map_is_linear_between_knots_and_flat_beyond_them():
    knots = [[0.2, 0.1], [0.6, 0.3], [1.0, 0.7]]
    assert calibrated(0.0, knots) == 0.1 and calibrated(0.2, knots) == 0.1
    assert calibrated(0.4, knots) == pytest.approx(0.2)
    assert calibrated(0.6, knots) == pytest.approx(0.3)
    assert calibrated(0.9, knots) == pytest.approx(0.6)
    assert calibrated(1.0, knots) == pytest.approx(0.7) and calibrated(5.0, knots) == 0.7
    assert calibrated(0.3, [[0.5, 0.4]]) == 0.4 == calibrated(0.9, [[0.5, 0.4]])


def test_a_calibrated_verifier_maps_every_score_keeps_their_order_and_is_the_inner_one_otherwise():
    raw = build_verifier(VerifierConfig(name="arithmetic_rules"))
    cal = build_verifier(VerifierConfig(name="arithmetic_rules", calibration=KNOTS))
    assert isinstance(cal, CalibratedVerifier) and isinstance(cal, Verifier)
    assert (cal.name, cal.n_params) == (raw.name, raw.n_params)
    assert cal.count_tokens(PROBLEMS[0], STEPS[0]) == raw.count_tokens(PROBLEMS[0], STEPS[0])
    before = raw.score(PROBLEMS + PROBLEMS[1:], STEPS)
    after = cal.score(PROBLEMS + PROBLEMS[1:], STEPS)
    assert after == [[calibrated(s, KNOTS) for s in row] for row in before]
    flat_before, flat_after = [s for row in before for s in row], [s for row in after for s in row]
    assert len(set(flat_before)) >= 3  # the sample reaches several levels, so the order check means something
    for a, x in zip(flat_before, flat_after):
        for b, y in zip(flat_before, flat_after):
            assert (a < b) == (x < y)


def test_weighted_voting_sums_chances_so_three_unjudged_answers_no_longer_outvote_a_checked_one():
    def completion(answer: str, score: float) -> Completion:
        return Completion(text=f"so \\boxed{{{answer}}}", answer=answer, steps=("s",), step_scores=(score,))

    raw = [completion("7", 1.0), completion("8", 0.5), completion("8", 0.5), completion("8", 0.5)]
    mapped = [Completion(text=c.text, answer=c.answer, steps=c.steps,
                         step_scores=tuple(calibrated(s, KNOTS) for s in c.step_scores or ())) for c in raw]
    assert raw[select(raw, "weighted")].answer == "8"  # 1.5 against 1.0
    assert mapped[select(mapped, "weighted")].answer == "7"  # 0.15 against 0.33
    assert select(raw, "naive") == select(mapped, "naive") == 0


@pytest.mark.parametrize("knots, accepted", [
    ([], "at least one"), ([[0.0, 0.1, 0.2]], "pairs"), ([[0.0, 1.5]], "chances in [0, 1]"),
    ([[0.5, 0.1], [0.5, 0.2]], "increasing order"), ([[0.0, 0.3], [1.0, 0.2]], "never decrease"),
])
def test_a_map_that_is_not_one_is_refused_naming_the_setting(knots, accepted):
    with pytest.raises(ConfigError, match=r"verifier\.calibration=.*accepted: .*") as e:
        VerifierConfig(name="arithmetic_rules", calibration=knots)
    assert accepted in str(e.value) and "\n" not in str(e.value)


def test_the_setting_reads_from_the_command_line_and_needs_a_verifier():
    cfg = load_config(None, ["verifier.name=arithmetic_rules", "verifier.calibration=[[0,0.01],[1,0.4]]"])
    assert cfg.verifier.calibration == [[0.0, 0.01], [1.0, 0.4]]
    with pytest.raises(ConfigError, match="verifier.name is none"):
        load_config(None, ["verifier.name=none", "verifier.calibration=[[0,0.01]]"])


def test_a_verifier_handed_to_a_run_is_calibrated_once_and_a_differently_calibrated_one_refused():
    cfg = VerifierConfig(name="arithmetic_rules", calibration=KNOTS)
    raw = build_verifier(VerifierConfig(name="arithmetic_rules"))
    once = with_calibration(raw, cfg)
    assert isinstance(once, CalibratedVerifier) and with_calibration(once, cfg) is once
    assert with_calibration(raw, VerifierConfig(name="arithmetic_rules")) is raw
    with pytest.raises(ConfigError, match="other than verifier.calibration"):
        with_calibration(CalibratedVerifier(raw, [[0.0, 0.5]]), cfg)


def _beam(tmp_path, name, *extra, generator=None):
    cfg = load_config(None, ["prompt.mode=completion", "search.step_delimiter=\\n", "dataset.levels=[1]",
                             "dataset.limit=2", "search.strategy=beam_search", "search.n=4", "search.beam_width=2",
                             "search.max_iterations=3", "sampling.max_step_tokens=24", "sampling.max_new_tokens=64",
                             "verifier.name=arithmetic_rules", "search.selection=naive", f"output.dir={tmp_path / name}",
                             *extra])
    run(cfg, generator=generator, progress=False)
    return sorted(read_results(tmp_path / name), key=lambda r: r.id)


def _same_search_scores_mapped(raw, cal):
    assert [r.id for r in raw] == [r.id for r in cal]
    for a, b in zip(raw, cal):
        assert [c.text for c in a.completions] == [c.text for c in b.completions]
        assert a.selected == b.selected
        for x, y in zip(a.completions, b.completions):
            assert y.step_scores == tuple(pytest.approx(calibrated(s, KNOTS)) for s in x.step_scores or ())


def test_beam_search_keeps_the_same_beams_under_an_increasing_map_and_records_the_chances(tmp_path):
    """The map never reorders scores, so the search is the one it was; only what it records changes."""
    raw = _beam(tmp_path, "raw", "model.backend=fake")
    cal = _beam(tmp_path, "cal", "model.backend=fake", f"verifier.calibration={KNOTS}")
    assert any(len({s for c in r.completions for s in c.step_scores or ()}) > 1 for r in raw)
    _same_search_scores_mapped(raw, cal)


@pytest.mark.slow
def test_beam_search_on_smollm2_under_a_calibration_is_the_same_search_with_mapped_scores(tmp_path, smollm2):
    small = ["dataset.limit=1", "search.max_iterations=2", "sampling.max_step_tokens=16"]
    raw = _beam(tmp_path, "raw", *small, generator=smollm2)
    cal = _beam(tmp_path, "cal", *small, f"verifier.calibration={KNOTS}", generator=smollm2)
    _same_search_scores_mapped(raw, cal)
