"""The running batch of the HF backend's compact decode loop (HFGenerator._decode).

Rows leave it the step they end and other prompts' rows join it, so its KV cache is reshaped
between steps: rows are selected (`batch_select_indices`), caches of other lengths are lined up
by left padding that the mask hides, and columns no row attends to any more are dropped.
"""

from __future__ import annotations

from typing import Any

from ttscale.models.shared_prefix import SharedPrefix, Trunk


class RunningBatch:
    """The compact decode loop's running batch: its KV cache, mask, next positions and next tokens.

    `mask` has one column per cached position plus one for `feed`, the token each row feeds next.
    `slots[i]` is the call's row that batch row i decodes, or None for a row that only fills the
    batch to its quantum (an ended row, or a copy of a live one); such a row's tokens are dropped.
    With `shared`, each row's prompt is held once for all its rows (models/shared_prefix.py) and
    `cache` and `mask` hold what came after it; without, `cache` holds every row's whole sequence.
    """

    def __init__(self, cache: Any, mask: Any, positions: Any, feed: Any, slots: list[int | None],
                 shared: SharedPrefix | None = None) -> None:
        from ttscale.models.growing_kv import growing

        # A decode step appends in place instead of copying every layer's cache (models/growing_kv.py).
        self.cache, self.mask, self.positions, self.feed, self.slots = growing(cache), mask, positions, feed, slots
        self.shared = shared

    @classmethod
    def forked(cls, input_ids: Any, mask: Any, cache: Any, slots: list[int], n: int, config: Any,
               dtype: Any) -> RunningBatch:
        """Rows `slots`, n per prefilled prompt (`input_ids`, `mask` and `cache` as the HF backend's
        `_layout` made them), each prompt's cache held once as the trunk its rows continue.

        A row's own cache starts empty (`config`'s layers and heads, in `dtype`): its first step
        feeds the prompt's last token.
        """
        import torch
        from transformers import DynamicCache

        trunks = []
        for u in range(input_ids.shape[0]):
            columns = torch.nonzero(mask[u, : cache.get_seq_length()]).flatten()
            trunks.append(Trunk([(layer.keys[u].index_select(1, columns), layer.values[u].index_select(1, columns))
                                 for layer in cache.layers]))
        heads = config.num_attention_heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        empty = torch.zeros((len(slots), kv_heads, 0, head_dim), dtype=dtype, device=input_ids.device)
        own = DynamicCache(ddp_cache_data=[(empty, empty)] * config.num_hidden_layers)
        shared = SharedPrefix(trunks, [u for u in range(len(trunks)) for _ in range(n)])
        positions = (mask.sum(-1, keepdim=True) - 1).repeat_interleave(n, 0)
        return cls(own, mask.new_ones((len(slots), 1)), positions, input_ids[:, -1:].repeat_interleave(n, 0),
                   list(slots), shared)

    def live(self) -> list[int]:
        return [r for r in self.slots if r is not None]

    def advance(self, tokens: Any) -> None:
        import torch

        self.mask = torch.cat([self.mask, self.mask.new_ones((self.mask.shape[0], 1))], 1)
        self.positions = self.positions + 1
        self.feed = tokens.unsqueeze(1)

    def keep(self, rows: list[int], fillers: int = 0) -> RunningBatch:
        """Rows `rows` in that order, then `fillers` rows (None slots) made of rows already here."""
        import torch

        spare = [i for i, r in enumerate(self.slots) if r is None and i not in rows][:fillers]
        spare += [rows[0]] * (fillers - len(spare))
        index = torch.tensor(rows + spare, dtype=torch.long, device=self.mask.device)
        self.cache.batch_select_indices(index)
        kept = RunningBatch(self.cache, self.mask[index], self.positions[index], self.feed[index],
                            [self.slots[i] for i in rows] + [None] * len(spare),
                            self.shared.select(rows + spare) if self.shared is not None else None)
        return kept.trim()

    def shrink(self, quantum: int) -> RunningBatch:
        """Ended rows out, keeping a multiple of `quantum` rows."""
        live = [i for i, r in enumerate(self.slots) if r is not None]
        target = -(-len(live) // quantum) * quantum
        return self if target >= len(self.slots) else self.keep(live, target - len(live))

    def pad_to(self, quantum: int) -> RunningBatch:
        rows = len(self.slots)
        extra = -(-rows // quantum) * quantum - rows
        return self.keep(list(range(rows)), extra) if extra else self

    def merge(self, other: RunningBatch) -> RunningBatch:
        """Both batches' rows, each cache left-padded (mask 0) to the longer one's length."""
        import torch

        width = max(self.mask.shape[1], other.mask.shape[1])
        for b, a in ((self, other), (other, self)):
            if b.cache.get_seq_length() == 0:  # one-token prompts: nothing was prefilled
                for layer, template in zip(b.cache.layers or a.cache.layers, a.cache.layers):
                    layer.keys = template.keys.new_zeros((len(b.slots), *template.keys.shape[1:2], 0,
                                                          template.keys.shape[3]))
                    layer.values = layer.keys.clone()
        for b in (self, other):
            pad = width - b.mask.shape[1]
            if pad:
                b.mask = torch.cat([b.mask.new_zeros((b.mask.shape[0], pad)), b.mask], 1)
                for layer in b.cache.layers:
                    layer.keys = torch.cat([layer.keys.new_zeros((*layer.keys.shape[:2], pad, layer.keys.shape[3])),
                                            layer.keys], 2)
                    layer.values = torch.cat([layer.values.new_zeros((*layer.values.shape[:2], pad,
                                                                      layer.values.shape[3])), layer.values], 2)
        for mine, theirs in zip(self.cache.layers, other.cache.layers):
            mine.keys = torch.cat([mine.keys, theirs.keys], 0)
            mine.values = torch.cat([mine.values, theirs.values], 0)
        shared = None
        if self.shared is not None or other.shared is not None:
            shared = (self.shared or SharedPrefix.none(len(self.slots))).concat(
                other.shared or SharedPrefix.none(len(other.slots)))
        return RunningBatch(self.cache, torch.cat([self.mask, other.mask], 0),
                            torch.cat([self.positions, other.positions], 0), torch.cat([self.feed, other.feed], 0),
                            self.slots + other.slots, shared)

    def row_kv(self, row: int) -> list[tuple[Any, Any]]:
        """Row `row`'s keys and values per layer, [kv_heads, positions, head_dim], its prompt's first:
        every position it attends to, in order, and nothing it does not."""
        import torch

        columns = torch.nonzero(self.mask[row, : self.cache.get_seq_length()]).flatten()
        kv = []
        for i, layer in enumerate(self.cache.layers):
            keys, values = layer.keys[row].index_select(1, columns), layer.values[row].index_select(1, columns)
            trunk = self.shared.row_kv(row, i) if self.shared is not None else None
            if trunk is not None:
                keys, values = torch.cat([trunk[0], keys], 1), torch.cat([trunk[1], values], 1)
            kv.append((keys, values))
        return kv

    def trim(self) -> RunningBatch:
        """Columns no row attends to (left padding every row has left behind) dropped."""
        start = int(self.mask.any(0).nonzero()[0])
        if start:
            self.mask = self.mask[:, start:]
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, start:], layer.values[:, :, start:]
        return self
