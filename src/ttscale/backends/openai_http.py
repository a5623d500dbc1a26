"""A Generator over any server speaking the OpenAI completions API (issue 8).

vLLM (`vllm serve`), SGLang, llama.cpp's server, TGI and `ttscale serve` all work:
one POST /completions per prompt with `n` samples, up to `model.max_concurrency`
in flight, retried with exponential backoff on 429, 5xx, timeouts and refused
connections; any other 4xx is a GenerationError at once (retrying cannot fix it).

Stop strings: OpenAI servers strip the stop string a choice ended on, but a
ttscale Generation keeps it (steps stay delimited). The rule, per choice:
  - finish_reason "length" -> "length", text as sent;
  - finish_reason "stop" and the server says which stop matched (vLLM/SGLang's
    `stop_reason`, a string in the request's stop list) -> re-append it, "stop";
  - `stop_reason` present but not one of our strings (None, or a token id) -> "eos";
  - `stop_reason` absent (servers that don't report it) and stop strings were sent
    -> re-append the first one, "stop": ttscale puts the step delimiter first, so
    a step ends as a step; an EOS at a step boundary then reads as one more step,
    which the next round ends at once;
  - otherwise -> "eos".

Token counts: a choice's own `logprobs.tokens` when present, else the usage's
completion_tokens (exact with n=1; shared among n choices in proportion to their
text length otherwise), else about four characters per token.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ttscale.config import ModelConfig
from ttscale.errors import ConfigError, GenerationError, MissingDependencyError
from ttscale.types import FinishReason, Generation, SamplingParams

log = logging.getLogger(__name__)

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class OpenAIGenerator:
    name = "openai"
    tokenizer = None

    def __init__(
        self,
        cfg: ModelConfig,
        n_params: int = 0,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        timeout_s: float = 600.0,
        transport: Any = None,
    ) -> None:
        try:
            import httpx
        except ImportError:
            raise MissingDependencyError("httpx", "openai", "model.backend=openai") from None
        if not cfg.base_url:
            raise ConfigError("model.base_url is required for model.backend=openai, e.g. http://127.0.0.1:8000/v1")
        headers = {}
        if cfg.api_key_env:
            key = os.environ.get(cfg.api_key_env)
            if not key:
                raise ConfigError(f"model.api_key_env={cfg.api_key_env!r} names an environment variable that is not set")
            headers["Authorization"] = f"Bearer {key}"
        self.base_url = cfg.base_url.rstrip("/")
        self.model = cfg.name_or_path
        self.n_params = n_params
        self.max_retries, self.backoff_s = max_retries, backoff_s
        limits = httpx.Limits(max_connections=cfg.max_concurrency, max_keepalive_connections=cfg.max_concurrency)
        self._client = httpx.Client(
            headers=headers, timeout=httpx.Timeout(timeout_s, connect=10.0), limits=limits, transport=transport
        )
        self._pool = ThreadPoolExecutor(cfg.max_concurrency, thread_name_prefix="ttscale-openai")

    def count_tokens(self, text: str) -> int:
        # No local tokenizer: OpenAI's rule of thumb, ~4 characters per token.
        return max(1, round(len(text) / 4)) if text else 0

    def generate(self, prompts: Sequence[str], params: Sequence[SamplingParams]) -> list[list[Generation]]:
        # Each request carries its own seed (a vLLM server samples child k from seed + k), so a
        # sample never depends on which other prompts this call happened to hold (issue 15).
        return list(self._pool.map(self._complete, prompts, params))

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self._client.close()

    # -- one request ---------------------------------------------------------------
    def _body(self, prompt: str, params: SamplingParams) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": prompt,
            "n": params.n,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        if params.logprobs:
            body["logprobs"] = params.logprobs
        return body

    def _complete(self, prompt: str, params: SamplingParams) -> list[Generation]:
        reply = self._post("/completions", self._body(prompt, params))
        choices = sorted(reply.get("choices") or [], key=lambda c: c.get("index", 0))
        if len(choices) != params.n:
            raise GenerationError(
                f"{self.base_url}/completions returned {len(choices)} choices for n={params.n}; "
                "the server may not support n > 1"
            )
        usage = reply.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or self.count_tokens(prompt))
        texts = [c.get("text") or "" for c in choices]
        counts = self._token_counts(choices, texts, usage.get("completion_tokens"))
        out = []
        for choice, text, n_tokens in zip(choices, texts, counts):
            text, reason = restore_stop(text, choice, params.stop)
            # An estimated count (no per-choice tokens) is bounded by what the server was allowed: a choice
            # that ran out of tokens took exactly max_tokens (a thinking budget reads this, issue 21).
            n_tokens = params.max_new_tokens if reason == "length" else min(n_tokens, params.max_new_tokens)
            sampled, top = choice_logprobs(choice, params.logprobs) if params.logprobs else ((), ())
            out.append(Generation(text=text, n_tokens=n_tokens, finish_reason=reason, prompt_tokens=prompt_tokens,
                                  logprobs=sampled, top_logprobs=top))
        return out

    def _token_counts(self, choices: list[dict[str, Any]], texts: list[str], total: int | None) -> list[int]:
        own = [((c.get("logprobs") or {}).get("tokens")) for c in choices]
        if all(t is not None for t in own):
            return [len(t) for t in own]
        if total is None:
            return [self.count_tokens(t) for t in texts]
        if len(texts) == 1:
            return [int(total)]
        sizes = [len(t) + 1 for t in texts]
        shares = [int(total) * s // sum(sizes) for s in sizes]
        shares[0] += int(total) - sum(shares)  # the shares add up to what the server charged
        return shares

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        import httpx

        url = f"{self.base_url}{path}"
        last, retry_after = "", None
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self._delay(attempt, retry_after))
                retry_after = None
            try:
                r = self._client.post(url, json=body)
            except (httpx.TimeoutException, httpx.TransportError) as e:
                last = f"{type(e).__name__}: {e}"
                log.warning("POST %s failed (%s), attempt %d/%d", url, last, attempt + 1, self.max_retries + 1)
                continue
            if r.status_code == 200:
                try:
                    return r.json()
                except ValueError:
                    raise GenerationError(f"POST {url} returned a body that is not JSON: {r.text[:200]!r}") from None
            message = _error_message(r)
            if r.status_code not in RETRY_STATUS:
                raise GenerationError(f"POST {url} was refused with HTTP {r.status_code}: {message}")
            last = f"HTTP {r.status_code}: {message}"
            retry_after = r.headers.get("retry-after")
            log.warning("POST %s got %s, attempt %d/%d", url, last, attempt + 1, self.max_retries + 1)
        raise GenerationError(f"POST {url} failed after {self.max_retries + 1} attempts; last error: {last}")

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        """Exponential backoff with jitter; a server's Retry-After (seconds) is honoured up to 30 s."""
        if retry_after:
            try:
                return min(float(retry_after), 30.0)
            except ValueError:
                pass
        return self.backoff_s * (2 ** (attempt - 1)) * (0.5 + random.random())


