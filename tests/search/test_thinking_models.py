"""Thinking budgets on a real model: a tiny random Qwen3 whose chat template opens <think>, on the
HF backend, through `ttscale run`; its lm_head is biased towards </think> so it tries to close early."""

from __future__ import annotations

import copy

import pytest

from ttscale.backends.hf import HFGenerator
from ttscale.config import ModelConfig
from ttscale.data.prompts import build_prompt_format
from ttscale.recipe import load_config
from ttscale.runner import run

# Qwen3's template reduced to its thinking switch: the generation prompt opens <think>, or writes an
# empty block when enable_thinking is false.
QWEN3_TEMPLATE = (
    "{%- for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{ '<think>\\n\\n</think>\\n\\n' }}"
    "{%- else %}{{ '<think>\\n' }}{%- endif %}{%- endif %}"
)


def tiny_qwen3(smollm2, close_bias: float):
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tok = copy.deepcopy(smollm2.tokenizer)
    tok.add_tokens(["<think>", "</think>"])  # plain added tokens, as in Qwen3: decoding keeps them
    tok.chat_template = QWEN3_TEMPLATE
    torch.manual_seed(0)
    cfg = Qwen3Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=512,
                      eos_token_id=tok.eos_token_id, tie_word_embeddings=False)
    model = Qwen3ForCausalLM(cfg).eval()
    head = torch.nn.Linear(32, len(tok), bias=True)
    with torch.no_grad():
        head.weight.copy_(model.lm_head.weight)
        head.bias.zero_()
        head.bias[tok.convert_tokens_to_ids("</think>")] = close_bias
        head.bias[tok.eos_token_id] = -30.0  # never end inside the thinking block by chance
    model.lm_head = head
    return HFGenerator(ModelConfig(dtype="float32"), model=model, tokenizer=tok)


@pytest.fixture(scope="module")
def eager_closer(smollm2):
    return tiny_qwen3(smollm2, close_bias=9.0)  # p(</think>) about 0.15 a token


def thinking_run(tmp_path, generator, *extra):
    cfg = load_config(None, [
        "model.backend=hf", "dataset.source=synthetic:arithmetic", "dataset.limit=2", "dataset.levels=[1]",
        "prompt.mode=chat", "search.strategy=best_of_n", "search.n=4", "sampling.max_new_tokens=48",
        "sampling.temperature=1.0", "verifier.name=none", f"output.dir={tmp_path}/run", *extra])
    return run(cfg, generator=generator, progress=False)


def test_markers_come_from_the_chat_template_and_enable_thinking_passes_through(eager_closer):
    from ttscale.config import PromptConfig, ThinkingConfig

    fmt = build_prompt_format(PromptConfig(mode="chat"), "\n\n", eager_closer.tokenizer, ThinkingConfig())
    assert (fmt.thinking.start, fmt.thinking.end) == ("<think>", "</think>")
    problem = __import__("ttscale.types", fromlist=["Problem"]).Problem(id="q", question="1+1?", answer="2")
    assert fmt.render(problem).endswith("<think>\n")
    off = build_prompt_format(PromptConfig(mode="chat", chat_template_kwargs={"enable_thinking": False}), "\n\n",
                              eager_closer.tokenizer, ThinkingConfig())
    assert off.render(problem).endswith("<think>\n\n</think>\n\n")


def test_a_budget_needs_markers(smollm2):
    from ttscale.config import PromptConfig, ThinkingConfig
    from ttscale.errors import ConfigError

    with pytest.raises(ConfigError, match="sampling.thinking.start"):
        build_prompt_format(PromptConfig(mode="chat"), "\n\n", smollm2.tokenizer, ThinkingConfig(min_tokens=4))


def test_forced_budget_on_a_tiny_qwen3(tmp_path, eager_closer):
    from ttscale.data.results import read_results

    thinking_run(tmp_path, eager_closer, "sampling.thinking.min_tokens=8", "sampling.thinking.max_tokens=16")
    completions = [c for r in read_results(tmp_path / "run") for c in r.completions]
    assert len(completions) == 8
    waits = 0
    for c in completions:
        assert 8 <= c.thinking_tokens <= 16
        thinking = c.text.split("</think>", 1)[0]  # later </think>s are the biased model's answer text
        assert "</think>" in c.text
        waits += thinking.count("Wait")
    assert waits >= 1  # the model tried to close before 8 tokens, and was told to go on


def test_without_a_budget_the_model_closes_early_and_disabled_thinking_is_never_forced(tmp_path, eager_closer):
    from ttscale.data.results import read_results

    thinking_run(tmp_path, eager_closer)
    free = [c for r in read_results(tmp_path / "run") for c in r.completions]
    assert all("Wait" not in c.text for c in free)
    assert any(c.thinking_tokens < 8 for c in free)  # what min_tokens=8 above prevents
    thinking_run(tmp_path / "off", eager_closer, "prompt.chat_template_kwargs={enable_thinking: false}",
                 "sampling.thinking.max_tokens=4")
    off = [c for r in read_results(tmp_path / "off" / "run") for c in r.completions]
    assert all(c.thinking_tokens == 0 and "Wait" not in c.text and "The final answer is" not in c.text for c in off)
