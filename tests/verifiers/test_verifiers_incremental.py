"""Incremental scoring: a cached prefix's KV and scores are reused, and nothing else changes.

Each family is run twice on the same tiny random model: with the prefix cache (the
default) and with it off (`kv_cache_bytes=0`, every item scored in full). Rounds
mimic beam search: every round re-sends each beam's full step list, extended by one
step, with siblings sharing a parent, a fresh item nothing is cached for, and a
re-scored shorter prefix.
"""

from __future__ import annotations

import random

import pytest

from ttscale.config import VerifierConfig
from ttscale.types import Problem
from ttscale.verifiers.lm_judge import LMJudge
from ttscale.verifiers.math_shepherd import MathShepherdPRM
from ttscale.verifiers.qwen_prm import QwenPRM
from ttscale.verifiers.rlhflow import RLHFlowPRM
from ttscale.verifiers.skywork import SkyworkPRM

TOL = 1e-5
NAMES = ["rlhflow", "math_shepherd", "qwen_prm", "skywork", "lm_judge"]


@pytest.fixture(scope="module")
def factories(llama3_prm, mistral_prm, qwen_token_classifier, qwen_value_model, smol_judge):
    """name -> make(kv_cache_bytes, max_tokens_per_batch) building that family on its tiny model."""
    llama, llama_tok = llama3_prm
    mistral, mistral_tok = mistral_prm
    qwen, qwen_tok = qwen_token_classifier
    sky, sky_tok, head = qwen_value_model
    judge, judge_tok = smol_judge

    def cfg(name, max_tokens):
        return VerifierConfig(name=name, max_tokens_per_batch=max_tokens)

    return {
        "rlhflow": lambda b, n=8192: RLHFlowPRM(cfg("rlhflow", n), model=llama, tokenizer=llama_tok, kv_cache_bytes=b),
        "math_shepherd": lambda b, n=8192: MathShepherdPRM(
            cfg("math_shepherd", n), model=mistral, tokenizer=mistral_tok, kv_cache_bytes=b
        ),
        "qwen_prm": lambda b, n=8192: QwenPRM(cfg("qwen_prm", n), model=qwen, tokenizer=qwen_tok, kv_cache_bytes=b),
        "skywork": lambda b, n=8192: SkyworkPRM(
            cfg("skywork", n), model=sky, tokenizer=sky_tok, v_head=head, kv_cache_bytes=b
        ),
        "lm_judge": lambda b, n=8192: LMJudge(cfg("lm_judge", n), model=judge, tokenizer=judge_tok, kv_cache_bytes=b),
    }


def step_text(rng: random.Random) -> str:
    a, b = rng.randint(1, 9), rng.randint(1, 9)
    text = f"So {a} + {b} = {a + b} apples."
    return text + f"\nThen {b} more." if rng.random() < 0.3 else text  # Skywork scores multi-line steps


def beam_rounds(sample, n_rounds: int = 5, seed: int = 0):
    """Per round: (problems, step lists) as beam search sends them."""
    rng = random.Random(seed)
    problems, _ = sample
    beams = [(problems[0], [step_text(rng)]), (problems[1], [step_text(rng)]), (problems[0], [step_text(rng)])]
    rounds = []
    for r in range(n_rounds):
        fresh = (Problem(id=f"new{r}", question=f"Zed asks: {r} + {r}?", answer=str(2 * r)), [step_text(rng)])
        shorter = (beams[0][0], beams[0][1][:-1]) if len(beams[0][1]) > 1 else beams[0]
        items = [*beams, fresh, shorter]
        rounds.append(([p for p, _ in items], [list(s) for _, s in items]))
        # the first beam has two children next round (siblings sharing a cached parent)
        beams = [(beams[0][0], beams[0][1] + [step_text(rng)])] + [(p, s + [step_text(rng)]) for p, s in beams]
        beams = beams[:4]
    return rounds


@pytest.mark.parametrize("name", NAMES)
def test_incremental_scores_equal_full_scores_over_rounds(factories, name, sample):
    incremental, full = factories[name](1 << 30), factories[name](0)
    assert incremental.kv_cache is not None and full.kv_cache is None
    for r, (problems, steps) in enumerate(beam_rounds(sample)):
        got, expected = incremental.score(problems, steps), full.score(problems, steps)
        for g, e, s in zip(got, expected, steps):
            assert len(g) == len(s)
            assert g == pytest.approx(e, abs=TOL)
        ran = [incremental.count_tokens(p, s) for p, s in zip(problems, steps)]
        whole = [full.count_tokens(p, s) for p, s in zip(problems, steps)]
        if r == 0:  # nothing cached yet
            assert ran == whole
        else:  # the beams extend items scored last round; the fresh item shares at most a template header
            assert all(a < b for a, b in zip(ran[:3], whole[:3]))
            assert ran[3] <= whole[3]
    assert incremental.kv_cache.hits > 0


@pytest.mark.parametrize("name", NAMES)
def test_incremental_agrees_when_every_item_is_batched_alone(factories, name, sample):
    incremental, full = factories[name](1 << 30, 1), factories[name](0, 1)
    for problems, steps in beam_rounds(sample, n_rounds=3, seed=1):
        for g, e in zip(incremental.score(problems, steps), full.score(problems, steps)):
            assert g == pytest.approx(e, abs=TOL)


