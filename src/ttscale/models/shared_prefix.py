"""Attention over a prompt's keys and values held once for all the rows that share it.

The compact decode loop (backends/hf.py) forks each prompt n ways. Held per row, the prompt's keys
and values are read n times a decode step, once by each row's attention: at 16 rows of a
1,000-token prompt that is 740 MB a step for SmolLM2-135M in float32, more than its weights. Here a
prompt's cache is held once (a `Trunk`) and each row's cache holds only what came after it; a row's
attention is computed over the two parts apart and merged by their log-sum-exp (the cascade or
shared-prefix decomposition: Juravsky et al. 2024, "Hydragen: High-Throughput LLM Inference with
Shared Prefixes"; vLLM's cascade attention and FlashInfer's shared-prefix batch decoding). The
rows of one trunk meet its keys as one matrix product, so the shared part is read once a step and
runs at the rate of a GEMM instead of n matrix-vector products.

The attention function is registered with transformers' `AttentionInterface` under
`ATTENTION_NAME`, the documented way to give a model an attention implementation of one's own; it
computes a decode step (one query position) whose forward call carries a `SharedPrefix` under the
keyword `PREFIX_KWARG`, and hands every other call (prefills, `generate`, other users of the same
model) to transformers' SDPA attention unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ATTENTION_NAME = "ttscale_shared_prefix"
PREFIX_KWARG = "ttscale_shared_prefix"
# Architectures whose attention is plain scaled dot-product over the cache (no soft-capping, sinks
# or sliding windows), the only kind the decomposition here computes.
MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3"})


@dataclass(frozen=True)
class Trunk:
    """One prompt's cached keys and values, per layer: (keys, values), each [kv_heads, tokens, head_dim]."""

    layers: list[tuple[Any, Any]]

    @property
    def length(self) -> int:
        return int(self.layers[0][0].shape[1]) if self.layers else 0


@dataclass
class SharedPrefix:
    """Which trunk each row of a decode batch continues (-1: none) and the trunks themselves."""

    trunks: list[Trunk]
    trunk_of: list[int]
    _groups: list[tuple[Any, Trunk]] | None = field(default=None, repr=False)
    _mask: tuple[Any, Any] | None = field(default=None, repr=False)

    @classmethod
    def none(cls, rows: int) -> SharedPrefix:
        """`rows` rows that each hold their whole sequence in their own cache."""
        return cls([], [-1] * rows)

    def additive(self, mask: Any, dtype: Any) -> Any:
        """transformers' boolean mask (True: attend) as the additive one flash kernels take, converted once
        a step: every layer of a forward pass gets the same mask tensor."""
        import torch

        if mask is None or mask.dtype != torch.bool:
            return mask
        if self._mask is None or self._mask[0] is not mask or self._mask[1].dtype != dtype:
            additive = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, float("-inf"))
            self._mask = (mask, additive)
        return self._mask[1]

    def groups(self, device: Any) -> list[tuple[Any, Trunk]]:
        """(row indices, trunk) for each trunk that some row continues and that holds tokens."""
        if self._groups is None:
            import torch

            rows: dict[int, list[int]] = {}
            for row, t in enumerate(self.trunk_of):
                if t >= 0 and self.trunks[t].length:
                    rows.setdefault(t, []).append(row)
            self._groups = [(torch.tensor(r, dtype=torch.long, device=device), self.trunks[t]) for t, r in rows.items()]
        return self._groups

    def select(self, index: list[int]) -> SharedPrefix:
        """The rows `index` (in that order), keeping only the trunks they continue."""
        used = sorted({self.trunk_of[i] for i in index if self.trunk_of[i] >= 0})
        renumber = {t: k for k, t in enumerate(used)}
        return SharedPrefix([self.trunks[t] for t in used],
                            [renumber.get(self.trunk_of[i], -1) for i in index])

    def concat(self, other: SharedPrefix) -> SharedPrefix:
        offset = len(self.trunks)
        return SharedPrefix(self.trunks + other.trunks,
                            self.trunk_of + [t + offset if t >= 0 else -1 for t in other.trunk_of])

    def row_kv(self, row: int, layer: int) -> tuple[Any, Any] | None:
        t = self.trunk_of[row]
        return self.trunks[t].layers[layer] if t >= 0 and self.trunks[t].length else None


