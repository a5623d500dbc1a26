"""Thinking budgets: budget forcing (s1) with a scripted policy, under every strategy, and the answer
graded after the thinking block. The fake counts a word as a token."""

from __future__ import annotations

import dataclasses
import re

import pytest

from ttscale.backends.fake import FakeGenerator
from ttscale.config import AdaptiveConfig, DeepConfConfig, ThinkingConfig
from ttscale.search import SearchSettings, build_strategy
from ttscale.search.base import STRATEGIES
from ttscale.search.thinking import ThinkState, answer_part, force, initial_state
from ttscale.types import Problem

END = "</think>"
PROBLEMS = [Problem(id=f"t{i}", question=f"What is {i} + 2?", answer=str(i + 2)) for i in range(3)]


def after_prompt(prompt: str) -> str:
    """What the policy wrote so far: the fake sees prompt + solution."""
    return prompt.split("Assistant: ", 1)[1]


def closes_early(prompt: str, rng) -> str:
    """Thinks three words then tries to close; after the close, answers with a distractor in its thinking."""
    written = after_prompt(prompt)
    if END in written:
        return " The answer is \\boxed{3}."
    return "hmm \\boxed{7} ok " + END + " The answer is \\boxed{3}."


def never_closes(prompt: str, rng) -> str:
    written = after_prompt(prompt)
    if END in written:
        return " 3}$."
    return " ".join(f"w{rng.randint(0, 9)}" for _ in range(60))


def paragraphs(prompt: str, rng) -> str:
    """Thinking in short paragraphs (step-wise strategies stop at each), closing at a random point."""
    written = after_prompt(prompt)
    if END in written:
        return " The answer is \\boxed{3}."
    words = " ".join(f"w{rng.randint(0, 9)}" for _ in range(3))
    return f"{words}.\n\n" + (END if rng.random() < 0.3 else "more.\n\n") + " The answer is \\boxed{3}."


def settings(**thinking) -> SearchSettings:
    t = ThinkingConfig(start="<think>", end=END, **thinking)
    return SearchSettings(n=4, beam_width=2, max_new_tokens=120, max_step_tokens=30, max_iterations=30,
                          step_delimiter="\n\n", thinking=t, deepconf=DeepConfConfig(warmup=2),
                          adaptive=AdaptiveConfig(wave=2), logprobs=4, selection="majority")


def run(strategy: str, script, s: SearchSettings, verifier=None):
    from ttscale.verifiers.fake import FakeVerifier

    prompts = [f"System: x\n\nUser: {p.question}\n\nAssistant: " for p in PROBLEMS]
    return build_strategy(strategy).search(PROBLEMS, prompts, FakeGenerator(script=script), verifier or FakeVerifier(),
                                           s)


def thinking_of(text: str) -> str:
    return text.split(END, 1)[0]


def test_an_early_close_becomes_wait_until_min_tokens():
    # Each try is 4 tokens ("hmm \\boxed{7} ok </think>"): closes at 4 and 8 are undone, 12 >= 10 stands.
    (r, *_) = run("best_of_n", closes_early, settings(min_tokens=10))
    for c in r.completions:
        assert c.thinking_tokens == 12
        assert c.text.count("Wait") == 2 and c.text.count(END) == 1
        assert len(thinking_of(c.text).split()) >= 10 - 1  # the stripped markers were generated, not kept
        assert c.answer == "3" and c.finish_reason == "eos"


def test_a_close_exactly_at_min_tokens_stands():
    # Tries close at 4 and 8 tokens: min_tokens is a floor, so with min_tokens=8 only the first is undone.
    (r, *_) = run("best_of_n", closes_early, settings(min_tokens=8))
    for c in r.completions:
        assert c.thinking_tokens == 8 and c.text.count("Wait") == 1 and c.answer == "3"


def test_max_tokens_forces_the_end_marker_and_the_answer_cue():
    (r, *_) = run("best_of_n", never_closes, settings(max_tokens=20))
    for c in r.completions:
        assert c.thinking_tokens == 20
        assert len(thinking_of(c.text).split()) == 20
        assert "</think>\n\nThe final answer is $\\boxed{ 3}$." in c.text
        assert c.answer == "3"
    assert r.budget.thinking_tokens == sum(c.thinking_tokens for c in r.completions)
    assert r.budget.generated_tokens > r.budget.thinking_tokens


