"""The main job (`ttscale run cpu_arithmetic`, what `make run` does) against the way it ran before
the compact decode loop: where the time goes, and how long the search takes.

ours: the recipe as shipped (the compact decode loop: a row leaves the batch the step it ends
and the next problem's rows join; 8 problems per batch, up to 48 rows a step). baseline: the
same recipe with `model.decode_loop=generate` (transformers' `generate`, every row computed
until the longest ends) and the batching it had then (2 problems per batch, 32 rows). The two
runs alternate `--repeats` times, each loading the model once before its timer starts. The
samples are compared one by one: they are the same unless a GEMM's low bits moved one
(bench/batch_invariance.py), and the accuracy row is paired over the same problems.

The breakdown times, per run, the model's forward in decode steps and in prefills, the sampler,
stop-string checks, the search outside generation (verifier, step handling, writing rows) and
grading, as a share of the run's wall time.

    python bench/main_job.py [--recipe cpu_arithmetic] [--problems 30] [--repeats 1] [--dtype auto]

--set KEY=VALUE overrides the recipe on our side, --baseline-set KEY=VALUE replaces the baseline's
overrides: `--set model.max_batch_size=96 --baseline-set model.max_batch_size=48` sizes the
decode batch, with the rest of the recipe as shipped on both sides.
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import header, paired_difference, pick_right, row, sample_right

from ttscale import runner
from ttscale.backends.hf import HFGenerator
from ttscale.backends.sampling import RowSampler
from ttscale.cli import resolve_recipe
from ttscale.data.results import read_results
from ttscale.recipe import load_config

BASELINE = ["model.decode_loop=generate", "search.problems_per_batch=2", "model.max_batch_size=32"]


class Timers:
    """Seconds spent inside wrapped callables, by label; time inside a nested wrapped call counts
    for the inner label only."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.stack: list[str] = []
        self.undo: list[tuple[Any, str, Any]] = []

    def wrap(self, owner: Any, attr: str, label: str | Callable[..., str]) -> None:
        inner = getattr(owner, attr)
        self.undo.append((owner, attr, owner.__dict__.get(attr)))

        # wraps: transformers' generate reads model.forward's signature to decide what to pass (position ids
        # from the attention mask among them); a bare (*args, **kwargs) wrapper would make it pass none, so
        # left-padded rows would decode at the wrong positions
        @functools.wraps(inner)
        def timed(*args: Any, **kwargs: Any) -> Any:
            name = label(*args, **kwargs) if callable(label) else label
            self.stack.append(name)
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                spent = time.perf_counter() - start
                self.stack.pop()
                self.seconds[name] += spent
                if self.stack:
                    self.seconds[self.stack[-1]] -= spent

        setattr(owner, attr, timed)

    def restore(self) -> None:
        for owner, attr, original in reversed(self.undo):
            if original is None:
                delattr(owner, attr)
            else:
                setattr(owner, attr, original)


def forward_kind(*args: Any, **kwargs: Any) -> str:
    ids = kwargs.get("input_ids")
    return "model forward: decode steps" if ids is not None and ids.shape[1] == 1 else "model forward: prefills"


