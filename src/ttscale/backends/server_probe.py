"""What an OpenAI-compatible server honours, found by a few tiny requests.

Servers that all speak "the OpenAI API" honour different subsets of it. vLLM and SGLang
honour `n`, `seed` (child k from seed + k), stop strings (stripped, with `stop_reason`) and
logprobs. `transformers serve` ignores `n` and `logprobs`, keeps the stop string in the
text, seeds a global torch RNG per request (so a seed holds only when requests do not
overlap), and samples only when the model's generation config says `do_sample`, which its
`generation_config` request field can override (transformers/cli/serving/utils.py,
`_build_generation_config`). llama.cpp's server and Ollama each drop other fields. The
generator reads a `ServerCapabilities` and adapts; what it cannot adapt to is refused in
one line before a search starts.

Every probe is a request of at most `PROBE_TOKENS` tokens, so a probe costs a second or two
on a CPU server.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ttscale.errors import GenerationError

log = logging.getLogger(__name__)

PROBE_TOKENS = 12
# A prompt with many likely continuations: two seeds at temperature 1 almost surely differ.
PROBE_PROMPT = "Here is a list of random words, one per line:\n"
PROBE_SEEDS = (11, 23, 37)
# Concurrent seeded requests must overlap on the server to show whether their streams mix: longer than
# the other probes, and asked several times (transformers serve 5.24 passed one short round under load
# and then mixed and stalled concurrent requests during the run).
CONCURRENT_PROBE_TOKENS = 48
CONCURRENCY_ROUNDS = 3
# transformers serve: a request's `generation_config` (JSON) replaces the model's defaults.
TRANSFORMERS_SAMPLING = {"generation_config": json.dumps({"do_sample": True})}

Post = Callable[[str, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class ServerCapabilities:
    """What one server did with the probe requests (each field: what ttscale needs it for)."""

    completions: bool = True  # POST /completions answers: step-wise search appends raw text
    chat: bool = False  # POST /chat/completions answers
    continue_final_message: bool = False  # chat: continues a partial assistant turn (vLLM's flag)
    samples: bool = True  # temperature > 0 gives different texts for different seeds
    extra_body: tuple[tuple[str, str], ...] = ()  # fields added to every request so it samples
    seed: bool = True  # the same seed gives the same text, requests one after another
    seed_concurrent: bool = True  # ...and also while other requests are in flight
    n: bool = True  # `n` choices come back for n > 1
    stop: str = "excluded"  # excluded (stripped) | kept (left in the text) | ignored
    stop_reason: bool = True  # a choice says which stop string ended it
    logprobs: bool = True  # per-token logprobs come back
    usage: bool = True  # the reply's usage counts completion tokens

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["extra_body"] = dict(self.extra_body)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ServerCapabilities:
        d = dict(d)
        d["extra_body"] = tuple(sorted((d.get("extra_body") or {}).items()))
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})

    def lines(self) -> list[str]:
        """`name  value  what ttscale does about it`, one line a capability."""
        adapt = {
            "n": ("", "one request per sample, child k with seed + k"),
            "seed": ("", "samples are not reproducible"),
            "seed_concurrent": ("", "requests are sent one at a time so seeds hold"),
            "samples": ("", "cannot be searched over (every sample is the same)"),
            "stop_reason": ("", "the stop string is found in the text"),
            "logprobs": ("", "confidence-based strategies are refused"),
            "usage": ("", "tokens are counted with the policy's tokenizer"),
            "continue_final_message": ("", "step-wise search over chat is refused"),
            "chat": ("", ""),
            "completions": ("", "only chat: whole-solution strategies only"),
        }
        out = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            shown = dict(value) if f.name == "extra_body" else value
            note = adapt.get(f.name, ("", ""))[1] if value is False else ""
            if f.name == "stop" and value != "excluded":
                note = "the stop string is kept exactly once" if value == "kept" else "texts are cut at the stop string"
            if f.name == "extra_body" and value:
                note = "sent with every request (the server ignores temperature without it)"
            out.append(f"{f.name:<24} {shown!s:<10} {note}".rstrip())
        return out


def probe_server(post: Post, model: str | None) -> ServerCapabilities:
    """Send the probe requests through `post(path, body)` and say what the server honoured."""
    base = {"model": model, "max_tokens": PROBE_TOKENS, "n": 1, "top_p": 1.0}
    completions = _answers(post, "/completions", {**base, "prompt": PROBE_PROMPT, "temperature": 0.0})
    chat = _answers(post, "/chat/completions", {
        **base, "messages": [{"role": "user", "content": "Name three colours."}], "temperature": 0.0})
    if not completions and not chat:
        raise GenerationError("the server answered neither POST /completions nor POST /chat/completions")
    caps = ServerCapabilities(completions=completions, chat=chat)
    if chat:
        caps = dataclasses.replace(caps, continue_final_message=_continues(post, base))
    if not completions:
        return caps
    sample = _sampler(post, base)
    texts = {s: sample(s, {}) for s in PROBE_SEEDS}
    extra: dict[str, str] = {}
    if len(set(texts.values())) == 1:
        extra = TRANSFORMERS_SAMPLING
        texts = {s: sample(s, extra) for s in PROBE_SEEDS}
        if len(set(texts.values())) == 1:
            return dataclasses.replace(caps, samples=False)
    seed = sample(PROBE_SEEDS[0], extra) == texts[PROBE_SEEDS[0]]
    seeded = _sample_body(base, extra, PROBE_SEEDS[1]) if seed else None
    return dataclasses.replace(
        caps, extra_body=tuple(sorted(extra.items())), seed=seed,
        seed_concurrent=seed and _seeds_hold_concurrently(post, base, extra),
        n=_honours_n(post, base, extra), **_stop_behaviour(post, base, seeded), **_reports(post, base, extra))


def _answers(post: Post, path: str, body: dict[str, Any]) -> bool:
    return bool((_refused_as_none(post, path, body) or {}).get("choices"))


def _refused_as_none(post: Post, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """The reply, or None where the server refused the request (a field it does not take, say)."""
    try:
        return post(path, body)
    except GenerationError as e:
        log.info("probe: %s refused %s (%s)", path, sorted(set(body) - {"model", "max_tokens", "n", "top_p"}), e)
        return None


def _sampler(post: Post, base: dict[str, Any]) -> Callable[[int, dict[str, str]], str]:
    def sample(seed: int, extra: dict[str, str]) -> str:
        return _text(post("/completions", _sample_body(base, extra, seed)))
    return sample


def _sample_body(base: dict[str, Any], extra: dict[str, str], seed: int) -> dict[str, Any]:
    return {**base, **extra, "prompt": PROBE_PROMPT, "temperature": 1.0, "top_p": 1.0, "seed": seed}


def _text(reply: dict[str, Any]) -> str:
    return str((reply.get("choices") or [{}])[0].get("text") or "")


def _seeds_hold_concurrently(post: Post, base: dict[str, Any], extra: dict[str, str]) -> bool:
    """Seeds a, b, a, c at once, CONCURRENCY_ROUNDS times: a server that seeds one global RNG per request
    mixes their streams. One round can pass by luck (a loaded server that happens to run the requests
    one after another), so every round must match the texts each seed gives alone, and the requests
    are long enough to overlap on the server."""
    body = {**base, "max_tokens": CONCURRENT_PROBE_TOKENS}
    sample = _sampler(post, body)
    alone = {s: sample(s, extra) for s in PROBE_SEEDS}
    order = (PROBE_SEEDS[0], PROBE_SEEDS[1], PROBE_SEEDS[0], PROBE_SEEDS[2])
    with ThreadPoolExecutor(len(order)) as pool:
        for _ in range(CONCURRENCY_ROUNDS):
            got = list(pool.map(lambda s: sample(s, extra), order))
            if any(text != alone[s] for s, text in zip(order, got)):
                return False
    return True


def _honours_n(post: Post, base: dict[str, Any], extra: dict[str, str]) -> bool:
    body = {**_sample_body(base, extra, PROBE_SEEDS[0]), "n": 2}
    return len((_refused_as_none(post, "/completions", body) or {}).get("choices") or []) == 2


def _stop_behaviour(post: Post, base: dict[str, Any], sampled: dict[str, Any] | None) -> dict[str, Any]:
    """A text T (greedy, else a seeded sample), then T's request again with a stop string taken from
    inside T: what comes back says whether the server strips the stop string, keeps it, or ignores it."""
    for body in ({**base, "prompt": PROBE_PROMPT, "temperature": 0.0}, sampled):
        if body is None:
            continue
        full = _text(post("/completions", body))
        stop = _inner_stop(full)
        if stop is None:
            continue
        at = full.find(stop)
        reply = post("/completions", {**body, "stop": [stop]})
        text, choice = _text(reply), (reply.get("choices") or [{}])[0]
        if text == full[:at]:
            behaviour = "excluded"
        elif text.startswith(full[: at + len(stop)]) and len(text) < len(full):
            behaviour = "kept"
        else:
            behaviour = "ignored"
        return {"stop": behaviour, "stop_reason": choice.get("stop_reason") == stop}
    log.warning("probe: no probe text held a stop string to test; assuming the server strips stop strings")
    return {}


def _inner_stop(text: str) -> str | None:
    """A stop string that first occurs inside `text`, not at its start: a word after the first, else
    two characters."""
    words = [w for w in text.split()[1:] if text.find(w) > 0]
    if words:
        return words[0]
    return next((text[i:i + 2] for i in range(1, len(text) - 1) if text.find(text[i:i + 2]) == i), None)


def _reports(post: Post, base: dict[str, Any], extra: dict[str, str]) -> dict[str, Any]:
    greedy = {**base, **extra, "prompt": PROBE_PROMPT, "temperature": 0.0}
    reply = _refused_as_none(post, "/completions", {**greedy, "logprobs": 1}) or post("/completions", greedy)
    choice = (reply.get("choices") or [{}])[0]
    logprobs = bool((choice.get("logprobs") or {}).get("token_logprobs"))
    usage = (reply.get("usage") or {}).get("completion_tokens") is not None
    return {"logprobs": logprobs, "usage": usage}


def _continues(post: Post, base: dict[str, Any]) -> bool:
    """Greedy reply R; then the same chat with R's first half as a partial assistant turn and vLLM's
    `continue_final_message`: a server that continues it returns R's second half."""
    messages = [{"role": "user", "content": "Count from one to twenty in words."}]
    body = {**base, "temperature": 0.0, "messages": messages}
    try:
        full = _message(post("/chat/completions", body))
        # cut at a space, so the continuation starts on a token boundary the greedy reply also had
        half = full[: full.rfind(" ", 0, len(full) // 2 + 1)]
        if len(half.strip()) < 4:
            return False
        rest = _message(post("/chat/completions", {
            **body, "messages": [*messages, {"role": "assistant", "content": half}],
            "continue_final_message": True, "add_generation_prompt": False}))
    except GenerationError:
        return False
    overlap = min(len(rest), len(full) - len(half), 8)
    return overlap > 0 and rest[:overlap].strip() == full[len(half): len(half) + overlap].strip()


def _message(reply: dict[str, Any]) -> str:
    return str(((reply.get("choices") or [{}])[0].get("message") or {}).get("content") or "")
