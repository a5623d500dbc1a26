"""The driver of the adaptive strategies: waves of whole traces on the shared expansion core.

A `WavePolicy` asks for traces (whole, or in chunks of `max_tokens`), reads them back, and
decides when its problem has seen enough; `run_waves` batches every problem's requests into
one generator call per round, as `run_rounds` does. Two differences from `run_rounds`: no
verifier call per round (the stopping rules read answers and token confidence, not step
scores), so every trace is scored once at the end; and the policy's `verdict` names the
pick and the traces left out of the vote, which stay in the results, marked, with their
tokens in the budget (the budget counts everything generated).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from ttscale.backends.base import Generator
from ttscale.search.base import SearchSettings
from ttscale.search.expand import Expander
from ttscale.search.progress import report_round
from ttscale.search.records import Beam, Expansion, ProblemState
from ttscale.search.rounds import expand_round, per_problem
from ttscale.types import Problem, ProblemResult
from ttscale.verifiers.base import Verifier


@dataclass(frozen=True)
class Verdict:
    """Every trace of a problem in generation order, why some left the vote, and the pick (an index of `beams`)."""

    beams: tuple[Beam, ...]
    selected: int | None
    dropped: dict[int, str] = field(default_factory=dict)


class WavePolicy(Protocol):
    def initial(self) -> list[Expansion]: ...

    def step(self, children: list[Beam]) -> list[Expansion]: ...

    def verdict(self) -> Verdict: ...


def run_waves(
    strategy: str,
    problems: Sequence[Problem],
    prompts: Sequence[str],
    generator: Generator,
    verifier: Verifier | None,
    settings: SearchSettings,
    policies: Sequence[WavePolicy],
) -> list[ProblemResult]:
    """Rounds until every policy stops asking (or its problem's caps admit no more, search/caps.py)."""
    # No pick reads a wave trace's scores (the verdict picks), so no lookahead rolls past where a
    # trace stopped: it would spend tokens on nothing.
    core = Expander(generator, verifier, replace(settings, lookahead=0), score_once=True)
    states = [ProblemState(p, pr) for p, pr in zip(problems, prompts)]
    pending = [pol.initial() for pol in policies]
    round_ = 0
    # Terminates: every request makes at least one token of progress and a trace ends at max_new_tokens.
    while (flat := expand_round(core, states, pending, round_)) is not None:
        grouped = per_problem(states, flat)
        report_round(round_, grouped)
        pending = [pol.step(grouped[i]) if pending[i] else [] for i, pol in enumerate(policies)]
        round_ += 1
    return _results(strategy, states, [pol.verdict() for pol in policies], core)


def _results(strategy: str, states: list[ProblemState], verdicts: list[Verdict], core: Expander) -> list[ProblemResult]:
    # Chunks end anywhere, so a trace's steps are re-cut by the step rule before the verifier sees them.
    pairs = [(st, replace(b, steps=core.rule.steps(b.text) or (b.text,), carry="")) for st, v in zip(states, verdicts)
             for b in v.beams]
    scored = iter(core.score(pairs) if core.verifier is not None else [b for _, b in pairs])
    out = []
    for st, v in zip(states, verdicts):
        r = core.result(st, strategy, [next(scored) for _ in v.beams])
        marked = tuple(replace(c, dropped=v.dropped.get(i)) for i, c in enumerate(r.completions))
        out.append(replace(r, completions=marked, selected=v.selected))
    return out
