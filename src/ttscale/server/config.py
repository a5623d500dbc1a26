"""Server-side settings of `ttscale serve` and `ttscale serve-verifier`: the maxima every request is held to,
and batching."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ttscale.errors import ConfigError

# Kubernetes sends SIGKILL 30 s after SIGTERM (terminationGracePeriodSeconds' default): the grace, the
# stopped requests' answers and uvicorn's close fit inside it.
SHUTDOWN_GRACE_S = 20.0
SHUTDOWN_GRACE_HELP = ("on SIGTERM: new requests get HTTP 503 at once; those in flight get this long to finish, "
                       "then are stopped (HTTP 503); then the server exits 0")


def _check(cond: bool, name: str, value: Any, accepted: str) -> None:
    if not cond:
        raise ConfigError(f"serve.{name}={value!r} is invalid; accepted: {accepted}")


@dataclass
class ServeConfig:
    """What one request may ask for, and how the shared engine batches."""

    api_key_env: str | None = field(default=None, metadata={"help": "env var holding the API key (none = no key)"})
    served_model_name: str | None = field(default=None, metadata={"help": "model id in replies (model.name_or_path)"})
    max_n: int = field(default=64, metadata={"help": "largest ttscale.n (samples / beams / particles)"})
    max_beam_width: int = field(default=16, metadata={"help": "largest ttscale.beam_width"})
    max_iterations: int = field(default=100, metadata={"help": "largest ttscale.max_iterations"})
    max_lookahead: int = field(default=4, metadata={"help": "largest ttscale.lookahead"})
    max_tokens: int = field(default=4096, metadata={"help": "largest max_tokens (a whole solution)"})
    max_choices: int = field(default=8, metadata={"help": "largest top-level n (independent searches)"})
    max_prompts: int = field(default=16, metadata={"help": "most prompts in one /v1/completions request"})
    max_body_bytes: int = field(default=1 << 20, metadata={"help": "request bodies over this get HTTP 413"})
    max_concurrent_searches: int = field(default=64, metadata={"help": "searches running at once (threads)"})
    max_pending: int = field(default=1024, metadata={"help": "running + queued searches before HTTP 503"})
    # Each limit above alone would let 16 prompts x 8 choices x 64 samples x 4096 tokens (~33M tokens)
    # into one 2 KB request: the products are bounded too.
    max_request_tokens: int = field(default=1 << 20, metadata={
        "help": "most tokens one request may generate: prompts x choices x n x max_tokens "
                "(per search at most search.max_tokens_per_problem when the recipe sets it)"})
    max_request_steps: int = field(default=1 << 16, metadata={
        "help": "most step expansions one request may ask for: prompts x choices x the strategy's most per search "
                "(beam search: n x max_iterations x (1 + lookahead))"})
    request_timeout_s: float = field(default=600.0, metadata={"help": "a search still running after this gets HTTP 504"})
    shutdown_grace_s: float = field(default=SHUTDOWN_GRACE_S, metadata={"help": SHUTDOWN_GRACE_HELP})
    batch_window_ms: float = field(default=5.0, metadata={"help": "wait for other searches' calls to batch"})
    max_batch_prompts: int = field(default=1024, metadata={"help": "prompts in one merged backend call"})

    def __post_init__(self) -> None:
        for name in (
            "max_n", "max_beam_width", "max_iterations", "max_tokens", "max_choices", "max_prompts",
            "max_body_bytes", "max_concurrent_searches", "max_pending", "max_batch_prompts",
            "max_request_tokens", "max_request_steps",
        ):
            value = getattr(self, name)
            _check(isinstance(value, int) and value >= 1, name, value, "an integer >= 1")
        _check(self.max_lookahead >= 0, "max_lookahead", self.max_lookahead, ">= 0")
        _check(math.isfinite(self.batch_window_ms) and self.batch_window_ms >= 0, "batch_window_ms",
               self.batch_window_ms, "a finite number >= 0")
        _check(math.isfinite(self.request_timeout_s) and self.request_timeout_s > 0, "request_timeout_s",
               self.request_timeout_s, "a finite number of seconds > 0")
        _check(math.isfinite(self.shutdown_grace_s) and self.shutdown_grace_s >= 0, "shutdown_grace_s",
               self.shutdown_grace_s, "a finite number of seconds >= 0")


@dataclass
class VerifierServeConfig:
    """`ttscale serve-verifier`: what one scoring request may hold, and how concurrent ones are batched."""

    api_key_env: str | None = field(default=None, metadata={"help": "env var holding the API key (none = no key)"})
    served_model_name: str | None = field(default=None, metadata={"help": "model id in replies (verifier.model or name)"})
    max_items: int = field(default=256, metadata={"help": "most (problem, steps) items in one request"})
    max_steps: int = field(default=256, metadata={"help": "most steps in one item"})
    max_body_bytes: int = field(default=8 << 20, metadata={"help": "request bodies over this get HTTP 413"})
    max_pending: int = field(default=8192, metadata={"help": "items scoring or queued before HTTP 503"})
    request_timeout_s: float = field(default=600.0, metadata={"help": "a request still scoring after this gets HTTP 504"})
    shutdown_grace_s: float = field(default=SHUTDOWN_GRACE_S, metadata={"help": SHUTDOWN_GRACE_HELP})
    batch_window_ms: float = field(default=5.0, metadata={"help": "wait for other requests' items to batch"})
    max_batch_items: int = field(default=1024, metadata={"help": "items in one merged verifier call"})

    def __post_init__(self) -> None:
        for name in ("max_items", "max_steps", "max_body_bytes", "max_pending", "max_batch_items"):
            value = getattr(self, name)
            _check(isinstance(value, int) and value >= 1, name, value, "an integer >= 1")
        _check(math.isfinite(self.batch_window_ms) and self.batch_window_ms >= 0, "batch_window_ms",
               self.batch_window_ms, "a finite number >= 0")
        _check(math.isfinite(self.request_timeout_s) and self.request_timeout_s > 0, "request_timeout_s",
               self.request_timeout_s, "a finite number of seconds > 0")
        _check(math.isfinite(self.shutdown_grace_s) and self.shutdown_grace_s >= 0, "shutdown_grace_s",
               self.shutdown_grace_s, "a finite number of seconds >= 0")
