"""Beam search cost per generated token vs plain batched sampling of the same token count.

Beam search N=8, M=4 on the synthetic world with SmolLM2 + arithmetic_rules; the
baseline samples N whole solutions per problem in one batched `generate` call.
Ratio = (search seconds per generated token) / (sampling seconds per token); goal <= 1.3.

    python bench/search_overhead.py [--problems 4]
"""

from __future__ import annotations

import argparse

from _common import header, problems_and_prompts, row, timed

from ttscale.backends.hf import HFGenerator
from ttscale.config import ModelConfig
from ttscale.search import SearchSettings, build_strategy
from ttscale.types import SamplingParams
from ttscale.verifiers.arithmetic import ArithmeticRulesVerifier


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--problems", type=int, default=4)
    ap.add_argument("--n", type=int, default=8)
    args = ap.parse_args()
    gen = HFGenerator(ModelConfig(max_batch_size=64))
    problems, prompts = problems_and_prompts(args.problems)
    settings = SearchSettings(n=args.n, beam_width=4, step_delimiter="\n", end_markers=("\nQuestion:",),
                              max_step_tokens=32, max_new_tokens=96, max_iterations=6, seed=1)
    gen.generate(prompts[:1], [SamplingParams(max_new_tokens=4)])  # warm-up
    t_search, results = timed(lambda: build_strategy("beam_search").search(
        problems, prompts, gen, ArithmeticRulesVerifier(), settings))
    search_tokens = sum(r.budget.generated_tokens for r in results)
    params = SamplingParams(temperature=0.8, max_new_tokens=96, stop=("\nQuestion:",), n=args.n, seed=1)
    t_plain, outs = timed(lambda: gen.generate(prompts, [params] * len(prompts)))
    plain_tokens = sum(g.n_tokens for gs in outs for g in gs)
    header()
    row("seconds per 1k generated tokens", 1000 * t_search / search_tokens, 1000 * t_plain / plain_tokens,
        f"(search {search_tokens} tok in {t_search:.1f}s, sampling {plain_tokens} tok in {t_plain:.1f}s)")


if __name__ == "__main__":
    main()
