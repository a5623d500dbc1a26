"""Stopping a server without dropping its requests: SIGTERM drains, then the process exits 0.

uvicorn's own SIGTERM closes the listening socket at once (new clients get a refused
connection, not an answer), gives in-flight requests `timeout_graceful_shutdown` seconds,
then cancels them, which its HTTP cycle answers with a plain-text 500, and finally re-raises
the signal, so the process dies of it (uvicorn/server.py: `shutdown`, `capture_signals`).
Here the first SIGTERM (or SIGINT) starts a drain instead: the socket stays open and every
new request is answered 503 with `Retry-After` (a load balancer's cue to go elsewhere), the
requests in flight have `shutdown_grace_s` to finish, those still running then are stopped
and answered 503 in JSON, and only then does uvicorn shut down, with nothing left to cancel.
A second signal is uvicorn's own: shut down now.
"""

from __future__ import annotations

import asyncio
import math
import signal
import time
from types import FrameType
from typing import Any

# After the grace, how long the stopped requests have to send their 503 (they poll every
# Engine.poll_s) before uvicorn's own shutdown takes over.
_ANSWER_S = 5.0


class Drain:
    """A server's shutdown state, shared by its guard (refuses new requests), its engine (stops searches at
    the grace) and its uvicorn server (starts the drain, exits when it is over)."""

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self.in_flight = 0  # requests inside the guard; read and written on the event loop only
        self.deadline: float | None = None  # time.monotonic() when the grace ends; None while serving
        self.halted = False  # the grace is over: searches still running are stopped

    @property
    def draining(self) -> bool:
        return self.deadline is not None

    def begin(self) -> None:
        self.deadline = time.monotonic() + self.grace_s

    def retry_after_s(self) -> int:
        """Whole seconds until this process is gone, at least 1: when a retry may find a successor."""
        left = 0.0 if self.deadline is None else self.deadline - time.monotonic()
        return max(1, math.ceil(left))

    async def run(self, poll_s: float = 0.05) -> None:
        """Wait for the requests in flight to end, up to the grace; then stop the rest and wait for their answers."""
        assert self.deadline is not None, "begin() first"
        while self.in_flight and time.monotonic() < self.deadline:
            await asyncio.sleep(poll_s)
        if not self.in_flight:
            return
        self.halted = True
        end = time.monotonic() + _ANSWER_S
        while self.in_flight and time.monotonic() < end:
            await asyncio.sleep(poll_s)


def draining_server(config: Any, drain: Drain) -> Any:
    """A uvicorn.Server over `config` whose first SIGTERM or SIGINT runs `drain` before it shuts down."""
    import uvicorn

    class DrainingServer(uvicorn.Server):
        def __init__(self, config: uvicorn.Config) -> None:
            super().__init__(config)
            self._loop: asyncio.AbstractEventLoop | None = None
            self._drain_task: asyncio.Task | None = None

        async def serve(self, sockets: Any = None) -> None:
            self._loop = asyncio.get_running_loop()
            await super().serve(sockets)

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if drain.draining or self._loop is None or sig not in (signal.SIGTERM, signal.SIGINT):
                super().handle_exit(sig, frame)
                return
            # Not recorded in uvicorn's captured signals: a drained server exits 0 instead of re-raising it.
            drain.begin()
            self._loop.call_soon_threadsafe(self._start_drain)

        def _start_drain(self) -> None:
            assert self._loop is not None
            self._drain_task = self._loop.create_task(self._drained_exit())

        async def _drained_exit(self) -> None:
            await drain.run()
            self.should_exit = True

    return DrainingServer(config)