def test_no_budget_lets_the_model_close_where_it_likes_and_grades_only_the_answer():
    (r, *_) = run("best_of_n", closes_early, settings())
    for c in r.completions:
        assert c.thinking_tokens == 4 and "Wait" not in c.text
        assert c.answer == "3"  # the \\boxed{7} inside the thinking block is not the answer


def test_a_solution_that_never_closes_is_unanswered_and_marked_length():
    def eos_inside(prompt, rng):
        return "I think \\boxed{5} is it"

    (r, *_) = run("best_of_n", eos_inside, settings())
    for c in r.completions:
        assert c.answer is None and c.finish_reason == "length" and END not in c.text


@pytest.mark.parametrize("strategy", [s for s in STRATEGIES.names() if s != "compute_optimal"])
def test_every_strategy_respects_the_thinking_budget(strategy):
    s = settings(min_tokens=6, max_tokens=14)
    results = run(strategy, paragraphs, s)
    for r in results:
        assert r.error is None and r.completions
        for c in r.completions:
            if c.dropped == "stopped":
                continue
            assert c.thinking_tokens <= 14
            if END in c.text:
                assert c.thinking_tokens >= 6
                assert c.text.count(END) == 1
                assert c.answer == "3"
            else:
                assert c.answer is None


def test_thinking_steps_split_at_paragraphs_and_the_verifier_sees_them():
    from ttscale.verifiers.fake import FakeVerifier

    seen = []

    class Recording(FakeVerifier):
        def score(self, problems, steps):
            seen.extend(steps)
            return super().score(problems, steps)

    s = dataclasses.replace(settings(max_tokens=40), step_split="paragraph", min_step_tokens=5)
    results = run("beam_search", paragraphs, s, Recording())
    assert seen and all(results[0].completions)
    for c in (c for r in results for c in r.completions):
        assert "".join(c.steps) == c.text
        # short paragraphs ("w1 w2 w3.") merged with the next: none under 5 words but the last, or one the
        # thinking budget ended (the next step holds the forced end marker)
        short = [i for i, step in enumerate(c.steps[:-1]) if len(step.split()) < 5]
        assert all(END in c.steps[i + 1] for i in short)
        assert any(len(step.split()) >= 5 and "\n\nw" in step for step in c.steps)  # merges happened


def test_lookahead_rolls_are_budget_forced_and_their_thinking_tokens_counted():
    from ttscale.verifiers.fake import FakeVerifier

    seen = []

    class Recording(FakeVerifier):
        def score(self, problems, steps):
            seen.extend("".join(x) for x in steps)
            return super().score(problems, steps)

    def thinks_on(prompt, rng):  # never closes on its own, in 10-word paragraphs
        return " ".join(f"w{rng.randint(0, 9)}" for _ in range(10)) + ".\n\n"

    capped = dataclasses.replace(settings(max_tokens=20), lookahead=2, max_iterations=4)
    run("beam_search", thinks_on, capped, Recording())
    # the rolls went past the budget's end: the forced close ended their thinking there, as in a real step
    assert any(END in x for x in seen)
    assert all(len(thinking_of(x).split()) <= 20 for x in seen)
    free = dataclasses.replace(settings(), lookahead=2, max_iterations=4)
    for r in run("beam_search", thinks_on, free):
        assert r.budget.thinking_tokens == r.budget.generated_tokens > 0  # every token, the rolls' too, thought


def test_the_same_thinking_run_whatever_the_batch():
    s = settings(min_tokens=6, max_tokens=14)
    together = run("beam_search", paragraphs, s)
    alone = [r for p in PROBLEMS for r in build_strategy("beam_search").search(
        [p], [f"System: x\n\nUser: {p.question}\n\nAssistant: "], FakeGenerator(script=paragraphs),
        __import__("ttscale.verifiers.fake", fromlist=["FakeVerifier"]).FakeVerifier(), s)]
    assert [c.text for r in together for c in r.completions] == [c.text for r in alone for c in r.completions]


