"""One stream at a time, the server's case: the HF backend against llama.cpp on the same GGUF.

SmolLM2-135M-Instruct from the embedded GGUF (Q4_1). llama.cpp (`llama-cpp-python`, a source-only
package: `CMAKE_BUILD_PARALLEL_LEVEL=2 pip install llama-cpp-python`, about 5 minutes on 2 cores)
decodes the quantised weights as they are; ttscale dequantises them once to --dtype, and with
`model.quantize: int8` stores its linear layers' weights as int8 (models/quantize.py: the layers'
inputs pass through bfloat16, the rest of the model stays in --dtype). Each side
decodes the same prompts one at a time, greedy, up to --max-new-tokens, on --threads threads; a
side's rate is the tokens it generated over its time, prompt encoding included. int8 changes the
model's numbers, so the bench also counts the greedy texts it leaves as they were. Without
llama-cpp-python the bench says so and compares ours with and without int8.

    python bench/single_stream.py [--prompts 8] [--max-new-tokens 128] [--dtype bfloat16]
"""

from __future__ import annotations

import argparse
import copy

import torch
from _common import header, problems_and_prompts, row, timed

from ttscale.backends.hf import HFGenerator
from ttscale.config import ModelConfig
from ttscale.models.loading import embedded_gguf
from ttscale.types import SamplingParams


def llama_cpp_rate(prompts: list[str], max_new: int, threads: int) -> tuple[float, int] | None:
    """(seconds, tokens) for llama.cpp on the prompts one at a time; None without llama-cpp-python."""
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    directory, filename = embedded_gguf("smollm2")
    llm = Llama(model_path=str(directory / filename), n_ctx=2048, n_threads=threads, n_batch=512, verbose=False)
    llm.create_completion(prompts[0], max_tokens=4, temperature=0.0)  # warm-up

    def run() -> int:
        tokens = 0
        for p in prompts:
            llm.reset()  # no KV kept from the previous prompt: each stream starts cold, as ours does
            out = llm.create_completion(p, max_tokens=max_new, temperature=0.0)
            tokens += out["usage"]["completion_tokens"]
        return tokens

    return timed(run)


def ours_rate(gen: HFGenerator, prompts: list[str], max_new: int) -> tuple[float, float, int, list[str]]:
    """(warm-up seconds, seconds, tokens, texts) for the HF backend on the prompts one at a time, timed
    after a warm-up: for a static cache the longest prompt at max_new, so that the cache (and a compiled
    step, whose compiling the warm-up's time holds) made then has the shapes every later call fits in."""
    longest = max(prompts, key=gen.count_tokens)
    warm, _ = timed(lambda: gen.generate([longest], [SamplingParams(temperature=0.0,
                                                                      max_new_tokens=max_new if gen.static else 4)]))
    params = SamplingParams(temperature=0.0, max_new_tokens=max_new)
    seconds, outs = timed(lambda: [gen.generate([p], [params])[0][0] for p in prompts])
    return warm, seconds, sum(g.n_tokens for g in outs), [g.text for g in outs]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--dtype", default="bfloat16", choices=("float32", "bfloat16"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="also int8 with the static cache's step compiled "
                    "(model.cache_implementation=static, model.compile=always), its one-off compile timed apart")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    plain = HFGenerator(ModelConfig(max_batch_size=1, dtype=args.dtype, prefix_cache=False))
    int8 = HFGenerator(ModelConfig(max_batch_size=1, dtype=args.dtype, prefix_cache=False, quantize="int8"),
                       model=copy.deepcopy(plain.model), tokenizer=plain.tokenizer)
    _, prompts = problems_and_prompts(args.prompts)
    _, t_plain, n_plain, texts_plain = ours_rate(plain, prompts, args.max_new_tokens)
    _, t_int8, n_int8, texts_int8 = ours_rate(int8, prompts, args.max_new_tokens)
    if args.compile:
        compiled = HFGenerator(ModelConfig(max_batch_size=1, dtype=args.dtype, quantize="int8",
                                           cache_implementation="static", compile="always"),
                               model=copy.deepcopy(plain.model), tokenizer=plain.tokenizer)
        t_compile, t_comp, n_comp, texts_comp = ours_rate(compiled, prompts, args.max_new_tokens)
    theirs = llama_cpp_rate(prompts, args.max_new_tokens, args.threads)
    print(f"SmolLM2-135M-Instruct, {args.prompts} prompts one at a time, greedy, <= {args.max_new_tokens} new tokens, "
          f"{args.threads} threads; ours: the HF backend in {args.dtype} (compact loop, one row), with its weights as "
          f"loaded and with model.quantize=int8; baseline: llama.cpp on the Q4_1 GGUF"
          + ("" if theirs else " (llama-cpp-python is not installed: ours against each other only)"))
    same = sum(a == b for a, b in zip(texts_int8, texts_plain))
    print(f"greedy texts int8 gives as {args.dtype} does: {same} of {len(prompts)}")
    if args.compile:
        same = sum(a == b for a, b in zip(texts_comp, texts_int8))
        print(f"int8 with the static cache's step compiled: the first call (compiling, then decoding the longest "
              f"prompt) took {t_compile:.0f} s; greedy texts it gives as int8 in the compact loop does: {same} of "
              f"{len(prompts)}")
    header()
    if theirs is None:
        row(f"1-stream tok/s int8 vs {args.dtype}", n_int8 / t_int8, n_plain / t_plain, "tok/s")
        if args.compile:
            row("1-stream tok/s int8 compiled vs int8", n_comp / t_comp, n_int8 / t_int8, "tok/s")
        return
    t_base, n_base = theirs
    row(f"1-stream tok/s {args.dtype} vs llama.cpp", n_plain / t_plain, n_base / t_base, "tok/s")
    row("1-stream tok/s int8 vs llama.cpp", n_int8 / t_int8, n_base / t_base, "tok/s")
    if args.compile:
        row("1-stream tok/s int8 compiled vs llama.cpp", n_comp / t_comp, n_base / t_base, "tok/s")
    row("tokens int8 vs llama.cpp", n_int8, n_base)
    if args.compile:
        row("tokens int8 compiled vs llama.cpp", n_comp, n_base)


if __name__ == "__main__":
    main()
