"""Accuracy of every strategy at N = 4, 8, 16 on the synthetic world (SmolLM2 + a verifier, CPU).

Runs the bundled CPU recipes (resumable, into --out) and prints one table: majority
and weighted best-of-N (subsampled from one N=16 run) beside beam search, DVTS and
particle filtering at each N, with the mean generated tokens per problem.

    python bench/search_accuracy.py [--verifier arithmetic_rules|lm_judge] [--limit 24]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ttscale.cli import resolve_recipe
from ttscale.config import load_config
from ttscale.runner import run

NS = (4, 8, 16)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--verifier", default="arithmetic_rules")
    ap.add_argument("--limit", type=int, default=24)
    ap.add_argument("--out", default="runs/search_table")
    ap.add_argument("--strategies", default="beam_search,dvts,particle_filtering")
    args = ap.parse_args()
    out = Path(args.out) / args.verifier
    common = [f"verifier.name={args.verifier}", f"dataset.limit={args.limit}"]
    rows: dict[str, dict[int, tuple[float, float]]] = {}

    bon = run(load_config(resolve_recipe("cpu_arithmetic_weighted_bon"), common + [f"output.dir={out}/best_of_n"]),
              progress=True).metrics
    tokens = bon["mean_budget"]["generated_tokens"]
    for method in ("majority", "weighted"):
        rows[f"{method} (best-of-N)"] = {n: (bon["curves"][method][str(n)], tokens * n / 16) for n in NS}
    rows["pass@N (oracle)"] = {n: (bon["curves"]["pass"][str(n)], tokens * n / 16) for n in NS}
    recipes = {"beam_search": "cpu_arithmetic_beam", "dvts": "cpu_arithmetic_dvts", "particle_filtering": "cpu_arithmetic_particle"}
    for strategy in args.strategies.split(","):
        rows[strategy] = {}
        for n in NS:
            cfg = load_config(resolve_recipe(recipes[strategy]), common + [f"search.n={n}", f"output.dir={out}/{strategy}_n{n}"])
            m = run(cfg, progress=True).metrics
            rows[strategy][n] = (m["accuracy"], m["mean_budget"]["generated_tokens"])
    print(f"\nSmolLM2-135M, synthetic arithmetic levels 1-3, {args.limit} problems, verifier {args.verifier}")
    print(f"{'method':<24}" + "".join(f"{'N=' + str(n):>18}" for n in NS))
    for name, by_n in rows.items():
        print(f"{name:<24}" + "".join(f"{100 * a:>9.1f}% {t:>6.0f}tok" for a, t in (by_n[n] for n in NS)))


if __name__ == "__main__":
    main()
