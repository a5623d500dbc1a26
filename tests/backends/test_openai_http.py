"""The OpenAI HTTP backend, for real over loopback: a stub server in a thread, and `ttscale serve`."""

from __future__ import annotations

import json
import socket
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ttscale.backends.fake import FakeGenerator
from ttscale.backends.openai_http import OpenAIGenerator, restore_stop
from ttscale.backends.server_probe import ServerCapabilities
from ttscale.config import ModelConfig
from ttscale.data.results import read_results
from ttscale.errors import ConfigError, GenerationError
from ttscale.runner import run
from ttscale.types import SamplingParams

pytest.importorskip("httpx")


class Stub(ThreadingHTTPServer):
    """An OpenAI completions server over the fake policy; fails scripted requests, reports what it saw."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int = 0, fail: str = "", report_stop: bool = True, delay_s: float = 0.0) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.fail, self.report_stop, self.delay_s = fail, report_stop, delay_s  # fail: per request, "" ok, "503"/"429"/"400" cycling
        self.requests: list[dict] = []
        self.headers_seen: list[str] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        self.fake = FakeGenerator()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):
        srv: Stub = self.server  # type: ignore[assignment]
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        if not self.path.endswith("/completions") or self.path.endswith("/chat/completions"):
            return self._send(404, {"error": {"message": f"no route {self.path}"}})
        with srv.lock:
            k = len(srv.requests)
            srv.requests.append(body)
            srv.headers_seen.append(self.headers.get("authorization", ""))
            srv.in_flight += 1
            srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
        try:
            code = srv.fail[k % len(srv.fail)] if srv.fail else "."
            if code != ".":
                status = {"5": 503, "4": 429, "b": 400}[code]
                reply = status, {"error": {"message": f"scripted failure {status}"}}
            else:
                time.sleep(srv.delay_s)
                reply = 200, self._complete(srv, body)
        finally:
            # before the reply goes out: once it is read, the client's next request may arrive before
            # this thread runs again, and would count as one too many in flight
            with srv.lock:
                srv.in_flight -= 1
        self._send(*reply)

    def _complete(self, srv: Stub, body: dict) -> dict:
        stop = tuple(body.get("stop") or ())
        params = SamplingParams(temperature=body["temperature"], top_p=body["top_p"], max_new_tokens=body["max_tokens"],
                                stop=stop, n=body["n"], seed=body.get("seed"))
        gens = srv.fake.generate([body["prompt"]], [params])[0]
        choices = []
        for i, g in enumerate(gens):
            text, reason, matched = g.text, {"stop": "stop", "eos": "stop", "length": "length"}[g.finish_reason], None
            if g.finish_reason == "stop":  # like vLLM: strip the stop string, say which one it was
                matched = next(s for s in stop if text.endswith(s))
                text = text[: -len(matched)]
            choice = {"index": i, "text": text, "finish_reason": reason, "logprobs": None}
            if srv.report_stop:
                choice["stop_reason"] = matched
            choices.append(choice)
        usage = {"prompt_tokens": gens[0].prompt_tokens, "completion_tokens": sum(g.n_tokens for g in gens)}
        return {"id": "cmpl-x", "object": "text_completion", "choices": choices, "usage": usage}

    def _send(self, status: int, obj: dict) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def stub(**kw):
    srv = Stub(**kw)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def _url(srv: Stub) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}/v1"


def _gen(url: str, **kw) -> OpenAIGenerator:
    """A generator told what the stub honours (vLLM's semantics), so it sends no probe requests."""
    cfg = ModelConfig(backend="openai", name_or_path="policy", base_url=url, max_concurrency=kw.pop("conc", 4),
                      api_key_env=kw.pop("key_env", None))
    kw.setdefault("capabilities", ServerCapabilities(stop_reason=kw.pop("report_stop", True)))
    return OpenAIGenerator(cfg, backoff_s=0.01, **kw)


RESTORE = [
    # (finish_reason, stop_reason field, stop strings) -> (text, reason)
    ("length", None, ("\n",), ("a b", "length")),
    ("stop", "\n", ("\n", "\nQuestion:"), ("a b\n", "stop")),
    ("stop", "\nQuestion:", ("\n", "\nQuestion:"), ("a b\nQuestion:", "stop")),
    ("stop", None, ("\n",), ("a b", "eos")),  # vLLM: stop_reason None = EOS
    ("stop", 128009, ("\n",), ("a b", "eos")),  # a stop token id, not one of our strings
    ("stop", "absent", ("\n\n", "\nQuestion:"), ("a b\n\n", "stop")),  # server does not say: the first stop
    ("stop", "absent", (), ("a b", "eos")),
]


@pytest.mark.parametrize("finish,matched,stop,expected", RESTORE)
def test_stop_string_restoration_rule(finish, matched, stop, expected):
    choice = {"text": "a b", "finish_reason": finish}
    if matched != "absent":
        choice["stop_reason"] = matched
    assert restore_stop("a b", choice, stop) == expected


@pytest.mark.parametrize("report_stop", [True, False])
def test_generations_match_the_policy_behind_the_server(report_stop):
    params = [SamplingParams(temperature=0.8, max_new_tokens=40, stop=("\n\n",), n=3, seed=5 + i) for i in range(2)]
    prompts = ["Question: 1 + 1?\nSolution:\n", "Question: Step 2 of 3?\nSolution:\n"]
    with stub(report_stop=report_stop) as srv:
        out = _gen(_url(srv), report_stop=report_stop).generate(prompts, params)
        sent = srv.requests
    direct = FakeGenerator().generate(prompts, params)
    assert [[g.text for g in row] for row in out] == [[g.text for g in row] for row in direct]
    assert [[g.finish_reason for g in row] for row in out] == [[g.finish_reason for g in row] for row in direct]
    assert [sum(g.n_tokens for g in row) for row in out] == [sum(g.n_tokens for g in row) for row in direct]
    assert all(g.prompt_tokens == len(p.split()) for p, row in zip(prompts, out) for g in row)
    assert {(b["model"], b["n"], b["max_tokens"], tuple(b["stop"])) for b in sent} == {("policy", 3, 40, ("\n\n",))}
    assert sorted(b["seed"] for b in sent) == [5, 6]  # each request its own seed, whatever its position


def test_requests_run_concurrently_up_to_max_concurrency_and_send_the_key(monkeypatch):
    monkeypatch.setenv("TTSCALE_TEST_OPENAI_KEY", "sk-secret")
    with stub(delay_s=0.2) as srv:  # long enough that requests overlap even on a loaded machine
        out = _gen(_url(srv), conc=4, key_env="TTSCALE_TEST_OPENAI_KEY").generate(
            [f"Question: {i}?" for i in range(16)], [SamplingParams(max_new_tokens=8)] * 16)
        assert len(out) == 16 and 1 < srv.max_in_flight <= 4
        assert set(srv.headers_seen) == {"Bearer sk-secret"}


def test_a_missing_key_or_url_is_a_config_error():
    with pytest.raises(ConfigError, match="base_url"):
        OpenAIGenerator(ModelConfig(backend="openai"))
    with pytest.raises(ConfigError, match="TTSCALE_NOT_SET_ANYWHERE"):
        OpenAIGenerator(ModelConfig(backend="openai", base_url="http://127.0.0.1:1/v1",
                                    api_key_env="TTSCALE_NOT_SET_ANYWHERE"))


def test_429_and_5xx_are_retried_until_they_succeed():
    with stub(fail="54.") as srv:  # every request fails twice (503, 429) before it succeeds
        out = _gen(_url(srv), conc=1).generate(["a", "b"], [SamplingParams(max_new_tokens=8)] * 2)
        assert len(out) == 2 and len(srv.requests) == 6


def test_a_4xx_is_a_clear_error_at_once():
    with stub(fail="b") as srv:
        with pytest.raises(GenerationError, match="HTTP 400: scripted failure 400"):
            _gen(_url(srv)).generate(["a"], [SamplingParams()])
        assert len(srv.requests) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_down_server_is_a_clear_error():
    url = f"http://127.0.0.1:{_free_port()}/v1"
    started = time.perf_counter()
    with pytest.raises(GenerationError, match="failed after 3 attempts.*ConnectError"):
        _gen(url, max_retries=2).generate(["a"], [SamplingParams()])
    assert time.perf_counter() - started < 5


# -- whole runs through ttscale.runner.run -------------------------------------------------------
def _recipe(fake_cfg, url: str, *more: str):
    return fake_cfg("model.backend=openai", f"model.base_url={url}", "model.name_or_path=policy",
                    "search.strategy=beam_search", "verifier.name=fake", "search.beam_width=2", *more)


def test_a_flaky_server_still_gives_a_complete_run(fake_cfg):
    with stub(fail="5..4..") as srv:
        cfg = _recipe(fake_cfg, _url(srv))
        outcome = run(cfg, generator=_gen(_url(srv)), progress=False)
        failures = sum(1 for i in range(len(srv.requests)) if "5..4.."[i % 6] != ".")
    results = read_results(outcome.run_dir)
    assert outcome.n_new == 6 and failures > 0
    assert all(r.error is None and len(r.completions) == 4 for r in results)


def test_a_down_server_records_errors_and_the_run_resumes_when_it_is_back(fake_cfg):
    port = _free_port()
    url = f"http://127.0.0.1:{port}/v1"
    cfg = _recipe(fake_cfg, url)
    first = run(cfg, generator=_gen(url, max_retries=1), progress=False)
    rows = read_results(first.run_dir)
    assert len(rows) == 6 and all(r.error and "GenerationError" in r.error for r in rows)
    with stub(port=port):
        second = run(cfg, generator=_gen(url), progress=False)
    assert second.n_new == 6
    assert all(r.error is None and r.completions for r in read_results(second.run_dir))


def test_a_recipe_runs_against_ttscale_serve(fake_cfg):
    """ttscale's own server as the policy: each step request becomes a one-step search over its fake backend."""
    pytest.importorskip("fastapi")
    from ttscale.server.process import running_server, wait_healthy

    server_side = ["search.strategy=best_of_n", "search.n=1", "verifier.name=none"]
    # The recipe asks for model "policy"; an unknown model name is a 404, so the server serves that name.
    with running_server("serve_fake", server_side, args=["--served-model-name", "policy"]) as srv:
        wait_healthy(srv.root)
        outcome = run(_recipe(fake_cfg, srv.base_url), progress=False)  # built from the registry: backend openai
    results = read_results(outcome.run_dir)
    assert outcome.n_new == 6 and all(r.error is None and len(r.completions) == 4 for r in results)
    assert all(c.n_tokens > 0 for r in results for c in r.completions)


# -- what a server honours -------------------------------------------------------------------------
def test_the_probe_reads_a_vllm_like_server_and_the_cli_prints_it():
    """The stub honours what vLLM does (n, seeds, stripped stop strings with stop_reason) but has no
    chat route and sends no logprobs: the probe must say exactly that."""
    from typer.testing import CliRunner

    from ttscale.cli import app

    with stub(report_stop=True) as srv:
        caps = _gen(_url(srv), capabilities=None).capabilities
        printed = CliRunner().invoke(app, ["probe", _url(srv), "--model", "policy"])
    assert (caps.completions, caps.chat, caps.n, caps.samples, caps.seed, caps.seed_concurrent) == (
        True, False, True, True, True, True)
    assert (caps.stop, caps.stop_reason, caps.logprobs, caps.usage, caps.extra_body) == (
        "excluded", True, False, True, ())
    assert printed.exit_code == 0, printed.output
    assert "n                        True" in printed.output and "logprobs                 False" in printed.output


def test_a_server_that_ignores_n_gets_one_request_per_sample_seeded_seed_plus_k():
    params = [SamplingParams(temperature=0.8, max_new_tokens=40, stop=("\n\n",), n=3, seed=5)]
    prompts = ["Question: 1 + 1?\nSolution:\n"]
    with stub() as srv:
        out = _gen(_url(srv), capabilities=ServerCapabilities(n=False)).generate(prompts, params)
        sent = srv.requests
    assert sorted((b["n"], b["seed"]) for b in sent) == [(1, 5), (1, 6), (1, 7)]
    assert [g.text for g in out[0]] == [g.text for g in FakeGenerator().generate(prompts, params)[0]]


def test_a_kept_stop_string_is_cut_after_its_first_occurrence_and_never_doubled():
    gen = _gen("http://127.0.0.1:1/v1", capabilities=ServerCapabilities(stop="kept", stop_reason=False))
    stop = ("\n\n",)
    assert gen._ending({"text": "a = 1.\n\n", "finish_reason": "stop"}, stop) == ("a = 1.\n\n", "stop")
    assert gen._ending({"text": "a = 1.\n\nb", "finish_reason": "stop"}, stop) == ("a = 1.\n\n", "stop")
    assert gen._ending({"text": "a = 1.", "finish_reason": "stop"}, stop) == ("a = 1.", "eos")
    assert gen._ending({"text": "a = 1", "finish_reason": "length"}, stop) == ("a = 1", "length")


def test_a_search_the_server_cannot_serve_is_refused_before_any_problem(fake_cfg):
    cfg = _recipe(fake_cfg, "http://127.0.0.1:1/v1")
    greedy_only = _gen("http://127.0.0.1:1/v1", capabilities=ServerCapabilities(samples=False))
    with pytest.raises(ConfigError, match="ignores temperature"):
        run(cfg, generator=greedy_only, progress=False)
    flops = _recipe(fake_cfg, "http://127.0.0.1:1/v1", "search.max_flops_per_problem=1e12",
                    f"output.dir={cfg.output.dir}-flops")
    with pytest.raises(ConfigError, match="model.n_params"):
        run(flops, generator=_gen("http://127.0.0.1:1/v1", n_params=0), progress=False)
    assert not read_results(cfg.output.dir)


def test_a_run_in_which_every_problem_failed_exits_non_zero(tmp_path):
    from typer.testing import CliRunner

    from ttscale.cli import app

    url = f"http://127.0.0.1:{_free_port()}/v1"  # down: every request fails after its retries
    with stub() as srv:  # ...but up for the probe, at another address
        caps = _gen(_url(srv), capabilities=None).capabilities
    import ttscale.backends.openai_http as http

    original = http.probe_server
    http.probe_server = lambda post, model: caps
    try:
        result = CliRunner().invoke(app, [
            "run", "cpu_arithmetic", "--set", "model.backend=openai", "--set", f"model.base_url={url}",
            "--set", "model.name_or_path=policy", "--set", "dataset.limit=2", "--set", "search.n=2",
            "--output-dir", str(tmp_path / "run"), "--quiet"])
    finally:
        http.probe_server = original
    assert result.exit_code == 1
    assert "all 2 problems failed" in result.output and "accuracy" not in result.output.split("failed")[0]


def test_seeds_that_mix_in_any_concurrent_round_are_not_trusted_concurrently():
    """A server seeding one global RNG can pass one round of concurrent requests by luck (a loaded server
    that runs them one after another); the probe asks several rounds, and one mixed round is enough."""
    import threading

    from ttscale.backends.server_probe import CONCURRENCY_ROUNDS, CONCURRENT_PROBE_TOKENS, probe_server

    lock, state = threading.Lock(), {"long": 0}

    def post(path, body):
        if path != "/completions":
            raise GenerationError("no chat route")
        seed, n = body.get("seed"), body.get("n", 1)
        text = f"t{body['temperature']}-s{seed}" if body["temperature"] > 0 else "greedy text. More"
        if body.get("max_tokens") == CONCURRENT_PROBE_TOKENS:
            with lock:
                state["long"] += 1
                # alone (3 requests) and the first concurrent round (4) hold; the second round mixes
                if 3 + 4 < state["long"] <= 3 + 8 and seed == 11:
                    text += "-mixed"
        return {"choices": [{"index": i, "text": text} for i in range(n)], "usage": {"completion_tokens": 3}}

    caps = probe_server(post, "m")
    assert CONCURRENCY_ROUNDS >= 2 and caps.seed and not caps.seed_concurrent
    state["long"] = -10**9  # never mixes
    assert probe_server(post, "m").seed_concurrent
