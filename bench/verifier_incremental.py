"""Incremental PRM scoring: reuse each beam's cached prefix against rescoring it in full.

Beam search sends every beam's FULL step list to the verifier each round. This
replays that: B beams (4 problems x B/4 beams each), and every round each beam gets
a new ~30-token step; both verifiers score the same items each round, side by side,
on the same small random Llama-shaped PRM in the RLHFlow format (bench/prm_scoring.py's
`small`, ~30M params with the SmolLM2 vocabulary). Prints `name  ours  baseline  ratio`
in seconds (ratio = baseline / ours) per round and in total, plus the tokens each ran
(count_tokens) and the largest score difference:

  ours       the default: per item, the KV and scores of the longest cached token prefix
             are reused and only the new tokens run (LRU, 1 GiB)
  baseline   kv_cache_bytes=0: every item scored in full each round

    python bench/verifier_incremental.py                 # CPU, float32
    python bench/verifier_incremental.py --threads 1     # a busy shared CPU: no waiting on a descheduled thread
    python bench/verifier_incremental.py --device cuda --dtype bfloat16 --size 1b
"""

from __future__ import annotations

import argparse
import random

import torch
from prm_scoring import SIZES, build, timed

WORDS = [
    "so",
    "we",
    "add",
    "then",
    "multiply",
    "the",
    "result",
    "by",
    "and",
    "subtract",
    "from",
    "both",
    "sides",
    "which",
    "gives",
    "us",
    "check",
    "again",
]


def new_step(rng: random.Random, words: int) -> str:
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    text = " ".join(rng.choice(WORDS) for _ in range(words))
    return f"{text}: {a} + {b} = {a + b}."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--size", default="small", choices=sorted(SIZES))
    parser.add_argument("--beams", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--step-words", type=int, default=18, help="words per step (~30 tokens at the default)")
    parser.add_argument("--max-tokens-per-batch", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=3, help="replays; each round reports its fastest")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        # on a shared machine a second thread is often descheduled, and every small op then waits for it
        torch.set_num_threads(args.threads)

    from ttscale.config import VerifierConfig
    from ttscale.data.synthetic import arithmetic_problem
    from ttscale.verifiers.rlhflow import RLHFlowPRM

    model, tok = build(args.size, args.device, getattr(torch, args.dtype))
    cfg = VerifierConfig(name="rlhflow", max_tokens_per_batch=args.max_tokens_per_batch)
    rng = random.Random(0)
    problems = [arithmetic_problem(rng, 5, i)[0] for i in range(4)]
    beam_problems = [problems[i % len(problems)] for i in range(args.beams)]
    rounds, beams = [], [[] for _ in range(args.beams)]
    for _ in range(args.rounds):
        beams = [b + [new_step(rng, args.step_words)] for b in beams]
        rounds.append(beams)
    RLHFlowPRM(cfg, model=model, tokenizer=tok).score(problems[:1], [rounds[0][0]])  # warm-up

    # the machine is shared: the whole replay runs --repeats times and each round keeps its fastest time
    t_ours = [float("inf")] * args.rounds
    t_base = [float("inf")] * args.rounds
    for _ in range(args.repeats):
        ours = RLHFlowPRM(cfg, model=model, tokenizer=tok)
        baseline = RLHFlowPRM(cfg, model=model, tokenizer=tok, kv_cache_bytes=0)
        tokens, diffs = [], []
        for r, beams in enumerate(rounds):
            t, got = timed(lambda v=ours, b=beams: v.score(beam_problems, b), args.device)
            t_ours[r] = min(t_ours[r], t)
            t, expected = timed(lambda v=baseline, b=beams: v.score(beam_problems, b), args.device)
            t_base[r] = min(t_base[r], t)
            tokens.append(
                (
                    sum(ours.count_tokens(p, b) for p, b in zip(beam_problems, beams)),
                    sum(baseline.count_tokens(p, b) for p, b in zip(beam_problems, beams)),
                )
            )
            diffs.append(max(abs(x - y) for g, e in zip(got, expected) for x, y in zip(g, e)))

    step_tokens = len(tok.encode(new_step(random.Random(1), args.step_words), add_special_tokens=False))
    print(
        f"# {args.size} Llama ({ours.n_params / 1e6:.0f}M params), {args.device}, {args.dtype}; "
        f"{args.beams} beams, {args.rounds} rounds, ~{step_tokens} tokens per step (+ chat tokens); "
        f"{torch.get_num_threads()} threads; fastest of {args.repeats} replays"
    )
    print(f"{'name':<10}{'ours':>10}{'baseline':>10}{'ratio':>8}   {'tokens ours/base':>18}  max|score diff|")
    for r in range(args.rounds):
        print(
            f"{f'round {r + 1}':<10}{t_ours[r]:>10.3f}{t_base[r]:>10.3f}{t_base[r] / t_ours[r]:>8.2f}   "
            f"{f'{tokens[r][0]}/{tokens[r][1]}':>18}  {diffs[r]:.1e}"
        )
    total_ours, total_base = sum(t_ours), sum(t_base)
    n_ours, n_base = sum(t for t, _ in tokens), sum(t for _, t in tokens)
    print(
        f"{'total':<10}{total_ours:>10.3f}{total_base:>10.3f}{total_base / total_ours:>8.2f}   "
        f"{f'{n_ours}/{n_base}':>18}  {max(diffs):.1e}"
    )
    print(f"# cache after the last replay: {len(ours.kv_cache)} entries, {ours.kv_cache.used / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
