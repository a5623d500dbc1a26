"""The report page's overview: interactive accuracy curves (Plotly figures, as JSON) and the runs,
difficulty-bin and compute-optimal tables (HTML), all drawn from one `Evaluation`."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from html import escape
from typing import Any

from ttscale.eval.metrics import Point
from ttscale.eval.records import BIN_SCORES, BinTable, CrossValidation, Curve, Evaluation, RunSummary, method_colors

# Plotly's default qualitative colours (plotly.colors.qualitative.Plotly), one per method in every figure.
_COLORS = ("#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692", "#B6E880", "#FF97FF",
           "#FECB52")

# axis -> (title, axis label, the point's value on it)
_AXES: dict[str, tuple[str, str, Callable[[Point], float]]] = {
    "n": ("accuracy vs N", "N (candidates per problem)", lambda p: float(p.n)),
    "tokens": ("accuracy vs generated tokens", "generated tokens per problem", lambda p: p.mean_tokens()),
    "flops": ("accuracy vs FLOPs", "FLOPs per problem", lambda p: p.mean_flops()),
}


def _colors(curves: Sequence[Curve]) -> dict[str, str]:
    return method_colors(curves, _COLORS, "#444")


def _trace(c: Curve, axis: str, color: str) -> dict[str, Any]:
    from plotly import graph_objects as go

    get = _AXES[axis][2]
    pts = [p for p in c.points if get(p) > 0]
    acc = [100 * p.accuracy() for p in pts]
    ci = [tuple(100 * v for v in p.interval()) for p in pts]
    return go.Scatter(
        x=[get(p) for p in pts], y=acc, name=c.method, legendgroup=c.method, mode="lines+markers",
        line={"color": color, "dash": "dot" if c.kind == "pass" else "solid", "width": 1 if c.kind == "pass" else 2},
        marker={"symbol": "x" if c.kind == "pass" else "square" if c.kind == "search" else "circle", "size": 7},
        error_y={"type": "data", "symmetric": False, "array": [hi - a for a, (_, hi) in zip(acc, ci)],
                 "arrayminus": [a - lo for a, (lo, _) in zip(acc, ci)], "thickness": 1, "width": 3},
        customdata=[[p.n, lo, hi, p.mean_tokens(), p.mean_flops()] for p, (lo, hi) in zip(pts, ci)],
        hovertemplate=(f"<b>{escape(c.method)}</b><br>N=%{{customdata[0]}}<br>accuracy %{{y:.1f}}% "
                       "[%{customdata[1]:.1f}, %{customdata[2]:.1f}]<br>%{customdata[3]:.0f} tokens, "
                       "%{customdata[4]:.3g} FLOPs<extra></extra>"),
    )


def curve_figure(curves: Sequence[Curve], references: dict[str, float], axis: str) -> dict[str, Any]:
    """Accuracy against `axis` (n | tokens | flops) for every method, 95% intervals as error bars; Plotly JSON."""
    from plotly import graph_objects as go

    colors = _colors(curves)
    fig = go.Figure([_trace(c, axis, colors[c.method]) for c in curves])
    xaxis: dict[str, Any] = {"title": {"text": _AXES[axis][1]}, "type": "log"}
    if axis == "n":
        ns = sorted({p.n for c in curves for p in c.points})
        xaxis.update(tickvals=ns, ticktext=[str(n) for n in ns])
    for label, value in references.items():
        fig.add_hline(y=100 * value, line={"dash": "dash", "color": "#888", "width": 1},
                      annotation={"text": escape(label), "font": {"size": 10}})
    fig.update_layout(template="plotly_white", xaxis=xaxis, yaxis={"title": {"text": "accuracy (%)"}},
                      margin={"l": 55, "r": 10, "t": 30, "b": 45}, height=380, hovermode="closest",
                      legend={"font": {"size": 10}}, title={"text": _AXES[axis][0], "font": {"size": 14}})
    return json.loads(fig.to_json())


def _pct(x: float) -> str:
    return "" if math.isnan(x) else f"{100 * x:.1f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    """An HTML table; cells are escaped here, so callers pass plain text."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _ci(low_high: tuple[float, float]) -> str:
    return f"[{_pct(low_high[0])}, {_pct(low_high[1])}]"


def runs_table(runs: Sequence[RunSummary], labels: Sequence[str]) -> str:
    rows = [[label, r.dir, r.strategy, str(r.n), str(r.n_problems), str(r.n_failed), f"{_pct(r.accuracy)} {_ci(r.ci)}"]
            for label, r in zip(labels, runs)]
    return _table(["run", "folder", "strategy", "N", "problems", "failed", "accuracy (own pick, %, 95% CI)"], rows)


def bins_table(kind: str, table: BinTable, curves: Sequence[Curve]) -> str:
    n_bins = table.n_bins
    rows = [[name] + ["" if a is None else _pct(a) for a in accs] for name, accs in table.rows(curves)]
    score = BIN_SCORES[kind]
    edges = ", ".join(f"{e:.3f}" for e in table.edges)
    header = ["method@N"] + [f"bin {b} ({table.counts.get(b, 0)})" for b in range(1, n_bins + 1)]
    return (f"<h3>{escape(kind)} bins</h3><p>Score: {escape(score)}; quantile edges {escape(edges)}. Bin 1 is the "
            f"easiest; problems per bin in brackets; accuracy in %.</p>" + _table(header, rows, "bins"))


def compute_optimal_table(kind: str, result: CrossValidation) -> str:
    fixed = {r.n: r for r in result.best_fixed}
    bins = sorted({b for chosen in result.choices.values() for b in chosen})
    rows = [[str(r.n), _pct(r.accuracy), f"{fixed[r.n].method} ({_pct(fixed[r.n].accuracy)})", f"{r.tokens:.0f}"]
            + [result.choices.get(r.n, {}).get(b, "") for b in bins] for r in result.cv]
    header = ["N", "compute-optimal, 2-fold CV (%)", "best fixed method (%)", "tokens / problem"] + [
        f"choice, bin {b}" for b in bins]
    return f"<h3>{escape(kind)} bins</h3>" + _table(header, rows, "choices")


def overview_html(ev: Evaluation, labels: Sequence[str]) -> str:
    """The overview's static part; the figures' divs are filled by report.js from `overview_figures`."""
    parts = ["<h2>Runs</h2>", runs_table(ev.runs, labels),
             "<h2>Accuracy</h2><p>Sampling runs are subsampled to every smaller N; a search run is one point (its own "
             "pick); dotted <code>:pass</code> curves are pass@N, an upper bound that needs the gold answer. Bars are 95% "
             "bootstrap intervals over problems. Drag to zoom, double-click to reset, click a legend entry to hide it.</p>",
             '<div class="figures">' + "".join(f'<div class="figure" id="fig-{a}"></div>' for a in _AXES) + "</div>",
             "<h2>Difficulty bins</h2>"]
    if ev.difficulty:
        parts += [bins_table(k, t, ev.curves) for k, t in ev.difficulty.items()]
    else:
        parts.append("<p>No best_of_n run was given, so no bins and no compute-optimal selection.</p>")
    if ev.compute_optimal:
        parts += ["<h2>Compute-optimal choice</h2><p>Per bin and N the most accurate method, chosen on one half of the "
                  "problems and scored on the other; the choice columns are fitted on every problem.</p>"]
        parts += [compute_optimal_table(k, r) for k, r in ev.compute_optimal.items()]
    return "\n".join(parts)


def overview_figures(ev: Evaluation) -> dict[str, Any]:
    return {f"fig-{a}": curve_figure(ev.curves, ev.references, a) for a in _AXES}
