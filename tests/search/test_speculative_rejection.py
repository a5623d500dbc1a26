"""Speculative Rejection (Sun et al. 2024): N samples in chunks, the weakest stopped at each checkpoint.

The registry contract (tests/search/test_contract.py) already holds it to N results, seeds, batching
and every cap; these tests hold it to the method."""

import re

import pytest

from ttscale.backends.fake import FakeGenerator
from ttscale.config import RejectionConfig
from ttscale.data.synthetic import arithmetic_problems
from ttscale.errors import ConfigError
from ttscale.search import SearchSettings, build_strategy
from ttscale.search.speculative_rejection import REJECTED
from ttscale.search.steps import split_steps
from ttscale.verifiers.fake import FakeVerifier

PROBLEMS = arithmetic_problems(4, seed=7)
PROMPTS = [f"Question: {p.question}\nSolution:\n" for p in PROBLEMS]
WORDS = 43  # every sample: 40 words, "Answer: \\boxed{..}" and the end marker "Question:"


def good_or_bad(prompt, rng):
    """A sample is good (25%) or bad from its first word on (g0 g1 ... or b0 b1 ...), and answers 7 if good, else 3.

    Words carry their index: the fake backend joins a chunk's words with single spaces, so counting
    them stays right where two chunks meet without a space."""
    solution = prompt.split("Solution:\n")[-1]
    done = len(re.findall(r"[gb]\d+", solution))
    kind = solution[:1] or ("g" if rng.random() < 0.25 else "b")
    body = " ".join(f"{kind}{i}" for i in range(done, 40))
    return body + f" Answer: \\boxed{{{7 if kind == 'g' else 3}}}" + "\nQuestion: next"


def good(text):
    return text.startswith("g0")


def by_kind(problem, steps, i):
    """A partial sample's score says what it is: what an early verifier read is worth to the method."""
    return 0.9 if good(steps[0]) else 0.1


class Spy(FakeGenerator):
    def __init__(self, **kw):
        super().__init__(script=good_or_bad, **kw)
        self.samples_per_call = []

    def generate(self, prompts, params):
        self.samples_per_call.append(sum(q.n for q in params))
        return super().generate(prompts, params)


def settings(**kw):
    base = dict(n=16, step_delimiter="\n", end_markers=("\nQuestion:",), max_new_tokens=200,
                rejection=RejectionConfig(rate=0.5, chunk_tokens=8), selection="naive", seed=1)
    return SearchSettings(**{**base, **kw})


def search(s, gen=None, problems=PROBLEMS, prompts=PROMPTS, verifier=None):
    return build_strategy("speculative_rejection").search(problems, prompts, gen or Spy(),
                                                           verifier or FakeVerifier(fn=by_kind), s)


def test_the_live_samples_halve_at_every_checkpoint_until_one_finishes():
    gen = Spy()
    results = search(settings(), gen, PROBLEMS[:1], PROMPTS[:1])
    # 42 words in chunks of 8: checkpoints after 8, 16, 24, 32 and 40 tokens; the last chunk finishes it
    assert gen.samples_per_call == [16, 8, 4, 2, 1, 1]
    (r,) = results
    rejected = [c for c in r.completions if c.dropped == REJECTED]
    assert len(r.completions) == 16 and len(rejected) == 15
    assert sorted(c.n_tokens for c in rejected) == [8] * 8 + [16] * 4 + [24] * 2 + [32]
    assert all(not c.finished and c.finish_reason == "length" for c in rejected)
    (survivor,) = [c for c in r.completions if c.dropped is None]
    assert survivor.finished and survivor.n_tokens == WORDS and r.completions[r.selected] is survivor


