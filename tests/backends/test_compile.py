"""`model.compile`: the static cache's decode step compiled on the CPU gives the tokens the eager step does."""

import pytest

from ttscale.backends.hf import HFGenerator
from ttscale.config import ModelConfig
from ttscale.errors import ConfigError, ModelLoadError
from ttscale.models.loading import compile_kwargs
from ttscale.types import SamplingParams


def test_compile_other_than_auto_needs_the_static_cache():
    with pytest.raises(ConfigError, match="model.compile"):
        ModelConfig(compile="always")
    with pytest.raises(ConfigError, match="model.compile"):
        ModelConfig(cache_implementation="static", compile="sometimes")
    assert ModelConfig(cache_implementation="static", compile="never").compile == "never"


def test_compile_kwargs_turn_transformers_own_switches():
    assert compile_kwargs("auto", "cpu") == {}
    assert compile_kwargs("never", "cpu") == {"disable_compile": True}
    config = compile_kwargs("always", "cpu")["compile_config"]
    assert config._compile_all_devices and config.mode == "default"
    assert compile_kwargs("always", "cuda")["compile_config"].mode == "reduce-overhead"


def test_always_on_the_cpu_without_a_compiler_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler-here")
    with pytest.raises(ModelLoadError, match="model.compile=always .*'no-such-compiler-here'"):
        compile_kwargs("always", "cpu")
    assert "compile_config" in compile_kwargs("always", "cuda")  # a GPU's step compiles through CUDA's own tools


def test_a_compiled_static_step_on_the_cpu_decodes_what_the_eager_one_does(tiny_llama):
    from torch._dynamo.utils import counters

    model, tok = tiny_llama
    make = lambda setting: HFGenerator(ModelConfig(cache_implementation="static", compile=setting,  # noqa: E731
                                                   max_batch_size=4, dtype="float32"), model=model, tokenizer=tok)
    eager, compiled = make("never"), make("always")
    prompts = ["Question: Tom has 3 apples and buys 4 more.\n", "Question: A box holds 12 pens.\n"]
    params = [SamplingParams(temperature=0.0, max_new_tokens=12, n=2),
              SamplingParams(temperature=0.8, max_new_tokens=12, n=2, seed=7)]
    before = counters["stats"]["unique_graphs"]
    want = [eager.generate(prompts, [p] * 2) for p in params]
    make("auto").generate(prompts, [params[0]] * 2)
    assert counters["stats"]["unique_graphs"] == before  # `never`, and `auto` on the CPU, compile nothing
    got = [compiled.generate(prompts, [p] * 2) for p in params]
    key = lambda calls: [[[(g.text, g.n_tokens) for g in gs] for gs in call] for call in calls]  # noqa: E731
    assert key(got) == key(want)
    graphs = counters["stats"]["unique_graphs"]
    assert graphs > before
    compiled.generate(["Question: Sam reads 5 pages a day.\n"], [params[0]])
    assert counters["stats"]["unique_graphs"] == graphs  # the same shapes: the compiled step is reused
