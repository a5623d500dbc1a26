"""adaptive_consistency's stopping rules and DeepConf offline / online on scripted fakes."""

import math

import pytest

from ttscale.backends.fake import FakeGenerator
from ttscale.config import AdaptiveConfig, DeepConfConfig
from ttscale.data.synthetic import arithmetic_problems
from ttscale.search import SearchSettings, build_strategy
from ttscale.search.adaptive import beta_leader_probability, dirichlet_leader_probability, should_stop, window_agrees
from ttscale.search.deepconf import crossed, keep_top, percentile
from ttscale.search.records import Beam

PROBLEMS = arithmetic_problems(3, seed=2)
PROMPTS = [f"Question: {p.question}\nSolution:\n" for p in PROBLEMS]


def settings(**kw):
    base = dict(n=16, adaptive=AdaptiveConfig(wave=4), step_delimiter="\n", max_new_tokens=200, selection="majority")
    return SearchSettings(**{**base, **kw})


class Spy(FakeGenerator):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.asked = []

    def generate(self, prompts, params):
        self.asked.append([(p.n, p.max_new_tokens, p.logprobs) for p in params])
        return super().generate(prompts, params)


def sure(prompt, rng):
    return "Step 1: 3 + 4 = 7.\nAnswer: \\boxed{7}"


def split(prompt, rng):
    return f"Step 1: guess.\nAnswer: \\boxed{{{rng.choice([1, 2, 3])}}}"


def test_beta_rule_is_the_exact_posterior():
    assert beta_leader_probability([4]) == pytest.approx(31 / 32)  # 4-0: P(Beta(5, 1) > 1/2) = 1 - 2^-5
    assert beta_leader_probability([3, 1]) == pytest.approx(1 - 6 / 32)
    assert beta_leader_probability([2, 2]) == pytest.approx(0.5)
    assert beta_leader_probability([]) == 0.0
    assert should_stop(["7"] * 4, "beta", 0.95, 4) and not should_stop(["7", "7", "7", None], "beta", 0.95, 4)


def test_dirichlet_rule_agrees_with_beta_on_one_answer_and_doubts_a_split_vote():
    assert dirichlet_leader_probability([4]) == pytest.approx(31 / 32, abs=0.01)
    assert dirichlet_leader_probability([3, 3, 2]) < 0.6
    assert dirichlet_leader_probability([9, 1]) > 0.95


def test_window_rule_needs_a_whole_agreeing_window():
    assert window_agrees(["1", "2", "7", "7.0", "7", "7"], 4)  # canonical forms: 7.0 is 7
    assert not window_agrees(["7", "7", "7"], 4) and not window_agrees(["7", "7", "7", None], 4)


@pytest.mark.parametrize("rule", ["window", "beta", "dirichlet"])
def test_an_easy_problem_stops_after_one_wave(rule):
    gen = Spy(script=sure)
    results = build_strategy("adaptive_consistency").search(PROBLEMS, PROMPTS, gen, None, settings(adaptive=AdaptiveConfig(wave=4, stop_rule=rule)))
    assert [len(r.completions) for r in results] == [4, 4, 4]
    assert len(gen.asked) == 1 and all(n == 4 for n, _, _ in gen.asked[0])  # one wave, all problems in one call
    for r in results:
        assert r.completions[r.selected].answer == "7"
        assert r.budget.generated_tokens == sum(c.n_tokens for c in r.completions)


def test_a_split_vote_samples_up_to_n_in_waves():
    gen = Spy(script=split)
    (r,) = build_strategy("adaptive_consistency").search(PROBLEMS[:1], PROMPTS[:1], gen, None, settings(n=10, adaptive=AdaptiveConfig(wave=4)))
    assert [n for call in gen.asked for n, _, _ in call] == [4, 4, 2] and len(r.completions) == 10
    majority = max({c.answer for c in r.completions}, key=[c.answer for c in r.completions].count)
    assert r.completions[r.selected].answer == majority


def test_percentile_and_top_eta():
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 10) == pytest.approx(1.4)
    assert percentile([3.0], 90) == 3.0
    assert keep_top([0.1, 0.9, 0.5, 0.9], 10) == [1]
    assert keep_top([0.1, 0.9, 0.5, 0.9], 90) == [1, 3, 2, 0]


LENGTH = 30


def mixed(prompt, rng):
    """A confident trace ('sure ...') answers 7, a hesitant one ('hmm ...') answers 3; a continuation keeps its kind."""
    done = prompt.split("Solution:\n")[-1]
    kind = "hmm" if "hmm" in done else "sure" if "sure" in done else ("sure" if rng.random() < 0.35 else "hmm")
    left = LENGTH - done.count(kind)  # the fake joins chunks without a space: count the words, not the gaps
    return " ".join([kind] * max(0, left)) + f" Answer: \\boxed{{{7 if kind == 'sure' else 3}}}"


