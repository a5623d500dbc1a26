"""PRM scoring throughput: ttscale's length-bucketed batches against one-by-one scoring.

Scores N solutions of ~256 tokens (lengths spread 0.5x-1.5x, as sampled solutions are)
in the RLHFlow format on a randomly initialised Llama with the SmolLM2 tokenizer plus
Llama 3 chat tokens. Prints `name  ours  baseline  ratio` (seconds; ratio = baseline / ours):

  one_by_one      the same verifier with a token budget of 1: one sequence per forward
  fixed_batches   arrival-order batches of 16, full-vocabulary logits (search-and-learn's
                  `_score_batched`)
  per_prefix      with --per-prefix (slow: ~50x on CPU): one forward per step prefix, full
                  logits, read at -3 (the model card and search-and-learn's `_score_single`)

    python bench/prm_scoring.py                       # CPU, small random Llama
    python bench/prm_scoring.py --device cuda --dtype bfloat16 --size 1b
"""

from __future__ import annotations

import argparse
import random
import time

import torch

SIZES = {
    # hidden, layers, heads, kv heads, intermediate
    "small": (256, 4, 4, 2, 688),
    "1b": (2048, 16, 32, 8, 8192),  # Llama-3.2-1B's shape (vocabulary: SmolLM2's 49k, not 128k)
}
LLAMA3_TEMPLATE = (
    "{{- '<|begin_of_text|>' }}{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
)


def build(size: str, device: str, dtype: torch.dtype):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from ttscale.models.loading import resolve_source

    tok = AutoTokenizer.from_pretrained(resolve_source("embedded:smollm2", None)[0])
    tok.add_special_tokens(
        {"additional_special_tokens": ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]}
    )
    tok.chat_template = LLAMA3_TEMPLATE
    hidden, layers, heads, kv, inter = SIZES[size]
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        intermediate_size=inter,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config).to(device=device, dtype=dtype).eval()
    return model, tok


def solutions(n: int, tokens: int, seed: int = 0):
    from ttscale.data.synthetic import arithmetic_problem

    rng = random.Random(seed)
    problems, steps = [], []
    for i in range(n):
        problem, solution = arithmetic_problem(rng, 5, i)
        lines = solution.split("\n")
        target_words = int(tokens * rng.uniform(0.5, 1.5) * 0.27)  # ~2 tokens per word, plus chat tokens
        body = []
        while sum(len(s.split()) for s in body) < target_words:
            body.append(rng.choice(lines[:-1]) + " Let me double-check this computation carefully.")
        problems.append(problem)
        steps.append(body + lines[-1:])
    return problems, steps


def timed(fn, device: str):
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def fixed_batches(model, tok, prm, problems, steps, batch_size=16):
    """Arrival-order batches, full logits, scores at the positions before each "+"."""
    scores = []
    for start in range(0, len(problems), batch_size):
        enc = [
            prm.encode(p, s) for p, s in zip(problems[start : start + batch_size], steps[start : start + batch_size])
        ]
        width = max(len(e.input_ids) for e in enc)
        ids = torch.full((len(enc), width), prm.pad_id)
        mask = torch.zeros((len(enc), width), dtype=torch.long)
        for r, e in enumerate(enc):
            ids[r, : len(e.input_ids)] = torch.tensor(e.input_ids)
            mask[r, : len(e.input_ids)] = 1
        device = prm.device
        with torch.inference_mode():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        for r, e in enumerate(enc):
            pair = logits[r, e.positions][:, prm.good_ids + prm.bad_ids].float()
            scores.append(pair.softmax(-1)[:, 0].tolist())
    return scores


def per_prefix(model, tok, prm, problems, steps):
    plus, minus = prm.good_ids[0], prm.bad_ids[0]
    out = []
    for problem, item in zip(problems, steps):
        conversation, row = [], []
        for k, step in enumerate(item):
            text = f"{problem.question} {step}" if k == 0 else step
            conversation += [{"role": "user", "content": text}, {"role": "assistant", "content": "+"}]
            ids = tok.apply_chat_template(conversation, return_tensors="pt")["input_ids"].to(prm.device)
            with torch.inference_mode():
                logits = model(ids).logits[0, -3, [plus, minus]].float()
            row.append(logits.softmax(-1)[0].item())
        out.append(row)
    return out


def max_diff(a, b) -> float:
    return max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--size", default="small", choices=sorted(SIZES))
    parser.add_argument("--n", type=int, default=64, help="solutions scored")
    parser.add_argument("--tokens", type=int, default=256, help="mean solution length in tokens")
    parser.add_argument("--max-tokens-per-batch", type=int, default=8192)
    parser.add_argument("--per-prefix", action="store_true", help="add the slow per-prefix baseline")
    args = parser.parse_args()

    from ttscale.config import VerifierConfig
    from ttscale.verifiers.rlhflow import RLHFlowPRM

    dtype = getattr(torch, args.dtype)
    model, tok = build(args.size, args.device, dtype)
    problems, steps = solutions(args.n, args.tokens)

    def prm(budget: int) -> RLHFlowPRM:
        return RLHFlowPRM(VerifierConfig(name="rlhflow", max_tokens_per_batch=budget), model=model, tokenizer=tok)

    ours_prm = prm(args.max_tokens_per_batch)
    lengths = [ours_prm.count_tokens(p, s) for p, s in zip(problems, steps)]
    n_steps = sum(len(s) for s in steps)
    print(
        f"# {args.size} Llama ({ours_prm.n_params / 1e6:.0f}M params), {args.device}, {args.dtype}; "
        f"{args.n} solutions, {n_steps} steps, tokens/solution mean {sum(lengths) / len(lengths):.0f} "
        f"min {min(lengths)} max {max(lengths)}; budget {args.max_tokens_per_batch} tokens/batch"
    )
    ours_prm.score(problems[:4], steps[:4])  # warm-up
    ours_s, ours = timed(lambda: ours_prm.score(problems, steps), args.device)
    rows = [("one_by_one", lambda: prm(1).score(problems, steps))]
    rows.append(("fixed_batches", lambda: fixed_batches(model, tok, ours_prm, problems, steps)))
    if args.per_prefix:
        rows.append(("per_prefix", lambda: per_prefix(model, tok, ours_prm, problems, steps)))
    print(f"{'name':<16}{'ours':>10}{'baseline':>10}{'ratio':>8}   max|score diff|")
    for name, fn in rows:
        base_s, base = timed(fn, args.device)
        print(f"{name:<16}{ours_s:>10.3f}{base_s:>10.3f}{base_s / ours_s:>8.2f}   {max_diff(ours, base):.2e}")


if __name__ == "__main__":
    main()
