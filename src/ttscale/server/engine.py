"""One engine, many searches: a validated request becomes a search over the shared models.

Each request's search runs in its own thread with the same `Strategy` code as
`ttscale run`; the threads share one batching generator and one batching verifier,
so concurrent requests' rounds become shared backend calls (server/batching.py).
A request whose client goes away, whose deadline passes, or that is still running when a
draining server's grace ends (server/shutdown.py) is answered at once and has its cancel
flag set: its search stops at its next backend call, and a backend that can (HF, vLLM) stops
the call it is in at its next decode step, so a best-of-N search, which is one call, stops too.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import cast

from ttscale.backends.base import Generator, build_generator
from ttscale.config import RunConfig
from ttscale.errors import ConfigError
from ttscale.registry import release
from ttscale.search.base import STRATEGIES, SearchSettings, Strategy, build_strategy, checked_strategy, run_settings
from ttscale.search.progress import RoundObserver, observe_rounds
from ttscale.server.batching import BatchingGenerator, BatchingVerifier, SearchCancelled
from ttscale.server.config import ServeConfig
from ttscale.server.metrics import Metrics
from ttscale.server.protocol import (
    BadRequest,
    Bounds,
    ChatCompletionRequest,
    CompletionRequest,
    SearchRequest,
    shutting_down,
)
from ttscale.server.replies import tokenizer_logprobs
from ttscale.server.shutdown import Drain
from ttscale.types import Problem, ProblemResult
from ttscale.verifiers.base import Verifier, build_verifier, with_calibration

log = logging.getLogger(__name__)

_UNSET = object()
# Backends whose generations carry per-token log-probabilities whenever SamplingParams.logprobs > 0
# (backends/hf.py's LogprobRecorder, backends/fake.py); vLLM's are not asked for, and an HTTP policy's only
# where its server returns them (backends/server_probe.py).
LOGPROB_BACKENDS = ("fake", "hf")


@dataclass(frozen=True)
class RunningSearch:
    """A started search: its thread's future, the flag that stops it, and its deadline (time.monotonic)."""

    future: asyncio.Future[list[ProblemResult]]
    cancelled: threading.Event
    deadline: float
    searches: int  # one per problem: prompts x choices


@dataclass(frozen=True)
class SearchJob:
    """What one request asks for: problems (one per choice and prompt), their prompts, the search."""

    strategy: str
    problems: tuple[Problem, ...]
    prompts: tuple[str, ...]
    settings: SearchSettings


def _servable_strategies() -> dict[str, Strategy]:
    """Every registered strategy that loads; one that cannot is left out, loudly."""
    table = {}
    for name in STRATEGIES.names():
        try:
            table[name] = build_strategy(name)
        except Exception as e:  # noqa: BLE001 - one broken plug-in must not take the server down
            log.warning("strategy %r is not served: %s: %s", name, type(e).__name__, e)
    return table


# The request field a client sets for each recipe field a strategy may refuse; the others are the server's own.
_REQUEST_FIELDS = {f"search.{k}": f"ttscale.{k}" for k in ("n", "beam_width", "max_iterations", "lookahead", "selection")}


class Engine:
    def __init__(
        self,
        cfg: RunConfig,
        serve: ServeConfig,
        generator: Generator | None = None,
        verifier: Verifier | None | object = _UNSET,
    ) -> None:
        self.cfg, self.serve = cfg, serve
        self.strategies = _servable_strategies()
        if cfg.search.strategy not in self.strategies:
            raise ConfigError(f"search.strategy={cfg.search.strategy!r} is not a registered strategy")
        # As `ttscale run` refuses them: else every request that keeps the recipe's settings gets a 400 it did not earn.
        checked_strategy(cfg, has_verifier=cfg.verifier.name != "none" or verifier not in (None, _UNSET))
        backend = generator or build_generator(cfg.model)
        inner_verifier = (build_verifier(cfg.verifier) if verifier is _UNSET
                          else with_calibration(cast("Verifier | None", verifier), cfg.verifier))
        # What the engine builds lives as long as it does; what it is given, its caller closes.
        self._built = [part for part, given in ((backend, generator), (inner_verifier, verifier))
                       if given in (None, _UNSET)]
        window = serve.batch_window_ms / 1000
        self.generator = BatchingGenerator(backend, window, serve.max_batch_prompts)
        self.verifier = BatchingVerifier(inner_verifier, window) if inner_verifier is not None else None
        self.format, base = run_settings(cfg, backend.tokenizer)
        self.base = replace(base, save_trees=False)
        self.bounds = Bounds(serve, self.strategies, self.verifier is not None)
        self.model_name = serve.served_model_name or cfg.model.name_or_path
        self.tokenize = tokenizer_logprobs(backend.tokenizer)
        self.metrics = Metrics()
        self.drain = Drain(serve.shutdown_grace_s)
        self._pool = ThreadPoolExecutor(serve.max_concurrent_searches, thread_name_prefix="ttscale-search")
        self._pending = 0
        self.poll_s = 0.05
        self.metrics.gauge("ttscale_searches_pending", "searches running or queued", lambda: self._pending)
        self.metrics.gauge("ttscale_backend_calls_total", "generator calls issued to the backend",
                           lambda: self.generator.calls, kind="counter")
        self.metrics.gauge("ttscale_backend_requests_total", "generate() calls of searches, before merging",
                           lambda: self.generator.requests, kind="counter")

    # -- requests -> jobs ----------------------------------------------------------
    def _settings(self, req: SearchRequest, n: int | None) -> SearchSettings:
        b, opts = self.base, req.ttscale
        max_new = req.token_cap if req.token_cap is not None else b.max_new_tokens
        settings = replace(
            b,
            n=n or opts.n or b.n,
            beam_width=opts.beam_width or b.beam_width,
            max_iterations=opts.max_iterations or b.max_iterations,
            lookahead=b.lookahead if opts.lookahead is None else opts.lookahead,
            selection=opts.selection or b.selection,
            temperature=b.temperature if req.temperature is None else req.temperature,
            top_p=b.top_p if req.top_p is None else req.top_p,
            # OpenAI's semantics: the same request with the same seed gives the same answer; without
            # a seed, every request is a fresh draw.
            seed=secrets.randbelow(1 << 30) if req.seed is None else req.seed,
            max_new_tokens=max_new,
            max_step_tokens=min(b.max_step_tokens, max_new),
            # A request's stop strings end a whole solution, like the prompt format's end markers.
            end_markers=b.end_markers + tuple(s for s in req.stops if s not in b.end_markers),
        )
        if req.top_logprobs_asked is not None:
            # The sampled token's log-probability is recorded with the top-k row, so k >= 1, kept per token.
            settings = replace(settings, logprobs=max(b.logprobs, 1), save_logprobs=True)
        return settings

    def _job(self, req: SearchRequest, questions: Sequence[str], prompts: Sequence[str], n: int | None) -> SearchJob:
        k = req.n
        many = len(prompts) * k > 1
        # Ids name a prompt's place in the request, not the request: sample seeds derive from them.
        problems = tuple(
            Problem(id=f"prompt{j}-choice{i}" if many else "prompt0", question=q, answer="")
            for j, q in enumerate(questions) for i in range(k)
        )
        if req.top_logprobs_asked is not None and self.cfg.model.backend not in LOGPROB_BACKENDS:
            raise BadRequest(f"logprobs: are not served over this server's {self.cfg.model.backend} backend "
                             f"(served over: {', '.join(LOGPROB_BACKENDS)})", param="logprobs")
        strategy, settings = req.ttscale.strategy or self.cfg.search.strategy, self._settings(req, n)
        try:
            self.strategies[strategy].validate(settings)
        except ConfigError as e:
            # A field the request set is the client's to change; a recipe field is not: another strategy may run.
            raise BadRequest(str(e), param=_REQUEST_FIELDS.get(e.field or "", "ttscale.strategy")) from None
        job = SearchJob(strategy=strategy, problems=problems, prompts=tuple(p for p in prompts for _ in range(k)),
                        settings=settings)
        self._check_work(job, len(prompts), k)
        return job

    def _check_work(self, job: SearchJob, n_prompts: int, k: int) -> None:
        """Refuse a request whose total work is over the server's budget, before any of it starts."""
        s, limits = job.settings, self.serve
        per_search = s.n * s.max_new_tokens
        if s.max_tokens_per_problem is not None:
            per_search = min(per_search, s.max_tokens_per_problem)
        tokens = n_prompts * k * per_search
        if tokens > limits.max_request_tokens:
            raise BadRequest(
                f"this request may generate {tokens} tokens (prompts {n_prompts} x choices {k} x ttscale.n {s.n} "
                f"x max_tokens {s.max_new_tokens}), over the server's max_request_tokens={limits.max_request_tokens}; "
                "ask for fewer", param="max_tokens", code="request_too_large")
        expansions = self.strategies[job.strategy].max_expansions(s)
        steps = n_prompts * k * expansions
        if steps > limits.max_request_steps:
            raise BadRequest(
                f"this request may expand {steps} steps (prompts {n_prompts} x choices {k} x {expansions} for one "
                f"{job.strategy} search at ttscale.n {s.n}, max_iterations {s.max_iterations}, lookahead "
                f"{s.lookahead}), over the server's max_request_steps={limits.max_request_steps}; ask for fewer",
                param="ttscale.n", code="request_too_large")

    def chat_job(self, rid: str, req: ChatCompletionRequest) -> SearchJob:
        question = req.question
        prompt = self.format.render(Problem(id=rid, question=question, answer=""))
        return self._job(req, [question], [prompt], None)

    def completion_job(self, rid: str, req: CompletionRequest) -> SearchJob:
        return self._job(req, req.prompts, req.prompts, req.best_of)

    # -- running -------------------------------------------------------------------
    def start(self, job: SearchJob, observer: RoundObserver | None = None) -> RunningSearch:
        """The job's search started in the pool, or BadRequest 503 when the server is full; `observer`
        sees each of its rounds, in the search's thread (search/progress.py)."""
        # Counted in searches, not requests: one request of 16 prompts x 8 choices is 128 searches.
        searches = len(job.problems)
        if self._pending + searches > self.serve.max_pending:
            raise BadRequest(
                f"the server is busy ({self._pending} searches pending, this request adds {searches}, "
                f"max_pending={self.serve.max_pending}); retry later", status=503, code="server_busy",
            )
        self._pending += searches
        cancelled = threading.Event()
        future = asyncio.get_running_loop().run_in_executor(self._pool, self._search, job, cancelled, observer)
        # Released when the thread is done, not when the request is: a cancelled search holds its place
        # until it reaches its next backend call and stops.
        future.add_done_callback(lambda _: self._release(searches))
        return RunningSearch(future, cancelled, time.monotonic() + self.serve.request_timeout_s, searches)

    def _release(self, searches: int) -> None:
        self._pending -= searches

    async def run(self, job: SearchJob, disconnected: Callable[[], Awaitable[bool]]) -> list[ProblemResult]:
        """The job's results; its search is cancelled when `disconnected()` turns true."""
        return await self.wait(self.start(job), disconnected)

    async def wait(self, running: RunningSearch, disconnected: Callable[[], Awaitable[bool]]) -> list[ProblemResult]:
        """The search's results. It is cancelled when `disconnected()` turns true (SearchCancelled), when its
        deadline passes (BadRequest 504), when a draining server's grace ends (BadRequest 503) and when this
        coroutine is cancelled (a streaming client went away). A cancelled search is answered at once: its
        thread may be inside one long backend call, which stops at its next decode step where the backend can
        stop it (backends/base.py, CancellableGenerator) and runs out where it cannot; its place in
        max_pending is freed when its thread returns (start())."""
        future, ended = running.future, None
        try:
            while not future.done() and ended is None:
                await asyncio.wait({future}, timeout=self.poll_s)
                if not future.done():
                    ended = self._ended(running) or ("cancelled" if await disconnected() else None)
            if ended is None:
                results = await future
        except asyncio.CancelledError:
            self._cancel(running, "cancelled")
            raise
        except Exception:
            self.metrics.inc("ttscale_searches_total", running.searches, outcome="failed")
            raise
        if ended is not None:
            raise self._cancel(running, ended)
        self.metrics.inc("ttscale_searches_total", len(results), outcome="ok")
        for r in results:
            self.metrics.inc("ttscale_prompt_tokens_total", r.budget.prompt_tokens)
            self.metrics.inc("ttscale_generated_tokens_total", r.budget.generated_tokens)
            self.metrics.inc("ttscale_verifier_tokens_total", r.budget.verifier_tokens)
        return results

    def _ended(self, running: RunningSearch) -> str | None:
        """Why the server stops this search now, if it does: its deadline passed, or the server is stopping."""
        if self.drain.halted:
            return "shutdown"
        if time.monotonic() > running.deadline:
            return "timeout"
        return None

    def _cancel(self, running: RunningSearch, outcome: str) -> Exception:
        """Stop the search and count it; the exception its request is answered with."""
        running.cancelled.set()
        # Nobody awaits the thread now; its SearchCancelled is expected, not "never retrieved" noise.
        running.future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.metrics.inc("ttscale_searches_total", running.searches, outcome=outcome)
        if outcome == "timeout":
            return BadRequest(f"the search ran past the server's request_timeout_s={self.serve.request_timeout_s:g} "
                              "and was stopped; ask for less work", status=504, code="timeout")
        if outcome == "shutdown":
            return shutting_down(self.drain.retry_after_s(), "this search was stopped at the end of its grace")
        return SearchCancelled("the client went away; the search was stopped")

    def _search(self, job: SearchJob, cancelled: threading.Event, observer: RoundObserver | None) -> list[ProblemResult]:
        strategy = self.strategies[job.strategy]
        started = time.perf_counter()
        with (self.generator.session(cancelled) as generator, self._verifier_session() as verifier,
              observe_rounds(observer)):
            results = strategy.search(list(job.problems), list(job.prompts), generator, verifier, job.settings)
        log.debug("%s: %s searched in %.3f s", job.problems[0].id, job.strategy, time.perf_counter() - started)
        return results

    @contextmanager
    def _verifier_session(self) -> Iterator[Verifier | None]:
        if self.verifier is None:
            yield None
            return
        with self.verifier.session() as v:
            yield v

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.generator.close()
        if self.verifier is not None:
            self.verifier.close()
        for part in self._built:
            release(part)
