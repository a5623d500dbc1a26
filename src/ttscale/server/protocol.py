"""The OpenAI-compatible wire format: every request check lives here (validate once, at the edge).

Requests are parsed with `parse(Model, body, bounds)`: malformed JSON, wrong types,
values over the server's maxima and unknown strategies all become one `BadRequest`
naming the field, the value and what is accepted. Past this point the engine trusts
its inputs.

The ttscale extension is one extra request field, `ttscale: {strategy, n, beam_width,
max_iterations, lookahead, selection, return_candidates}`, and one extra reply field,
`ttscale`, with the pick, its score, confidence and budget per choice (and every candidate when
asked). Top-level `n` keeps its OpenAI meaning: n independent choices, here n
independent searches.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from ttscale.errors import closest
from ttscale.grading.select import solution_score
from ttscale.server.config import ServeConfig
from ttscale.types import Budget, Completion, ProblemResult, Selection


@dataclass(frozen=True)
class Bounds:
    """What `parse` checks requests against: the server's maxima and what its engine can run."""

    serve: ServeConfig
    strategies: dict[str, bool]  # name -> needs a verifier
    has_verifier: bool


class BadRequest(Exception):
    """A request the server refuses; `status` is its HTTP status, `param` the field at fault."""

    def __init__(self, message: str, param: str | None = None, status: int = 400, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.message, self.param, self.status, self.code = message, param, status, code


def _bounds(info: ValidationInfo) -> Bounds:
    assert isinstance(info.context, Bounds), "parse() passes the server's Bounds"
    return info.context


def _in_range(value: int | None, low: int, high: int, limit: str) -> int | None:
    if value is not None and not low <= value <= high:
        raise ValueError(f"must be an integer in {low}..{high} (the server's {limit}), got {value}")
    return value


class TTScaleOptions(BaseModel):
    """The per-request search: any field left out takes the server recipe's value."""

    model_config = ConfigDict(strict=True, extra="forbid")

    strategy: str | None = None
    n: int | None = None
    beam_width: int | None = None
    max_iterations: int | None = None
    lookahead: int | None = None
    selection: Selection | None = None
    return_candidates: bool = False

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, v: str | None, info: ValidationInfo) -> str | None:
        b = _bounds(info)
        if v is None:
            return v
        if v not in b.strategies:
            raise ValueError(f"unknown strategy {v!r}{closest(v, b.strategies)}; accepted: {', '.join(sorted(b.strategies))}")
        if b.strategies[v] and not b.has_verifier:
            usable = sorted(s for s, needs in b.strategies.items() if not needs)
            raise ValueError(f"strategy {v!r} needs a verifier and this server has none; accepted: {', '.join(usable)}")
        return v

    @field_validator("n")
    @classmethod
    def _n(cls, v: int | None, info: ValidationInfo) -> int | None:
        return _in_range(v, 1, _bounds(info).serve.max_n, "max_n")

    @field_validator("beam_width")
    @classmethod
    def _beam_width(cls, v: int | None, info: ValidationInfo) -> int | None:
        return _in_range(v, 1, _bounds(info).serve.max_beam_width, "max_beam_width")

    @field_validator("max_iterations")
    @classmethod
    def _max_iterations(cls, v: int | None, info: ValidationInfo) -> int | None:
        return _in_range(v, 1, _bounds(info).serve.max_iterations, "max_iterations")

    @field_validator("lookahead")
    @classmethod
    def _lookahead(cls, v: int | None, info: ValidationInfo) -> int | None:
        return _in_range(v, 0, _bounds(info).serve.max_lookahead, "max_lookahead")


