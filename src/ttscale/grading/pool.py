"""A small process pool for sympy work with a hard per-item deadline.

concurrent.futures cannot cancel a running task, so a hung sympy call would
hold its worker forever; here each worker is a Process behind a Pipe, and a
worker that misses its deadline is killed and replaced. Workers are forked
from the parent with math-verify already imported.

The deadline counts the worker's CPU time where the OS tells it (Linux's /proc): on a machine
busy with other work (a model decoding on every core, a CI runner) a worker may get a small share
of a core, and a wall-clock deadline would cut a pair that needs milliseconds of work and grade it
as undecided, changing accuracy with the machine's load. A worker that makes no progress at all
(stopped, blocked) is still cut after WALL_FACTOR times the deadline in wall time.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing as mp
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import cast

from ttscale.grading import _worker

logger = logging.getLogger(__name__)

TIMED_OUT = "timeout"
WALL_FACTOR = 10.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") and "SC_CLK_TCK" in os.sysconf_names else 100


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process `pid` (Linux /proc), or None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # the command name may hold spaces and ")"
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime: stat(5) fields 14, 15
    except (OSError, IndexError, ValueError):
        return None


@dataclass
class _Item:
    """One pair in a worker: when it was sent, and the worker's CPU time then."""

    worker: _Worker
    index: int
    sent: float
    cpu_at_send: float | None
    deadline: float


@dataclass
class _Worker:
    process: mp.process.BaseProcess
    conn: Connection


def _context() -> mp.context.ForkContext | mp.context.SpawnContext:
    # fork, where there is one: a worker (or its replacement after a hang) is ready in ~10 ms with
    # sympy already imported, and the caller's unguarded script is not re-run in each worker as
    # spawn/forkserver would do. The child only runs sympy, never the parent's threads or CUDA.
    if "fork" in mp.get_all_start_methods():
        import math_verify  # noqa: F401 - imported once here so every forked worker inherits it

        return mp.get_context("fork")
    return mp.get_context("spawn")


_starter_jobs: queue.SimpleQueue[tuple[Callable[[], None], Future[None]]] = queue.SimpleQueue()
_starter_pid = 0  # the process whose starter thread reads _starter_jobs
_starter_lock = threading.Lock()


def _start_from_a_lasting_thread(start: Callable[[], None]) -> None:
    """Run `start` (a Process.start) on a thread that lives as long as this process.

    A worker arms Linux's PR_SET_PDEATHSIG on itself (see _worker.die_with_parent), and the kernel
    fires it when the *thread* that forked the worker exits, not the process (prctl(2)). Forked by a
    request thread, a worker would be SIGKILLed mid-request once that thread ended; so the fork
    happens on the main thread, whose end is the process's end, or else on one daemon thread that
    never returns. Forking on the main thread itself keeps a single-threaded `ttscale grade`
    single-threaded at fork, which Python 3.12 warns about otherwise (os.fork's DeprecationWarning).
    """
    global _starter_jobs, _starter_pid
    if threading.current_thread() is threading.main_thread():
        start()
        return
    with _starter_lock:
        if _starter_pid != os.getpid():  # none yet, or we are a fork of the process that has it
            _starter_jobs = queue.SimpleQueue()
            threading.Thread(
                target=_run_starts, args=(_starter_jobs,), name="grading-worker-starter", daemon=True
            ).start()
            _starter_pid = os.getpid()
        jobs = _starter_jobs
    done: Future[None] = Future()
    jobs.put((start, done))
    done.result()


def _run_starts(jobs: queue.SimpleQueue[tuple[Callable[[], None], Future[None]]]) -> None:
    while True:
        start, done = jobs.get()
        try:
            start()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller waiting on `done`, which re-raises it
            done.set_exception(exc)
        else:
            done.set_result(None)


