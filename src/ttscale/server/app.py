"""`ttscale serve`: an OpenAI-compatible HTTP server whose replies come from test-time search.

Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health,
GET /metrics (Prometheus text). One ASGI guard in front of them checks the API key
and the body size, counts every request, and answers 503 while the server drains
(server/shutdown.py); bad input is answered in OpenAI's error shape, never with a 500.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations, and `Request`
# is imported inside create_app (the server extra is optional).

import asyncio
import ipaddress
import logging
import os
import secrets
import socket
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ttscale.config import RunConfig
from ttscale.errors import ConfigError, MissingDependencyError, closest
from ttscale.server.config import ServeConfig
from ttscale.server.shutdown import Drain, draining_server

if TYPE_CHECKING:
    from ttscale.server.engine import Engine

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

SEARCH_PATHS = ("/v1/chat/completions", "/v1/completions")
KNOWN_PATHS = (*SEARCH_PATHS, "/v1/models", "/health", "/metrics")
# A body over the limit is read and dropped (up to this many times the limit) before the 413,
# so the client sees the answer instead of a connection reset mid-upload.
_DRAIN_FACTOR = 16


def _import_server() -> None:
    """The server extra's packages, or MissingDependencyError; everything pydantic-based imports after this."""
    for package in ("fastapi", "uvicorn", "pydantic"):
        try:
            __import__(package)
        except ImportError:
            raise MissingDependencyError(package, "server", "ttscale serve") from None


def read_api_key(serve: ServeConfig) -> str | None:
    if serve.api_key_env is None:
        return None
    key = os.environ.get(serve.api_key_env)
    if not key:
        raise ConfigError(f"--api-key-env {serve.api_key_env!r} names an environment variable that is not set or empty")
    return key


