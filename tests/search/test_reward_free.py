"""Reward-free search (Kang et al. 2025): every strategy that picks from candidates picks by self-certainty,
and the `self_certainty` verifier steers beam search, DVTS and particle filtering with no reward model."""

import math

import pytest

from ttscale.backends.fake import FakeGenerator
from ttscale.confidence import self_certainty
from ttscale.config import RejectionConfig
from ttscale.data.synthetic import arithmetic_problems
from ttscale.grading.select import select
from ttscale.search import SearchSettings, build_strategy
from ttscale.verifiers.fake import FakeVerifier
from ttscale.verifiers.self_certainty import SelfCertaintyVerifier

PROBLEMS = arithmetic_problems(5, seed=4)
PROMPTS = [f"Question: {p.question}\nSolution:\n" for p in PROBLEMS]
# strategies whose answer is `search.selection` over their candidates (adaptive_consistency and deepconf vote
# by their own rules)
PICKING = ["best_of_n", "beam_search", "dvts", "particle_filtering", "speculative_rejection"]


def sure_or_not(prompt, rng):
    """Two steps, each "sure" (30%) or "maybe"; the answer is 7 when both were sure, else a guess."""
    solution = prompt.split("Solution:\n")[-1]
    done = solution.count("Step ")
    all_sure = "maybe" not in solution
    lines = []
    for k in range(done + 1, 3):
        word = "sure" if rng.random() < 0.3 else "maybe"
        all_sure &= word == "sure"
        lines.append(f"Step {k}: {word} {word} {word}.")
    lines.append(f"Answer: \\boxed{{{7 if all_sure else rng.randint(1, 4)}}}")
    return "\n".join(lines) + "\nQuestion: next"


def certain_of_sure(word, index, k, rng):
    """The policy is sure of the word "sure" and of nothing else: the same rows every time."""
    p1 = 0.98 if word.startswith("sure") else 0.4
    return [math.log(p1)] + [math.log((1 - p1) / (k - 1))] * (k - 1)


def settings(**kw):
    base = dict(n=8, beam_width=2, step_delimiter="\n", end_markers=("\nQuestion:",), max_step_tokens=40,
                max_new_tokens=60, max_iterations=6, rejection=RejectionConfig(chunk_tokens=4))
    return SearchSettings(**{**base, **kw})


def gen():
    return FakeGenerator(script=sure_or_not, logprob_script=certain_of_sure)


def sure_words(text):
    return sum(w.startswith("sure") for w in text.split())


@pytest.mark.parametrize("selection", ["self_certainty", "confidence_weighted"])
@pytest.mark.parametrize("name", PICKING)
def test_every_picking_strategy_picks_by_the_policys_confidence(name, selection):
    """sampling.logprobs is 0: the search records the top 20 itself because the pick reads them."""
    results = build_strategy(name).search(PROBLEMS, PROMPTS, gen(), SelfCertaintyVerifier(), settings(selection=selection))
    for r in results:
        assert all(c.confidence is not None and c.confidence.n_tokens == c.n_tokens for c in r.completions)
        kept = [i for i, c in enumerate(r.completions) if c.dropped is None]
        pick = select([r.completions[i] for i in kept], selection, distinct=r.distinct)
        assert r.selected == kept[pick]
        if selection == "self_certainty":  # the surest candidate: the one with the most "sure" words of its length
            certainty = [r.completions[i].confidence.self_certainty for i in kept]
            assert r.completions[r.selected].confidence.self_certainty == max(certainty)


def test_self_certainty_best_of_n_finds_the_confident_answer_majority_misses():
    results = {sel: build_strategy("best_of_n").search(PROBLEMS, PROMPTS, gen(), None, settings(n=16, selection=sel))
               for sel in ("majority", "self_certainty")}
    for maj, sc in zip(results["majority"], results["self_certainty"]):
        assert [c.text for c in maj.completions] == [c.text for c in sc.completions]  # the same samples
        most = max(sure_words(c.text) for c in sc.completions)
        assert sure_words(sc.completions[sc.selected].text) == most
        if most == 6:  # some sample was sure twice, so answered 7
            assert sc.completions[sc.selected].answer == "7"
    assert sum(r.completions[r.selected].answer == "7" for r in results["self_certainty"]) > sum(
        r.completions[r.selected].answer == "7" for r in results["majority"])


