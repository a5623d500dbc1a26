"""The OpenAI-shaped replies of a finished search: whole bodies here, stream chunks in server/streaming.py.

Every choice is one search's pick; the `ttscale` reply field adds the pick, its score,
confidence and budget per choice (and every candidate when asked). Log-probabilities, when
asked, are the picked candidate's own tokens in OpenAI's shapes: `choices[].logprobs.content`
(chat) and the legacy `tokens / token_logprobs / top_logprobs / text_offset` (completions).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from ttscale.grading.select import solution_score
from ttscale.types import Budget, Completion, ProblemResult, Reduction

# The picked candidate's (token text, log-probability) pairs, in generation order.
TokenLogprobs = Sequence[tuple[str, float]]
# Completion -> its TokenLogprobs; None where the request asked for none.
Tokenize = Callable[[Completion], TokenLogprobs]


def _finish_reason(c: Completion | None) -> str:
    return "length" if c is not None and (c.finish_reason == "length" or not c.finished) else "stop"


def _candidate(c: Completion, reduction: Reduction) -> dict[str, Any]:
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


def search_summary(r: ProblemResult, reduction: Reduction, with_candidates: bool) -> dict[str, Any]:
    picked = picked_of(r)
    summary: dict[str, Any] = {
        "strategy": r.strategy,
        "selected": r.selected,
        "answer": picked.answer if picked else None,
        "score": solution_score(picked, reduction) if picked and picked.step_scores is not None else None,
        "budget": r.budget.to_dict(),
        # the pick's token confidence (sampling.logprobs > 0, or deepconf), else None
        "confidence": picked.confidence.to_dict() if picked and picked.confidence is not None else None,
    }
    if with_candidates:
        summary["candidates"] = [_candidate(c, reduction) for c in r.completions]
    return summary


def usage(results: Sequence[ProblemResult]) -> dict[str, int]:
    total = Budget()
    for r in results:
        total.add(r.budget)
    return {
        "prompt_tokens": total.prompt_tokens,
        "completion_tokens": total.generated_tokens,
        "total_tokens": total.prompt_tokens + total.generated_tokens,
        "verifier_tokens": total.verifier_tokens,
    }


def picked_of(r: ProblemResult) -> Completion | None:
    return r.completions[r.selected] if r.selected is not None else None


def selected_text(r: ProblemResult) -> tuple[str, str]:
    """(the picked solution's text, its OpenAI finish reason); an empty search answers ''."""
    picked = picked_of(r)
    return (picked.text if picked else ""), _finish_reason(picked)


def chat_text(r: ProblemResult) -> tuple[str, str]:
    text, reason = selected_text(r)
    # A chat reply drops the trailing step delimiter; /v1/completions keeps text exact for callers that search.
    return text.rstrip(), reason


def chat_logprobs(tokens: TokenLogprobs) -> dict[str, Any]:
    """OpenAI's `ChoiceLogprobs`: one entry per token, its UTF-8 bytes, no alternatives (top_logprobs=0)."""
    content = [{"token": t, "logprob": lp, "bytes": list(t.encode()), "top_logprobs": []} for t, lp in tokens]
    return {"content": content, "refusal": None}


def completion_logprobs(tokens: TokenLogprobs, offset: int = 0) -> dict[str, Any]:
    """The legacy completions shape; as vLLM does for logprobs=0, each top_logprobs row holds the sampled
    token alone (vllm/entrypoints/openai/serving_completion.py, _create_completion_logprobs)."""
    offsets, at = [], offset
    for t, _ in tokens:
        offsets.append(at)
        at += len(t)
    return {"tokens": [t for t, _ in tokens], "token_logprobs": [lp for _, lp in tokens],
            "top_logprobs": [{t: lp} for t, lp in tokens], "text_offset": offsets}


def _logprobs_of(r: ProblemResult, tokenize: Tokenize | None) -> TokenLogprobs | None:
    if tokenize is None:
        return None
    picked = picked_of(r)
    return tokenize(picked) if picked is not None else []


def chat_reply(
    rid: str, model: str, results: Sequence[ProblemResult], reduction: Reduction, with_candidates: bool,
    tokenize: Tokenize | None = None,
) -> dict[str, Any]:
    choices = []
    for i, r in enumerate(results):
        text, reason = chat_text(r)
        tokens = _logprobs_of(r, tokenize)
        choices.append({"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": reason,
                        "logprobs": chat_logprobs(tokens) if tokens is not None else None})
    return {
        "id": rid, "object": "chat.completion", "created": int(time.time()), "model": model, "choices": choices,
        "usage": usage(results),
        "ttscale": {"results": [search_summary(r, reduction, with_candidates) for r in results]},
    }


def completion_reply(
    rid: str, model: str, results: Sequence[ProblemResult], reduction: Reduction, with_candidates: bool,
    tokenize: Tokenize | None = None,
) -> dict[str, Any]:
    choices = []
    for i, r in enumerate(results):
        text, reason = selected_text(r)
        tokens = _logprobs_of(r, tokenize)
        choices.append({"index": i, "text": text, "finish_reason": reason,
                        "logprobs": completion_logprobs(tokens) if tokens is not None else None})
    return {
        "id": rid, "object": "text_completion", "created": int(time.time()), "model": model, "choices": choices,
        "usage": usage(results),
        "ttscale": {"results": [search_summary(r, reduction, with_candidates) for r in results]},
    }


def token_pieces(tokenizer: Any, text: str) -> list[str]:
    """`text` cut into its tokens' texts: the model's tokenizer, or (the fake backend, no tokenizer) the
    whitespace-separated words it counts as tokens (backends/fake.py), each with the space before it."""
    if tokenizer is None:
        return re.findall(r"\s*\S+", text)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return [tokenizer.decode([i]) for i in ids]


def tokenizer_logprobs(tokenizer: Any) -> Tokenize:
    """A candidate's (token, logprob) pairs. The search records each sampled token's log-probability but
    not its id, so the text is re-encoded; a decoded text encodes back to the sampled ids except for rare
    non-canonical splits, where the pairs stop at the shorter of the two."""

    def tokenize(c: Completion) -> TokenLogprobs:
        return list(zip(token_pieces(tokenizer, c.text), c.logprobs))

    return tokenize
