"""The Generator protocol every backend implements, and the backend registry."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from ttscale.config import ModelConfig
from ttscale.registry import Registry
from ttscale.types import Generation, SamplingParams


@runtime_checkable
class Generator(Protocol):
    """Samples continuations. `generate` takes one SamplingParams per prompt (vLLM's habit) and
    returns, per prompt, `params[i].n` generations.

    Seeds follow vLLM: a request with seed s samples its child k from a stream seeded s + k,
    so the same prompt with the same seed gives the same sample whatever else is in the call,
    and a sample depends on nothing but its own request: a run is the same batched by 1 or 64,
    sharded or served. A generation's text keeps the stop string it ended on, so a strategy can
    tell a finished step ("...\\n\\n") from a truncated one.
    """

    name: str
    n_params: int
    tokenizer: Any

    def generate(self, prompts: Sequence[str], params: Sequence[SamplingParams]) -> list[list[Generation]]: ...

    def count_tokens(self, text: str) -> int: ...


@runtime_checkable
class CancellableGenerator(Protocol):
    """A backend that can stop a call part way. `cancelled[i]` is prompt i's flag (None: it cannot be
    cancelled); once it is set, that prompt's samples stop at the backend's next decode step and come back
    cut where they stopped (finish_reason "length", unless they had ended before), while the other
    prompts of the call run on. A server cancels a request past its deadline, or whose client has gone,
    this way instead of waiting out a call that may be the whole search (best-of-N is one call)."""

    def generate_cancellable(
        self, prompts: Sequence[str], params: Sequence[SamplingParams], cancelled: Sequence[threading.Event | None]
    ) -> list[list[Generation]]: ...


GENERATORS: Registry[Generator] = Registry("backend")
GENERATORS.register("hf", "ttscale.backends.hf:HFGenerator")
GENERATORS.register("fake", "ttscale.backends.fake:FakeGenerator")
GENERATORS.register("vllm", "ttscale.backends.vllm:VLLMGenerator")
GENERATORS.register("openai", "ttscale.backends.openai_http:OpenAIGenerator")


def build_generator(cfg: ModelConfig) -> Generator:
    return GENERATORS.get(cfg.backend)(cfg)


def cancelled_generation(prompt_tokens: int) -> Generation:
    """A sample of a cancelled prompt that a backend stopped before it began (CancellableGenerator)."""
    return Generation(text="", n_tokens=0, finish_reason="length", prompt_tokens=prompt_tokens)


def child_seeds(params: SamplingParams) -> list[int | None]:
    """The seed of each of a request's n samples, as vLLM derives them (parallel_sampling.py: seed + index)."""
    return [None if params.seed is None else params.seed + k for k in range(params.n)]


def same_params(params: Sequence[SamplingParams], *ignored: str) -> dict[SamplingParams, list[int]]:
    """Prompt indices grouped by their params less the seed (and the `ignored` fields): what one call can share."""
    groups: dict[SamplingParams, list[int]] = {}
    blank: dict[str, Any] = {name: None for name in ("seed", *ignored)}
    for i, p in enumerate(params):
        groups.setdefault(dataclasses.replace(p, **blank), []).append(i)
    return groups


def truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut `text` right after the earliest stop string; (text, whether a stop string was found)."""
    best = -1
    for s in stop:
        i = text.find(s)
        if i >= 0 and (best < 0 or i + len(s) < best):
            best = i + len(s)
    return (text[:best], True) if best >= 0 else (text, False)
