"""Prefix KV reuse must not change what is generated ."""

import pytest
import torch

from ttscale.backends.hf import STATIC_WIDTH_STEP, HFGenerator
from ttscale.config import ModelConfig
from ttscale.data.synthetic import arithmetic_problems
from ttscale.models.prefix_cache import PrefixKVStore
from ttscale.search import SearchSettings, build_strategy
from ttscale.types import SamplingParams
from ttscale.verifiers.fake import FakeVerifier


def test_store_finds_longest_common_prefix_and_respects_budget():
    kv = lambda n: [(torch.ones(2, n, 4), torch.ones(2, n, 4))]  # noqa: E731
    store = PrefixKVStore(budget_bytes=20 * 2 * 2 * 4 * 4)  # room for 20 tokens
    store.put([1, 2, 3, 4], kv(4))
    store.put([1, 2, 9], kv(3))
    n, got = store.lookup([1, 2, 3, 7, 7])
    assert n == 3 and got[0][0].shape == (2, 3, 4)
    assert store.lookup([5, 5])[0] == 0
    store.put(list(range(100, 114)), kv(14))  # evicts the least recently used entries
    assert store.used <= store.budget and tuple(range(100, 114)) in store.entries
    assert (1, 2, 9) not in store.entries


@pytest.fixture(scope="module")
def pair(smollm2):
    cached = smollm2
    plain = HFGenerator(ModelConfig(prefix_cache=False, max_batch_size=16), model=smollm2.model, tokenizer=smollm2.tokenizer)
    return cached, plain


def test_cached_and_recomputed_generation_agree(pair):
    cached, plain = pair
    prompt = "Question: Tom has 3 apples. He buys 4 more apples. How many apples does Tom have now?\nSolution:\n"
    greedy = SamplingParams(temperature=0.0, max_new_tokens=12, stop=("\n",), n=2)
    first = cached.generate([prompt], [greedy])[0][0]
    follow = prompt + first.text
    before = cached.store.hits
    a = cached.generate([follow, prompt], [greedy] * 2)
    b = plain.generate([follow, prompt], [greedy] * 2)
    assert cached.store.hits > before and cached.store.reused_tokens > 0
    assert [[g.text for g in gs] for gs in a] == [[g.text for g in gs] for gs in b]
    assert [[g.n_tokens for g in gs] for gs in a] == [[g.n_tokens for g in gs] for gs in b]


@pytest.mark.slow
def test_cached_and_recomputed_beam_search_are_identical(pair):
    cached, plain = pair
    problems = arithmetic_problems(2, seed=1, levels=[1])
    prompts = [f"Question: {p.question}\nSolution:\n" for p in problems]
    settings = SearchSettings(n=4, beam_width=2, temperature=0.0, step_delimiter="\n", end_markers=("\nQuestion:",),
                              max_step_tokens=16, max_new_tokens=48, max_iterations=3)
    strategy = build_strategy("beam_search")
    a = strategy.search(problems, prompts, cached, FakeVerifier(), settings)
    b = strategy.search(problems, prompts, plain, FakeVerifier(), settings)
    assert [r.completions for r in a] == [r.completions for r in b]


def test_static_cache_generates_what_the_dynamic_cache_does(pair, monkeypatch):
    cached, _ = pair
    calls = []
    real_generate = cached.model.generate
    monkeypatch.setattr(cached.model, "generate", lambda **kw: calls.append(kw) or real_generate(**kw))
    static = HFGenerator(ModelConfig(cache_implementation="static", max_batch_size=6),
                         model=cached.model, tokenizer=cached.tokenizer)
    assert static.store is None  # a static cache is refilled each call, never reused by prefix
    prompts = ["Question: Tom has 3 apples. He buys 4 more apples. How many apples does Tom have now?\nSolution:\n",
               "Question: A box holds 12 pens. Sam takes 5 pens. How many pens are left?\nSolution:\n"]
    greedy = SamplingParams(temperature=0.0, max_new_tokens=10, stop=("\n",), n=2)
    a = static.generate(prompts, [greedy] * 2)  # 4 rows padded to 6
    assert calls[-1]["cache_implementation"] == "static" and calls[-1]["input_ids"].shape[0] == 6
    assert calls[-1]["input_ids"].shape[1] % STATIC_WIDTH_STEP == 0
    b = cached.generate(prompts, [greedy] * 2)
    assert [len(gs) for gs in a] == [2, 2]
    assert [[(g.text, g.n_tokens, g.finish_reason) for g in gs] for gs in a] == \
        [[(g.text, g.n_tokens, g.finish_reason) for g in gs] for gs in b]


def test_common_prefix_length():
    from ttscale.models.prefix_cache import common_prefix_length

    assert common_prefix_length([[1, 2, 3, 4], [1, 2, 3, 9], [1, 2, 7]]) == 2
    assert common_prefix_length([[1, 2], [1, 2, 3]]) == 2 and common_prefix_length([[5], [6]]) == 0


def test_a_head_all_prompts_share_is_prefilled_once_and_read_by_each(smollm2):
    """k-shot prompts share their exemplars: the call prefills that head once, as a row of its own, stores
    it, and each prompt's prefill starts after it; what is sampled is what recomputing everything samples."""
    import copy

    from ttscale.backends.hf import MIN_COMMON_PREFIX
    from ttscale.data.prompts import encode_prompt
    from ttscale.models.prefix_cache import common_prefix_length

    model = copy.deepcopy(smollm2.model).double()  # float64: the two ways' summation orders differ
    cached = HFGenerator(ModelConfig(max_batch_size=16), model=model, tokenizer=smollm2.tokenizer)
    plain = HFGenerator(ModelConfig(max_batch_size=16, prefix_cache=False), model=model, tokenizer=smollm2.tokenizer)
    head = "".join(f"Question: What is {a} plus {a + 1}?\nSolution:\n{a} + {a + 1} = {2 * a + 1}\n\n" for a in range(4))
    prompts = [head + "Question: What is 7 times 3?\nSolution:\n", head + "Question: Sam has 9 pens. He loses 2.\nSolution:\n"]
    encoded = [encode_prompt(smollm2.tokenizer, p) for p in prompts]
    shared = common_prefix_length(encoded)
    assert shared > MIN_COMMON_PREFIX
    widths: list[tuple[int, int]] = []  # (rows, tokens) of each prefill

    def hook(_module, _args, kwargs):
        if kwargs["input_ids"].shape[1] > 1:
            widths.append(tuple(kwargs["input_ids"].shape))

    handle = model.register_forward_pre_hook(hook, with_kwargs=True)
    params = [SamplingParams(n=3, temperature=0.9, max_new_tokens=10, seed=s) for s in (1, 2)]
    try:
        ours = cached.generate(prompts, params)
    finally:
        handle.remove()
    theirs = plain.generate(prompts, params)
    assert [[g.text for g in row] for row in ours] == [[g.text for g in row] for row in theirs]
    first, rest = widths[0], widths[1:]
    assert first == (1, shared)  # the head alone
    # then each prompt from where the head ends (its last token is fed by the first decode step)
    assert rest == [(2, max(len(ids) for ids in encoded) - shared - 1)], widths
    assert cached.store.hits >= 2
