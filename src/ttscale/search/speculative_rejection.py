"""Speculative Rejection (Sun et al. 2024, "Fast Best-of-N Decoding via Speculative Rejection", arXiv 2410.20290):
best-of-N that stops its weakest samples early instead of finishing all N.

N samples start together and grow in chunks of `search.rejection.chunk_tokens` through the expansion
core (whole-solution requests capped at a chunk, as DeepConf online's traces are). After every chunk
the verifier scores each partial sample (its steps re-cut across the chunk boundary, search/expand.py)
and the lowest-scoring `search.rejection.rate` of the samples still generating stop there. As in the
authors' implementation (its speculative_rejection.py), round((1 - alpha) x count) samples are kept by
partial score and a finished sample stays a candidate; unlike it, only samples still generating are
ranked (a finished one takes no survivor's place), the last generating sample is never stopped, so a
search always finishes a solution, and a checkpoint comes every chunk rather than where GPU memory fills.

Every sample stays in the results in generation order: a stopped one unfinished and marked
`dropped: rejected`, its tokens in the budget (the budget counts what was generated before the
rejection, and the verifier's reads of every checkpoint). The pick (`search.selection`) runs over the
samples not rejected; the paper returns the highest-scored one (`naive`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from ttscale.backends.base import Generator
from ttscale.grading.select import select
from ttscale.search.base import SearchSettings
from ttscale.search.expand import Expander
from ttscale.search.records import Beam, Expansion
from ttscale.search.rounds import RoundStrategy, run_rounds
from ttscale.types import Problem, ProblemResult
from ttscale.verifiers.base import Verifier

REJECTED = "rejected"


class RejectionPolicy:
    """One problem's N samples: every round each live sample grows a chunk, then the weakest stop."""

    def __init__(self, n: int, chunk_tokens: int, rejection_rate: float) -> None:
        self.n, self.chunk, self.rate = n, chunk_tokens, rejection_rate
        self.samples: list[Beam] = []
        self.live: list[int] = []  # indices of `samples` still generating, in generation order
        self.rejected: set[int] = set()

    def initial(self) -> list[Expansion]:
        return [Expansion(None, self.n, whole=True, max_tokens=self.chunk)]

    def step(self, children: list[Beam]) -> list[Expansion]:
        if not self.samples:
            self.samples = list(children)
            self.live = list(range(len(children)))
        else:  # one child per live sample, in request order
            for i, child in zip(self.live, children, strict=True):
                self.samples[i] = child
        going = [i for i in self.live if not self.samples[i].finished]
        ranked = sorted(going, key=lambda i: (-self.samples[i].value, i))  # ties: the earlier sample stays
        keep = max(1, round((1 - self.rate) * len(going))) if going else 0
        self.rejected.update(ranked[keep:])
        self.live = sorted(ranked[:keep])
        return [Expansion(self.samples[i], 1, whole=True, max_tokens=self.chunk) for i in self.live]

    def finish(self) -> list[Beam]:
        return self.samples


class SpeculativeRejection(RoundStrategy):
    name = "speculative_rejection"
    needs_verifier = True
    # Independent samples: a repeated text is a repeated vote, never a duplicate to drop (as in best-of-N).
    distinct = False

    def policy(self, problem: Problem, settings: SearchSettings) -> RejectionPolicy:
        return RejectionPolicy(settings.n, settings.rejection.chunk_tokens, settings.rejection.rate)

    def settings_for(self, settings: SearchSettings) -> SearchSettings:
        """No lookahead (a checkpoint scores the partial sample itself, and caps size chunks without rolls);
        rounds are chunks, so `max_iterations` gives way to enough of them to reach `max_new_tokens`, the
        length best-of-N's samples may reach."""
        rounds = math.ceil(settings.max_new_tokens / settings.rejection.chunk_tokens)
        return replace(settings, filter_duplicates=False, lookahead=0, max_iterations=rounds)

    def search(self, problems: Sequence[Problem], prompts: Sequence[str], generator: Generator,
               verifier: Verifier | None, settings: SearchSettings) -> list[ProblemResult]:
        settings = self.settings_for(settings)
        policies = [self.policy(p, settings) for p in problems]
        results = run_rounds(self.name, problems, prompts, Expander(generator, verifier, settings), policies,
                             self.distinct)
        return [survivors_pick(r, pol.rejected, settings) for r, pol in zip(results, policies)]


def survivors_pick(result: ProblemResult, rejected: set[int], settings: SearchSettings) -> ProblemResult:
    """The result with its rejected samples marked and the pick made among the others."""
    completions = tuple(replace(c, dropped=REJECTED if i in rejected else None)
                        for i, c in enumerate(result.completions))
    kept = [i for i in range(len(completions)) if i not in rejected]
    pick = select([completions[i] for i in kept], settings.selection, settings.reduction)
    return replace(result, completions=completions, selected=None if pick is None else kept[pick])
