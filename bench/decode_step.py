"""How close one decode step at the main job's shape comes to what this CPU can compute.

SmolLM2-135M in --dtype (auto: bf16 where the CPU has bf16 instructions, else float32), --rows rows with
--positions cached positions (half the rows left-padded by 7, as the compact loop's merged rows are), the
compact loop's in-place KV layer; --steps decode steps profiled by torch's profiler. Prints:

- the step's time and where it goes: the transformer blocks' linear layers, the LM head (a
  hidden x vocabulary GEMM per row: a fifth of the model's weights), attention, and the rest;
- the linear layers' and the LM head's rate in GFLOP/s against a large square GEMM's in the same dtype
  and threads (ours = the decode step's GEMMs, baseline = the large GEMM): the share of this CPU's
  attainable matrix rate a step gets. A step at 48 rows does about 270 MFLOP a row, so when the GEMMs
  already run near the large GEMM's rate, only fewer FLOPs (a smaller model, fewer rows, other dtypes)
  make decoding faster, not a better schedule.

With --prompt P, the first P positions are a prompt shared by each 16 rows (the main job's 16 samples
of a problem), and one more pair of rows times a decode step and its attention with each prompt's cache
held once for its rows (ours, models/shared_prefix.py, the compact loop's default) against every row
holding its own copy (baseline, the profiled layout above), alternating, the fastest of --steps each.

    python bench/decode_step.py [--rows 48] [--positions 300] [--prompt 0] [--dtype auto]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch
from _common import decode_batch, header, row
from torch.profiler import ProfilerActivity, profile
from transformers import AttentionInterface, AutoModelForCausalLM, DynamicCache

from ttscale.models import shared_prefix
from ttscale.models.growing_kv import growing
from ttscale.models.loading import cache_kwarg, load_pretrained, resolve_dtype

GEMMS = ("aten::mm", "aten::addmm", "aten::bmm")
ATTENTION = ("aten::_scaled_dot_product_flash_attention_for_cpu", "aten::_scaled_dot_product_attention_math")


def large_gemm_rate(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of a size^3 GEMM, the fastest of `repeats`: the rate the BLAS attains on this CPU."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=48, help="the CPU recipe's model.max_batch_size")
    ap.add_argument("--positions", type=int, default=300, help="cached positions (2-shot prompt + part of a solution)")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--prompt", type=int, default=0, help="positions of a prompt shared by each 16 rows (0: none)")
    ap.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16"))
    args = ap.parse_args()
    dtype = resolve_dtype(args.dtype, "cpu")
    model, _ = load_pretrained(AutoModelForCausalLM, "embedded:smollm2", None, "cpu", args.dtype)
    cfg = model.config
    hidden, vocab = cfg.hidden_size, cfg.vocab_size
    body = sum(m.weight.numel() for name, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and not name.endswith("lm_head"))
    ids, mask = decode_batch(args.rows, args.positions)
    if args.prompt:
        mask[:] = 1  # a prompt shared by its rows has no padding of its own
        ids[:, : args.prompt] = ids[:: ROWS_PER_PROMPT, : args.prompt].repeat_interleave(ROWS_PER_PROMPT, 0)[: args.rows]
    with torch.inference_mode():
        cache = DynamicCache()
        kwarg = {cache_kwarg(model): cache}
        model(input_ids=ids, attention_mask=mask, use_cache=True, logits_to_keep=1, **kwarg)
        growing(cache)  # the layers exist once prefilled, as in the compact loop's running batch
        positions = mask.sum(-1, keepdim=True) - 1
        feed = ids[:, -1:]

        def step() -> None:
            nonlocal mask, positions, feed
            mask = torch.cat([mask, mask.new_ones((args.rows, 1))], 1)
            positions = positions + 1
            logits = model(input_ids=feed, attention_mask=mask, position_ids=positions, use_cache=True,
                           **kwarg).logits
            feed = logits[:, -1].argmax(-1, keepdim=True)

        for _ in range(2):  # warm: the BLAS's buffers and the KV layer's first growth
            step()
        start = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for _ in range(args.steps):
                step()
        wall = (time.perf_counter() - start) / args.steps
    linear = head = attention = total = 0.0
    others: dict[str, float] = {}
    for event in prof.key_averages(group_by_input_shape=True):
        seconds = event.self_cpu_time_total / 1e6 / args.steps
        total += seconds
        if event.key in GEMMS:
            is_head = any(vocab in shape for shape in event.input_shapes if shape)
            head, linear = (head + seconds, linear) if is_head else (head, linear + seconds)
        elif event.key in ATTENTION:
            attention += seconds
        else:
            others[event.key] = others.get(event.key, 0.0) + seconds
    rest = max(total - linear - head - attention, 0.0)
    top = sorted(others.items(), key=lambda kv: -kv[1])[:4]
    peak = large_gemm_rate(dtype)
    print(f"SmolLM2-135M {str(dtype).removeprefix('torch.')}, {args.rows} rows x {args.positions} cached positions, "
          f"{args.steps} decode steps, {torch.get_num_threads()} threads; shares of the profiled self time")
    header()
    print(f"# decode step {1e3 * wall:.1f} ms ({args.rows / wall:.0f} rows/s): linear layers {100 * linear / total:.0f}%, "
          f"LM head {100 * head / total:.0f}%, attention {100 * attention / total:.0f}%, rest {100 * rest / total:.0f}% ("
          + ", ".join(f"{key} {100 * sec / total:.0f}%" for key, sec in top) + ")")
    row("linear layers GFLOP/s vs 2048^3 GEMM", 2 * args.rows * body / linear / 1e9, peak, "GFLOP/s")
    row("LM head GFLOP/s vs 2048^3 GEMM", 2 * args.rows * hidden * vocab / head / 1e9, peak, "GFLOP/s")
    if args.prompt:
        shared_prompt_rows(model, cache, ids, mask, args.prompt, args.steps)


ROWS_PER_PROMPT = 16


def shared_prompt_rows(model: Any, cache: Any, ids: Any, mask: Any, prompt: int, steps: int) -> None:
    """A decode step and its attention with each prompt's cache held once (ours) or per row (baseline)."""
    rows, width = mask.shape
    assert shared_prefix.enable(model), "SmolLM2 is a Llama: the shared-prefix attention must take it"
    spent = [0.0]

    def timed_attention(*a: Any, **k: Any) -> Any:
        start = time.perf_counter()
        out = shared_prefix.shared_prefix_attention(*a, **k)
        spent[0] += time.perf_counter() - start
        return out

    AttentionInterface.register(shared_prefix.ATTENTION_NAME, timed_attention)
    layers = [(layer.keys, layer.values) for layer in cache.layers]
    trunks = [shared_prefix.Trunk([(k[g, :, :prompt].clone(), v[g, :, :prompt].clone()) for k, v in layers])
              for g in range(0, rows, ROWS_PER_PROMPT)]
    shared = shared_prefix.SharedPrefix(trunks, [r // ROWS_PER_PROMPT for r in range(rows)])
    kwarg = cache_kwarg(model)
    feed = ids[:, -1:]

    best = {"ours": (float("inf"), 0.0), "baseline": (float("inf"), 0.0)}
    with torch.inference_mode():
        own = growing(DynamicCache(ddp_cache_data=[(k[:, :, prompt:].clone(), v[:, :, prompt:].clone())
                                                   for k, v in layers]))
        whole = growing(DynamicCache(ddp_cache_data=[(k.clone(), v.clone()) for k, v in layers]))
        layouts = {"ours": (own, mask[:, prompt:], {shared_prefix.PREFIX_KWARG: shared}), "baseline": (whole, mask, {})}
        for _ in range(steps):
            for side, (kv, m, extra) in layouts.items():
                m = torch.cat([m, m.new_ones((rows, 1))], 1)
                spent[0] = 0.0
                start = time.perf_counter()
                model(input_ids=feed, attention_mask=m, position_ids=torch.full((rows, 1), width),
                      use_cache=True, **{kwarg: kv}, **extra)
                wall = time.perf_counter() - start
                best[side] = min(best[side], (wall, spent[0]))
                kv.crop(-1)  # every step decodes at the same width
    print(f"# {rows // ROWS_PER_PROMPT} prompts of {prompt} positions, {ROWS_PER_PROMPT} rows each, "
          f"{width - prompt} positions of each row's own; fastest of {steps} alternating steps")
    row("decode step (ms), prompt once vs per row", 1e3 * best["ours"][0], 1e3 * best["baseline"][0], "ms")
    row("attention (ms a step)", 1e3 * best["ours"][1], 1e3 * best["baseline"][1], "ms")


if __name__ == "__main__":
    main()
