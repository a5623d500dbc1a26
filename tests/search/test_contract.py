"""One contract, every registered strategy: counts, budgets, determinism, completion handling."""

import tempfile
from pathlib import Path

import pytest

from ttscale.backends.fake import FakeGenerator
from ttscale.config import DeepConfConfig, RejectionConfig
from ttscale.data.policy import Policy, PolicyEntry
from ttscale.data.synthetic import arithmetic_problems
from ttscale.errors import ConfigError
from ttscale.search import SearchSettings, build_strategy
from ttscale.search.base import STRATEGIES as REGISTRY
from ttscale.search.steps import split_steps
from ttscale.verifiers.fake import FakeVerifier

STRATEGIES = REGISTRY.names()  # every registered strategy runs this contract the moment it is registered
PROBLEMS = arithmetic_problems(5, seed=4)
PROMPTS = [f"Question: {p.question}\nSolution:\n" for p in PROBLEMS]
# compute_optimal routes easy problems to best-of-N and hard ones to beam search
_POLICY = Path(tempfile.mkdtemp(prefix="ttscale-contract-")) / "policy.json"
Policy(edges=(0.5,), reduction="last", probe_n=2, budgets={1: {
    0: PolicyEntry("beam", "beam_search", {}), 1: PolicyEntry("bon", "best_of_n", {})}}).save(_POLICY)


def settings(**kw):
    base = dict(n=8, beam_width=4, step_delimiter="\n", end_markers=("\nQuestion:",), max_step_tokens=40,
                max_new_tokens=200, max_iterations=10, save_trees=True, policy=str(_POLICY))
    return SearchSettings(**{**base, **kw})


def search(name, s, gen=None, ver=None, problems=PROBLEMS, prompts=PROMPTS):
    return build_strategy(name).search(problems, prompts, gen or FakeGenerator(), ver or FakeVerifier(), s)


def right_count(name, got, n):
    """Exactly N, except for a strategy that says it stops early (`fixed_n = False`, the adaptive ones): 1..N."""
    return got == n if build_strategy(name).fixed_n else 1 <= got <= n


def test_the_contract_covers_the_whole_registry():
    assert {"best_of_n", "beam_search", "dvts", "particle_filtering", "compute_optimal"} <= set(STRATEGIES)


@pytest.mark.parametrize("name", STRATEGIES)
def test_every_strategy_declares_its_rules(name):
    """The runner and the server ask the strategy, so each one answers every question, with the right types."""
    strategy = build_strategy(name)
    assert strategy.name == name
    for flag in ("needs_verifier", "fixed_n", "step_wise", "reads_logprobs"):
        assert isinstance(getattr(strategy, flag), bool), flag
    assert strategy.validate(settings()) is None
    assert isinstance(strategy.max_expansions(settings()), int) and strategy.max_expansions(settings()) >= 8


# Beam search, DVTS and MCTS (N/M leaves a round) run N/M beams; compute_optimal's table routes to beam search.
REFUSE_UNEVEN_WIDTH = {"beam_search", "dvts", "mcts", "compute_optimal"}


@pytest.mark.parametrize("name", STRATEGIES)
def test_a_strategy_refuses_a_beam_width_that_does_not_divide_n_only_if_it_runs_n_over_m_beams(name):
    strategy = build_strategy(name)
    if name not in REFUSE_UNEVEN_WIDTH:
        strategy.validate(settings(n=6, beam_width=4))
        return
    with pytest.raises(ConfigError, match="search.beam_width=4 does not divide search.n=6") as e:
        strategy.validate(settings(n=6, beam_width=4))
    assert e.value.field == "search.beam_width" and "\n" not in str(e.value)