@pytest.mark.parametrize("name", ["beam_search", "dvts", "particle_filtering"])
def test_the_self_certainty_verifier_steers_search_with_no_reward_model(name):
    s = settings(n=8, beam_width=2, selection="naive")
    steered = build_strategy(name).search(PROBLEMS, PROMPTS, gen(), SelfCertaintyVerifier(), s)
    blind = build_strategy(name).search(PROBLEMS, PROMPTS, gen(), FakeVerifier(), s)
    for r in steered:
        # no verifier model ran: no verifier tokens, and FLOPs are the policy's alone
        assert r.budget.verifier_tokens == 0 and r.budget.verifier_calls >= 1
        assert r.budget.flops == pytest.approx(2 * gen().n_params * (
            r.budget.generated_tokens + r.budget.prompt_tokens - r.budget.prompt_tokens_reused))
        for c in r.completions:
            # each step's score is 1 - exp(-s) of the trace so far; the last step's is the whole trace's
            assert len(c.step_scores) == len(c.steps) and all(0 <= x <= 1 for x in c.step_scores)
            assert c.step_scores[-1] == pytest.approx(1 - math.exp(-c.confidence.self_certainty))

    def sure_share(results):
        return sum(sure_words(c.text) for r in results for c in r.completions) / sum(
            len(r.completions) for r in results)
    assert sure_share(steered) > sure_share(blind)
    assert sum(r.completions[r.selected].answer == "7" for r in steered) > sum(
        r.completions[r.selected].answer == "7" for r in blind)


def test_a_lookahead_roll_is_scored_on_its_own_recorded_rows():
    """The roll's tokens are read too: a beam whose greedy continuation is sure outranks one whose is not."""
    from ttscale.search.expand import Expander
    from ttscale.search.records import Beam, ProblemState

    def script(prompt, rng):
        return "Step 2: sure sure sure.\n" if "Step 1: a" in prompt else "Step 2: maybe maybe maybe.\n"

    core = Expander(FakeGenerator(script=script, logprob_script=certain_of_sure), SelfCertaintyVerifier(),
                    settings(lookahead=1))
    st = ProblemState(PROBLEMS[0], PROMPTS[0])
    row = certain_of_sure("x", 0, 20, None)
    a, b = (Beam(steps=(f"Step 1: {w}\n",), top_logprobs=(row,) * 3) for w in ("a", "b"))
    scored = core.score([(st, a), (st, b)])
    assert scored[0].value > scored[1].value  # the same own rows: only the rolled step differs
    assert scored[0].scores == scored[1].scores and len(scored[0].scores) == 1  # own steps' scores alone are kept
    assert self_certainty([row] * 3) == pytest.approx(-math.log(1 - scored[0].scores[0]))


def test_a_server_without_logprobs_refuses_a_reward_free_search_before_any_problem(fake_cfg):
    pytest.importorskip("httpx")
    from ttscale.backends.openai_http import OpenAIGenerator
    from ttscale.backends.server_probe import ServerCapabilities
    from ttscale.config import ModelConfig
    from ttscale.data.results import read_results
    from ttscale.errors import ConfigError
    from ttscale.runner import run

    url = "http://127.0.0.1:1/v1"
    policy = OpenAIGenerator(ModelConfig(backend="openai", name_or_path="policy", base_url=url),
                             capabilities=ServerCapabilities(logprobs=False))
    for i, sets in enumerate((["search.selection=self_certainty"],
                              ["search.strategy=beam_search", "verifier.name=self_certainty", "search.beam_width=2"])):
        cfg = fake_cfg("model.backend=openai", f"model.base_url={url}", "model.name_or_path=policy", *sets,
                       f"output.dir={fake_cfg().output.dir}-{i}")
        with pytest.raises(ConfigError, match="returns no logprobs"):
            run(cfg, generator=policy, progress=False)
        assert not read_results(cfg.output.dir)


def test_a_run_shows_the_confidence_picks_at_every_n_only_when_it_recorded_confidence(fake_cfg):
    from ttscale.eval.metrics import format_table
    from ttscale.runner import run

    with_conf = run(fake_cfg("search.selection=self_certainty", "search.n=8"), progress=False).metrics
    assert {"majority", "self_certainty", "confidence_weighted"} <= set(with_conf["curves"])
    assert "selfcert" in format_table(with_conf)
    plain = run(fake_cfg("search.n=8", "output.dir=" + str(fake_cfg().output.dir) + "-plain"), progress=False).metrics
    assert set(plain["curves"]) == {"majority", "pass"}


def test_the_verifier_refuses_text_without_the_policys_log_probabilities():
    from ttscale.errors import ConfigError

    with pytest.raises(ConfigError, match="self_certainty"):
        SelfCertaintyVerifier().score(PROBLEMS[:1], [["Step 1: sure."]])
