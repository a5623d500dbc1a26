"""reselect: another pick over the candidates a strategy kept, indexed into all of them."""

from __future__ import annotations

from ttscale.grading.select import reselect
from ttscale.types import Completion, Problem, ProblemResult


def cand(answer: str, score: float, text: str | None = None, dropped: str | None = None) -> Completion:
    text = text or f"so it is \\boxed{{{answer}}}"
    return Completion(text=text, steps=(text,), answer=answer, step_scores=(score,), dropped=dropped)


def row(cands: list[Completion], distinct: bool = False) -> ProblemResult:
    return ProblemResult(problem=Problem(id="p", question="q", answer="1"), strategy="beam_search",
                         completions=tuple(cands), selected=0, distinct=distinct)


def test_a_dropped_candidate_is_never_picked_and_the_index_is_into_all_candidates() -> None:
    r = row([cand("9", 0.99, dropped="rejected"), cand("2", 0.4), cand("1", 0.7)])
    assert reselect(r, "naive", "last") == 2  # not the rejected 0.99
    assert reselect(row([cand("9", 0.9, dropped="stopped")]), "majority", "last") is None


def test_a_tree_search_repeat_votes_once_and_independent_samples_vote_every_time() -> None:
    beam = cand("2", 0.5)
    cands = [beam, beam, beam, cand("1", 0.3, "one way: \\boxed{1}"), cand("1", 0.3, "another: \\boxed{1}")]
    assert reselect(row(cands, distinct=True), "majority", "last") == 3  # "1" two solutions, "2" one
    assert reselect(row(cands, distinct=False), "majority", "last") == 0  # "2" three samples
    assert reselect(row(cands, distinct=True), "weighted", "last") == 3  # 0.6 against 0.5
    assert reselect(row(cands, distinct=False), "weighted", "last") == 0  # 1.5 against 0.6
