"""Accuracy of every strategy at N = 4, 8, 16 on the synthetic world (SmolLM2 + a verifier, CPU).

Runs the bundled CPU recipes (resumable, into --out) and prints one table: majority
and weighted best-of-N (subsampled from one N=16 run) beside beam search, DVTS and
particle filtering at each N, with the mean generated tokens and the mean number of
distinct completions per problem (DVTS's subtrees must differ: each root has its own seed).
Then it checks that a recipe's completions.jsonl is the same searched 1 or 4 problems
at a time.

    python bench/search_accuracy.py [--verifier arithmetic_rules|lm_judge] [--limit 24]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _common import claim_out, header, row

from ttscale.cli import resolve_recipe
from ttscale.data.results import read_results
from ttscale.grading import solution_key
from ttscale.recipe import load_config
from ttscale.runner import run

NS = (4, 8, 16)
nan = float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--verifier", default="arithmetic_rules")
    ap.add_argument("--limit", type=int, default=24)
    ap.add_argument("--fresh", action="store_true", help="discard rows in --out that other code wrote")
    ap.add_argument("--out", default="runs/search_table")
    ap.add_argument("--strategies", default="beam_search,dvts,particle_filtering")
    args = ap.parse_args()
    out = Path(args.out) / args.verifier
    claim_out(out, args.fresh)
    common = [f"verifier.name={args.verifier}", f"dataset.limit={args.limit}"]
    rows: dict[str, dict[int, tuple[float, float, float]]] = {}

    bon = run(load_config(resolve_recipe("cpu_arithmetic_weighted_bon"), common + [f"output.dir={out}/best_of_n"]),
              progress=True).metrics
    tokens, bon_distinct = bon["mean_budget"]["generated_tokens"], distinct(out / "best_of_n")
    for method in ("majority", "weighted"):
        rows[f"{method} (best-of-N)"] = {n: (bon["curves"][method][str(n)], tokens * n / 16, nan) for n in NS}
    rows["pass@N (oracle)"] = {n: (bon["curves"]["pass"][str(n)], tokens * n / 16, nan) for n in NS}
    rows["majority (best-of-N)"][16] = (*rows["majority (best-of-N)"][16][:2], bon_distinct)
    recipes = {"beam_search": "cpu_arithmetic_beam", "dvts": "cpu_arithmetic_dvts", "particle_filtering": "cpu_arithmetic_particle"}
    for strategy in args.strategies.split(","):
        rows[strategy] = {}
        for n in NS:
            cfg = load_config(resolve_recipe(recipes[strategy]), common + [f"search.n={n}", f"output.dir={out}/{strategy}_n{n}"])
            m = run(cfg, progress=True).metrics
            rows[strategy][n] = (m["accuracy"], m["mean_budget"]["generated_tokens"], distinct(cfg.output.dir))
    print(f"\nSmolLM2-135M, synthetic arithmetic levels 1-3, {args.limit} problems, verifier {args.verifier}")
    print("accuracy, mean generated tokens and mean distinct completions per problem")
    print(f"{'method':<24}" + "".join(f"{'N=' + str(n):>26}" for n in NS))
    for name, by_n in rows.items():
        print(f"{name:<24}" + "".join(f"{100 * a:>9.1f}% {t:>6.0f}tok {d:>5.1f}dist" for a, t, d in (by_n[n] for n in NS)))
    print("\neach search against majority voting at the same N (ours = the search, baseline = majority)")
    header()
    majority = rows["majority (best-of-N)"]
    for strategy in args.strategies.split(","):
        for n in NS:
            row(f"{strategy} N={n} accuracy (%)", 100 * rows[strategy][n][0], 100 * majority[n][0])
            row(f"{strategy} N={n} generated tokens", rows[strategy][n][1], majority[n][1])
    print()
    batching_check(common, out)


def distinct(run_dir: str | Path) -> float:
    """Mean number of distinct completions per problem, by the one rule of "the same solution"."""
    results = read_results(run_dir)
    return sum(len({solution_key(c.text) for c in r.completions}) for r in results) / max(1, len(results))


def batching_check(common: list[str], out: Path) -> None:
    """The DVTS recipe searched 1 and 4 problems at a time must write the same completions.

    Exact on the fake backend (vLLM's seed semantics, no padding). On HF each row samples from
    its own seeded stream, but a prompt padded differently in another batch gets logits that
    differ in the last bits; in float32 that almost never moves a draw across a token boundary,
    in bfloat16 it often does, so the HF line runs in float32 and reports what it finds.
    """
    for label, extra in (("fake backend", ["model.backend=fake"]), ("SmolLM2 float32", ["model.dtype=float32"])):
        seen = []
        for per_batch in (1, 4):
            cfg = load_config(resolve_recipe("cpu_arithmetic_dvts"), common + extra + [
                "dataset.limit=4", "search.n=4", f"search.problems_per_batch={per_batch}",
                f"output.dir={out}/batching_{label.split()[0]}_{per_batch}"])
            run(cfg, progress=False)
            seen.append({r.id: [c.text for c in r.completions] for r in read_results(cfg.output.dir)})
        same = sum(seen[0][k] == seen[1].get(k) for k in seen[0])
        print(f"completions.jsonl, problems_per_batch 1 vs 4 (dvts, {label}): {same}/{len(seen[0])} problems identical")


if __name__ == "__main__":
    main()
