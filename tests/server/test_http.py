"""`ttscale serve` over real HTTP (a child process on loopback), spoken to with the `openai` client."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from ttscale.grading import extract_answer
from ttscale.server.metrics import parse_metrics

from .conftest import API_KEY, MAX_BODY

openai = pytest.importorskip("openai")

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?"


def test_chat_completion_is_the_beam_search_pick_with_its_candidates(client):
    reply = client.chat.completions.create(
        model="fake",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": QUESTION}],
        extra_body={"ttscale": {"return_candidates": True}},
    )
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    (choice,) = reply.choices
    (search,) = reply.model_extra["ttscale"]["results"]
    assert search["strategy"] == "beam_search"
    candidates = search["candidates"]
    assert len(candidates) == 4  # the recipe's N
    picked = candidates[search["selected"]]
    assert choice.message.role == "assistant" and choice.message.content == picked["text"].rstrip()
    assert search["answer"] == picked["answer"] == extract_answer(picked["text"])
    assert all(c["score"] is not None and len(c["step_scores"]) >= 1 for c in candidates)
    # usage counts every token the search spent, not only the returned solution's
    assert reply.usage.completion_tokens == search["budget"]["generated_tokens"] > picked["n_tokens"]
    assert reply.usage.prompt_tokens == search["budget"]["prompt_tokens"]
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_completion_mode_prompt_is_searched_as_is(client):
    prompt = "Question: What is 2 + 2?\nSolution:\n"
    reply = client.completions.create(
        model="fake", prompt=prompt, max_tokens=16, n=2, extra_body={"ttscale": {"strategy": "best_of_n", "n": 3}}
    )
    assert reply.object == "text_completion" and len(reply.choices) == 2
    results = reply.model_extra["ttscale"]["results"]
    assert [r["strategy"] for r in results] == ["best_of_n", "best_of_n"]
    for choice in reply.choices:
        assert choice.finish_reason in ("stop", "length") and choice.text
    # the fake backend counts words: the raw prompt, untouched by any template, once per search
    assert reply.usage.prompt_tokens == 2 * len(prompt.split())
    assert all(len(c.text.split()) <= 16 for c in reply.choices)


@pytest.mark.parametrize("strategy", ["best_of_n", "beam_search", "dvts", "particle_filtering"])
def test_every_strategy_can_be_asked_for_per_request(client, strategy):
    reply = client.chat.completions.create(
        model="fake", messages=[{"role": "user", "content": QUESTION}], max_tokens=64,
        extra_body={"ttscale": {"strategy": strategy, "n": 4, "beam_width": 2, "return_candidates": True}},
    )
    (search,) = reply.model_extra["ttscale"]["results"]
    assert search["strategy"] == strategy and len(search["candidates"]) == 4  # DVTS too: M from each N/M subtree
    assert reply.choices[0].message.content == search["candidates"][search["selected"]]["text"].rstrip()


def test_the_openai_seed_field_makes_a_request_repeatable(client):
    def ask(seed):
        reply = client.chat.completions.create(
            model="fake", messages=[{"role": "user", "content": QUESTION}], seed=seed,
            extra_body={"ttscale": {"strategy": "dvts", "n": 8, "beam_width": 2, "return_candidates": True}})
        return [c["text"] for c in reply.model_extra["ttscale"]["results"][0]["candidates"]]

    with ThreadPoolExecutor(5) as pool:  # concurrent, so the batcher merges them with each other
        same = list(pool.map(ask, [7] * 5))
    assert all(texts == same[0] for texts in same) and len(set(same[0])) > 1
    assert ask(8) != same[0]
    unseeded = [tuple(ask(None)) for _ in range(3)]
    assert len(set(unseeded)) > 1  # without a seed every request is a fresh draw, as with OpenAI


def test_beam_width_that_does_not_divide_n_is_a_400(client):
    with pytest.raises(openai.BadRequestError, match="does not divide search.n=6"):
        client.chat.completions.create(model="fake", messages=[{"role": "user", "content": QUESTION}],
                                       extra_body={"ttscale": {"strategy": "beam_search", "n": 6, "beam_width": 4}})


def test_models_health_and_metrics(client, http):
    assert [m.id for m in client.models.list().data] == ["fake"]
    assert http.get("/health").json()["status"] == "ok"
    client.chat.completions.create(model="fake", messages=[{"role": "user", "content": QUESTION}])
    text = http.get("/metrics").text
    assert "# TYPE ttscale_request_latency_seconds histogram" in text
    m = parse_metrics(text)
    assert m['ttscale_requests_total{path="/v1/chat/completions",status="200"}'] >= 1
    assert m["ttscale_generated_tokens_total"] > 0 and m['ttscale_searches_total{outcome="ok"}'] >= 1
    assert m['ttscale_request_latency_seconds_count{path="/v1/chat/completions"}'] >= 1


def test_64_concurrent_requests_are_all_answered_and_batched(client, http):
    """Each request's prompt has its own length, so a result split back to the wrong request shows in usage."""
    before = parse_metrics(http.get("/metrics").text)

    def ask(i: int):
        prompt = "Question: " + "very " * i + "hard?\nSolution:\n"
        reply = client.completions.create(
            model="fake", prompt=prompt, max_tokens=64,
            extra_body={"ttscale": {"strategy": "best_of_n", "n": 4, "return_candidates": True}},
        )
        return prompt, reply

    with ThreadPoolExecutor(64) as pool:
        answers = list(pool.map(ask, range(64)))
    after = parse_metrics(http.get("/metrics").text)
    assert len({reply.id for _, reply in answers}) == 64
    for prompt, reply in answers:
        (search,) = reply.model_extra["ttscale"]["results"]
        assert reply.usage.prompt_tokens == len(prompt.split())
        assert reply.choices[0].text == search["candidates"][search["selected"]]["text"]
        assert reply.usage.completion_tokens == sum(c["n_tokens"] for c in search["candidates"])
    calls = after["ttscale_backend_calls_total"] - before["ttscale_backend_calls_total"]
    asked = after["ttscale_backend_requests_total"] - before["ttscale_backend_requests_total"]
    assert asked == 64 and calls < asked  # concurrent searches shared backend calls
    assert after.get('ttscale_requests_total{path="/v1/completions",status="500"}', 0) == 0