class SearchRequest(BaseModel):
    """Fields both endpoints share; unknown OpenAI fields (user, metadata, ...) are ignored."""

    model_config = ConfigDict(strict=True, extra="ignore")

    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: int = 1
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    ttscale: TTScaleOptions = Field(default_factory=TTScaleOptions)

    @field_validator("max_tokens")
    @classmethod
    def _max_tokens(cls, v: int | None, info: ValidationInfo) -> int | None:
        return _in_range(v, 1, _bounds(info).serve.max_tokens, "max_tokens")

    @field_validator("n")
    @classmethod
    def _n(cls, v: int, info: ValidationInfo) -> int:
        _in_range(v, 1, _bounds(info).serve.max_choices, "max_choices")
        return v

    @field_validator("temperature")
    @classmethod
    def _temperature(cls, v: float | None) -> float | None:
        if v is not None and not 0 <= v <= 2:
            raise ValueError(f"must be a number in [0, 2], got {v}")
        return v

    @field_validator("top_p")
    @classmethod
    def _top_p(cls, v: float | None) -> float | None:
        if v is not None and not 0 < v <= 1:
            raise ValueError(f"must be a number in (0, 1], got {v}")
        return v

    @field_validator("stop")
    @classmethod
    def _stop(cls, v: str | list[str] | None) -> str | list[str] | None:
        stops = [v] if isinstance(v, str) else (v or [])
        if len(stops) > 4 or any(s == "" for s in stops):
            raise ValueError(f"must be up to 4 non-empty strings, got {v!r}")
        return v

    @field_validator("stream")
    @classmethod
    def _stream(cls, v: bool) -> bool:
        if v:
            raise ValueError("streaming is not supported: a search picks its reply only once every candidate is done")
        return v

    @property
    def stops(self) -> tuple[str, ...]:
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())

    @property
    def token_cap(self) -> int | None:
        return self.max_tokens


class TextPart(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart] | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


class ChatCompletionRequest(SearchRequest):
    """POST /v1/chat/completions. The last user message is the problem; the recipe's prompt renders it."""

    messages: list[ChatMessage]
    max_completion_tokens: int | None = None
    # Refused until supported (issue 18): ignoring them answered a question the client did not ask.
    logprobs: Any = None
    top_logprobs: Any = None
    tools: Any = None
    tool_choice: Any = None
    functions: Any = None
    function_call: Any = None
    response_format: Any = None

    @field_validator("logprobs", "top_logprobs", "tools", "tool_choice", "functions", "function_call",
                     "response_format")
    @classmethod
    def _unsupported(cls, v: Any) -> Any:
        if v not in (None, False, [], {"type": "text"}):
            raise ValueError(f"is not supported by a search server, got {_short(v)}")
        return v

    @field_validator("messages")
    @classmethod
    def _messages(cls, v: list[ChatMessage]) -> list[ChatMessage]:
        if not any(m.role == "user" and m.text.strip() for m in v):
            raise ValueError("needs at least one user message with text (the problem to solve)")
        return v

    @field_validator("max_completion_tokens")
    @classmethod
    def _max_completion_tokens(cls, v: int | None, info: ValidationInfo) -> int | None:
        return _in_range(v, 1, _bounds(info).serve.max_tokens, "max_tokens")

    @property
    def question(self) -> str:
        return next(m.text for m in reversed(self.messages) if m.role == "user" and m.text.strip())

    @property
    def token_cap(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


class CompletionRequest(SearchRequest):
    """POST /v1/completions. Each prompt is used as-is as a search prompt; `best_of` means ttscale.n."""

    prompt: str | list[str]
    best_of: int | None = None
    echo: bool = False
    logprobs: int | None = None
    suffix: str | None = None

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, v: str | list[str], info: ValidationInfo) -> str | list[str]:
        if isinstance(v, list) and not 1 <= len(v) <= _bounds(info).serve.max_prompts:
            raise ValueError(f"must hold 1..{_bounds(info).serve.max_prompts} prompts (the server's max_prompts), got {len(v)}")
        return v

    @field_validator("best_of")
    @classmethod
    def _best_of(cls, v: int | None, info: ValidationInfo) -> int | None:
        return _in_range(v, 1, _bounds(info).serve.max_n, "max_n")

    @field_validator("echo", "logprobs", "suffix")
    @classmethod
    def _unsupported(cls, v: Any, info: ValidationInfo) -> Any:
        if v not in (None, False):
            raise ValueError(f"is not supported by a search server, got {v!r}")
        return v

    @property
    def prompts(self) -> tuple[str, ...]:
        return (self.prompt,) if isinstance(self.prompt, str) else tuple(self.prompt)


_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none"}


