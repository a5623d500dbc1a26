"""`stream: true` and log-probabilities through the official `openai` client, against `ttscale serve` on loopback."""

from __future__ import annotations

import asyncio

import pytest

from ttscale.server.metrics import parse_metrics

from .conftest import API_KEY

openai = pytest.importorskip("openai")

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?"
MESSAGES = [{"role": "user", "content": QUESTION}]


def _reasoning(chunk) -> str | None:
    return (chunk.choices[0].delta.model_extra or {}).get("reasoning_content") if chunk.choices else None


def test_a_streamed_chat_is_the_same_reply_with_the_search_shown_first(client):
    whole = client.chat.completions.create(model="fake", messages=MESSAGES, seed=7)
    chunks = list(client.chat.completions.create(model="fake", messages=MESSAGES, seed=7, stream=True))
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    reasoning = [i for i, c in enumerate(chunks) if _reasoning(c)]
    content = [i for i, c in enumerate(chunks) if c.choices and c.choices[0].delta.content]
    # beam search: one reasoning chunk per round, every one of them before the answer
    rounds = [_reasoning(chunks[i]) for i in reasoning]
    assert rounds[0].startswith("Round 1: 4 candidates; the leading one (score ")
    assert [r.split(":")[0] for r in rounds] == [f"Round {k}" for k in range(1, len(rounds) + 1)]
    assert content and max(reasoning) < min(content)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason == "stop"
    assert chunks[-1].model_extra["ttscale"]["results"][0]["answer"] == whole.model_extra["ttscale"]["results"][0]["answer"]
    assert all(c.usage is None for c in chunks)  # no usage chunk unless asked for


def test_stream_progress_off_streams_the_answer_alone(client):
    chunks = list(client.chat.completions.create(model="fake", messages=MESSAGES, seed=7, stream=True,
                                                 extra_body={"ttscale": {"stream_progress": False}}))
    assert not any(_reasoning(c) for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks)


def test_include_usage_adds_a_last_chunk_with_the_whole_searchs_usage(client):
    whole = client.chat.completions.create(model="fake", messages=MESSAGES, seed=3)
    chunks = list(client.chat.completions.create(model="fake", messages=MESSAGES, seed=3, stream=True,
                                                 stream_options={"include_usage": True}))
    *body, last = chunks
    assert last.choices == [] and all(c.usage is None for c in body)
    assert last.usage.model_dump() == whole.usage.model_dump()
    assert last.usage.model_extra["verifier_tokens"] > 0


def test_n_choices_stream_each_under_its_index(client):
    chunks = list(client.chat.completions.create(model="fake", messages=MESSAGES, seed=5, n=2, stream=True))
    whole = client.chat.completions.create(model="fake", messages=MESSAGES, seed=5, n=2)
    for i in (0, 1):
        mine = [c.choices[0] for c in chunks if c.choices and c.choices[0].index == i]
        assert mine[0].delta.role == "assistant" and mine[-1].finish_reason == "stop"
        assert "".join(ch.delta.content or "" for ch in mine) == whole.choices[i].message.content
        assert any((ch.delta.model_extra or {}).get("reasoning_content") for ch in mine)


def test_a_streamed_completion_and_its_best_of_n_vote(client):
    prompt = "Question: What is 2 + 2?\nSolution:\n"
    args = {"model": "fake", "prompt": prompt, "max_tokens": 40, "seed": 11,
            "extra_body": {"ttscale": {"strategy": "best_of_n"}}}
    whole = client.completions.create(**args)
    chunks = list(client.completions.create(**args, stream=True))
    assert all(c.object == "text_completion" for c in chunks)
    votes = [c.choices[0].model_extra.get("reasoning_content") for c in chunks if c.choices[0].model_extra]
    assert votes and votes[0].startswith("Round 1: 4 samples, votes so far: ")
    assert "".join(c.choices[0].text for c in chunks) == whole.choices[0].text
    assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason


def test_the_async_client_reads_the_stream(fake_server):
    async def main():
        async with openai.AsyncOpenAI(base_url=fake_server.base_url, api_key=API_KEY, max_retries=0) as c:
            stream = await c.chat.completions.create(model="fake", messages=MESSAGES, seed=7, stream=True,
                                                     stream_options={"include_usage": True})
            chunks = [chunk async for chunk in stream]
            whole = await c.chat.completions.create(model="fake", messages=MESSAGES, seed=7)
            return chunks, whole

    chunks, whole = asyncio.run(main())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_a_stream_keeps_the_servers_limits(fake_server, client):
    with (openai.OpenAI(base_url=fake_server.base_url, api_key="wrong", max_retries=0) as bad,
          pytest.raises(openai.AuthenticationError)):
        bad.chat.completions.create(model="fake", messages=MESSAGES, stream=True)
    with pytest.raises(openai.BadRequestError, match="over the server's max_request_tokens"):
        client.chat.completions.create(model="fake", messages=MESSAGES, stream=True, n=8, max_tokens=4096,
                                       extra_body={"ttscale": {"n": 64}})


# -- log-probabilities ---------------------------------------------------------------


def test_chat_logprobs_are_the_picked_candidates_tokens(client):
    reply = client.chat.completions.create(model="fake", messages=MESSAGES, seed=7, logprobs=True,
                                           extra_body={"ttscale": {"return_candidates": True}})
    (choice,) = reply.choices
    content = choice.logprobs.content
    # the fake policy's tokens are words; a chat reply drops only the trailing delimiter
    assert "".join(t.token for t in content).rstrip() == choice.message.content
    assert all(t.logprob < 0 and t.bytes == list(t.token.encode()) and t.top_logprobs == [] for t in content)
    (search,) = reply.model_extra["ttscale"]["results"]
    assert len(content) == search["candidates"][search["selected"]]["n_tokens"]
    # asking for logprobs does not change the search
    plain = client.chat.completions.create(model="fake", messages=MESSAGES, seed=7)
    assert plain.choices[0].message.content == choice.message.content and plain.choices[0].logprobs is None


def test_completion_logprobs_in_the_legacy_shape_streamed_and_not(client):
    args = {"model": "fake", "prompt": "Question: 2 + 2?\n", "max_tokens": 30, "seed": 2, "logprobs": 0}
    whole = client.completions.create(**args)
    lp = whole.choices[0].logprobs
    assert "".join(lp.tokens) == whole.choices[0].text.rstrip()
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset)
    assert lp.top_logprobs[0] == {lp.tokens[0]: lp.token_logprobs[0]} and lp.text_offset[0] == 0
    streamed = [c for c in client.completions.create(**args, stream=True) if c.choices[0].logprobs]
    assert [c.choices[0].logprobs.model_dump() for c in streamed] == [lp.model_dump()]


def test_metrics_count_streamed_searches(http, client):
    before = parse_metrics(http.get("/metrics").text).get('ttscale_searches_total{outcome="ok"}', 0)
    list(client.chat.completions.create(model="fake", messages=MESSAGES, stream=True, n=2))
    after = parse_metrics(http.get("/metrics").text)
    assert after['ttscale_searches_total{outcome="ok"}'] == before + 2
