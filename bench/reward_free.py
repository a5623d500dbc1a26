"""Reward-free selection and early rejection on the CPU world, each against what it claims to beat.

SmolLM2-135M (float32, or --dtype) on synthetic arithmetic, per wording:
  no verifier    best-of-N at N=--n, sampled once with the top-20 logprobs: the majority, self_certainty and
                 confidence_weighted picks over the same samples (Kang et al. 2025), and beam search at
                 --beam-n steered by the self_certainty verifier (no reward model), all against majority@N;
  early rejection  speculative_rejection (Sun et al. 2024) starting from each of --sr-n samples, rejecting
                 --rejection-rate of the live ones every --chunk tokens, against best-of-N with the same
                 pick (--pick) over the same verifier (arithmetic_rules): at N (same start) and at equal
                 tokens (best-of-N subsampled, per problem, to the samples its tokens buy: 8 draws).
Best-of-N is sampled once, at the largest N asked for: sample k's seed is the request's seed + k (as
vLLM derives n samples), so its first N samples are the ones a run at N draws.
Every row: accuracy with a 95% bootstrap interval over problems and generated tokens per problem; then
each method minus its baseline paired over the same problems (the paired bootstrap), and the token
ratio. Runs resume from --out (keyed to the code that wrote them; --fresh discards).

    python bench/reward_free.py [--limit 100] [--wordings exemplar,alt] [--n 16] [--sr-n 16,32]
        [--beam-n 16] [--chunk 16] [--rejection-rate 0.5] [--pick weighted] [--set k=v]
"""

from __future__ import annotations

import argparse
import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path

from _common import cpu_world_parser, cpu_world_run, header, per_wording, row

from ttscale.eval.metrics import bootstrap_interval
from ttscale.grading import correctness
from ttscale.grading.select import select
from ttscale.types import ProblemResult

SUBSETS = 8  # random subsets per problem when best-of-N is cut to fewer samples


@dataclass
class Method:
    """Per-problem correctness and generated tokens, in problem order."""

    hits: list[float]
    tokens: list[float]

    @property
    def accuracy(self) -> float:
        return sum(self.hits) / len(self.hits)

    @property
    def mean_tokens(self) -> float:
        return sum(self.tokens) / len(self.tokens)


def searched(args: argparse.Namespace, wording: str, out: Path, *extra: str) -> list[ProblemResult]:
    """One run of the cpu_arithmetic recipe on this wording (resumed from `out` when it holds one)."""
    return cpu_world_run(args, wording, out, "sampling.logprobs=20", f"search.rejection.chunk_tokens={args.chunk}",
                         f"search.rejection.rate={args.rejection_rate}", *extra)


def picked(results: list[ProblemResult], selection: str | None = None) -> Method:
    """A pick over each problem's candidates (None: the strategy's own), and the problem's whole budget."""
    correct = correctness(results)
    hits = []
    for r in results:
        i = r.selected if selection is None else select(r.completions, selection, "last", r.distinct)
        hits.append(float(r.error is None and i is not None and correct[r.id][i]))
    return Method(hits, [float(r.budget.generated_tokens) for r in results])


def first(results: list[ProblemResult], n: int) -> list[ProblemResult]:
    """Best-of-N at `n` from a run at a larger N: each problem's first `n` samples and their tokens."""
    out = []
    for r in results:
        kept = r.completions[:n]
        budget = dataclasses.replace(r.budget, generated_tokens=sum(c.n_tokens for c in kept))
        out.append(dataclasses.replace(r, completions=kept, budget=budget, selected=None))
    return out


def at_tokens(bon: list[ProblemResult], spent: list[float], selection: str) -> Method:
    """Best-of-N cut, problem by problem, to the samples `spent` tokens buy at that problem's own cost per sample."""
    correct = correctness(bon)
    hits, tokens = [], []
    for r, budget in zip(bon, spent):
        n = len(r.completions)
        k = min(n, max(1, round(n * budget / max(r.budget.generated_tokens, 1))))
        draws = [sorted(random.Random(f"{r.id}:{s}").sample(range(n), k)) for s in range(SUBSETS)]
        right = 0.0
        for idx in draws:
            pick = select([r.completions[i] for i in idx], selection, "last")
            right += float(pick is not None and correct[r.id][idx[pick]])
        hits.append(right / SUBSETS)
        tokens.append(r.budget.generated_tokens * k / n)
    return Method(hits, tokens)


def print_rows(title: str, methods: dict[str, Method]) -> None:
    print(f"\n{title}")
    width = max(len(name) for name in methods) + 2
    print(f"{'method':<{width}}{'accuracy':>9} {'95% CI':>15} {'tokens/problem':>15}")
    for name, m in methods.items():
        lo, hi = bootstrap_interval(m.hits)
        print(f"{name:<{width}}{100 * m.accuracy:>8.1f}% [{100 * lo:5.1f}, {100 * hi:5.1f}] {m.mean_tokens:>15.1f}")


