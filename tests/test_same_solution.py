"""One rule for "the same solution" (grading.solution_key), in every stage that asks, and the flag that
says a run's pick applied it (ProblemResult.distinct), through the file and into evaluation."""

import json

import pytest

from ttscale.grading import solution_key
from ttscale.grading.vote import distinct_texts
from ttscale.learn.labels import pick_candidates
from ttscale.learn.sft import sft_rows
from ttscale.search.expand import _dedup
from ttscale.search.records import Beam, Expansion, ProblemState
from ttscale.search.steps import split_steps
from ttscale.types import Completion, Problem, ProblemResult

PROBLEM = Problem(id="p", question="q", answer="11")

# (one text, another, the same solution?): trailing whitespace aside, and nothing else
PAIRS = [
    ("x = 11\n", "x = 11", True),
    ("x = 11\n\n", "x = 11 \n", True),
    ("a\n\nb", "a\nb", False),  # a step boundary: "\n\n" is a delimiter where "\n" is not
    ("a\nb", "a b", False),
    ("a  b", "a b", False),
    (" a", "a", False),
]


def completion(text):
    return Completion(text=text, steps=split_steps(text, "\n"), answer="11")


def search_keeps(a, b):
    st = ProblemState(PROBLEM, "Q: ")
    beams = [Beam(steps=(a,)), Beam(steps=(b,))]
    return sum(map(len, _dedup([(st, Expansion(None, 2))], [beams])))


def vote_keeps(a, b):
    return len(distinct_texts([a, b]))


def sft_keeps(a, b):
    r = ProblemResult(PROBLEM, "beam_search", (completion(a), completion(b)), selected=0)
    return len(sft_rows([r], "", "correct", dedup=True, max_per_problem=None))


def labels_keep(a, b):
    return len(pick_candidates(ProblemResult(PROBLEM, "beam_search", (completion(a), completion(b))), None))


@pytest.mark.parametrize("stage", [search_keeps, vote_keeps, sft_keeps, labels_keep])
@pytest.mark.parametrize("a,b,same", PAIRS)
def test_every_stage_that_asks_decides_the_same(stage, a, b, same):
    assert (solution_key(a) == solution_key(b)) == same
    assert stage(a, b) == (1 if same else 2)


def test_the_flag_travels_through_the_file_and_old_files_read_as_their_pick_was_made():
    tree = ProblemResult(PROBLEM, "dvts", (completion("x = 11"),), selected=0, distinct=True)
    assert ProblemResult.from_dict(json.loads(json.dumps(tree.to_dict()))).distinct
    sampled = ProblemResult(PROBLEM, "best_of_n", (completion("x = 11"),), selected=0)
    assert not ProblemResult.from_dict(sampled.to_dict()).distinct
    # a line written before the flag: the tree searches' picks already counted a repeat once
    for strategy, distinct in [("beam_search", True), ("dvts", True), ("particle_filtering", True),
                               ("best_of_n", False), ("compute_optimal", False)]:
        line = {k: v for k, v in tree.to_dict().items() if k != "distinct"} | {"strategy": strategy}
        assert ProblemResult.from_dict(line).distinct is distinct
