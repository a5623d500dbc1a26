"""MCTS over steps against beam search and DVTS, at the same N, width and verifier, on the CPU world.

SmolLM2-135M (float32, or --dtype) on synthetic arithmetic, per wording: beam search, DVTS and MCTS (UCT, and PUCT
with the policy's log-probabilities as prior) at --n with --beam-width, all guided by the arithmetic
rule verifier with the weighted pick; majority@--n over best-of-N's samples for scale. Every row:
accuracy with a 95% bootstrap interval over problems and generated tokens per problem; then MCTS minus
each other search paired over the same problems, with the token ratio, and the rounds each search took
per problem. Runs resume from --out.

    python bench/mcts.py [--limit 100] [--wordings exemplar,alt] [--n 16] [--beam-width 4] [--c 1.4]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _common import cpu_world_parser, cpu_world_run, per_wording
from reward_free import Method, picked, print_paired, print_rows


def wording_table(args: argparse.Namespace, wording: str, out: Path) -> None:
    common = [f"search.n={args.n}", f"search.beam_width={args.beam_width}", "verifier.name=arithmetic_rules",
              f"search.max_iterations={args.max_iterations}", "search.selection=weighted"]
    bon = cpu_world_run(args, wording, out / f"best_of_n_n{args.n}", *common, "search.strategy=best_of_n",
                        "search.selection=majority")
    methods: dict[str, Method] = {f"majority@{args.n}": picked(bon, "majority")}
    runs = {
        "beam_search": ["search.strategy=beam_search"],
        "dvts": ["search.strategy=dvts"],
        "mcts_uct": ["search.strategy=mcts", "search.mcts.selection=uct", f"search.mcts.c={args.c}"],
        "mcts_puct": ["search.strategy=mcts", "search.mcts.selection=puct", f"search.mcts.c={args.c}",
                      "sampling.logprobs=1"],
    }
    rounds = {f"majority@{args.n}": bon}
    for name, extra in runs.items():
        results = cpu_world_run(args, wording, out / f"{name}_n{args.n}", *common, *extra)
        methods[f"{name}@{args.n}"], rounds[f"{name}@{args.n}"] = picked(results), results
    print_rows(f"SmolLM2-135M {args.dtype}, synthetic arithmetic ({wording} wording) levels {args.levels}, {len(bon)} "
               f"problems (seed {args.seed}); N={args.n}, width {args.beam_width}, {args.max_iterations} rounds, "
               f"arithmetic_rules verifier, weighted pick; MCTS c={args.c}, mean backup", methods)
    # A round costs the same N steps in beam search and MCTS; the rounds a search takes to finish N
    # solutions are where their tokens part (one generator call per problem a round).
    print("\nrounds per problem (generator calls): " + ", ".join(
        f"{name} {sum(r.budget.generator_calls for r in res) / len(res):.1f}" for name, res in rounds.items()))
    pairs = [(f"{m}@{args.n}", methods[f"{m}@{args.n}"], f"{b}@{args.n}", methods[f"{b}@{args.n}"])
             for m in ("mcts_uct", "mcts_puct") for b in ("beam_search", "dvts", "majority")]
    print_paired(pairs)


def main() -> None:
    ap = cpu_world_parser("runs/mcts")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--beam-width", type=int, default=4)
    ap.add_argument("--max-iterations", type=int, default=8)
    ap.add_argument("--c", type=float, default=1.4, help="search.mcts.c")
    per_wording(ap.parse_args(), wording_table)


if __name__ == "__main__":
    main()
