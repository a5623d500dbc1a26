"""A KV cache layer that appends in place: the compact decode loop's cache (backends/batch.py).

transformers' `DynamicLayer.update` appends a step's keys and values with `torch.cat`, which
copies the whole cache of every layer on every decode step: at the CPU main job's shape (48 rows,
about 400 cached positions, 30 layers of SmolLM2-135M) that copy is about a tenth of a step.
`GrowingLayer` keeps its keys and values in buffers with `HEADROOM` spare positions and writes a
step into them; `keys` and `values` are views of the filled part, so every reader (attention, the
prefix store, the running batch's row selection and trimming) sees the tensors it saw before.
The arithmetic is untouched: attention reads the same numbers through a strided view.

Whoever replaces `keys` or `values` from outside (rows selected, left padding trimmed, two
batches merged) leaves the buffers behind; the next update sees that the tensors are no longer
views of its buffers and copies them into new ones, once.
"""

from __future__ import annotations

from typing import Any

from transformers.cache_utils import DynamicLayer

HEADROOM = 64  # positions allocated beyond what is filled: one copy per this many decode steps


class GrowingLayer(DynamicLayer):
    def __init__(self) -> None:
        super().__init__()
        self._buffers: tuple[Any, Any] | None = None

    @classmethod
    def adopt(cls, layer: DynamicLayer) -> GrowingLayer:
        """This layer's state (its keys and values, not copied) in a layer that appends in place."""
        grown = cls()
        grown.__dict__.update(layer.__dict__)
        return grown

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        filled, new = self.get_seq_length(), key_states.shape[-2]
        if not self._holds(filled + new):
            self._grow(filled, key_states, value_states)
        assert self._buffers is not None
        keys, values = self._buffers
        keys[:, :, filled : filled + new] = key_states
        values[:, :, filled : filled + new] = value_states
        self.keys, self.values = keys[:, :, : filled + new], values[:, :, : filled + new]
        return self.keys, self.values

    def _holds(self, length: int) -> bool:
        """Whether `keys` and `values` are still the start of the buffers, with room for `length` positions."""
        if self._buffers is None or self.keys is None or self.values is None:
            return False
        keys, values = self._buffers
        return (length <= keys.shape[-2] and self.keys.data_ptr() == keys.data_ptr()
                and self.values.data_ptr() == values.data_ptr() and self.keys.shape[0] == keys.shape[0]
                and self.keys.stride() == keys.stride() and self.values.stride() == values.stride())

    def _grow(self, filled: int, key_states: Any, value_states: Any) -> None:
        rows, heads, new, _ = key_states.shape
        size = filled + new + HEADROOM
        keys = key_states.new_empty((rows, heads, size, key_states.shape[-1]))
        values = value_states.new_empty((rows, value_states.shape[1], size, value_states.shape[-1]))
        if filled:
            keys[:, :, :filled] = self.keys
            values[:, :, :filled] = self.values
        self._buffers = (keys, values)


def growing(cache: Any) -> Any:
    """`cache` (a DynamicCache) with each plain dynamic layer appending in place; other layers as they are."""
    cache.layers = [GrowingLayer.adopt(layer) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache
