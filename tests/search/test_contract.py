"""One contract, every strategy (STYLE.md): counts, budgets, determinism, completion handling."""

import pytest

from ttscale.backends.fake import FakeGenerator
from ttscale.data.synthetic import arithmetic_problems
from ttscale.search import SearchSettings, build_strategy
from ttscale.search.expand import split_steps
from ttscale.verifiers.fake import FakeVerifier

STRATEGIES = ["best_of_n", "beam_search", "dvts", "particle_filtering"]
PROBLEMS = arithmetic_problems(5, seed=4)
PROMPTS = [f"Question: {p.question}\nSolution:\n" for p in PROBLEMS]


def settings(**kw):
    base = dict(n=8, beam_width=4, step_delimiter="\n", end_markers=("\nQuestion:",), max_step_tokens=40,
                max_new_tokens=200, max_iterations=10, save_trees=True)
    return SearchSettings(**{**base, **kw})


def expected_count(name, s):
    return s.n // s.beam_width if name == "dvts" else s.n


def search(name, s, gen=None, ver=None):
    return build_strategy(name).search(PROBLEMS, PROMPTS, gen or FakeGenerator(), ver or FakeVerifier(), s)


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("n,m", [(4, 2), (8, 4), (16, 4), (3, 3)])
def test_exact_number_of_solutions(name, n, m):
    s = settings(n=n, beam_width=m)
    for r in search(name, s):
        assert len(r.completions) == expected_count(name, s)
        assert r.selected is not None and 0 <= r.selected < len(r.completions)
        assert all(c.step_scores is not None and len(c.step_scores) == len(c.steps) for c in r.completions)


@pytest.mark.parametrize("name", STRATEGIES)
def test_deterministic_under_seed(name):
    a, b = search(name, settings(seed=3)), search(name, settings(seed=3))
    assert [r.completions for r in a] == [r.completions for r in b]
    c = search(name, settings(seed=4))
    assert [r.completions for r in a] != [r.completions for r in c]


@pytest.mark.parametrize("name", ["beam_search", "dvts", "particle_filtering"])
@pytest.mark.parametrize("cap", [60, 150, 400])
def test_token_budget_never_exceeded(name, cap):
    for r in search(name, settings(max_tokens_per_problem=cap, max_step_tokens=20)):
        assert r.budget.generated_tokens <= cap


@pytest.mark.parametrize("name", STRATEGIES)
def test_budget_records_are_consistent(name):
    gen, ver = FakeGenerator(), FakeVerifier()
    results = search(name, settings(), gen, ver)
    for r in results:
        b = r.budget
        assert b.generated_tokens >= sum(c.n_tokens for c in r.completions) > 0
        assert b.generator_calls >= 1 and b.verifier_calls >= 1 and b.verifier_tokens > 0
        assert b.flops == pytest.approx(2 * gen.n_params * (b.generated_tokens + b.prompt_tokens - b.prompt_tokens_reused))
    # one generator call per round for all problems in flight, not one per problem
    assert gen.calls <= max(r.budget.generator_calls for r in results) * 2


def test_completed_beams_are_carried_through():
    """A beam that finishes in round 1 stays among the returned solutions."""

    def script(prompt, rng):
        if "Step" not in prompt.split("Solution:\n")[-1] and rng.random() < 0.5:
            return "Answer: \\boxed{7}\nQuestion: x"
        if "Step" not in prompt.split("Solution:\n")[-1]:
            return "Step 1: so 2 + 2 = 4.\n"
        return f"Answer: \\boxed{{{rng.randint(1, 3)}}}"

    results = search("beam_search", settings(n=8, beam_width=4), FakeGenerator(script=script),
                     FakeVerifier(fn=lambda p, steps, i: 0.99 if "7" in steps[i] else 0.1))
    for r in results:
        assert any(len(c.steps) == 1 and c.answer == "7" for c in r.completions)
        assert r.completions[r.selected].answer == "7"
        assert all(c.finished for c in r.completions)


def test_dvts_marks_unfinished_subtrees():
    def endless(prompt, rng):
        return f"Step {rng.randint(1, 99)}: thinking.\nStep 2: more.\n"

    for r in search("dvts", settings(max_iterations=3), FakeGenerator(script=endless)):
        assert len(r.completions) == 2 and not any(c.finished for c in r.completions)
        assert all(len(c.steps) == 3 and c.finish_reason == "length" for c in r.completions)


def test_trees_hold_every_node():
    for r in search("beam_search", settings()):
        ids = [n.id for n in r.tree]
        assert ids == list(range(len(ids))) and all(n.parent is None or n.parent < n.id for n in r.tree)
        assert all(n.score is not None for n in r.tree)
        assert sum(n.n_tokens for n in r.tree) == r.budget.generated_tokens
        assert {c.steps[-1] for c in r.completions} <= {n.step for n in r.tree}


def test_lookahead_scores_the_rolled_out_step_but_returns_only_real_steps():
    seen_lengths = []

    def fn(problem, steps, i):
        seen_lengths.append(len(steps))
        return 0.5

    ver = FakeVerifier(fn=fn)
    plain = search("beam_search", settings(n=4, beam_width=2, lookahead=0), ver=FakeVerifier())
    look = search("beam_search", settings(n=4, beam_width=2, lookahead=2), ver=ver)
    assert max(seen_lengths) > max(len(c.steps) for r in look for c in r.completions) - 1
    assert sum(r.budget.generated_tokens for r in look) > sum(r.budget.generated_tokens for r in plain)
    for r in look:
        assert len(r.completions) == 4


def test_filter_duplicates_drops_identical_steps():
    def same(prompt, rng):
        return "Step 1: same.\nAnswer: \\boxed{1}"

    r = search("beam_search", settings(n=4, beam_width=2, filter_duplicates=True), FakeGenerator(script=same))[0]
    assert len({c.text for c in r.completions}) == len(r.completions)


def test_split_steps_keeps_delimiters():
    assert split_steps("a\n\nb\n\n\n\nc", "\n\n") == ("a\n\n", "b\n\n\n\n", "c")
    assert "".join(split_steps("x\ny\n", "\n")) == "x\ny\n"
