"""Best-of-N: N whole solutions per problem, scored once; majority / naive / weighted pick."""

from __future__ import annotations

from collections.abc import Sequence

from ttscale.backends.base import Generator
from ttscale.search.base import SearchSettings
from ttscale.search.expand import Beam, Expander, ProblemState
from ttscale.search.steps import split_steps, strip_end_marker
from ttscale.types import Problem, ProblemResult
from ttscale.verifiers.base import Verifier


class BestOfN:
    name = "best_of_n"
    needs_verifier = False

    def search(self, problems: Sequence[Problem], prompts: Sequence[str], generator: Generator,
               verifier: Verifier | None, settings: SearchSettings) -> list[ProblemResult]:
        core = Expander(generator, verifier, settings)
        states = [ProblemState(p, pr) for p, pr in zip(problems, prompts)]
        outputs = core.generate(states, [None] * len(states), [settings.n] * len(states), [(0, 0)] * len(states),
                                whole=True)
        pairs = []
        for st, gens in zip(states, outputs):
            for g in gens:
                text, _ = strip_end_marker(g.text, settings.end_markers)
                steps = split_steps(text, settings.step_delimiter) or ("",)
                pairs.append((st, Beam(steps=steps, n_tokens=g.n_tokens, finished=g.finish_reason != "length",
                                       finish_reason="eos" if g.finish_reason == "stop" else g.finish_reason,
                                       top_logprobs=g.top_logprobs, logprobs=g.logprobs)))
        scored = core.score(pairs) if verifier is not None else [b for _, b in pairs]
        n = settings.n
        return [core.result(st, self.name, scored[i * n : (i + 1) * n]) for i, st in enumerate(states)]