# -- the pure functions ---------------------------------------------------------------------------------
T = ThinkingConfig(start="<think>", end=END, min_tokens=5, max_tokens=9)


def test_force_undoes_a_close_before_min_and_counts_it():
    f = force(T, ThinkState(), 0, "a b </think>", 3, ended=False)
    assert f.text == "a b Wait" and f.injected == "Wait" and f.state.continues == 1 and not f.state.closed


def test_force_lets_a_close_after_min_stand_and_marks_where_the_answer_starts():
    f = force(T, ThinkState(tokens=4), 10, "c d </think>", 3, ended=False)
    assert f.text == "c d </think>" and f.state.answer_at == 10 + len("c d </think>") and f.state.tokens == 7


def test_force_lets_a_close_or_an_eos_exactly_at_min_stand():
    f = force(T, ThinkState(tokens=2), 0, "c d </think>", 3, ended=False)
    assert f.state.tokens == T.min_tokens and f.state.closed and f.injected == "" and f.state.continues == 0
    eos = force(T, ThinkState(tokens=4), 0, "e", 1, ended=True)
    assert eos.text == "e" and eos.injected == "" and eos.state.continues == 0


def test_force_closes_at_max_tokens():
    f = force(T, ThinkState(tokens=6), 0, "x y z", 3, ended=False)
    assert f.state.closed and f.text.startswith("x y z</think>") and f.injected == END + T.answer_cue


def test_an_eos_before_min_is_an_early_close_too():
    f = force(T, ThinkState(), 0, "a", 1, ended=True)
    assert f.text == "aWait" and not f.state.closed


def test_a_prompt_that_closed_thinking_already_starts_in_the_answer():
    assert initial_state(T, "Assistant: <think>\n\n</think>\n\n").closed
    assert not initial_state(T, "Assistant: <think>\n").closed
    assert initial_state(ThinkingConfig(start="", end=""), "x") is None
    assert answer_part("a</think>b", ThinkState(answer_at=len("a</think>"))) == "b"
    assert answer_part("still thinking", ThinkState()) is None


def test_thinking_config_is_validated_and_unescaped():
    from ttscale.errors import ConfigError
    from ttscale.recipe import load_config

    cfg = load_config(None, ["sampling.thinking.min_tokens=8", "sampling.thinking.continue_text=\\nWait",
                             "sampling.thinking.max_tokens=64"])
    assert cfg.sampling.thinking.continue_text == "\nWait" and cfg.sampling.thinking.max_tokens == 64
    assert "\\boxed{" in cfg.sampling.thinking.answer_cue
    cue = load_config(None, ["sampling.thinking.answer_cue=\\n$\\text{so}\\ \\boxed{"]).sampling.thinking.answer_cue
    assert cue == "\n$\\text{so}\\ \\boxed{"  # LaTeX survives; only the shell's \\n is decoded
    with pytest.raises(ConfigError, match="sampling.thinking.max_tokens"):
        load_config(None, ["sampling.thinking.min_tokens=8", "sampling.thinking.max_tokens=4"])
    with pytest.raises(ConfigError, match=re.escape("sampling.thinking.budget")):
        load_config(None, ["sampling.thinking.budget=4"])
    with pytest.raises(ConfigError, match="sampling.thinking.end"):
        load_config(None, ["sampling.thinking.start=<think>"])


def test_a_policy_that_generates_nothing_does_not_loop():
    """A server answering empty text to every "Wait" ends the child instead of asking forever."""

    def silent(prompt, rng):
        return END

    class Counting(FakeGenerator):
        def count_tokens(self, text):
            return 0 if text == END else super().count_tokens(text)

        def _one(self, prompt, seed, params):
            g = super()._one(prompt, seed, params)
            return dataclasses.replace(g, n_tokens=0)

    gen = Counting(script=silent)
    (r,) = build_strategy("best_of_n").search(PROBLEMS[:1], ["Assistant: "], gen, None, settings(min_tokens=10))
    assert gen.calls <= 2 and len(r.completions) == 4
