"""A verifier on another machine: step scores from a server over HTTP.

At the paper's scale the PRM (8B) and the policy (1B) sit on different GPUs, so the
search reaches its verifier over the network. Two server dialects (`verifier.api`):

- `ttscale`: `ttscale serve-verifier RECIPE` (server/verifier_app.py) serves any
  registered verifier. POST {root}/v1/verify with {"items": [{"problem", "steps"}]}; the
  reply holds each item's step scores and the tokens the remote verifier ran for it.
- `vllm_pooling`: `vllm serve Qwen/Qwen2.5-Math-PRM-7B --runner pooling` (older vLLM:
  `--task reward`). POST {root}/pooling with {"input": [token ids, ...]}, one list per
  item, encoded exactly as the in-process qwen_prm encodes it (chat template, `<extra_0>`
  after every step; verifier.model names the PRM for its tokenizer). vLLM answers one row
  of softmaxed label probabilities per pooled position (vllm/entrypoints/pooling/pooling/
  serving.py, PoolingResponse). Which positions depends on the vLLM version: the STEP
  pooler keeps only rows at the step tag when a `step_tag_id` is configured (the default
  151651 for Qwen2ForProcessRewardModel up to v0.10; `--pooler-config` since), and every
  token's row otherwise (vllm/model_executor/layers/pooler, StepPooler.extract_states).
  Both are read, told apart by one probe at first use (row counts alone can coincide);
  a step's score is column 1 ("positive") of its separator's row. vLLM
  counts a request's usage over all its items, so each item's tokens are counted locally:
  its ids are exactly what vLLM ran.

Items go in requests of `verifier.items_per_request`, up to `verifier.max_concurrency`
in flight; ttscale/http_client.py retries 429, 5xx, timeouts and refused connections.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from ttscale.config import VerifierConfig
from ttscale.errors import ConfigError, MissingDependencyError, VerifierError
from ttscale.http_client import make_client, request_json
from ttscale.types import Problem
from ttscale.verifiers.encoding import Encoded

Scored = tuple[list[float], int]  # one item's step scores and the verifier tokens it cost
_REMEMBERED = 1 << 16  # items whose token counts are kept for count_tokens


class Dialect(Protocol):
    path: str

    def request(self, problems: Sequence[Problem], steps: Sequence[Sequence[str]]) -> tuple[dict[str, Any], Any]:
        """(the request body, what `read` needs to understand the reply)."""
        ...

    def read(self, reply: dict[str, Any], sent: Any) -> list[Scored]: ...

    def prepare(self, request: Callable[[str, str, dict[str, Any] | None], dict[str, Any]]) -> None:
        """Learn what the server does before the first scoring request (once)."""
        ...

    def local_tokens(self, problem: Problem, steps: Sequence[str]) -> int | None: ...


class HTTPVerifier:
    """The Verifier protocol over HTTP; `transport` (an httpx transport) and `tokenizer` are for tests."""

    name = "http"

    def __init__(
        self,
        cfg: VerifierConfig | None = None,
        *,
        tokenizer: Any = None,
        transport: Any = None,
        backoff_s: float = 0.5,
    ) -> None:
        try:
            import httpx  # noqa: F401 - present, or the one-line install hint
        except ImportError:
            raise MissingDependencyError("httpx", "openai", "verifier.name=http") from None
        cfg = cfg or VerifierConfig(name="http")
        if not cfg.base_url:
            raise ConfigError("verifier.base_url is required for verifier.name=http, e.g. http://127.0.0.1:8001")
        self._client = make_client("verifier.api_key_env", cfg.api_key_env, cfg.max_concurrency, cfg.timeout_s,
                                   min(10.0, cfg.timeout_s), transport)
        self.root = cfg.base_url.rstrip("/").removesuffix("/v1")
        self.items_per_request = cfg.items_per_request
        self.max_retries, self.backoff_s = cfg.max_retries, backoff_s
        self._pool = ThreadPoolExecutor(cfg.max_concurrency, thread_name_prefix="ttscale-verifier-http")
        self._tokens: OrderedDict[tuple[str, tuple[str, ...]], int] = OrderedDict()
        self._lock = threading.Lock()
        self._prepared = False
        self.dialect: Dialect
        if cfg.api == "vllm_pooling":
            self.dialect = VLLMPooling(_qwen_encoder(cfg, tokenizer))
            self.n_params = cfg.n_params or 0
        else:
            self.dialect = TTScaleVerify()
            self.n_params = cfg.n_params if cfg.n_params is not None else self._remote_params()

    # -- the Verifier protocol ---------------------------------------------------------
    def score(self, problems: Sequence[Problem], steps: Sequence[Sequence[str]]) -> list[list[float]]:
        results: list[list[float]] = [[] for _ in problems]
        todo = [i for i, s in enumerate(steps) if s]
        chunks = [todo[k : k + self.items_per_request] for k in range(0, len(todo), self.items_per_request)]
        replies = self._pool.map(lambda chunk: self._score_chunk([problems[i] for i in chunk], [steps[i] for i in chunk]),
                                 chunks)
        counts = {}
        for chunk, scored in zip(chunks, replies):
            for i, (scores, tokens) in zip(chunk, scored):
                results[i] = scores
                counts[(problems[i].question, tuple(steps[i]))] = tokens
        self._remember(counts)
        return results

    def count_tokens(self, problem: Problem, steps: Sequence[str]) -> int:
        """The remote verifier's tokens for this item, as the reply that scored it said (search asks right after)."""
        if not steps:
            return 0
        key = (problem.question, tuple(steps))
        with self._lock:
            known = self._tokens.get(key)
        if known is None:
            known = self.dialect.local_tokens(problem, steps)
        if known is None:
            self.score([problem], [steps])
            with self._lock:
                known = self._tokens[key]
        return known

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self._client.close()

    # -- requests ----------------------------------------------------------------------
    def _score_chunk(self, problems: Sequence[Problem], steps: Sequence[Sequence[str]]) -> list[Scored]:
        with self._lock:
            if not self._prepared:
                self.dialect.prepare(self._request)
                self._prepared = True
        body, sent = self.dialect.request(problems, steps)
        scored = self.dialect.read(self._request("POST", self.dialect.path, body), sent)
        for (scores, _), item in zip(scored, steps):
            if len(scores) != len(item):
                raise VerifierError(f"{self.root}{self.dialect.path} returned {len(scores)} step scores for an item of "
                                    f"{len(item)} steps")
        return scored

    def _request(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        return request_json(self._client, method, f"{self.root}{path}", body, error=VerifierError,
                            max_retries=self.max_retries, backoff_s=self.backoff_s)

    def _remote_params(self) -> int:
        """The served verifier's parameter count (GET /health), so FLOPs count as they would in-process."""
        n = self._request("GET", "/health", None).get("n_params")
        if not isinstance(n, int) or n < 0:
            raise VerifierError(f"GET {self.root}/health did not say n_params (got {n!r}); is this `ttscale serve-verifier`? "
                                "For another server set verifier.api (and verifier.n_params)")
        return n

    def _remember(self, counts: dict[tuple[str, tuple[str, ...]], int]) -> None:
        with self._lock:
            self._tokens.update(counts)
            while len(self._tokens) > _REMEMBERED:
                self._tokens.popitem(last=False)


class TTScaleVerify:
    """`ttscale serve-verifier`'s POST /v1/verify (server/verifier_app.py holds the other side)."""

    path = "/v1/verify"

    def request(self, problems: Sequence[Problem], steps: Sequence[Sequence[str]]) -> tuple[dict[str, Any], int]:
        return {"items": [{"problem": p.to_dict(), "steps": list(s)} for p, s in zip(problems, steps)]}, len(problems)

    def read(self, reply: dict[str, Any], sent: int) -> list[Scored]:
        data = _ordered(reply, sent, self.path)
        try:
            return [([float(x) for x in d["scores"]], int(d["tokens"])) for d in data]
        except (KeyError, TypeError, ValueError) as e:
            raise VerifierError(f"{self.path} returned an item without numeric scores and tokens: {e!r}") from None

    def local_tokens(self, problem: Problem, steps: Sequence[str]) -> int | None:
        return None

    def prepare(self, request: Callable[[str, str, dict[str, Any] | None], dict[str, Any]]) -> None:
        pass


class VLLMPooling:
    """vLLM's POST /pooling over a Qwen2.5-Math-PRM (see the module docstring for the reply's two shapes)."""

    path = "/pooling"
    positive_label = 1

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder
        self.every_token: bool | None = None  # does the server return every token's row, or the step tags'?

    def prepare(self, request: Callable[[str, str, dict[str, Any] | None], dict[str, Any]]) -> None:
        """One probe of a token and a step tag: 2 rows = every token's row, 1 = the step tag's only.

        Read from the replies alone the two shapes can coincide: a server pooling at another tag
        (a Math-Shepherd --pooler-config; ChatML's <|im_end|> three times) answers as many rows
        as a three-step item has steps, and would score the wrong positions silently.
        """
        ids = [*self.encoder.tokenizer.encode("1", add_special_tokens=False), self.encoder.separator_id]
        rows = _ordered(request("POST", self.path, {"input": [ids]}), 1, self.path)[0].get("data")
        n = len(rows) if isinstance(rows, list) else -1
        if n not in (1, len(ids)):
            raise VerifierError(
                f"{self.path} pooled {n} rows for a probe of {len(ids)} tokens holding one step tag "
                f"({self.encoder.step_separator}, id {self.encoder.separator_id}); serve the PRM with its STEP "
                f"pooler at that tag (--pooler-config '{{\"step_tag_id\": {self.encoder.separator_id}}}') or with none")
        self.every_token = n == len(ids)

    def request(self, problems: Sequence[Problem], steps: Sequence[Sequence[str]]) -> tuple[dict[str, Any], list[Encoded]]:
        encoded = [self.encoder.encode(p, s) for p, s in zip(problems, steps)]
        # Token ids, not text: the ids are the in-process encoding itself (vLLM would tokenize text
        # again with its own special-token setting), and they tell which returned row is which step.
        return {"input": [e.input_ids for e in encoded]}, encoded

    def read(self, reply: dict[str, Any], sent: list[Encoded]) -> list[Scored]:
        out = []
        for d, encoded in zip(_ordered(reply, len(sent), self.path), sent):
            rows = d.get("data")
            if not isinstance(rows, list) or not all(isinstance(r, list) and len(r) > self.positive_label for r in rows):
                raise VerifierError(f"{self.path} returned {str(rows)[:80]} for an item, not one row of label "
                                    "probabilities per position; serve a process reward model (--runner pooling)")
            expected = len(encoded.input_ids) if self.every_token else len(encoded.positions)
            if len(rows) != expected:
                raise VerifierError(
                    f"{self.path} returned {len(rows)} rows for an item of {len(encoded.input_ids)} tokens and "
                    f"{len(encoded.positions)} steps, where its probe promised {expected}")
            picked = [rows[i] for i in encoded.positions] if self.every_token else rows
            out.append(([float(r[self.positive_label]) for r in picked], len(encoded.input_ids)))
        return out

    def local_tokens(self, problem: Problem, steps: Sequence[str]) -> int | None:
        return len(self.encoder.encode(problem, steps).input_ids)


def _ordered(reply: dict[str, Any], n: int, path: str) -> list[dict[str, Any]]:
    data = reply.get("data")
    if not isinstance(data, list) or len(data) != n or not all(isinstance(d, dict) for d in data):
        raise VerifierError(f"{path} returned {len(data) if isinstance(data, list) else 'no'} results for {n} items")
    return sorted(data, key=lambda d: d.get("index", 0))


def _qwen_encoder(cfg: VerifierConfig, tokenizer: Any) -> Any:
    """QwenPRM's own encoding (verifiers/qwen_prm.py) over the PRM's tokenizer alone, without its weights."""
    from ttscale.verifiers.qwen_prm import QwenPRM

    class QwenEncoder(QwenPRM):
        def __init__(self, tokenizer: Any) -> None:  # noqa: D107 - only what encode() reads
            self.tokenizer = tokenizer
            self._setup()

    if tokenizer is None:
        if not cfg.model:
            raise ConfigError("verifier.api=vllm_pooling needs verifier.model: the PRM the server serves "
                              "(e.g. Qwen/Qwen2.5-Math-PRM-7B), whose tokenizer and chat template encode each request")
        from transformers import AutoTokenizer

        from ttscale.models.loading import resolve_source

        tokenizer = AutoTokenizer.from_pretrained(resolve_source(cfg.model, None)[0])
    return QwenEncoder(tokenizer)
