"""`stream: true`: a search's progress, then its pick, as OpenAI's server-sent events.

The wire format is OpenAI's (and vLLM's, vllm/entrypoints/openai/serving_chat.py): each event
is `data: {chunk}` and a blank line; chat chunks carry `choices[].delta`, completion chunks
`choices[].text`; each choice ends with a chunk holding its `finish_reason`;
`stream_options.include_usage` adds one last chunk with `choices: []` and the usage; the
stream ends with `data: [DONE]`.

While the search runs, each round becomes one chunk per choice: the round's leading beam
(the strategies that vote: the vote so far), as `delta.reasoning_content`, the field vLLM
and DeepSeek use for text shown before the answer. A client reads a first byte after one
round instead of after the whole search. An error after the stream began (a deadline, a
failed backend) is one `data: {"error": ...}` event before `[DONE]`, as vLLM sends it; the
`openai` client raises it as an APIError.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Literal

from ttscale.search.progress import RoundObserver
from ttscale.search.records import Beam
from ttscale.server.batching import SearchCancelled
from ttscale.server.engine import Engine, RunningSearch
from ttscale.server.protocol import BadRequest, error_body
from ttscale.server.replies import (
    Tokenize,
    chat_logprobs,
    chat_text,
    completion_logprobs,
    picked_of,
    search_summary,
    selected_text,
    usage,
)
from ttscale.types import ProblemResult, Reduction

log = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"
Progress = tuple[int, str]  # (choice index, reasoning text of one round)


def describe_round(round_: int, beams: Sequence[Beam], seen: Counter[str], voting: bool) -> str:
    """One round of one search as text: the beam leading by its score, or (`voting`) every answer so far."""
    if voting:
        seen.update(b.answer if b.answer is not None else "no answer" for b in beams
                    if b.finished or b.finish_reason == "length")  # a trace still growing has not voted yet
        votes = ", ".join(f"{answer} x{k}" for answer, k in seen.most_common())
        return f"Round {round_ + 1}: {sum(seen.values())} samples, votes so far: {votes or 'none'}\n\n"
    lead = max(beams, key=lambda b: b.value)  # ties: the first generated, as search/records.py's top()
    return (f"Round {round_ + 1}: {len(beams)} candidates; the leading one (score {lead.value:.3f}):\n"
            f"{lead.text.strip()}\n\n")


def round_observer(voting: bool, put: Callable[[Progress], object]) -> RoundObserver:
    """An observer for one job's search thread: each round's text per choice, handed to `put` (thread-safe).
    `voting`: the strategy samples whole solutions (not `step_wise`), so its progress is the vote, not a beam."""
    seen: dict[int, Counter[str]] = {}

    def observe(round_: int, children: Sequence[Sequence[Beam]]) -> None:
        for choice, beams in enumerate(children):
            if beams:
                put((choice, describe_round(round_, beams, seen.setdefault(choice, Counter()), voting)))

    return observe


def _event(chunk: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n"


class ChunkWriter:
    """The chunks of one streamed reply; `kind` picks the chat or the completions shape."""

    def __init__(self, kind: Literal["chat", "completion"], rid: str, model: str, n_choices: int,
                 include_usage: bool, tokenize: Tokenize | None) -> None:
        self.kind, self.rid, self.model, self.n_choices = kind, rid, model, n_choices
        self.include_usage, self.tokenize = include_usage, tokenize
        self.created = int(time.time())

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        chunk: dict[str, Any] = {"id": self.rid, "object": "chat.completion.chunk" if self.kind == "chat" else
                                 "text_completion", "created": self.created, "model": self.model, "choices": choices}
        if self.include_usage:
            chunk["usage"] = None  # OpenAI's: every chunk but the last says usage: null
        chunk.update(extra)
        return _event(chunk)

    def _choice(self, index: int, text: str | None = None, reasoning: str | None = None, role: bool = False,
                finish_reason: str | None = None, logprobs: Any = None) -> dict[str, Any]:
        if self.kind == "completion":
            out: dict[str, Any] = {"index": index, "text": text or "", "logprobs": logprobs,
                                   "finish_reason": finish_reason}
            if reasoning is not None:
                out["reasoning_content"] = reasoning
            return out
        delta: dict[str, Any] = {"role": "assistant"} if role else {}
        if text is not None:
            delta["content"] = text
        if reasoning is not None:
            delta["reasoning_content"] = reasoning
        return {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}

    def opening(self) -> list[bytes]:
        """Chat opens each choice with its role, as OpenAI does; completions have nothing to say yet."""
        if self.kind != "chat":
            return []
        return [self._chunk([self._choice(i, text="", role=True)]) for i in range(self.n_choices)]

    def progress(self, choice: int, text: str) -> bytes:
        return self._chunk([self._choice(choice, reasoning=text)])

    def answer(self, results: Sequence[ProblemResult], reduction: Reduction, with_candidates: bool) -> list[bytes]:
        """Each choice's pick (with its logprobs when asked), its finish chunk, then the usage when asked."""
        out = []
        for i, r in enumerate(results):
            text, reason = chat_text(r) if self.kind == "chat" else selected_text(r)
            out.append(self._chunk([self._choice(i, text=text, logprobs=self._logprobs(r))]))
            summary = {"results": [search_summary(r, reduction, with_candidates)]}
            out.append(self._chunk([self._choice(i, finish_reason=reason)], ttscale=summary))
        if self.include_usage:
            out.append(self._chunk([], usage=usage(results)))
        return out

    def _logprobs(self, r: ProblemResult) -> dict[str, Any] | None:
        if self.tokenize is None:
            return None
        picked = picked_of(r)
        tokens = self.tokenize(picked) if picked is not None else []
        return chat_logprobs(tokens) if self.kind == "chat" else completion_logprobs(tokens)


async def _never() -> bool:
    """A streaming request learns of a disconnect by being cancelled (Starlette's StreamingResponse)."""
    return False


async def sse(engine: Engine, running: RunningSearch, queue: asyncio.Queue[Progress], writer: ChunkWriter,
              with_candidates: bool) -> AsyncIterator[bytes]:
    """The event stream of a started search. Cancelled (the client went away), it cancels the search."""
    task = asyncio.ensure_future(engine.wait(running, _never))
    try:
        for chunk in writer.opening():
            yield chunk
        while not task.done():
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield writer.progress(*getter.result())
            else:
                getter.cancel()
        # The search's thread queued its last rounds before it returned: they come before the answer.
        while not queue.empty():
            yield writer.progress(*queue.get_nowait())
        for chunk in _outcome(task, writer, engine.base.reduction, with_candidates):
            yield chunk
        yield DONE
    finally:
        if not task.done():
            task.cancel()  # Engine.wait sets the search's cancel flag and counts it cancelled


def _outcome(task: asyncio.Future[list[ProblemResult]], writer: ChunkWriter, reduction: Reduction,
             with_candidates: bool) -> list[bytes]:
    try:
        results = task.result()
    except BadRequest as e:
        return [_event(error_body(e.message, e.kind, e.param, e.code))]
    except SearchCancelled:
        return [_event(error_body("the search was stopped", "server_error"))]
    except Exception as e:  # a backend failure is the server's, reported with its cause
        log.exception("search %s failed", writer.rid)
        return [_event(error_body(f"the search failed: {type(e).__name__}: {e}", "server_error"))]
    return writer.answer(results, reduction, with_candidates)
