"""Fitting `verifier.calibration` on graded runs: the chance that a solution is right given its
verifier score, so that weighted voting sums chances (verifiers/calibration.py says why).

The fit is isotonic regression by pool-adjacent-violators (the calibration of Zadrozny & Elkan 2002):
candidates are grouped by their last step's score rounded to 0.01, and neighbouring groups whose rate
of right answers falls as the score rises are pooled until it never does. Each group's rate is
smoothed by half a right and half a wrong answer (Jeffreys' prior): a level seen three times and never
right keeps a small weight instead of none, which would silence its candidates' votes outright.
Fit on problems other than those it will pick for (another split or another seed of the dataset).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ttscale.errors import ConfigError
from ttscale.eval.evaluate import load_run
from ttscale.grading.select import solution_score
from ttscale.grading.vote import solution_key

SCORE_STEP = 2  # decimals a score is rounded to before grouping: a PRM's continuous scores into <= 101 groups
PRIOR = 0.5


@dataclass(frozen=True)
class Block:
    """Candidates whose (rounded) scores lie in [low, high], pooled: `right` of `n` answered rightly."""

    low: float
    high: float
    n: int
    right: int

    @property
    def chance(self) -> float:
        return (self.right + PRIOR) / (self.n + 2 * PRIOR)


@dataclass(frozen=True)
class Fit:
    knots: list[list[float]]
    blocks: list[Block]
    verifier: str
    n_problems: int

    @property
    def n_candidates(self) -> int:
        return sum(b.n for b in self.blocks)


def fit_blocks(pairs: Iterable[tuple[float, bool]]) -> list[Block]:
    """The isotonic fit of P(right | score) over (score, right) pairs, as blocks of increasing chance."""
    counts: dict[float, list[int]] = {}
    for score, ok in pairs:
        seen = counts.setdefault(round(score, SCORE_STEP), [0, 0])
        seen[0] += 1
        seen[1] += bool(ok)
    blocks: list[Block] = []
    for score in sorted(counts):
        n, right = counts[score]
        blocks.append(Block(score, score, n, right))
        while len(blocks) > 1 and blocks[-2].chance >= blocks[-1].chance:
            b, a = blocks.pop(), blocks.pop()
            blocks.append(Block(a.low, b.high, a.n + b.n, a.right + b.right))
    return blocks


def knots_of(blocks: Sequence[Block]) -> list[list[float]]:
    """`verifier.calibration` for the blocks: each block's chance at its lowest and highest score."""
    knots: list[list[float]] = []
    for b in blocks:
        chance = round(b.chance, 4)
        knots.append([b.low, chance])
        if b.high > b.low:
            knots.append([b.high, chance])
    return knots


def fit_runs(run_dirs: Sequence[str | Path]) -> Fit:
    """The fit over every answered candidate of the runs (one verifier, raw scores), each scored by its
    last step; a tree search's repeated candidate counts once, as its own vote counted it."""
    pairs: list[tuple[float, bool]] = []
    verifiers: set[tuple[str, str | None]] = set()
    n_problems = 0
    for path in run_dirs:
        run = load_run(path)
        section = run.config.get("verifier") or {}
        name, model = section.get("name", "none"), section.get("model")
        if name == "none":
            raise ConfigError(f"{path}: the run has no verifier (verifier.name: none), so no scores to calibrate")
        if section.get("calibration") is not None:
            raise ConfigError(f"{path}: its scores are calibrated already (verifier.calibration is set); "
                              "fit on a run with the verifier's raw scores")
        verifiers.add((name, model))
        for r in run.results:
            if r.error is not None:
                continue
            n_problems += 1
            seen: set[str] = set()
            for c, ok in zip(r.completions, run.correct[r.id]):
                if c.dropped is not None or not c.step_scores or c.answer is None:
                    continue
                if r.distinct:
                    if (key := solution_key(c.text)) in seen:
                        continue
                    seen.add(key)
                pairs.append((solution_score(c, "last"), ok))
    if len(verifiers) > 1:
        named = ", ".join(sorted(f"{n}({m})" if m else n for n, m in verifiers))
        raise ConfigError(f"the runs were scored by different verifiers ({named}); fit one calibration per verifier")
    if not pairs:
        raise ConfigError("the runs hold no scored candidate with an answer to fit on")
    blocks = fit_blocks(pairs)
    (name, model), = verifiers
    return Fit(knots_of(blocks), blocks, f"{name}({model})" if model else name, n_problems)


def format_fit(fit: Fit) -> str:
    """The blocks as a table, then the setting to use."""
    lines = [f"fitted on {fit.n_candidates} answered candidates of {fit.n_problems} problems, verifier "
             f"{fit.verifier}, last-step scores",
             f"{'scores':<13} {'candidates':>10} {'right':>6} {'chance':>7}"]
    for b in fit.blocks:
        span = f"{b.low:.2f}" if b.high == b.low else f"{b.low:.2f}-{b.high:.2f}"
        lines.append(f"{span:<13} {b.n:>10} {b.right:>6} {b.chance:>7.3f}")
    setting = "[" + ", ".join(f"[{s:g}, {c:g}]" for s, c in fit.knots) + "]"
    lines.append(f"\nverifier.calibration: {setting}")
    lines.append(f'(on the command line: --set "verifier.calibration={setting.replace(" ", "")}")')
    return "\n".join(lines)
