"""HF-backend tokens/s at batch 1, 8, 32 against plain `model.generate` on the same prompts.

Greedy decoding, so both sides generate the same tokens; ours includes prompt
encoding, stop handling and the prefix KV store's bookkeeping. Goal: ratio ~1.0.

    python bench/generation.py [--max-new-tokens 48]
"""

from __future__ import annotations

import argparse

import torch
from _common import header, problems_and_prompts, row, timed

from ttscale.backends.hf import HFGenerator
from ttscale.config import ModelConfig
from ttscale.types import SamplingParams


def plain_generate(gen: HFGenerator, prompts: list[str], max_new: int) -> int:
    tok = gen.tokenizer
    tok.padding_side = "left"
    batch = tok(prompts, return_tensors="pt", padding=True)
    with torch.inference_mode():
        out = gen.model.generate(**batch, max_new_tokens=max_new, do_sample=False, pad_token_id=tok.pad_token_id)
    new = out[:, batch["input_ids"].shape[1]:]
    return int(sum(next((i + 1 for i, t in enumerate(r.tolist()) if t in gen.eos_ids), len(r)) for r in new))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args()
    gen = HFGenerator(ModelConfig(max_batch_size=32, dtype=args.dtype))
    _, prompts = problems_and_prompts(32)
    params = SamplingParams(temperature=0.0, max_new_tokens=args.max_new_tokens)
    plain_generate(gen, prompts[:2], 4)  # warm-up
    header()
    for b in (1, 8, 32):
        gen.store.clear()
        t_ours, outs = timed(lambda: gen.generate(prompts[:b], [params] * b))
        ours_tokens = sum(g[0].n_tokens for g in outs)
        t_base, base_tokens = timed(lambda: plain_generate(gen, prompts[:b], args.max_new_tokens))
        row(f"tokens/s batch {b} ({args.dtype})", ours_tokens / t_ours, base_tokens / t_base, "tok/s")


if __name__ == "__main__":
    main()
