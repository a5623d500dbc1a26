"""How good are Monte Carlo step labels before any PRM is trained on them, option by option?

A PRM cannot learn more signal than its labels hold (Zhang et al. 2025, "The Lessons of Developing
Process Reward Models in Mathematical Reasoning": Monte Carlo labels from a weak completer are mostly
noise). This bench reads `ttscale learn label-steps` outputs of one run's candidates (one per completer
temperature, k rollouts per step prefix) and compares every labelling option it can derive from those
rollouts with the rule verifier's step labels (CORRECT good, WRONG/INVENTED bad, unjudged left out):

- fewer rollouts: k' < k of the k rollouts, drawn without replacement (the labels a k'-rollout run
  would have given), averaged over draws;
- hard labels (Math-Shepherd: good when any try reaches gold) against soft ones (the value itself, as a
  score: its AUC), and thresholds on the value;
- the candidates' own continuations counted as tries, or not; the candidate's outcome alone (ORM labels);
- pooled rollouts of two completers, and consensus (only steps whose two hard labels agree kept);
- per difficulty level, since a completer that is right more often labels better;
- progress, the value's change over the step (Setlur et al. 2024, "Rewarding Progress": a step is
  good when it raises the chance of success), with the prompt's value taken as the run's own sample
  accuracy on that problem; and the previous prefix's value alone, a label blind to the step itself:
  where it scores as well as the value, the value measures the problem and the trajectory so far,
  not the step. The AUC within problems (pairs of one good and one bad step of the same problem)
  takes problem difficulty out of the pooled AUC.

    ttscale run cpu_arithmetic --output-dir RUN --set search.n=8 --set "dataset.levels=[1,2,3,4]" \
        --set dataset.seed=1000 --set dataset.limit=32 --set dataset.wording=alt --set model.dtype=float32
    ttscale learn label-steps RUN --output L1 --rollouts 16 --mode soft --max-per-problem 4 --max-new-tokens 48
    ttscale learn label-steps RUN --output L2 --rollouts 16 --mode soft --max-per-problem 4 --max-new-tokens 48 \
        --temperature 0.3
    python bench/label_quality.py --train-run RUN --labels L1 L2
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _common import provenance

from ttscale.data.results import read_results
from ttscale.grading import correct_flags
from ttscale.learn.agreement import label_quality, rule_label, rule_labels, step_agreement, within_problem_auc
from ttscale.learn.common import read_rows
from ttscale.learn.labels import SETTINGS, STEPS_JSONL
from ttscale.verifiers.arithmetic import ArithmeticRulesVerifier

DRAWS = 20  # subsamples per k' < k; their metrics are averaged


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train-run", required=True, help="the run whose candidates were labelled")
    ap.add_argument("--labels", nargs="+", required=True, help="label-steps outputs of that run (one or two)")
    return ap.parse_args()


def labelled(directory: str) -> tuple[str, int, list[dict[str, Any]]]:
    """(name, k, rows) of one label-steps output, rows in a fixed order."""
    settings = json.loads((Path(directory) / SETTINGS).read_text(encoding="utf-8"))
    rows = read_rows(Path(directory) / STEPS_JSONL)
    missing = [i for i, r in enumerate(rows) if "rollouts" not in r]
    if missing:
        raise SystemExit(f"{directory} row {missing[0]} has no rollout tallies (labelled by older code)")
    temp = "run" if settings.get("temperature") is None else settings["temperature"]
    return f"T={temp}", settings["rollouts"], sorted(rows, key=lambda r: (r["id"], r["completions"]))


def values(rows: Sequence[dict[str, Any]], k: int, rng: np.random.Generator | None, own: bool = True
           ) -> list[list[float]]:
    """Each step's value from k of its rollouts (drawn without replacement; all when k is the rollout count)."""
    out = []
    for r in rows:
        vs = []
        for h, n, oh, ot in zip(r["rollout_hits"], r["rollouts"], r["own_hits"], r["own_tries"], strict=True):
            kk = min(k, n)
            hits = rng.hypergeometric(h, n - h, kk) if (rng is not None and 0 < kk < n) else h
            if not own and n:
                oh, ot = 0, 0
            vs.append((hits + oh) / (kk + ot))
        out.append(vs)
    return out


def rule_scores(rows: Sequence[dict[str, Any]]) -> list[list[float]]:
    rules = ArithmeticRulesVerifier()
    return [rules.score_solution(r["prompt"], r["completions"]) for r in rows]


def line(name: str, vals: Sequence[Sequence[Sequence[float]]], truth: Sequence[Sequence[float]]) -> None:
    """One option: AUC of the value (soft) and precision/recall of "good" = value > 0 (hard), averaged over
    draws; the interval is the first draw's (bootstrap over solutions)."""
    aucs, precision, recall = [], [], []
    for v in vals:
        aucs.append(step_agreement(v, truth).auc)
        q = label_quality(v, truth, 0.0)[-1]  # the "all" bucket
        precision.append(q.precision)
        recall.append(q.recall)
    a = step_agreement(vals[0], truth)
    low, high = a.auc_interval
    print(f"{name:<52} {a.n_steps:>6} {a.n_good:>5} {np.mean(aucs):>6.3f} [{low:.3f}, {high:.3f}] "
          f"{finite_mean(precision):>9.2f} {finite_mean(recall):>7.2f}", flush=True)


Labelling = tuple[str, int, list[dict[str, Any]]]


def finite_mean(xs: Sequence[float]) -> float:
    kept = [x for x in xs if not np.isnan(x)]
    return float(np.mean(kept)) if kept else float("nan")


