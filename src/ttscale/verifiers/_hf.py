"""What every model-based verifier shares: loading, length-bucketed batching, reading one output per step.

A family (rlhflow.py, math_shepherd.py, ...) only says how a (problem, steps) item
becomes token ids plus the positions whose output scores each step (`encode`), and
how those positions' outputs become scores in [0, 1] (`read`). Everything is causal,
so one forward pass over the whole solution scores every step, and a step's score
does not depend on the steps after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ttscale.config import VerifierConfig
from ttscale.errors import ConfigError
from ttscale.types import Problem


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


def encode_chat_with_replies(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    """Token ids of a rendered chat and, per assistant message, the position that predicts its first token.

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
    for reply, piece in zip(replies, pieces[1:]):
        starts.append(len(text))
        text += reply + piece
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return list(enc["input_ids"]), [token_at_char(enc["offset_mapping"], c) - 1 for c in starts]


# Causal LMs whose logits are exactly lm_head(last_hidden_state): for them only the few
# candidate rows of lm_head are computed at the read positions, instead of the full
# vocabulary at every position (128k x seq x batch floats for Llama 3).
_PLAIN_LM_HEAD = {"llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "phi3"}


def candidate_logits(
    model: Any, input_ids: Any, attention_mask: Any, rows: Any, cols: Any, token_ids: list[int]
) -> Any:
    """Float32 logits of `token_ids` at the (row, col) positions, shape (n_positions, len(token_ids))."""
    if getattr(model.config, "model_type", None) in _PLAIN_LM_HEAD:
        hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)[0]
        head = model.get_output_embeddings()
        picked = hidden[rows, cols]
        logits = picked @ head.weight[token_ids].T
        if getattr(head, "bias", None) is not None:
            logits = logits + head.bias[token_ids]
        return logits.float()
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    return logits[rows, cols][:, token_ids].float()


def pad_id_of(tokenizer: Any) -> int:
    # Right padding behind a causal mask: the pad id is never attended to, any valid id works.
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return 0


class HFVerifier:
    """Base of the model-based verifiers. Subclasses set `name`, `default_model` and implement encode/read."""

    name = "hf"
    default_model = ""

    def __init__(self, cfg: VerifierConfig | None = None, *, model: Any = None, tokenizer: Any = None) -> None:
        self.cfg = cfg or VerifierConfig(name=self.name)
        if (model is None) != (tokenizer is None):
            raise ConfigError(f"verifier '{self.name}': pass both model= and tokenizer=, or neither")
        if model is None:
            model, tokenizer = self._load(self.cfg.model or self.default_model, self.cfg.device, self.cfg.dtype)
        self.model = model
        self.tokenizer = tokenizer
        self.max_tokens_per_batch = self.cfg.max_tokens_per_batch
        self.pad_id = pad_id_of(tokenizer)
        self._last_lengths: dict[tuple[str, tuple[str, ...]], int] = {}
        self._setup()
        self.n_params = sum(p.numel() for p in self._modules_for_params().parameters())

    # -- per family ---------------------------------------------------------------------
    def _load(self, name_or_path: str, device: str, dtype: str) -> tuple[Any, Any]:
        from transformers import AutoModelForCausalLM

        from ttscale.backends.loading import load_pretrained

        return load_pretrained(AutoModelForCausalLM, name_or_path, None, device, dtype)

    def _setup(self) -> None:
        """Look up the family's special token ids once the tokenizer is known."""

    def _modules_for_params(self) -> Any:
        return self.model

    def encode(self, problem: Problem, steps: Sequence[str]) -> Encoded:
        raise NotImplementedError

    def read(self, input_ids: Any, attention_mask: Any, rows: Any, cols: Any) -> Any:
        """Scores in [0, 1] at the (row, col) positions of one padded batch, as a 1-D tensor."""
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------
    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def count_tokens(self, problem: Problem, steps: Sequence[str]) -> int:
        if not steps:
            return 0
        known = self._last_lengths.get((problem.question, tuple(steps)))
        return known if known is not None else len(self.encode(problem, steps).input_ids)

    def score(self, problems: Sequence[Problem], steps: Sequence[Sequence[str]]) -> list[list[float]]:
        results: list[list[float]] = [[] for _ in problems]
        todo = [i for i, s in enumerate(steps) if s]
        encoded = {i: self.encode(problems[i], steps[i]) for i in todo}
        # search asks count_tokens for every item it just scored (issue 6 FLOPs accounting)
        self._last_lengths = {(problems[i].question, tuple(steps[i])): len(encoded[i].input_ids) for i in todo}
        lengths = [len(encoded[i].input_ids) for i in todo]
        for batch in bucket_batches(lengths, self.max_tokens_per_batch):
            items = [encoded[todo[b]] for b in batch]
            scores = self._score_batch(items)
            for b, item_scores in zip(batch, scores):
                results[todo[b]] = item_scores
        return results

    def _score_batch(self, items: list[Encoded]) -> list[list[float]]:
        import torch

        width = max(len(e.input_ids) for e in items)
        input_ids = torch.full((len(items), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(items), width), dtype=torch.long)
        rows, cols = [], []
        for r, e in enumerate(items):
            input_ids[r, : len(e.input_ids)] = torch.tensor(e.input_ids, dtype=torch.long)
            attention_mask[r, : len(e.input_ids)] = 1
            rows += [r] * len(e.positions)
            cols += e.positions
        device = self.device
        with torch.inference_mode():
            flat = self.read(
                input_ids.to(device),
                attention_mask.to(device),
                torch.tensor(rows, device=device),
                torch.tensor(cols, device=device),
            )
        flat = flat.float().clamp(0.0, 1.0).tolist()
        out, k = [], 0
        for e in items:
            out.append(flat[k : k + len(e.positions)])
            k += len(e.positions)
        return out


class CandidateTokenVerifier(HFVerifier):
    """Causal-LM PRMs and judges: a step's score is P(good tokens) against P(bad tokens) at its position."""

    good_ids: list[int]
    bad_ids: list[int]

    def read(self, input_ids: Any, attention_mask: Any, rows: Any, cols: Any) -> Any:
        import torch

        logits = candidate_logits(self.model, input_ids, attention_mask, rows, cols, self.good_ids + self.bad_ids)
        n_good = len(self.good_ids)
        good = torch.logsumexp(logits[:, :n_good], dim=-1)
        bad = torch.logsumexp(logits[:, n_good:], dim=-1)
        # softmax over [good, bad], first column; with one token each this is the cards' formula
        return torch.sigmoid(good - bad)


def last_token_id(tokenizer: Any, text: str) -> int:
    return int(tokenizer.encode(text, add_special_tokens=False)[-1])