class VerifyPool:
    """Runs (gold, pred) verifications in worker processes; each item gets `timeout` seconds of its
    worker's CPU time (of wall time where that cannot be read; see the module docstring)."""

    def __init__(self, n_workers: int | None = None) -> None:
        self.n_workers = n_workers or max(1, min(4, os.cpu_count() or 1))
        self._ctx = _context()
        self._workers: list[_Worker] = []
        self.n_timeouts = 0
        # One batch at a time: a server grading from several threads shares these workers.
        self._lock = threading.Lock()

    def _start_worker(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        forked = self._ctx.get_start_method() == "fork"
        # Only a forked child inherits our fds; under spawn the same numbers are other files.
        inherited = [parent.fileno(), *(w.conn.fileno() for w in self._workers)] if forked else []
        process = self._ctx.Process(target=_worker.serve, args=(child, os.getpid(), inherited), daemon=True)
        _start_from_a_lasting_thread(process.start)
        child.close()
        return _Worker(process, parent)

    def _ensure_workers(self, n: int) -> None:
        self._workers = [w for w in self._workers if w.process.is_alive()]
        while len(self._workers) < n:
            self._workers.append(self._start_worker())

    def _kill(self, worker: _Worker) -> None:
        worker.process.kill()
        worker.process.join(timeout=5)
        worker.conn.close()
        self._workers.remove(worker)

    def parse_many(self, answers: Sequence[str], timeout: float) -> list[bool | str]:
        """Whether math-verify parses each answer (into this worker's cache), or TIMED_OUT."""
        return self._run("parse", [(a, "") for a in answers], timeout)

    def verify_many(self, pairs: Sequence[tuple[str, str]], timeout: float) -> list[bool | str]:
        """True/False per pair, or TIMED_OUT / "error: ..." for a pair that could not be decided."""
        return self._run("equiv", pairs, timeout)

    def _run(self, kind: str, pairs: Sequence[tuple[str, str]], timeout: float) -> list[bool | str]:
        with self._lock:
            return self._run_locked(kind, pairs, timeout)

    def _run_locked(self, kind: str, pairs: Sequence[tuple[str, str]], timeout: float) -> list[bool | str]:
        results: list[bool | str] = [TIMED_OUT] * len(pairs)
        if not pairs:
            return results
        self._ensure_workers(min(self.n_workers, len(pairs)))
        pending = list(range(len(pairs) - 1, -1, -1))  # popped from the end: first pair first
        busy: dict[int, _Item] = {}  # fileno -> the pair its worker is on
        idle = list(self._workers)
        while pending or busy:
            while idle and pending:
                worker, index = idle.pop(), pending.pop()
                try:
                    worker.conn.send((kind, *pairs[index]))
                except (BrokenPipeError, OSError):  # died while idle (OOM killer): replace, retry the item
                    self._kill(worker)
                    idle.append(self._replace())
                    pending.append(index)
                    continue
                now = time.monotonic()
                busy[worker.conn.fileno()] = _Item(worker, index, now, cpu_seconds(worker.process.pid or 0),
                                                   now + timeout)
            next_deadline = min(item.deadline for item in busy.values())
            ready = wait([item.worker.conn for item in busy.values()],
                         timeout=max(0.0, next_deadline - time.monotonic()))
            for conn in cast(list[Connection], ready):  # wait() hands back the connections it was given
                item = busy.pop(conn.fileno())
                try:
                    results[item.index] = conn.recv()
                    idle.append(item.worker)
                except (EOFError, OSError):
                    logger.warning("grading worker died on %.80r %.80r; restarting it", *pairs[item.index])
                    results[item.index] = "error: worker died"
                    self._kill(item.worker)
                    idle.append(self._replace())
            now = time.monotonic()
            for fileno, item in list(busy.items()):
                if item.deadline > now:
                    continue
                left = self._cpu_left(item, timeout, now)
                if left > 0:
                    item.deadline = now + max(left, 0.01)
                    continue
                del busy[fileno]
                self.n_timeouts += 1
                logger.warning("grading (%s) timed out after %.1fs on %.80r %.80r", kind, timeout, *pairs[item.index])
                self._kill(item.worker)
                idle.append(self._replace())
        return results

    @staticmethod
    def _cpu_left(item: _Item, timeout: float, now: float) -> float:
        """CPU seconds the item may still use; 0 once it used `timeout` of them, or when the CPU time cannot
        be read (then the wall clock decides), or past WALL_FACTOR x timeout of wall time."""
        if item.cpu_at_send is None or now - item.sent >= WALL_FACTOR * timeout:
            return 0.0
        used = cpu_seconds(item.worker.process.pid or 0)
        return 0.0 if used is None else timeout - (used - item.cpu_at_send)

    def _replace(self) -> _Worker:
        worker = self._start_worker()
        self._workers.append(worker)
        return worker

    def shutdown(self) -> None:
        with self._lock:
            self._shutdown_locked()

    def _shutdown_locked(self) -> None:
        for worker in list(self._workers):
            try:
                worker.conn.send(("stop", "", ""))
            except OSError:
                pass  # already dead: the join below returns at once
            worker.conn.close()
        for worker in list(self._workers):
            worker.process.join(timeout=1)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=5)
        self._workers = []


_pool: VerifyPool | None = None


def get_pool() -> VerifyPool:
    """The process-wide pool, started on first use and shut down at exit (a cache, not config)."""
    global _pool
    if _pool is None:
        _pool = VerifyPool()
        atexit.register(_pool.shutdown)
    return _pool


def shutdown_pool() -> None:
    global _pool
    if _pool is not None:
        _pool.shutdown()
        _pool = None
