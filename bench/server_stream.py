"""Time to the first streamed byte against the whole non-streamed reply: beam search on SmolLM2 (HF, CPU).

    python bench/server_stream.py               # 3 seeded requests, each asked whole and streamed
    python bench/server_stream.py --requests 5 --rounds 6

A streamed search sends its role chunk at once and each round's leading beam as it is
scored, so a chat front-end shows progress after one round instead of after the search.
Spoken to with the official `openai` client over loopback. Prints `name  ours  baseline
ratio` rows (medians over the requests) measured in this one run; nothing is asserted.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

from _common import header, row

from ttscale.server.process import running_server, wait_healthy

QUESTION = "Sam has 12 marbles and gives away 5. Then he finds 7 more. How many marbles does he have now?"


def stream_times(client, args: dict) -> tuple[float, float, float, float, str]:
    """(first byte, first round shown, first answer token, whole stream) in seconds, and the answer text."""
    started = time.perf_counter()
    first = first_round = first_answer = math.inf
    text = ""
    for chunk in client.chat.completions.create(**args, stream=True):
        now = time.perf_counter() - started
        first = min(first, now)
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        if (delta.model_extra or {}).get("reasoning_content"):
            first_round = min(first_round, now)
        if delta.content:
            text += delta.content
            first_answer = min(first_answer, now)
    return first, first_round, first_answer, time.perf_counter() - started, text


def main() -> None:
    import openai

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=4, help="search.max_iterations")
    ap.add_argument("--step-tokens", type=int, default=16, help="sampling.max_step_tokens")
    a = ap.parse_args()
    # The fake PRM scores the steps: generation on SmolLM2 is the cost being timed, as with a real PRM
    # served elsewhere; the search runs every round of beam search on the real model.
    overrides = [
        "model.backend=hf", "model.name_or_path=embedded:smollm2", "verifier.name=fake", "prompt.mode=chat",
        "search.strategy=beam_search", "search.n=4", "search.beam_width=2", f"search.max_iterations={a.rounds}",
        f"sampling.max_step_tokens={a.step_tokens}", f"sampling.max_new_tokens={a.rounds * a.step_tokens}",
    ]
    with running_server("serve_fake", overrides, args=["--served-model-name", "smollm2"]) as srv:
        wait_healthy(srv.root, timeout_s=180)
        with openai.OpenAI(base_url=srv.base_url, api_key="unused", max_retries=0, timeout=600) as client:
            base = {"model": "smollm2", "messages": [{"role": "user", "content": QUESTION}]}
            print(f"serving at {srv.base_url}; warming up", file=sys.stderr, flush=True)
            client.chat.completions.create(**base, seed=0)  # warm-up: the first call pays the model's lazy setup
            whole, first, first_round, first_answer, total = [], [], [], [], []
            for seed in range(1, a.requests + 1):
                args = {**base, "seed": seed}
                t = time.perf_counter()
                reply = client.chat.completions.create(**args)
                whole.append(time.perf_counter() - t)
                f, fr, fa, tot, text = stream_times(client, args)
                assert text == reply.choices[0].message.content, "a streamed pick differs from the whole reply"
                first.append(f)
                first_round.append(fr)
                first_answer.append(fa)
                total.append(tot)
                print(f"request {seed}: whole {whole[-1]:.2f} s, first round {fr:.2f} s", file=sys.stderr, flush=True)
    med = statistics.median
    header()
    row("stream first byte (s) vs whole reply", med(first), med(whole), "s")
    row("stream first round shown (s) vs whole", med(first_round), med(whole), "s")
    row("stream first answer token (s) vs whole", med(first_answer), med(whole), "s")
    row("stream whole (s) vs whole reply", med(total), med(whole), "s")


if __name__ == "__main__":
    main()
