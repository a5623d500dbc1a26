"""A client that goes away stops its search: an in-process server on loopback over a slow policy."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from ttscale.backends.fake import FakeGenerator
from ttscale.recipe import load_config
from ttscale.server.app import bind, create_app
from ttscale.server.config import ServeConfig
from ttscale.server.engine import Engine
from ttscale.server.metrics import parse_metrics
from ttscale.verifiers.fake import FakeVerifier

uvicorn = pytest.importorskip("uvicorn")


class SlowNeverDone(FakeGenerator):
    """Every step is unfinished and takes 50 ms, so a beam search runs all its rounds."""

    def __init__(self) -> None:
        super().__init__(script=lambda prompt, rng: "Step: still thinking\n\n" * 3)

    def generate(self, prompts, params):
        time.sleep(0.05)
        return super().generate(prompts, params)


@pytest.fixture
def slow_server(request):
    cfg = load_config(None, ["model.backend=fake", "prompt.mode=completion", "search.strategy=beam_search",
                             "search.n=4", "search.beam_width=2", "search.max_iterations=100"])
    generator = SlowNeverDone()
    limits = getattr(request, "param", {})
    engine = Engine(cfg, ServeConfig(**limits), generator=generator, verifier=FakeVerifier())
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(engine), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    root = f"http://127.0.0.1:{sock.getsockname()[1]}"
    yield root, engine, generator
    server.should_exit = True
    thread.join(timeout=10)
    engine.close()
    sock.close()


def test_a_disconnected_client_stops_its_search(slow_server):
    root, engine, generator = slow_server
    body = {"messages": [{"role": "user", "content": "think hard"}]}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{root}/v1/chat/completions", json=body, timeout=0.5)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        m = parse_metrics(httpx.get(f"{root}/metrics").text)
        if m.get('ttscale_searches_total{outcome="cancelled"}'):
            break
        time.sleep(0.05)
    assert m.get('ttscale_searches_total{outcome="cancelled"}') == 1
    # answered at once; the search's thread ends when the backend call it was in returns
    m = _metric(root, "ttscale_searches_pending", 0)
    assert m["ttscale_searches_pending"] == 0
    calls = generator.calls
    time.sleep(0.3)
    assert generator.calls == calls < 30  # stopped well before its 100 rounds


@pytest.mark.parametrize("slow_server", [{"request_timeout_s": 0.3}], indirect=True)
def test_a_search_past_the_request_deadline_is_stopped_with_504(slow_server):
    """A request has a deadline: its search stops there instead of running all its rounds however long they take."""
    root, engine, generator = slow_server
    started = time.monotonic()
    r = httpx.post(f"{root}/v1/chat/completions", json={"messages": [{"role": "user", "content": "think"}]}, timeout=10)
    assert r.status_code == 504 and "request_timeout_s=0.3" in r.json()["error"]["message"], r.text
    assert time.monotonic() - started < 2.0
    _metric(root, "ttscale_searches_pending", 0)  # the backend call in flight at the deadline has returned
    calls = generator.calls
    time.sleep(0.3)
    assert generator.calls == calls < 30
    m = parse_metrics(httpx.get(f"{root}/metrics").text)
    assert m.get('ttscale_searches_total{outcome="timeout"}') == 1 and m["ttscale_searches_pending"] == 0


@pytest.mark.parametrize("slow_server", [{"max_pending": 3, "request_timeout_s": 1.0}], indirect=True)
def test_max_pending_counts_searches_not_requests(slow_server):
    """max_pending counts searches, not requests: one request of many choices is many searches."""
    root, engine, _ = slow_server
    body = {"messages": [{"role": "user", "content": "think"}], "n": 2}
    first = threading.Thread(target=httpx.post, args=(f"{root}/v1/chat/completions",), kwargs={"json": body, "timeout": 10})
    first.start()
    deadline = time.monotonic() + 5
    while parse_metrics(httpx.get(f"{root}/metrics").text)["ttscale_searches_pending"] != 2:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    r = httpx.post(f"{root}/v1/chat/completions", json=body, timeout=10)
    assert r.status_code == 503 and "this request adds 2, max_pending=3" in r.json()["error"]["message"], r.text
    first.join(10)


def _metric(root: str, key: str, want: float, timeout_s: float = 10) -> dict[str, float]:
    deadline = time.monotonic() + timeout_s
    while True:
        m = parse_metrics(httpx.get(f"{root}/metrics").text)
        if m.get(key) == want or time.monotonic() > deadline:
            return m
        time.sleep(0.05)


def test_a_client_leaving_mid_stream_stops_its_searchs_rounds(slow_server):
    root, engine, generator = slow_server
    body = {"messages": [{"role": "user", "content": "think hard"}], "stream": True, "n": 2}
    with httpx.stream("POST", f"{root}/v1/chat/completions", json=body, timeout=10) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines()
        # the role chunks, then the first round of each choice
        seen = [line for line, _ in zip(lines, range(8)) if line]
        assert sum("Round 1:" in line for line in seen) == 2
    m = _metric(root, 'ttscale_searches_total{outcome="cancelled"}', 2)
    assert m.get('ttscale_searches_total{outcome="cancelled"}') == 2
    m = _metric(root, "ttscale_searches_pending", 0)
    assert m["ttscale_searches_pending"] == 0
    calls = generator.calls
    time.sleep(0.3)
    assert generator.calls == calls < 30  # stopped well before its 100 rounds
    assert not m.get('ttscale_searches_total{outcome="ok"}')


# 1.2 s: rounds of 50 ms must come before the deadline even on a loaded 2-core runner (at 0.4 s a slow
# first request had none), and 100 rounds (5 s and more) still end at the deadline, well before done.
@pytest.mark.parametrize("slow_server", [{"request_timeout_s": 1.2}], indirect=True)
def test_a_deadline_mid_stream_ends_it_with_an_error_event(slow_server):
    openai = pytest.importorskip("openai")
    root, engine, generator = slow_server
    with openai.OpenAI(base_url=f"{root}/v1", api_key="unused", max_retries=0, timeout=10) as client:
        stream = client.chat.completions.create(model=engine.model_name, messages=[{"role": "user", "content": "t"}],
                                                stream=True)
        got = []
        with pytest.raises(openai.APIError, match="request_timeout_s=1.2"):
            got.extend(stream)  # keeps what came before the error
    assert any((c.choices[0].delta.model_extra or {}).get("reasoning_content") for c in got)  # rounds came first
    m = _metric(root, 'ttscale_searches_total{outcome="timeout"}', 1)
    assert m.get('ttscale_searches_total{outcome="timeout"}') == 1
    _metric(root, "ttscale_searches_pending", 0)  # the backend call in flight at the deadline has returned
    calls = generator.calls
    time.sleep(0.3)
    assert generator.calls == calls < 50  # 1.2 s of 50 ms calls, far from 100 rounds


@pytest.mark.parametrize("slow_server", [{"max_pending": 1, "request_timeout_s": 1.0}], indirect=True)
def test_a_full_server_refuses_a_stream_before_it_starts(slow_server):
    root, engine, _ = slow_server
    body = {"messages": [{"role": "user", "content": "think"}], "stream": True}
    with httpx.stream("POST", f"{root}/v1/chat/completions", json=body, timeout=10) as first:
        lines = first.iter_lines()  # kept: a dropped iterator closes the connection, and the search with it
        assert any("Round 1" in line for line in lines)
        r = httpx.post(f"{root}/v1/chat/completions", json=body, timeout=10)
        assert r.status_code == 503 and "max_pending=1" in r.json()["error"]["message"], r.text