def test_count_tokens_reports_only_the_tokens_run(factories, sample):
    problems, steps = sample
    verifier = factories["rlhflow"](1 << 30)
    parent, child = steps[0][:2], steps[0]
    verifier.score([problems[0]], [parent])
    assert verifier.count_tokens(problems[0], parent) == len(verifier.encode(problems[0], parent).input_ids)
    verifier.score([problems[0]], [child])
    parent_ids = verifier.encode(problems[0], parent).input_ids
    child_ids = verifier.encode(problems[0], child).input_ids
    assert child_ids[: len(parent_ids)] == parent_ids  # this template appends a turn without touching the rest
    shared = len(parent_ids)
    assert verifier.count_tokens(problems[0], child) == len(child_ids) - shared
    # scoring the same item again runs one token: every score comes from the cache
    verifier.score([problems[0]], [child])
    assert verifier.count_tokens(problems[0], child) == 1


def held_blocks(cache) -> dict[int, int]:
    """id -> bytes of every block an entry or one of its ancestors reads."""
    blocks = {}
    for item in cache.entries.values():
        while item is not None:
            blocks[id(item.block)] = item.block.nbytes
            item = item.parent
    return blocks


def test_the_cache_stays_within_its_byte_budget(factories, sample):
    rounds = beam_rounds(sample)
    probe = factories["rlhflow"](1 << 30)
    for problems, steps in rounds:
        probe.score(problems, steps)
        assert probe.kv_cache.used == sum(held_blocks(probe.kv_cache).values())
    budget = probe.kv_cache.used // 2  # about half of what the rounds would keep
    verifier, full, stored = factories["rlhflow"](budget), factories["rlhflow"](0), 0
    for problems, steps in rounds:
        got = verifier.score(problems, steps)
        stored += len(steps)
        assert verifier.kv_cache.used == sum(held_blocks(verifier.kv_cache).values()) <= budget
        for g, e in zip(got, full.score(problems, steps)):
            assert g == pytest.approx(e, abs=TOL)
    assert verifier.kv_cache.hits > 0
    assert len(probe.kv_cache) < stored  # items extended whole leave the index even without budget pressure


def test_the_least_recently_used_entry_is_evicted_first(factories, sample):
    problems, steps = sample
    a, b, c = (problems[0], steps[0]), (problems[1], steps[1]), (problems[0], steps[0][:1] + ["Yet another."])
    probe = factories["rlhflow"](1 << 30)
    for item in (a, b, c):  # one call each: one block each
        probe.score([item[0]], [item[1]])
    size = {key: entry.block.nbytes for key, entry in probe.kv_cache.entries.items()}
    ka, kb, kc = (tuple(probe.encode(*item).input_ids) for item in (a, b, c))
    assert size[kc] <= size[kb]
    verifier = factories["rlhflow"](size[ka] + size[kb])  # a and b fit; c needs one of them to go
    for item in (a, b, a, c):  # a is used again (and is c's prefix): b is the least recently used
        verifier.score([item[0]], [item[1]])
    assert set(verifier.kv_cache.entries) == {ka, kc}


def test_an_item_larger_than_the_budget_is_not_cached(factories, sample):
    problems, steps = sample
    verifier = factories["rlhflow"](16)
    verifier.score(problems, steps)
    assert len(verifier.kv_cache) == 0 and verifier.kv_cache.used == 0


class _UnstablePrefixPRM(RLHFlowPRM):
    """The question's text depends on the number of steps: appending a step changes early token ids."""

    def messages(self, problem, steps):
        return super().messages(Problem(problem.id, f"({len(steps)}) {problem.question}", problem.answer), steps)


def test_a_prefix_whose_token_ids_change_falls_back_to_scoring_it_again(llama3_prm, sample):
    model, tok = llama3_prm
    problems, steps = sample
    incremental = _UnstablePrefixPRM(model=model, tokenizer=tok)
    full = _UnstablePrefixPRM(model=model, tokenizer=tok, kv_cache_bytes=0)
    for k in range(1, len(steps[0]) + 1):
        got = incremental.score([problems[0]], [steps[0][:k]])[0]
        assert got == pytest.approx(full.score([problems[0]], [steps[0][:k]])[0], abs=TOL)
    ran = incremental.count_tokens(problems[0], steps[0])
    # only the BOS and header tokens before the question match: the whole conversation runs again
    assert ran > 0.9 * full.count_tokens(problems[0], steps[0])


class _ReadWithoutModelKwargs(RLHFlowPRM):
    """A family written before incremental scoring: its read passes nothing on to the model."""

    def read(self, input_ids, attention_mask, rows, cols):
        return super().read(input_ids, attention_mask, rows, cols, use_cache=False)


def test_a_family_whose_read_takes_no_model_kwargs_is_scored_in_full(llama3_prm, sample):
    model, tok = llama3_prm
    problems, steps = sample
    legacy = _ReadWithoutModelKwargs(model=model, tokenizer=tok)
    assert legacy.kv_cache is None
    expected = RLHFlowPRM(model=model, tokenizer=tok, kv_cache_bytes=0).score(problems, steps)
    for g, e in zip(legacy.score(problems, steps), expected):
        assert g == pytest.approx(e, abs=TOL)


def test_a_negative_budget_is_refused(llama3_prm):
    from ttscale.errors import ConfigError

    with pytest.raises(ConfigError, match="kv_cache_bytes"):
        RLHFlowPRM(model=llama3_prm[0], tokenizer=llama3_prm[1], kv_cache_bytes=-1)