def print_paired(pairs: list[tuple[str, Method, str, Method]]) -> None:
    print("\npaired over the same problems: ours - baseline, accuracy points [95% bootstrap CI], token ratio")
    width = max(len(f"{a} - {b}") for a, _, b, _ in pairs) + 2
    for a, ours, b, base in pairs:
        diff = [x - y for x, y in zip(ours.hits, base.hits)]
        lo, hi = bootstrap_interval(diff)
        print(f"{f'{a} - {b}':<{width}}{100 * sum(diff) / len(diff):>+7.1f} [{100 * lo:+6.1f}, {100 * hi:+6.1f}] "
              f"{ours.mean_tokens / max(base.mean_tokens, 1e-9):>7.2f}x")
    print("\nthe same as rows (ours, baseline)")
    header()
    for a, ours, b, base in pairs:
        against = "bon@tok" if b.startswith("bon@tok") else b
        row(f"{a}/{against} acc %", 100 * ours.accuracy, 100 * base.accuracy)
        row(f"{a}/{against} tokens", ours.mean_tokens, base.mean_tokens)


def wording_table(args: argparse.Namespace, wording: str, out: Path) -> None:
    # One sampling run serves both parts: best-of-N's samples do not depend on its verifier, and the
    # majority and confidence picks never read the scores.
    most = max([args.n, *args.sr_n])
    pool = searched(args, wording, out / f"best_of_n_n{most}", "search.strategy=best_of_n", f"search.n={most}",
                    "verifier.name=arithmetic_rules", "search.selection=majority")
    bon = first(pool, args.n)
    n_problems = len(bon)
    majority = picked(bon, "majority")
    free = {f"majority@{args.n}": majority, f"self_certainty@{args.n}": picked(bon, "self_certainty"),
            f"conf_weighted@{args.n}": picked(bon, "confidence_weighted")}
    pairs = [(name, m, f"majority@{args.n}", majority) for name, m in free.items() if name != f"majority@{args.n}"]
    for n in args.beam_n:
        beam = searched(args, wording, out / f"beam_self_certainty_n{n}", "search.strategy=beam_search",
                        "verifier.name=self_certainty", f"search.n={n}", f"search.beam_width={4 if n % 4 == 0 else 2}",
                        "search.selection=confidence_weighted")
        name = f"beam+selfcert@{n}"
        free[name] = picked(beam)
        pairs.append((name, free[name], f"majority@{args.n}", majority))
    early = {}
    for n in args.sr_n:
        base = early[f"best_of_n@{n}"] = picked(first(pool, n), args.pick)
        sr = searched(args, wording, out / f"speculative_rejection_n{n}", "search.strategy=speculative_rejection",
                      "verifier.name=arithmetic_rules", f"search.n={n}", f"search.selection={args.pick}")
        name = f"spec_rej@{n}"
        early[name] = picked(sr)
        pairs.append((name, early[name], f"best_of_n@{n}", base))
        matched = at_tokens(pool, early[name].tokens, args.pick)
        early[f"bon@tok({name})"] = matched
        pairs.append((name, early[name], f"bon@tok({name})", matched))
    where = (f"SmolLM2-135M {args.dtype}, synthetic arithmetic ({wording} wording) levels {args.levels}, {n_problems} "
             f"problems (seed {args.seed}), max {args.max_new_tokens} new tokens")
    print_rows(f"{where}\nno verifier: picks over best-of-N's samples by the policy's own confidence (beam+selfcert: "
               "beam search steered by the self_certainty verifier, confidence_weighted pick)", free)
    print_rows(f"early rejection: chunk {args.chunk} tokens, rejection rate {args.rejection_rate:g}, verifier "
               f"arithmetic_rules, {args.pick} pick (bon@tok(X): best-of-N cut to X's tokens)", early)
    print_paired(pairs)


def main() -> None:
    ap = cpu_world_parser("runs/reward_free")
    ap.add_argument("--n", type=int, default=16, help="best-of-N's N, the baseline of both parts")
    ap.add_argument("--beam-n", default="16", help="comma-separated N of beam search with the self_certainty "
                    "verifier ('' to skip)")
    ap.add_argument("--sr-n", default="16,64", help="comma-separated starting N of speculative_rejection")
    ap.add_argument("--chunk", type=int, default=16, help="search.rejection.chunk_tokens")
    ap.add_argument("--rejection-rate", type=float, default=0.5)
    ap.add_argument("--pick", default="weighted", choices=("weighted", "naive"),
                    help="the verifier pick of best-of-N and speculative rejection (the paper's is naive)")
    args = ap.parse_args()
    args.beam_n = [int(x) for x in args.beam_n.split(",") if x]
    args.sr_n = [int(x) for x in args.sr_n.split(",") if x]
    per_wording(args, wording_table)


if __name__ == "__main__":
    main()
