"""What the tests comparing two decode paths of the HF backend sample, and how they compare it."""

from __future__ import annotations

import pytest

from ttscale.backends.hf import HFGenerator
from ttscale.types import SamplingParams

PROMPTS = [
    "Question: Tom has 3 apples. He buys 4 more apples. How many apples does Tom have now?\nSolution:\nStep 1:",
    "Question: A box holds 12 pens. Sara takes 5 pens. How many pens are left?\nSolution:\nStep 1:",
    "The",  # one token: nothing to prefill, so it joins a running batch with an empty cache
    "List three colours:\n1.",
]


def sampled(gen: HFGenerator, prompts: list[str]) -> list[list[tuple]]:
    """Each sample's text, length, end and log-probabilities: 4 per prompt, rows ending at other steps."""
    params = [SamplingParams(n=4, temperature=0.9, max_new_tokens=cap, stop=("\n",), seed=i, logprobs=2)
              for i, cap in enumerate([20, 28, 12, 24][: len(prompts)])]
    return [[(g.text, g.n_tokens, g.finish_reason, g.logprobs) for g in row] for row in gen.generate(prompts, params)]


def assert_same(ours: list[list[tuple]], theirs: list[list[tuple]]) -> None:
    """The same samples; log-probabilities to 1e-5: they come from float32 logits, whose last bit may
    differ where the model's float64 numbers differ in theirs."""
    assert [[g[:3] for g in row] for row in ours] == [[g[:3] for g in row] for row in theirs]
    for row_a, row_b in zip(ours, theirs):
        for a, b in zip(row_a, row_b):
            assert a[3] == pytest.approx(b[3], abs=1e-5)
