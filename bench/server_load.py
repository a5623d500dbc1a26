"""Load on `ttscale serve` over loopback: requests/s and p50/p99 latency, batched vs one at a time.

    python bench/server_load.py                 # fake backend + fake PRM, beam search, 64 concurrent
    python bench/server_load.py --real          # also SmolLM2 (HF, CPU): 8 best-of-4 requests together vs in turn

Prints `name  ours  baseline  ratio` rows measured in this one run; nothing is asserted.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from ttscale.server.metrics import parse_metrics
from ttscale.server.process import running_server, wait_healthy


@dataclass
class Load:
    latencies: list[float]
    wall_s: float
    errors: int

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.wall_s

    def pct(self, q: float) -> float:
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def run_load(root: str, bodies: list[dict], concurrency: int, path: str = "/v1/chat/completions",
             timeout_s: float = 600.0) -> Load:
    """Send every body (at most `concurrency` in flight); each latency is one request's round trip."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(base_url=root, timeout=timeout_s, limits=limits) as client:

        def one(body: dict) -> tuple[float, bool]:
            t = time.perf_counter()
            r = client.post(path, json=body)
            ok = r.status_code == 200 and r.json()["choices"][0]["message"]["content"] != ""
            return time.perf_counter() - t, ok

        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(one, bodies))
        wall = time.perf_counter() - started
    return Load([lat for lat, _ in results], wall, sum(not ok for _, ok in results))


def chat_body(i: int, model: str, **ttscale: object) -> dict:
    """A chat request for the served `model` (another name is a 404)."""
    body: dict = {"model": model, "messages": [{"role": "user", "content": f"What is {i % 9} + {i % 7}?"}]}
    if ttscale:
        body["ttscale"] = ttscale
    return body


def row(name: str, ours: float, baseline: float, unit: str) -> None:
    print(f"{name:<44} {ours:>10.2f} {baseline:>10.2f} {ours / baseline if baseline else float('nan'):>8.2f}  ({unit})")


def bench_fake(requests: int, concurrency: int) -> None:
    with running_server("serve_fake") as srv:
        wait_healthy(srv.root)
        bodies = [chat_body(i, "fake") for i in range(requests)]
        run_load(srv.root, bodies[:8], 8)  # warm-up: imports, first calls
        before = parse_metrics(httpx.get(f"{srv.root}/metrics").text)
        together = run_load(srv.root, bodies, concurrency)
        after = parse_metrics(httpx.get(f"{srv.root}/metrics").text)
        alone = run_load(srv.root, bodies[: max(16, requests // 8)], 1)
    calls = after["ttscale_backend_calls_total"] - before["ttscale_backend_calls_total"]
    asked = after["ttscale_backend_requests_total"] - before["ttscale_backend_requests_total"]
    print(f"fake backend + fake PRM, beam_search N=4 M=2: {requests} requests, {concurrency} concurrent "
          f"vs 1 at a time; errors {together.errors} + {alone.errors}")
    print(f"{'name':<44} {'ours':>10} {'baseline':>10} {'ratio':>8}")
    row(f"requests/s ({concurrency} concurrent vs 1)", together.rps, alone.rps, "higher is better")
    row("p50 latency s (concurrent vs alone)", together.pct(0.5), alone.pct(0.5), "")
    row("p99 latency s (concurrent vs alone)", together.pct(0.99), alone.pct(0.99), "")
    row("searches' generate() calls per backend call", asked / max(calls, 1), 1.0, "batching")


def bench_real(n: int, max_tokens: int) -> None:
    overrides = [
        "model.backend=hf", "model.name_or_path=embedded:smollm2", "model.max_batch_size=32", "verifier.name=none",
        "search.strategy=best_of_n", "search.n=4", "search.selection=majority", "prompt.mode=completion",
        "prompt.n_shot=2", "search.step_delimiter=\\n", f"sampling.max_new_tokens={max_tokens}",
    ]
    with running_server("serve_fake", overrides, args=["--served-model-name", "smollm2"]) as srv:
        wait_healthy(srv.root, timeout_s=120)
        bodies = [chat_body(i, "smollm2") for i in range(n)]
        run_load(srv.root, bodies[:1], 1)  # warm-up
        in_turn = run_load(srv.root, bodies, 1)
        together = run_load(srv.root, bodies, n)
    print(f"SmolLM2-135M (HF, CPU), best-of-4, max_tokens={max_tokens}: {n} requests; errors "
          f"{in_turn.errors} + {together.errors}")
    print(f"{'name':<44} {'ours':>10} {'baseline':>10} {'ratio':>8}")
    print(f"{f'wall s: {n} together (ours) vs in turn':<44} {together.wall_s:>10.2f} {in_turn.wall_s:>10.2f} "
          f"{in_turn.wall_s / together.wall_s:>8.2f}  (speed-up: baseline / ours)")
    row("p50 latency s (together vs in turn)", together.pct(0.5), in_turn.pct(0.5), "")
    row("p99 latency s (together vs in turn)", together.pct(0.99), in_turn.pct(0.99), "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=512)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--real", action="store_true", help="also measure SmolLM2: 8 concurrent best-of-4 vs in turn")
    ap.add_argument("--real-requests", type=int, default=8)
    ap.add_argument("--real-max-tokens", type=int, default=48)
    a = ap.parse_args()
    bench_fake(a.requests, a.concurrency)
    if a.real:
        print()
        bench_real(a.real_requests, a.real_max_tokens)



if __name__ == "__main__":
    main()