def _field_path(loc: Sequence[int | str]) -> str:
    """'ttscale.n' or 'messages[0].role'; pydantic's union-member tags ('list[str]') are dropped."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in _TYPE_TAGS and "[" not in part and "(" not in part:
            out += f".{part}" if out else part
    return out


def parse(model: type[SearchRequest], body: bytes, bounds: Bounds) -> Any:
    """The validated request, or BadRequest naming every bad field."""
    try:
        return model.model_validate_json(body, context=bounds)
    except ValidationError as e:
        errors = e.errors(include_url=False)
        if errors and errors[0]["type"] == "json_invalid":
            raise BadRequest(f"the request body is not valid JSON: {errors[0]['msg'].removeprefix('Invalid JSON: ')}")
        parts = []
        for err in errors:
            field = _field_path(err["loc"]) or "body"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] not in ("value_error", "missing") and "input" in err:
                msg += f", got {_short(err['input'])}"
            parts.append(f"{field}: {msg}")
        first = _field_path(errors[0]["loc"]) if errors else None
        raise BadRequest("; ".join(dict.fromkeys(parts)), param=first or None) from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# -- replies -------------------------------------------------------------------------
def error_body(message: str, type_: str = "invalid_request_error", param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _finish_reason(c: Completion | None) -> str:
    return "length" if c is not None and (c.finish_reason == "length" or not c.finished) else "stop"


def _candidate(c: Completion, reduction: str) -> dict[str, Any]:
    return {
        "text": c.text,
        "answer": c.answer,
        "score": solution_score(c, reduction) if c.step_scores is not None else None,
        "step_scores": list(c.step_scores) if c.step_scores is not None else None,
        "n_tokens": c.n_tokens,
        "finish_reason": c.finish_reason,
        "confidence": c.confidence.to_dict() if c.confidence is not None else None,
        "dropped": c.dropped,
    }


def _search_summary(r: ProblemResult, reduction: str, with_candidates: bool) -> dict[str, Any]:
    picked = r.completions[r.selected] if r.selected is not None else None
    summary: dict[str, Any] = {
        "strategy": r.strategy,
        "selected": r.selected,
        "answer": picked.answer if picked else None,
        "score": solution_score(picked, reduction) if picked and picked.step_scores is not None else None,
        "budget": r.budget.to_dict(),
        # issue 20: the pick's token confidence (sampling.logprobs > 0, or deepconf), else None
        "confidence": picked.confidence.to_dict() if picked and picked.confidence is not None else None,
    }
    if with_candidates:
        summary["candidates"] = [_candidate(c, reduction) for c in r.completions]
    return summary


def _usage(results: Sequence[ProblemResult]) -> dict[str, int]:
    total = Budget()
    for r in results:
        total.add(r.budget)
    return {
        "prompt_tokens": total.prompt_tokens,
        "completion_tokens": total.generated_tokens,
        "total_tokens": total.prompt_tokens + total.generated_tokens,
        "verifier_tokens": total.verifier_tokens,
    }


def selected_text(r: ProblemResult) -> tuple[str, str]:
    """(the picked solution's text, its OpenAI finish reason); an empty search answers ''."""
    picked = r.completions[r.selected] if r.selected is not None else None
    return (picked.text if picked else ""), _finish_reason(picked)


def chat_reply(
    rid: str, model: str, results: Sequence[ProblemResult], reduction: str, with_candidates: bool
) -> dict[str, Any]:
    choices = []
    for i, r in enumerate(results):
        text, reason = selected_text(r)
        # A chat reply drops the trailing step delimiter; /v1/completions keeps text exact for callers that search.
        message = {"role": "assistant", "content": text.rstrip()}
        choices.append({"index": i, "message": message, "finish_reason": reason, "logprobs": None})
    return {
        "id": rid, "object": "chat.completion", "created": int(time.time()), "model": model, "choices": choices,
        "usage": _usage(results),
        "ttscale": {"results": [_search_summary(r, reduction, with_candidates) for r in results]},
    }


def completion_reply(
    rid: str, model: str, results: Sequence[ProblemResult], reduction: str, with_candidates: bool
) -> dict[str, Any]:
    choices = []
    for i, r in enumerate(results):
        text, reason = selected_text(r)
        choices.append({"index": i, "text": text, "finish_reason": reason, "logprobs": None})
    return {
        "id": rid, "object": "text_completion", "created": int(time.time()), "model": model, "choices": choices,
        "usage": _usage(results),
        "ttscale": {"results": [_search_summary(r, reduction, with_candidates) for r in results]},
    }
