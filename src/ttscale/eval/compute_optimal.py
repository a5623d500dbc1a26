"""Compute-optimal selection (Snell et al. 2024, sec. 3.2): per difficulty bin and budget N,
the (strategy, hyper-parameters) with the best accuracy.

Choosing and scoring on the same problems flatters the selector (it is never below
the best fixed strategy there, by construction), so the number we report is 2-fold
cross-validated over problems: choose on one half, score on the other. The policy
saved for `ttscale run --strategy compute_optimal` is fitted on every problem.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ttscale.eval.metrics import Point
from ttscale.eval.records import CrossValidation, FixedBest, Fold, Score


def best(points: Sequence[Point], ids: Sequence[str]) -> Point:
    """The most accurate point on `ids`; ties go to the cheaper one (FLOPs, then tokens), then the first."""
    return max(points, key=lambda p: (round(p.accuracy(ids), 12), -p.mean_flops(ids), -p.mean_tokens(ids)))


def fit(points: Sequence[Point], bins: dict[str, int], train: Sequence[str]) -> tuple[dict[int, Point], Point]:
    """Per bin the best point on the training problems of that bin, and the best overall (for empty bins)."""
    chosen = {b: best(points, [i for i in train if bins[i] == b]) for b in sorted({bins[i] for i in train})}
    return chosen, best(points, train)


def apply(chosen: dict[int, Point], fallback: Point, bins: dict[str, int], ids: Sequence[str], n: int = 0) -> Score:
    """Each problem answered by its bin's choice; its correctness and compute averaged (at budget n)."""
    picks = [(chosen.get(bins[i], fallback), i) for i in ids]
    m = len(picks) or 1
    return Score(
        n,
        sum(p.correct[i] for p, i in picks) / m,
        sum(p.tokens[i] for p, i in picks) / m,
        sum(p.flops[i] for p, i in picks) / m,
    )


def folds(bins: dict[str, int], ids: Sequence[str], k: int = 2, seed: int = 0) -> list[list[str]]:
    """k folds of problem ids, stratified by bin so every bin is seen when choosing."""
    rng = random.Random(seed)
    out: list[list[str]] = [[] for _ in range(k)]
    turn = 0
    for b in sorted({bins[i] for i in ids}):
        members = sorted(i for i in ids if bins[i] == b)
        rng.shuffle(members)
        for pid in members:
            out[turn % k].append(pid)
            turn += 1
    return out


def cross_validate(
    points_by_n: dict[int, list[Point]], bins: dict[str, int], ids: Sequence[str], k: int = 2, seed: int = 0
) -> CrossValidation:
    """The compute-optimal curve: cross-validated, in-sample, per fold, and the best fixed point beside it."""
    split = folds(bins, ids, k, seed)
    cv, in_sample, best_fixed, fold_rows, choices = [], [], [], [], {}
    for n, points in sorted(points_by_n.items()):
        held_out = []
        for f, test in enumerate(split):
            train = [i for j, part in enumerate(split) if j != f for i in part]
            if not train or not test:
                continue
            chosen, overall = fit(points, bins, train)
            fixed = best(points, train)
            score = apply(chosen, overall, bins, test, n)
            held_out.append((len(test), score))
            fold_rows.append(Fold(f, n, apply(chosen, overall, bins, train, n).accuracy, fixed.accuracy(train),
                                  fixed.method, score.accuracy, fixed.accuracy(test)))
        if held_out:
            total = sum(m for m, _ in held_out)
            cv.append(Score(n, *(sum(m * getattr(s, key) for m, s in held_out) / total
                                 for key in ("accuracy", "tokens", "flops"))))
        chosen, overall = fit(points, bins, ids)
        in_sample.append(apply(chosen, overall, bins, ids, n))
        fixed = best(points, ids)
        best_fixed.append(FixedBest(n, fixed.method, fixed.accuracy(ids)))
        choices[n] = {b: p.method for b, p in chosen.items()}
    return CrossValidation(tuple(cv), tuple(in_sample), tuple(best_fixed), tuple(fold_rows), choices)
