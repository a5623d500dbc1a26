"""How often a trained PRM agrees with a reference verifier's step labels: whether training taught it the rules.

The reference is the rule verifier: a step it scores CORRECT is a good step, one it
scores WRONG or INVENTED a bad one; a step it cannot judge (NO_ARITHMETIC) has no
label and is left out. The PRM says "good" when its score is at least `threshold`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ttscale.verifiers.arithmetic import CORRECT, NO_ARITHMETIC


@dataclass(frozen=True)
class Agreement:
    """accuracy: share of labelled steps the PRM gets right; baseline: always guessing the commoner
    label; auc: the chance that a good step outscores a bad one (0.5 = no signal, ties count half);
    auc_interval: its 95% bootstrap interval, resampling whole solutions (a solution's steps are not
    independent draws)."""

    n_steps: int
    n_good: int
    accuracy: float
    baseline: float
    auc: float
    auc_interval: tuple[float, float] = (float("nan"), float("nan"))


def rule_label(score: float) -> bool | None:
    if score == NO_ARITHMETIC:
        return None
    return score == CORRECT


def step_agreement(prm: Sequence[Sequence[float]], rules: Sequence[Sequence[float]], threshold: float = 0.5) -> Agreement:
    """Agreement over every step of every solution; `prm[i][j]` and `rules[i][j]` score the same step."""
    solutions = [[(p, label) for p, r in zip(ps, rs, strict=True) if (label := rule_label(r)) is not None]
                 for ps, rs in zip(prm, rules, strict=True)]
    pairs = [x for sol in solutions for x in sol]
    if not pairs:
        return Agreement(0, 0, float("nan"), float("nan"), float("nan"))
    good = [p for p, label in pairs if label]
    right = sum((p >= threshold) == label for p, label in pairs)
    return Agreement(len(pairs), len(good), right / len(pairs), max(len(good), len(pairs) - len(good)) / len(pairs),
                     _auc(pairs), _auc_interval([sol for sol in solutions if sol]))


def _auc(pairs: Sequence[tuple[float, bool]]) -> float:
    import numpy as np

    good = np.array([p for p, label in pairs if label], dtype=float)
    bad = np.array([p for p, label in pairs if not label], dtype=float)
    if not good.size or not bad.size:
        return float("nan")
    return float((good[:, None] > bad[None, :]).mean() + 0.5 * (good[:, None] == bad[None, :]).mean())


def _auc_interval(solutions: Sequence[Sequence[tuple[float, bool]]], n_boot: int = 1000,
                  seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap over solutions, seeded so a report is the same every time."""
    import numpy as np

    rng = np.random.default_rng(seed)
    draws = [_auc([x for i in rng.integers(0, len(solutions), len(solutions)) for x in solutions[i]])
             for _ in range(n_boot)]
    kept = [d for d in draws if not np.isnan(d)]
    if not kept:
        return float("nan"), float("nan")
    low, high = np.percentile(kept, [2.5, 97.5])
    return float(low), float(high)


@dataclass(frozen=True)
class WithinProblems:
    """How often a good item (a step the rules call good, a candidate graded right) outscores a bad one
    *of the same problem*, over every such pair (ties count half). Search compares the steps of one
    problem against each other, so this is the AUC it feels; the pooled AUC of `step_agreement` also
    rewards a score that only tells easy problems from hard ones. interval: 95% bootstrap interval
    resampling whole problems."""

    auc: float
    pairs: int
    problems: int
    interval: tuple[float, float] = (float("nan"), float("nan"))


def rule_labels(rules: Sequence[Sequence[float]]) -> list[list[bool | None]]:
    return [[rule_label(r) for r in rs] for rs in rules]


def within_problem_auc(scores: Sequence[Sequence[float]], labels: Sequence[Sequence[bool | None]],
                       problems: Sequence[str], n_boot: int = 1000, seed: int = 0) -> WithinProblems:
    """`scores[i][j]` scores item j of solution i, a solution of problem `problems[i]`, and `labels[i][j]`
    says whether it is good (None: unjudged, left out). Items are steps (labels: `rule_labels`) or whole
    candidates (one item a solution, labelled by its grade). Problems without both a good and a bad
    item hold no pair and are left out."""
    import numpy as np

    by_problem: dict[str, tuple[list[float], list[float]]] = {}
    for ss, ls, problem in zip(scores, labels, problems, strict=True):
        good, bad = by_problem.setdefault(problem, ([], []))
        for s, label in zip(ss, ls, strict=True):
            if label is not None:
                (good if label else bad).append(s)
    counts = []  # (wins, pairs) per problem that has both
    for good, bad in by_problem.values():
        if good and bad:
            g, b = np.array(good, dtype=float)[:, None], np.array(bad, dtype=float)[None, :]
            counts.append((float((g > b).sum() + 0.5 * (g == b).sum()), g.size * b.size))
    if not counts:
        return WithinProblems(float("nan"), 0, 0)
    wins, pairs = np.array(counts).T
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(counts), (n_boot, len(counts)))
    low, high = np.percentile(wins[draws].sum(1) / pairs[draws].sum(1), [2.5, 97.5])
    return WithinProblems(float(wins.sum() / pairs.sum()), int(pairs.sum()), len(counts), (float(low), float(high)))


@dataclass(frozen=True)
class LabelQuality:
    """How well one set of training labels ("good" when a step's Monte Carlo value is above
    `threshold`) matches the rule labels, over steps of one position bucket: precision and recall of
    "good" (Math-Shepherd's hard estimation is threshold 0; Zhang et al. 2025, "The Lessons of
    Developing Process Reward Models", find such labels mostly noisy when the policy is weak)."""

    position: str
    n_steps: int
    n_rule_good: int
    n_label_good: int
    precision: float
    recall: float


def label_quality(values: Sequence[Sequence[float]], rules: Sequence[Sequence[float]], threshold: float = 0.0,
                  buckets: Sequence[int] = (1, 2, 3)) -> list[LabelQuality]:
    """Per step position (with the default buckets: steps 1 and 2 each, then "3+" for the rest) and
    over all steps; `values[i][j]` is the Monte Carlo value of solution i's step j, `rules[i][j]` its rule score.
    Steps the rules cannot judge are left out, as in `step_agreement`."""
    last = max(buckets)
    by_pos: dict[str, list[tuple[bool, bool]]] = {}
    for vs, rs in zip(values, rules, strict=True):
        for j, (v, r) in enumerate(zip(vs, rs, strict=True), start=1):
            if (truth := rule_label(r)) is None:
                continue
            key = str(j) if j < last else f"{last}+"
            pair = (v > threshold, truth)
            by_pos.setdefault(key, []).append(pair)
            by_pos.setdefault("all", []).append(pair)
    order = [str(b) for b in buckets if b < last] + [f"{last}+", "all"]
    return [_quality(key, by_pos[key]) for key in order if key in by_pos]


def _quality(position: str, pairs: Sequence[tuple[bool, bool]]) -> LabelQuality:
    said = sum(said for said, _ in pairs)
    truly = sum(truth for _, truth in pairs)
    hits = sum(said and truth for said, truth in pairs)
    nan = float("nan")
    return LabelQuality(position, len(pairs), truly, said, hits / said if said else nan, hits / truly if truly else nan)
