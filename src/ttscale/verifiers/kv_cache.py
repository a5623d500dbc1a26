"""The verifiers' KV cache for incremental scoring: scored items' KV chains and step scores.

Causality makes search's rescoring incremental: every round, beam search sends each
beam's FULL step list again, and each beam extends one scored the round before. So
every scored item's KV cache and step scores are kept (`StepKVCache`, keyed by token
ids, LRU under a byte budget); a new item reuses the entry sharing its longest token
prefix and only its remaining tokens are run. `KVSlab` holds a batch's cache while the
model runs, so reused prefixes and new tokens are written in place.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ttscale.models.prefix_cache import KV, PrefixLRU


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
    whole length (and no fresh memory is touched for the prefix).
    `refs` counts the cache's entry for it plus its live children.
    """

    length: int  # tokens it covers, its own and its parent chain's
    start: int
    kv: KV
    scores: dict[int, float]
    block: KVBlock
    parent: CachedItem | None
    refs: int = 0

    def segments(self, tokens: int) -> list[tuple[int, int, KV, int]]:
        """(from, to, kv, kv's first token) pieces covering tokens [0, tokens), walking up the chain."""
        out: list[tuple[int, int, KV, int]] = []
        item: CachedItem | None = self
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


class StepKVCache(PrefixLRU[CachedItem]):
    """Scored items' KV chains and step scores keyed by token ids; LRU under a byte budget on the blocks held."""

    def longest_prefix(self, ids: Sequence[int]) -> tuple[int, CachedItem | None]:
        """(tokens shared, entry) for the entry sharing the longest token prefix with `ids`; marks it used."""
        best, key = self.longest(ids)
        return (best, self.entries[key]) if key is not None else (0, None)

    def put_block(self, block: KVBlock, rows: Sequence[tuple[Sequence[int], int, KV, dict[int, float], Any]]) -> None:
        """Store each row (ids, start, KV views into `block`, scores, parent), evicting least recently used entries.

        Stores nothing when the block and the chains it extends cannot fit the budget.
        """
        parents = [parent for *_, parent in rows if parent is not None]
        for parent in parents:  # held first: evicting a parent's entry must not free what its child reads
            parent.refs += 1
        for ids, *_ in rows:
            self.discard(tuple(ids))
        while self.entries and self.used + block.nbytes > self.budget:
            self._release(self._pop_oldest())
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
            item = CachedItem(len(key), start, kv, scores, block, parent, refs=1)
            block.refs += 1
            self._insert(key, item)

    def discard(self, key: tuple[int, ...]) -> None:
        entry = self._remove(key)
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
        keys: Any  # views into the slab once bound (transformers types them as optional)
        values: Any

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
