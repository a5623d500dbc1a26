"""How often a trained PRM agrees with a reference verifier's step labels (issue 16).

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
    label; auc: the chance that a good step outscores a bad one (0.5 = no signal, ties count half)."""

    n_steps: int
    n_good: int
    accuracy: float
    baseline: float
    auc: float


def rule_label(score: float) -> bool | None:
    if score == NO_ARITHMETIC:
        return None
    return score == CORRECT


def step_agreement(prm: Sequence[Sequence[float]], rules: Sequence[Sequence[float]], threshold: float = 0.5) -> Agreement:
    """Agreement over every step of every solution; `prm[i][j]` and `rules[i][j]` score the same step."""
    pairs = [(p, label) for ps, rs in zip(prm, rules, strict=True) for p, r in zip(ps, rs, strict=True)
             if (label := rule_label(r)) is not None]
    if not pairs:
        return Agreement(0, 0, float("nan"), float("nan"), float("nan"))
    good = [p for p, label in pairs if label]
    bad = [p for p, label in pairs if not label]
    right = sum((p >= threshold) == label for p, label in pairs)
    wins = sum(1.0 if g > b else 0.5 if g == b else 0.0 for g in good for b in bad)
    auc = wins / (len(good) * len(bad)) if good and bad else float("nan")
    return Agreement(len(pairs), len(good), right / len(pairs), max(len(good), len(bad)) / len(pairs), auc)