def one_run(args: argparse.Namespace, overrides: list[str], out: Path) -> tuple[float, dict[str, float]]:
    """(wall seconds with the model loaded, seconds by part) of one run of the main job."""
    cfg = load_config(resolve_recipe(args.recipe), [f"dataset.limit={args.problems}", f"model.dtype={args.dtype}",
                               f"output.dir={out}", *overrides])
    gen = HFGenerator(cfg.model)
    timers = Timers()
    timers.wrap(gen.model, "forward", forward_kind)
    timers.wrap(RowSampler, "choose", "sampler (compact loop)")
    timers.wrap(HFGenerator, "_stopped", "stop strings (compact loop)")
    timers.wrap(gen, "generate", "generation outside the model (layout, sampling in generate, text)")
    timers.wrap(runner, "_search_all", "search outside generation (verifier, steps, rows)")
    start = time.perf_counter()
    try:
        runner.run(cfg, overwrite=True, generator=gen, progress=False)
    finally:
        timers.restore()
    wall = time.perf_counter() - start
    spent = dict(timers.seconds)
    spent["grading, metrics and the rest"] = wall - sum(spent.values())
    return wall, spent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipe", default="cpu_arithmetic", help="a bundled recipe name or a YAML path")
    ap.add_argument("--problems", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--set", action="append", default=[], help="a recipe override for ours (repeatable)")
    ap.add_argument("--baseline-set", action="append", default=None,
                    help="the baseline's recipe overrides instead of the pre-compact-loop batching (repeatable)")
    args = ap.parse_args()
    baseline = BASELINE if args.baseline_set is None else args.baseline_set
    root = Path(tempfile.mkdtemp(prefix="main-job-"))
    walls: dict[str, list[float]] = {"ours": [], "baseline": []}
    parts: dict[str, dict[str, float]] = {}
    for k in range(args.repeats):
        for name, overrides in (("ours", args.set), ("baseline", baseline)):
            wall, spent = one_run(args, overrides, root / name)
            walls[name].append(wall)
            if wall <= min(walls[name]):
                parts[name] = spent
    results = {n: {r.id: r for r in read_results(root / n)} for n in walls}
    ours, base = results["ours"], results["baseline"]
    moved = sum(a.text != b.text for i in ours for a, b in zip(ours[i].completions, base[i].completions))
    samples = sum(len(r.completions) for r in ours.values())
    width = max(len(r.completions) for r in ours.values())
    print(f"main job: {args.recipe}, {args.problems} problems x {width} samples, SmolLM2-135M-Instruct (Q4_1 GGUF "
          f"dequantized), dtype {args.dtype}; ours: the recipe {' '.join(args.set) or '(compact loop)'}; "
          f"baseline: {' '.join(baseline) or 'the recipe'}; "
          f"{args.repeats} alternating run(s) each, the fastest shown")
    header()
    best = {n: min(w) for n, w in walls.items()}
    search = {n: best[n] - parts[n]["grading, metrics and the rest"] for n in walls}
    tokens = {n: sum(r.budget.generated_tokens for r in results[n].values()) for n in walls}
    row("run wall time, model loaded (s)", best["ours"], best["baseline"], "s")
    row("search time (s)", search["ours"], search["baseline"], "s")
    row("generated tokens", tokens["ours"], tokens["baseline"])
    row("generated tok/s over the search", tokens["ours"] / search["ours"], tokens["baseline"] / search["baseline"],
        "tok/s")
    ordered = {n: [r for _, r in sorted(results[n].items())] for n in walls}
    per_sample = {n: sample_right(ordered[n]) for n in walls}
    right = {n: [float(x) for x in pick_right(ordered[n], "majority")] for n in walls}
    for name, scores in (("accuracy per sample", per_sample), (f"accuracy majority@{width}", right)):
        row(f"{name} (%)", 100 * sum(scores["ours"]) / len(scores["ours"]),
            100 * sum(scores["baseline"]) / len(scores["baseline"]), "%")
    print(f"paired per-sample difference {paired_difference(per_sample['ours'], per_sample['baseline'])}")
    print(f"paired majority@{width} difference {paired_difference(right['ours'], right['baseline'])}; "
          f"samples whose text differs: {moved} of {samples}")
    print(f"\n{'where the time goes (share of the run)':<66} {'ours':>8} {'baseline':>9}")
    for key in sorted(set(parts["ours"]) | set(parts["baseline"])):
        cells = [f"{100 * parts[n].get(key, 0.0) / best[n]:7.1f}%" for n in ("ours", "baseline")]
        print(f"{key:<66} {cells[0]:>8} {cells[1]:>9}")


if __name__ == "__main__":
    main()
