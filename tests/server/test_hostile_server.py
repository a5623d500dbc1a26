"""The server under a careful user and an attacker: deadlines and departures that fall inside one long backend
call, SIGTERM with requests in flight, options `run` would refuse, and API keys that are not ASCII.

Each family is built in the test over the fake backend; the HF backend's own stop between decode steps is
tested on a tiny random Llama in tests/backends/test_hf_cancel.py.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time

import httpx
import pytest

from ttscale.backends.fake import FakeGenerator
from ttscale.recipe import load_config
from ttscale.server.app import create_app
from ttscale.server.config import ServeConfig
from ttscale.server.engine import Engine
from ttscale.server.metrics import parse_metrics
from ttscale.server.process import READY, serving_in_thread, verifier_in_thread
from ttscale.verifiers.fake import FakeVerifier

BEST_OF_N = ["model.backend=fake", "prompt.mode=completion", "search.strategy=best_of_n", "search.n=4"]
# Long enough that no answer can come from the call finishing: a reply within a client timeout of a
# fraction of this came from the deadline or the cancel.
CALL_S = 120.0


class LongCall(FakeGenerator):
    """Best-of-N as one backend call lasting CALL_S for a prompt that holds "slow" (instant otherwise), which
    nothing can stop: a backend without a way to cancel a call in flight (the OpenAI HTTP backend)."""

    def __init__(self) -> None:
        super().__init__()
        self.stopped_early = threading.Event()
        self.release = threading.Event()  # the test's teardown ends a call nothing else can

    def _last(self, prompts, cancelled) -> None:
        if not any("slow" in p for p in prompts):
            return
        end = time.monotonic() + CALL_S
        while time.monotonic() < end and not self.release.is_set():
            if cancelled is not None and all(e is not None and e.is_set() for e in cancelled):
                self.stopped_early.set()
                return
            time.sleep(0.01)

    def generate(self, prompts, params):
        self._last(prompts, None)
        return super().generate(prompts, params)


class CancellableLongCall(LongCall):
    """The same call, stopped at its next step once every prompt's flag is set, as HF and vLLM stop theirs."""

    def generate_cancellable(self, prompts, params, cancelled):
        self._last(prompts, cancelled)
        return FakeGenerator.generate(self, prompts, params)


def _engine(generator, **limits) -> Engine:
    return Engine(load_config(None, BEST_OF_N), ServeConfig(**limits), generator=generator, verifier=FakeVerifier())


def _body(route: str, text: str, stream: bool = False) -> dict:
    if route == "chat/completions":
        return {"messages": [{"role": "user", "content": text}], "max_tokens": 16, "stream": stream}
    return {"prompt": text, "max_tokens": 16, "stream": stream}


def _metric(root: str, key: str, want: float, timeout_s: float = 20) -> float | None:
    deadline = time.monotonic() + timeout_s
    while True:
        got = parse_metrics(httpx.get(f"{root}/metrics").text).get(key)
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


# -- one long backend call: the deadline and a departing client bind it ------------------------------

