"""How many samples move with `search.problems_per_batch` in bfloat16, with `model.batch_invariant` off and on.

The main job's recipe (cpu_arithmetic: best-of-N on SmolLM2-135M-Instruct, the Q4_1 GGUF
dequantized, here cast to bfloat16) runs four times: problems_per_batch 1 and 4, each with the
setting off and on. A sample is "moved" when its text at (problem, index) differs between the two
batchings; the time ratio is the setting's cost at problems_per_batch 4.

    python bench/batch_invariance.py [--problems 20] [--n 16] [--max-new-tokens 96] [--out DIR] [--set KEY=VALUE]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from _common import header, row

from ttscale.data.results import read_results
from ttscale.recipe import load_config
from ttscale.runner import run

RECIPE = Path(__file__).resolve().parents[1] / "src" / "ttscale" / "recipes" / "cpu_arithmetic.yaml"


def _texts(out: Path, args: argparse.Namespace, invariant: bool, per_batch: int) -> tuple[float, dict]:
    cfg = load_config(RECIPE, [
        f"dataset.limit={args.problems}", f"search.n={args.n}", "model.dtype=bfloat16",
        f"model.batch_invariant={str(invariant).lower()}", f"search.problems_per_batch={per_batch}",
        f"sampling.max_new_tokens={args.max_new_tokens}", f"output.dir={out / f'inv{int(invariant)}-ppb{per_batch}'}",
        *args.set])
    start = time.perf_counter()
    outcome = run(cfg, overwrite=True, progress=True)
    seconds = time.perf_counter() - start
    return seconds, {(r.id, i): c.text for r in read_results(outcome.run_dir) for i, c in enumerate(r.completions)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--problems", type=int, default=20)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=96, help="the recipe's 96; less for a quicker look")
    ap.add_argument("--out", default=None)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a recipe override, e.g. model.device=cuda or model.name_or_path=DIR (repeatable)")
    args = ap.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="batch-invariance-"))
    runs = {(inv, ppb): _texts(out, args, inv, ppb) for inv in (True, False) for ppb in (1, 4)}
    total = args.problems * args.n
    where = torch.cuda.get_device_name() if any(s.startswith("model.device=cuda") for s in args.set) else "CPU"
    print(f"SmolLM2-135M-Instruct (Q4_1 GGUF dequantized, cast to bfloat16) on {where}, best-of-N N={args.n}, "
          f"{args.problems} problems: samples whose text differs between problems_per_batch 1 and 4")
    header()
    moved = {}
    for inv in (True, False):
        (_, a), (_, b) = runs[(inv, 1)], runs[(inv, 4)]
        moved[inv] = sum(a.get(k) != b.get(k) for k in set(a) | set(b))
    row(f"samples moved of {total} (on vs off)", moved[True], moved[False])
    row("time at problems_per_batch=4 (s, on vs off)", runs[(True, 4)][0], runs[(False, 4)][0])
    row("time at problems_per_batch=1 (s, on vs off)", runs[(True, 1)][0], runs[(False, 1)][0])


if __name__ == "__main__":
    main()
