"""A decode step with the compact loop's in-place KV layer against transformers' DynamicLayer.

SmolLM2-135M, a batch of --rows rows with --positions cached positions (half the rows left-padded by 7,
as the compact loop's merged rows are), then --steps greedy decode steps from the same prefilled cache
with each layer kind; best of --repeats, interleaved. Prints ms per step and whether the two gave the
same logits (they must: only where the keys are written differs).

    python bench/kv_append.py [--rows 48] [--positions 400] [--dtype bfloat16]
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import decode_batch, header, row
from transformers import AutoModelForCausalLM, DynamicCache

from ttscale.models.growing_kv import growing
from ttscale.models.loading import cache_kwarg, load_pretrained


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=48, help="the CPU recipe's model.max_batch_size")
    ap.add_argument("--positions", type=int, default=400, help="cached positions (2-shot prompt + a solution)")
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dtype", default="bfloat16", choices=("float32", "bfloat16"))
    args = ap.parse_args()
    model, _ = load_pretrained(AutoModelForCausalLM, "embedded:smollm2", None, "cpu", args.dtype)
    ids, mask = decode_batch(args.rows, args.positions)
    with torch.inference_mode():
        prefilled = DynamicCache()
        model(input_ids=ids, attention_mask=mask, use_cache=True, **{cache_kwarg(model): prefilled})

    def decode(in_place: bool) -> tuple[float, torch.Tensor]:
        cache = DynamicCache(ddp_cache_data=[(layer.keys.contiguous().clone(), layer.values.contiguous().clone())
                                             for layer in prefilled.layers])
        if in_place:
            growing(cache)
        logits = []
        with torch.inference_mode():
            m, feed = mask, ids[:, -1:]
            start = time.perf_counter()
            for _ in range(args.steps):
                m = torch.cat([m, m.new_ones((args.rows, 1))], 1)
                out = model(input_ids=feed, attention_mask=m, position_ids=m.sum(-1, keepdim=True) - 1,
                            use_cache=True, **{cache_kwarg(model): cache})
                feed = out.logits[:, -1:].argmax(-1)
                logits.append(out.logits[:, -1].float())
            return (time.perf_counter() - start) / args.steps, torch.stack(logits)

    decode(True)  # warm-up
    best = {True: float("inf"), False: float("inf")}
    same = True
    for _ in range(args.repeats):
        ours, base = decode(True), decode(False)
        best[True], best[False] = min(best[True], ours[0]), min(best[False], base[0])
        same = same and torch.equal(ours[1], base[1])
    print(f"SmolLM2-135M {args.dtype}, {args.rows} rows x {args.positions} cached positions, {args.steps} decode "
          f"steps, best of {args.repeats}; ours: KV appended in place (models/growing_kv.py); baseline: "
          f"transformers' DynamicLayer (torch.cat every step); same logits: {same}")
    header()
    row("decode step (ms)", 1000 * best[True], 1000 * best[False], "ms")
    row("decode rows/s", args.rows / best[True], args.rows / best[False], "rows/s")


if __name__ == "__main__":
    main()
