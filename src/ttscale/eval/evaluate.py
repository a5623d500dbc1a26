"""`ttscale evaluate`: run directories -> curves, tables, difficulty bins, compute-optimal selection.

Reads only what the runs wrote (config.yaml, completions.jsonl with per-step scores and
budgets); never runs a model. Everything lands in one `Evaluation` record, which the plots
and the report are drawn from and metrics.json serialises.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttscale.config import OutputConfig, SearchConfig, VerifierConfig, nest_flat_search_keys
from ttscale.data.policy import Policy, PolicyEntry
from ttscale.data.results import RunDir, read_results
from ttscale.errors import ConfigError, RunDirError
from ttscale.eval import compute_optimal as co
from ttscale.eval.difficulty import Binning, make_binning, model_scores, oracle_scores
from ttscale.eval.metrics import Point, repick_point, search_point, selected_accuracy, subsampled_points
from ttscale.eval.records import BinTable, Curve, Evaluation, RunSummary
from ttscale.grading import correctness
from ttscale.types import REDUCTIONS, ProblemResult, Reduction, Selection, as_reduction

log = logging.getLogger(__name__)

SAMPLING = "best_of_n"  # the strategy whose N samples can be subsampled into a whole curve
# Keys that do not make two runs different methods: N forms the curve, the rest is bookkeeping.
_NOT_HYPER = {"search.n", "search.policy", "search.problems_per_batch", "search.strategy", "sampling.seed",
              "search.max_tokens_per_problem", "search.max_flops_per_problem"}
_HYPER_SECTIONS = ("model", "verifier", "sampling", "search")
LABEL_VALUE_CHARS = 32  # longer settings are named by a digest in curve labels (_label_value)
# The picks every run is evaluated under: majority always, the verifier's two where candidates were scored.
_PICKS: tuple[Selection, ...] = ("majority", "naive", "weighted")
# SearchSettings fields a policy entry may set, read from the run's config.search: every search
# setting but the budget and the run-level ones, so a new strategy's knobs (the adaptive ones too)
# are replayed by compute_optimal without being listed here.
_SETTINGS_KEYS = tuple(f.name for f in dataclasses.fields(SearchConfig) if f.name not in {
    "n", "strategy", "policy", "problems_per_batch", "max_tokens_per_problem", "max_flops_per_problem"})


@dataclass
class Run:
    path: Path
    config: dict[str, Any]
    results: list[ProblemResult]
    correct: dict[str, list[bool]]

    @property
    def strategy(self) -> str:
        return self.search.get("strategy", SAMPLING)

    @property
    def search(self) -> dict[str, Any]:
        # a run saved before the strategy sections existed spells their keys flat
        return nest_flat_search_keys(self.config.get("search") or {})[0]

    @property
    def n(self) -> int:
        return int(self.search.get("n", max((len(r.completions) for r in self.results), default=1)))

    @property
    def reduction(self) -> Reduction:
        return as_reduction((self.config.get("verifier") or {}).get("reduction", VerifierConfig.reduction))

    @property
    def scored(self) -> bool:
        return any(c.step_scores for r in self.results for c in r.completions)

    def hyper(self) -> dict[str, Any]:
        flat = {k: v for s in _HYPER_SECTIONS for k, v in _flatten(
            self.search if s == "search" else self.config.get(s) or {}, s).items()}
        return {k: v for k, v in flat.items() if k not in _NOT_HYPER}


def _flatten(section: dict[str, Any], prefix: str) -> dict[str, Any]:
    """`{"particle": {"temperature": 0.2}}` under "search" -> `{"search.particle.temperature": 0.2}`."""
    out: dict[str, Any] = {}
    for key, value in section.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}.{key}"))
        else:
            out[f"{prefix}.{key}"] = value
    return out


def load_run(path: str | Path) -> Run:
    """A run directory's results and config; RunDirError for a missing, foreign or empty directory."""
    path = Path(path)
    results = read_results(path)
    config = RunDir(path).config()  # corrupt or missing config.yaml -> RunDirError naming it
    if not results:
        raise RunDirError(f"{path} holds no ttscale results (completions.jsonl has no readable rows)")
    return Run(path, config, results, correctness(results))


