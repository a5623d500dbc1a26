"""JSON over HTTP with the retry policy every remote part of ttscale follows.

A request is retried with exponential backoff (jitter; a server's Retry-After honoured up
to 30 s) on 429, 5xx, timeouts and refused connections, which a busy or restarting server
answers; any other 4xx is raised at once as one line naming the URL, the status and the
server's own message, since retrying cannot fix it. The error type is the caller's, so a
policy server's failure reads as a GenerationError and a verifier server's as a
VerifierError. Top-level, not under backends/ or verifiers/, so both may use it.
"""

from __future__ import annotations

import logging
import os
import random
import time
from typing import Any

from ttscale.errors import ConfigError, TTScaleError

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


def make_client(setting: str, api_key_env: str | None, max_concurrency: int, timeout_s: float, connect_s: float,
                transport: Any = None) -> Any:
    """An httpx client with the bearer key read from `api_key_env` (named as `setting` when it is not set)
    and up to `max_concurrency` connections kept alive."""
    import httpx

    headers = {}
    if api_key_env:
        key = os.environ.get(api_key_env)
        if not key:
            raise ConfigError(f"{setting}={api_key_env!r} names an environment variable that is not set")
        headers["Authorization"] = f"Bearer {key}"
    limits = httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency)
    return httpx.Client(headers=headers, timeout=httpx.Timeout(timeout_s, connect=connect_s), limits=limits,
                        transport=transport)


def backoff_delay(attempt: int, retry_after: str | None, backoff_s: float) -> float:
    """Seconds to wait before retry `attempt` (1-based)."""
    if retry_after:
        try:
            return min(float(retry_after), 30.0)
        except ValueError:
            pass
    return backoff_s * (2 ** (attempt - 1)) * (0.5 + random.random())


def error_message(r: Any) -> str:
    """The server's own words: OpenAI's {"error": {"message"}}, vLLM's older {"message"}, FastAPI's {"detail"}."""
    try:
        body = r.json()
    except ValueError:
        return r.text[:300]
    if not isinstance(body, dict):
        return str(body)[:300]
    err = body.get("error")
    if isinstance(err, dict):
        return str(err.get("message", err))
    for key in ("message", "detail"):
        if key in body:
            return str(body[key])
    return str(body)[:300]


def request_json(
    client: Any,
    method: str,
    url: str,
    body: dict[str, Any] | None,
    *,
    error: type[TTScaleError],
    max_retries: int,
    backoff_s: float,
) -> dict[str, Any]:
    """The reply's JSON object, after up to `max_retries` retries; `error` on a refusal or when retries run out."""
    import httpx

    last, retry_after = "", None
    for attempt in range(max_retries + 1):
        if attempt:
            time.sleep(backoff_delay(attempt, retry_after, backoff_s))
            retry_after = None
        try:
            r = client.request(method, url, json=body)
        except (httpx.TimeoutException, httpx.TransportError) as e:
            last = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            log.warning("%s %s failed (%s), attempt %d/%d", method, url, last, attempt + 1, max_retries + 1)
            continue
        if r.status_code == 200:
            try:
                reply = r.json()
            except ValueError:
                raise error(f"{method} {url} returned a body that is not JSON: {r.text[:200]!r}") from None
            if not isinstance(reply, dict):
                raise error(f"{method} {url} returned JSON that is not an object: {str(reply)[:200]}")
            return reply
        message = error_message(r)
        if r.status_code not in RETRY_STATUS:
            raise error(f"{method} {url} was refused with HTTP {r.status_code}: {message}")
        last = f"HTTP {r.status_code}: {message}"
        retry_after = r.headers.get("retry-after")
        log.warning("%s %s got %s, attempt %d/%d", method, url, last, attempt + 1, max_retries + 1)
    raise error(f"{method} {url} failed after {max_retries + 1} attempts; last error: {last}")
