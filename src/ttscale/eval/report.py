"""Write an evaluation: metrics.json, policy.json, the PNG figures and report.md that embeds them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ttscale.eval import plots
from ttscale.eval.evaluate import Curve, evaluate_runs

METRICS = "metrics.json"
POLICY = "policy.json"
REPORT = "report.md"


def write_evaluation(
    paths: Sequence[str | Path],
    output: str | Path,
    references: dict[str, float] | None = None,
    reductions: Sequence[str] | None = None,
    seeds: int = 8,
) -> dict[str, Any]:
    """Evaluate run directories into `output`; returns the metrics written to metrics.json."""
    metrics, curves, policy = evaluate_runs(paths, reductions, seeds, references)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    refs = metrics["references"]
    figures = {"accuracy_vs_n.png": "Accuracy vs N"}
    plots.accuracy_vs_n(curves, refs, out / "accuracy_vs_n.png")
    axis = plots.accuracy_vs_compute(curves, refs, out / "accuracy_vs_compute.png")
    figures["accuracy_vs_compute.png"] = f"Accuracy vs {axis}"
    for kind, table in metrics["difficulty"].items():
        plots.difficulty_bars(table, curves, kind, out / f"difficulty_{kind}.png")
    if metrics["compute_optimal"]:
        plots.compute_optimal(metrics["compute_optimal"], curves, refs, out / "compute_optimal.png")
    if policy is not None:
        policy.save(out / POLICY)
    metrics["compute_axis"] = axis
    (out / METRICS).write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    (out / REPORT).write_text(render_report(metrics, curves, policy is not None), encoding="utf-8")
    return metrics


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _runs_section(metrics: dict[str, Any]) -> str:
    rows = [[r["dir"], r["strategy"], str(r["n"]), str(r["n_problems"]), str(r["n_failed"]), _pct(r["accuracy"])]
            for r in metrics["runs"]]
    return _table(["run", "strategy", "N", "problems", "failed", "accuracy (own pick, %)"], rows)


def _curves_section(curves: Sequence[Curve]) -> str:
    ns = sorted({p.n for c in curves for p in c.points})
    rows = []
    for c in curves:
        at = {p.n: p for p in c.points}
        rows.append([c.method] + [
            (_pct(at[n].accuracy()) + (f" ± {_pct(at[n].std)}" if at[n].std else "")) if n in at else "" for n in ns
        ])
    return _table(["method"] + [f"@{n}" for n in ns], rows)


def _compute_section(curves: Sequence[Curve]) -> str:
    rows = [[c.method, str(p.n), _pct(p.accuracy()), f"{p.mean_tokens():.0f}", f"{p.mean_flops():.3g}"]
            for c in curves if c.kind != "pass" for p in c.points]
    return _table(["method", "N", "accuracy (%)", "generated tokens / problem", "FLOPs / problem"], rows)


def _grouped_section(grouped: dict[str, dict[str, dict[str, float]]], what: str) -> str:
    keys = sorted({g for per in grouped.values() for g in per})
    rows = [[m] + [_pct(per[g]["accuracy"]) if g in per else "" for g in keys] for m, per in grouped.items()]
    first = next(iter(grouped.values()), {})
    counts = [f"{what} {g} (n={first[g]['n']})" if g in first else f"{what} {g}" for g in keys]
    return _table(["method@N"] + counts, rows)


def _bins_section(kind: str, table: dict[str, Any], curves: Sequence[Curve]) -> str:
    n_bins = len(table["edges"]) + 1
    edges = ", ".join(f"{e:.3f}" for e in table["edges"])
    counts = ", ".join(f"bin {b}: {n}" for b, n in table["counts"].items())
    rows = []
    for c in curves:
        n = str(c.points[-1].n)
        per_bin = table["accuracy"][c.method][n]
        rows.append([f"{c.method}@{n}"] + [_pct(per_bin[str(b)]) if str(b) in per_bin else "" for b in range(1, n_bins + 1)])
    score = "pass@1 against the gold answer" if kind == "oracle" else "mean verifier score (no gold)"
    return "\n".join([
        f"### {kind} bins", "",
        f"Score: {score}; quantile edges {edges}; problems per bin: {counts}. Bin 1 is the easiest.", "",
        _table(["method@N"] + [f"bin {b}" for b in range(1, n_bins + 1)], rows), "",
        f"![accuracy per {kind} bin](difficulty_{kind}.png)",
    ])


def _compute_optimal_section(kind: str, result: dict[str, Any]) -> str:
    fixed = {r["n"]: r for r in result["best_fixed"]}
    fitted = {r["n"]: r for r in result["in_sample"]}
    rows = [[str(r["n"]), _pct(r["accuracy"]), _pct(fitted[r["n"]]["accuracy"]), fixed[r["n"]]["method"],
             _pct(fixed[r["n"]]["accuracy"]), f"{r['tokens']:.0f}", f"{r['flops']:.3g}"] for r in result["cv"]]
    bins = sorted({b for chosen in result["choices"].values() for b in chosen})
    choice_rows = [[str(n)] + [chosen.get(b, "") for b in bins] for n, chosen in result["choices"].items()]
    return "\n".join([
        f"### {kind} bins", "",
        _table(["N", "compute-optimal, 2-fold CV (%)", "in-sample (%)", "best fixed method", "best fixed (%)",
                "tokens / problem (CV)", "FLOPs / problem (CV)"], rows), "",
        "Chosen per bin (fitted on all problems):", "",
        _table(["N"] + [f"bin {b}" for b in bins], choice_rows),
    ])


_SUBSAMPLING_NOTE = (
    "Sampling runs are subsampled to every smaller N (mean ± std over seeds); a search run is one point "
    "(its own pick); `:pass` is pass@N, an upper bound that needs the gold answer."
)
_CV_NOTE = (
    "For each bin and N the most accurate method is chosen on one half of the problems and scored on "
    "the other (2-fold CV); the in-sample number chooses and scores on the same problems and is "
    "optimistic by construction."
)
_POLICY_NOTE = (
    "The model-bin policy is in `policy.json`: "
    "`ttscale run RECIPE --strategy compute_optimal --policy policy.json` applies it to new problems."
)


def render_report(metrics: dict[str, Any], curves: Sequence[Curve], has_policy: bool) -> str:
    parts = ["# ttscale evaluation", "", _runs_section(metrics), ""]
    if metrics["references"]:
        refs = ", ".join(f"{k}: {_pct(v)}%" for k, v in metrics["references"].items())
        parts += [f"Reference scores (horizontal lines in the figures): {refs}.", ""]
    parts += ["## Accuracy vs N", "",
              _SUBSAMPLING_NOTE, "",
              _curves_section(curves), "", "![accuracy vs N](accuracy_vs_n.png)", "",
              "## Accuracy vs compute", "", _compute_section(curves), "",
              "![accuracy vs compute](accuracy_vs_compute.png)", "",
              "## Accuracy by level", "", _grouped_section(metrics["by_level"], "level"), "",
              "## Accuracy by subject", "", _grouped_section(metrics["by_subject"], "subject"), ""]
    if metrics["difficulty"]:
        parts += ["## Difficulty bins", ""]
        parts += [_bins_section(k, t, curves) + "\n" for k, t in metrics["difficulty"].items()]
    else:
        parts += ["## Difficulty bins", "", "No best_of_n run was given, so no bins and no compute-optimal selection.", ""]
    if metrics["compute_optimal"]:
        parts += ["## Compute-optimal scaling", "", _CV_NOTE, ""]
        parts += [_compute_optimal_section(k, r) + "\n" for k, r in metrics["compute_optimal"].items()]
        parts += ["![compute-optimal](compute_optimal.png)", ""]
    if has_policy:
        parts += [_POLICY_NOTE, ""]
    return "\n".join(parts)