@pytest.mark.parametrize("route", ["chat/completions", "completions"])
@pytest.mark.parametrize("backend", [LongCall, CancellableLongCall])
def test_a_deadline_inside_one_long_backend_call_is_answered_504(backend, route):
    """Before: best-of-N's one call ran to its end and the reply was a 200 long after request_timeout_s."""
    generator = backend()
    engine = _engine(generator, request_timeout_s=0.3)
    try:
        with serving_in_thread(create_app(engine)) as root:
            r = httpx.post(f"{root}/v1/{route}", json=_body(route, "slow: think for ever"), timeout=CALL_S / 4)
            assert r.status_code == 504, r.text
            assert r.json()["error"]["code"] == "timeout" and "request_timeout_s=0.3" in r.json()["error"]["message"]
            if backend is CancellableLongCall:
                # the backend itself stopped, so the search's place is free again
                assert generator.stopped_early.wait(CALL_S / 4)
                assert _metric(root, "ttscale_searches_pending", 0) == 0
            assert _metric(root, 'ttscale_searches_total{outcome="timeout"}', 1) == 1
    finally:
        generator.release.set()
        engine.close()


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("route", ["chat/completions", "completions"])
def test_a_client_that_leaves_stops_its_long_call_and_the_next_request_is_not_behind_it(route, stream):
    """Before: the call of a client that had gone went on, and every later request queued behind it."""
    generator = CancellableLongCall()
    engine = _engine(generator)
    try:
        with serving_in_thread(create_app(engine)) as root:
            with pytest.raises(httpx.ReadTimeout):
                with httpx.stream("POST", f"{root}/v1/{route}", json=_body(route, "slow: think", stream),
                                  timeout=0.5) as r:
                    for _ in r.iter_lines():
                        pass
            assert generator.stopped_early.wait(CALL_S / 4)
            r = httpx.post(f"{root}/v1/{route}", json=_body(route, "quick"), timeout=CALL_S / 4)
            assert r.status_code == 200, r.text
            assert _metric(root, 'ttscale_searches_total{outcome="cancelled"}', 1) == 1
            assert _metric(root, "ttscale_searches_pending", 0) == 0
    finally:
        generator.release.set()
        engine.close()


# -- SIGTERM with requests in flight -------------------------------------------------------------------

# `ttscale serve` itself (the CLI, its signal handling, its exit status) over a fake whose calls last
# TTSCALE_TEST_CALL_S, or until the search is cancelled.
SLOW_SERVE = textwrap.dedent("""
    import os, sys, time
    from ttscale.backends.base import GENERATORS
    from ttscale.backends.fake import FakeGenerator

    CALL_S = float(os.environ["TTSCALE_TEST_CALL_S"])

    class SlowFake(FakeGenerator):
        def _last(self, cancelled):
            end = time.monotonic() + CALL_S
            while time.monotonic() < end:
                if cancelled is not None and all(e is not None and e.is_set() for e in cancelled):
                    return
                time.sleep(0.01)

        def generate(self, prompts, params):
            self._last(None)
            return super().generate(prompts, params)

        def generate_cancellable(self, prompts, params, cancelled):
            self._last(cancelled)
            return super().generate(prompts, params)

    GENERATORS.register("slow_fake", SlowFake)
    from ttscale.cli import main
    main()
""")


def _start(tmp_path, args, env) -> tuple[subprocess.Popen, str]:
    script = tmp_path / "slow_serve.py"
    script.write_text(SLOW_SERVE, encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(script), "serve", "serve_fake", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **env})
    lines: queue.Queue = queue.Queue()

    def pump():
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen = []
    while True:
        try:
            line = lines.get(timeout=120)
        except queue.Empty:
            line = None
        if line is None:
            proc.kill()
            raise AssertionError("the server did not start:\n" + "".join(seen))
        seen.append(line)
        if READY in line:
            return proc, line.split(READY, 1)[1].strip().removesuffix("/v1")


