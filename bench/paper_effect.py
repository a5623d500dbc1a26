"""The paper's effect on CPU: search guided by a process verifier vs sampling at equal N.

On problems of the alt wording (the exemplars never use it; --wording exemplar for the other), SmolLM2-135M
(the Q4_1 GGUF, dequantized) in `--dtype` (default auto: bf16 where the CPU has bf16 instructions, else fp32):
majority, naive and weighted best-of-N (subsampled from one N=max run, verifier scores
alongside) and the oracle pass@N, beside beam search, DVTS and particle filtering at
each N, each search with its own pick and with majority / naive / weighted over its
candidates. Every row: accuracy with a 95% bootstrap interval over problems, and the
mean generated tokens per problem. With --prm DIR the trained PRM (bench/learned_prm.py)
reweights the best-of-N candidates and guides the searches too. Runs resume from --out.

    python bench/paper_effect.py [--limit 100] [--n 4,16] [--search-n 4,16] [--levels [2,3,4]] [--seed 3000]
        [--strategies beam_search,dvts,particle_filtering] [--prm runs/learned_prm/prm] [--set k=v]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import claim_out, header, rescore, row, with_step_scores

from ttscale.cli import resolve_recipe
from ttscale.config import VerifierConfig
from ttscale.data.results import read_results
from ttscale.eval.metrics import bootstrap_interval, subsampled_points
from ttscale.grading import correctness
from ttscale.grading.select import reselect
from ttscale.recipe import load_config
from ttscale.runner import run
from ttscale.types import ProblemResult

RECIPES = {"best_of_n": "cpu_arithmetic_weighted_bon", "beam_search": "cpu_arithmetic_beam",
           "dvts": "cpu_arithmetic_dvts", "particle_filtering": "cpu_arithmetic_particle"}
PICKS = ("majority", "naive", "weighted")

# name -> N -> (per-problem correctness, per-problem generated tokens)
Table = dict[str, dict[int, tuple[list[float], list[float]]]]


def overrides(args: argparse.Namespace, verifier: list[str], n: int, out: Path) -> list[str]:
    return [f"dataset.wording={args.wording}", f"dataset.seed={args.seed}", f"dataset.levels={args.levels}",
            f"dataset.limit={args.limit}", f"dataset.synthetic_size={max(500, args.limit)}", f"model.dtype={args.dtype}",
            f"search.n={n}", f"sampling.max_new_tokens={args.max_new_tokens}", f"output.dir={out}", *verifier, *args.set]


def run_results(recipe: str, sets: list[str]) -> list[ProblemResult]:
    cfg = load_config(resolve_recipe(recipe), sets)
    return read_results(run(cfg, progress=True).run_dir)


def rescored(results: list[ProblemResult], prm_dir: str, cache: Path) -> list[ProblemResult]:
    """The same candidates with the trained PRM's step scores, kept in `cache` for that PRM's weights
    (scoring N=16 x 100 problems on CPU takes a while, and a rerun only adds search rows)."""
    from ttscale.verifiers.trained_prm import TrainedPRM

    weights = Path(prm_dir) / "model.safetensors"
    key = {"prm": str(Path(prm_dir).resolve()), "mtime": weights.stat().st_mtime if weights.exists() else None}
    saved = json.loads(cache.read_text(encoding="utf-8")) if cache.is_file() else {}
    if saved.get("key") == key and set(saved["scores"]) == {r.id for r in results}:
        return with_step_scores(results, saved["scores"])
    prm = TrainedPRM(VerifierConfig(name="trained_prm", model=prm_dir, device="cpu", dtype="float32"))
    out = rescore(results, prm, "\n")
    cache.write_text(json.dumps({"key": key, "scores": {r.id: [c.step_scores for c in r.completions] for r in out}}),
                     encoding="utf-8")
    return out


def best_of_n_rows(table: Table, results: list[ProblemResult], ns: list[int], tag: str, with_pass: bool) -> None:
    correct = correctness(results)
    methods = {f"{m} best-of-N{tag}": (m, "last") for m in PICKS if m != "majority" or with_pass}
    points = subsampled_points(results, correct, methods, seeds=8)
    for name, ps in points.items():
        if name == "pass" and not with_pass:
            continue
        label = "pass@N (oracle)" if name == "pass" else name
        for p in ps:
            if p.n in ns:
                table.setdefault(label, {})[p.n] = ([p.correct[r.id] for r in results],
                                                    [p.tokens[r.id] for r in results])


def search_rows(table: Table, strategy: str, n: int, results: list[ProblemResult], tag: str) -> None:
    correct = correctness(results)
    tokens = [float(r.budget.generated_tokens) for r in results]
    own = [float(r.error is None and r.selected is not None and correct[r.id][r.selected]) for r in results]
    table.setdefault(f"{strategy}{tag} (own pick)", {})[n] = (own, tokens)
    for pick in PICKS:
        # the pick `ttscale evaluate` puts on the same candidates (grading.select.reselect): a repeated text
        # votes once in a tree, as the strategy's own pick counts it
        hits = [float(r.error is None and (i := reselect(r, pick, "last")) is not None and correct[r.id][i])
                for r in results]
        table.setdefault(f"{strategy}{tag} ({pick} pick)", {})[n] = (hits, tokens)


def print_table(table: Table, ns: list[int], args: argparse.Namespace, n_problems: int) -> None:
    from ttscale.models.loading import resolve_dtype

    dtype = str(resolve_dtype(args.dtype, "cpu")).removeprefix("torch.")
    print(f"\nSmolLM2-135M (Q4_1 GGUF, dequantized), {dtype}, synthetic arithmetic ({args.wording} wording) levels {args.levels}, "
          f"{n_problems} problems (seed {args.seed}); accuracy [95% bootstrap CI over problems], tokens/problem")
    width = max(len(name) for name in table) + 1
    print(f"{'method':<{width}}" + "".join(f"{'N=' + str(n):>30}" for n in ns))
    for name, by_n in table.items():
        cells = []
        for n in ns:
            if n not in by_n:
                cells.append(" " * 30)
                continue
            hits, tokens = by_n[n]
            lo, hi = bootstrap_interval(hits)
            mean = sum(hits) / len(hits)
            cells.append(f"{100 * mean:>6.1f}% [{100 * lo:>4.1f},{100 * hi:>5.1f}] {sum(tokens) / len(tokens):>6.0f}tok")
        print(f"{name:<{width}}" + "".join(f"{c:>30}" for c in cells))


def print_samples_right(results: list[ProblemResult]) -> None:
    """How often one sample of the policy is right: the @1 that search starts from."""
    correct = [v for v in correctness(results).values() if v]
    per_problem = [sum(v) / len(v) for v in correct]
    lo, hi = bootstrap_interval(per_problem)
    print(f"\nsamples right (@1): {100 * sum(per_problem) / len(per_problem):.1f}% [{100 * lo:.1f}, {100 * hi:.1f}] "
          f"of {sum(len(v) for v in correct)} best-of-N samples over {len(correct)} problems")


def print_paired(table: Table, ns: list[int]) -> None:
    """The paper's question, problem by problem: each search's own pick against majority at the largest N.

    Paired over the same problems, so the interval is the difference's, narrower than two rows' overlap.
    """
    top = ns[-1]
    base_hits, base_tokens = table["majority best-of-N"][top]
    print(f"\npaired with majority best-of-N @{top} (same problems): accuracy difference [95% bootstrap CI], token ratio")
    for name, by_n in table.items():
        if not name.endswith("(own pick)"):
            continue
        for n, (hits, tokens) in sorted(by_n.items()):
            diff = [a - b for a, b in zip(hits, base_hits)]
            lo, hi = bootstrap_interval(diff)
            ratio = sum(tokens) / max(sum(base_tokens), 1.0)
            label = f"{name.removesuffix(' (own pick)')} @{n}"
            print(f"{label:<42} {100 * sum(diff) / len(diff):>+6.1f} pts [{100 * lo:>+5.1f},{100 * hi:>+5.1f}] "
                  f"{ratio:>6.2f}x tokens")
    print("\nthe same as rows (ours = the search, baseline = majority best-of-N @" f"{top})")
    header()
    for name, by_n in table.items():
        if name.endswith("(own pick)"):
            for n, (hits, tokens) in sorted(by_n.items()):
                label = f"{name.removesuffix(' (own pick)')} @{n}"
                row(f"{label} accuracy (%)", 100 * sum(hits) / len(hits), 100 * sum(base_hits) / len(base_hits))
                row(f"{label} tokens", sum(tokens), sum(base_tokens))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--n", default="4,16", help="comma-separated N; best-of-N samples max(N) once")
    ap.add_argument("--search-n", help="comma-separated N of the searches (default: --n); N=4 alone asks the paper's "
                    "question, search at 4 against sampling at 16, at a quarter of the cost")
    ap.add_argument("--levels", default="[2,3,4]")
    ap.add_argument("--wording", default="alt", choices=("exemplar", "alt"))
    ap.add_argument("--seed", type=int, default=3000, help="evaluation seed (learned_prm.py trains on 1000)")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16"))
    ap.add_argument("--strategies", default="beam_search,dvts,particle_filtering")
    ap.add_argument("--prm", help="a trained PRM dir (bench/learned_prm.py): rows with it too")
    ap.add_argument("--fresh", action="store_true", help="discard rows in --out that other code wrote")
    ap.add_argument("--out", default="runs/paper_effect")
    ap.add_argument("--set", action="append", default=[], help="extra config override (model.backend=fake: a smoke test)")
    args = ap.parse_args()
    ns = sorted(int(x) for x in args.n.split(","))
    search_ns = sorted(int(x) for x in args.search_n.split(",")) if args.search_n else ns
    out = Path(args.out) / args.wording
    claim_out(out, args.fresh)
    rules = ["verifier.name=arithmetic_rules"]
    table: Table = {}
    bon = run_results(RECIPES["best_of_n"], overrides(args, rules, ns[-1], out / f"best_of_n_n{ns[-1]}"))
    best_of_n_rows(table, bon, ns, "", with_pass=True)
    if args.prm:
        best_of_n_rows(table, rescored(bon, args.prm, out / f"best_of_n_n{ns[-1]}" / "trained_prm_scores.json"), ns, ", trained PRM", with_pass=False)
    verifiers = [("", rules)]
    if args.prm:
        verifiers.append((", trained PRM", ["verifier.name=trained_prm", f"verifier.model={args.prm}",
                                             "verifier.device=cpu", "verifier.dtype=float32"]))
    for strategy in [s for s in args.strategies.split(",") if s]:
        for tag, verifier in verifiers:
            name = "trained_prm" if tag else "rules"
            for n in search_ns:
                # M = 4 as in Beeching, Tunstall & Rush 2024, where it divides N
                width = [f"search.beam_width={4 if n % 4 == 0 else 2}"] if strategy != "particle_filtering" else []
                sets = overrides(args, verifier, n, out / f"{strategy}_{name}_n{n}") + width
                search_rows(table, strategy, n, run_results(RECIPES[strategy], sets), tag)
    print_table(table, ns, args, len(bon))
    print_samples_right(bon)
    print_paired(table, ns)


if __name__ == "__main__":
    main()
