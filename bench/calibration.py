"""A calibration fitted on some runs, picking for others: weighted voting over calibrated scores against
weighted over raw scores, the naive pick and majority, on the same candidates.

`ttscale calibrate`'s fit (eval/calibration.py) over the --fit runs, then for each --on run (other
problems: another wording or seed) every pick over its kept candidates, as `reselect` makes it, with
the candidates' step scores passed through the fitted map for the calibrated row. For best-of-N this
is exactly the run `verifier.calibration` would have made (its samples do not read scores). For a tree
search it is the pick over the candidates the raw-scored search found: the map keeps the order of
scores, so the search is the same one unless the fit pooled two levels into one chance (then beams
those levels separated tie; the bench says whether it did). Accuracy with a 95% bootstrap interval
over problems; the calibrated vote minus each other pick paired over the same problems.

    python bench/calibration.py --fit RUN_DIR [RUN_DIR ...] --on RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from _common import header, row
from pick_analysis import hits, paired

from ttscale.eval.calibration import fit_runs, format_fit
from ttscale.eval.evaluate import load_run
from ttscale.eval.metrics import bootstrap_interval
from ttscale.grading.select import reselect
from ttscale.types import ProblemResult
from ttscale.verifiers.calibration import calibrated


def mapped(result: ProblemResult, knots: list[list[float]]) -> ProblemResult:
    return replace(result, completions=tuple(
        replace(c, step_scores=tuple(calibrated(s, knots) for s in c.step_scores)) if c.step_scores else c
        for c in result.completions))


def interval(values: list[float]) -> str:
    lo, hi = bootstrap_interval(values)
    return f"{100 * sum(values) / len(values):6.1f}% [{100 * lo:5.1f}, {100 * hi:5.1f}]"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fit", nargs="+", required=True, help="run folders the map is fitted on")
    ap.add_argument("--on", nargs="+", required=True, help="run folders of other problems it picks for")
    args = ap.parse_args()
    fit = fit_runs(args.fit)
    print(f"fit on {', '.join(args.fit)}")
    print(format_fit(fit))
    pooled = [b for b in fit.blocks if b.high > b.low]
    print("pooled levels (the search would tie beams these separate): "
          + (", ".join(f"{b.low:.2f}-{b.high:.2f}" for b in pooled) if pooled else "none"))
    summary = []
    for path in args.on:
        run = load_run(path)
        results = sorted((r for r in run.results if r.error is None), key=lambda r: r.id)
        rows = {
            "majority": hits(results, run.correct, lambda r: reselect(r, "majority", "last")),
            "naive": hits(results, run.correct, lambda r: reselect(r, "naive", "last")),
            "weighted (raw scores)": hits(results, run.correct, lambda r: reselect(r, "weighted", "last")),
            "weighted (calibrated)": hits(results, run.correct,
                                          lambda r: reselect(mapped(r, fit.knots), "weighted", "last")),
        }
        print(f"\n{path}: {run.strategy}, {len(results)} problems; accuracy [95% bootstrap CI over problems]")
        for name, values in rows.items():
            print(f"  {name:<40} {interval(values)}")
        print("  paired over the same problems:")
        for base in ("weighted (raw scores)", "naive", "majority"):
            paired(f"  calibrated - {base}", rows["weighted (calibrated)"], rows[base])
        summary.append((f"{run.strategy} {path.rstrip('/').split('/')[-1]}"[:36], rows))
    print()
    header()
    for label, rows in summary:
        n = len(rows["majority"])
        row(label, 100 * sum(rows["weighted (calibrated)"]) / n, 100 * sum(rows["weighted (raw scores)"]) / n,
            "% right: calibrated weighted (baseline: raw weighted)")


if __name__ == "__main__":
    main()
