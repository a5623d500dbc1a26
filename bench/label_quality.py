"""How good are Monte Carlo step labels before any PRM is trained on them, option by option?

A PRM cannot learn more signal than its labels hold (Zhang et al. 2025, "The Lessons of Developing
Process Reward Models in Mathematical Reasoning": Monte Carlo labels from a weak completer are mostly
noise). This bench labels the candidates of one run once per completer temperature, with k rollouts
per step prefix (`ttscale learn label-steps`), and compares every labelling option it can derive from
those rollouts with the rule verifier's step labels (CORRECT good, WRONG/INVENTED bad, unjudged left out):

- fewer rollouts: k' < k of the k rollouts, drawn without replacement (the labels a k'-rollout run
  would have given), averaged over draws;
- hard labels (Math-Shepherd: good when any try reaches gold) against soft ones (the value itself, as a
  score: its AUC), and thresholds on the value;
- the candidates' own continuations counted as tries, or not;
- pooled rollouts of two completers, and consensus (only steps whose two hard labels agree kept);
- per difficulty level, since a completer that is right more often labels better.

    python bench/label_quality.py --train-run RUN_DIR [--out runs/label_quality] [--temperatures run,0.3]
        [--rollouts 16] [--max-per-problem 4] [--rollout-tokens 48]

RUN_DIR is any finished run of the policy on problems the rules can judge, e.g. bench/learned_prm.py's
train_run, or `ttscale run cpu_arithmetic --set search.n=8 --set "dataset.levels=[1,2,3,4]" ...`.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _common import claim_out, provenance

from ttscale.data.results import read_results
from ttscale.learn.agreement import label_quality, rule_label, step_agreement
from ttscale.learn.common import read_rows
from ttscale.learn.labels import STEPS_JSONL, label_steps
from ttscale.verifiers.arithmetic import ArithmeticRulesVerifier

DRAWS = 20  # subsamples per k' < k; their metrics are averaged


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train-run", required=True, help="a finished run whose candidates are labelled")
    ap.add_argument("--out", default="runs/label_quality")
    ap.add_argument("--fresh", action="store_true", help="discard rows in --out that other code wrote")
    ap.add_argument("--temperatures", default="run,0.3", help="completer temperatures; 'run' = the run's own")
    ap.add_argument("--rollouts", type=int, default=16, help="k rollouts per step prefix (subsampled to 4, 8)")
    ap.add_argument("--max-per-problem", type=int, default=4)
    ap.add_argument("--rollout-tokens", type=int, default=48, help="token cap of one rollout")
    ap.add_argument("--label-only", action="store_true", help="label (resumably) and stop: for parallel jobs")
    return ap.parse_args()


def labelled(args: argparse.Namespace, temperature: str) -> list[dict[str, Any]]:
    out = Path(args.out) / f"labels_T{temperature}"
    t = None if temperature == "run" else float(temperature)
    start = time.perf_counter()
    label_steps(args.train_run, out, args.rollouts, "soft", args.max_per_problem, max_new_tokens=args.rollout_tokens,
                temperature=t)
    print(f"[label-steps T={temperature} k={args.rollouts}] {time.perf_counter() - start:.0f} s", flush=True)
    rows = read_rows(out / STEPS_JSONL)
    missing = [i for i, r in enumerate(rows) if "rollouts" not in r]
    if missing:
        raise SystemExit(f"{out} row {missing[0]} has no rollout tallies (labelled by older code): use another --out")
    return sorted(rows, key=lambda r: (r["id"], r["completions"]))


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
    print(f"{name:<46} {a.n_steps:>6} {a.n_good:>5} {np.mean(aucs):>6.3f} [{low:.3f}, {high:.3f}] "
          f"{np.nanmean(precision):>9.2f} {np.nanmean(recall):>7.2f}", flush=True)


def table(args: argparse.Namespace, by_temp: dict[str, list[dict[str, Any]]], levels: dict[str, int | None]) -> None:
    print(f"\n{'option':<46} {'steps':>6} {'good':>5} {'AUC of value [95% CI]':>22} {'precision':>9} {'recall':>7}")
    print(f"{'':<46} {'(judged)':>6} {'(rules)':>5} {'(soft labels)':>22} {'(hard: value > 0)':>17}")
    k = args.rollouts
    for temp, rows in by_temp.items():
        truth = rule_scores(rows)
        for kk in sorted({x for x in (4, 8, k) if x <= k}):
            draws = 1 if kk == k else DRAWS
            rng = np.random.default_rng(kk)
            line(f"T={temp} k={kk}", [values(rows, kk, rng) for _ in range(draws)], truth)
        line(f"T={temp} k={k}, own continuations not counted", [values(rows, k, None, own=False)], truth)
        for group in ((1, 2), (3, 4)):
            keep = [i for i, r in enumerate(rows) if levels.get(r["id"]) in group]
            if keep:
                line(f"T={temp} k={k}, levels {group[0]}-{group[1]} only", [[values(rows, k, None)[i] for i in keep]],
                     [truth[i] for i in keep])
        full = values(rows, k, None)
        for threshold in (0.1, 0.25):
            q = label_quality(full, truth, threshold)[-1]
            print(f"{f'T={temp} k={k}, good when value > {threshold}':<46} {q.n_steps:>6} {q.n_rule_good:>5} "
                  f"{'':>22} {q.precision:>9.2f} {q.recall:>7.2f}", flush=True)
    if len(by_temp) == 2:
        two_sources(args, *by_temp.items())


def two_sources(args: argparse.Namespace, a: tuple[str, list[dict[str, Any]]], b: tuple[str, list[dict[str, Any]]]
                ) -> None:
    """Pooled rollouts of both completers, and consensus: only the steps whose hard labels agree."""
    (ta, rows_a), (tb, rows_b) = a, b
    if [(r["id"], r["completions"]) for r in rows_a] != [(r["id"], r["completions"]) for r in rows_b]:
        raise SystemExit("the two labellings cover different candidates (another --max-per-problem?)")
    truth = rule_scores(rows_a)
    pooled = [[(ha + hb + oh) / (na + nb + ot) for ha, na, hb, nb, oh, ot in
               zip(ra["rollout_hits"], ra["rollouts"], rb["rollout_hits"], rb["rollouts"], ra["own_hits"],
                   ra["own_tries"], strict=True)] for ra, rb in zip(rows_a, rows_b)]
    line(f"pooled T={ta} + T={tb}, k={2 * args.rollouts}", [pooled], truth)
    va, vb = values(rows_a, args.rollouts, None), values(rows_b, args.rollouts, None)
    kept_vals, kept_truth, kept, total = [], [], 0, 0
    for sa, sb, st, sp in zip(va, vb, truth, pooled):
        keep = [j for j in range(len(st)) if (sa[j] > 0) == (sb[j] > 0)]
        kept += sum(rule_label(st[j]) is not None for j in keep)
        total += sum(rule_label(x) is not None for x in st)
        kept_vals.append([sp[j] for j in keep])
        kept_truth.append([st[j] for j in keep])
    line(f"consensus T={ta} & T={tb} (pooled value)", [kept_vals], kept_truth)
    print(f"consensus keeps {kept} of {total} judged steps ({100 * kept / max(total, 1):.0f}%)")


def main() -> None:
    args = parse()
    claim_out(Path(args.out), args.fresh)
    temps = [t for t in args.temperatures.split(",") if t]
    by_temp = {t: labelled(args, t) for t in temps}
    if args.label_only:
        return
    print(provenance())
    levels = {r.id: r.problem.level for r in read_results(args.train_run)}
    print(f"train run {args.train_run}: {len(levels)} problems; k={args.rollouts} rollouts of up to "
          f"{args.rollout_tokens} tokens per step prefix, up to {args.max_per_problem} candidates per problem")
    table(args, by_temp, levels)


if __name__ == "__main__":
    main()
