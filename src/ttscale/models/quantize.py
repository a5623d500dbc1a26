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

The kernel is vectorised, for AVX512 and for AVX2, only where the activations are bfloat16
(aten/src/ATen/native/cpu/int8mm_kernel.cpp; float32 and float16 run its scalar loop, tens of times
slower), so each layer hands it its input in bfloat16 and gives its output back in the model's
dtype. A float32 model thus keeps its norms, attention and sampling in float32, which matters where
bfloat16 is emulated (AVX2-only CPUs: SmolLM2 in bfloat16 decodes no faster than in float32 there),
and only the weights' rounding and the layer inputs' bfloat16 rounding move its numbers.

A matrix-vector kernel pays for decoding (one new token per row) and loses on a prompt: encoding
400 tokens, each row reads the weights again (12 ms a 576 x 1536 layer on an AVX2-only EPYC against
7 for a float32 GEMM). So an input of more than one token per row (prefill, a step's suffix) runs a
GEMM on the weights dequantised to the model's dtype, and a decode step always runs the kernel,
whose rows are computed independently of each other: a row's numbers never depend on how many rows
run beside it (tested).
Embeddings stay as they are: a lookup reads one row, not the table.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ttscale.errors import ModelLoadError


class Int8Linear(nn.Module):
    """`nn.Linear` with an int8 weight and per-output-channel scales; its output in its input's dtype."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach().float()
        # The step is stored in bfloat16, the kernel's dtype, rounded up (bfloat16 rounds within 2^-9 of a
        # value) so that the largest weight still fits in 127 steps, and the int8 values divided by it.
        absmax = weight.abs().amax(dim=1).clamp(min=torch.finfo(torch.float32).tiny)
        scale = (absmax / 127.0 * (1 + 2.0**-8)).to(torch.bfloat16).float()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight_int8: torch.Tensor
        self.scale: torch.Tensor
        self.register_buffer("weight_int8", torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8))
        self.register_buffer("scale", scale.to(torch.bfloat16))
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() > 2 and x.shape[-2] > 1:  # tokens of a prompt: a GEMM on the dequantised weight
            out = F.linear(x, self.weight_int8.to(x.dtype)) * self.scale.to(x.dtype)
        else:  # the scale is cast back should a `module.to(dtype)` have moved it (its values are bfloat16's)
            rows = x.reshape(-1, self.in_features).to(torch.bfloat16)
            out = torch.ops.aten._weight_int8pack_mm(rows, self.weight_int8, self.scale.to(torch.bfloat16))
            out = out.reshape(*x.shape[:-1], self.out_features).to(x.dtype)
        return out if self.bias is None else out + self.bias.to(x.dtype)


def quantize_int8(model: Any) -> int:
    """Every `nn.Linear` of `model` (the LM head included) replaced by `Int8Linear`, in place; returns how
    many. A head tied to the input embeddings is untied: the embeddings keep their float table."""
    first = next(model.parameters())
    if first.device.type != "cpu":
        raise ModelLoadError("model.quantize=int8 runs on the CPU only (its kernel is torch's CPU int8 weight-only matmul)")
    targets = [(name, module) for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, Int8Linear(module))
    if getattr(model.config, "tie_word_embeddings", False):
        model.config.tie_word_embeddings = False  # the head is its own int8 copy now
    return len(targets)
