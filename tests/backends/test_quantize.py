"""int8 weight-only linear layers (model.quantize: int8): the arithmetic, the swap, and the HF backend on SmolLM2."""

import copy

import pytest
import torch
from torch import nn

from ttscale.backends.hf import HFGenerator
from ttscale.config import ModelConfig
from ttscale.errors import ConfigError
from ttscale.models.quantize import Int8Linear, quantize_int8
from ttscale.types import SamplingParams


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_int8_linear_multiplies_by_its_dequantised_weight_and_stays_within_half_a_step(dtype):
    torch.manual_seed(0)
    linear = nn.Linear(48, 20)
    q = Int8Linear(linear).to(dtype)
    dequantised = q.weight_int8.float() * q.scale.float()[:, None]
    # Each weight rounds to its channel's nearest step (the step itself kept in bfloat16, the kernel's dtype).
    assert bool(((dequantised - linear.weight).abs() <= q.scale.float()[:, None] * (0.5 + 1e-6)).all())
    assert int(q.weight_int8.abs().amax(dim=1).min()) >= 126  # the step is not wider than it needs to be
    expected = lambda x: x.float() @ dequantised.T + linear.bias  # noqa: E731
    prompt = torch.randn(2, 3, 48).to(dtype)  # three tokens a row: the GEMM on the dequantised weight
    step = torch.randn(2, 1, 48).to(dtype)  # one token a row: the int8 kernel, in bfloat16
    for x, tol in ((prompt, 1e-5 if dtype == torch.float32 else 5e-2), (step, 5e-2)):
        out = q(x)
        assert out.dtype == dtype and out.shape == (*x.shape[:-1], 20) and q.weight_int8.dtype == torch.int8
        assert torch.allclose(out.float(), expected(x), atol=tol, rtol=tol)


def test_a_decode_rows_numbers_do_not_depend_on_the_rows_beside_it():
    torch.manual_seed(1)
    q = Int8Linear(nn.Linear(64, 96, bias=False))
    x = torch.randn(16, 1, 64)
    together = q(x)
    assert all(torch.equal(together[i], q(x[i:i + 1])[0]) for i in range(16))
    assert torch.equal(together[:5], q(x[:5]))


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


def test_a_float32_model_keeps_float32_outside_its_linear_layers(tiny_llama):
    """Only the linear layers' inputs pass through bfloat16 (the kernel's dtype): the logits, the norms
    and the embeddings stay float32, and the logits stay close to the float model's."""
    model = copy.deepcopy(tiny_llama[0]).float()
    ids = torch.tensor([[5, 17, 99, 3, 250, 7]])
    with torch.inference_mode():
        before = model(input_ids=ids).logits
    quantize_int8(model)
    with torch.inference_mode():
        prompt = model(input_ids=ids).logits  # six tokens: the dequantised GEMM
        step = model(input_ids=ids[:, :1]).logits  # one token: the kernel
    assert prompt.dtype == step.dtype == torch.float32
    assert model.get_input_embeddings().weight.dtype == torch.float32
    assert all(p.dtype == torch.float32 for n, p in model.named_parameters() if "norm" in n)
    assert torch.corrcoef(torch.stack([prompt.flatten(), before.flatten()]))[0, 1] > 0.99
    assert torch.allclose(step[0, 0], prompt[0, 0], atol=0.05 * prompt.abs().max().item())


def test_refused_where_the_kernel_cannot_run():
    with pytest.raises(ConfigError, match="quantize"):
        ModelConfig(quantize="int4")
    with pytest.raises(ConfigError, match="unless model.backend is hf"):
        ModelConfig(quantize="int8", backend="vllm")
    for dtype in ("auto", "float32", "bfloat16", "float16"):
        assert ModelConfig(quantize="int8", dtype=dtype).quantize == "int8"  # the kernel's inputs are cast


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_the_hf_backend_decodes_smollm2_with_int8_weights_close_to_its_float_weights(smollm2, dtype):
    """The int8 model's next-token choice is the float model's at nearly every position (a broken scale
    or layout would agree at almost none): teacher-forced on a solution (the prompt's GEMM path), and on
    the int8 model's own greedy decode (the kernel, one token a step)."""
    torch_dtype = getattr(torch, dtype)
    plain = copy.deepcopy(smollm2.model).to(torch_dtype)
    gen = HFGenerator(ModelConfig(quantize="int8", dtype=dtype, max_batch_size=1), model=copy.deepcopy(plain),
                      tokenizer=smollm2.tokenizer)
    assert gen.n_params == smollm2.n_params  # FLOPs are counted on the weights, however they are stored
    text = "Question: Tom has 3 apples. He buys 4 more apples. How many apples does Tom have now?\nSolution:\n" \
           "Step 1: Tom starts with 3 apples.\nStep 2: He buys 4 more, so 3 + 4 = 7.\nThe answer is 7."
    ids = smollm2.tokenizer(text, return_tensors="pt").input_ids
    with torch.inference_mode():
        ours, theirs = gen.model(input_ids=ids).logits.argmax(-1), plain(input_ids=ids).logits.argmax(-1)
    assert (ours == theirs).float().mean() > 0.85
    prompt = "Question: Ann has 12 pens. She gives 5 away. How many pens does she have?\nSolution:\n"
    out = gen.generate([prompt], [SamplingParams(temperature=0.0, max_new_tokens=24)])[0][0]
    assert out.n_tokens == 24
    prompt_ids = smollm2.tokenizer(prompt).input_ids
    decoded = smollm2.tokenizer(prompt + out.text).input_ids
    assert decoded[:len(prompt_ids)] == prompt_ids
    with torch.inference_mode():
        choices = plain(input_ids=torch.tensor([decoded])).logits[0, len(prompt_ids) - 1:-1].argmax(-1)
    assert (choices == torch.tensor(decoded[len(prompt_ids):])).float().mean() > 0.8
