"""int8 weight-only linear layers (`model.quantize: int8`) against the weights as loaded: what the
task loses, paired over the same problems and seeds.

The main job's recipe (`cpu_arithmetic`: SmolLM2-135M, best-of-N with majority voting, levels 1-2)
on --limit problems, once as loaded in --dtype and once with int8 weights; every sample has the
same seed on both sides, so the two differ only by the weights' numbers. Reported: accuracy per
sample (the share of a problem's N samples that are right, averaged over problems: N times the
samples of majority's one pick per problem, so the tighter interval), majority@N, and their paired
differences with 95% bootstrap intervals over problems; and the run times, where int8 is expected
to lose (models/quantize.py: its kernel pays at one row, not at the search's 48).

    python bench/quantize.py [--limit 100] [--n 16] [--dtype bfloat16]
"""

from __future__ import annotations

import argparse
import tempfile

from _common import header, paired_difference, pick_right, row, sample_right, timed

from ttscale.cli import resolve_recipe
from ttscale.data.results import read_results
from ttscale.recipe import load_config
from ttscale.runner import run


def job(args: argparse.Namespace, quantize: str, out: str) -> tuple[float, list[float], list[bool]]:
    """(seconds, each problem's share of right samples, each problem's majority pick's rightness)."""
    cfg = load_config(resolve_recipe("cpu_arithmetic"), [
        f"model.dtype={args.dtype}", f"model.quantize={quantize}", f"dataset.limit={args.limit}",
        f"search.n={args.n}", f"output.dir={out}"])
    seconds, result = timed(lambda: run(cfg, progress=True))
    results = sorted(read_results(result.run_dir), key=lambda r: r.id)
    return seconds, sample_right(results), pick_right(results, "majority")


def paired(name: str, ours: list[float], base: list[float]) -> None:
    print(f"# {name}: int8 - as loaded {paired_difference(ours, base)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--dtype", default="bfloat16", choices=("float32", "bfloat16"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t_int8, per_int8, maj_int8 = job(args, "int8", f"{tmp}/int8")
        t_base, per_base, maj_base = job(args, "none", f"{tmp}/base")
    print(f"cpu_arithmetic (SmolLM2-135M, levels 1-2, best-of-N N={args.n}, majority), {args.limit} problems, "
          f"same seeds; ours: model.quantize=int8 (the rest in {args.dtype}); baseline: the {args.dtype} weights")
    header()
    row("accuracy per sample (%)", 100 * sum(per_int8) / len(per_int8), 100 * sum(per_base) / len(per_base), "%")
    row(f"accuracy majority@{args.n} (%)", 100 * sum(maj_int8) / len(maj_int8), 100 * sum(maj_base) / len(maj_base),
        "%")
    row("run time (s)", t_int8, t_base, "s")
    paired("accuracy per sample", per_int8, per_base)
    paired(f"majority@{args.n}", [float(x) for x in maj_int8], [float(x) for x in maj_base])


if __name__ == "__main__":
    main()
