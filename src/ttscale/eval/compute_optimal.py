"""Compute-optimal selection (Snell et al. 2024, sec. 3.2): per difficulty bin and budget N,
the (strategy, hyper-parameters) with the best accuracy.

Choosing and scoring on the same problems flatters the selector (it is never below
the best fixed strategy there, by construction), so the number we report is 2-fold
cross-validated over problems: choose on one half, score on the other. The policy
saved for `ttscale run --strategy compute_optimal` is fitted on every problem.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ttscale.errors import ConfigError
from ttscale.eval.difficulty import assign_bin
from ttscale.eval.metrics import Point

# Solutions sampled per new problem to estimate its model-based bin. Small on purpose: the
# probe is overhead on top of the chosen strategy; the policy file records it so users can raise it.
PROBE_N = 4


def best(points: Sequence[Point], ids: Sequence[str]) -> Point:
    """The most accurate point on `ids`; ties go to the cheaper one (FLOPs, then tokens), then the first."""
    return max(points, key=lambda p: (round(p.accuracy(ids), 12), -p.mean_flops(ids), -p.mean_tokens(ids)))


def fit(points: Sequence[Point], bins: dict[str, int], train: Sequence[str]) -> tuple[dict[int, Point], Point]:
    """Per bin the best point on the training problems of that bin, and the best overall (for empty bins)."""
    chosen = {b: best(points, [i for i in train if bins[i] == b]) for b in sorted({bins[i] for i in train})}
    return chosen, best(points, train)


@dataclass(frozen=True)
class Score:
    accuracy: float
    tokens: float
    flops: float


def apply(chosen: dict[int, Point], fallback: Point, bins: dict[str, int], ids: Sequence[str]) -> Score:
    """Each problem answered by its bin's choice; its correctness and compute averaged."""
    picks = [(chosen.get(bins[i], fallback), i) for i in ids]
    n = len(picks) or 1
    return Score(
        sum(p.correct[i] for p, i in picks) / n,
        sum(p.tokens[i] for p, i in picks) / n,
        sum(p.flops[i] for p, i in picks) / n,
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
) -> dict[str, Any]:
    """The compute-optimal curve: cross-validated, in-sample, per fold, and the best fixed point beside it."""
    split = folds(bins, ids, k, seed)
    out: dict[str, Any] = {"cv": [], "in_sample": [], "best_fixed": [], "folds": [], "choices": {}}
    for n, points in sorted(points_by_n.items()):
        held_out = []
        for f, test in enumerate(split):
            train = [i for j, part in enumerate(split) if j != f for i in part]
            if not train or not test:
                continue
            chosen, overall = fit(points, bins, train)
            fixed = best(points, train)
            score = apply(chosen, overall, bins, test)
            held_out.append((len(test), score))
            out["folds"].append({
                "fold": f, "n": n, "train_accuracy": apply(chosen, overall, bins, train).accuracy,
                "best_fixed_train_accuracy": fixed.accuracy(train), "best_fixed_method": fixed.method,
                "test_accuracy": score.accuracy, "best_fixed_test_accuracy": fixed.accuracy(test),
            })
        if held_out:
            total = sum(m for m, _ in held_out)
            out["cv"].append({"n": n, **{
                key: sum(m * getattr(s, key) for m, s in held_out) / total for key in ("accuracy", "tokens", "flops")
            }})
        chosen, overall = fit(points, bins, ids)
        out["in_sample"].append({"n": n, **asdict(apply(chosen, overall, bins, ids))})
        fixed = best(points, ids)
        out["best_fixed"].append({"n": n, "method": fixed.method, "accuracy": fixed.accuracy(ids)})
        out["choices"][n] = {b: p.method for b, p in chosen.items()}
    return out


@dataclass(frozen=True)
class PolicyEntry:
    """What to run for one (budget, bin): a registered strategy and the SearchSettings fields to replace."""

    method: str
    strategy: str
    settings: dict[str, Any]
    accuracy: float = 0.0  # in-sample accuracy in its bin, for reading the file


@dataclass(frozen=True)
class Policy:
    """The learned bin -> strategy table (policy.json), with the model-based bin edges it needs."""

    edges: tuple[float, ...]
    reduction: str
    budgets: dict[int, dict[int, PolicyEntry]]
    probe_n: int = PROBE_N
    meta: dict[str, Any] = field(default_factory=dict)

    def bin_of(self, mean_score: float) -> int:
        return assign_bin(mean_score, self.edges)

    def for_budget(self, n: int) -> dict[int, PolicyEntry]:
        """The table of the largest budget <= n, else the smallest one."""
        fitting = [b for b in self.budgets if b <= n]
        return self.budgets[max(fitting) if fitting else min(self.budgets)]

    def choose(self, n: int, b: int) -> PolicyEntry:
        """The entry for budget n and bin b; a bin no training problem fell in takes the nearest bin's."""
        table = self.for_budget(n)
        return table.get(b) or table[min(table, key=lambda k: (abs(k - b), k))]

    def to_dict(self) -> dict[str, Any]:
        return {
            "binning": "model",
            "edges": list(self.edges),
            "reduction": self.reduction,
            "probe_n": self.probe_n,
            "budgets": {str(n): {str(b): asdict(e) for b, e in t.items()} for n, t in sorted(self.budgets.items())},
            "meta": self.meta,
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path | None) -> Policy:
        if path is None:
            raise ConfigError("search.strategy=compute_optimal needs search.policy (a policy.json from `ttscale evaluate`)")
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
            budgets = {
                int(n): {int(b): PolicyEntry(**e) for b, e in table.items()} for n, table in raw["budgets"].items()
            }
            policy = cls(tuple(raw["edges"]), raw["reduction"], budgets, int(raw.get("probe_n", PROBE_N)),
                         raw.get("meta", {}))
        except FileNotFoundError:
            raise ConfigError(f"search.policy={str(path)!r}: file not found; write one with `ttscale evaluate`") from None
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"search.policy={str(path)!r} is not a policy.json from `ttscale evaluate` ({e})") from None
        if not policy.budgets:
            raise ConfigError(f"search.policy={str(path)!r} holds no budgets")
        return policy
