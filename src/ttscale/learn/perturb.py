"""Step labels without rollouts: a right solution's steps are good, and each of them with one number
changed is bad.

Monte Carlo labels (`label_steps`) call a prefix good only when the policy finishes it right. With a
policy right on 5% of its samples most good prefixes are labelled bad, and late steps are labelled
good only in the few right solutions, so a PRM trained on them learns where a step is more than what
it says. A right solution's own steps are free and mostly good (its outcome vouches for them); the
same step with one number changed is, with few exceptions, bad: a wrong result, or an operand or
quantity that is not the problem's. Each such pair differs in one number and nothing else, which is
what a verifier of arithmetic must tell apart, and the pair's context (the question and the right
steps before it) is shared, so the PRM cannot tell them apart by position or difficulty.

The change knows nothing about arithmetic: any number of the step may be changed (the "Step k:"
header aside, which numbers steps and is not a claim) to a nearby different one. The steps before the
changed one are context in its row (null labels, out of the loss: they are already counted in the
solution's own row), and the steps after it are dropped.

Whether a PRM learns that contrast is an empirical matter: SmolLM2-135M with a 2-class head, trained on
these rows for 300 steps on 2 cores, did not (its loss stayed at chance; bench/learned_prm.py
--train-on perturbed, results in the README).

Rows are TRL's stepwise-supervision format (prompt, completions, labels) plus the problem's `id`, as
`train_prm` reads them; `ttscale learn perturb-steps` writes them from search runs.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttscale.errors import ConfigError, RunDirError
from ttscale.learn.common import append_rows, read_run
from ttscale.learn.labels import pick_candidates
from ttscale.search.steps import clean_step
from ttscale.types import ProblemResult

_NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")
_HEADER = re.compile(r"^\W*step\s*\d+\s*[:.]", re.IGNORECASE)


@dataclass(frozen=True)
class Solution:
    """One sampled solution: the question, its steps (delimiter removed), and whether its answer is right."""

    id: str
    prompt: str
    steps: tuple[str, ...]
    right: bool


def changed_number(text: str, rng: random.Random) -> str:
    """`text` (a number as written) as a different nearby non-negative number of the same form: small
    numbers move by 1-3, larger ones by up to a tenth, the way a slipped computation is off."""
    if "." in text:
        whole, frac = text.split(".")
        digit = int(frac[-1])
        return f"{whole}.{frac[:-1]}{(digit + rng.randint(1, 9)) % 10}"
    value = int(text.replace(",", ""))
    spread = max(3, value // 10)
    offsets = [d for d in range(-spread, spread + 1) if d != 0 and value + d >= 0]
    changed = value + rng.choice(offsets)
    return f"{changed:,}" if "," in text else str(changed)


def perturb_step(step: str, rng: random.Random) -> str | None:
    """The step with one of its numbers (drawn uniformly) changed; None when it states no number."""
    header = _HEADER.match(step)
    start = header.end() if header else 0
    spots = [m for m in _NUMBER.finditer(step) if m.start() >= start]
    if not spots:
        return None
    m = rng.choice(spots)
    return step[: m.start()] + changed_number(m.group(), rng) + step[m.end():]


def perturbed_rows(solutions: Iterable[Solution], copies: int = 1, seed: int = 0) -> list[dict[str, Any]]:
    """Training rows from the right solutions: each one with every step good, then for each of its steps
    that states a number up to `copies` rows (distinct changes) ending in that step changed (labelled
    bad, the steps before it context). Wrong solutions give nothing: which of their steps went wrong is
    what is not known."""
    if copies < 1:
        raise ConfigError(f"copies={copies} is invalid; accepted: an integer >= 1")
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for s in solutions:
        if not s.right or not s.steps or (s.prompt, s.steps) in seen:
            continue
        seen.add((s.prompt, s.steps))
        rows.append({"id": s.id, "prompt": s.prompt, "completions": list(s.steps), "labels": [True] * len(s.steps)})
        for i, step in enumerate(s.steps):
            made: dict[str, None] = {}
            for _ in range(4 * copies):  # a step with one small number has few distinct changes
                if len(made) == copies or (bad := perturb_step(step, rng)) is None:
                    break
                made.setdefault(bad, None)
            rows.extend({"id": s.id, "prompt": s.prompt, "completions": [*s.steps[:i], bad],
                         "labels": [None] * i + [False]} for bad in made)
    return rows


def solutions(results: Iterable[ProblemResult], delimiter: str) -> list[Solution]:
    """The distinct candidates of results that finished (as label-steps picks them) with their gold verdicts."""
    return [Solution(r.id, r.problem.question, tuple(clean_step(x, delimiter) for x in c.steps), ok)
            for r in results if r.error is None for c, ok in pick_candidates(r, None)]


def run_solutions(run_dir: str | Path) -> list[Solution]:
    """A run's distinct candidates with their gold verdicts, its steps split by its own delimiter."""
    cfg, results = read_run(run_dir)
    return solutions(results, cfg.search.step_delimiter)


def perturb_steps(run_dirs: Sequence[str | Path], output: str | Path, copies: int = 1, seed: int = 0) -> int:
    """Write the perturbed rows of the runs' solutions to OUTPUT (a new .jsonl); the number of rows."""
    out = Path(output)
    if out.suffix != ".jsonl":
        raise ConfigError(f"--output {out} is invalid; accepted: a path ending in .jsonl")
    if out.exists():
        raise RunDirError(f"{out} exists; perturb-steps writes a new file (remove it or choose another --output)")
    rows = perturbed_rows((s for run in run_dirs for s in run_solutions(run)), copies, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    append_rows(out, rows)
    return len(rows)
