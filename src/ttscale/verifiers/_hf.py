"""What every model-based verifier shares: loading, length-bucketed batching, reading one output per step.

A family (rlhflow.py, math_shepherd.py, ...) only says how a (problem, steps) item
becomes token ids plus the positions whose output scores each step (`encode`), and
how those positions' outputs become scores in [0, 1] (`read`). Everything is causal,
so one forward pass over the whole solution scores every step, and a step's score
does not depend on the steps after it.

Causality also makes search's rescoring incremental (issue 11): every round, beam
search sends each beam's FULL step list again, and each beam extends one scored the
round before. So every scored item's KV cache and step scores are kept
(`StepKVCache`, keyed by token ids, LRU under a byte budget); a new item reuses the
entry sharing its longest token prefix and only its remaining tokens are run. The
match is on token ids, not on step strings, so a chat template or tokenizer that
re-tokenizes the old text differently once a step is appended simply matches a
shorter prefix (at worst none: full scoring); a reused score is one read at a
position inside the matched prefix, whose output depends on nothing after it.
"""

from __future__ import annotations

import functools
import inspect
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ttscale.backends.loading import cache_kwarg
from ttscale.config import VerifierConfig
from ttscale.errors import ConfigError
from ttscale.types import Problem


@dataclass(frozen=True)
class Encoded:
    """One item as the model reads it: token ids and, per step, the position whose output scores it."""

    input_ids: list[int]
    positions: list[int]


KV = list[tuple[Any, Any]]  # per layer: (keys, values), each a tensor [kv_heads, tokens, head_dim]


class KVBlock:
    """One scoring batch's new KV (a copy of the tokens it ran), shared by the cache entries of its rows."""

    def __init__(self, tensors: Sequence[Any]) -> None:
        self.nbytes = sum(t.numel() * t.element_size() for t in tensors)
        self.refs = 0  # live items whose KV lives here


@dataclass(eq=False)
class CachedItem:
    """A scored item: the KV of its tokens [start, len(ids)) (views into its block), the rest from `parent`.

    Chained, not copied: an item that extends a cached one stores only its new tokens,
    so beams that grow by a step a round cost their new step each round, not their
    whole length (and no fresh memory is touched for the prefix; issue 11).
    `refs` counts the cache's entry for it plus its live children.
    """

    ids: Any  # numpy int64 array, for the prefix match
    start: int
    kv: KV
    scores: dict[int, float]
    block: KVBlock
    parent: CachedItem | None
    refs: int = 0

    def segments(self, tokens: int) -> list[tuple[int, int, KV, int]]:
        """(from, to, kv, kv's first token) pieces covering tokens [0, tokens), walking up the chain."""
        out, item = [], self
        while item is not None and tokens > 0:
            if tokens > item.start:
                out.append((item.start, tokens, item.kv, item.start))
                tokens = item.start
            item = item.parent
        return out


@dataclass(frozen=True)
class Reuse:
    """What an item takes from the cache: its first `tokens` tokens' KV (from `item`) and the scores read in them.

    `whole` is the key of the entry when all of its tokens are reused: the new item supersedes it.
    """

    tokens: int = 0
    item: CachedItem | None = None
    scores: dict[int, float] = field(default_factory=dict)
    whole: tuple[int, ...] | None = None


