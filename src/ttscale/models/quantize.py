"""int8 weight-only linear layers for decoding one stream on the CPU (`model.quantize: int8`).

Decoding one row reads every weight once per token and does two flops per weight read, so its speed
is the memory's: SmolLM2-135M in bf16 streams about 270 MB a token. llama.cpp serves the same GGUF
from its 4-bit blocks. Here each linear layer keeps its weight as int8 with one float scale per
output channel (symmetric, absmax / 127: LLM.int8's vector-wise quantisation without the outlier
split, Dettmers et al. 2022; gpt-fast's int8 weight-only mode) and multiplies through torch's CPU
kernel for exactly that layout, `aten._weight_int8pack_mm`, which dequantises inside the kernel:
half the bytes of bf16 and a quarter of float32.

That kernel pays at one row and loses at many: it is a matrix-vector kernel, while bf16 at 16 or 48
rows runs a GEMM that reuses each weight it loads (bench/single_stream.py times one row,
bench/quantize.py the main job's 48). So this is the server's setting, not the batched search's; and
it changes the numbers (each weight moves by up to half a step of its channel's scale), so what it
costs the task is measured there, paired, never assumed.

It needs bfloat16 activations. PyTorch's x86 kernel (aten/src/ATen/native/cpu/int8mm_kernel.cpp) is
vectorised, for AVX512 and for AVX2, only where the activations are bfloat16; float32 and float16
run its scalar loop. On an AVX2-only EPYC with one thread, a 576 x 1536 layer took 0.94 ms for one
float32 row (float32 weights: 0.11) and 85 ms for 48 rows (2.3), and the main job's recipe on two
problems ran 18x slower than with its float32 weights. On such a CPU bfloat16 itself is emulated,
and int8 with it still trails float32 weights (0.17 against 0.11 ms at one row), so int8 is for
CPUs with native bfloat16 (AVX512-BF16, AMX).
Embeddings stay as they are: a lookup reads one row, not the table.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ttscale.errors import ModelLoadError


class Int8Linear(nn.Module):
    """`nn.Linear` with an int8 weight and per-output-channel scales, in the activations' dtype."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1).clamp(min=torch.finfo(torch.float32).tiny) / 127.0
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight_int8: torch.Tensor
        self.scale: torch.Tensor
        self.register_buffer("weight_int8", torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8))
        self.register_buffer("scale", scale.to(linear.weight.dtype))
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        out = torch.ops.aten._weight_int8pack_mm(rows.to(self.scale.dtype), self.weight_int8, self.scale)
        out = out.reshape(*x.shape[:-1], self.out_features)
        return out if self.bias is None else out + self.bias


def quantize_int8(model: Any) -> int:
    """Every `nn.Linear` of `model` (the LM head included) replaced by `Int8Linear`, in place; returns how
    many. A head tied to the input embeddings is untied: the embeddings keep their float table."""
    first = next(model.parameters())
    if first.device.type != "cpu":
        raise ModelLoadError("model.quantize=int8 runs on the CPU only (its kernel is torch's CPU int8 weight-only matmul)")
    if first.dtype != torch.bfloat16:
        raise ModelLoadError(f"model.quantize=int8 needs model.dtype: bfloat16, not {str(first.dtype).removeprefix('torch.')}: "
                             "torch's int8 kernel is vectorised for bfloat16 activations only, and runs other dtypes "
                             "in a scalar loop (tens of times slower than leaving the weights as they are)")
    targets = [(name, module) for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, Int8Linear(module))
    if getattr(model.config, "tie_word_embeddings", False):
        model.config.tie_word_embeddings = False  # the head is its own int8 copy now
    return len(targets)