async def _send_json(send: Send, status: int, body: dict[str, Any], extra: dict[str, str] | None = None) -> None:
    import json

    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    headers += [(k.lower().encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


class Guard:
    """ASGI middleware: API key, body size (413), draining (503), request counts and latency for every request."""

    # routes counted by name (any other is "other"), and those whose latency is observed
    known_paths: frozenset[str] = frozenset(KNOWN_PATHS)
    timed_paths: frozenset[str] = frozenset(SEARCH_PATHS)
    # still answered while draining: a scraper sees the server out
    drain_paths: frozenset[str] = frozenset({"/metrics"})

    def __init__(self, app: Any, engine: "Engine", api_key: str | None) -> None:
        self.app, self.engine = app, engine
        # Compared as bytes: a header's bytes are what the client sent (ASGI gives them undecoded), and the key's
        # are its UTF-8, with surrogateescape giving back an environment variable's bytes that are not UTF-8.
        self.api_key = api_key.encode("utf-8", "surrogateescape") if api_key is not None else None
        self.max_body = engine.serve.max_body_bytes
        self.drain: Drain = engine.drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]

        async def send_counted(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        path = scope["path"] if scope["path"] in self.known_paths else "other"
        self.drain.in_flight += 1
        try:
            await self._guarded(scope, receive, send_counted)
        finally:
            self.drain.in_flight -= 1
            m = self.engine.metrics
            m.inc("ttscale_requests_total", path=path, status=str(status[0]))
            if path in self.timed_paths:
                m.observe_latency(time.perf_counter() - started, path=path)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        from ttscale.server.protocol import error_body, shutting_down

        if not self._authorized(scope):
            await _send_json(send, 401, error_body("invalid or missing API key (send Authorization: Bearer KEY)",
                                                   "authentication_error", code="invalid_api_key"))
            return
        if self.drain.draining and scope["path"] not in self.drain_paths:
            e = shutting_down(self.drain.retry_after_s(), "it takes no new requests")
            await _send_json(send, e.status, error_body(e.message, e.kind, code=e.code), e.headers)
            return
        if scope["method"] in ("POST", "PUT", "PATCH"):
            body, too_big = await self._read_body(scope, receive)
            if too_big:
                await _send_json(send, 413, error_body(
                    f"the request body is larger than the server's max_body_bytes={self.max_body}",
                    code="request_too_large"))
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        if self.api_key is None:
            return True
        given = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = given.partition(b" ")
        return scheme.lower() == b"bearer" and secrets.compare_digest(token.strip(), self.api_key)

    async def _read_body(self, scope: Scope, receive: Receive) -> tuple[bytes, bool]:
        declared = dict(scope["headers"]).get(b"content-length")
        limit = self.max_body
        if declared is not None and declared.isdigit() and int(declared) > limit * _DRAIN_FACTOR:
            return b"", True
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size <= limit:
                chunks.append(chunk)
            elif size > limit * _DRAIN_FACTOR:
                return b"", True
            more = message.get("more_body", False)
        return b"".join(chunks), size > limit


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body once, then the client's own messages (so disconnects still arrive)."""
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def create_app(engine: "Engine", api_key: str | None = None) -> Any:
    """The ASGI app over an engine; `api_key` None means no key is asked for."""
    _import_server()
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
    from starlette.exceptions import HTTPException

    from ttscale.server.batching import SearchCancelled
    from ttscale.server.protocol import BadRequest, ChatCompletionRequest, CompletionRequest, error_body, parse
    from ttscale.server.replies import chat_reply, completion_reply
    from ttscale.server.streaming import ChunkWriter, round_observer, sse

    app = FastAPI(title="ttscale", docs_url=None, redoc_url=None, openapi_url=None)
    started = int(time.time())

    @app.exception_handler(BadRequest)
    async def _bad_request(_: Request, e: BadRequest) -> JSONResponse:
        return JSONResponse(error_body(e.message, e.kind, e.param, e.code), status_code=e.status, headers=e.headers)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, e: HTTPException) -> JSONResponse:
        message = f"{request.method} {request.url.path}: {e.detail}; routes: {', '.join(KNOWN_PATHS)}"
        return JSONResponse(error_body(message, "invalid_request_error"), status_code=e.status_code)

    async def _search(request: Request, model: type, prefix: str, make_job: Any, reply: Any) -> Any:
        req = parse(model, await request.body(), engine.bounds)
        if req.model is not None and req.model != engine.model_name:
            # OpenAI's answer to an unknown model; a 200 from another model would pass for its reply.
            raise BadRequest(f"the model '{req.model}' does not exist; this server serves '{engine.model_name}' "
                             "(GET /v1/models)", param="model", status=404, code="model_not_found")
        rid = f"{prefix}-{uuid.uuid4().hex[:24]}"
        job = make_job(rid, req)
        tokenize = engine.tokenize if req.top_logprobs_asked is not None else None
        if req.stream:
            return _stream(req, rid, job, "chat" if prefix == "chatcmpl" else "completion", tokenize)
        try:
            results = await engine.run(job, request.is_disconnected)
        except SearchCancelled:
            # Nobody reads this; nginx's 499 ("client closed request") is what the logs will show.
            return JSONResponse(error_body("the client disconnected; the search was stopped"), status_code=499)
        except BadRequest:
            raise
        except Exception as e:  # noqa: BLE001 - a backend failure is the server's, reported with its cause
            log.exception("search %s failed", rid)
            return JSONResponse(error_body(f"the search failed: {type(e).__name__}: {e}", "server_error"), status_code=500)
        return JSONResponse(reply(rid, engine.model_name, results, engine.base.reduction, req.ttscale.return_candidates,
                                  tokenize))

    def _stream(req: Any, rid: str, job: Any, kind: Any, tokenize: Any) -> StreamingResponse:
        """Admission (503) happens here, before the 200 goes out; everything after is an event."""
        queue: asyncio.Queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        voting = not engine.strategies[job.strategy].step_wise
        observer = (round_observer(voting, lambda item: loop.call_soon_threadsafe(queue.put_nowait, item))
                    if req.ttscale.stream_progress else None)
        running = engine.start(job, observer)
        writer = ChunkWriter(kind, rid, engine.model_name, len(job.problems), req.include_usage, tokenize)
        # No proxy buffering (nginx's X-Accel-Buffering), so each round reaches the client when it is sent.
        return StreamingResponse(sse(engine, running, queue, writer, req.ttscale.return_candidates),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        return await _search(request, ChatCompletionRequest, "chatcmpl", engine.chat_job, chat_reply)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        return await _search(request, CompletionRequest, "cmpl", engine.completion_job, completion_reply)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": engine.model_name, "object": "model", "created": started,
                                            "owned_by": "ttscale"}]}

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": engine.model_name, "strategy": engine.cfg.search.strategy}

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(engine.metrics.render(), media_type="text/plain; version=0.0.4")

    return Guard(app, engine, api_key)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0 = any free port), so the address printed is the one served."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and without it
    # every two-write reply waits out a 40 ms delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def is_loopback(host: str) -> bool:
    """Whether `host` serves this machine only ('localhost', 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def check_listen(port: int, log_level: str) -> None:
    """The listening options, refused before anything loads (socket.bind's OverflowError and uvicorn's KeyError
    would be tracebacks, the latter only after the models are loaded)."""
    from uvicorn.config import LOG_LEVELS

    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port} is invalid; accepted: 0 (any free port) to 65535")
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"--log-level {log_level!r} is invalid{closest(log_level, LOG_LEVELS)}; "
                          f"accepted: {', '.join(LOG_LEVELS)}")


def run_uvicorn(app: Any, sock: socket.socket, drain: Drain, log_level: str) -> None:
    """Serve `app` on `sock` until a signal; the first SIGTERM or SIGINT drains (server/shutdown.py)."""
    import uvicorn

    config = uvicorn.Config(app, log_level=log_level, access_log=False, timeout_graceful_shutdown=5)
    draining_server(config, drain).run(sockets=[sock])


def serve(cfg: RunConfig, serve_cfg: ServeConfig, host: str = "127.0.0.1", port: int = 8000,
          log_level: str = "warning") -> None:
    """Check the options, load the models, bind, print the address, serve until SIGTERM has drained."""
    _import_server()
    from ttscale.server.engine import Engine

    check_listen(port, log_level)
    api_key = read_api_key(serve_cfg)
    sock = bind(host, port)
    try:
        if api_key is None and not is_loopback(host):
            print(f"ttscale serve: warning: listening on {host} without an API key: anyone who can reach this "
                  "address can run searches on this machine; pass --api-key-env", file=sys.stderr, flush=True)
        engine = Engine(cfg, serve_cfg)
        try:
            app = create_app(engine, api_key)
            shown = f"[{host}]" if ":" in host else host
            print(f"ttscale serve: {engine.model_name} ({cfg.search.strategy}, {cfg.model.backend} backend) "
                  f"listening on http://{shown}:{sock.getsockname()[1]}/v1", flush=True)
            run_uvicorn(app, sock, engine.drain, log_level)
        finally:
            engine.close()
    finally:
        sock.close()
