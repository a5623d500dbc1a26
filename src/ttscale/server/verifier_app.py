"""`ttscale serve-verifier`: any registered verifier behind HTTP, for searches on other machines.

Routes: POST /v1/verify, GET /v1/models, GET /health (with the verifier's n_params, which
the client's FLOPs need), GET /metrics. The API key, the body-size limit (413) and the
request counts are `ttscale serve`'s own guard (server/app.py). Concurrent requests are
merged into one verifier call by the same micro-batcher `ttscale serve` uses for its
searches (server/batching.py), whose single dispatcher thread is also what makes a
non-thread-safe HF verifier safe to share. The client is verifiers/http.py.

POST /v1/verify  {"items": [{"problem": {"id", "question", "answer", ...}, "steps": [str]}]}
  -> {"object": "list", "model", "data": [{"index", "object": "step_scores", "scores": [float],
      "tokens": int}], "usage": {"prompt_tokens", "total_tokens"}}
`tokens` is the verifier's own count_tokens right after scoring the item (a PRM with an
incremental cache counts only what it ran), so a remote verifier's budget is the in-process one.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations.

import asyncio
import sys
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ttscale.config import RunConfig
from ttscale.errors import ConfigError
from ttscale.server.app import Guard, _import_server, bind, check_listen, is_loopback, read_api_key, run_uvicorn
from ttscale.server.batching import MicroBatcher
from ttscale.server.config import VerifierServeConfig
from ttscale.server.metrics import Metrics
from ttscale.server.shutdown import Drain
from ttscale.types import Problem
from ttscale.verifiers.base import Verifier, build_verifier

VERIFY_PATH = "/v1/verify"
PATHS = (VERIFY_PATH, "/v1/models", "/health", "/metrics")


Item = tuple[Problem, tuple[str, ...]]
Scored = tuple[list[float], int]


class VerifierService:
    """One verifier shared by every request: merged calls, a pending-items bound, metrics."""

    def __init__(self, verifier: Verifier, serve: VerifierServeConfig, model_name: str) -> None:
        self.verifier, self.serve, self.model_name = verifier, serve, model_name
        self.metrics = Metrics()
        self.drain = Drain(serve.shutdown_grace_s)
        self.poll_s = 0.05
        self.pending = 0
        self._batcher: MicroBatcher[Item, Scored] = MicroBatcher(
            lambda items, _: self._score(items), serve.batch_window_ms / 1000, serve.max_batch_items, "verify")
        # Threads only wait on the batcher: one per request that may be pending.
        self._pool = ThreadPoolExecutor(min(serve.max_pending, 256), thread_name_prefix="ttscale-verify")
        self.metrics.gauge("ttscale_verifier_calls_total", "verifier calls issued, after merging",
                           lambda: self._batcher.calls, kind="counter")
        self.metrics.gauge("ttscale_verifier_requests_total", "scoring requests served, before merging",
                           lambda: self._batcher.jobs, kind="counter")

    def _score(self, items: Sequence[Item]) -> list[Scored]:
        problems, steps = [p for p, _ in items], [list(s) for _, s in items]
        scores = self.verifier.score(problems, steps)
        # count_tokens right after score, on the dispatcher thread: no other call can come between
        return [(row, self.verifier.count_tokens(p, s)) for row, p, s in zip(scores, problems, steps)]

    def _submit(self, items: list[Item]) -> list[Scored]:
        with self._batcher.session():
            return self._batcher.submit(items)

    async def score(self, items: list[Item]) -> list[Scored]:
        """The items' scores; BadRequest 504 past the deadline, 503 when a draining server's grace ends (the
        verifier call runs out in its thread: a verifier cannot stop one part way)."""
        from ttscale.server.protocol import BadRequest, shutting_down

        if self.pending + len(items) > self.serve.max_pending:
            raise BadRequest(f"the server is busy ({self.pending} items pending, this request adds {len(items)}, "
                             f"max_pending={self.serve.max_pending}); retry later", status=503, code="server_busy")
        self.pending += len(items)
        try:
            work = asyncio.get_running_loop().run_in_executor(self._pool, self._submit, items)
            deadline = time.monotonic() + self.serve.request_timeout_s
            while not work.done():
                await asyncio.wait({work}, timeout=self.poll_s)
                if work.done():
                    break
                if self.drain.halted:
                    raise shutting_down(self.drain.retry_after_s(), "this request was stopped at the end of its grace")
                if time.monotonic() > deadline:
                    raise BadRequest(f"scoring ran past the server's request_timeout_s="
                                     f"{self.serve.request_timeout_s:g}; send fewer items per request",
                                     status=504, code="timeout")
            return await work
        finally:
            self.pending -= len(items)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._batcher.close()


class VerifierGuard(Guard):
    """server/app.py's guard (key, body size, counts) with this server's routes."""

    known_paths = frozenset(PATHS)
    timed_paths = frozenset({VERIFY_PATH})

    def __init__(self, app: Any, service: VerifierService, api_key: str | None) -> None:
        super().__init__(app, service, api_key)  # type: ignore[arg-type]  # reads .serve and .metrics only


def create_verifier_app(service: VerifierService, api_key: str | None = None) -> Any:
    """The ASGI app over a service; `api_key` None means no key is asked for."""
    _import_server()
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, PlainTextResponse
    from starlette.exceptions import HTTPException

    from ttscale.server.protocol import BadRequest, error_body
    from ttscale.server.verifier_protocol import parse_verify

    app = FastAPI(title="ttscale verifier", docs_url=None, redoc_url=None, openapi_url=None)
    started = int(time.time())
    v = service.verifier

    @app.exception_handler(BadRequest)
    async def _bad_request(_: Request, e: BadRequest) -> JSONResponse:
        return JSONResponse(error_body(e.message, e.kind, e.param, e.code), status_code=e.status, headers=e.headers)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, e: HTTPException) -> JSONResponse:
        message = f"{request.method} {request.url.path}: {e.detail}; routes: {', '.join(PATHS)}"
        return JSONResponse(error_body(message, "invalid_request_error"), status_code=e.status_code)

    @app.post(VERIFY_PATH)
    async def verify(request: Request) -> Any:
        req = parse_verify(await request.body(), service.serve)
        if req.model is not None and req.model != service.model_name:
            raise BadRequest(f"the model '{req.model}' does not exist; this server serves '{service.model_name}'",
                             param="model", status=404, code="model_not_found")
        items = [(it.problem.to_problem(), tuple(it.steps)) for it in req.items]
        try:
            scored = await service.score(items)
        except BadRequest:
            raise
        except Exception as e:  # noqa: BLE001 - the verifier's failure is the server's, reported with its cause
            return JSONResponse(error_body(f"scoring failed: {type(e).__name__}: {e}", "server_error"), status_code=500)
        tokens = sum(n for _, n in scored)
        service.metrics.inc("ttscale_verifier_tokens_total", tokens)
        return {"id": f"verify-{uuid.uuid4().hex[:24]}", "object": "list", "created": int(time.time()),
                "model": service.model_name,
                "data": [{"index": i, "object": "step_scores", "scores": row, "tokens": n}
                         for i, (row, n) in enumerate(scored)],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": service.model_name, "object": "model", "created": started,
                                            "owned_by": "ttscale", "verifier": v.name, "n_params": v.n_params}]}

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": service.model_name, "verifier": v.name, "n_params": v.n_params}

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(service.metrics.render(), media_type="text/plain; version=0.0.4")

    return VerifierGuard(app, service, api_key)


def serve_verifier(cfg: RunConfig, serve_cfg: VerifierServeConfig, host: str = "127.0.0.1", port: int = 8001,
                   log_level: str = "warning") -> None:
    """Check the options, load the recipe's verifier, bind, print the address, serve until SIGTERM has drained."""
    _import_server()
    check_listen(port, log_level)
    if cfg.verifier.name == "none":
        raise ConfigError("serve-verifier needs a verifier: set verifier.name (e.g. --set verifier.name=arithmetic_rules)")
    api_key = read_api_key(serve_cfg)  # type: ignore[arg-type]  # reads .api_key_env only
    sock = bind(host, port)
    try:
        if api_key is None and not is_loopback(host):
            print(f"ttscale serve-verifier: warning: listening on {host} without an API key: anyone who can reach "
                  "this address can run the verifier on this machine; pass --api-key-env", file=sys.stderr, flush=True)
        verifier = build_verifier(cfg.verifier)
        assert verifier is not None
        if getattr(verifier, "reads_logprobs", False):
            # A request carries text only; this verifier reads the policy's recorded log-probabilities.
            raise ConfigError(f"serve-verifier cannot serve verifier {cfg.verifier.name!r}: it scores the "
                              "log-probabilities a search recorded, which a request's text does not carry")
        name = serve_cfg.served_model_name or cfg.verifier.model or cfg.verifier.name
        service = VerifierService(verifier, serve_cfg, name)
        try:
            shown = f"[{host}]" if ":" in host else host
            print(f"ttscale serve-verifier: {name} ({cfg.verifier.name}, {verifier.n_params} parameters) "
                  f"listening on http://{shown}:{sock.getsockname()[1]}/v1", flush=True)
            run_uvicorn(create_verifier_app(service, api_key), sock, service.drain, log_level)
        finally:
            service.close()
    finally:
        sock.close()
