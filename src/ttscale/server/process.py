"""Start `ttscale serve` as a child process on a free loopback port (tests, benches, notebooks)."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ttscale.errors import TTScaleError

READY = "listening on "


@dataclass
class ServerProcess:
    base_url: str  # ends in /v1
    process: subprocess.Popen
    output: list[str] = field(default_factory=list)  # every line the server printed so far

    @property
    def root(self) -> str:
        return self.base_url.removesuffix("/v1")


def _pump(stream, lines: list[str], ready: queue.Queue) -> None:
    for line in stream:
        lines.append(line)
        if READY in line:
            ready.put(line.split(READY, 1)[1].strip())
    ready.put(None)


@contextmanager
def running_server(
    recipe: str, overrides: Sequence[str] = (), args: Sequence[str] = (), env: dict[str, str] | None = None,
    startup_timeout_s: float = 180.0, command: str = "serve",
) -> Iterator[ServerProcess]:
    """`ttscale COMMAND RECIPE --port 0 ...` (serve or serve-verifier) until the block ends; raises with its
    output if it does not start."""
    cmd = [sys.executable, "-m", "ttscale.cli", command, recipe, "--host", "127.0.0.1", "--port", "0", *args]
    for item in overrides:
        cmd += ["--set", item]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})}
    )
    lines: list[str] = []
    ready: queue.Queue = queue.Queue()
    threading.Thread(target=_pump, args=(proc.stdout, lines, ready), daemon=True).start()
    try:
        try:
            url = ready.get(timeout=startup_timeout_s)
        except queue.Empty:
            url = None
        if url is None:
            raise TTScaleError(f"`{' '.join(cmd)}` did not start:\n{''.join(lines)[-3000:]}")
        yield ServerProcess(url, proc, lines)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def wait_healthy(root: str, headers: dict[str, str] | None = None, timeout_s: float = 30.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{root}/health", headers=headers, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TTScaleError(f"{root}/health did not answer 200 within {timeout_s} s")
        time.sleep(0.1)


@contextmanager
def serving_in_thread(app: Any, host: str = "127.0.0.1") -> Iterator[str]:
    """An ASGI app served by uvicorn on a free loopback port in a thread of this process, as http://host:port.

    For servers over objects built in the caller (a tiny model, a scripted failure), where a child
    process could not hold them; the socket is real, so the client's HTTP stack is the one used in production.
    """
    import uvicorn

    from ttscale.server.app import bind

    sock = bind(host, 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="ttscale-uvicorn")
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise TTScaleError("the in-thread server did not start")
            time.sleep(0.01)
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextmanager
def verifier_in_thread(
    verifier: object, serve: object = None, api_key: str | None = None, wrap: Callable[[object], object] | None = None,
) -> Iterator[str]:
    """`ttscale serve-verifier`'s app over a verifier object, served in a thread (see serving_in_thread).

    `serve` is a VerifierServeConfig (defaults if None); `wrap` may put an ASGI layer in front (a test's
    scripted failures).
    """
    from ttscale.server.config import VerifierServeConfig
    from ttscale.server.verifier_app import VerifierService, create_verifier_app

    name = getattr(verifier, "name", "verifier")
    service = VerifierService(verifier, serve or VerifierServeConfig(), name)  # type: ignore[arg-type]
    app = create_verifier_app(service, api_key)
    try:
        with serving_in_thread(wrap(app) if wrap else app) as url:
            yield url
    finally:
        service.close()
