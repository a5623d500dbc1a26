"""The reward-free picks (Kang et al. 2025): self_certainty and confidence_weighted, read from each
candidate's confidence summary, with no verifier scores."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ttscale.confidence import summarize
from ttscale.grading.select import CONFIDENCE_SELECTIONS, select
from ttscale.types import SELECTIONS, Completion

SURE = [math.log(0.97), math.log(0.02), math.log(0.01)]
UNSURE = [math.log(0.4), math.log(0.35), math.log(0.25)]


def cand(answer, rows, text=None, scores=None):
    return Completion(text=text or f"x {answer} {len(rows)} {rows[0][0] if rows else ''}", steps=("x",), answer=answer,
                      step_scores=scores, confidence=summarize(rows, 4) if rows else None)


def test_the_picks_are_selections_everywhere():
    assert set(CONFIDENCE_SELECTIONS) <= set(SELECTIONS)


def test_self_certainty_picks_the_candidate_the_policy_was_surest_of():
    cands = [cand("1", [UNSURE] * 4), cand("2", [SURE, UNSURE]), cand("1", [UNSURE, UNSURE, SURE]),
             cand("3", [SURE] * 3)]
    assert select(cands, "self_certainty") == 3
    assert select(cands, "majority") == 0  # the vote disagrees: "1" has two candidates
    # verifier scores are not read: the surest candidate wins even when a verifier scored it lowest
    scored = [cand(c.answer, [SURE] * 3 if i == 3 else [UNSURE] * 2, scores=(0.9,) if i != 3 else (0.1,))
              for i, c in enumerate(cands)]
    assert select(scored, "self_certainty") == 3 and select(scored, "naive") == 0


def test_confidence_weighted_sums_each_answers_certainty_then_takes_its_surest_member():
    many_unsure = [cand("1", [UNSURE] * 2) for _ in range(3)]
    two_sure = [cand("2", [SURE] * 2), cand("2", [SURE, SURE, UNSURE])]
    cands = many_unsure + two_sure
    # three unsure votes weigh less than two sure ones: the weighted vote and majority part ways
    assert select(cands, "majority") == 0
    assert select(cands, "confidence_weighted") == 3  # answer "2", and its surer member
    assert cands[select(cands, "confidence_weighted")].answer == "2"


def test_without_any_log_probabilities_both_fall_back_to_majority():
    cands = [cand("1", []), cand("2", []), cand("2", [])]
    assert select(cands, "self_certainty") == select(cands, "confidence_weighted") == select(cands, "majority") == 1


def test_a_candidate_recorded_without_log_probabilities_counts_zero():
    cands = [cand("1", []), cand("2", [UNSURE])]
    assert select(cands, "self_certainty") == 1


def test_a_tree_searchs_repeated_beam_votes_once():
    twice = [cand("1", [UNSURE] * 2, text="same"), cand("1", [UNSURE] * 2, text="same ")]
    middling = [math.log(0.42), math.log(0.34), math.log(0.24)]  # surer than UNSURE, less than twice as sure
    cands = [*twice, cand("2", [middling] * 2)]
    # independent samples: two unsure votes outweigh one middling one; one beam grown twice does not
    assert cands[select(cands, "confidence_weighted")].answer == "1"
    assert cands[select(cands, "confidence_weighted", distinct=True)].answer == "2"


rows = st.lists(st.sampled_from([SURE, UNSURE]), min_size=1, max_size=6)


@given(st.lists(st.tuples(st.sampled_from(["1", "2", "3", None]), rows), min_size=1, max_size=12))
def test_the_pick_is_surest_and_the_weighted_winner_carries_the_most_certainty(items):
    cands = [cand(a, r, text=f"{i}") for i, (a, r) in enumerate(items)]
    certainty = [c.confidence.self_certainty for c in cands]
    best = select(cands, "self_certainty")
    assert certainty[best] == max(certainty)
    pick = select(cands, "confidence_weighted")
    answered = {a for a, _ in items if a is not None}
    if answered:
        totals = {a: sum(x for (b, _), x in zip(items, certainty) if b == a) for a in answered}
        assert totals[cands[pick].answer] == pytest.approx(max(totals.values()))
        members = [i for i, (a, _) in enumerate(items) if a == cands[pick].answer]
        assert certainty[pick] == max(certainty[i] for i in members)
