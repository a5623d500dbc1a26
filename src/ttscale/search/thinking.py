"""Budget forcing of a reasoning model's thinking block (s1, Muennighoff et al. 2025; docs/ALGORITHMS.md).

Only stop strings and appended text, so it runs the same on every backend: while a solution
thinks, its end marker is one of the stop strings. A close before `min_tokens` is undone and
`continue_text` ("Wait") appended; at `max_tokens` the end marker and an answer cue are written
for the model. s1 suppresses the end-of-thinking token instead; stopping on it and cutting it
off gives the same text, and an OpenAI-compatible server offers no logit suppression.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ttscale.config import ThinkingConfig


@dataclass(frozen=True)
class ThinkState:
    """Where a solution stands in its thinking block.

    `answer_at`: offset in the solution text where the answer starts (after the end marker);
    None while it still thinks. `continues`: how many times `continue_text` was appended.
    """

    tokens: int = 0
    answer_at: int | None = None
    continues: int = 0

    @property
    def closed(self) -> bool:
        return self.answer_at is not None


def thinks(t: ThinkingConfig) -> bool:
    """Does this run have a thinking block? (markers resolved by data/prompts.py; "" = no thinking)"""
    return t.end not in ("", "auto")


def initial_state(t: ThinkingConfig, prompt: str) -> ThinkState | None:
    """None when the run has no thinking; closed from the start when the prompt already closed it
    (Qwen3's template with enable_thinking=false writes an empty <think></think> block)."""
    if not thinks(t):
        return None
    opened = prompt.rfind(t.start) if t.start else -1
    return ThinkState(answer_at=0) if opened >= 0 and t.end in prompt[opened:] else ThinkState()


def token_cap(t: ThinkingConfig, state: ThinkState | None) -> int | None:
    """New tokens a generation may take before the thinking budget is spent (None: no thinking cap)."""
    if state is None or state.closed or t.max_tokens is None:
        return None
    return max(1, t.max_tokens - state.tokens)


@dataclass(frozen=True)
class Forced:
    """A generation after forcing: its text, the thinking state, and whether text was written for the model
    (`injected`): what was appended starts the solution's next piece."""

    text: str
    state: ThinkState | None
    injected: str = ""


def force(t: ThinkingConfig, state: ThinkState | None, offset: int, text: str, n_tokens: int, ended: bool) -> Forced:
    """Apply the budget to one generation made at solution offset `offset`.

    `ended`: the model stopped on its own (EOS or a format end marker) rather than on a stop
    string or a cap. A stop on the end marker before `min_tokens`, or an EOS there, becomes
    continue_text; reaching `max_tokens` unclosed writes the end marker and the answer cue.
    """
    if state is None or state.closed:
        return Forced(text, state)
    state = replace(state, tokens=state.tokens + n_tokens)
    tried_to_close = text.endswith(t.end) or ended
    if tried_to_close and state.tokens < t.min_tokens:
        body = text.removesuffix(t.end)
        return Forced(body + t.continue_text, replace(state, continues=state.continues + 1), t.continue_text)
    if text.endswith(t.end):
        return Forced(text, replace(state, answer_at=offset + len(text)))
    if t.max_tokens is not None and state.tokens >= t.max_tokens and not ended:
        closed = text + t.end
        return Forced(closed + t.answer_cue, replace(state, answer_at=offset + len(closed)), t.end + t.answer_cue)
    return Forced(text, state)


def answer_part(text: str, state: ThinkState | None) -> str | None:
    """What is graded: the text after the thinking block; None when thinking never closed."""
    if state is None:
        return text
    return None if state.answer_at is None else text[state.answer_at :]


def answer_part_of(t: ThinkingConfig, prompt: str, text: str) -> str | None:
    """answer_part for a text generated whole from `prompt`, with no state tracked along the way
    (a Monte Carlo rollout): what follows the first end marker, or the text when nothing thinks."""
    state = initial_state(t, prompt)
    if state is None or state.closed:
        return text
    at = text.find(t.end)
    return None if at < 0 else text[at + len(t.end) :]