def supports(model: Any) -> bool:
    """Whether `model`'s decode steps can take their prompt's attention from a trunk."""
    cfg = model.config
    return getattr(cfg, "model_type", None) in MODEL_TYPES and getattr(cfg, "_attn_implementation", None) == "sdpa"


def enable(model: Any) -> bool:
    """Give `model` the shared-prefix attention where `supports` allows; whether it now has it.

    Calls without a `SharedPrefix` compute exactly what SDPA computed before (the same function runs them).
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if getattr(model.config, "_attn_implementation", None) == ATTENTION_NAME:
        return True
    if not supports(model):
        return False
    AttentionInterface.register(ATTENTION_NAME, shared_prefix_attention)
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)
    model.set_attn_implementation(ATTENTION_NAME)
    return True


def shared_prefix_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any,
                            scaling: float | None = None, dropout: float = 0.0, **kwargs: Any) -> tuple[Any, None]:
    """transformers' attention-function signature: query [rows, heads, q_len, d], key and value [rows,
    kv_heads, own positions, d] (the row's own cache), the mask over the own positions; returns the
    output as [rows, q_len, heads, d]."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    shared: SharedPrefix | None = kwargs.pop(PREFIX_KWARG, None)
    if shared is None or query.shape[2] != 1:
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                      **kwargs)
    rows, heads, _, dim = query.shape
    kv_heads = key.shape[1]
    group = heads // kv_heads
    scale = scaling if scaling is not None else dim**-0.5
    # One query position: a key head's `group` query heads are its query "positions" (as transformers'
    # pack_gqa does for SDPA), so grouped-query attention needs no copies of the keys.
    q = query.reshape(rows, kv_heads, group, dim)
    mask = shared.additive(attention_mask, query.dtype)
    out, lse = _attend(q, key, value, None if mask is None else mask[:, :, -1:, -key.shape[2]:], scale)
    groups = shared.groups(query.device)
    if not groups:
        return out.reshape(rows, 1, heads, dim), None
    out_t, lse_t = torch.zeros_like(out), torch.full_like(lse, float("-inf"))  # rows without a trunk weigh 0 there
    for index, trunk in groups:
        keys, values = trunk.layers[module.layer_idx]
        n = index.numel()
        # All the trunk's rows' query heads at once: [kv_heads, n * group, d] against [kv_heads, tokens, d].
        qs = q.index_select(0, index).transpose(0, 1).reshape(1, kv_heads, n * group, dim)
        o, lse_o = _attend(qs, keys.unsqueeze(0), values.unsqueeze(0), None, scale)
        out_t.index_copy_(0, index, o.reshape(kv_heads, n, group, dim).transpose(0, 1))
        lse_t.index_copy_(0, index, lse_o.reshape(kv_heads, n, group).transpose(0, 1))
    top = torch.maximum(lse, lse_t)
    w, w_t = torch.exp(lse - top).unsqueeze(-1), torch.exp(lse_t - top).unsqueeze(-1)
    wide = torch.promote_types(out.dtype, torch.float32)  # bf16 merges in float32, float64 stays float64
    merged = (out.to(wide) * w + out_t.to(wide) * w_t) / (w + w_t)
    return merged.to(query.dtype).reshape(rows, 1, heads, dim), None


def _attend(q: Any, k: Any, v: Any, mask: Any, scale: float) -> tuple[Any, Any]:
    """Softmax attention and its log-sum-exp: q [b, h, l, d], k and v [b, h, s, d], an additive mask
    broadcastable to [b, h, l, s] or None; returns ([b, h, l, d] in q's dtype, [b, h, l] in float32 or wider).

    On the CPU, torch's flash kernel, which returns the log-sum-exp it computed; elsewhere the math.
    """
    import torch

    if q.device.type == "cpu":
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, False, attn_mask=mask,
                                                                               scale=scale)
        return out, lse
    wide = torch.promote_types(q.dtype, torch.float32)
    scores = torch.matmul(q, k.transpose(-1, -2)).to(wide) * scale
    if mask is not None:
        scores = scores + mask.to(wide)
    lse = torch.logsumexp(scores, -1)
    return torch.matmul(torch.exp(scores - lse.unsqueeze(-1)).to(v.dtype), v), lse
