"""The batching generator: concurrent searches share backend calls, and each gets its own results back."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from ttscale.errors import GenerationError
from ttscale.server.batching import BatchingGenerator, SearchCancelled
from ttscale.types import Generation, SamplingParams


class Echo:
    """Answers each prompt with itself and the sample index; records every call."""

    name, n_params, tokenizer = "echo", 0, None

    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls: list[tuple[list[str], list[SamplingParams]]] = []
        self.delay_s = delay_s

    def count_tokens(self, text: str) -> int:
        return len(text)

    def generate(self, prompts: Sequence[str], params: Sequence[SamplingParams]) -> list[list[Generation]]:
        self.calls.append((list(prompts), list(params)))
        if any("bad" in p for p in prompts):
            raise GenerationError("bad prompt")
        time.sleep(self.delay_s)
        return [[Generation(f"{p}#{i}", q.max_new_tokens, "eos") for i in range(q.n)] for p, q in zip(prompts, params)]


def _concurrently(batcher: BatchingGenerator, jobs: list[tuple[list[str], SamplingParams]]):
    """Each job (prompts, params) runs in its own thread as one search's generate() call."""
    barrier = threading.Barrier(len(jobs))

    def one(job):
        with batcher.session() as gen:
            barrier.wait()
            try:
                prompts, params = job
                return gen.generate(prompts, [params] * len(prompts))
            except GenerationError as e:
                return e

    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(one, jobs))


def test_concurrent_calls_share_a_backend_call_and_get_their_own_results():
    inner = Echo(delay_s=0.01)
    batcher = BatchingGenerator(inner, window_s=0.2)
    jobs = [([f"p{i}-{j}" for j in range(i % 3 + 1)], SamplingParams(n=2, seed=i)) for i in range(16)]
    out = _concurrently(batcher, jobs)
    for (prompts, _), gens in zip(jobs, out):
        assert [[g.text for g in row] for row in gens] == [[f"{p}#0", f"{p}#1"] for p in prompts]
    assert len(inner.calls) < 16 and batcher.requests == 16
    assert sum(len(p) for p, _ in inner.calls) == sum(len(p) for p, _ in jobs)
    batcher.close()


def test_calls_with_different_sampling_params_share_a_call_and_keep_their_own_params():
    inner = Echo()
    batcher = BatchingGenerator(inner, window_s=0.2)
    jobs = [(["a"], SamplingParams(max_new_tokens=8, seed=1)), (["b"], SamplingParams(max_new_tokens=16, seed=2))] * 3
    out = _concurrently(batcher, jobs)
    assert [(g[0][0].text, g[0][0].n_tokens) for g in out] == [("a#0", 8), ("b#0", 16)] * 3
    assert len(inner.calls) < 6
    # each prompt reaches the backend with its own params, seed included, so merging requests changes no sample
    for prompts, params in inner.calls:
        for p, q in zip(prompts, params):
            assert (q.max_new_tokens, q.seed) == ((8, 1) if p == "a" else (16, 2))
    batcher.close()


def test_a_failing_request_fails_alone():
    batcher = BatchingGenerator(Echo(), window_s=0.2)
    jobs = [(["good1"], SamplingParams()), (["bad"], SamplingParams()), (["good2"], SamplingParams())]
    out = _concurrently(batcher, jobs)
    assert out[0][0][0].text == "good1#0" and out[2][0][0].text == "good2#0"
    assert isinstance(out[1], GenerationError)
    batcher.close()


def test_a_cancelled_search_stops_before_its_next_backend_call():
    inner = Echo()
    batcher = BatchingGenerator(inner)
    cancelled = threading.Event()
    with batcher.session(cancelled) as gen:
        assert gen.generate(["x"], [SamplingParams()])[0][0].text == "x#0"
        cancelled.set()
        with pytest.raises(SearchCancelled):
            gen.generate(["y"], [SamplingParams()])
    assert [p for p, _ in inner.calls] == [["x"]]
    batcher.close()


def test_a_lone_search_does_not_wait_for_the_window():
    batcher = BatchingGenerator(Echo(), window_s=5.0)
    started = time.perf_counter()
    with batcher.session() as gen:
        for _ in range(5):
            gen.generate(["x"], [SamplingParams()])
    assert time.perf_counter() - started < 2.0
    batcher.close()

