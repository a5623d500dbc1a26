"""The batching generator: concurrent searches share backend calls, and each gets its own results back."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from ttscale.backends.batching import BatchingGenerator, SearchCancelled
from ttscale.errors import GenerationError
from ttscale.types import Generation, SamplingParams


class Echo:
    """Answers each prompt with itself and the sample index; records every call."""

    name, n_params, tokenizer = "echo", 0, None

    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls: list[tuple[list[str], SamplingParams]] = []
        self.delay_s = delay_s

    def count_tokens(self, text: str) -> int:
        return len(text)

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[list[Generation]]:
        self.calls.append((list(prompts), params))
        if any("bad" in p for p in prompts):
            raise GenerationError("bad prompt")
        time.sleep(self.delay_s)
        return [[Generation(f"{p}#{i}", 1, "eos") for i in range(params.n)] for p in prompts]


def _concurrently(batcher: BatchingGenerator, jobs: list[tuple[list[str], SamplingParams]]):
    barrier = threading.Barrier(len(jobs))

    def one(job):
        with batcher.session() as gen:
            barrier.wait()
            try:
                return gen.generate(*job)
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


def test_calls_with_different_sampling_params_are_not_merged():
    inner = Echo()
    batcher = BatchingGenerator(inner, window_s=0.2)
    jobs = [(["a"], SamplingParams(max_new_tokens=8)), (["b"], SamplingParams(max_new_tokens=16))] * 3
    out = _concurrently(batcher, jobs)
    assert [g[0][0].text for g in out] == ["a#0", "b#0"] * 3
    for prompts, params in inner.calls:
        assert {p for p in prompts} <= ({"a"} if params.max_new_tokens == 8 else {"b"})
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
        assert gen.generate(["x"], SamplingParams())[0][0].text == "x#0"
        cancelled.set()
        with pytest.raises(SearchCancelled):
            gen.generate(["y"], SamplingParams())
    assert [p for p, _ in inner.calls] == [["x"]]
    batcher.close()


def test_a_lone_search_does_not_wait_for_the_window():
    batcher = BatchingGenerator(Echo(), window_s=5.0)
    started = time.perf_counter()
    with batcher.session() as gen:
        for _ in range(5):
            gen.generate(["x"], SamplingParams())
    assert time.perf_counter() - started < 2.0
    batcher.close()

