"""The http verifier against `ttscale serve-verifier`'s app on loopback: batching, retries, timeouts, errors, tokens."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from ttscale.config import VerifierConfig
from ttscale.errors import ConfigError, VerifierError
from ttscale.types import Problem
from ttscale.verifiers import build_verifier
from ttscale.verifiers.fake import FakeVerifier
from ttscale.verifiers.http import HTTPVerifier

pytest.importorskip("fastapi")

from ttscale.server.process import verifier_in_thread  # noqa: E402

PROBLEMS = [Problem(f"p{i}", f"Tom has {i} apples and buys 4 more. How many apples does he have?", str(i + 4))
            for i in range(10)]
STEPS = [[f"Tom has {i} apples.", f"He buys 4 more, so {i} + 4 = {i + 4}.", f"The answer is \\boxed{{{i + 4}}}."][: 1 + i % 3]
         for i in range(10)]


class Scripted:
    """An ASGI layer in front of the app: answers the POSTs whose number is in `fail` with that status,
    records every POST body, and counts requests in flight."""

    def __init__(self, app, fail: dict[int, int] | None = None, delay_s: float = 0.0) -> None:
        self.app, self.fail, self.delay_s = app, fail or {}, delay_s
        self.bodies: list[dict] = []
        self.in_flight = self.max_in_flight = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        k = len(self.bodies)
        self.bodies.append(json.loads(body))
        if k in self.fail:
            data = json.dumps({"error": {"message": f"scripted {self.fail[k]}"}}).encode()
            await send({"type": "http.response.start", "status": self.fail[k],
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": data})
            return
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self.app(scope, replay, send)
        finally:
            self.in_flight -= 1


def _remote(url: str, **kw) -> HTTPVerifier:
    return HTTPVerifier(VerifierConfig(name="http", base_url=url, **kw), backoff_s=0.01)


def test_items_go_in_batched_requests_and_score_as_in_process():
    rules = build_verifier(VerifierConfig(name="arithmetic_rules"))
    layer = []
    with verifier_in_thread(rules, wrap=lambda app: layer.append(Scripted(app)) or layer[0]) as url:
        remote = _remote(url + "/v1", items_per_request=3, max_concurrency=2)  # a trailing /v1 is the root
        scores = remote.score([*PROBLEMS, PROBLEMS[0]], [*STEPS, []])
    assert scores == [*rules.score(PROBLEMS, STEPS), []]
    sizes = [len(b["items"]) for b in layer[0].bodies]
    assert sorted(sizes) == [1, 3, 3, 3]  # 10 items with steps in requests of 3; the empty one is not sent
    assert layer[0].max_in_flight <= 2
    # the whole problem travels (two requests are in flight at once, so they may arrive in either order)
    sent = [item["problem"] for b in layer[0].bodies for item in b["items"]]
    assert PROBLEMS[0].to_dict() in sent and len(sent) == 10


def test_a_503_or_429_is_retried_until_it_succeeds():
    layer = []
    with verifier_in_thread(FakeVerifier(), wrap=lambda app: layer.append(Scripted(app, {0: 503, 1: 429})) or layer[0]) as url:
        remote = _remote(url, n_params=0)
        assert remote.score(PROBLEMS[:2], STEPS[:2]) == FakeVerifier().score(PROBLEMS[:2], STEPS[:2])
    assert len(layer[0].bodies) == 3


def test_a_4xx_is_one_clear_line_at_once():
    layer = []
    with verifier_in_thread(FakeVerifier(), wrap=lambda app: layer.append(Scripted(app, {0: 400})) or layer[0]) as url:
        with pytest.raises(VerifierError, match=r"^POST http://127\.0\.0\.1:\d+/v1/verify was refused with HTTP 400: "
                                                r"scripted 400$"):
            _remote(url, n_params=0).score(PROBLEMS[:1], STEPS[:1])
    assert len(layer[0].bodies) == 1


class Slow(FakeVerifier):
    def score(self, problems, steps):
        time.sleep(1.0)
        return super().score(problems, steps)


def test_a_server_that_does_not_answer_in_time_is_a_clear_error():
    with verifier_in_thread(Slow()) as url:
        remote = _remote(url, timeout_s=0.2, max_retries=1)
        started = time.perf_counter()
        with pytest.raises(VerifierError, match=r"POST .*/v1/verify failed after 2 attempts; last error: ReadTimeout"):
            remote.score(PROBLEMS[:1], STEPS[:1])
        assert time.perf_counter() - started < 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_down_server_is_a_clear_error():
    port = _free_port()
    with pytest.raises(VerifierError, match=r"GET http://127\.0\.0\.1:\d+/health failed after 2 attempts.*ConnectError"):
        HTTPVerifier(VerifierConfig(name="http", base_url=f"http://127.0.0.1:{port}", max_retries=1), backoff_s=0.01)


def test_a_missing_url_or_key_is_a_config_error():
    with pytest.raises(ConfigError, match="verifier.base_url is required"):
        build_verifier(VerifierConfig(name="http"))
    with pytest.raises(ConfigError, match="TTSCALE_NOT_SET_ANYWHERE"):
        build_verifier(VerifierConfig(name="http", base_url="http://127.0.0.1:1", api_key_env="TTSCALE_NOT_SET_ANYWHERE"))
    with pytest.raises(ConfigError, match="verifier.api='vlm_pooling' is invalid.*vllm_pooling"):
        VerifierConfig(name="http", api="vlm_pooling")


def test_the_server_key_is_sent_and_a_missing_one_refused(monkeypatch):
    monkeypatch.setenv("TTSCALE_TEST_VERIFIER_KEY", "s3cret")
    with verifier_in_thread(FakeVerifier(), api_key="s3cret") as url:
        ok = HTTPVerifier(VerifierConfig(name="http", base_url=url, api_key_env="TTSCALE_TEST_VERIFIER_KEY"))
        assert ok.n_params == FakeVerifier().n_params and ok.score(PROBLEMS[:1], STEPS[:1])
        with pytest.raises(VerifierError, match="refused with HTTP 401: invalid or missing API key"):
            _remote(url)


def test_token_counts_are_the_servers_and_count_in_the_budget():
    """FakeVerifier counts words; the remote count is the served verifier's, for what the server ran."""
    fake = FakeVerifier()
    with verifier_in_thread(fake) as url:
        remote = _remote(url, items_per_request=4)
        remote.score(PROBLEMS, STEPS)
        counts = [remote.count_tokens(p, s) for p, s in zip(PROBLEMS, STEPS)]
        assert counts == [fake.count_tokens(p, s) for p, s in zip(PROBLEMS, STEPS)] and min(counts) > 0
        # an item never scored is scored to be counted (the search asks only after scoring)
        assert remote.count_tokens(PROBLEMS[0], ["a b c"]) == fake.count_tokens(PROBLEMS[0], ["a b c"])
        assert remote.count_tokens(PROBLEMS[0], []) == 0


def test_concurrent_searches_share_one_client():
    rules = build_verifier(VerifierConfig(name="arithmetic_rules"))
    with verifier_in_thread(rules) as url:
        remote = _remote(url, items_per_request=2)
        out: dict[int, list] = {}

        def work(k: int) -> None:
            out[k] = remote.score(PROBLEMS[k::3], STEPS[k::3])

        threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert all(out[k] == rules.score(PROBLEMS[k::3], STEPS[k::3]) for k in range(3))