def rows(word, index, k, rng):
    if word == "hmm":  # flat: every alternative about as likely
        return [math.log(1 / k)] * k
    return [math.log(0.99)] + [math.log(0.01 / (k - 1))] * (k - 1)


def deepconf(mode, **kw):
    s = settings(deepconf=DeepConfConfig(**{"mode": mode, "warmup": 4, "eta": 90, "chunk_tokens": 8, **kw}),
                 confidence_window=4)
    gen = Spy(script=mixed, logprob_script=rows)
    return build_strategy("deepconf").search(PROBLEMS, PROMPTS, gen, None, s), gen


@pytest.mark.parametrize("seed", range(20))
def test_crossed_read_chunk_by_chunk_judges_as_the_whole_trace(seed):
    import random

    rng = random.Random(seed)
    window, threshold = rng.choice([1, 3, 5]), 1.0
    rows = tuple((-rng.uniform(0.5, 1.6), -rng.uniform(0.5, 1.6)) for _ in range(rng.randint(1, 40)))
    judged, verdict = 0, False
    for end in range(rng.randint(1, 7), len(rows) + 7, rng.randint(1, 7)):  # chunks, some adding nothing
        part = Beam(top_logprobs=rows[:end])
        if crossed(part, threshold, window, judged):
            verdict = True
            break
        judged = len(part.top_logprobs)
    whole = Beam(top_logprobs=rows)
    assert verdict == any(crossed(Beam(top_logprobs=rows[:e]), threshold, window) for e in range(1, len(rows) + 1))
    assert verdict == (len(rows) >= window and crossed(whole, threshold, window))


def test_offline_keeps_the_most_confident_and_marks_the_rest():
    results, gen = deepconf("offline", eta=10)
    assert all(lp == 20 for call in gen.asked for _, _, lp in call)  # logprobs on although sampling.logprobs is 0
    for r in results:
        answers = [c.answer for c in r.completions]
        assert len(r.completions) == 16 and answers.count("3") > answers.count("7") >= 2  # majority would say 3
        kept = [c for c in r.completions if c.dropped is None]
        assert len(kept) == 2 and all(c.answer == "7" for c in kept)
        assert all(c.dropped == "filtered" for c in r.completions if c not in kept)
        assert r.completions[r.selected].answer == "7" and r.completions[r.selected].dropped is None
        assert r.budget.generated_tokens == sum(c.n_tokens for c in r.completions)  # filtered traces are paid for


def test_online_stops_hesitant_traces_mid_generation_and_counts_what_they_cost():
    online, gen = deepconf("online", eta=10)
    offline, _ = deepconf("offline", eta=10)
    assert any(max_new == 8 for call in gen.asked for _, max_new, _ in call)  # chunks, not whole traces
    assert sum(len(r.completions) for r in online) > 12  # past the warm-up somewhere
    for r in online:
        warm = [c.answer for c in r.completions[:4]]
        stopped = [c for c in r.completions if c.dropped == "stopped"]
        # a confident warm-up trace lifts the threshold above every hesitant trace, which then stops at its first check
        if "7" in warm:
            assert r.completions[r.selected].answer == "7"
            assert len(r.completions) == 4 or stopped
        assert all("hmm" in c.text and c.answer is None and c.n_tokens == 8 for c in stopped)  # never finished
        assert all(c.dropped is None for c in r.completions[:4])
        assert r.budget.generated_tokens == sum(c.n_tokens for c in r.completions)
        assert all(c.confidence is not None for c in r.completions)
    assert any(c.dropped == "stopped" for r in online for c in r.completions)
    assert sum(r.budget.generated_tokens for r in online) < 0.6 * sum(r.budget.generated_tokens for r in offline)


def test_online_is_the_same_whatever_the_batch():
    together, _ = deepconf("online")
    s = settings(deepconf=DeepConfConfig(mode="online", warmup=4, eta=90, chunk_tokens=8), confidence_window=4)
    alone = [build_strategy("deepconf").search([p], [q], FakeGenerator(script=mixed, logprob_script=rows), None, s)[0]
             for p, q in zip(PROBLEMS, PROMPTS)]
    assert [r.completions for r in together] == [r.completions for r in alone]


@pytest.mark.parametrize("save", [False, True])
def test_completions_keep_a_confidence_summary_and_logprobs_only_when_saved(save):
    s = settings(logprobs=3, save_logprobs=save)
    (r,) = build_strategy("best_of_n").search(PROBLEMS[:1], PROMPTS[:1], FakeGenerator(), None, s)
    for c in r.completions:
        assert c.confidence is not None and c.confidence.n_tokens == c.n_tokens
        assert (len(c.top_logprobs) == c.n_tokens) if save else (c.logprobs == () and "logprobs" not in c.to_dict())
