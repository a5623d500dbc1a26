"""Adaptive compute against a fixed N: the same accuracy for fewer tokens?

SmolLM2-135M on synthetic arithmetic, side by side in one run:
  majority@N           best_of_n, N samples, majority vote
  deepconf offline     the same N samples, top eta% by confidence, confidence-weighted vote
                       (computed from majority's samples and their logprobs: a paired comparison)
  adaptive_consistency waves of `--wave` up to N, stopped by `--stop-rule` at `--stop-confidence`
                       (the defaults: the paper's Beta rule at 0.95; the CPU recipe's tuned rule is
                       `--wave 2 --stop-confidence 0.6`, bench/adaptive_sweep.py)
  deepconf online      `--warmup` warm-up traces, then chunked traces stopped below the threshold
Accuracy with a 95% bootstrap interval over problems, the paired difference to majority@N
(also bootstrapped), and mean generated tokens per problem (everything generated counts).

    PYTHONPATH=src python3 bench/adaptive.py [--limit 100] [--n 16] [--wave 2 --stop-confidence 0.6]
        [--out runs/adaptive_bench]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from _common import provenance

from ttscale.cli import resolve_recipe
from ttscale.confidence import trace_confidence
from ttscale.data.results import read_results
from ttscale.eval.metrics import bootstrap_interval
from ttscale.grading import correctness
from ttscale.recipe import load_config
from ttscale.runner import run
from ttscale.search.deepconf import keep_top, weighted_pick
from ttscale.search_sections import AdaptiveConfig
from ttscale.types import ProblemResult


def selected_hits(results: Sequence[ProblemResult]) -> dict[str, float]:
    correct = correctness(results)
    return {r.id: float(r.error is None and r.selected is not None and correct[r.id][r.selected]) for r in results}


def offline_hits(results: Sequence[ProblemResult], eta: float, measure: str) -> dict[str, float]:
    """DeepConf offline over a best-of-N run's samples, with the strategy's own functions."""
    correct = correctness(results)
    out = {}
    for r in results:
        conf = [trace_confidence(c.confidence, measure) for c in r.completions]
        pick, _ = weighted_pick([c.answer for c in r.completions], conf, keep_top(conf, eta))
        out[r.id] = float(pick is not None and correct[r.id][pick])
    return out


def strategy_run(args: argparse.Namespace, name: str, extra: list[str]) -> tuple[list[ProblemResult], float]:
    common = ["verifier.name=none", f"dataset.limit={args.limit}", f"search.n={args.n}", "search.selection=majority",
              f"sampling.logprobs={args.logprobs}", f"search.problems_per_batch={args.per_batch}",
              f"search.adaptive.wave={args.wave}", f"search.deepconf.warmup={args.warmup}", f"search.deepconf.eta={args.eta}",
              f"search.confidence_window={args.window}", f"search.deepconf.chunk_tokens={args.chunk}"]
    cfg = load_config(resolve_recipe("cpu_arithmetic"), common + extra + [f"output.dir={args.out}/{name}"])
    started = time.perf_counter()
    run(cfg, progress=True)
    return read_results(cfg.output.dir), time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=100, help="problems (levels 1-2)")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--wave", type=int, default=AdaptiveConfig.wave)
    ap.add_argument("--stop-rule", default=AdaptiveConfig.stop_rule, choices=("window", "beta", "dirichlet"))
    ap.add_argument("--stop-confidence", type=float, default=AdaptiveConfig.stop_confidence,
                    help="adaptive_consistency's stopping confidence (deepconf online keeps the default)")
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--eta", type=float, default=90.0)
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--chunk", type=int, default=16)
    ap.add_argument("--logprobs", type=int, default=20)
    ap.add_argument("--per-batch", type=int, default=4)
    ap.add_argument("--out", default="runs/adaptive_bench")
    args = ap.parse_args()
    runs = {
        f"majority@{args.n}": strategy_run(args, "majority", ["search.strategy=best_of_n"]),
        # The stopping rule is adaptive_consistency's alone: deepconf online keeps its consensus default.
        "adaptive_consistency": strategy_run(args, "adaptive", [
            "search.strategy=adaptive_consistency", f"search.adaptive.stop_rule={args.stop_rule}",
            f"search.adaptive.stop_confidence={args.stop_confidence}"]),
        "deepconf online": strategy_run(args, "deepconf_online", ["search.strategy=deepconf",
                                                                  "search.deepconf.mode=online"]),
    }
    base_results = runs[f"majority@{args.n}"][0]
    tokens = {name: sum(r.budget.generated_tokens for r in rs) / len(rs) for name, (rs, _) in runs.items()}
    hits = {name: selected_hits(rs) for name, (rs, _) in runs.items()}
    offline = f"deepconf offline (eta {args.eta:g})"
    hits[offline] = offline_hits(base_results, args.eta, "lowest_group")
    tokens[offline] = tokens[f"majority@{args.n}"]
    secs = {name: s for name, (_, s) in runs.items()}
    base = hits[f"majority@{args.n}"]
    ids = sorted(base)
    from ttscale.models.loading import resolve_dtype

    dtype = str(resolve_dtype("auto", "cpu")).removeprefix("torch.")  # the recipe leaves model.dtype at auto
    print("\n" + provenance())
    print(f"SmolLM2-135M ({dtype}, CPU), synthetic arithmetic levels 1-2, {len(ids)} problems, N={args.n}, "
          f"wave {args.wave}, {args.stop_rule} stop at {args.stop_confidence:g}, warm-up {args.warmup}, eta {args.eta:g}, window {args.window}, chunk {args.chunk}")
    print(f"{'method':<28}{'accuracy':>9} {'95% CI':>15} {'vs majority (paired 95% CI)':>30} "
          f"{'tokens/problem':>15} {'ratio':>7} {'wall s':>8}")
    for name in hits:
        h = [hits[name][i] for i in ids]
        lo, hi = bootstrap_interval(h)
        diff = [hits[name][i] - base[i] for i in ids]
        dlo, dhi = bootstrap_interval(diff)
        ratio = tokens[name] / tokens[f"majority@{args.n}"]
        wall = f"{secs[name]:8.0f}" if name in secs else f"{'(same)':>8}"
        print(f"{name:<28}{100 * sum(h) / len(h):>8.1f}% [{100 * lo:5.1f}, {100 * hi:5.1f}] "
              f"{100 * sum(diff) / len(diff):>+11.1f} [{100 * dlo:+5.1f}, {100 * dhi:+5.1f}]     "
              f"{tokens[name]:>15.1f} {ratio:>7.2f} {wall}")
    stopped = sum(c.dropped == "stopped" for r in runs["deepconf online"][0] for c in r.completions)
    traces = sum(len(r.completions) for r in runs["deepconf online"][0])
    drawn = sum(len(r.completions) for r in runs["adaptive_consistency"][0]) / len(ids)
    print(f"\nadaptive_consistency: {drawn:.1f} samples per problem; deepconf online: {traces / len(ids):.1f} traces "
          f"per problem, {stopped} of {traces} stopped early")


if __name__ == "__main__":
    main()
