"""Every backend records the sampled token's log-probability and the top k, only when asked."""

import json
import math
from dataclasses import replace

import pytest

from ttscale.config import ModelConfig
from ttscale.types import SamplingParams

PARAMS = SamplingParams(temperature=0.8, max_new_tokens=24, n=2, seed=7, logprobs=3)


def _check_rows(gens, k):
    for g in gens:
        assert len(g.logprobs) == len(g.top_logprobs) == g.n_tokens > 0
        for lp, row in zip(g.logprobs, g.top_logprobs):
            assert len(row) == k and list(row) == sorted(row, reverse=True)
            assert all(x <= 1e-6 for x in row) and lp <= row[0] + 1e-5


def test_fake_records_logprobs_only_when_asked_and_they_follow_the_seed():
    from ttscale.backends.fake import FakeGenerator

    gen = FakeGenerator()
    (with_lp,) = gen.generate(["Question: 1+1?\n"], [PARAMS])
    (without,) = gen.generate(["Question: 1+1?\n"], [replace(PARAMS, logprobs=0)])
    _check_rows(with_lp, 3)
    assert all(g.logprobs == () and g.top_logprobs == () for g in without)
    assert [g.text for g in with_lp] == [g.text for g in without]  # recording never changes the sample
    assert gen.generate(["Question: 1+1?\n"], [PARAMS])[0] == with_lp
    assert with_lp[0].top_logprobs != with_lp[1].top_logprobs


def test_hf_logprobs_match_the_model_and_leave_the_samples_unchanged(smollm2):
    import torch

    prompt = "Question: What is 2 + 3?\nAnswer:"
    (sampled,) = smollm2.generate([prompt], [PARAMS])
    (plain,) = smollm2.generate([prompt], [replace(PARAMS, logprobs=0)])
    _check_rows(sampled, 3)
    assert [g.text for g in sampled] == [g.text for g in plain] and plain[0].logprobs == ()
    # Recompute one trace's first tokens by a forward pass: raw (temperature-free) log-softmax.
    from ttscale.data.prompts import encode_prompt

    ids = encode_prompt(smollm2.tokenizer, prompt)
    new = smollm2.tokenizer(sampled[0].text, add_special_tokens=False).input_ids[:3]
    with torch.inference_mode():
        logits = smollm2.model(torch.tensor([ids + new])).logits[0, len(ids) - 1 : len(ids) + len(new) - 1]
    logp = logits.float().log_softmax(-1)
    for i, t in enumerate(new):
        assert sampled[0].logprobs[i] == pytest.approx(logp[i, t].item(), abs=1e-3)
        assert sampled[0].top_logprobs[i] == pytest.approx(logp[i].topk(3).values.tolist(), abs=1e-3)


def test_hf_greedy_records_the_top_token(smollm2):
    (gens,) = smollm2.generate(["Question: 2 + 2?\nAnswer:"], [SamplingParams(temperature=0.0, max_new_tokens=8,
                                                                             logprobs=2)])
    _check_rows(gens, 2)
    assert all(lp == pytest.approx(row[0]) for lp, row in zip(gens[0].logprobs, gens[0].top_logprobs))


def test_vllm_asks_for_logprobs_and_reads_them_back(stand_in_vllm):
    from ttscale.backends.base import build_generator

    gen = build_generator(ModelConfig(backend="vllm", name_or_path="x"))
    (gens,) = gen.generate(["Question: 2+2?"], [PARAMS])
    (engine,) = stand_in_vllm.llms
    assert engine.calls[-1][1][0].kwargs["logprobs"] == 3
    _check_rows(gens, 3)
    # a sampled token ranked below the top k is not one of the k alternatives
    assert any(lp < row[-1] for g in gens for lp, row in zip(g.logprobs, g.top_logprobs))
    (off,) = gen.generate(["Question: 2+2?"], [replace(PARAMS, logprobs=0)])
    assert engine.calls[-1][1][0].kwargs["logprobs"] is None and off[0].top_logprobs == ()


def test_openai_sends_logprobs_and_parses_the_reply():
    import httpx

    from ttscale.backends.openai_http import OpenAIGenerator

    sent = []

    def handler(request):
        body = json.loads(request.content)
        sent.append(body)
        lp = None
        if body.get("logprobs"):
            # vLLM's server: the sampled token is added to a position's dict when it ranked below the top k
            lp = {"tokens": ["4", "."], "token_logprobs": [-0.1, -3.0],
                  "top_logprobs": [{"4": -0.1, "5": -2.5, "6": -4.0}, {",": -0.5, "!": -1.0, "?": -2.0, ".": -3.0}]}
        choice = {"index": 0, "text": "4.", "finish_reason": "stop", "stop_reason": None, "logprobs": lp}
        return httpx.Response(200, json={"choices": [choice], "usage": {"prompt_tokens": 3, "completion_tokens": 2}})

    gen = OpenAIGenerator(ModelConfig(backend="openai", base_url="http://x/v1"), transport=httpx.MockTransport(handler))
    (gens,) = gen.generate(["2+2="], [replace(PARAMS, n=1)])
    assert sent[-1]["logprobs"] == 3
    assert gens[0].logprobs == (-0.1, -3.0)
    assert gens[0].top_logprobs == ((-0.1, -2.5, -4.0), (-0.5, -1.0, -2.0))
    (off,) = gen.generate(["2+2="], [replace(PARAMS, n=1, logprobs=0)])
    assert "logprobs" not in sent[-1] and off[0].top_logprobs == ()
    assert math.isfinite(gens[0].logprobs[0])