def test_the_budget_counts_what_was_generated_before_each_rejection():
    sr, bon = search(settings()), build_strategy("best_of_n").search(PROBLEMS, PROMPTS, Spy(), FakeVerifier(fn=by_kind),
                                                                     settings())
    for r, b in zip(sr, bon):
        assert r.budget.generated_tokens == sum(c.n_tokens for c in r.completions)
        assert r.budget.generated_tokens == 8 * (16 + 8 + 4 + 2 + 1) + (WORDS - 40)
        assert b.budget.generated_tokens == 16 * WORDS  # best-of-N finishes every sample
        # the verifier read every live sample at every checkpoint
        assert r.budget.verifier_calls == 6 and r.budget.verifier_tokens > 0


def test_the_weakest_are_rejected_and_the_pick_is_never_a_rejected_sample():
    for r in search(settings()):
        goods = [i for i, c in enumerate(r.completions) if good(c.text)]
        assert goods, "every problem here draws a good sample among 16"
        # a good sample outranks every bad one, so it is rejected only once the good ones outnumber the survivors
        survivors = [i for i, c in enumerate(r.completions) if c.dropped is None]
        assert set(survivors) <= set(goods)
        assert r.completions[r.selected].dropped is None and r.completions[r.selected].answer == "7"
        # the bad ones go first: none outlives a checkpoint that still had fewer survivors than good samples
        bad_lengths = [c.n_tokens for c in r.completions if not good(c.text)]
        keeps = [8, 4, 2, 1]
        assert max(bad_lengths) <= 8 * (1 + sum(k > len(goods) for k in keeps))


def test_without_rejection_it_is_chunked_best_of_n():
    for r in search(settings(rejection=RejectionConfig(rate=0.0, chunk_tokens=8))):
        assert all(c.dropped is None and c.finished and c.n_tokens == WORDS for c in r.completions)
        assert r.budget.generated_tokens == 16 * WORDS


def test_a_chunk_continues_its_samples_last_step_so_the_verifier_sees_whole_steps():
    """A chunk ends mid-step: the verifier must read "Step 2: a b" as one step, not "Step 2: a" and " b"."""
    from ttscale.search.expand import Expander
    from ttscale.search.records import Beam, Expansion, ProblemState

    core = Expander(FakeGenerator(script=lambda prompt, rng: " b c\nStep 3: d"), FakeVerifier(), settings())
    st = ProblemState(PROBLEMS[0], PROMPTS[0])
    parent = Beam(steps=("Step 1: x\n", "Step 2: a"), n_tokens=4)
    (child,), = core.expand([(st, Expansion(parent, 1, whole=True, max_tokens=8))], 0)
    assert child.steps == split_steps("Step 1: x\nStep 2: a b c\nStep 3: d", "\n") == (
        "Step 1: x\n", "Step 2: a b c\n", "Step 3: d")
    # a whole solution without a chunk (beam search's last round) appends its steps as before
    (whole,), = core.expand([(st, Expansion(Beam(steps=("Step 1: x\n",)), 1, whole=True))], 0)
    assert whole.steps == ("Step 1: x\n", " b c\n", "Step 3: d")


def test_a_run_writes_the_rejected_samples_marked_and_evaluates(fake_cfg):
    from ttscale.data.results import read_results
    from ttscale.runner import run

    cfg = fake_cfg("search.strategy=speculative_rejection", "verifier.name=fake", "search.n=8",
                   "search.rejection.chunk_tokens=4", "search.selection=naive")
    outcome = run(cfg, progress=False)
    results = read_results(outcome.run_dir)
    assert results and all(len(r.completions) == 8 for r in results)
    assert any(c.dropped == REJECTED for r in results for c in r.completions)
    assert all(r.completions[r.selected].dropped is None for r in results)
    assert outcome.metrics["n_problems"] == len(results) and 0 <= outcome.metrics["accuracy"] <= 1


@pytest.mark.parametrize("field,value", [("rate", 1.0), ("rate", -0.1), ("rate", float("nan")),
                                         ("chunk_tokens", 0)])
def test_bad_settings_are_refused_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=f"search.rejection.{field}"):
        RejectionConfig(**{field: value})
