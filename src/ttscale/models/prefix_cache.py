"""Prefix KV reuse for the HF backend (issue 11).

Search re-sends the same prefixes every round: the prompt, then every step so far.
The store keeps each finished row's keys/values, indexed by the token ids they
encode; a new prompt reuses the stored entry with the longest common prefix and
only its new suffix is run through the model. LRU-evicted under a byte budget, so
memory stays bounded and a miss simply falls back to recomputing.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import TypeVar

import numpy as np
import torch

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: (keys, values), each [heads, tokens, dim]
K = TypeVar("K")


def longest_prefix_match(ids: Sequence[int], candidates: Iterable[tuple[K, np.ndarray]]) -> tuple[int, K | None]:
    """(tokens shared, key) of the candidate token array sharing the longest prefix with `ids`."""
    query = np.asarray(ids, dtype=np.int64)
    best_len, best_key = 0, None
    for key, arr in candidates:
        n = min(len(arr), len(query))
        if n <= best_len:
            continue
        diff = np.flatnonzero(arr[:n] != query[:n])
        common = int(diff[0]) if diff.size else n
        if common > best_len:
            best_len, best_key = common, key
    return best_len, best_key


def _nbytes(kv: KV) -> int:
    return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in kv)


class PrefixKVStore:
    def __init__(self, budget_bytes: int) -> None:
        self.budget = budget_bytes
        self.entries: OrderedDict[tuple[int, ...], KV] = OrderedDict()
        self.arrays: dict[tuple[int, ...], np.ndarray] = {}
        self.used = 0
        self.hits = self.lookups = self.reused_tokens = 0

    def __len__(self) -> int:
        return len(self.entries)

    def lookup(self, ids: Sequence[int]) -> tuple[int, KV | None]:
        """(tokens reusable, their KV) from the entry sharing the longest prefix with `ids`."""
        self.lookups += 1
        best_len, best_key = longest_prefix_match(ids, self.arrays.items())
        if best_key is None:
            return 0, None
        self.entries.move_to_end(best_key)
        self.hits += 1
        self.reused_tokens += best_len
        return best_len, [(k[:, :best_len], v[:, :best_len]) for k, v in self.entries[best_key]]

    def put(self, ids: Sequence[int], kv: KV) -> None:
        key = tuple(ids)
        size = _nbytes(kv)
        if size > self.budget or not key:
            return
        if key in self.entries:
            self.used -= _nbytes(self.entries.pop(key))
            del self.arrays[key]
        while self.entries and self.used + size > self.budget:
            old, old_kv = self.entries.popitem(last=False)
            del self.arrays[old]
            self.used -= _nbytes(old_kv)
        self.entries[key] = kv
        self.arrays[key] = np.asarray(key, dtype=np.int64)
        self.used += size

    def clear(self) -> None:
        self.entries.clear()
        self.arrays.clear()
        self.used = 0
