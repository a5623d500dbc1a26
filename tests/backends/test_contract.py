"""One contract, every registered backend: n samples, finish reasons, stop strings,
token counts, and vLLM's per-request seeds, on the fake, HF (a tiny random Llama in float32), the vLLM
stand-in and the OpenAI backend through an httpx mock transport in front of a vLLM-like server."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from ttscale.backends.base import GENERATORS, Generator
from ttscale.backends.fake import FakeGenerator
from ttscale.config import ModelConfig
from ttscale.types import SamplingParams

PROMPT = "Question: Tom has 3 apples and buys 4 more. How many apples does he have?\nSolution:\n"
OTHER = "Question: Sam has 9 pens and gives away 5. How many pens does Sam have?\nSolution:\n"
STOP = ("\n",)


def _vllm_like_server(request):
    """A vLLM server's /v1/completions over the fake policy: the stop string is stripped and named."""
    import httpx

    fake = FakeGenerator()
    body = json.loads(request.content)
    if request.url.path.endswith("/chat/completions"):  # the probe asks; this stand-in serves completions only
        return httpx.Response(404, json={"error": {"message": "no chat route"}})
    params = SamplingParams(temperature=body["temperature"], top_p=body["top_p"], max_new_tokens=body["max_tokens"],
                            stop=tuple(body.get("stop") or ()), n=body["n"], seed=body.get("seed"))
    choices = []
    (gens,) = fake.generate([body["prompt"]], [params])
    for i, g in enumerate(gens):
        text, matched = g.text, None
        if g.finish_reason == "stop":
            matched = next(s for s in params.stop if text.endswith(s))
            text = text[: -len(matched)]
        choices.append({"index": i, "text": text, "finish_reason": "length" if g.finish_reason == "length" else "stop",
                        "stop_reason": matched, "logprobs": None})
    usage = {"prompt_tokens": gens[0].prompt_tokens, "completion_tokens": sum(g.n_tokens for g in gens)}
    return httpx.Response(200, json={"choices": choices, "usage": usage})


def _build(name, request) -> Generator:
    if name == "fake":
        return FakeGenerator()
    if name == "hf":
        from ttscale.backends.hf import HFGenerator

        model, tok = request.getfixturevalue("tiny_llama")
        return HFGenerator(ModelConfig(dtype="float32", max_batch_size=16), model=model, tokenizer=tok)
    if name == "vllm":
        from ttscale.backends.vllm import VLLMGenerator

        request.getfixturevalue("stand_in_vllm")
        return VLLMGenerator(ModelConfig(backend="vllm"))
    if name == "openai":
        import httpx

        from ttscale.backends.openai_http import OpenAIGenerator

        cfg = ModelConfig(backend="openai", name_or_path="policy", base_url="http://policy.test/v1")
        return OpenAIGenerator(cfg, transport=httpx.MockTransport(_vllm_like_server))
    raise AssertionError(f"backend {name!r} is registered but the contract suite cannot build it; add it to _build")


@pytest.fixture(scope="module")
def tiny_llama(smollm2):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tok = smollm2.tokenizer
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, eos_token_id=tok.eos_token_id)
    return LlamaForCausalLM(cfg).eval(), tok


@pytest.fixture(params=GENERATORS.names())
def backend(request):
    return _build(request.param, request)


def sampled(**kw):
    return SamplingParams(**{**dict(temperature=1.0, max_new_tokens=12, stop=STOP, n=1, seed=3), **kw})


def test_n_samples_per_prompt_each_with_its_own_n(backend):
    out = backend.generate([PROMPT, OTHER], [sampled(n=2), sampled(n=3)])
    assert [len(gens) for gens in out] == [2, 3]


def test_finish_reasons_stop_strings_and_token_counts(backend):
    out = backend.generate([PROMPT, OTHER], [sampled(n=4, seed=s) for s in (1, 2)])
    for gens in out:
        for g in gens:
            assert g.finish_reason in ("stop", "eos", "length")
            assert 0 <= g.n_tokens <= 12 and g.prompt_tokens > 0
            if g.finish_reason == "stop":  # a step keeps the delimiter it ended on
                assert g.text.endswith(STOP) and STOP[0] not in g.text[: -len(STOP[0])]
            else:
                assert STOP[0] not in g.text
            if g.finish_reason == "length":
                assert g.n_tokens == 12


def test_seeds_follow_vllm_same_prompt_and_seed_same_sample_child_k_is_seed_plus_k(backend):
    (a,) = backend.generate([PROMPT], [sampled(n=3, seed=11)])
    b = backend.generate([OTHER, PROMPT, PROMPT], [sampled(seed=11), sampled(seed=12), sampled(seed=11)])
    assert b[2][0].text == a[0].text and b[1][0].text == a[1].text  # whatever else the call holds
    (again,) = backend.generate([PROMPT], [sampled(n=3, seed=11)])
    assert [g.text for g in again] == [g.text for g in a]
    many = backend.generate([PROMPT] * 4, [sampled(seed=100 + 10 * i, n=2) for i in range(4)])
    assert len({g.text for gens in many for g in gens}) > 1  # other seeds, other samples


def test_greedy_children_are_the_same(backend):
    (gens,) = backend.generate([PROMPT], [replace(sampled(n=3), temperature=0.0)])
    assert len({g.text for g in gens}) == 1


def test_thinking_budget_is_forced_through_every_backend(backend):
    """Budget forcing needs only stop strings and appended text, so it holds on every backend:
    thinking stops at max_tokens, where the end marker and the answer cue are written."""
    from ttscale.config import ThinkingConfig
    from ttscale.search import SearchSettings, build_strategy
    from ttscale.types import Problem

    thinking = ThinkingConfig(start="<think>", end="</think>", max_tokens=6)
    s = SearchSettings(n=4, max_new_tokens=16, step_delimiter="\n", thinking=thinking, selection="majority")
    (r,) = build_strategy("best_of_n").search([Problem("p", "Tom has 3 apples.", "7")], [PROMPT + "<think>\n"],
                                              backend, None, s)
    assert all(c.thinking_tokens <= 6 for c in r.completions)
    # (the OpenAI backend estimates a choice's tokens without logprobs, so 6 may also be an EOS there)
    forced = [c for c in r.completions if "</think>" in c.text]
    assert forced and all(c.thinking_tokens == 6 and c.text.count("</think>" + thinking.answer_cue) == 1
                          for c in forced)
    assert r.budget.thinking_tokens == sum(c.thinking_tokens for c in r.completions)
