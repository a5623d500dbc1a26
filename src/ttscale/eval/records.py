"""The evaluation's plain records: what `evaluate_runs` returns, what the report and the plots read by
attribute, and what metrics.json serialises through `to_dict`. Frozen dataclasses, not nested dicts, so a
reader sees every field and a misspelt one fails where it is written."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ttscale.data.policy import Policy
from ttscale.eval.metrics import Point


@dataclass
class Curve:
    """One method's points at increasing N, and the SearchSettings fields that reproduce each point."""

    method: str
    # vote (subsampled selection) | search (a strategy's own pick) | repick (another pick over a search's
    # candidates) | pass (oracle upper bound)
    kind: str
    strategy: str
    points: list[Point] = field(default_factory=list)
    settings: dict[int, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "strategy": self.strategy, "points": [
            {"n": p.n, "accuracy": p.accuracy(), "ci": list(p.interval()), "std": p.std,
             "seeds": len(p.seed_accuracy) or 1, "tokens": p.mean_tokens(), "flops": p.mean_flops(),
             **({"thinking_tokens": p.mean_thinking()} if p.mean_thinking() > 0 else {})}
            for p in self.points
        ]}


def method_colors(curves: Sequence[Curve], palette: Sequence[str], fallback: str) -> dict[str, str]:
    """One colour per method, the same in every figure and page; a pass@N curve takes its method group's
    colour (its group is the method name without `:pass`), or `fallback` when no method of it is drawn."""
    names = [c.method for c in curves if c.kind != "pass"]
    out = {m: palette[i % len(palette)] for i, m in enumerate(names)}
    for c in curves:
        if c.kind == "pass":
            group = c.method.removesuffix(":pass")
            out[c.method] = next((out[m] for m in names if m == group or m.startswith(group + ":")), fallback)
    return out


@dataclass(frozen=True)
class RunSummary:
    dir: str
    strategy: str
    n: int
    reduction: str
    n_problems: int
    n_failed: int
    accuracy: float  # the run's own pick; failed problems count as wrong
    ci: tuple[float, float]


# What each kind of difficulty bin is cut by (Snell et al. 2024, sec. 3.2: oracle bins need the gold
# answer, model-predicted bins only the verifier).
BIN_SCORES = {"oracle": "pass@1 against the gold answer", "model": "mean verifier score (no gold)"}


@dataclass(frozen=True)
class BinTable:
    """Accuracy per difficulty bin: method -> N -> bin (1 = easiest) -> accuracy."""

    edges: tuple[float, ...]
    counts: dict[int, int]
    accuracy: dict[str, dict[int, dict[int, float]]]

    @property
    def n_bins(self) -> int:
        return len(self.edges) + 1

    def rows(self, curves: Sequence[Curve]) -> list[tuple[str, list[float | None]]]:
        """`method@N` at each method's largest N, and its accuracy in bins 1..n_bins (None: no problem there)."""
        out = []
        for c in curves:
            n = c.points[-1].n
            per_bin = self.accuracy[c.method][n]
            out.append((f"{c.method}@{n}", [per_bin.get(b) for b in range(1, self.n_bins + 1)]))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"edges": list(self.edges), "counts": {str(b): n for b, n in self.counts.items()},
                "accuracy": {m: {str(n): {str(b): a for b, a in per.items()} for n, per in by_n.items()}
                             for m, by_n in self.accuracy.items()}}


@dataclass(frozen=True)
class Score:
    """Accuracy and mean compute per problem of a selection at one budget N."""

    n: int
    accuracy: float
    tokens: float
    flops: float


@dataclass(frozen=True)
class FixedBest:
    n: int
    method: str
    accuracy: float


@dataclass(frozen=True)
class Fold:
    fold: int
    n: int
    train_accuracy: float
    best_fixed_train_accuracy: float
    best_fixed_method: str
    test_accuracy: float
    best_fixed_test_accuracy: float


@dataclass(frozen=True)
class CrossValidation:
    """The compute-optimal curve: cross-validated, in-sample, per fold, the best fixed point, the choices."""

    cv: tuple[Score, ...]
    in_sample: tuple[Score, ...]
    best_fixed: tuple[FixedBest, ...]
    folds: tuple[Fold, ...]
    choices: dict[int, dict[int, str]]  # N -> bin -> method, fitted on every problem

    def to_dict(self) -> dict[str, Any]:
        return {"cv": [asdict(s) for s in self.cv], "in_sample": [asdict(s) for s in self.in_sample],
                "best_fixed": [asdict(b) for b in self.best_fixed], "folds": [asdict(f) for f in self.folds],
                "choices": {str(n): {str(b): m for b, m in c.items()} for n, c in self.choices.items()}}


@dataclass(frozen=True)
class Evaluation:
    """Every number of an evaluation and the curves they came from."""

    runs: tuple[RunSummary, ...]
    curves: tuple[Curve, ...]
    by_level: dict[str, dict[str, dict[str, float]]]  # method@N -> level -> {n, accuracy}
    by_subject: dict[str, dict[str, dict[str, float]]]
    difficulty: dict[str, BinTable]  # oracle | model
    compute_optimal: dict[str, CrossValidation]
    references: dict[str, float]
    policy: Policy | None = None

    def to_dict(self) -> dict[str, Any]:
        """metrics.json: the same layout whatever produced it, so a later reader needs no code of ours."""
        out: dict[str, Any] = {
            "runs": [asdict(r) for r in self.runs],
            "curves": {c.method: c.to_dict() for c in self.curves},
            "by_level": self.by_level,
            "by_subject": self.by_subject,
            "difficulty": {k: t.to_dict() for k, t in self.difficulty.items()},
            "compute_optimal": {k: cv.to_dict() for k, cv in self.compute_optimal.items()},
            "references": dict(self.references),
        }
        if self.policy is not None:
            out["policy"] = self.policy.to_dict()
        return out
