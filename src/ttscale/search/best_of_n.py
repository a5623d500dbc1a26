"""Best-of-N: N whole solutions per problem, scored once; majority / naive / weighted pick."""

from __future__ import annotations

from collections.abc import Sequence

from ttscale.backends.base import Generator
from ttscale.search.base import SearchSettings
from ttscale.search.beams import Expansion, ProblemState
from ttscale.search.expand import Expander
from ttscale.types import Problem, ProblemResult
from ttscale.verifiers.base import Verifier


class BestOfN:
    name = "best_of_n"
    needs_verifier = False

    def search(self, problems: Sequence[Problem], prompts: Sequence[str], generator: Generator,
               verifier: Verifier | None, settings: SearchSettings) -> list[ProblemResult]:
        core = Expander(generator, verifier, settings)
        states = [ProblemState(p, pr) for p, pr in zip(problems, prompts)]
        children = core.expand([(st, Expansion(None, settings.n, whole=True)) for st in states], 0)
        pairs = [(st, b) for st, bs in zip(states, children) for b in bs]
        scored = core.score(pairs) if verifier is not None else [b for _, b in pairs]
        n = settings.n
        return [core.result(st, self.name, scored[i * n : (i + 1) * n]) for i, st in enumerate(states)]
