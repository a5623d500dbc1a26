"""The compact loop's in-place KV layer against transformers' DynamicLayer: the same tensors, fewer copies."""

import pytest
import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from ttscale.backends.hf import HFGenerator
from ttscale.config import ModelConfig
from ttscale.models import growing_kv
from ttscale.models.growing_kv import HEADROOM, GrowingLayer, growing
from ttscale.types import SamplingParams


def kv(rows: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, 2, length, 4, generator=g), torch.randn(rows, 2, length, 4, generator=g)


def test_appends_what_dynamic_layer_appends_and_copies_once_per_headroom():
    plain, grown = DynamicLayer(), GrowingLayer()
    for layer in (plain, grown):
        layer.update(*kv(3, 5, 0))
    start = grown.keys.data_ptr()
    for step in range(HEADROOM):
        for layer in (plain, grown):
            out = layer.update(*kv(3, 1, step + 1))
        assert torch.equal(out[0], plain.keys) and torch.equal(out[1], plain.values)
        assert torch.equal(grown.keys, plain.keys) and torch.equal(grown.values, plain.values)
    assert grown.keys.data_ptr() == start  # 64 steps fit the headroom the prefill left: no copy
    grown.update(*kv(3, 1, 99))
    plain.update(*kv(3, 1, 99))
    assert grown.keys.data_ptr() != start and torch.equal(grown.keys, plain.keys)


@pytest.mark.parametrize("edit", ["select rows", "trim columns", "merge"])
def test_a_cache_replaced_from_outside_is_copied_not_overwritten(edit):
    """The running batch selects rows, trims left padding and merges caches by assigning new tensors."""
    plain, grown = DynamicLayer(), GrowingLayer()
    for layer in (plain, grown):
        layer.update(*kv(3, 6, 0))
        layer.update(*kv(3, 1, 1))
    before = grown.keys.clone()
    for layer in (plain, grown):
        if edit == "select rows":
            layer.batch_select_indices(torch.tensor([2, 0]))
        elif edit == "trim columns":
            layer.keys, layer.values = layer.keys[:, :, 2:], layer.values[:, :, 2:]
        else:
            k, v = kv(3, 7, 5)
            layer.keys, layer.values = torch.cat([layer.keys, k], 0), torch.cat([layer.values, v], 0)
    for layer in (plain, grown):
        layer.update(*kv(plain.keys.shape[0], 1, 2))
    assert torch.equal(grown.keys, plain.keys) and torch.equal(grown.values, plain.values)
    if edit == "trim columns":  # the old buffer was not written through the trimmed view
        assert torch.equal(before[:, :, 2:], grown.keys[:, :, :-1])


def test_growing_adopts_plain_layers_and_keeps_their_tensors():
    cache = DynamicCache(ddp_cache_data=[kv(2, 3, 0), kv(2, 3, 1)])
    keys = [layer.keys for layer in cache.layers]
    growing(cache)
    assert all(type(layer) is GrowingLayer for layer in cache.layers)
    assert all(layer.keys is k for layer, k in zip(cache.layers, keys))
    assert cache.get_seq_length() == 3
    growing(cache)  # already growing: left as is
    assert all(type(layer) is GrowingLayer for layer in cache.layers)


def test_compact_loop_on_a_real_model_appends_in_place(tiny_llama, monkeypatch):
    """The compact loop decodes into the growing buffers: a copy when rows join or leave, not every step,
    and the same tokens as with transformers' own layer."""
    model, tok = tiny_llama
    params = [SamplingParams(n=3, temperature=0.9, max_new_tokens=cap, seed=i) for i, cap in enumerate([40, 25])]
    prompts = ["Question: what is 2 + 3?\nAnswer:", "Name a colour:"]

    def run():
        gen = HFGenerator(ModelConfig(decode_loop="compact", max_batch_size=6, dtype="float32"), model=model,
                          tokenizer=tok)
        return [[(g.text, g.n_tokens) for g in row] for row in gen.generate(prompts, params)]

    grows: list[int] = []
    real_grow = GrowingLayer._grow

    def counted(self, *args):
        grows.append(1)
        return real_grow(self, *args)

    monkeypatch.setattr(GrowingLayer, "_grow", counted)
    ours = run()
    steps = max(p.max_new_tokens for p in params)
    assert 0 < len(grows) < steps * model.config.num_hidden_layers / 4

    monkeypatch.setattr(growing_kv, "growing", lambda cache: cache)  # transformers' DynamicLayer throughout
    assert run() == ours
