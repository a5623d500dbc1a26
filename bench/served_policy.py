"""The same weights in-process (HF backend) and behind `transformers serve` (OpenAI backend).

Both sides run the same recipe (cpu_arithmetic: best-of-N, or beam search with the rule
verifier), the same problems and seeds, float32 pinned on both. The two do not draw the same
samples (the HF backend seeds one stream per row; transformers serve seeds torch's global RNG per
request), so accuracy is compared paired per problem with a 95% bootstrap interval of the
difference, not sample by sample. The served side's cost is the server's: it ignores `n`, so
every sample is its own request, one at a time (its seeds do not survive concurrent requests).

    python bench/served_policy.py [--problems 20] [--n 4] [--strategy best_of_n|beam_search] [--out DIR]
        [--reuse-served]

--reuse-served reads a finished served run from OUT/served instead of serving again (the served half
is the slow one); its wall time is then the run folder's, from config.yaml written to the last row.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import header, row

from ttscale.eval.metrics import bootstrap_interval
from ttscale.grading import correct_flags
from ttscale.models.loading import resolve_source
from ttscale.recipe import load_config
from ttscale.runner import run


def _serve(model_dir: str, log: Path) -> tuple[subprocess.Popen, str]:
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from transformers.cli.transformers import main; main()", "serve", model_dir,
         "--port", str(port), "--host", "127.0.0.1", "--device", "cpu", "--dtype", "float32"],
        stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc, f"http://127.0.0.1:{port}/v1"
        except httpx.HTTPError:
            time.sleep(1)
    proc.kill()
    raise SystemExit(f"transformers serve did not come up; see {log}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--problems", type=int, default=20)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--strategy", default="best_of_n", choices=["best_of_n", "beam_search"])
    ap.add_argument("--out", default=None, help="folder for the two runs (default: a temporary one)")
    ap.add_argument("--reuse-served", action="store_true", help="take the served half from a finished OUT/served")
    args = ap.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="served-policy-"))
    out.mkdir(parents=True, exist_ok=True)
    model_dir = resolve_source("embedded:smollm2", None)[0]
    common = [f"dataset.limit={args.problems}", f"search.n={args.n}", f"search.strategy={args.strategy}",
              "model.dtype=float32", "search.beam_width=2"]
    if args.strategy == "beam_search":
        common += ["verifier.name=arithmetic_rules"]
    if args.reuse_served:
        t_served, served = _finished_run(out / "served", args.problems)
    else:
        proc, url = _serve(model_dir, out / "serve.log")
        try:
            t_served, served = _timed_run(common + ["model.backend=openai", f"model.base_url={url}",
                                                    f"model.name_or_path={model_dir}", f"output.dir={out / 'served'}"])
        finally:
            proc.terminate()
            proc.wait(30)
    stalls = _timeouts(out / "served" / "run.log")
    t_hf, hf = _timed_run(common + ["model.backend=hf", f"output.dir={out / 'hf'}"])
    print(f"SmolLM2-135M-Instruct (the Q4_1 GGUF, dequantized to float32), {args.strategy} N={args.n}, "
          f"{args.problems} synthetic arithmetic problems; ours = transformers serve, baseline = in-process HF")
    print("server honoured: " + ", ".join(f"{k}={v}" for k, v in served[0].items() if k != "extra_body"))
    header()
    right = {name: _correct(run_dir) for name, (_, run_dir) in (("served", served), ("hf", hf))}
    for pick in ("majority", "weighted"):
        a, b = (100 * sum(v[pick] for v in right[s].values()) / len(right[s]) for s in ("served", "hf"))
        row(f"accuracy {pick}@{args.n} (%)", a, b)
    row("wall time (s)", t_served, t_hf)
    if stalls:
        print(f"  (the served time includes {stalls} request(s) the server stalled on, each retried after the "
              "client's 600 s read timeout)")
    tokens = {s: sum(r["tokens"] for r in right[s].values()) for s in right}
    row("generated tokens", tokens["served"], tokens["hf"])
    diff = [right["served"][k]["majority"] - right["hf"][k]["majority"] for k in right["hf"]]
    low, high = bootstrap_interval(diff)
    print(f"paired majority@{args.n} difference (served - hf): {100 * sum(diff) / len(diff):+.1f} points, "
          f"95% CI [{100 * low:+.1f}, {100 * high:+.1f}] over {len(diff)} problems")


def _timed_run(overrides: list[str]):
    cfg = _recipe(overrides)
    start = time.perf_counter()
    outcome = run(cfg, overwrite=True, progress=True)
    return time.perf_counter() - start, (outcome.metrics.get("server", {}), outcome.run_dir)


def _finished_run(run_dir: Path, problems: int):
    import json

    from ttscale.data.results import read_results

    rows = read_results(run_dir, quiet=True)
    if len(rows) < problems:
        raise SystemExit(f"{run_dir} holds {len(rows)} finished problems, not {problems}: run without --reuse-served")
    seconds = (run_dir / "completions.jsonl").stat().st_mtime - (run_dir / "config.yaml").stat().st_mtime
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    return seconds, (metrics.get("server", {}), run_dir)


def _timeouts(log: Path) -> int:
    """Requests the client gave up waiting on and sent again (httpx's ReadTimeout in run.log)."""
    return log.read_text(encoding="utf-8").count("ReadTimeout") if log.is_file() else 0


def _recipe(overrides: list[str]):
    recipe = Path(__file__).resolve().parents[1] / "src" / "ttscale" / "recipes" / "cpu_arithmetic.yaml"
    return load_config(recipe, overrides)


def _correct(run_dir: Path) -> dict[str, dict[str, float]]:
    from ttscale.data.results import read_results
    from ttscale.grading.select import select

    out = {}
    for r in read_results(run_dir):
        flags = correct_flags(r) if r.completions else []
        picks = {s: select(r.completions, s, "last") for s in ("majority", "weighted")}
        out[r.id] = {s: float(p is not None and flags[p]) for s, p in picks.items()}
        out[r.id]["tokens"] = r.budget.generated_tokens
    return out


if __name__ == "__main__":
    main()
