"""The paper's figures as PNGs: accuracy vs N and vs compute, per-difficulty bars, compute-optimal.

Figures are built on matplotlib's object API with the Agg canvas (no pyplot, no global
backend switch), so they render headless and leave the caller's matplotlib state alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, LogLocator, NullFormatter, NullLocator

from ttscale.eval.metrics import Point
from ttscale.eval.records import BinTable, CrossValidation, Curve, method_colors

_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive",
           "tab:cyan", "tab:gray")
_REF_STYLES = ("dotted", "dashdot", (0, (5, 2, 1, 2)), (0, (1, 3)))


def _colors(curves: Sequence[Curve]) -> dict[str, str]:
    return method_colors(curves, _COLORS, "black")


def _style(c: Curve) -> dict[str, Any]:
    if c.kind == "pass":
        return {"linestyle": "--", "marker": "x", "linewidth": 1.0, "alpha": 0.6}
    return {"linestyle": "-", "marker": "s" if c.kind == "search" else "o", "linewidth": 1.6, "markersize": 4}


def _log2_axis(ax: Axes, ns: Sequence[int]) -> None:
    ax.set_xscale("log", base=2)
    ticks = sorted(set(ns))
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([str(n) for n in ticks])
    if len(ticks) == 1:
        ax.set_xlim(ticks[0] / 1.5, ticks[0] * 1.5)


def _with_intervals(ax: Axes, c: Curve, xs: Sequence[float], color: str) -> None:
    """95% bootstrap intervals over problems: a band along a subsampled curve, error bars on search points."""
    low, high = zip(*(tuple(100 * v for v in p.interval()) for p in c.points))
    acc = [100 * p.accuracy() for p in c.points]
    if c.kind == "vote" and len(xs) > 1:
        ax.fill_between(xs, low, high, color=color, alpha=0.12, linewidth=0)
    else:
        ax.errorbar(xs, acc, yerr=[[a - lo for a, lo in zip(acc, low)], [hi - a for a, hi in zip(acc, high)]],
                    fmt="none", ecolor=color, elinewidth=1.0, capsize=3, alpha=0.8)


def _references(ax: Axes, references: dict[str, float]) -> None:
    for i, (label, value) in enumerate(references.items()):
        ax.axhline(100 * value, color="dimgray", linestyle=_REF_STYLES[i % len(_REF_STYLES)], linewidth=1.2,
                   label=f"{label} ({100 * value:.1f}%)")


def _finish(fig: Figure, ax: Axes, path: Path, title: str) -> None:
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    fig.savefig(path, dpi=120, bbox_inches="tight")


def accuracy_vs_n(curves: Sequence[Curve], references: dict[str, float], path: Path) -> None:
    fig = Figure(figsize=(7.5, 4.5))
    ax = fig.subplots()
    colors = _colors(curves)
    for c in curves:
        ns = [p.n for p in c.points]
        acc = [100 * p.accuracy() for p in c.points]
        ax.plot(ns, acc, color=colors[c.method], label=c.method, **_style(c))
        if c.kind != "pass":
            _with_intervals(ax, c, ns, colors[c.method])
    _references(ax, references)
    _log2_axis(ax, [p.n for c in curves for p in c.points])
    ax.set_xlabel("generation budget N (log2)")
    ax.set_ylabel("accuracy (%)")
    _finish(fig, ax, path, "Accuracy vs N (bands and bars: 95% bootstrap interval over problems)")


def _accuracy_vs_log_x(curves: Sequence[Curve], references: dict[str, float], path: Path,
                       x: Callable[[Point], float], xlabel: str, title: str) -> None:
    """Accuracy against a per-problem cost on a log axis; curves with no cost on it are left out."""
    fig = Figure(figsize=(7.5, 4.5))
    ax = fig.subplots()
    colors = _colors(curves)
    for c in curves:
        xs = [x(p) for p in c.points]
        if c.kind == "pass" or not any(v > 0 for v in xs):
            continue
        ax.plot(xs, [100 * p.accuracy() for p in c.points], color=colors[c.method], label=c.method, **_style(c))
        _with_intervals(ax, c, xs, colors[c.method])
    _references(ax, references)
    ax.set_xscale("log")
    # Labels on the decades only: minor labels ("3x10^10 4x10^10") overlap
    ax.xaxis.set_major_locator(LogLocator(base=10))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy (%)")
    _finish(fig, ax, path, title)


def accuracy_vs_compute(curves: Sequence[Curve], references: dict[str, float], path: Path) -> str:
    """Accuracy against mean FLOPs per problem (generated tokens when no run recorded FLOPs); returns the axis."""
    if any(p.mean_flops() > 0 for c in curves for p in c.points):
        _accuracy_vs_log_x(curves, references, path, Point.mean_flops, "mean FLOPs per problem (log)",
                           "Accuracy vs compute (FLOPs)")
        return "flops"
    _accuracy_vs_log_x(curves, references, path, Point.mean_tokens, "mean generated tokens per problem (log)",
                       "Accuracy vs compute (tokens)")
    return "tokens"


def thinks(curves: Sequence[Curve]) -> bool:
    return any(p.mean_thinking() > 0 for c in curves for p in c.points)


def accuracy_vs_thinking(curves: Sequence[Curve], references: dict[str, float], path: Path) -> None:
    """Accuracy against mean thinking tokens per problem: the budget a reasoning model spends."""
    _accuracy_vs_log_x(curves, references, path, Point.mean_thinking, "mean thinking tokens per problem (log)",
                       "Accuracy vs thinking tokens")


def difficulty_bars(table: BinTable, curves: Sequence[Curve], kind: str, path: Path) -> None:
    """One panel per N: accuracy per difficulty bin, one bar per method that has a point at that N."""
    colors = _colors(curves)
    methods = [c.method for c in curves if c.kind != "pass"]
    ns = sorted({p.n for c in curves if c.kind != "pass" for p in c.points})
    n_bins = table.n_bins
    cols = min(3, len(ns))
    rows = math.ceil(len(ns) / cols)
    fig = Figure(figsize=(4.2 * cols + 2.2, 3.2 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, n in zip(axes.flat, ns):
        present = [m for m in methods if n in table.accuracy[m]]
        width = 0.8 / max(len(present), 1)
        for j, m in enumerate(present):
            per_bin = table.accuracy[m][n]
            xs = [b + (j - (len(present) - 1) / 2) * width for b in range(1, n_bins + 1)]
            ax.bar(xs, [100 * per_bin.get(b, 0.0) for b in range(1, n_bins + 1)], width=width,
                   color=colors[m], label=m)
        ax.set_title(f"N = {n}", fontsize=10)
        ax.set_xticks(range(1, n_bins + 1))
        ax.set_xticklabels([f"{b}\n(n={table.counts.get(b, 0)})" for b in range(1, n_bins + 1)], fontsize=8)
        ax.set_xlabel(f"{kind} difficulty bin (1 = easiest)", fontsize=9)
        ax.set_ylabel("accuracy (%)", fontsize=9)
        ax.set_ylim(0, 105)
        ax.grid(True, axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(ns):]:
        ax.set_visible(False)
    handles, labels = _all_handles(axes.flat)
    fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.0, 0.95), fontsize=8, frameon=False)
    fig.suptitle(f"Accuracy per {kind} difficulty bin")
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")


def _all_handles(axes: Any) -> tuple[list[Any], list[str]]:
    seen: dict[str, Any] = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, h)
    return list(seen.values()), list(seen)


def compute_optimal(results: dict[str, CrossValidation], curves: Sequence[Curve], references: dict[str, float],
                    path: Path) -> None:
    """Per binning: the cross-validated compute-optimal curve, its in-sample twin and every fixed strategy."""
    kinds = list(results)
    fig = Figure(figsize=(5.5 * len(kinds) + 2.5, 4.8))
    axes = fig.subplots(1, len(kinds), squeeze=False)[0]
    colors = _colors(curves)
    for ax, kind in zip(axes, kinds):
        for c in curves:
            if c.kind != "pass":
                ax.plot([p.n for p in c.points], [100 * p.accuracy() for p in c.points], color=colors[c.method],
                        linewidth=1.0, marker="o", markersize=3, alpha=0.8, label=c.method)
        cv, fitted = results[kind].cv, results[kind].in_sample
        ax.plot([r.n for r in cv], [100 * r.accuracy for r in cv], color="black", linewidth=2.4, marker="D",
                label="compute-optimal (2-fold CV)")
        ax.plot([r.n for r in fitted], [100 * r.accuracy for r in fitted], color="black", linewidth=1.2,
                linestyle="--", label="compute-optimal (in-sample)")
        _references(ax, references)
        _log2_axis(ax, [r.n for r in fitted] + [p.n for c in curves for p in c.points])
        ax.set_xlabel("generation budget N (log2)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"{kind} bins")
        ax.grid(True, alpha=0.3)
    handles, labels = _all_handles(axes)
    fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.0, 0.92), fontsize=8, frameon=False)
    fig.suptitle("Compute-optimal scaling vs fixed strategies")
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
