"""The vLLM backend's mapping, checked against a stand-in `vllm` module (vLLM needs a GPU)."""

import sys
import types
from types import SimpleNamespace

import pytest

from ttscale.config import ModelConfig
from ttscale.errors import MissingDependencyError
from ttscale.types import SamplingParams


class _StandInLLM:
    last: "_StandInLLM"

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        _StandInLLM.last = self
        from transformers import AutoTokenizer

        from ttscale.backends.loading import cache_root

        self.tok = AutoTokenizer.from_pretrained(cache_root() / "embedded" / "smollm2")
        hf = SimpleNamespace(hidden_size=64, num_hidden_layers=2, intermediate_size=128, num_attention_heads=4,
                             num_key_value_heads=2, vocab_size=100, tie_word_embeddings=True)
        self.llm_engine = SimpleNamespace(model_config=SimpleNamespace(hf_config=hf))

    def get_tokenizer(self):
        return self.tok

    def generate(self, prompts, sampling, use_tqdm=True):
        self.prompts, self.sampling = prompts, sampling
        outs = [
            SimpleNamespace(text="Step 1: 2 + 2 = 4.\n\n", token_ids=[1, 2, 3], finish_reason="stop", stop_reason="\n\n"),
            SimpleNamespace(text="Answer: 4", token_ids=[5, 6], finish_reason="stop", stop_reason=None),
            SimpleNamespace(text="Step 1: long", token_ids=[7] * 9, finish_reason="length", stop_reason=None),
        ]
        return [SimpleNamespace(outputs=outs[: sampling.kwargs["n"]]) for _ in prompts]


@pytest.fixture
def stand_in_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.LLM = _StandInLLM
    module.SamplingParams = lambda **kw: SimpleNamespace(kwargs=kw)
    monkeypatch.setitem(sys.modules, "vllm", module)
    return module


def test_config_maps_to_engine_and_sampling_args(stand_in_vllm):
    from ttscale.backends.base import build_generator

    cfg = ModelConfig(backend="vllm", name_or_path="meta-llama/Llama-3.2-1B-Instruct", tensor_parallel_size=2,
                      gpu_memory_utilization=0.5, max_model_len=4096, dtype="bfloat16")
    gen = build_generator(cfg)
    assert _StandInLLM.last.kwargs == {
        "model": "meta-llama/Llama-3.2-1B-Instruct", "tensor_parallel_size": 2, "gpu_memory_utilization": 0.5,
        "dtype": "bfloat16", "seed": 0, "enable_prefix_caching": True, "max_num_seqs": 32, "max_model_len": 4096,
    }
    prompt = gen.tokenizer.bos_token + "Question: 2+2?"
    out = gen.generate([prompt], SamplingParams(temperature=0.8, top_p=0.9, max_new_tokens=64, stop=("\n\n",), n=3, seed=5))
    sent = _StandInLLM.last
    assert sent.sampling.kwargs == {"n": 3, "temperature": 0.8, "top_p": 0.9, "max_tokens": 64, "stop": ["\n\n"],
                                    "include_stop_str_in_output": True, "seed": 5}
    ids = sent.prompts[0]["prompt_token_ids"]
    assert ids.count(gen.tokenizer.bos_token_id) == 1  # token ids in, so no second BOS
    assert [(g.finish_reason, g.n_tokens) for g in out[0]] == [("stop", 3), ("eos", 2), ("length", 9)]
    assert out[0][0].text.endswith("\n\n") and gen.n_params > 0


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
    out = gen.generate(["Question: 1+1=?\nAnswer:"], SamplingParams(max_new_tokens=8, n=2, stop=("\n",)))
    assert len(out[0]) == 2
