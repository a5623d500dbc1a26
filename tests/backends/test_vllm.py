"""The vLLM backend's mapping, checked against a stand-in `vllm` module (vLLM needs a GPU)."""

import sys
from dataclasses import replace
from types import SimpleNamespace

import pytest

from ttscale.config import ModelConfig
from ttscale.errors import MissingDependencyError
from ttscale.types import SamplingParams


def test_config_maps_to_engine_and_sampling_args(stand_in_vllm):
    from ttscale.backends.base import build_generator

    cfg = ModelConfig(backend="vllm", name_or_path="meta-llama/Llama-3.2-1B-Instruct", tensor_parallel_size=2,
                      gpu_memory_utilization=0.5, max_model_len=4096, dtype="bfloat16")
    gen = build_generator(cfg)
    (engine,) = stand_in_vllm.llms
    assert engine.kwargs == {
        "model": "meta-llama/Llama-3.2-1B-Instruct", "tensor_parallel_size": 2, "gpu_memory_utilization": 0.5,
        "dtype": "bfloat16", "seed": 0, "enable_prefix_caching": True, "max_num_seqs": 32, "max_model_len": 4096,
    }
    prompt = gen.tokenizer.bos_token + "Question: 2+2?"
    params = SamplingParams(temperature=0.8, top_p=0.9, max_new_tokens=64, stop=("\n\n",), n=3, seed=5)
    out = gen.generate([prompt, prompt], [params, replace(params, seed=9)])
    prompts, sent = engine.calls[-1]
    assert [p.kwargs for p in sent] == [{"n": 3, "temperature": 0.8, "top_p": 0.9, "max_tokens": 64, "stop": ["\n\n"],
                                         "include_stop_str_in_output": True, "seed": s, "logprobs": None}
                                        for s in (5, 9)]
    assert prompts[0]["prompt_token_ids"].count(gen.tokenizer.bos_token_id) == 1  # token ids in, so no second BOS
    assert [len(gens) for gens in out] == [3, 3] and gen.n_params > 0
    assert all(g.text.endswith("\n\n") == (g.finish_reason == "stop") for gens in out for g in gens)


@pytest.mark.parametrize("output, expected", [
    (SimpleNamespace(text="Step 1: 2 + 2 = 4.\n\n", token_ids=[1, 2, 3], finish_reason="stop", stop_reason="\n\n"),
     ("stop", 3)),
    (SimpleNamespace(text="Answer: 4", token_ids=[5, 6], finish_reason="stop", stop_reason=None), ("eos", 2)),
    (SimpleNamespace(text="Step 1: long", token_ids=[7] * 9, finish_reason="length", stop_reason=None), ("length", 9)),
    (SimpleNamespace(text="x", token_ids=[7], finish_reason="stop", stop_reason=128009), ("eos", 1)),  # stop token id
])
def test_completion_outputs_map_to_finish_reasons(output, expected):
    from ttscale.backends.vllm import to_generation

    g = to_generation(output, prompt_tokens=4)
    assert (g.finish_reason, g.n_tokens) == expected and g.prompt_tokens == 4


def test_seeds_follow_vllm_same_prompt_and_seed_same_sample_child_k_is_seed_plus_k(stand_in_vllm):
    from ttscale.backends.vllm import VLLMGenerator

    gen = VLLMGenerator(ModelConfig(backend="vllm"))
    base = SamplingParams(temperature=0.8, max_new_tokens=48, n=3, seed=11)
    (a,) = gen.generate(["Question: 3 + 4?\n"], [base])
    b = gen.generate(["Question: 3 + 4?\n"] * 2, [replace(base, n=1, seed=12), replace(base, n=1, seed=11)])
    assert [g.text for g in a][1] == b[0][0].text and a[0].text == b[1][0].text
    assert len({g.text for g in a}) == 3  # distinct children of one request


def test_missing_vllm_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    from ttscale.backends.vllm import VLLMGenerator

    with pytest.raises(MissingDependencyError, match=r"pip install 'ttscale\[vllm\]'"):
        VLLMGenerator(ModelConfig(backend="vllm"))


@pytest.mark.gpu
def test_real_vllm_engine_generates():
    vllm = pytest.importorskip("vllm")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from ttscale.backends.vllm import VLLMGenerator

    del vllm
    gen = VLLMGenerator(ModelConfig(backend="vllm", name_or_path="HuggingFaceTB/SmolLM2-135M-Instruct", gpu_memory_utilization=0.3))
    out = gen.generate(["Question: 1+1=?\nAnswer:"], [SamplingParams(max_new_tokens=8, n=2, stop=("\n",))])
    assert len(out[0]) == 2
