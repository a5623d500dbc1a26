"""Beam search at N=64 on a GPU: the HF backend's static-cache path against plain batched generation.

Two Llama-shaped models are built from their configs with random weights (nothing is
downloaded): SmolLM2-135M-Instruct's shape and Llama-3.2-1B's. Both use SmolLM2's tokenizer,
so the 1B model's vocabulary is 49,152 rather than 128,256. Random weights seldom write the
step delimiter or EOS, so every step runs to its token cap: these rows are decode throughput,
not accuracy.

For each model, beam search (the cpu_arithmetic_beam recipe at N=64, beam width 4, bf16)
runs with `model.cache_implementation` static and dynamic. Each is run twice and the second
run is timed, so the first run's compilation is reported on its own row. The baseline is plain
`model.generate` (dynamic cache, sampling) of the same number of new tokens in rows of the
width that beam search sends, `search.n x search.problems_per_batch`. With `--gguf`, the
SmolLM2 rows use its real weights (the Q4_1 GGUF, dequantized to bf16) instead of random ones.

    python bench/gpu_search.py --tokenizer DIR [--gguf FILE] [--models smollm2,llama1b] [--problems 8]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import torch
from _common import header, row

from ttscale.backends.hf import HFGenerator
from ttscale.data.results import read_results
from ttscale.recipe import load_config
from ttscale.runner import run

RECIPES = Path(__file__).resolve().parents[1] / "src" / "ttscale" / "recipes"

# Shapes from the models' published config.json files (HuggingFaceTB/SmolLM2-135M-Instruct,
# meta-llama/Llama-3.2-1B-Instruct); the vocabulary is the tokenizer's, set at build time.
SHAPES = {
    "smollm2": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                    num_key_value_heads=3, rope_theta=100000.0, max_position_embeddings=8192,
                    tie_word_embeddings=True, rms_norm_eps=1e-5),
    "llama1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                    num_key_value_heads=8, head_dim=64, rope_theta=500000.0, max_position_embeddings=131072,
                    tie_word_embeddings=True, rms_norm_eps=1e-5,
                    rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                  "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}),
}


def build(name: str, tokenizer_dir: str, device: str, dtype: torch.dtype, gguf: str | None = None):
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    if gguf is not None:
        from ttscale.models.loading import load_pretrained

        return load_pretrained(AutoModelForCausalLM, str(Path(gguf).parent), Path(gguf).name, device, "bfloat16")

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    cfg = LlamaConfig(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, **SHAPES[name])
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(device=device, dtype=dtype).eval()
    model.generation_config.eos_token_id = tok.eos_token_id
    return model, tok


def beam_run(model, tok, args, cache: str, out: Path) -> tuple[float, int, int]:
    """(seconds, generated tokens, widest generate call in rows) of one beam-search run."""
    cfg = load_config(RECIPES / "cpu_arithmetic_beam.yaml", [
        f"dataset.limit={args.problems}", f"search.n={args.n}", "search.beam_width=4",
        f"search.problems_per_batch={args.per_batch}", "model.dtype=bfloat16", f"model.device={args.device}",
        f"model.cache_implementation={cache}", f"model.max_batch_size={args.n * args.per_batch}",
        f"sampling.max_new_tokens={args.max_new_tokens}", f"output.dir={out}"])
    gen = HFGenerator(cfg.model, model=model, tokenizer=tok)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    run(cfg, overwrite=True, generator=gen, progress=False)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    tokens = sum(r.budget.generated_tokens for r in read_results(out))
    return seconds, tokens, args.n * args.per_batch


def plain_run(model, tok, rows: int, tokens: int, step_tokens: int, device: str) -> tuple[float, int]:
    """Plain sampled `generate` in batches of `rows` x `step_tokens` until `tokens` are made."""
    prompt = tok(["Question: What is 12 + 30?\nSolution:\n"] * rows, return_tensors="pt", padding=True).to(device)
    calls = max(1, math.ceil(tokens / (rows * step_tokens)))
    with torch.inference_mode():
        model.generate(**prompt, max_new_tokens=4, min_new_tokens=4, do_sample=True, pad_token_id=tok.pad_token_id)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(calls):
            model.generate(**prompt, max_new_tokens=step_tokens, min_new_tokens=step_tokens, do_sample=True,
                           top_k=None, pad_token_id=tok.pad_token_id)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    return time.perf_counter() - start, calls * rows * step_tokens


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", required=True, help="a saved tokenizer directory (SmolLM2's)")
    ap.add_argument("--models", default="smollm2,llama1b")
    ap.add_argument("--problems", type=int, default=8)
    ap.add_argument("--per-batch", type=int, default=4, help="search.problems_per_batch")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--gguf", default=None, help="SmolLM2's GGUF file: its real weights instead of random ones")
    ap.add_argument("--max-new-tokens", type=int, default=96, help="the recipe's 96; less for a quick look")
    ap.add_argument("--deadline-s", type=float, default=420.0, help="skip what would start after this")
    args = ap.parse_args()
    began = time.perf_counter()
    out = Path(tempfile.mkdtemp(prefix="gpu-search-"))
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    weights = "SmolLM2 from its GGUF, the 1B random" if args.gguf else "random weights"
    print(f"device {device_name}; torch {torch.__version__}; {weights}, bf16; beam search N={args.n}, "
          f"beam width 4, {args.problems} problems, {args.per_batch} per batch")
    header()
    for name in args.models.split(","):
        if time.perf_counter() - began > args.deadline_s:
            print(f"{name}: skipped, past the deadline")
            continue
        model, tok = build(name, args.tokenizer, args.device, torch.bfloat16, args.gguf if name == "smollm2" else None)
        params = sum(p.numel() for p in model.parameters())
        print(f"{name}: {params / 1e6:.0f}M parameters", flush=True)
        timings = {}
        for cache in ("static", "dynamic"):
            try:
                first = beam_run(model, tok, args, cache, out / f"{name}-{cache}-1")
                timings[cache] = (first, beam_run(model, tok, args, cache, out / f"{name}-{cache}-2"))
            except Exception as e:  # a compile failure on one path should not lose the other's rows
                print(f"{name} {cache}: failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}", flush=True)
        if not timings:
            continue
        (_, tokens, rows) = next(iter(timings.values()))[1]
        t_plain, plain_tokens = plain_run(model, tok, rows, tokens, 40, args.device)
        plain_rate = plain_tokens / t_plain
        for cache, (first, (t, n_tok, _)) in timings.items():
            row(f"{name} tok/s beam {cache} vs plain", n_tok / t, plain_rate, "tok/s")
            row(f"{name} {cache} first run vs second (s)", first[0], t, "s")
        del model
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    print(f"total {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