def table(labellings: Sequence[Labelling], levels: dict[str, int | None], base: dict[str, float]) -> None:
    """`base`: each problem's share of right samples in the run, the value of its bare prompt."""
    within: list[tuple[str, int, dict[str, list[list[float]]], list[dict[str, Any]], list[list[float]]]] = []
    print(f"\n{'option':<52} {'steps':>6} {'good':>5} {'AUC of value [95% CI]':>22} {'precision':>9} {'recall':>7}")
    print(f"{'':<52} {'(judged)':>6} {'(rules)':>5} {'(soft labels)':>22} {'(hard: value > 0)':>17}")
    for name, k, rows in labellings:
        truth = rule_scores(rows)
        for kk in sorted({x for x in (4, 8, k) if x <= k}):
            draws = 1 if kk == k else DRAWS
            rng = np.random.default_rng(kk)
            line(f"{name} k={kk}", [values(rows, kk, rng) for _ in range(draws)], truth)
        line(f"{name} k={k}, own continuations not counted", [values(rows, k, None, own=False)], truth)
        full = values(rows, k, None)
        for group in ((1, 2), (3, 4)):
            keep = [i for i, r in enumerate(rows) if levels.get(r["id"]) in group]
            if keep:
                line(f"{name} k={k}, levels {group[0]}-{group[1]} only", [[full[i] for i in keep]],
                     [truth[i] for i in keep])
        for threshold in (0.1, 0.25):
            q = label_quality(full, truth, threshold)[-1]
            print(f"{f'{name} k={k}, good when value > {threshold}':<52} {q.n_steps:>6} {q.n_rule_good:>5} "
                  f"{'':>22} {q.precision:>9.2f} {q.recall:>7.2f}", flush=True)
        prior = [[base[r["id"]], *vs[:-1]] for vs, r in zip(full, rows)]
        progress = [[v - p for v, p in zip(vs, ps)] for vs, ps in zip(full, prior)]
        line(f"{name} k={k}, progress (value - previous value)", [progress], truth)
        line(f"{name} k={k}, previous value (blind to the step)", [prior], truth)
        within.append((name, k, {"value": full, "progress": progress, "previous value": prior}, rows, truth))
    name, k, rows = labellings[0]
    # outcome supervision: every step of a candidate labelled by its own final answer (no rollouts at all)
    outcome = [[float(r["own_hits"][-1]) if r["rollouts"][-1] == 0 else 0.0] * len(r["completions"]) for r in rows]
    line("outcome of the candidate (ORM labels, no rollouts)", [outcome], rule_scores(rows))
    if len(labellings) == 2:
        two_sources(*labellings)
    print("\nAUC within problems (every good step against every bad step of the same problem)")
    for name, k, options, rows, truth in within:
        aucs = {option: within_problem_auc(v, rule_labels(truth), [r["id"] for r in rows]) for option, v in options.items()}
        pairs = next(iter(aucs.values())).pairs
        print(f"{name} k={k}: " + ", ".join(f"{option} {w.auc:.3f} [{w.interval[0]:.3f}, {w.interval[1]:.3f}]"
                                            for option, w in aucs.items()) + f" over {pairs} pairs")


def two_sources(a: Labelling, b: Labelling) -> None:
    """Pooled rollouts of both completers, and consensus: only the steps whose hard labels agree."""
    (ta, ka, rows_a), (tb, kb, rows_b) = a, b
    if [(r["id"], r["completions"]) for r in rows_a] != [(r["id"], r["completions"]) for r in rows_b]:
        raise SystemExit("the two labellings cover different candidates (another --max-per-problem?)")
    truth = rule_scores(rows_a)
    pooled = [[(ha + hb + oh) / (na + nb + ot) for ha, na, hb, nb, oh, ot in
               zip(ra["rollout_hits"], ra["rollouts"], rb["rollout_hits"], rb["rollouts"], ra["own_hits"],
                   ra["own_tries"], strict=True)] for ra, rb in zip(rows_a, rows_b)]
    line(f"pooled {ta} + {tb}, k={ka + kb}", [pooled], truth)
    va, vb = values(rows_a, ka, None), values(rows_b, kb, None)
    kept_vals, kept_truth, kept, total = [], [], 0, 0
    for sa, sb, st, sp in zip(va, vb, truth, pooled):
        keep = [j for j in range(len(st)) if (sa[j] > 0) == (sb[j] > 0)]
        kept += sum(rule_label(st[j]) is not None for j in keep)
        total += sum(rule_label(x) is not None for x in st)
        kept_vals.append([sp[j] for j in keep])
        kept_truth.append([st[j] for j in keep])
    line(f"consensus {ta} & {tb} (pooled value)", [kept_vals], kept_truth)
    print(f"consensus keeps {kept} of {total} judged steps ({100 * kept / max(total, 1):.0f}%)")


def main() -> None:
    args = parse()
    if len(args.labels) > 2:
        raise SystemExit(f"--labels takes one or two label-steps outputs, not {len(args.labels)}")
    labellings = [labelled(d) for d in args.labels]
    print(provenance())
    results = read_results(args.train_run)
    levels = {r.id: r.problem.level for r in results}
    base = {r.id: float(np.mean(correct_flags(r))) for r in results}
    print(f"train run {args.train_run}: {len(levels)} problems; labels: " + "; ".join(
        f"{d} ({name}, k={k}, {len(rows)} candidates)" for d, (name, k, rows) in zip(args.labels, labellings)))
    table(labellings, levels, base)


if __name__ == "__main__":
    main()