def test_compute_optimal_refuses_to_start_without_a_readable_policy(tmp_path):
    strategy = build_strategy("compute_optimal")
    with pytest.raises(ConfigError, match="needs a policy.json") as e:
        strategy.validate(settings(policy=None))
    assert e.value.field == "search.policy"
    with pytest.raises(ConfigError, match="file not found"):
        strategy.validate(settings(policy=str(tmp_path / "nope.json")))


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("lookahead", [0, 2])
def test_max_expansions_bounds_every_sample_a_search_asks_for(name, lookahead):
    """A server refuses a request by this bound before it starts; a search that never finishes a solution
    asks for the most it can."""
    s = settings(n=8, beam_width=4, max_iterations=4, max_step_tokens=10, max_new_tokens=60, deepconf=DeepConfConfig(chunk_tokens=16),
                 rejection=RejectionConfig(chunk_tokens=16), lookahead=lookahead)
    gen = Spy(script=endless)
    search(name, s, gen, problems=PROBLEMS[:1], prompts=PROMPTS[:1])
    asked = sum(q.n for _, params, _ in gen.log for q in params)
    assert 0 < asked <= build_strategy(name).max_expansions(s)


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("n,m", [(4, 2), (8, 4), (16, 4), (3, 3)])
def test_exact_number_of_solutions(name, n, m):
    s = settings(n=n, beam_width=m)
    for r in search(name, s):
        assert right_count(name, len(r.completions), n)  # DVTS too: all M final candidates of each of its N/M subtrees
        assert r.selected is not None and 0 <= r.selected < len(r.completions)
        assert all(c.step_scores is not None and len(c.step_scores) == len(c.steps) for c in r.completions)


@pytest.mark.parametrize("name", STRATEGIES)
def test_deterministic_under_seed(name):
    a, b = search(name, settings(seed=3)), search(name, settings(seed=3))
    assert [r.completions for r in a] == [r.completions for r in b]
    c = search(name, settings(seed=4))
    assert [r.completions for r in a] != [r.completions for r in c]


class Spy(FakeGenerator):
    """Records every call's prompts, params and generations."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.log = []

    def generate(self, prompts, params):
        out = super().generate(prompts, params)
        self.log.append((list(prompts), list(params), out))
        return out


@pytest.mark.parametrize("name", STRATEGIES)
def test_identical_prompts_get_distinct_children(name):
    """DVTS roots, duplicate beams and particles drawn twice are identical prompts; seeded by their index
    among the problem's requests, their children differ (else DVTS at N=16 would be N=4 copied 4 times)."""
    twin = PROBLEMS[0]
    problems = [twin, type(twin)(id=twin.id + "-twin", question=twin.question, answer=twin.answer)]
    gen = Spy()
    results = search(name, settings(n=16, beam_width=4), gen, problems=problems, prompts=[PROMPTS[0]] * 2)
    assert all(right_count(name, len(r.completions), 16) for r in results)
    for prompts, params, out in gen.log:
        seeds = [q.seed + k for q in params for k in range(q.n)]
        assert len(set(seeds)) == len(seeds)  # no two samples of a call share a random stream
        by_prompt = {}
        for p, gens in zip(prompts, out):
            by_prompt.setdefault(p, []).extend(g.text for g in gens)
        for texts in by_prompt.values():
            if len(texts) >= 8 and params[0].temperature > 0:
                assert len(set(texts)) >= len(texts) // 4, texts
    # the same prompt under another problem id is another problem: its own samples
    assert [c.text for c in results[0].completions] != [c.text for c in results[1].completions]


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("caps", [{}, {"max_tokens_per_problem": 150, "max_flops_per_problem": 5e8}])
def test_a_problem_is_searched_the_same_whatever_its_batch(name, caps):
    s = settings(n=8, beam_width=4, **caps)
    together = search(name, s)
    alone = [search(name, s, problems=[p], prompts=[q])[0] for p, q in zip(PROBLEMS, PROMPTS)]
    assert [r.completions for r in together] == [r.completions for r in alone]
    assert [r.selected for r in together] == [r.selected for r in alone]


class PricedVerifier(FakeVerifier):
    """A verifier with parameters: its reads count toward the FLOP cap, as a real PRM's do (and, like the
    reference 8B PRM beside a 1B policy, it is the larger model)."""

    n_params = 2_000_000


SPENT = {"max_tokens_per_problem": lambda b: b.generated_tokens, "max_flops_per_problem": lambda b: b.flops}
# From "nothing fits" (20 tokens: not one round of 8 steps) to "most of a search fits"; FakeGenerator has
# 1M parameters, so 2e8 FLOPs is ~100 tokens through the policy alone.
CAPS = [("max_tokens_per_problem", c) for c in (20, 60, 100, 150, 400)] + [
    ("max_flops_per_problem", c) for c in (2e8, 6e8, 1.5e9)]


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("cap,limit", CAPS)
@pytest.mark.parametrize("lookahead", [0, 2])
def test_no_cap_is_ever_passed(name, cap, limit, lookahead):
    """README: the caps are ones "the search never passes", in every strategy: lookahead rolls, prompts
    read afresh and the verifier's reads included."""
    s = settings(**{cap: limit}, max_step_tokens=10, max_new_tokens=60, lookahead=lookahead)
    for r in search(name, s, ver=PricedVerifier()):
        assert SPENT[cap](r.budget) <= limit
        assert len(r.completions) <= s.n and (r.selected is None) == (not r.completions)