def restore_stop(text: str, choice: dict[str, Any], stop: Sequence[str]) -> tuple[str, FinishReason]:
    """(text with the stop string it ended on, finish reason); the rule is in the module docstring."""
    reason = choice.get("finish_reason")
    if reason == "length":
        return text, "length"
    if reason != "stop" or not stop:
        return text, "eos"
    if "stop_reason" in choice:
        matched = choice["stop_reason"]
        if isinstance(matched, str) and matched in stop:
            return text + matched, "stop"
        return text, "eos"
    return text + stop[0], "stop"


def choice_logprobs(choice: dict[str, Any], k: int) -> tuple[tuple[float, ...], tuple[tuple[float, ...], ...]]:
    """A choice's `logprobs` (token_logprobs, top_logprobs: [{token: logprob}]) -> (sampled, top-k descending).

    vLLM's server adds the sampled token to a position's dict when it ranked below the top k,
    so the row keeps the k largest; a server that sends no logprobs gives empty rows.
    """
    lp = choice.get("logprobs") or {}
    sampled = tuple(float(x) for x in lp.get("token_logprobs") or () if x is not None)
    top = tuple(tuple(sorted((float(v) for v in (d or {}).values()), reverse=True)[:k])
                for d in lp.get("top_logprobs") or ())
    return sampled, top


def _error_message(r: Any) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text[:300]
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        return str(err.get("message", err))
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])
    return str(body)[:300]
