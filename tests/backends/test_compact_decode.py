"""The HF backend's compact decode loop against transformers' `generate`, on the real SmolLM2.

The compact loop drops a row from the batch the step it ends and lets the next prompt's rows
join; `generate` computes every row until the longest ends. Both must sample the same tokens.
They run the model in float64 here: a CPU GEMM can give a row other low bits at another row
count or left padding, which in float32 moves a sampled token now and then
(bench/batch_invariance.py counts how often); float64 keeps such differences below what the
float32 sampler reads, so the loops must agree token for token.
"""

import copy

import pytest

from ttscale.backends.hf import HFGenerator
from ttscale.config import ModelConfig

from .conftest import PROMPTS, assert_same, sampled


@pytest.fixture(scope="module")
def f64(smollm2):
    return copy.deepcopy(smollm2.model).double(), smollm2.tokenizer


def make(f64, loop: str, **overrides) -> HFGenerator:
    model, tokenizer = f64
    return HFGenerator(ModelConfig(decode_loop=loop, max_batch_size=8, **overrides), model=model, tokenizer=tokenizer)


def rows_per_step(gen: HFGenerator) -> list[int]:
    """Rows of every decode step (one new token per row) the model runs, recorded by a forward hook."""
    seen: list[int] = []

    def hook(_module, _args, kwargs):
        ids = kwargs.get("input_ids")
        if ids is not None and ids.shape[1] == 1:
            seen.append(ids.shape[0])

    gen.model.register_forward_pre_hook(hook, with_kwargs=True)
    return seen


def test_compact_loop_samples_what_generate_samples_and_runs_fewer_rows(f64):
    compact, plain = make(f64, "compact"), make(f64, "generate")
    ours = sampled(compact, PROMPTS)
    assert_same(ours, sampled(plain, PROMPTS))
    reasons = {g[2] for row in ours for g in row}
    assert {"stop", "length"} <= reasons  # rows end on both, at different steps
    # A second round continues each first sample: prefixes come from the prefix KV store, which
    # the compact loop fills as each row ends.
    follow = [p + row[0][0] for p, row in zip(PROMPTS, ours)]
    assert_same(sampled(compact, follow), sampled(plain, follow))
    assert compact.store is not None and compact.store.hits > 0


def test_rows_leave_the_batch_as_they_end_and_the_batch_stays_a_multiple_of_its_quantum(f64):
    compact, plain = make(f64, "compact"), make(f64, "generate")
    model = f64[0]
    ours = rows_per_step(compact)
    sampled(compact, PROMPTS)
    model._forward_pre_hooks.clear()
    theirs = rows_per_step(plain)
    sampled(plain, PROMPTS)
    model._forward_pre_hooks.clear()
    assert sum(ours) < sum(theirs)
    assert max(ours) <= 8 and all(m % 8 == 0 for m in ours)  # quantum: min(16, 16 rows in the call) capped by room


def test_prefills_compute_the_lm_head_on_one_position(f64):
    """A prefill's logits are never read (the prompt's last token is fed by the first decode step), so the
    LM head runs on one position: the samples stay what generate samples (above), the work shrinks."""
    from ttscale.models.loading import prefill_kwargs

    compact = make(f64, "compact")
    widths: list[tuple[int, int]] = []

    def hook(_module, _args, kwargs, output):
        if kwargs["input_ids"].shape[1] > 1:
            widths.append((kwargs["input_ids"].shape[1], output.logits.shape[1]))

    handle = compact.model.register_forward_hook(hook, with_kwargs=True)
    try:
        sampled(compact, PROMPTS[:2])
    finally:
        handle.remove()
    assert widths and all(prompt > 1 and kept == 1 for prompt, kept in widths)

    class NoKeep:
        def forward(self, input_ids, attention_mask=None):
            return input_ids

    assert prefill_kwargs(NoKeep()) == {}
