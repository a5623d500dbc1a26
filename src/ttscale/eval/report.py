"""Write an evaluation: metrics.json, policy.json, the PNG figures, report.md that embeds them, and
report.html, the interactive page of the same numbers and of every problem's search."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ttscale.data.outputs import claim_output, writing
from ttscale.eval import plots
from ttscale.eval.evaluate import check_options, evaluate_loaded, load_run
from ttscale.eval.html_report import HTML_REPORT, write_page
from ttscale.eval.metrics import Point
from ttscale.eval.paired import paired_differences
from ttscale.eval.records import BIN_SCORES, BinTable, CrossValidation, Curve, Evaluation, RunSummary

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
    check_options(reductions, seeds)
    runs = [load_run(p) for p in paths]
    ev = evaluate_loaded(runs, reductions, seeds, references)
    out = Path(output)
    # an earlier evaluation's folder is written over; a run folder or anyone else's folder never is
    claim_output(out, [Path(p) for p in paths], _is_evaluation)
    with writing(out):
        metrics = _write(ev, out)
    write_page(ev, runs, out / HTML_REPORT)
    return metrics


def _is_evaluation(folder: Path) -> bool:
    """Whether `folder` holds only what an evaluation writes (even one cut short before report.md)."""
    return all(e.is_file() and (e.name in (METRICS, POLICY, REPORT, HTML_REPORT) or e.suffix == ".png") for e in folder.iterdir())


def _write(ev: Evaluation, out: Path) -> dict[str, Any]:
    plots.accuracy_vs_n(ev.curves, ev.references, out / "accuracy_vs_n.png")
    axis = plots.accuracy_vs_compute(ev.curves, ev.references, out / "accuracy_vs_compute.png")
    if plots.thinks(ev.curves):
        plots.accuracy_vs_thinking(ev.curves, ev.references, out / "accuracy_vs_thinking.png")
    for kind, table in ev.difficulty.items():
        plots.difficulty_bars(table, ev.curves, kind, out / f"difficulty_{kind}.png")
    if ev.compute_optimal:
        plots.compute_optimal(ev.compute_optimal, ev.curves, ev.references, out / "compute_optimal.png")
    if ev.policy is not None:
        ev.policy.save(out / POLICY)
    metrics = {**ev.to_dict(), "compute_axis": axis}
    (out / METRICS).write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    (out / REPORT).write_text(render_report(ev), encoding="utf-8")
    return metrics


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _ci(low_high: tuple[float, float]) -> str:
    return f"[{_pct(low_high[0])}, {_pct(low_high[1])}]"


def _acc(p: Point) -> str:
    return f"{_pct(p.accuracy())} {_ci(p.interval())}"


def _runs_section(runs: Sequence[RunSummary]) -> str:
    rows = [[r.dir, r.strategy, str(r.n), str(r.n_problems), str(r.n_failed), f"{_pct(r.accuracy)} {_ci(r.ci)}"]
            for r in runs]
    return _table(["run", "strategy", "N", "problems", "failed", "accuracy (own pick, %, 95% CI)"], rows)


def _curves_section(curves: Sequence[Curve]) -> str:
    ns = sorted({p.n for c in curves for p in c.points})
    rows = []
    for c in curves:
        at = {p.n: p for p in c.points}
        rows.append([c.method] + [_acc(at[n]) if n in at else "" for n in ns])
    return _table(["method"] + [f"@{n}" for n in ns], rows)


def _compute_section(curves: Sequence[Curve]) -> str:
    rows = [[c.method, str(p.n), _acc(p), f"{p.mean_tokens():.0f}", f"{p.mean_flops():.3g}"]
            for c in curves if c.kind != "pass" for p in c.points]
    return _table(["method", "N", "accuracy (%, 95% CI)", "generated tokens / problem", "FLOPs / problem"], rows)


def _matched_section(curves: Sequence[Curve]) -> str:
    """Each search or adaptive run against majority voting on one budget axis: the smallest fixed-N
    majority point it matches, and the share of generated tokens it saves against that point (an
    adaptive method is worth its name only if it reaches majority's accuracy for fewer tokens)."""
    majority = next((c for c in curves if c.kind == "vote" and c.method.endswith(":majority")), None)
    searched = [(c, p) for c in curves if c.kind == "search" for p in c.points]
    if majority is None or not searched:
        return "Needs a best_of_n run (majority voting) and a search or adaptive run."
    lines = []
    for c, p in searched:
        reached = [m for m in majority.points if m.accuracy() >= p.accuracy()]
        if not reached:
            top = max(majority.points, key=lambda m: m.accuracy())
            lines.append(f"- {c.method}@{p.n}: {_acc(p)} at {p.mean_tokens():.0f} tokens, above every majority point "
                         f"(best: @{top.n}, {_acc(top)} at {top.mean_tokens():.0f} tokens).")
            continue
        m = min(reached, key=lambda x: x.n)
        ratio = p.mean_tokens() / m.mean_tokens() if m.mean_tokens() else float("inf")
        cost = f"saves {100 * (1 - ratio):.0f}% of its tokens" if ratio <= 1 else f"uses {ratio:.1f}x its tokens"
        lines.append(f"- {c.method}@{p.n}: {_acc(p)} at {p.mean_tokens():.0f} tokens matches majority@{m.n} "
                     f"({_acc(m)} at {m.mean_tokens():.0f} tokens) and {cost}.")
    return "\n".join(lines)


def _paired_section(curves: Sequence[Curve]) -> str:
    """Every pair of methods at each N, paired over the problems both answered (eval/paired.py)."""
    pairs = paired_differences(curves)
    if not pairs:
        return "Only one method per N: nothing to compare."
    rows = [[str(d.n), d.a, d.b, str(d.n_problems), f"{100 * d.difference:+.1f} [{100 * d.ci[0]:+.1f}, {100 * d.ci[1]:+.1f}]",
             "yes" if d.separated else "no"] for d in pairs]
    return "\n".join([
        "Each row is method A minus method B in accuracy points, over the problems both answered, with a 95% "
        "bootstrap interval of the per-problem difference. Paired, so a shared hard problem does not widen it: "
        "two methods whose own intervals overlap can still differ (last column: the interval excludes 0).", "",
        _table(["N", "A", "B", "problems", "A - B (points)", "differ at 95%"], rows)])


def _grouped_section(grouped: dict[str, dict[str, dict[str, float]]], what: str) -> str:
    keys = sorted({g for per in grouped.values() for g in per})
    rows = [[m] + [_pct(per[g]["accuracy"]) if g in per else "" for g in keys] for m, per in grouped.items()]
    first = next(iter(grouped.values()), {})
    counts = [f"{what} {g} (n={first[g]['n']})" if g in first else f"{what} {g}" for g in keys]
    return _table(["method@N"] + counts, rows)


def _bins_section(kind: str, table: BinTable, curves: Sequence[Curve]) -> str:
    n_bins = table.n_bins
    edges = ", ".join(f"{e:.3f}" for e in table.edges)
    counts = ", ".join(f"bin {b}: {n}" for b, n in table.counts.items())
    rows = [[name] + ["" if a is None else _pct(a) for a in accs] for name, accs in table.rows(curves)]
    score = BIN_SCORES[kind]
    return "\n".join([
        f"### {kind} bins", "",
        f"Score: {score}; quantile edges {edges}; problems per bin: {counts}. Bin 1 is the easiest.", "",
        _table(["method@N"] + [f"bin {b}" for b in range(1, n_bins + 1)], rows), "",
        f"![accuracy per {kind} bin](difficulty_{kind}.png)",
    ])


def _compute_optimal_section(kind: str, result: CrossValidation) -> str:
    fixed = {r.n: r for r in result.best_fixed}
    fitted = {r.n: r for r in result.in_sample}
    rows = [[str(r.n), _pct(r.accuracy), _pct(fitted[r.n].accuracy), fixed[r.n].method, _pct(fixed[r.n].accuracy),
             f"{r.tokens:.0f}", f"{r.flops:.3g}"] for r in result.cv]
    bins = sorted({b for chosen in result.choices.values() for b in chosen})
    choice_rows = [[str(n)] + [chosen.get(b, "") for b in bins] for n, chosen in result.choices.items()]
    return "\n".join([
        f"### {kind} bins", "",
        _table(["N", "compute-optimal, 2-fold CV (%)", "in-sample (%)", "best fixed method", "best fixed (%)",
                "tokens / problem (CV)", "FLOPs / problem (CV)"], rows), "",
        "Chosen per bin (fitted on all problems):", "",
        _table(["N"] + [f"bin {b}" for b in bins], choice_rows),
    ])


_SUBSAMPLING_NOTE = (
    "Sampling runs are subsampled to every smaller N (mean over subsample seeds); a search run is one point "
    "(its own pick); `:pass` is pass@N, an upper bound that needs the gold answer. Brackets are 95% "
    "bootstrap intervals over problems; whether two methods differ is read from their paired difference below."
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


def _thinking_section(curves: Sequence[Curve]) -> list[str]:
    rows = [f"- {c.method}@{p.n}: {_acc(p)} at {p.mean_thinking():.0f} thinking of {p.mean_tokens():.0f} tokens"
            for c in curves if c.kind != "pass" for p in c.points if p.mean_thinking() > 0]
    return ["## Accuracy vs thinking tokens", "", *rows, "", "![accuracy vs thinking](accuracy_vs_thinking.png)", ""]


def render_report(ev: Evaluation) -> str:
    curves = ev.curves
    parts = ["# ttscale evaluation", "", _runs_section(ev.runs), ""]
    if ev.references:
        refs = ", ".join(f"{k}: {_pct(v)}%" for k, v in ev.references.items())
        parts += [f"Reference scores (horizontal lines in the figures): {refs}.", ""]
    parts += ["## Accuracy vs N", "",
              _SUBSAMPLING_NOTE, "",
              _curves_section(curves), "", "![accuracy vs N](accuracy_vs_n.png)", "",
              "## Which differences are real", "", _paired_section(curves), "",
              "## Accuracy vs compute", "", _compute_section(curves), "",
              "Against majority voting at equal accuracy:", "", _matched_section(curves), "",
              "![accuracy vs compute](accuracy_vs_compute.png)", "",
              *(_thinking_section(curves) if plots.thinks(curves) else []),
              "## Accuracy by level", "", _grouped_section(ev.by_level, "level"), "",
              "## Accuracy by subject", "", _grouped_section(ev.by_subject, "subject"), ""]
    if ev.difficulty:
        parts += ["## Difficulty bins", ""]
        parts += [_bins_section(k, t, curves) + "\n" for k, t in ev.difficulty.items()]
    else:
        parts += ["## Difficulty bins", "", "No best_of_n run was given, so no bins and no compute-optimal selection.", ""]
    if ev.compute_optimal:
        parts += ["## Compute-optimal scaling", "", _CV_NOTE, ""]
        parts += [_compute_optimal_section(k, r) + "\n" for k, r in ev.compute_optimal.items()]
        parts += ["![compute-optimal](compute_optimal.png)", ""]
    if ev.policy is not None:
        parts += [_POLICY_NOTE, ""]
    return "\n".join(parts)