@pytest.mark.parametrize("cap,limit", [("max_tokens_per_problem", 100), ("max_flops_per_problem", 2e9)])
def test_best_of_n_under_a_cap_draws_its_n_samples_at_an_equal_share(cap, limit):
    gen = Spy(script=long_steps)
    for r in search("best_of_n", settings(**{cap: limit}), gen, PricedVerifier()):
        assert len(r.completions) == 8 and SPENT[cap](r.budget) <= limit
        assert all(c.finished and c.finish_reason == "length" for c in r.completions)
    def flops(t, prompt, question):  # 2 x 1M x (8t + prompt) + 2 x 2M x 8 x (question + t)
        return 2e6 * (8 * t + len(prompt.split())) + 4e6 * 8 * (len(question.split()) + t)

    (_, params, _), = gen.log
    for problem, prompt, q in zip(PROBLEMS, PROMPTS, params):
        if cap == "max_tokens_per_problem":
            assert q.max_new_tokens == 100 // 8
        else:  # the largest share that fits
            t = q.max_new_tokens
            assert flops(t, prompt, problem.question) <= limit < flops(t + 1, prompt, problem.question)


@pytest.mark.parametrize("name", STRATEGIES)
def test_budget_records_are_consistent(name):
    gen, ver = FakeGenerator(), FakeVerifier()
    results = search(name, settings(), gen, ver)
    for r in results:
        b = r.budget
        # candidates of a tree share their prefix tokens; only independent samples add up exactly
        assert b.generated_tokens >= max(c.n_tokens for c in r.completions) > 0
        if name == "best_of_n":
            assert b.generated_tokens == sum(c.n_tokens for c in r.completions)
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


def endless(prompt, rng):
    return f"Step {rng.randint(1, 99)}: thinking.\nStep 2: more.\n"


def long_steps(prompt, rng):
    return "\n".join(f"Step {rng.randint(1, 99)}: " + "so " * 30 for _ in range(10))  # 32 tokens a step


def test_dvts_cut_off_by_the_token_cap_returns_its_candidates_unfinished():
    # rounds 1-2 fit the cap (8 x 32 tokens each, 8 x 40 at worst); round 3's steps might not, so it is not run
    for r in search("dvts", settings(max_iterations=5, max_tokens_per_problem=700), FakeGenerator(script=long_steps)):
        assert len(r.completions) == 8 and not any(c.finished for c in r.completions)
        assert all(len(c.steps) == 2 and c.finish_reason == "length" for c in r.completions)
        assert r.budget.generated_tokens == 2 * 8 * 32


def test_a_whole_solution_round_shares_what_the_cap_leaves():
    # round 3 runs to the end of the solution: 8 children share the 700 - 512 tokens left, 23 each, and
    # end there as at sampling.max_new_tokens (finished at length: nothing rolls or continues them)
    for r in search("dvts", settings(max_iterations=3, max_tokens_per_problem=700), FakeGenerator(script=long_steps)):
        assert len(r.completions) == 8 and all(c.finished for c in r.completions)
        assert all(c.n_tokens == 2 * 32 + 23 and c.finish_reason == "length" for c in r.completions)
        assert r.budget.generated_tokens == 2 * 8 * 32 + 8 * 23 <= 700