class StepKVCache:
    """Scored items' KV chains and step scores keyed by token ids; LRU under a byte budget on the blocks held."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget = budget_bytes
        self.entries: OrderedDict[tuple[int, ...], CachedItem] = OrderedDict()
        self.used = 0
        self.lookups = self.hits = self.reused_tokens = 0

    def __len__(self) -> int:
        return len(self.entries)

    def longest_prefix(self, ids: Sequence[int]) -> tuple[int, CachedItem | None]:
        """(tokens shared, entry) for the entry sharing the longest token prefix with `ids`; marks it used."""
        from ttscale.backends.kv_cache import longest_prefix_match

        self.lookups += 1
        best, best_key = longest_prefix_match(ids, ((key, entry.ids) for key, entry in self.entries.items()))
        if best_key is None:
            return 0, None
        self.entries.move_to_end(best_key)
        return best, self.entries[best_key]

    def put_block(self, block: KVBlock, rows: Sequence[tuple[Sequence[int], int, KV, dict[int, float], Any]]) -> None:
        """Store each row (ids, start, KV views into `block`, scores, parent), evicting least recently used entries.

        Stores nothing when the block and the chains it extends cannot fit the budget.
        """
        import numpy as np

        parents = [parent for *_, parent in rows if parent is not None]
        for parent in parents:  # held first: evicting a parent's entry must not free what its child reads
            parent.refs += 1
        for ids, *_ in rows:
            self.discard(tuple(ids))
        while self.entries and self.used + block.nbytes > self.budget:
            self._release(self.entries.popitem(last=False)[1])
        if self.used + block.nbytes > self.budget:
            for parent in parents:
                self._release(parent)
            return
        self.used += block.nbytes
        for ids, start, kv, scores, parent in rows:
            key = tuple(ids)
            if key in self.entries:  # an item sent twice in one call is stored once
                if parent is not None:
                    self._release(parent)
                continue
            item = CachedItem(np.asarray(ids, dtype=np.int64), start, kv, scores, block, parent, refs=1)
            block.refs += 1
            self.entries[key] = item

    def discard(self, key: tuple[int, ...]) -> None:
        entry = self.entries.pop(key, None)
        if entry is not None:
            self._release(entry)

    def _release(self, item: CachedItem | None) -> None:
        while item is not None:
            item.refs -= 1
            if item.refs > 0:
                return
            item.block.refs -= 1
            if item.block.refs == 0:
                self.used -= item.block.nbytes
            item = item.parent

    def clear(self) -> None:
        for key in list(self.entries):
            self.discard(key)


class KVSlab:
    """Scratch buffers, one per layer and K/V, that a batch's cache lives in while the model runs.

    Reused from batch to batch (grown when a batch needs more), so stacking the
    reused prefixes and appending the new tokens' KV write into memory already
    mapped instead of two fresh tensors per layer per batch. Zero-filled when
    allocated, so padding columns only ever hold finite values (masked either way).
    """

    def __init__(self) -> None:
        self.buffers: dict[tuple[int, int], Any] = {}

    def view(self, layer: int, which: int, shape: tuple[int, ...], dtype: Any, device: Any) -> Any:
        import math

        import torch

        numel = math.prod(shape)
        buf = self.buffers.get((layer, which))
        if buf is None or buf.numel() < numel or buf.dtype != dtype or buf.device != device:
            buf = torch.zeros(numel + numel // 4, dtype=dtype, device=device)  # room for the next rounds' growth
            self.buffers[(layer, which)] = buf
        return buf[:numel].view(shape)

    def clear(self) -> None:
        self.buffers.clear()


@functools.cache
def slab_layer_class() -> type:
    """A transformers cache layer over `KVSlab` views: new tokens' KV is written in place, never concatenated."""
    from transformers.cache_utils import DynamicLayer

    class SlabLayer(DynamicLayer):
        def __init__(self, slab: KVSlab, index: int, width: int) -> None:
            super().__init__()
            self.slab, self.index, self.width, self.filled = slab, index, width, 0

        def bind(self, rows: int, heads: int, dim: int, dtype: Any, device: Any) -> None:
            shape = (rows, heads, self.width, dim)
            self.keys = self.slab.view(self.index, 0, shape, dtype, device)
            self.values = self.slab.view(self.index, 1, shape, dtype, device)
            self.dtype, self.device, self.is_initialized = dtype, device, True

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            if not self.is_initialized:
                rows, heads, _, dim = key_states.shape
                self.bind(rows, heads, dim, key_states.dtype, key_states.device)
            end = self.filled + key_states.shape[-2]
            self.keys[:, :, self.filled : end] = key_states
            self.values[:, :, self.filled : end] = value_states
            self.filled = end
            return self.keys[:, :, :end], self.values[:, :, :end]

        def get_seq_length(self) -> int:
            return self.filled

    return SlabLayer


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


