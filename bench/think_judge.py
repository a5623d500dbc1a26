"""A verifier that thinks (think_judge: a written check per step, then the verdict) against the judge that
answers at once (lm_judge), each guiding the same beam search on the CPU world.

SmolLM2-135M (float32, or --dtype) is the policy and, for both judges, the verifier (ThinkPRM, Khalifa et al. 2025,
let the judge write before its verdict; lm_judge reads the verdict with no check). Per wording: beam
search at --n beams (width --beam-width) guided by each judge, and majority@--n over best-of-N's
samples for scale. Every row: accuracy with a 95% bootstrap interval over problems, the policy's
generated tokens and the verifier's tokens (read and written) per problem; then think_judge minus
lm_judge paired over the same problems. Runs resume from --out (keyed to the code that wrote them).

    python bench/think_judge.py [--limit 100] [--wordings exemplar,alt] [--n 8] [--think-tokens 48]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _common import cpu_world_parser, cpu_world_run, per_wording
from reward_free import Method, picked, print_paired, print_rows

from ttscale.types import ProblemResult


def searched(args: argparse.Namespace, wording: str, out: Path, *extra: str) -> list[ProblemResult]:
    return cpu_world_run(args, wording, out, f"verifier.dtype={args.dtype}", f"search.n={args.n}",
                         f"verifier.think_tokens={args.think_tokens}", *extra)


def verifier_tokens(results: list[ProblemResult]) -> float:
    return sum(r.budget.verifier_tokens for r in results) / len(results)


def wording_table(args: argparse.Namespace, wording: str, out: Path) -> None:
    bon = searched(args, wording, out / f"best_of_n_n{args.n}", "search.strategy=best_of_n",
                   "verifier.name=none", "search.selection=majority")
    methods: dict[str, Method] = {f"majority@{args.n}": picked(bon, "majority")}
    spent = {}
    for judge in ("lm_judge", "think_judge"):
        beam = searched(args, wording, out / f"beam_{judge}_n{args.n}", "search.strategy=beam_search",
                        f"verifier.name={judge}", "verifier.model=embedded:smollm2",
                        f"search.beam_width={args.beam_width}", "search.max_iterations=8",
                        "search.selection=weighted")
        methods[f"beam+{judge}@{args.n}"] = picked(beam)
        spent[judge] = verifier_tokens(beam)
    print_rows(f"SmolLM2-135M {args.dtype} policy and judge, synthetic arithmetic ({wording} wording) levels "
               f"{args.levels}, {len(bon)} problems (seed {args.seed}); beam search N={args.n} width "
               f"{args.beam_width}, weighted pick; think_judge writes up to {args.think_tokens} tokens per step",
               methods)
    print(f"verifier tokens per problem (read and written): lm_judge {spent['lm_judge']:.0f}, think_judge "
          f"{spent['think_judge']:.0f} ({spent['think_judge'] / max(spent['lm_judge'], 1e-9):.2f}x)")
    think, plain = methods[f"beam+think_judge@{args.n}"], methods[f"beam+lm_judge@{args.n}"]
    majority = methods[f"majority@{args.n}"]
    print_paired([(f"beam+think_judge@{args.n}", think, f"beam+lm_judge@{args.n}", plain),
                  (f"beam+think_judge@{args.n}", think, f"majority@{args.n}", majority)])


def main() -> None:
    ap = cpu_world_parser("runs/think_judge")
    ap.add_argument("--n", type=int, default=8, help="beams, and best-of-N's N for the majority row")
    ap.add_argument("--beam-width", type=int, default=2)
    ap.add_argument("--think-tokens", type=int, default=48, help="verifier.think_tokens")
    per_wording(ap.parse_args(), wording_table)


if __name__ == "__main__":
    main()
