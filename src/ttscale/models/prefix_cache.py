"""Caches keyed by token ids and found by the longest shared prefix: the generator's prefix KV reuse and
the verifiers' incremental scoring both stand on `PrefixLRU`, one cache with one eviction rule.

Search re-sends the same prefixes every round: the prompt, then every step so far. A
cache entry is indexed by the token ids it encodes; a new sequence reuses the entry
with the longest common prefix and only its new suffix is run through the model.
Entries are evicted least recently used first under a byte budget, so memory stays
bounded and a miss simply falls back to recomputing.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any, Generic, TypeVar

import numpy as np

KV = list[tuple[Any, Any]]  # per layer: (keys, values), each a tensor [kv_heads, tokens, head_dim]
K = TypeVar("K")
V = TypeVar("V")


def _shared_length(a: np.ndarray, b: np.ndarray, n: int) -> int:
    """How many of the first `n` tokens of `a` and `b` (both at least `n` long) agree before they differ."""
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if diff.size else n


def longest_prefix_match(ids: Sequence[int], candidates: Iterable[tuple[K, np.ndarray]]) -> tuple[int, K | None]:
    """(tokens shared, key) of the candidate token array sharing the longest prefix with `ids`."""
    query = np.asarray(ids, dtype=np.int64)
    best_len, best_key = 0, None
    for key, arr in candidates:
        n = min(len(arr), len(query))
        if n <= best_len:
            continue
        common = _shared_length(arr, query, n)
        if common > best_len:
            best_len, best_key = common, key
    return best_len, best_key


def common_prefix_length(seqs: Sequence[Sequence[int]]) -> int:
    """How many leading tokens all of `seqs` share."""
    first = np.asarray(seqs[0], dtype=np.int64)
    shared = len(first)
    for ids in seqs[1:]:
        shared = _shared_length(first, np.asarray(ids, dtype=np.int64), min(shared, len(ids)))
    return shared


class PrefixLRU(Generic[V]):
    """Entries keyed by token ids, found by longest shared prefix, least recently used first out.

    Subclasses decide what an entry is and what it costs; `used` is theirs to keep.
    """

    def __init__(self, budget_bytes: int) -> None:
        self.budget = budget_bytes
        self.entries: OrderedDict[tuple[int, ...], V] = OrderedDict()
        self.arrays: dict[tuple[int, ...], np.ndarray] = {}
        self.used = 0
        self.lookups = self.hits = self.reused_tokens = 0

    def __len__(self) -> int:
        return len(self.entries)

    def longest(self, ids: Sequence[int]) -> tuple[int, tuple[int, ...] | None]:
        """(tokens shared, key) of the entry sharing the longest prefix with `ids`; marks it used."""
        self.lookups += 1
        best, key = longest_prefix_match(ids, self.arrays.items())
        if key is not None:
            self.entries.move_to_end(key)
        return best, key

    def _insert(self, key: tuple[int, ...], value: V) -> None:
        self.entries[key] = value
        self.arrays[key] = np.asarray(key, dtype=np.int64)

    def _remove(self, key: tuple[int, ...]) -> V | None:
        self.arrays.pop(key, None)
        return self.entries.pop(key, None)

    def _pop_oldest(self) -> V:
        key, value = self.entries.popitem(last=False)
        del self.arrays[key]
        return value


def _nbytes(kv: KV) -> int:
    return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in kv)


class PrefixKVStore(PrefixLRU[KV]):
    """The HF generator's store: each finished row's keys/values, for the next rounds' prefixes."""

    def lookup(self, ids: Sequence[int]) -> tuple[int, KV | None]:
        """(tokens reusable, their KV) from the entry sharing the longest prefix with `ids`."""
        best_len, key = self.longest(ids)
        if key is None:
            return 0, None
        self.hits += 1
        self.reused_tokens += best_len
        return best_len, [(k[:, :best_len], v[:, :best_len]) for k, v in self.entries[key]]

    def put(self, ids: Sequence[int], kv: KV) -> None:
        key = tuple(ids)
        size = _nbytes(kv)
        if size > self.budget or not key:
            return
        old = self._remove(key)
        if old is not None:
            self.used -= _nbytes(old)
        while self.entries and self.used + size > self.budget:
            self.used -= _nbytes(self._pop_oldest())
        self._insert(key, kv)
        self.used += size

    def clear(self) -> None:
        self.entries.clear()
        self.arrays.clear()
        self.used = 0
