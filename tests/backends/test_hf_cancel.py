"""The HF backend stops a cancelled prompt between decode steps (a server's deadline or departed client),
on a tiny random Llama built here: the model's forward passes are counted, so "it stopped" is exact."""

from __future__ import annotations

import threading

import pytest

from ttscale.config import ModelConfig
from ttscale.types import SamplingParams

MAX_NEW = 24
PROMPTS = ["Question: 1 + 1?\nSolution:\n", "Question: what is seven times eight?\nSolution:\n"]


@pytest.fixture(scope="module")
def tiny_llama():
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from ttscale.models.loading import resolve_source

    tok = AutoTokenizer.from_pretrained(resolve_source("embedded:smollm2", None)[0])
    # No EOS in the model's config: `generate` ends no row by itself, so every uncancelled row runs to
    # max_new_tokens (these seeds never sample the tokenizer's EOS, at p ~ 1/49152 a token) and a short row
    # was stopped; a stopped row is not padded either, so what it holds past its stop must be cut off.
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                      bos_token_id=tok.bos_token_id, eos_token_id=None)
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).eval(), tok


class Forwards:
    """Counts the model's forward passes; sets `flag` when the count reaches `at` (None: never)."""

    def __init__(self, model, flag: threading.Event, at: int | None) -> None:
        self.n, self.flag, self.at = 0, flag, at
        self._hook = model.register_forward_hook(self._count)

    def _count(self, *_) -> None:
        self.n += 1
        if self.n == self.at:
            self.flag.set()

    def __enter__(self) -> Forwards:
        return self

    def __exit__(self, *_) -> None:
        self._hook.remove()


def _generator(tiny_llama, **cfg):
    from ttscale.backends.hf import HFGenerator

    model, tok = tiny_llama
    # No prefix reuse: every call below starts from the same (empty) cache, so their tokens compare. Six rows:
    # static mode pads 2 prompts x 2 samples with two copies of the first prompt.
    return HFGenerator(ModelConfig(max_batch_size=6, prefix_cache=False, **cfg), model=model, tokenizer=tok)


def _params(n: int) -> list[SamplingParams]:
    return [SamplingParams(temperature=1.0, max_new_tokens=MAX_NEW, n=n, seed=10 + i) for i in range(len(PROMPTS))]


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("cancel_at", [None, 0, 5], ids=["never", "before_the_call", "at_the_5th_forward"])
def test_a_call_whose_prompts_are_all_cancelled_stops_at_the_next_decode_step(tiny_llama, n, cancel_at):
    gen = _generator(tiny_llama)
    flag = threading.Event()
    if cancel_at == 0:
        flag.set()
    with Forwards(gen.model, flag, cancel_at) as forwards:
        out = gen.generate_cancellable(PROMPTS, _params(n), [flag, flag])
    assert [len(row) for row in out] == [n, n]
    if cancel_at is None:
        # a prefill of all but the last prompt token, then one forward per new token
        assert forwards.n == 1 + MAX_NEW
        assert all(g.n_tokens == MAX_NEW and g.finish_reason == "length" for row in out for g in row)
    elif cancel_at == 0:
        assert forwards.n == 0 and all(g.n_tokens == 0 for row in out for g in row)
    else:
        # the flag rose during forward 5; the token of that forward is the last one
        assert forwards.n == cancel_at
        assert all(g.n_tokens == cancel_at - 1 and g.finish_reason == "length" for row in out for g in row)


@pytest.mark.parametrize("cache_implementation", ["dynamic", "static"])
def test_cancelling_one_prompt_stops_it_alone_and_leaves_its_neighbour_as_it_was(tiny_llama, cache_implementation):
    gen = _generator(tiny_llama, cache_implementation=cache_implementation)
    whole = gen.generate_cancellable(PROMPTS, _params(2), [None, None])
    flag = threading.Event()
    with Forwards(gen.model, flag, 6):
        cut = gen.generate_cancellable(PROMPTS, _params(2), [flag, None])
    # forward 6 made token 5 (dynamic: after a prefill of all but the last prompt token) or 6 (static: one prefill)
    made = 5 if cache_implementation == "dynamic" else 6
    assert all(g.n_tokens == made and g.finish_reason == "length" for g in cut[0])
    assert [g.text for g in cut[0]] != [g.text for g in whole[0]]
    assert cut[1] == whole[1]  # the other prompt ran to its cap with the same samples


def test_generate_is_generate_cancellable_with_no_flags(tiny_llama):
    gen = _generator(tiny_llama)
    assert gen.generate(PROMPTS, _params(2)) == gen.generate_cancellable(PROMPTS, _params(2), [None, None])
