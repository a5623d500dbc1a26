"""Shared-prefix attention: a prompt's KV cache held once for its rows (models/shared_prefix.py).

The decomposition must give the attention of the whole sequence (checked in float64 against SDPA
over the concatenated cache), and the compact loop that uses it must sample what it sampled with
every row holding its own copy of the prompt, on real architectures, while really reading the
prompt from the trunk.
"""

from __future__ import annotations

import copy

import pytest
import torch

from ttscale.backends.hf import HFGenerator
from ttscale.config import ModelConfig
from ttscale.models import shared_prefix
from ttscale.models.shared_prefix import PREFIX_KWARG, SharedPrefix, Trunk, shared_prefix_attention
from ttscale.types import SamplingParams

from .conftest import PROMPTS, assert_same, sampled


class Attention(torch.nn.Module):
    """What transformers hands an attention function: the module, with its layer index and GQA groups."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.layer_idx, self.num_key_value_groups, self.is_causal = 0, groups, True


def test_attention_over_trunk_and_own_cache_equals_attention_over_their_concatenation():
    torch.manual_seed(0)
    rows, heads, kv_heads, dim, own = 5, 6, 2, 8, 4
    trunks = [Trunk([(torch.randn(kv_heads, length, dim, dtype=torch.float64),
                      torch.randn(kv_heads, length, dim, dtype=torch.float64))]) for length in (7, 3, 0)]
    trunk_of = [0, 0, 1, -1, 2]  # two rows share a trunk; one has none; one's trunk is empty
    query = torch.randn(rows, heads, 1, dim, dtype=torch.float64)
    key = torch.randn(rows, kv_heads, own, dim, dtype=torch.float64)
    value = torch.randn(rows, kv_heads, own, dim, dtype=torch.float64)
    allowed = torch.ones(rows, own, dtype=torch.bool)
    allowed[1, :2] = False  # left padding the mask hides
    allowed[2, 1] = False  # a hole between a reused prefix and a new suffix
    ours, _ = shared_prefix_attention(Attention(heads // kv_heads), query, key, value,
                                      allowed[:, None, None, :], scaling=0.3,
                                      **{PREFIX_KWARG: SharedPrefix(trunks, trunk_of)})
    for r in range(rows):
        t = trunk_of[r]
        k, v, m = key[r], value[r], allowed[r]
        if t >= 0:
            tk, tv = trunks[t].layers[0]
            k, v = torch.cat([tk, k], 1), torch.cat([tv, v], 1)
            m = torch.cat([torch.ones(tk.shape[1], dtype=torch.bool), m])
        expected = torch.nn.functional.scaled_dot_product_attention(
            query[r].unsqueeze(0), k.repeat_interleave(heads // kv_heads, 0).unsqueeze(0),
            v.repeat_interleave(heads // kv_heads, 0).unsqueeze(0), attn_mask=m.view(1, 1, 1, -1), scale=0.3)
        assert torch.allclose(ours[r, 0], expected[0, :, 0], rtol=0, atol=1e-12), r


def test_calls_without_a_shared_prefix_are_sdpa_unchanged():
    torch.manual_seed(1)
    query, key, value = torch.randn(2, 4, 3, 8), torch.randn(2, 2, 3, 8), torch.randn(2, 2, 3, 8)
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    module = Attention(2)
    ours, _ = shared_prefix_attention(module, query, key, value, None, scaling=0.5)
    theirs, _ = sdpa_attention_forward(module, query, key, value, None, scaling=0.5)
    assert torch.equal(ours, theirs)


def test_selecting_rows_keeps_only_the_trunks_they_continue():
    trunks = [Trunk([(torch.zeros(1, n, 2), torch.zeros(1, n, 2))]) for n in (1, 2, 3)]
    shared = SharedPrefix(trunks, [0, 0, 1, 2, -1])
    kept = shared.select([3, 4, 3, 0])
    assert [t.length for t in kept.trunks] == [1, 3] and kept.trunk_of == [1, -1, 1, 0]
    joined = kept.concat(SharedPrefix([trunks[1]], [0, -1])).concat(SharedPrefix.none(2))
    assert [t.length for t in joined.trunks] == [1, 3, 2] and joined.trunk_of == [1, -1, 1, 0, 2, -1, -1, -1]


def tiny(arch: str, tokenizer):
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    cfg = AutoConfig.for_model(arch, vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                               num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                               eos_token_id=tokenizer.eos_token_id, attn_implementation="sdpa",
                               sliding_window=None)  # Mistral's default window turns the compact loop off
    return AutoModelForCausalLM.from_config(cfg).eval().double()


@pytest.fixture(params=["smollm2", "qwen2", "qwen3", "mistral"])
def f64_model(request, smollm2):
    if request.param == "smollm2":
        return copy.deepcopy(smollm2.model).double(), smollm2.tokenizer
    return tiny(request.param, smollm2.tokenizer), smollm2.tokenizer


def test_compact_loop_samples_the_same_with_the_prompt_held_once(f64_model):
    """float64, where the two attentions' different summation orders stay below what the sampler reads."""
    model, tokenizer = f64_model
    reads: list[tuple[int, int]] = []  # (own cached positions, longest trunk) at each decode step's first layer

    def spy(_module, _args, kwargs):
        shared = kwargs.get(PREFIX_KWARG)
        if shared is not None:
            cache = kwargs.get("cache", kwargs.get("past_key_values"))
            reads.append((cache.get_seq_length(), max((t.length for t in shared.trunks), default=0)))

    once = HFGenerator(ModelConfig(max_batch_size=8), model=model, tokenizer=tokenizer)
    each = HFGenerator(ModelConfig(max_batch_size=8, shared_prefix_attention=False),
                       model=copy.deepcopy(model), tokenizer=tokenizer)
    model.model.layers[0].self_attn.register_forward_pre_hook(spy, with_kwargs=True)
    assert once.shared_prefix and not each.shared_prefix
    ours = sampled(once, PROMPTS)
    assert_same(ours, sampled(each, PROMPTS))
    # The prompts were read from trunks: the first step's rows hold nothing of their own yet, and the
    # longest prompt's trunk holds all of it but the token its first step feeds.
    longest = max(once.count_tokens(p) for p in PROMPTS)
    assert reads and reads[0][0] == 0 and max(trunk for _, trunk in reads) == longest - 1
    # Rows remembered from trunk + own cache seed the next round's prefixes as whole rows did.
    follow = [p + row[0][0] for p, row in zip(PROMPTS, ours)]
    assert_same(sampled(once, follow), sampled(each, follow))
    assert once.store is not None and once.store.hits > 0


def test_models_it_cannot_compute_run_as_before(smollm2):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    tokenizer = smollm2.tokenizer
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=4,
                                       eos_token_id=tokenizer.eos_token_id)).eval()
    gen = HFGenerator(ModelConfig(max_batch_size=8), model=model, tokenizer=tokenizer)
    assert not gen.shared_prefix and model.config._attn_implementation != shared_prefix.ATTENTION_NAME
    out = gen.generate(PROMPTS[:2], [SamplingParams(n=2, temperature=0.9, max_new_tokens=6, seed=1)] * 2)
    assert [len(row) for row in out] == [2, 2] and all(g.n_tokens == 6 for row in out for g in row)
