"""bfloat16 against float32 on the CPU: decode speed and accuracy with SmolLM2, side by side.

Two measurements, each run with both dtypes in this one process:
1. greedy tokens/s of the HF backend at batch 32 (same prompts);
2. the main CPU job (`cpu_arithmetic`, best-of-N, sampled) on the same problems:
   wall time, per-sample accuracy (@1), majority and pass@N.
The CPU default for `model.dtype: auto` is chosen from these figures.

    python bench/dtype.py [--limit 24] [--n 8] [--max-new-tokens 48]
"""

from __future__ import annotations

import argparse
import tempfile

from _common import header, problems_and_prompts, row, timed

from ttscale.backends.hf import HFGenerator
from ttscale.cli import resolve_recipe
from ttscale.config import ModelConfig
from ttscale.models.loading import cpu_dtype_class, resolve_dtype
from ttscale.recipe import load_config
from ttscale.runner import run
from ttscale.types import SamplingParams

DTYPES = ("bfloat16", "float32")


def decode_rate(dtype: str, prompts: list[str], max_new: int) -> float:
    gen = HFGenerator(ModelConfig(max_batch_size=32, dtype=dtype, prefix_cache=False))
    params = SamplingParams(temperature=0.0, max_new_tokens=max_new)
    gen.generate(prompts[:2], [SamplingParams(temperature=0.0, max_new_tokens=4)] * 2)  # warm-up
    seconds, outs = timed(lambda: gen.generate(prompts, [params] * len(prompts)))
    return sum(g[0].n_tokens for g in outs) / seconds


def main_job(dtype: str, limit: int, n: int) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as out:
        cfg = load_config(resolve_recipe("cpu_arithmetic"), [
            f"model.dtype={dtype}", f"dataset.limit={limit}", f"search.n={n}", f"output.dir={out}",
        ])
        seconds, result = timed(lambda: run(cfg, progress=True))
    return seconds, result.metrics


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=24)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    args = ap.parse_args()
    _, prompts = problems_and_prompts(32)
    rates = {d: decode_rate(d, prompts, args.max_new_tokens) for d in DTYPES}
    jobs = {d: main_job(d, args.limit, args.n) for d in DTYPES}
    print(f"\nCPU class: {cpu_dtype_class()}; dtype auto resolves to {resolve_dtype('auto', 'cpu')}")
    print(f"ours = bfloat16, baseline = float32 (SmolLM2-135M, CPU, {args.limit} problems, N={args.n})")
    header()
    row("greedy tok/s, batch 32", rates["bfloat16"], rates["float32"], "tok/s")
    row("main job wall time", jobs["bfloat16"][0], jobs["float32"][0], "s (lower is better)")
    curves = {d: jobs[d][1]["curves"] for d in DTYPES}
    for name, method, k in (("accuracy per sample (pass@1)", "pass", 1), (f"majority @{args.n}", "majority", args.n),
                            (f"pass @{args.n}", "pass", args.n)):
        row(name, 100 * curves["bfloat16"][method][str(k)], 100 * curves["float32"][method][str(k)], "%")


if __name__ == "__main__":
    main()