def _label_value(value: Any) -> str:
    """A setting as a curve label shows it: as written when short; a long one (a calibration map's
    knots) by its length and a digest, which still tells two runs' values apart."""
    text = str(value)
    if len(text) <= LABEL_VALUE_CHARS:
        return text
    size = f"{len(value)} items " if isinstance(value, (list, tuple, dict)) else ""
    return f"<{size}{hashlib.sha256(text.encode()).hexdigest()[:8]}>"


def group_runs(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """label -> runs of one (strategy, hyper-parameters other than N); labels name what differs."""
    groups: dict[tuple[str, str], list[Run]] = defaultdict(list)
    for run in runs:
        groups[(run.strategy, repr(sorted(run.hyper().items())))].append(run)
    labels: dict[str, list[Run]] = {}
    for (strategy, _), members in groups.items():
        siblings = [g[0].hyper() for (s, _), g in groups.items() if s == strategy]
        varying = sorted(k for k in set().union(*siblings) if len({repr(h.get(k)) for h in siblings}) > 1)
        own = members[0].hyper()
        params = ", ".join(f"{k.split('.', 1)[1]}={_label_value(own.get(k))}" for k in varying)
        label = f"{strategy}({params})" if params else strategy
        labels[label] = sorted(members, key=lambda r: r.n)
    return labels


def build_curves(groups: dict[str, list[Run]], reductions: Sequence[Reduction] | None, seeds: int) -> list[Curve]:
    curves: list[Curve] = []
    for label, runs in groups.items():
        if runs[0].strategy == SAMPLING:
            curves += _sampling_curves(label, runs, reductions, seeds)
        else:
            curves += _search_curves(label, runs)
    return curves


def _sampling_curves(label: str, runs: list[Run], reductions: Sequence[Reduction] | None, seeds: int) -> list[Curve]:
    """Majority, naive and weighted best-of-N at every N by subsampling; the largest run covering N wins."""
    default = runs[-1].reduction
    methods: dict[str, tuple[Selection, Reduction]] = {f"{label}:majority": ("majority", default)}
    scored_picks = _PICKS[1:]
    if any(r.scored for r in runs):
        for red in reductions or [default]:
            suffix = "" if red == default else f"[{red}]"
            methods.update({f"{label}:{sel}{suffix}": (sel, red) for sel in scored_picks})
    curves = {m: Curve(m, "vote", SAMPLING) for m in methods}
    curves[f"{label}:pass"] = Curve(f"{label}:pass", "pass", SAMPLING)
    for run in sorted(runs, key=lambda r: -r.n):
        points = subsampled_points(run.results, run.correct, methods, seeds)
        for name, ps in points.items():
            curve = curves[f"{label}:pass" if name == "pass" else name]
            for p in ps:
                if p.n not in curve.settings:
                    sel, red = methods.get(name, ("majority", default))
                    curve.points.append(dataclasses.replace(p, method=curve.method))
                    curve.settings[p.n] = {"n": p.n, "selection": sel, "reduction": red}
    for c in curves.values():
        c.points.sort(key=lambda p: p.n)
    return list(curves.values())


def _search_curves(label: str, runs: list[Run]) -> list[Curve]:
    """The strategy's own pick at each N, every other pick over the same candidates (kind "repick": what a
    run with that `search.selection` picks, so compute-optimal selection can choose the pick per bin as it
    does for best-of-N), and pass@N."""
    strategy = runs[0].strategy
    own, upper = Curve(label, "search", strategy), Curve(f"{label}:pass", "pass", strategy)
    repicks: dict[Selection, Curve] = {}
    for run in runs:
        own.points.append(search_point(label, run.n, run.results, run.correct))
        own.settings[run.n] = {"n": run.n, "reduction": run.reduction,
                               **{k: run.search[k] for k in _SETTINGS_KEYS if k in run.search}}
        own_pick = run.search.get("selection", SearchConfig.selection)
        for sel in _PICKS if run.scored else _PICKS[:1]:
            if sel != own_pick:
                curve = repicks.setdefault(sel, Curve(f"{label}:{sel}", "repick", strategy))
                curve.points.append(repick_point(curve.method, run.n, run.results, run.correct, sel, run.reduction))
                curve.settings[run.n] = {**own.settings[run.n], "selection": sel}
        upper.points.append(Point(upper.method, run.n, {
            r.id: float(any(run.correct[r.id])) for r in run.results
        }, own.points[-1].tokens, own.points[-1].flops, thinking=own.points[-1].thinking))
    return [own, *repicks.values(), upper]


def check_options(reductions: Sequence[str] | None, seeds: int) -> list[Reduction] | None:
    """The evaluation's options, checked before any run folder is read; the reductions asked for."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"--seeds {seeds!r} is invalid; accepted: an integer >= 1 (subsamples per N)")
    for red in reductions or ():
        if red not in REDUCTIONS:
            raise ConfigError(f"--reduction {red!r} is invalid; accepted: {', '.join(REDUCTIONS)}")
    return None if reductions is None else [as_reduction(red) for red in reductions]


def evaluate_runs(
    paths: Sequence[str | Path],
    reductions: Sequence[str] | None = None,
    seeds: int = OutputConfig.subsample_seeds,
    references: dict[str, float] | None = None,
    n_bins: int = 5,
    n_folds: int = 2,
) -> Evaluation:
    """Every number of the evaluation, the curves they came from, and the learned policy (None without model bins)."""
    check_options(reductions, seeds)
    return evaluate_loaded([load_run(p) for p in paths], reductions, seeds, references, n_bins, n_folds)


def evaluate_loaded(
    runs: Sequence[Run],
    reductions: Sequence[str] | None = None,
    seeds: int = OutputConfig.subsample_seeds,
    references: dict[str, float] | None = None,
    n_bins: int = 5,
    n_folds: int = 2,
) -> Evaluation:
    """`evaluate_runs` on runs already loaded, so a caller that also shows them grades each answer once."""
    curves = build_curves(group_runs(runs), check_options(reductions, seeds), seeds)
    problems = {r.id: r.problem for run in runs for r in run.results}
    binnings = _binnings(runs, n_bins)
    common = set.intersection(*({r.id for r in run.results} for run in runs))
    if len(common) < len(problems):
        log.warning("runs cover different problems; compute-optimal selection uses the %d they share", len(common))
    candidates = _candidates(curves)
    compute_optimal = {}
    for kind, binning in binnings.items():
        ids = sorted(i for i in common if i in binning.bins)
        compute_optimal[kind] = co.cross_validate(candidates, binning.bins, ids, n_folds)
    policy = _policy(curves, binnings["model"], candidates, common, runs) if "model" in binnings else None
    return Evaluation(
        runs=tuple(_run_summary(run) for run in runs),
        curves=tuple(curves),
        by_level=_grouped(curves, {i: str(p.level) for i, p in problems.items()}),
        by_subject=_grouped(curves, {i: str(p.subject) for i, p in problems.items()}),
        difficulty={kind: _bin_table(b, curves) for kind, b in binnings.items()},
        compute_optimal=compute_optimal,
        references=dict(references or {}),
        policy=policy,
    )


def _run_summary(run: Run) -> RunSummary:
    own = search_point(run.strategy, run.n, run.results, run.correct)
    return RunSummary(str(run.path), run.strategy, run.n, run.reduction, len(run.results),
                      sum(r.error is not None for r in run.results), selected_accuracy(run.results, run.correct),
                      own.interval())


def _grouped(curves: Sequence[Curve], key: dict[str, str]) -> dict[str, dict[str, dict[str, float]]]:
    """method (at its largest N) -> group (level or subject) -> {n, accuracy}."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for c in curves:
        last = c.points[-1]
        groups: dict[str, list[str]] = defaultdict(list)
        for pid in last.correct:
            groups[key[pid]].append(pid)
        out[f"{c.method}@{last.n}"] = {g: {"n": len(ids), "accuracy": last.accuracy(ids)} for g, ids in sorted(groups.items())}
    return out


def _sampling_run(runs: Sequence[Run]) -> Run | None:
    sampling = [r for r in runs if r.strategy == SAMPLING]
    return max(sampling, key=lambda r: (r.scored, r.n)) if sampling else None


def _binnings(runs: Sequence[Run], n_bins: int) -> dict[str, Binning]:
    """Oracle bins from the largest sampling run; model bins from its scores when it has any."""
    source = _sampling_run(runs)
    if source is None:
        log.warning("no best_of_n run: difficulty bins and compute-optimal selection need one")
        return {}
    ok = [r for r in source.results if r.error is None]
    out = {"oracle": make_binning("oracle", oracle_scores(ok, source.correct), n_bins)}
    if source.scored:
        out["model"] = make_binning("model", model_scores(ok, source.reduction), n_bins)
    return out


def _bin_table(binning: Binning, curves: Sequence[Curve]) -> BinTable:
    accuracy: dict[str, dict[int, dict[int, float]]] = {}
    for c in curves:
        accuracy[c.method] = {}
        for p in c.points:
            per_bin: dict[int, float] = {}
            for b in range(1, binning.n_bins + 1):
                ids = [i for i, v in binning.bins.items() if v == b and i in p.correct]
                if ids:
                    per_bin[b] = p.accuracy(ids)
            accuracy[c.method][p.n] = per_bin
    return BinTable(tuple(binning.edges), binning.counts(), accuracy)


def _candidates(curves: Sequence[Curve]) -> dict[int, list[Point]]:
    """Selectable points per budget N; pass@N needs the gold answer, so it is never a candidate."""
    out: dict[int, list[Point]] = defaultdict(list)
    for c in curves:
        if c.kind != "pass":
            for p in c.points:
                out[p.n].append(p)
    return dict(out)


def _policy(
    curves: Sequence[Curve], binning: Binning, candidates: dict[int, list[Point]], common: set[str], runs: Sequence[Run]
) -> Policy:
    by_method = {c.method: c for c in curves}
    ids = sorted(i for i in common if i in binning.bins)
    budgets: dict[int, dict[int, PolicyEntry]] = {}
    for n, points in sorted(candidates.items()):
        chosen, _ = co.fit(points, binning.bins, ids)
        budgets[n] = {
            b: PolicyEntry(p.method, by_method[p.method].strategy, by_method[p.method].settings[n],
                              p.accuracy([i for i in ids if binning.bins[i] == b]),
                              by_method[p.method].settings[n]["selection"] if by_method[p.method].kind == "repick"
                              else None)
            for b, p in chosen.items()
        }
    source = _sampling_run(runs)
    meta = {"runs": [str(r.path) for r in runs], "bins_from": str(source.path) if source else None}
    return Policy(binning.edges, source.reduction if source else as_reduction(VerifierConfig.reduction), budgets, meta=meta)


def parse_reference(text: str) -> tuple[str, float]:
    """'Llama-3.1-8B 0-shot=51.9' -> ('Llama-3.1-8B 0-shot', 0.519): percent in, fraction out."""
    label, sep, value = text.rpartition("=")
    try:
        score = float(value)
    except ValueError:
        score = float("nan")
    if not sep or not label.strip() or not 0 <= score <= 100:
        raise ConfigError(f"--reference {text!r} is invalid; accepted: 'LABEL=PERCENT', e.g. 'Llama-3.1-8B 0-shot=51.9'")
    return label.strip(), score / 100
