"""The round loop every step-wise strategy shares: all requests of all problems in flight go to one
generator call and one verifier call per round; a strategy is only its per-problem `Policy`."""

from __future__ import annotations

from collections.abc import Sequence

from ttscale.backends.base import Generator
from ttscale.search.base import BaseStrategy, SearchSettings
from ttscale.search.expand import Expander
from ttscale.search.progress import report_round
from ttscale.search.records import Beam, Expansion, Policy, ProblemState
from ttscale.types import Problem, ProblemResult
from ttscale.verifiers.base import Verifier


def expand_round(
    expander: Expander, states: Sequence[ProblemState], pending: list[list[Expansion]], round_: int
) -> list[tuple[ProblemState, Beam]] | None:
    """One round of every problem in flight, in one generator call: (problem, child) pairs in request order.

    Each problem's requests are first cut to what its caps admit (`Expander.admit`); one whose
    next round would not fit asks for nothing more (its `pending` is emptied). None when no
    problem asks for anything.
    """
    for i, st in enumerate(states):
        pending[i] = expander.admit(st, pending[i])
    requests = [(states[i], e) for i in range(len(states)) for e in pending[i]]
    if not requests:
        return None
    children = expander.expand(requests, round_)
    return [(st, c) for (st, _), cs in zip(requests, children) for c in cs]


def per_problem(states: Sequence[ProblemState], pairs: Sequence[tuple[ProblemState, Beam]]) -> list[list[Beam]]:
    """The beams of `pairs` grouped by problem, in the order of `states`."""
    index = {id(st): i for i, st in enumerate(states)}
    out: list[list[Beam]] = [[] for _ in states]
    for st, beam in pairs:
        out[index[id(st)]].append(beam)
    return out


def run_rounds(
    strategy: str,
    problems: Sequence[Problem],
    prompts: Sequence[str],
    expander: Expander,
    policies: Sequence[Policy],
    distinct: bool = True,
) -> list[ProblemResult]:
    """The round loop: expand every pending request of every problem, score, let policies choose.

    `distinct`: the candidates come from one tree, so the pick counts a repeated text once (Expander.result).
    """
    states = [ProblemState(p, pr) for p, pr in zip(problems, prompts)]
    pending = [pol.initial() for pol in policies]
    for round_ in range(expander.settings.max_iterations):
        flat = expand_round(expander, states, pending, round_)
        if flat is None:
            break
        scored = expander.score(flat)
        grouped = per_problem(states, [(st, b) for (st, _), b in zip(flat, scored)])
        report_round(round_, grouped)
        pending = [pol.step(grouped[i]) if pending[i] else [] for i, pol in enumerate(policies)]
    return [expander.result(st, strategy, pol.finish(), distinct) for st, pol in zip(states, policies)]


class RoundStrategy(BaseStrategy):
    """A strategy defined by its per-problem Policy; batching and the round loop are shared."""

    name = "round_strategy"
    distinct = True

    def policy(self, problem: Problem, settings: SearchSettings) -> Policy:
        raise NotImplementedError

    def settings_for(self, settings: SearchSettings) -> SearchSettings:
        """The settings this strategy runs under (a strategy may pin one that does not apply to it)."""
        return settings

    def max_expansions(self, settings: SearchSettings) -> int:
        return super().max_expansions(self.settings_for(settings))

    def search(self, problems: Sequence[Problem], prompts: Sequence[str], generator: Generator,
               verifier: Verifier | None, settings: SearchSettings) -> list[ProblemResult]:
        settings = self.settings_for(settings)
        policies = [self.policy(p, settings) for p in problems]
        return run_rounds(self.name, problems, prompts, Expander(generator, verifier, settings), policies,
                          self.distinct)