# -- bad input: each a 4xx naming the field, never a 500, and the server keeps serving ----------
GOOD = {"model": "fake", "messages": [{"role": "user", "content": QUESTION}]}


def _with(**fields):
    return json.dumps({**GOOD, **fields}).encode()


BAD = [
    ("invalid JSON", b'{"messages": [', {}, 400, "not valid JSON"),
    ("missing messages", json.dumps({"model": "fake"}).encode(), {}, 400, "messages: Field required"),
    ("no user message", _with(messages=[{"role": "system", "content": "hi"}]), {}, 400, "messages: needs at least one user"),
    ("n=10^6", _with(n=10**6), {}, 400, "n: must be an integer in 1..8"),
    ("ttscale.n=10^6", _with(ttscale={"n": 10**6}), {}, 400, "ttscale.n: must be an integer in 1..64"),
    ("max_tokens negative", _with(max_tokens=-5), {}, 400, "max_tokens: must be an integer in 1..4096"),
    ("unknown strategy", _with(ttscale={"strategy": "beam_serch"}), {}, 400, "did you mean 'beam_search'"),
    ("unknown ttscale field", _with(ttscale={"beams": 3}), {}, 400, "ttscale.beams: Extra inputs"),
    ("wrong type", _with(temperature="hot"), {}, 400, "temperature: Input should be a valid number"),
    ("string for int", _with(max_tokens="12"), {}, 400, "max_tokens: Input should be a valid integer"),
    ("body not an object", b"[1, 2]", {}, 400, "body: Input should be an object"),
    ("stream not a bool", _with(stream="yes"), {}, 400, "stream: Input should be a valid boolean"),
    ("wrong API key", _with(), {"Authorization": "Bearer nope"}, 401, "invalid or missing API key"),
    ("no API key", _with(), {"Authorization": ""}, 401, "invalid or missing API key"),
    ("oversized body", _with(messages=[{"role": "user", "content": "x" * (2 * MAX_BODY)}]), {}, 413, "max_body_bytes"),
    # what this server cannot answer: another model's name (404, as OpenAI's API), a strategy missing its input
    ("unknown model", _with(model="gpt-4o"), {}, 404, "the model 'gpt-4o' does not exist; this server serves 'fake'"),
    ("compute_optimal, no policy", _with(ttscale={"strategy": "compute_optimal"}), {}, 400, "needs a policy.json"),
    # alternatives' log-probabilities are recorded without their tokens: they cannot be named
    ("top_logprobs", _with(logprobs=True, top_logprobs=2), {}, 400, "top_logprobs: top 2 alternatives cannot be named"),
    ("top_logprobs without logprobs", _with(top_logprobs=1), {}, 400, "top_logprobs: needs logprobs: true"),
    ("tools", _with(tools=[{"type": "function", "function": {"name": "f"}}]), {}, 400, "tools: is not supported"),
    ("response_format", _with(response_format={"type": "json_object"}), {}, 400, "response_format: is not supported"),
    ("tokens over budget", _with(n=8, max_tokens=4096, ttscale={"n": 64}), {}, 400,
     "may generate 2097152 tokens (prompts 1 x choices 8 x ttscale.n 64 x max_tokens 4096), over the server's "
     "max_request_tokens=1048576"),
    ("steps over budget", _with(n=8, ttscale={"n": 64, "max_iterations": 100, "lookahead": 4}), {}, 400,
     "over the server's max_request_steps=65536"),
]


@pytest.mark.parametrize("name,body,headers,status,message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_refused_clearly_and_the_server_keeps_serving(http, name, body, headers, status, message):
    r = http.post("/v1/chat/completions", content=body, headers={"content-type": "application/json", **headers})
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert message in error["message"]
    if status == 404:
        assert (error["code"], error["param"]) == ("model_not_found", "model")
    ok = http.post("/v1/chat/completions", content=_with(max_tokens=32))
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"]


def test_bad_completion_inputs(http):
    cases = [
        ({"prompt": [1, 2, 3]}, "prompt"),
        ({"prompt": "x", "logprobs": 2}, "logprobs: top 2 alternatives cannot be named"),
        ({"prompt": "x", "logprobs": 21}, "logprobs: must be an integer in 0..20"),
        ({"prompt": "x", "best_of": 10**6}, "best_of: must be an integer in 1..64"),
        ({"prompt": ["x"] * 17}, "prompt: must hold 1..16 prompts"),
        ({"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, "stop: must be up to 4"),
    ]
    for body, message in cases:
        r = http.post("/v1/completions", json=body)
        assert r.status_code == 400 and message in r.json()["error"]["message"], r.text
        assert r.json()["error"]["param"] is not None


def test_openai_client_sees_the_errors_it_knows(fake_server):
    with openai.OpenAI(base_url=fake_server.base_url, api_key="wrong", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
    with openai.OpenAI(base_url=fake_server.base_url, api_key=API_KEY, max_retries=0) as c:
        with pytest.raises(openai.BadRequestError, match="ttscale.strategy"):
            c.chat.completions.create(model="fake", messages=GOOD["messages"], extra_body={"ttscale": {"strategy": "x"}})
