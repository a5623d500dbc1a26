"""int8 weight-only linear layers (model.quantize: int8): the arithmetic, the swap, and the HF backend on SmolLM2."""

import copy

import pytest
import torch
from torch import nn

from ttscale.backends.hf import HFGenerator
from ttscale.config import ModelConfig
from ttscale.errors import ConfigError, ModelLoadError
from ttscale.models.quantize import Int8Linear, quantize_int8
from ttscale.types import SamplingParams


def test_int8_linear_multiplies_by_its_dequantised_weight_and_stays_within_half_a_step():
    torch.manual_seed(0)
    linear = nn.Linear(48, 20)
    q = Int8Linear(linear)
    x = torch.randn(2, 3, 48)
    dequantised = q.weight_int8.float() * q.scale[:, None]
    assert torch.allclose(q(x), x @ dequantised.T + linear.bias, atol=1e-5)
    # Each weight rounds to its channel's nearest step: off by at most half a step.
    assert bool(((dequantised - linear.weight).abs() <= q.scale[:, None] / 2 + 1e-7).all())
    assert q(x).shape == (2, 3, 20) and q.weight_int8.dtype == torch.int8


def test_every_linear_layer_is_swapped_and_the_tied_head_untied(tiny_llama):
    model = copy.deepcopy(tiny_llama[0]).to(torch.bfloat16)
    ids = torch.tensor([[5, 17, 99, 3, 250, 7]])
    with torch.inference_mode():
        before = model(input_ids=ids).logits
    linears = sum(isinstance(m, nn.Linear) for m in model.modules())
    embeddings = model.get_input_embeddings().weight.clone()
    assert quantize_int8(model) == linears == 7 * model.config.num_hidden_layers + 1
    assert not any(isinstance(m, nn.Linear) for m in model.modules())
    assert torch.equal(model.get_input_embeddings().weight, embeddings)
    with torch.inference_mode():
        after = model(input_ids=ids).logits
    assert not torch.equal(after, before)  # the weights did move
    assert torch.corrcoef(torch.stack([after.flatten(), before.flatten()]))[0, 1] > 0.99


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
def test_refused_unless_the_activations_are_bfloat16_where_the_kernel_is_vectorised(tiny_llama, dtype):
    """torch's int8 kernel runs float32 and float16 in a scalar loop (tens of times slower than the
    float weights): a model in any dtype but bfloat16 is refused before a layer is swapped."""
    model = copy.deepcopy(tiny_llama[0]).to(dtype)
    with pytest.raises(ModelLoadError, match=f"model.dtype: bfloat16, not {str(dtype).removeprefix('torch.')}"):
        quantize_int8(model)
    assert any(isinstance(m, nn.Linear) for m in model.modules())


def test_refused_where_the_kernel_cannot_run():
    with pytest.raises(ConfigError, match="quantize"):
        ModelConfig(quantize="int4")
    with pytest.raises(ConfigError, match="unless model.backend is hf"):
        ModelConfig(quantize="int8", backend="vllm")
    for dtype in ("float32", "float16"):
        with pytest.raises(ConfigError, match="model.quantize='int8'.*model.dtype bfloat16"):
            ModelConfig(quantize="int8", dtype=dtype)
    assert ModelConfig(quantize="int8", dtype="auto").quantize == "int8"  # auto is bfloat16 where int8 pays


def test_the_hf_backend_decodes_smollm2_with_int8_weights_close_to_bf16(smollm2):
    """Teacher-forced on a solution's tokens, the int8 model's next-token choice is bf16's at nearly
    every position (a broken scale or layout would agree at almost none)."""
    bf16 = copy.deepcopy(smollm2.model).to(torch.bfloat16)
    gen = HFGenerator(ModelConfig(quantize="int8", dtype="bfloat16"), model=copy.deepcopy(bf16),
                      tokenizer=smollm2.tokenizer)
    assert gen.n_params == smollm2.n_params  # FLOPs are counted on the weights, however they are stored
    text = "Question: Tom has 3 apples. He buys 4 more apples. How many apples does Tom have now?\nSolution:\n" \
           "Step 1: Tom starts with 3 apples.\nStep 2: He buys 4 more, so 3 + 4 = 7.\nThe answer is 7."
    ids = smollm2.tokenizer(text, return_tensors="pt").input_ids
    with torch.inference_mode():
        ours, theirs = gen.model(input_ids=ids).logits.argmax(-1), bf16(input_ids=ids).logits.argmax(-1)
    assert (ours == theirs).float().mean() > 0.85
    out = gen.generate(["Question: What is 2 + 3?\nSolution:\n"], [SamplingParams(temperature=0.0, max_new_tokens=12)])
    assert out[0][0].n_tokens > 0 and out[0][0].text.strip()
