"""Beam search with prefix KV reuse vs recompute, at growing prompt lengths.

The prompt is padded with extra k-shot exemplars to about 250, 500, 1000 and 2000
tokens; both sides run the same greedy beam search (identical beams), so the time
ratio is the saving from not re-encoding prefixes each round, and from encoding once the
head the problems' prompts share (the exemplars). Goal >= 2x at >= 1k.

A process's first forward passes pay one-time costs (the BLAS library's thread pool and
buffers, the allocator growing), so one untimed search runs on each side first; then the
two sides alternate --repeats times at each length and the fastest of each is shown, as a
quiet-machine figure should be.

    python bench/prefix_reuse.py [--lengths 250,500,1000,2000] [--repeats 2]
"""

from __future__ import annotations

import argparse

from _common import header, problems_and_prompts, row, timed

from ttscale.backends.hf import HFGenerator
from ttscale.config import ModelConfig
from ttscale.search import SearchSettings, build_strategy
from ttscale.verifiers.arithmetic import ArithmeticRulesVerifier


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", default="250,500,1000,2000")
    ap.add_argument("--problems", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    cached = HFGenerator(ModelConfig(max_batch_size=32))
    plain = HFGenerator(ModelConfig(max_batch_size=32, prefix_cache=False), model=cached.model, tokenizer=cached.tokenizer)
    settings = SearchSettings(n=8, beam_width=4, temperature=0.0, step_delimiter="\n", end_markers=("\nQuestion:",),
                              max_step_tokens=24, max_new_tokens=96, max_iterations=4)
    strategy, verifier = build_strategy("beam_search"), ArithmeticRulesVerifier()
    header()
    print(f"# fastest of {args.repeats} alternating runs per side, after one untimed search on each")
    problems, prompts = problems_and_prompts(args.problems, extra_shots=0)
    for generator in (cached, plain):
        strategy.search(problems, prompts, generator, verifier, settings)
    for target in (int(x) for x in args.lengths.split(",")):
        shots = 0
        problems, prompts = problems_and_prompts(args.problems, extra_shots=0)
        while cached.count_tokens(prompts[0]) < target:
            shots += 1
            problems, prompts = problems_and_prompts(args.problems, extra_shots=shots)
        t_cached = t_plain = float("inf")
        for _ in range(args.repeats):
            cached.store.clear()  # every timed search starts as cold as the first
            t, a = timed(lambda: strategy.search(problems, prompts, cached, verifier, settings))
            t_cached = min(t_cached, t)
            t, b = timed(lambda: strategy.search(problems, prompts, plain, verifier, settings))
            t_plain = min(t_plain, t)
        same = [r.completions for r in a] == [r.completions for r in b]
        # ours = reuse, baseline = recompute: the ratio is the share of the time reuse still takes
        row(f"seconds at {cached.count_tokens(prompts[0])}-token prompt", t_cached, t_plain,
            f"(speed-up {t_plain / max(t_cached, 1e-9):.2f}x; identical beams: {same})")


if __name__ == "__main__":
    main()
