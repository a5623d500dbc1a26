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

    @classmethod
    def none(cls, rows: int) -> SharedPrefix:
        """`rows` rows that each hold their whole sequence in their own cache."""
        return cls([], [-1] * rows)

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
    group = heads // kv_heads  # grouped-query attention: query head h reads key head h // group
    scale = scaling if scaling is not None else dim**-0.5
    q = query.reshape(rows, kv_heads, group, dim)
    scores = torch.matmul(q, key.transpose(-1, -2)).float() * scale  # [rows, kv_heads, group, own]
    if attention_mask is not None:
        mask = attention_mask[:, :, -1:, -key.shape[2]:].reshape(rows, 1, 1, -1)
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask.float()
    lse = torch.logsumexp(scores, -1, keepdim=True)
    out = torch.matmul(torch.exp(scores - lse).to(value.dtype), value).float()  # [rows, kv_heads, group, d]
    for index, trunk in shared.groups(query.device):
        keys, values = trunk.layers[module.layer_idx]
        n = index.numel()
        # All the trunk's rows' query heads against its keys at once: [kv_heads, n * group, d] x [kv_heads, d, tokens].
        qs = q.index_select(0, index).permute(1, 0, 2, 3).reshape(kv_heads, n * group, dim)
        s = torch.matmul(qs, keys.transpose(-1, -2)).float() * scale
        lse_t = torch.logsumexp(s, -1, keepdim=True)
        o_t = torch.matmul(torch.exp(s - lse_t).to(values.dtype), values).float()
        o_t = o_t.reshape(kv_heads, n, group, dim).permute(1, 0, 2, 3)
        lse_t = lse_t.reshape(kv_heads, n, group, 1).permute(1, 0, 2, 3)
        lse_r = lse.index_select(0, index)
        top = torch.maximum(lse_r, lse_t)
        w_r, w_t = torch.exp(lse_r - top), torch.exp(lse_t - top)
        out.index_copy_(0, index, (out.index_select(0, index) * w_r + o_t * w_t) / (w_r + w_t))
    return out.to(query.dtype).reshape(rows, 1, heads, dim), None
