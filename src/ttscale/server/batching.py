"""Micro-batching: many searches running in threads share one backend call per round.

A search calls `generate()` once per round and blocks until it returns, so calls
from concurrent searches (the server's requests) arrive within a few milliseconds
of each other. One dispatcher thread collects them for a short window, merges
those that can share a backend call, and splits the results back: the backend sees
one caller, which also makes a non-thread-safe backend (HF) safe to share.

Every call can share a backend call: a backend takes one SamplingParams per prompt, each
with its own seed, so a seeded request gives the same samples whatever it was merged
with.

A search's cancel flag travels with its items into the merged call: a backend that can stop a
call part way (backends/base.py, CancellableGenerator) stops that search's prompts at its next
decode step and lets its neighbours run on, so a cancelled search frees the dispatcher, and the
requests queued behind it, without waiting out a call that may be its whole search.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ttscale.backends.base import CancellableGenerator, Generator
from ttscale.errors import TTScaleError
from ttscale.isolation import run_isolating
from ttscale.types import Generation, Problem, SamplingParams
from ttscale.verifiers.base import Verifier

Item = TypeVar("Item")
Out = TypeVar("Out")


class SearchCancelled(TTScaleError):
    """The search was cancelled (its client went away, its deadline passed, the server is stopping); raised
    at its next backend call, or when the call it was in returns."""


Flags = list[threading.Event | None]  # one cancel flag per item of a merged call (None: it cannot be cancelled)


@dataclass
class _Job(Generic[Item, Out]):
    items: list[Item]
    cancelled: threading.Event | None
    done: threading.Event = field(default_factory=threading.Event)
    result: list[Out] | None = None
    error: BaseException | None = None


class MicroBatcher(Generic[Item, Out]):
    """Merges concurrent `submit` calls into one `run(items, cancelled)` call.

    `run` gets the concatenated items and each item's job's cancel flag, and returns one output
    per item. The dispatcher waits up to `window_s` for more jobs, but only
    while fewer jobs are queued than sessions are open: a lone search never waits.
    """

    def __init__(
        self, run: Callable[[list[Item], Flags], list[Out]], window_s: float = 0.005, max_items: int = 1024,
        name: str = "batcher",
    ) -> None:
        self._run, self.window_s, self.max_items = run, window_s, max_items
        self._queue: queue.Queue[_Job[Item, Out] | None] = queue.Queue()
        self._sessions = 0
        self._lock = threading.Lock()
        self.calls = 0  # backend calls issued
        self.jobs = 0  # submit() calls served
        self._thread = threading.Thread(target=self._loop, name=f"ttscale-{name}", daemon=True)
        self._thread.start()

    # -- callers -------------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[None]:
        """Marks a caller (one search) as active, so the dispatcher knows whom to wait for."""
        with self._lock:
            self._sessions += 1
        try:
            yield
        finally:
            with self._lock:
                self._sessions -= 1

    def submit(self, items: Sequence[Item], cancelled: threading.Event | None = None) -> list[Out]:
        if cancelled is not None and cancelled.is_set():
            raise SearchCancelled("the request was cancelled before its next backend call")
        if not items:
            return []
        job: _Job[Item, Out] = _Job(list(items), cancelled)
        self._queue.put(job)
        job.done.wait()
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    # -- dispatcher ----------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = self._collect(first)
            stop = any(j is None for j in batch)
            jobs = [j for j in batch if j is not None]
            for group in _groups(jobs, self.max_items):
                self._run_group(group)
            if stop:
                return

    def _collect(self, first: _Job[Item, Out]) -> list[_Job[Item, Out] | None]:
        batch: list[_Job[Item, Out] | None] = [first]
        deadline = time.monotonic() + self.window_s
        n_items = len(first.items)
        while n_items < self.max_items:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                if len(batch) >= self._sessions:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    job = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            batch.append(job)
            if job is None:
                break
            n_items += len(job.items)
        return batch

    def _run_group(self, group: list[_Job[Item, Out]]) -> None:
        # BaseException too: whatever a call raises is handed to its callers, who wait on `done`, never lost.
        run_isolating(self._call, group, _fail, catch=BaseException)

    def _call(self, group: list[_Job[Item, Out]]) -> list[None]:
        """One backend call for the group's jobs not cancelled yet; each job is answered when it returns."""
        live = []
        for job in group:
            if job.cancelled is not None and job.cancelled.is_set():
                job.error = SearchCancelled("the request was cancelled while waiting for the backend")
                job.done.set()
            else:
                live.append(job)
        if not live:
            return [None] * len(group)
        outputs = self._run([x for job in live for x in job.items], [job.cancelled for job in live for _ in job.items])
        self.calls += 1
        self.jobs += len(live)
        start = 0
        for job in live:
            if job.cancelled is not None and job.cancelled.is_set():
                # its outputs may have been cut short by the backend: nobody must take them for samples
                job.error = SearchCancelled("the request was cancelled during its backend call")
            else:
                job.result = outputs[start : start + len(job.items)]
            start += len(job.items)
            job.done.set()
        return [None] * len(group)