@pytest.mark.parametrize("name", ["beam_search", "dvts"])
def test_the_round_at_max_iterations_runs_to_the_end_of_the_solution(name):
    """search-and-learn's last iteration drops the step stop, so a search cut at depth still answers."""
    seen = []

    class Spy(FakeGenerator):
        def generate(self, prompts, params):
            seen.append([q.stop for q in params])
            return super().generate(prompts, params)

    def script(prompt, rng):
        done = prompt.split("Solution:\n")[-1].count("Step")
        return f"Step {done + 1}: so 2 + 2 = 4.\nStep {done + 2}: still going.\nAnswer: \\boxed{{4}}\nQuestion: x"

    for r in search(name, settings(max_iterations=2), Spy(script=script)):
        assert all(c.finished and c.answer == "4" for c in r.completions)
        assert all(len(c.steps) >= 3 and len(c.step_scores) == len(c.steps) for c in r.completions)
    assert all("\n" in stop for stop in seen[0]) and all("\n" not in stop for stop in seen[1])


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


def test_filter_duplicates_works_across_parents_and_ignores_trailing_whitespace():
    from ttscale.search.expand import Expander
    from ttscale.search.records import Beam, Expansion, ProblemState

    def script(prompt, rng):
        return "Step 2: same.\n" if "Step 1" in prompt else f"Step 1: {'a' if rng.random() < 0.5 else 'a '}\n"

    core = Expander(FakeGenerator(script=script), FakeVerifier(), settings(filter_duplicates=True))
    st = ProblemState(PROBLEMS[0], PROMPTS[0])
    a, b = Beam(steps=("Step 1: x\n",)), Beam(steps=("Step 1: x\n",))  # two active beams, one text
    children = core.expand([(st, Expansion(a, 2)), (st, Expansion(b, 2))], 0)
    assert sum(map(len, children)) == 1  # one text in all: kept once, whichever parent grew it
    roots = core.expand([(st, Expansion(None, 8))], 1)[0]
    assert sorted(c.text for c in roots) in (["Step 1: a\n"], ["Step 1: a \n"])


def test_filter_duplicates_spans_the_problem_in_beam_search_and_stays_in_its_subtree_in_dvts():
    """README: across the whole problem in beam search; within each subtree in DVTS, whose subtrees are
    independent (Beeching et al. 2024); never among samples that vote (best-of-N, adaptive)."""

    def same(prompt, rng):
        return "Step 1: same.\nAnswer: \\boxed{1}"

    s = settings(n=8, beam_width=4, filter_duplicates=True)
    counts = {name: [len(r.completions) for r in search(name, s, FakeGenerator(script=same))]
              for name in ("beam_search", "dvts", "best_of_n", "adaptive_consistency")}
    assert counts["beam_search"] == [1] * len(PROBLEMS)
    assert counts["dvts"] == [2] * len(PROBLEMS)  # one per subtree: the other subtree's copy is not a repeat
    assert counts["best_of_n"] == [8] * len(PROBLEMS)
    assert all(c >= 4 for c in counts["adaptive_consistency"])  # a whole wave (search.adaptive.wave) kept


def test_filter_duplicates_compares_children_within_their_group():
    from ttscale.search.expand import Expander
    from ttscale.search.records import Expansion, ProblemState

    def same(prompt, rng):
        return "Step 1: same.\n"

    core = Expander(FakeGenerator(script=same), FakeVerifier(), settings(filter_duplicates=True))
    st = ProblemState(PROBLEMS[0], PROMPTS[0])
    children = core.expand([(st, Expansion(None, 3, group=0)), (st, Expansion(None, 3, group=1)),
                            (st, Expansion(None, 3, group=0))], 0)
    assert [len(c) for c in children] == [1, 1, 0]


def test_split_steps_keeps_delimiters():
    assert split_steps("a\n\nb\n\n\n\nc", "\n\n") == ("a\n\n", "b\n\n\n\n", "c")
    assert "".join(split_steps("x\ny\n", "\n")) == "x\ny\n"


# Strategies whose pick is their own rule, not search.selection: adaptive consistency's vote and DeepConf's
# confidence vote (evaluation's re-picks are how another pick is put on them).
OWN_PICK = {"adaptive_consistency", "deepconf"}


@pytest.mark.parametrize("name", [s for s in STRATEGIES if s not in OWN_PICK])
@pytest.mark.parametrize("selection", ["majority", "naive", "weighted"])
def test_a_strategy_picks_what_evaluation_re_picks_over_its_candidates(name, selection):
    """A run's own accuracy and evaluation's curve of the same pick over its candidates are one number."""
    from ttscale.grading.select import reselect

    results = search(name, settings(selection=selection))
    assert [r.selected for r in results] == [reselect(r, selection, "last") for r in results]
