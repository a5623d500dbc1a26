"""The Generator protocol every backend implements, and the backend registry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from ttscale.config import ModelConfig
from ttscale.registry import Registry
from ttscale.types import Generation, SamplingParams


@runtime_checkable
class Generator(Protocol):
    """Samples continuations. `generate` returns, per prompt, `params.n` generations.

    A generation's text keeps the stop string it ended on, so a strategy can tell
    a finished step ("...\\n\\n") from a truncated one.
    """

    name: str
    n_params: int
    tokenizer: Any

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[list[Generation]]: ...

    def count_tokens(self, text: str) -> int: ...


GENERATORS: Registry[Generator] = Registry("backend")
GENERATORS.register("hf", "ttscale.backends.hf:HFGenerator")
GENERATORS.register("fake", "ttscale.backends.fake:FakeGenerator")
GENERATORS.register("vllm", "ttscale.backends.vllm:VLLMGenerator")
GENERATORS.register("openai", "ttscale.backends.openai_http:OpenAIGenerator")


def build_generator(cfg: ModelConfig) -> Generator:
    return GENERATORS.get(cfg.backend)(cfg)


def truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut `text` right after the earliest stop string; (text, whether a stop string was found)."""
    best = -1
    for s in stop:
        i = text.find(s)
        if i >= 0 and (best < 0 or i + len(s) < best):
            best = i + len(s)
    return (text[:best], True) if best >= 0 else (text, False)