class HFVerifier:
    """Base of the model-based verifiers. Subclasses set `name`, `default_model` and implement encode/read.

    `kv_cache_bytes` bounds the incremental-scoring cache (see the module docstring);
    0 turns it off and every item is scored in full.
    """

    name = "hf"
    default_model = ""

    def __init__(
        self,
        cfg: VerifierConfig | None = None,
        *,
        model: Any = None,
        tokenizer: Any = None,
        kv_cache_bytes: int | None = None,
    ) -> None:
        self.cfg = cfg or VerifierConfig(name=self.name)
        if kv_cache_bytes is None:
            kv_cache_bytes = self.cfg.kv_cache_mb << 20
        if (model is None) != (tokenizer is None):
            raise ConfigError(f"verifier '{self.name}': pass both model= and tokenizer=, or neither")
        if kv_cache_bytes < 0:
            raise ConfigError(f"verifier '{self.name}': kv_cache_bytes={kv_cache_bytes}; accepted: >= 0 (0 = off)")
        if model is None:
            model, tokenizer = self._load(self.cfg.model or self.default_model, self.cfg.device, self.cfg.dtype)
        self.model = model
        self.tokenizer = tokenizer
        self.max_tokens_per_batch = self.cfg.max_tokens_per_batch
        self.pad_id = pad_id_of(tokenizer)
        self._last_lengths: dict[tuple[str, tuple[str, ...]], int] = {}
        self._setup()
        self.n_params = sum(p.numel() for p in self._modules_for_params().parameters())
        self._read_takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(self.read).parameters.values())
        self.kv_cache = StepKVCache(kv_cache_bytes) if kv_cache_bytes and self._takes_kv_cache() else None
        self._slab = KVSlab()
        self._cache_kwarg = cache_kwarg(self.model)

    # -- per family ---------------------------------------------------------------------
    def _load(self, name_or_path: str, device: str, dtype: str) -> tuple[Any, Any]:
        from transformers import AutoModelForCausalLM

        from ttscale.backends.loading import load_pretrained

        return load_pretrained(AutoModelForCausalLM, name_or_path, None, device, dtype)

    def _setup(self) -> None:
        """Look up the family's special token ids once the tokenizer is known."""

    def _modules_for_params(self) -> Any:
        return self.model

    def _takes_kv_cache(self) -> bool:
        # transformers' own classes take a DynamicCache and position ids; remote code
        # (Qwen2ForProcessRewardModel) may predate them, so it is always scored in full,
        # as is a family whose `read` cannot pass model keyword arguments on
        return self._read_takes_kwargs and type(self.model).__module__.startswith("transformers.")

    def encode(self, problem: Problem, steps: Sequence[str]) -> Encoded:
        raise NotImplementedError

    def read(self, input_ids: Any, attention_mask: Any, rows: Any, cols: Any, **model_kwargs: Any) -> Any:
        """Scores in [0, 1] at the (row, col) positions of one padded batch, as a 1-D tensor.

        `model_kwargs` go to the model's forward as they are: use_cache, and the cache and
        position ids when a cached prefix is reused. A family whose `read` takes no
        `**model_kwargs` is called without them and always scored in full.
        """
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------
    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def count_tokens(self, problem: Problem, steps: Sequence[str]) -> int:
        """Tokens run through the model for this item by the last score() (all of them if it was not scored)."""
        if not steps:
            return 0
        known = self._last_lengths.get((problem.question, tuple(steps)))
        return known if known is not None else len(self.encode(problem, steps).input_ids)

    def score(self, problems: Sequence[Problem], steps: Sequence[Sequence[str]]) -> list[list[float]]:
        results: list[list[float]] = [[] for _ in problems]
        todo = [i for i, s in enumerate(steps) if s]
        encoded = {i: self.encode(problems[i], steps[i]) for i in todo}
        reuse = {i: self._reuse(encoded[i]) for i in todo}
        run = [len(encoded[i].input_ids) - reuse[i].tokens for i in todo]
        # search asks count_tokens for every item it just scored (issue 6 FLOPs accounting)
        self._last_lengths = {(problems[i].question, tuple(steps[i])): n for i, n in zip(todo, run)}
        for batch in bucket_batches(run, self.max_tokens_per_batch):
            scores = self._score_batch([encoded[todo[b]] for b in batch], [reuse[todo[b]] for b in batch])
            for b, item_scores in zip(batch, scores):
                results[todo[b]] = item_scores
        return results

    def _reuse(self, e: Encoded) -> Reuse:
        """The longest cached prefix of `e` that holds a score for every read position inside it."""
        if self.kv_cache is None:
            return Reuse()
        shared, entry = self.kv_cache.longest_prefix(e.input_ids)
        if entry is None:
            return Reuse()
        # >= 1 token must run; a read position the entry never scored must run too
        unscored = [p for p in e.positions if p < shared and p not in entry.scores]
        tokens = min([shared, len(e.input_ids) - 1, *unscored])
        if tokens == 0:
            return Reuse()
        self.kv_cache.hits += 1
        self.kv_cache.reused_tokens += tokens
        whole = tuple(e.input_ids[:shared]) if shared == len(entry.ids) < len(e.input_ids) else None
        return Reuse(tokens, entry, {p: entry.scores[p] for p in e.positions if p < tokens}, whole)

    def _score_batch(self, items: list[Encoded], reuse: list[Reuse]) -> list[list[float]]:
        """One forward over the new tokens of each item; rows are [pad | reused prefix | new tokens | pad].

        Keeping each row's tokens contiguous means no query row is fully masked (a pad
        query after the new tokens still sees them), and positions from the mask's
        cumsum give a reused prefix the positions its keys were rotated with.
        """
        import torch

        width_c = max(r.tokens for r in reuse)
        width_s = max(len(e.input_ids) - r.tokens for e, r in zip(items, reuse))
        input_ids = torch.full((len(items), width_c + width_s), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(items), width_c + width_s), dtype=torch.long)
        rows, cols = [], []
        for row, (e, r) in enumerate(zip(items, reuse)):
            start = width_c - r.tokens
            input_ids[row, start : start + len(e.input_ids)] = torch.tensor(e.input_ids, dtype=torch.long)
            attention_mask[row, start : start + len(e.input_ids)] = 1
            new = [p - r.tokens for p in e.positions if p >= r.tokens]
            rows += [row] * len(new)
            cols += new
        device = self.device
        model_kwargs: dict[str, Any] = {}
        with torch.inference_mode():
            if self.kv_cache is not None:
                model_kwargs["use_cache"] = True
                model_kwargs[self._cache_kwarg] = self._prefilled(reuse, width_c + width_s)
                model_kwargs["position_ids"] = (attention_mask.cumsum(-1) - 1).clamp(min=0)[:, width_c:].to(device)
            elif self._read_takes_kwargs:
                model_kwargs["use_cache"] = False
            flat = self.read(
                input_ids[:, width_c:].to(device),
                attention_mask.to(device),
                torch.tensor(rows, dtype=torch.long, device=device),
                torch.tensor(cols, dtype=torch.long, device=device),
                **model_kwargs,
            )
            out = self._assemble(items, reuse, flat.float().clamp(0.0, 1.0).tolist())
            if self.kv_cache is not None:
                self._remember(model_kwargs[self._cache_kwarg], items, reuse, out, width_c)
        return out

    @staticmethod
    def _assemble(items: list[Encoded], reuse: list[Reuse], flat: list[float]) -> list[list[float]]:
        """Each item's step scores: reused below its cached prefix, read from this batch's `flat` after it."""
        out, k = [], 0
        for e, r in zip(items, reuse):
            new = [p for p in e.positions if p >= r.tokens]
            computed = dict(zip(new, flat[k : k + len(new)]))
            k += len(new)
            out.append([r.scores[p] if p < r.tokens else computed[p] for p in e.positions])
        return out

    def _prefilled(self, reuse: list[Reuse], width: int) -> Any:
        """A cache over the slab, `width` columns wide, holding each row's reused prefix KV right-aligned."""
        from transformers.cache_utils import Cache

        layer = slab_layer_class()
        cache = Cache(layer_class_to_replicate=lambda: layer(self._slab, len(cache.layers), width))
        template = next((r.item for r in reuse if r.tokens), None)
        if template is None:
            return cache
        for index, (k0, _) in enumerate(template.kv):
            cache.layers.append(layer(self._slab, index, width))
            cache.layers[-1].bind(len(reuse), k0.shape[0], k0.shape[2], k0.dtype, k0.device)
        prefix = max(r.tokens for r in reuse)
        for row, r in enumerate(reuse):
            offset = prefix - r.tokens
            for lo, hi, kv, first in r.item.segments(r.tokens) if r.tokens else []:
                for slab_layer, (keys, values) in zip(cache.layers, kv):
                    slab_layer.keys[row, :, offset + lo : offset + hi] = keys[:, lo - first : hi - first]
                    slab_layer.values[row, :, offset + lo : offset + hi] = values[:, lo - first : hi - first]
        for slab_layer in cache.layers:
            slab_layer.filled = prefix
        return cache

    def _remember(
        self, cache: Any, items: list[Encoded], reuse: list[Reuse], scores: list[list[float]], width_c: int
    ) -> None:
        """Store each row's new tokens' KV (one copy out of the slab for the batch) chained to what it reused.

        An entry an item reused whole is dropped from the index: the item's own entry
        covers every token of it (beam search never returns to a parent once it has
        children); its KV stays as long as a child reads it.
        """
        width_s = max(len(e.input_ids) - r.tokens for e, r in zip(items, reuse))
        new = [
            (
                layer.keys[:, :, width_c : width_c + width_s].clone(),
                layer.values[:, :, width_c : width_c + width_s].clone(),
            )
            for layer in cache.layers
        ]
        block = KVBlock([t for pair in new for t in pair])
        rows = []
        for row, (e, r, sc) in enumerate(zip(items, reuse, scores)):
            n = len(e.input_ids) - r.tokens
            kv = [(keys[row, :, :n], values[row, :, :n]) for keys, values in new]
            rows.append((e.input_ids, r.tokens, kv, dict(zip(e.positions, sc)), r.item if r.tokens else None))
        self.kv_cache.put_block(block, rows)
        for r in reuse:
            if r.whole is not None:
                self.kv_cache.discard(r.whole)


class CandidateTokenVerifier(HFVerifier):
    """Causal-LM PRMs and judges: a step's score is P(good tokens) against P(bad tokens) at its position."""

    good_ids: list[int]
    bad_ids: list[int]

    def read(self, input_ids: Any, attention_mask: Any, rows: Any, cols: Any, **model_kwargs: Any) -> Any:
        import torch

        ids = self.good_ids + self.bad_ids
        logits = candidate_logits(self.model, input_ids, attention_mask, rows, cols, ids, **model_kwargs)
        n_good = len(self.good_ids)
        good = torch.logsumexp(logits[:, :n_good], dim=-1)
        bad = torch.logsumexp(logits[:, n_good:], dim=-1)
        # softmax over [good, bad], first column; with one token each this is the cards' formula
        return torch.sigmoid(good - bad)


def last_token_id(tokenizer: Any, text: str) -> int:
    return int(tokenizer.encode(text, add_special_tokens=False)[-1])
