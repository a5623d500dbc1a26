"""Encoding helpers of the model-based verifiers: the Encoded item, length buckets, chat replies, token reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Encoded:
    """One item as the model reads it: token ids and, per step, the position whose output scores it."""

    input_ids: list[int]
    positions: list[int]


def bucket_batches(lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Indices grouped into batches of similar length whose padded size (rows x longest) fits max_tokens.

    Sorting by length first keeps padding small; an item longer than the budget gets a batch of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if batches and (len(batches[-1]) + 1) * lengths[batches[-1][0]] <= max_tokens:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def token_at_char(offsets: Sequence[tuple[int, int]], char: int) -> int:
    """Index of the first token that ends after `char`: the token holding it (or the next, if trimmed away)."""
    for i, (_, end) in enumerate(offsets):
        if end > char:
            return i
    raise ValueError(f"no token covers character {char}")


def encode_chat_with_replies(
    tokenizer: Any, messages: list[dict[str, str]], leads: Sequence[int] | None = None
) -> tuple[list[int], list[int]]:
    """Token ids of a rendered chat and, per assistant message, the position that predicts its first token
    (or, with `leads`, the token that starts `leads[i]` characters into the i-th reply).

    The template renders placeholders instead of the replies so their character
    offsets are known exactly; ids come from tokenizing the rendered string without
    adding special tokens, which is what `apply_chat_template(tokenize=True)` does.
    """
    placeholder = "\ue000"  # a private-use character no template or step contains
    replies = [m["content"] for m in messages if m["role"] == "assistant"]
    masked = [{**m, "content": placeholder} if m["role"] == "assistant" else m for m in messages]
    rendered = tokenizer.apply_chat_template(masked, tokenize=False)
    pieces = rendered.split(placeholder)
    if len(pieces) != len(replies) + 1:
        raise ValueError("the chat template dropped or repeated an assistant turn")
    text, starts = pieces[0], []
    for k, (reply, piece) in enumerate(zip(replies, pieces[1:])):
        starts.append(len(text) + (leads[k] if leads is not None else 0))
        text += reply + piece
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return list(enc["input_ids"]), [token_at_char(enc["offset_mapping"], c) - 1 for c in starts]


# Causal LMs whose logits are exactly lm_head(last_hidden_state): for them only the few
# candidate rows of lm_head are computed at the read positions, instead of the full
# vocabulary at every position (128k x seq x batch floats for Llama 3).
_PLAIN_LM_HEAD = {"llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "phi3"}


def candidate_logits(
    model: Any, input_ids: Any, attention_mask: Any, rows: Any, cols: Any, token_ids: list[int], **model_kwargs: Any
) -> Any:
    """Float32 logits of `token_ids` at the (row, col) positions, shape (n_positions, len(token_ids))."""
    if getattr(model.config, "model_type", None) in _PLAIN_LM_HEAD:
        hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask, **model_kwargs)[0]
        head = model.get_output_embeddings()
        picked = hidden[rows, cols]
        logits = picked @ head.weight[token_ids].T
        if getattr(head, "bias", None) is not None:
            logits = logits + head.bias[token_ids]
        return logits.float()
    logits = model(input_ids=input_ids, attention_mask=attention_mask, **model_kwargs).logits
    return logits[rows, cols][:, token_ids].float()


def pad_id_of(tokenizer: Any) -> int:
    # Padding is masked out and never attended to: any valid id works.
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return 0



def last_token_id(tokenizer: Any, text: str) -> int:
    return int(tokenizer.encode(text, add_special_tokens=False)[-1])
