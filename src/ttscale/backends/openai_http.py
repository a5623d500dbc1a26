"""A Generator over any server speaking the OpenAI completions or chat API.

Servers honour different parts of that API, so the generator first probes what this one
does (backends/server_probe.py) and adapts: vLLM and SGLang get one POST per prompt with `n`
samples; a server that ignores `n` (transformers serve, llama.cpp's server, Ollama) gets one
request per sample, child k seeded seed + k as vLLM seeds it, so a run's samples are the same
whichever way the server is called; a server whose seeds do not survive concurrent requests
gets its requests one at a time; a server that ignores temperature is refused for sampling.
Up to `model.max_concurrency` requests are in flight, retried with exponential backoff on 429,
5xx, timeouts and refused connections; any other 4xx is a GenerationError at once.

Stop strings: a ttscale Generation keeps the stop string it ended on (steps stay delimited),
exactly once, per choice:
  - a server that keeps it in the text (transformers serve): the text is cut after the first
    stop string it holds, "stop"; none -> "length" or "eos" as the server says;
  - a server that strips it: finish_reason "length" -> "length", text as sent; "stop" with
    `stop_reason` one of our strings (vLLM, SGLang) -> re-append it, "stop"; `stop_reason`
    present but not ours (None, or a token id) -> "eos"; `stop_reason` absent -> re-append the
    first stop string, "stop": ttscale puts the step delimiter first, so a step ends as a step.

Token counts: a choice's own `logprobs.tokens` when present; else the usage's completion_tokens
of a one-sample request; else the policy's tokenizer (loaded from `model.name_or_path` when it
names a local or cached model); else the usage shared among n choices by text length; else
about four characters per token.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any

from ttscale.backends.base import child_seeds, truncate_at_stop
from ttscale.backends.chat_api import ChatMessages, as_completion_choice, chat_body
from ttscale.backends.server_probe import ServerCapabilities, probe_server
from ttscale.config import ModelConfig
from ttscale.errors import ConfigError, GenerationError, MissingDependencyError
from ttscale.http_client import make_client, request_json
from ttscale.types import FinishReason, Generation, SamplingParams

log = logging.getLogger(__name__)

class OpenAIGenerator:
    name = "openai"

    def __init__(
        self,
        cfg: ModelConfig,
        n_params: int | None = None,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        timeout_s: float = 600.0,
        transport: Any = None,
        capabilities: ServerCapabilities | None = None,
    ) -> None:
        try:
            import httpx  # noqa: F401 - present, or the one-line install hint
        except ImportError:
            raise MissingDependencyError("httpx", "openai", "model.backend=openai") from None
        if not cfg.base_url:
            raise ConfigError("model.base_url is required for model.backend=openai, e.g. http://127.0.0.1:8000/v1")
        self._client = make_client("model.api_key_env", cfg.api_key_env, cfg.max_concurrency, timeout_s, 10.0,
                                   transport)
        self.base_url = cfg.base_url.rstrip("/")
        self.model = cfg.name_or_path
        self.api = cfg.api
        self.max_retries, self.backoff_s = max_retries, backoff_s
        self._pool = ThreadPoolExecutor(cfg.max_concurrency, thread_name_prefix="ttscale-openai")
        self._caps = capabilities
        self._caps_lock, self._one_at_a_time = threading.Lock(), threading.Lock()
        self._counter = policy_tokenizer(cfg.name_or_path)
        self.n_params = n_params if n_params is not None else (cfg.n_params or policy_parameters(cfg.name_or_path))

    # -- what the server honours -----------------------------------------------------
    @property
    def capabilities(self) -> ServerCapabilities:
        """Probed once, on first use (backends/server_probe.py)."""
        with self._caps_lock:
            if self._caps is None:
                self._caps = probe_server(self._post, self.model)
                log.info("server %s honours:\n  %s", self.base_url, "\n  ".join(self._caps.lines()))
            return self._caps

    @property
    def uses_chat(self) -> bool:
        return self.api == "chat" or (self.api == "auto" and not self.capabilities.completions)

    @property
    def tokenizer(self) -> Any:
        """What data/prompts.py renders prompts with: the policy's own chat template, or chat messages."""
        return ChatMessages() if self.uses_chat else self._counter

    def check_search(self, temperature: float, step_wise: bool, logprobs: bool) -> None:
        """Refuse, in one line, a search this server cannot serve."""
        caps = self.capabilities
        where = f"the server at {self.base_url}"
        if self.api == "completions" and not caps.completions:
            raise ConfigError(f"model.api=completions, but {where} does not answer POST /completions; use model.api=chat")
        if self.api == "chat" and not caps.chat:
            raise ConfigError(f"model.api=chat, but {where} does not answer POST /chat/completions")
        if temperature > 0 and not caps.samples:
            raise ConfigError(f"{where} ignores temperature (every seed gives the same text), so it cannot be "
                              "searched over; serve the model with sampling on (do_sample) or use another server")
        if self.uses_chat and step_wise and not caps.continue_final_message:
            raise ConfigError(f"{where} cannot continue a partial assistant message over chat "
                              "(continue_final_message), so step-wise search cannot run on it; use a whole-solution "
                              "strategy (best_of_n, adaptive_consistency) or a server with /completions")
        if logprobs and not caps.logprobs:
            raise ConfigError(f"{where} returns no logprobs, which this search needs (sampling.logprobs, deepconf, "
                              "a self_certainty or confidence_weighted selection, or the self_certainty verifier)")

    def count_tokens(self, text: str) -> int:
        if not text:
            return 0
        if self._counter is not None:
            return len(self._counter(text, add_special_tokens=False)["input_ids"])
        return max(1, round(len(text) / 4))  # no tokenizer: OpenAI's rule of thumb

    def generate(self, prompts: Sequence[str], params: Sequence[SamplingParams]) -> list[list[Generation]]:
        # Each request carries its own seed (a vLLM server samples child k from seed + k), so a
        # sample never depends on which other prompts this call happened to hold.
        caps = self.capabilities
        jobs = [(i, prompt, p) for i, (prompt, p) in enumerate(zip(prompts, params))]
        if not caps.n:
            jobs = [(i, prompt, SamplingParams(**{**p.__dict__, "n": 1, "seed": seed}))
                    for i, prompt, p in jobs for seed in child_seeds(p)]
        out: list[list[Generation]] = [[] for _ in prompts]
        for (i, _, _), gens in zip(jobs, self._pool.map(lambda job: self._complete(*job[1:]), jobs)):
            out[i].extend(gens)
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self._client.close()

    # -- one request ---------------------------------------------------------------
    def _body(self, prompt: str, params: SamplingParams) -> dict[str, Any]:
        body: dict[str, Any] = {
            **dict(self.capabilities.extra_body),
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
        bos = getattr(self._counter, "bos_token", None)
        if bos and prompt.startswith(bos):
            # The chat template wrote BOS already; vLLM would add a second one (its completions
            # endpoint tokenizes with add_special_tokens=True unless told otherwise).
            body["add_special_tokens"] = False
        return body

    def _complete(self, prompt: str, params: SamplingParams) -> list[Generation]:
        caps, body = self.capabilities, self._body(prompt, params)
        path = "/completions"
        if self.uses_chat:
            path, body = "/chat/completions", chat_body(prompt, body)
        seeded = params.seed is not None and not caps.seed_concurrent
        with self._one_at_a_time if seeded else nullcontext():
            reply = self._post(path, body)
        choices = sorted(reply.get("choices") or [], key=lambda c: c.get("index", 0))
        if self.uses_chat:
            choices = [as_completion_choice(c) for c in choices]
        if len(choices) != params.n:
            raise GenerationError(f"{self.base_url}{path} returned {len(choices)} choices for n={params.n}")
        usage = reply.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or self.count_tokens(prompt))
        texts, reasons = zip(*(self._ending(c, params.stop) for c in choices))
        counts = self._token_counts(choices, list(texts), usage.get("completion_tokens"))
        out = []
        for choice, text, reason, n_tokens in zip(choices, texts, reasons, counts):
            # An estimated count (no per-choice tokens) is bounded by what the server was allowed: a choice
            # that ran out of tokens took exactly max_tokens (a thinking budget reads this).
            n_tokens = params.max_new_tokens if reason == "length" else min(n_tokens, params.max_new_tokens)
            sampled, top = choice_logprobs(choice, params.logprobs) if params.logprobs else ((), ())
            out.append(Generation(text=text, n_tokens=n_tokens, finish_reason=reason, prompt_tokens=prompt_tokens,
                                  logprobs=sampled, top_logprobs=top))
        return out

    def _ending(self, choice: dict[str, Any], stop: Sequence[str]) -> tuple[str, FinishReason]:
        text = choice.get("text") or ""
        if self.capabilities.stop == "excluded":
            return restore_stop(text, choice, stop)
        cut, found = truncate_at_stop(text, stop)
        if found:
            return cut, "stop"
        return text, "length" if choice.get("finish_reason") == "length" else "eos"

    def _token_counts(self, choices: list[dict[str, Any]], texts: list[str], total: int | None) -> list[int]:
        own = [((c.get("logprobs") or {}).get("tokens")) for c in choices]
        counted = [len(t) for t in own if t is not None]
        if len(counted) == len(own):
            return counted
        if total is not None and len(texts) == 1 and texts[0] == (choices[0].get("text") or ""):
            return [int(total)]
        if total is None or self._counter is not None:
            return [self.count_tokens(t) for t in texts]
        sizes = [len(t) + 1 for t in texts]
        shares = [int(total) * s // sum(sizes) for s in sizes]
        shares[0] += int(total) - sum(shares)  # the shares add up to what the server charged
        return shares

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return request_json(self._client, "POST", f"{self.base_url}{path}", body, error=GenerationError,
                            max_retries=self.max_retries, backoff_s=self.backoff_s)


def restore_stop(text: str, choice: dict[str, Any], stop: Sequence[str]) -> tuple[str, FinishReason]:
    """(text with the stop string it ended on, finish reason) from a server that strips stop strings;
    the rule is in the module docstring."""
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


def _local_source(name_or_path: str) -> tuple[str, dict[str, str]]:
    """from_pretrained's source and keywords for the served model's own files (the embedded GGUF, converted once)."""
    from ttscale.models.loading import resolve_source

    source, gguf = resolve_source(name_or_path, None)
    return source, ({"gguf_file": gguf} if gguf else {})


def policy_tokenizer(name_or_path: str | None) -> Any:
    """The served model's tokenizer when `name_or_path` names one that loads here, else None."""
    if not name_or_path:
        return None
    try:
        from transformers import AutoTokenizer

        source, kwargs = _local_source(name_or_path)
        return AutoTokenizer.from_pretrained(source, **kwargs)
    except Exception as e:  # noqa: BLE001 - any failure means: count without it, and say so
        log.warning("no tokenizer for model.name_or_path=%r (%s); token counts come from the server or are "
                    "estimated at ~4 characters per token", name_or_path, str(e).splitlines()[0] if str(e) else e)
        return None


def policy_parameters(name_or_path: str | None) -> int:
    """The served model's parameter count, from its config alone (weights on the meta device), or 0."""
    if not name_or_path:
        return 0
    try:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        source, kwargs = _local_source(name_or_path)
        config = AutoConfig.from_pretrained(source, **kwargs)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        return int(sum(p.numel() for p in model.parameters()))
    except Exception as e:  # noqa: BLE001 - FLOPs then cannot be counted; a FLOP cap is refused
        log.warning("could not read the parameter count of %r (%s); set model.n_params to count FLOPs",
                    name_or_path, str(e).splitlines()[0] if str(e) else e)
        return 0


def served_model(base_url: str, api_key_env: str | None = None) -> str | None:
    """The first model id a server lists at GET /models, or None when it lists none."""
    import httpx

    try:
        with make_client("--api-key-env", api_key_env, 1, 10.0, 10.0) as client:
            r = client.get(f"{base_url.rstrip('/')}/models")
        data = r.json().get("data") or [] if r.status_code == 200 else []
    except (httpx.HTTPError, ValueError, AttributeError) as e:
        raise GenerationError(f"GET {base_url.rstrip('/')}/models failed: {e}") from None
    return str(data[0].get("id")) if data else None
