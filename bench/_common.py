"""Shared bits of the benchmarks: the embedded model, synthetic prompts, a timer, bootstrap intervals."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ttscale.config import PromptConfig
from ttscale.data.prompts import build_prompt_format
from ttscale.data.synthetic import arithmetic_problem, arithmetic_problems
from ttscale.grading import correct_flags
from ttscale.grading.select import select
from ttscale.search.steps import clean_step
from ttscale.types import Problem, ProblemResult
from ttscale.verifiers.base import Verifier


def problems_and_prompts(n: int, n_shot: int = 2, levels: list[int] | None = None, delimiter: str = "\n",
                         extra_shots: int = 0) -> tuple[list[Problem], list[str]]:
    """Synthetic problems with completion prompts; `extra_shots` more exemplars lengthen the prefix."""
    problems = arithmetic_problems(n, seed=11, levels=levels or [1, 2, 3])
    fmt = build_prompt_format(PromptConfig(mode="completion", n_shot=n_shot), delimiter)
    rng = random.Random(5)
    padding = ""
    for i in range(extra_shots):
        p, s = arithmetic_problem(rng, 1 + i % 5, i)
        padding += f"Question: {p.question}\nSolution:\n{s.replace(chr(10), delimiter)}\n\n"
    return problems, [padding + fmt.render(p) for p in problems]


def decode_batch(rows: int, positions: int) -> tuple[Any, Any]:
    """(token ids, attention mask) of a decode batch at a given shape: random ids (seed 0), half the rows
    left-padded by 7 positions, as the compact loop's merged rows are."""
    import torch

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(100, 20000, (rows, positions), generator=g)
    mask = torch.ones(rows, positions, dtype=torch.long)
    mask[: rows // 2, :7] = 0
    return ids, mask


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def row(name: str, ours: float, baseline: float, unit: str = "") -> None:
    ratio = ours / baseline if baseline else float("nan")
    print(f"{name:<36} {ours:>12.2f} {baseline:>12.2f} {ratio:>8.2f}x  {unit}", flush=True)


def pick_right(results: list[ProblemResult], selection: str, reduction: str = "last") -> list[bool]:
    """Per problem (in the order given), whether the `selection` pick over its completions is right."""
    right = []
    for r in results:
        pick = select(r.completions, selection, reduction)
        right.append(pick is not None and bool(correct_flags(r)[pick]))
    return right


def sample_right(results: list[ProblemResult]) -> list[float]:
    """Per problem (in the order given), the share of its samples that are right: pass@1's terms, paired
    over problems with far less noise than a pick's one bit."""
    return [sum(flags) / len(flags) if (flags := correct_flags(r)) else 0.0 for r in results]


def paired_difference(ours: list[float], base: list[float]) -> str:
    """ "+d points, 95% CI [lo, hi] over n problems" for the per-problem differences ours - base."""
    from ttscale.eval.metrics import bootstrap_interval

    diffs = [a - b for a, b in zip(ours, base)]
    lo, hi = bootstrap_interval(diffs)
    return (f"{100 * sum(diffs) / len(diffs):+.1f} points, 95% CI [{100 * lo:+.1f}, {100 * hi:+.1f}] "
            f"over {len(diffs)} problems")


def header() -> None:
    print(provenance(), flush=True)
    print(f"{'name':<36} {'ours':>12} {'baseline':>12} {'ratio':>9}", flush=True)


def rescore(results: list[ProblemResult], verifier: Verifier, delimiter: str) -> list[ProblemResult]:
    """Each candidate with `verifier`'s step scores (best-of-N: no verifier steered the sampling)."""
    from tqdm.auto import tqdm

    scored = []
    for r in tqdm(results, desc=f"rescore with {type(verifier).__name__}", unit="problem", leave=False):
        steps = [[clean_step(s, delimiter) for s in c.steps] for c in r.completions]
        scores = verifier.score([r.problem] * len(steps), steps)
        completions = tuple(replace(c, step_scores=tuple(s) or (0.0,)) for c, s in zip(r.completions, scores))
        scored.append(replace(r, completions=completions))
    return scored


def with_step_scores(results: list[ProblemResult], scores: dict[str, list[list[float]]]) -> list[ProblemResult]:
    """The same candidates with other step scores, `scores[problem id][candidate]`: the layout of the
    trained-PRM score cache paper_effect.py --prm writes and pick_analysis.py --scores reads."""
    return [replace(r, completions=tuple(replace(c, step_scores=tuple(s)) for c, s in zip(r.completions, scores[r.id])))
            for r in results]


def accuracy(results: list[ProblemResult], selection: str, reduction: str = "last") -> float:
    """Percent of problems whose `selection` pick is right by the gold answer."""
    return 100.0 * sum(pick_right(results, selection, reduction)) / max(len(results), 1)


def code_stamp() -> str:
    """What the rows depend on: ttscale's version and a hash of its source and the bench scripts."""
    import hashlib
    from importlib.metadata import PackageNotFoundError, version
    from pathlib import Path

    import ttscale

    digest = hashlib.sha256()
    roots = (Path(ttscale.__file__).resolve().parent, Path(__file__).resolve().parent)
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    try:
        installed = version("ttscale")
    except PackageNotFoundError:  # run from a checkout on PYTHONPATH
        installed = "(not installed)"
    return f"ttscale {installed} source {digest.hexdigest()[:16]}"


def claim_out(out: Any, fresh: bool = False) -> None:
    """Resume from `out` only with the code that wrote it: a run folder keyed to its config alone would
    reprint yesterday's rows after the code changed. `fresh` discards what another version wrote."""
    import shutil
    from pathlib import Path

    out, stamp = Path(out), code_stamp()
    marker = out / "bench-code.txt"
    if marker.is_file() and marker.read_text(encoding="utf-8").strip() != stamp:
        if not fresh:
            raise SystemExit(f"{out} holds rows written by other code ({marker.read_text().strip()}; this is "
                             f"{stamp}): pass --fresh to discard them, or use another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text(stamp + "\n", encoding="utf-8")


def provenance() -> str:
    """Where and when the rows were measured: a figure from an AVX2-only CPU (bf16 emulated) is not one
    from an AVX512-BF16 CPU, and a committed result must say which it is."""
    import os
    import platform
    import sys
    from datetime import datetime, timezone

    import torch

    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    flags = " ".join(x for x in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if x in have)
                    break
    except OSError:
        pass
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    # Timings taken while other work shares the cores are slower by an unknown factor; the load says so.
    load = "load average %.1f %.1f %.1f" % os.getloadavg() if hasattr(os, "getloadavg") else "load unknown"
    return (f"# {when}; {cpu}, {os.cpu_count()} cores ({flags or 'flags unknown'}), {load}; torch {torch.__version__}; "
            f"{LOADED_STAMP}\n# command: python {' '.join(sys.argv)}")


def cpu_world_run(args: Any, wording: str, out: Any, *extra: str) -> list[ProblemResult]:
    """One run of the cpu_arithmetic recipe (SmolLM2 in `args.dtype`) on `wording`'s problems from `args`
    (seed, levels, limit, max_new_tokens, set), with `extra` overrides; resumed from `out` when it holds one."""
    from ttscale.cli import resolve_recipe
    from ttscale.data.results import read_results
    from ttscale.recipe import load_config
    from ttscale.runner import run

    sets = [f"dataset.wording={wording}", f"dataset.seed={args.seed}", f"dataset.levels={args.levels}",
            f"dataset.limit={args.limit}", f"dataset.synthetic_size={max(500, args.limit)}", f"model.dtype={args.dtype}",
            f"sampling.max_new_tokens={args.max_new_tokens}", *extra, f"output.dir={out}", *args.set]
    cfg = load_config(resolve_recipe("cpu_arithmetic"), sets)
    return sorted(read_results(run(cfg, progress=True).run_dir), key=lambda r: r.id)


def cpu_world_parser(out: str) -> Any:
    """The options every CPU-world comparison takes (problems, wordings, levels, seed, tokens, --out, --set);
    a bench adds its own before parsing."""
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=100, help="problems per wording")
    ap.add_argument("--wordings", default="exemplar,alt")
    ap.add_argument("--levels", default="[2,3,4]")
    ap.add_argument("--seed", type=int, default=3000, help="evaluation seed (bench/learned_prm.py trains on 1000)")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    # float32 by default so that a figure does not depend on the CPU class (bf16 is native on AVX512-BF16,
    # emulated on AVX2-only CPUs); bfloat16 samples about twice as fast where it is native.
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"), help="the policy's model.dtype")
    ap.add_argument("--fresh", action="store_true", help="discard rows in --out that other code wrote")
    ap.add_argument("--out", default=out)
    ap.add_argument("--set", action="append", default=[],
                    help="extra config override (model.backend=fake: a smoke test)")
    return ap


def per_wording(args: Any, table: Callable[[Any, str, Any], None]) -> None:
    """`table(args, wording, out)` for each of --wordings, resuming from --out's folder of that wording."""
    from pathlib import Path

    claim_out(Path(args.out), args.fresh)
    for wording in [w for w in args.wordings.split(",") if w]:
        table(args, wording, Path(args.out) / wording)


# The code a bench runs is the code it imported when it started: a file edited while a long bench runs
# must not change the stamp that the bench prints beside its rows at the end.
LOADED_STAMP = code_stamp()
