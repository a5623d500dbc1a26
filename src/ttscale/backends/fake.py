"""A deterministic, instant generator for tests and load benchmarks.

It models vLLM's sampling semantics exactly, so a seeding bug shows in tests:
child k of a request seeded s is a pure function of (prompt, s + k); greedy (T = 0) is a
function of the prompt alone; an unseeded request draws from the generator's own stream
(vLLM's engine-level generator), so it differs from call to call. Stop strings are
honoured like a real backend.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Sequence

from ttscale.backends.base import child_seeds, truncate_at_stop
from ttscale.config import ModelConfig
from ttscale.errors import GenerationError
from ttscale.types import FinishReason, Generation, SamplingParams

Script = Callable[[str, random.Random], str]
# (generated word, its index, the k asked for, a random stream) -> that token's top-k logprobs, descending
LogprobScript = Callable[[str, int, int, random.Random], list[float]]


_EXEMPLAR_STEPS = re.compile(r"Solution:\nStep 1:[^\n]*(\n+)Step 2:")


def default_logprobs(word: str, index: int, k: int, rng: random.Random) -> list[float]:
    """A plausible top-k row: the sampled token first with p in [0.3, 1), the rest sharing what is left."""
    p1 = rng.uniform(0.3, 0.999)
    rest = sorted((rng.uniform(1e-4, 1.0) * (1 - p1) / k for _ in range(k - 1)), reverse=True)
    return [math.log(p1)] + [math.log(p) for p in rest]


def default_script(prompt: str, rng: random.Random, delimiter: str | None = None) -> str:
    """A short solution: a few arithmetic steps, then a boxed answer in 1..4, its steps joined as the
    prompt's exemplars join theirs (a model imitating its few-shot format), else by a blank line."""
    if delimiter is None:
        shown = _EXEMPLAR_STEPS.search(prompt)
        delimiter = shown.group(1) if shown else "\n\n"
    done = prompt.count("Step ")
    steps = []
    for k in range(done + 1, done + 6):
        if rng.random() < 0.25 + 0.15 * k:
            break
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        steps.append(f"Step {k}: add them, so {a} + {b} = {a + b if rng.random() < 0.7 else a + b + 1}.")
    steps.append(f"Answer: \\boxed{{{rng.randint(1, 4)}}}")
    return delimiter.join(steps) + "\n\nQuestion: next"


class FakeGenerator:
    name = "fake"
    n_params = 1_000_000
    tokenizer = None

    def __init__(
        self,
        cfg: ModelConfig | None = None,
        script: Script | None = None,
        fail_on: str | None = None,
        logprob_script: LogprobScript | None = None,
    ) -> None:
        self.script = script or default_script
        self.logprob_script = logprob_script or default_logprobs
        self.fail_on = fail_on
        self.calls = 0
        self.prompts_seen = 0
        self._unseeded = random.Random(0)

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def generate(self, prompts: Sequence[str], params: Sequence[SamplingParams]) -> list[list[Generation]]:
        self.calls += 1
        self.prompts_seen += len(prompts)
        out = []
        for prompt, p in zip(prompts, params, strict=True):
            if self.fail_on is not None and self.fail_on in prompt:
                raise GenerationError(f"fake failure on a prompt containing {self.fail_on!r}")
            out.append([self._one(prompt, seed, p) for seed in child_seeds(p)])
        return out

    def _one(self, prompt: str, seed: int | None, params: SamplingParams) -> Generation:
        if params.temperature == 0:
            key = f"greedy|{prompt}"
        else:
            key = f"{seed if seed is not None else self._unseeded.getrandbits(62)}|{prompt}"
        text = self.script(prompt, random.Random(key))  # a str seed is hashed with SHA-512: no collisions
        text, stopped = truncate_at_stop(text, params.stop)
        words = text.split()
        reason: FinishReason = "stop" if stopped else "eos"
        if len(words) > params.max_new_tokens:
            text, reason = " ".join(words[: params.max_new_tokens]), "length"
        n_tokens = min(len(words), params.max_new_tokens)
        top: tuple[tuple[float, ...], ...] = ()
        if params.logprobs:
            rng = random.Random(f"logprobs|{key}")
            top = tuple(tuple(self.logprob_script(w, i, params.logprobs, rng)) for i, w in enumerate(words[:n_tokens]))
        return Generation(
            text=text, n_tokens=n_tokens, finish_reason=reason, prompt_tokens=self.count_tokens(prompt),
            logprobs=tuple(row[0] for row in top), top_logprobs=top,
        )
