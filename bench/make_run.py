"""`make run`'s command, whole, against the same command from an older checkout, on one machine.

Each side is `python -m ttscale.cli run cpu_arithmetic` in a fresh process with PYTHONPATH set to
its checkout's `src` (each with the recipe that checkout ships), writing into a folder of its own;
the two alternate --repeats times and the fastest run of each is shown. A side's wall time counts
everything a user waits for (imports, model load, search, grading, report); its tok/s is the
tokens its rows record as generated over that wall time. Machines of one class differ by up to 2x
(bench/results/main_job_avx512.txt), which is why an old figure is rerun here and not quoted.

    git worktree add /tmp/then <commit>
    python bench/make_run.py --baseline /tmp/then [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import header, row

from ttscale.data.results import read_results

HERE = Path(__file__).resolve().parents[1]


def main_job(checkout: Path, out: Path) -> tuple[float, int, int]:
    """(wall seconds, generated tokens, problems) of one `ttscale run cpu_arithmetic` from `checkout`."""
    env = {**os.environ, "PYTHONPATH": str(checkout / "src")}
    command = [sys.executable, "-m", "ttscale.cli", "run", "cpu_arithmetic", "--set", f"output.dir={out}"]
    start = time.perf_counter()
    subprocess.run(command, env=env, cwd=checkout, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    results = read_results(next(p.parent for p in out.rglob("config.yaml")))
    return wall, sum(c.n_tokens for r in results for c in r.completions), len(results)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", type=Path, required=True, help="an older checkout (git worktree add DIR COMMIT)")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    best: dict[str, tuple[float, int, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.repeats):
            for side, checkout in (("ours", HERE), ("baseline", args.baseline.resolve())):
                got = main_job(checkout, Path(tmp) / f"{side}{k}")
                print(f"# {side} run {k + 1}: {got[0]:.1f} s, {got[1]} tokens, {got[2]} problems", flush=True)
                if side not in best or got[0] < best[side][0]:
                    best[side] = got
    then = subprocess.run(["git", "-C", str(args.baseline), "log", "-1", "--format=%h %ad", "--date=short"],
                          capture_output=True, text=True).stdout.strip()
    print(f"make run's command (ttscale run cpu_arithmetic, each checkout's own recipe): ours = this checkout; "
          f"baseline = the checkout at {then or args.baseline}; fastest of {args.repeats} alternating runs each")
    header()
    (t_ours, n_ours, _), (t_base, n_base, _) = best["ours"], best["baseline"]
    row("make run wall time (s)", t_ours, t_base, "s")
    row("generated tokens", n_ours, n_base)
    row("generated tok/s over the run", n_ours / t_ours, n_base / t_base, "tok/s")


if __name__ == "__main__":
    main()