def _fail(job: _Job[Item, Out], error: BaseException) -> None:
    job.error = error
    job.done.set()


def _groups(jobs: list[_Job[Item, Out]], max_items: int) -> Iterator[list[_Job[Item, Out]]]:
    """Jobs in arrival order, chunked so a call holds at most max_items (a job is never split)."""
    chunk: list[_Job[Item, Out]] = []
    size = 0
    for job in jobs:
        if chunk and size + len(job.items) > max_items:
            yield chunk
            chunk, size = [], 0
        chunk.append(job)
        size += len(job.items)
    if chunk:
        yield chunk


class BatchingGenerator:
    """A Generator shared by many searches; each search uses its own `session()` handle."""

    def __init__(self, inner: Generator, window_s: float = 0.005, max_prompts: int = 1024) -> None:
        self.inner = inner
        self.name, self.n_params, self.tokenizer = inner.name, inner.n_params, inner.tokenizer
        self._batcher: MicroBatcher[tuple[str, SamplingParams], list[Generation]] = MicroBatcher(
            lambda items, cancelled: _generate(inner, items, cancelled), window_s, max_prompts, "generate",
        )

    @property
    def calls(self) -> int:
        return self._batcher.calls

    @property
    def requests(self) -> int:
        return self._batcher.jobs

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def generate(self, prompts: Sequence[str], params: Sequence[SamplingParams]) -> list[list[Generation]]:
        return self._submit(prompts, params, None)

    def _submit(
        self, prompts: Sequence[str], params: Sequence[SamplingParams], cancelled: threading.Event | None
    ) -> list[list[Generation]]:
        return self._batcher.submit(list(zip(prompts, params, strict=True)), cancelled)

    @contextmanager
    def session(self, cancelled: threading.Event | None = None) -> Iterator[Generator]:
        """A Generator for one search; it raises SearchCancelled once `cancelled` is set."""
        with self._batcher.session():
            yield _Handle(self, cancelled)

    def close(self) -> None:
        self._batcher.close()


def _generate(inner: Generator, items: list[tuple[str, SamplingParams]], cancelled: Flags) -> list[list[Generation]]:
    prompts, params = [p for p, _ in items], [q for _, q in items]
    if isinstance(inner, CancellableGenerator):
        return inner.generate_cancellable(prompts, params, cancelled)
    return inner.generate(prompts, params)


class _Handle:
    def __init__(self, owner: BatchingGenerator, cancelled: threading.Event | None) -> None:
        self._owner, self._cancelled = owner, cancelled
        self.name, self.n_params, self.tokenizer = owner.name, owner.n_params, owner.tokenizer

    def count_tokens(self, text: str) -> int:
        return self._owner.count_tokens(text)

    def generate(self, prompts: Sequence[str], params: Sequence[SamplingParams]) -> list[list[Generation]]:
        return self._owner._submit(prompts, params, self._cancelled)


class BatchingVerifier:
    """Merges concurrent `score` calls of many searches into one verifier call (like BatchingGenerator)."""

    def __init__(self, inner: Verifier, window_s: float = 0.005) -> None:
        self.inner = inner
        self.name, self.n_params = inner.name, inner.n_params
        self._batcher: MicroBatcher[tuple[Problem, Sequence[str]], list[float]] = MicroBatcher(
            lambda pairs, _: inner.score([p for p, _ in pairs], [s for _, s in pairs]), window_s, 4096, "score"
        )

    def score(self, problems: Sequence[Problem], steps: Sequence[Sequence[str]]) -> list[list[float]]:
        return self._batcher.submit(list(zip(problems, steps)))

    def count_tokens(self, problem: Problem, steps: Sequence[str]) -> int:
        return self.inner.count_tokens(problem, steps)

    @contextmanager
    def session(self) -> Iterator[Verifier]:
        with self._batcher.session():
            yield self

    def close(self) -> None:
        self._batcher.close()
