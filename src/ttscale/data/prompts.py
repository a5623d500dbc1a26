"""Problems -> prompt strings: chat mode (system prompt + chat template) or k-shot completion mode.

A partial solution is always appended to the rendered prompt as raw text, never
passed back through the chat template: Llama 3's template trims each turn, which
would eat the trailing step delimiter "\\n\\n" and derail the next step (search-and-learn overrides
the template for this reason: `custom_chat_template` in huggingface/search-and-learn src/sal/config.py).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any

from ttscale.config import PromptConfig, RunConfig, ThinkingConfig
from ttscale.data.synthetic import arithmetic_problem
from ttscale.errors import ConfigError
from ttscale.types import Problem

# Exemplars come from the synthetic world itself, with a seed no dataset uses.
_EXEMPLAR_SEED = 917_263
_EXEMPLAR_LEVELS = (3, 1, 4, 2, 5, 1, 3, 2)


@dataclass(frozen=True)
class PromptFormat:
    """Renders problems for one model; `end_markers` end a whole solution besides EOS."""

    mode: str
    system_prompt: str
    step_delimiter: str
    exemplars: tuple[tuple[str, str], ...] = ()
    tokenizer: Any = None
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    # Resolved markers: start == end == "" when the model does not think (no thinking block to count or force).
    thinking: ThinkingConfig = field(default_factory=lambda: ThinkingConfig(start="", end=""))

    @property
    def end_markers(self) -> tuple[str, ...]:
        """What ends a whole solution besides EOS. In completion mode the exemplars show the format: a
        solution's steps are joined by the step delimiter and a blank line closes it before the next
        "Question:". So, when the delimiter holds no blank line, the first blank line ends the solution,
        as an empty step already ends one in step-wise search (search/drafts.py). Without it a small
        model that has written its answer line runs on into "Step 2: ..." and a second box that the
        grader would read instead (about 14% of SmolLM2-135M's tokens in the main job, 0.86x)."""
        if self.mode != "completion":
            return ()
        return ("\nQuestion:",) if "\n\n" in self.step_delimiter else ("\nQuestion:", "\n\n")

    def render(self, problem: Problem) -> str:
        if self.mode == "completion":
            shots = "".join(f"Question: {q}\nSolution:\n{s}\n\n" for q, s in self.exemplars)
            return f"{shots}Question: {problem.question}\nSolution:\n"
        messages = [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": problem.question},
        ]
        if self.tokenizer is None or not getattr(self.tokenizer, "chat_template", None):
            # Backends without a local tokenizer (fake, some HTTP servers) get a plain transcript.
            return f"System: {self.system_prompt}\n\nUser: {problem.question}\n\nAssistant: "
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, **self.chat_template_kwargs
        )


def exemplars(n_shot: int, step_delimiter: str) -> tuple[tuple[str, str], ...]:
    rng = random.Random(_EXEMPLAR_SEED)
    shots = []
    for i in range(n_shot):
        problem, solution = arithmetic_problem(rng, _EXEMPLAR_LEVELS[i], i)
        shots.append((problem.question, solution.replace("\n", step_delimiter)))
    return tuple(shots)


# s1, DeepSeek-R1 and Qwen3 all write their thinking between these.
THINK_MARKERS = ("<think>", "</think>")


def resolve_thinking(thinking: ThinkingConfig, tokenizer: Any) -> ThinkingConfig:
    """The markers a run uses: given ones, else <think>/</think> when the chat template writes them, else none."""
    if thinking.end != "auto":
        return thinking
    template = getattr(tokenizer, "chat_template", None) or ""
    start, end = THINK_MARKERS if isinstance(template, str) and THINK_MARKERS[1] in template else ("", "")
    if not end and thinking.forced:
        raise ConfigError(
            "sampling.thinking.min_tokens/max_tokens need thinking markers, and this model's chat template has "
            "none; set sampling.thinking.start and sampling.thinking.end (e.g. '<think>' and '</think>')"
        )
    return replace(thinking, start=start, end=end)


def build_prompt_format(
    cfg: PromptConfig, step_delimiter: str, tokenizer: Any = None, thinking: ThinkingConfig | None = None
) -> PromptFormat:
    if cfg.mode == "completion" and step_delimiter.strip() != "":
        raise ConfigError(
            f"search.step_delimiter={step_delimiter!r} cannot separate completion-mode steps; "
            "accepted: whitespace such as '\\n' or '\\n\\n'"
        )
    return PromptFormat(
        mode=cfg.mode,
        system_prompt=cfg.system_prompt,
        step_delimiter=step_delimiter,
        exemplars=exemplars(cfg.n_shot, step_delimiter) if cfg.mode == "completion" else (),
        tokenizer=tokenizer,
        chat_template_kwargs=dict(cfg.chat_template_kwargs),
        thinking=resolve_thinking(thinking or ThinkingConfig(), tokenizer),
    )


def run_prompt_format(cfg: RunConfig, tokenizer: Any) -> PromptFormat:
    """The recipe's prompt format for the policy's tokenizer: what `ttscale run`, `ttscale serve` and
    `ttscale learn label-steps` render problems with, so a served or labelled prompt is a run's prompt."""
    return build_prompt_format(cfg.prompt, cfg.search.step_delimiter, tokenizer, cfg.sampling.thinking)


def encode_prompt(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a rendered prompt with exactly one BOS.

    A chat template already writes BOS; tokenizing its output with special tokens
    on (as vLLM does) would add a second one, which hurts quality (Beeching, Tunstall & Rush 2024 found
    this with Llama 3).
    """
    bos = getattr(tokenizer, "bos_token", None)
    add_special = not (bos and text.startswith(bos))
    return tokenizer(text, add_special_tokens=add_special)["input_ids"]
