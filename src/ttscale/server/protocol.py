"""The OpenAI-compatible wire format: every request check lives here (validate once, at the edge).

Requests are parsed with `parse(Model, body, bounds)`: malformed JSON, wrong types,
values over the server's maxima and unknown strategies all become one `BadRequest`
naming the field, the value and what is accepted. Past this point the engine trusts
its inputs.

The ttscale extension is one extra request field, `ttscale: {strategy, n, beam_width,
max_iterations, lookahead, selection, return_candidates, stream_progress}`, and one extra
reply field, `ttscale` (server/replies.py). Top-level `n` keeps its OpenAI meaning: n
independent choices, here n independent searches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from ttscale.errors import closest
from ttscale.server.config import ServeConfig
from ttscale.types import Selection

if TYPE_CHECKING:
    from ttscale.search.base import Strategy


@dataclass(frozen=True)
class Bounds:
    """What `parse` checks requests against: the server's maxima and what its engine can run."""

    serve: ServeConfig
    strategies: Mapping[str, Strategy]  # the strategies this server can run, by name
    has_verifier: bool


class BadRequest(Exception):
    """A request the server refuses; `status` is its HTTP status, `param` the field at fault, `retry_after_s`
    (a 503's) when a retry may succeed."""

    def __init__(self, message: str, param: str | None = None, status: int = 400, code: str = "invalid_request",
                 retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.message, self.param, self.status, self.code = message, param, status, code
        self.retry_after_s = retry_after_s

    @property
    def kind(self) -> str:
        """OpenAI's error `type` for this status."""
        return {503: "server_busy", 504: "timeout"}.get(self.status, "invalid_request_error")

    @property
    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(self.retry_after_s)} if self.retry_after_s is not None else None


def shutting_down(retry_after_s: int, what: str) -> BadRequest:
    """The 503 of a server that is draining (server/shutdown.py): `what` was refused or stopped."""
    return BadRequest(f"the server is shutting down; {what}; retry in {retry_after_s} s, on this address or "
                      "another replica", status=503, code="server_shutting_down", retry_after_s=retry_after_s)


def _bounds(info: ValidationInfo) -> Bounds:
    assert isinstance(info.context, Bounds), "parse() passes the server's Bounds"
    return info.context


# As vLLM's default max_logprobs and SamplingConfig.logprobs' bound.
MAX_TOP_LOGPROBS = 20


def _named_alternatives(k: int | None) -> int | None:
    """Refuse top-k alternatives: backends record their log-probabilities but not which tokens they are
    (types.Generation.top_logprobs), and OpenAI's shapes name every alternative."""
    if k:
        raise ValueError(f"top {k} alternatives cannot be named: this server's backends record the top-k "
                         "log-probabilities without their tokens; ask 0 for each chosen token's own log-probability")
    return k


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
    # With `stream: true`, each round's leading beam (best-of-N: the vote) streams as reasoning
    # before the answer; false streams the answer alone.
    stream_progress: bool = True

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, v: str | None, info: ValidationInfo) -> str | None:
        b = _bounds(info)
        if v is None:
            return v
        if v not in b.strategies:
            raise ValueError(f"unknown strategy {v!r}{closest(v, b.strategies)}; accepted: {', '.join(sorted(b.strategies))}")
        if b.strategies[v].needs_verifier and not b.has_verifier:
            usable = sorted(name for name, s in b.strategies.items() if not s.needs_verifier)
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


class StreamOptions(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    include_usage: bool = False


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
    stream_options: StreamOptions | None = None
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

    @property
    def stops(self) -> tuple[str, ...]:
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())

    @property
    def token_cap(self) -> int | None:
        return self.max_tokens

    @property
    def include_usage(self) -> bool:
        return self.stream and self.stream_options is not None and self.stream_options.include_usage

    @property
    def top_logprobs_asked(self) -> int | None:
        """None: no log-probabilities asked for; k: each chosen token's own and its top k alternatives."""
        return None


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
    logprobs: bool | None = None
    top_logprobs: int | None = None
    # Refused, not ignored: a reply that ignored them would answer a question the client did not ask.
    tools: Any = None
    tool_choice: Any = None
    functions: Any = None
    function_call: Any = None
    response_format: Any = None

    @field_validator("tools", "tool_choice", "functions", "function_call", "response_format")
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

    @field_validator("top_logprobs")
    @classmethod
    def _top_logprobs(cls, v: int | None, info: ValidationInfo) -> int | None:
        _in_range(v, 0, MAX_TOP_LOGPROBS, "top_logprobs maximum")
        if v and not info.data.get("logprobs"):
            raise ValueError("needs logprobs: true")  # OpenAI's rule
        return _named_alternatives(v)

    @property
    def top_logprobs_asked(self) -> int | None:
        return (self.top_logprobs or 0) if self.logprobs else None

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

    @field_validator("echo", "suffix")
    @classmethod
    def _unsupported(cls, v: Any, info: ValidationInfo) -> Any:
        if v not in (None, False):
            raise ValueError(f"is not supported by a search server, got {v!r}")
        return v

    @field_validator("logprobs")
    @classmethod
    def _logprobs(cls, v: int | None) -> int | None:
        return _named_alternatives(_in_range(v, 0, MAX_TOP_LOGPROBS, "logprobs maximum"))

    @property
    def top_logprobs_asked(self) -> int | None:
        return self.logprobs

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


def parse(model: type[BaseModel], body: bytes, bounds: Any) -> Any:
    """The validated request, or BadRequest naming every bad field; `bounds` is the validators' context."""
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


# -- errors --------------------------------------------------------------------------
def error_body(message: str, type_: str = "invalid_request_error", param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}
