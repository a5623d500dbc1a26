"""Prompts for servers that offer only POST /chat/completions.

The search renders a prompt once (data/prompts.py, through the generator's `tokenizer`) and
appends partial solutions to it as raw text. A chat server wants messages instead, so the
generator hands the prompt format a `ChatMessages` "template" that renders the messages as a
tagged JSON header; whatever the search appends after it is the assistant's partial turn. The
generator decodes the two back: an empty partial is a fresh assistant turn (whole-solution
strategies), a non-empty one is continued with vLLM's `continue_final_message` and
`add_generation_prompt: false` (vllm/entrypoints/openai/protocol.py, ChatCompletionRequest).
"""

from __future__ import annotations

import json
from typing import Any

from ttscale.errors import GenerationError

_OPEN, _CLOSE = "\x00ttscale-chat:", "\x00"


class ChatMessages:
    """Quacks like a tokenizer's chat template for data/prompts.py; never tokenizes anything."""

    chat_template = "messages sent to /chat/completions"
    bos_token = None

    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> str:
        return f"{_OPEN}{json.dumps(list(conversation), ensure_ascii=False)}{_CLOSE}"


def split_prompt(prompt: str) -> tuple[list[dict[str, str]], str]:
    """(messages, the assistant's partial turn) of a prompt rendered by ChatMessages."""
    if not prompt.startswith(_OPEN):
        raise GenerationError("model.api=chat needs prompt.mode=chat (a completion-mode prompt has no messages)")
    end = prompt.index(_CLOSE, len(_OPEN))
    return json.loads(prompt[len(_OPEN):end]), prompt[end + len(_CLOSE):]


def chat_body(prompt: str, body: dict[str, Any]) -> dict[str, Any]:
    """A completions request body turned into the chat request that asks for the same thing."""
    messages, partial = split_prompt(prompt)
    out = {k: v for k, v in body.items() if k not in ("prompt", "logprobs", "add_special_tokens")}
    if body.get("logprobs"):
        out.update(logprobs=True, top_logprobs=body["logprobs"])
    if partial:
        messages = [*messages, {"role": "assistant", "content": partial}]
        out.update(continue_final_message=True, add_generation_prompt=False)
    out["messages"] = messages
    return out


def as_completion_choice(choice: dict[str, Any]) -> dict[str, Any]:
    """A chat choice in the completions shape (text, finish_reason, stop_reason, logprobs)."""
    out = {k: v for k, v in choice.items() if k not in ("message", "logprobs")}
    out["text"] = str((choice.get("message") or {}).get("content") or "")
    content = (choice.get("logprobs") or {}).get("content")
    if content:
        out["logprobs"] = {
            "tokens": [c.get("token") for c in content],
            "token_logprobs": [c.get("logprob") for c in content],
            "top_logprobs": [{t["token"]: t["logprob"] for t in c.get("top_logprobs") or []} for c in content],
        }
    return out
