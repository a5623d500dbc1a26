"""`model.batch_invariant`: a row's sample depends on its own prompt alone, in bf16 too."""

from __future__ import annotations

import pytest

from ttscale.config import ModelConfig
from ttscale.types import SamplingParams


@pytest.fixture(scope="module")
def bf16_llama(smollm2):
    """A small random Llama in bfloat16 with SmolLM2's tokenizer: wide enough that bf16 rounding
    shows when padding and batch shapes change."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = smollm2.tokenizer
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():  # sharper logits than the default init, so rounding flips a sampled token
        model.lm_head.weight.mul_(40)
    return model.to(torch.bfloat16).eval(), tok


PROMPTS = ["Question: 1 + 1?\nSolution:\n", "Question: " + "seven times eight, then add three; " * 6 + "?\nSolution:\n",
           "Q: 2?\n", "Question: A much longer question about apples and pears and plums " * 3 + "?\n"]


def _samples(model, tok, invariant: bool, together: bool) -> list[list[str]]:
    from ttscale.backends.hf import HFGenerator

    gen = HFGenerator(ModelConfig(batch_invariant=invariant, max_batch_size=32), model=model, tokenizer=tok)
    params = [SamplingParams(temperature=1.0, max_new_tokens=24, n=4, seed=100 + i) for i in range(len(PROMPTS))]
    if together:
        rows = gen.generate(PROMPTS, params)
    else:
        rows = [gen.generate([p], [q])[0] for p, q in zip(PROMPTS, params)]
    return [[g.text for g in row] for row in rows]


def test_batch_invariant_rows_are_the_same_alone_and_batched_in_bf16(bf16_llama):
    model, tok = bf16_llama
    assert _samples(model, tok, True, together=True) == _samples(model, tok, True, together=False)


def test_without_it_bf16_padding_moves_samples_which_is_what_the_setting_is_for(bf16_llama):
    """The control: if bf16 batching never moved a sample here, the test above would prove nothing."""
    model, tok = bf16_llama
    assert _samples(model, tok, False, together=True) != _samples(model, tok, False, together=False)


def test_vllm_runs_in_its_batch_invariant_mode(stand_in_vllm, monkeypatch):
    import os

    from ttscale.backends.vllm import VLLMGenerator

    monkeypatch.delenv("VLLM_BATCH_INVARIANT", raising=False)
    VLLMGenerator(ModelConfig(backend="vllm", name_or_path="embedded:smollm2"))
    assert "VLLM_BATCH_INVARIANT" not in os.environ
    VLLMGenerator(ModelConfig(backend="vllm", name_or_path="embedded:smollm2", batch_invariant=True))
    assert os.environ["VLLM_BATCH_INVARIANT"] == "1"
