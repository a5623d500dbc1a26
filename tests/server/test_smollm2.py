"""`ttscale serve` over the real default policy (SmolLM2-135M, HF on CPU), spoken to with the `openai` client."""

from __future__ import annotations

import pytest

from ttscale.errors import ModelLoadError
from ttscale.models.loading import embedded_gguf
from ttscale.server.process import running_server, wait_healthy

openai = pytest.importorskip("openai")
try:
    embedded_gguf("smollm2")
except ModelLoadError as e:
    pytest.skip(str(e), allow_module_level=True)

OVERRIDES = [
    "model.backend=hf", "model.name_or_path=embedded:smollm2", "verifier.name=none", "prompt.mode=chat",
    "search.strategy=best_of_n", "search.n=2", "search.selection=majority", "sampling.max_new_tokens=8",
]


@pytest.mark.slow
def test_chat_and_completion_with_smollm2():
    with running_server("serve_fake", OVERRIDES, args=["--served-model-name", "smollm2"]) as srv:
        wait_healthy(srv.root, timeout_s=120)
        with openai.OpenAI(base_url=srv.base_url, api_key="unused", max_retries=0, timeout=120) as client:
            assert [m.id for m in client.models.list().data] == ["smollm2"]
            chat = client.chat.completions.create(
                model="smollm2", messages=[{"role": "user", "content": "What is 3 + 4?"}], max_tokens=6,
                extra_body={"ttscale": {"return_candidates": True}},
            )
            (search,) = chat.model_extra["ttscale"]["results"]
            assert len(search["candidates"]) == 2
            assert all(0 < c["n_tokens"] <= 6 for c in search["candidates"])
            assert chat.usage.completion_tokens == sum(c["n_tokens"] for c in search["candidates"])
            # the chat template wraps the question: far more prompt tokens than the question's
            assert chat.usage.prompt_tokens > 20
            text = client.completions.create(model="smollm2", prompt="The capital of France is", max_tokens=4)
            assert text.choices[0].text and text.usage.completion_tokens <= 2 * 4
            assert text.usage.prompt_tokens == 5  # the raw prompt (no template), read once for both candidates


@pytest.mark.slow
def test_streamed_search_and_logprobs_with_smollm2():
    """The official client's stream and logprobs over a real model: the same pick as the whole reply, and
    the pick's tokens with their log-probabilities."""
    with running_server("serve_fake", OVERRIDES, args=["--served-model-name", "smollm2"]) as srv:
        wait_healthy(srv.root, timeout_s=120)
        with openai.OpenAI(base_url=srv.base_url, api_key="unused", max_retries=0, timeout=120) as client:
            args = {"model": "smollm2", "messages": [{"role": "user", "content": "What is 3 + 4?"}], "max_tokens": 6,
                    "seed": 1, "logprobs": True}
            whole = client.chat.completions.create(**args, extra_body={"ttscale": {"return_candidates": True}})
            chunks = list(client.chat.completions.create(**args, stream=True, stream_options={"include_usage": True}))
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
            assert any((c.choices[0].delta.model_extra or {}).get("reasoning_content", "").startswith("Round 1: 2 samples")
                       for c in chunks if c.choices)
            assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
            (search,) = whole.model_extra["ttscale"]["results"]
            tokens = whole.choices[0].logprobs.content
            assert 0 < len(tokens) <= search["candidates"][search["selected"]]["n_tokens"]
            assert all(t.logprob <= 0 for t in tokens)
            assert "".join(t.token for t in tokens).strip() == whole.choices[0].message.content.strip()
            streamed = [c.choices[0].logprobs for c in chunks if c.choices and c.choices[0].logprobs]
            assert [lp.model_dump() for lp in streamed] == [whole.choices[0].logprobs.model_dump()]