@pytest.mark.parametrize("call_s, grace_s, in_flight_status", [
    (4.0, 60.0, 200),   # the in-flight searches end within the grace: they are answered
    (600.0, 3.0, 503),  # they would not: they are stopped at the grace and told to retry
], ids=["finished_within_grace", "cancelled_at_grace"])
def test_sigterm_drains_in_flight_requests_and_exits_zero(tmp_path, call_s, grace_s, in_flight_status):
    """Before: both in-flight requests got a plain-text 500 after uvicorn's own grace, new connections were
    refused, and the process died of the re-raised SIGTERM."""
    args = ["--set", "model.backend=slow_fake", "--set", "search.strategy=best_of_n",
            "--shutdown-grace-s", str(grace_s)]
    proc, root = _start(tmp_path, args, {"TTSCALE_TEST_CALL_S": str(call_s)})
    replies: list[httpx.Response] = []
    try:
        body = _body("chat/completions", "think")
        threads = [threading.Thread(target=lambda: replies.append(
            httpx.post(f"{root}/v1/chat/completions", json=body, timeout=120))) for _ in range(2)]
        for t in threads:
            t.start()
        assert _metric(root, "ttscale_searches_pending", 2) == 2
        proc.send_signal(signal.SIGTERM)
        deadline, refused = time.monotonic() + 20, None
        while refused is None and time.monotonic() < deadline:
            try:
                r = httpx.post(f"{root}/v1/chat/completions", json=body, timeout=20)
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            refused = r if r.status_code == 503 else None
        assert refused is not None, "no 503 while draining"
        error = refused.json()["error"]
        assert error["code"] == "server_shutting_down" and int(refused.headers["retry-after"]) >= 1
        for t in threads:
            t.join(120)
        assert [r.status_code for r in replies] == [in_flight_status] * 2, [r.text for r in replies]
        assert all(r.headers["content-type"] == "application/json" for r in replies)
        if in_flight_status == 503:
            assert all(r.json()["error"]["code"] == "server_shutting_down" and "retry-after" in r.headers
                       for r in replies)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- options refused before anything loads --------------------------------------------------------------

@pytest.mark.parametrize("command, args, says", [
    ("serve", ["--port", "99999"], "--port 99999"),
    ("serve", ["--port", "-1"], "--port -1"),
    ("serve", ["--log-level", "loud"], "--log-level 'loud'"),
    ("serve", ["--set", "search.beam_width=3"], "search.beam_width=3 does not divide search.n=4"),
    ("serve", ["--shutdown-grace-s", "-1"], "serve.shutdown_grace_s=-1.0"),
    ("serve-verifier", ["--port", "99999"], "--port 99999"),
    ("serve-verifier", ["--port", "-1"], "--port -1"),
    ("serve-verifier", ["--log-level", "loud"], "--log-level 'loud'"),
    # a verifier that reads the search's recorded log-probabilities has nothing to read in a request's text
    ("serve-verifier", ["--set", "verifier.name=self_certainty"], "cannot serve verifier 'self_certainty'"),
])
def test_serve_refuses_bad_options_in_one_line_before_it_starts(command, args, says):
    """Before: the ports and the log level were tracebacks (the last after the models loaded and the port was
    bound), and a beam width that does not divide n started a server that answered every request 400."""
    try:
        out = subprocess.run([sys.executable, "-m", "ttscale.cli", command, "serve_fake", "--port", "0", *args],
                             capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"`{command} {' '.join(args)}` started instead of refusing") from e
    lines = (out.stdout + out.stderr).strip().splitlines()
    assert out.returncode != 0 and len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], lines


# -- API keys that are not ASCII --------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["plain-ascii-key", "clé-secrète", "密钥🔑"])
@pytest.mark.parametrize("server", ["serve", "serve-verifier"])
def test_the_right_api_key_is_accepted_whatever_its_characters(server, key):
    """Before: the header was decoded as latin-1 and compared as UTF-8, so a right non-ASCII key was refused."""
    if server == "serve":
        engine = _engine(FakeGenerator())
        running = serving_in_thread(create_app(engine, api_key=key))
    else:
        engine = None
        running = verifier_in_thread(FakeVerifier(), api_key=key)
    try:
        with running as root:
            def status(token: bytes) -> int:
                # bytes: a client sends the key's UTF-8 as it is (curl, requests); httpx would refuse a non-ASCII str
                return httpx.get(f"{root}/v1/models", headers={"Authorization": b"Bearer " + token}).status_code

            assert status(key.encode()) == 200
            assert status(key.encode() + b"x") == 401
            assert status("clé".encode()) == 401
            assert httpx.get(f"{root}/v1/models").status_code == 401
    finally:
        if engine is not None:
            engine.close()
