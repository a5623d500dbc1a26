"""The one expansion core every strategy shares, so no strategy drifts from another (docs/DESIGN.md).

A strategy drives it through `Expander`: `expand` grows children of the beams it asks for, `score`
scores them, `admit` cuts a round to the problem's caps, `result` returns the candidates. All requests
of all problems in flight go to one generator call and one verifier call per round; search/rounds.py
runs the round loop on it. Each part lives in its own module, read on its own:

- search/sampler.py: the generator call, each request's seed, its tokens charged to its problem;
- search/drafts.py: a child while it is generated: the thinking budget forced on it, short steps
  merged, whether it answered, the beam it becomes;
- search/scoring.py: the verifier call, with lookahead rolls;
- search/completions.py: the completions, the pick and the FLOPs of a problem's result;
- search/caps.py: what a problem's caps admit of its next round.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ttscale.backends.base import Generator
from ttscale.confidence import DEFAULT_TOP_K
from ttscale.grading import solution_key
from ttscale.grading.select import CONFIDENCE_SELECTIONS
from ttscale.search import caps
from ttscale.search.base import SearchSettings
from ttscale.search.completions import budget_flops, problem_result
from ttscale.search.drafts import Draft, Drafting
from ttscale.search.records import Beam, Expansion, ProblemState
from ttscale.search.sampler import Sampler
from ttscale.search.scoring import Scorer, reads_logprobs
from ttscale.search.steps import StepRule
from ttscale.search.thinking import initial_state
from ttscale.types import Generation, ProblemResult
from ttscale.verifiers.base import Verifier


class Expander:
    """Runs expansion and scoring for many problems at once and keeps their budgets."""

    def __init__(self, generator: Generator, verifier: Verifier | None, settings: SearchSettings,
                 score_once: bool = False) -> None:
        """`score_once`: the verifier scores each candidate once, after the last round, not every round."""
        if not settings.logprobs and (settings.selection in CONFIDENCE_SELECTIONS or reads_logprobs(verifier)):
            # The pick or the verifier reads the policy's token confidence: record it, as DeepConf does.
            settings = replace(settings, logprobs=DEFAULT_TOP_K)
        self.generator, self.verifier, self.settings = generator, verifier, settings
        self.score_once = score_once
        self.rule = StepRule(settings.step_split, settings.step_delimiter, settings.min_step_tokens,
                             settings.max_step_tokens, tuple(settings.step_markers), generator.count_tokens)
        self.sampler = Sampler(generator, settings, self.rule)
        self.drafting = Drafting(settings, self.rule)
        self.scorer = Scorer(verifier, settings, self.sampler, self.drafting)

    def root(self, st: ProblemState, group: int = 0) -> Beam:
        return Beam(group=group, think=initial_state(self.settings.thinking, st.prompt))

    # -- expansion ------------------------------------------------------------------
    def generate(
        self, states: Sequence[ProblemState], prefixes: Sequence[Beam | None], ns: Sequence[int],
        seed_paths: Sequence[tuple[object, ...]], whole: bool = False, greedy: bool = False,
        caps: Sequence[int | None] | None = None,
    ) -> list[list[Generation]]:
        """One generator call for all requests, budgets charged per problem (search/sampler.py)."""
        return self.sampler.generate(states, prefixes, ns, seed_paths, whole=whole, greedy=greedy, caps=caps)

    def expand(self, requests: Sequence[tuple[ProblemState, Expansion]], round_: int) -> list[list[Beam]]:
        """Children of every request, grouped by request: one generator call per kind (step or whole),
        and one more per pass for children that go on (budget forcing, short steps).

        A request's seed comes from its index among its problem's requests this round, so
        identical prompts (DVTS roots, duplicate beams, a particle drawn twice) get distinct
        children on every backend (else DVTS at N=16 would be N/M subtrees copied M times).
        """
        out: list[list[Beam]] = [[] for _ in requests]
        index: dict[int, int] = {}
        paths = []
        for st, _ in requests:
            index[id(st)] = index.get(id(st), -1) + 1
            paths.append((round_, index[id(st)]))
        for whole in (False, True):
            idx = [i for i, (_, e) in enumerate(requests) if e.whole == whole]
            if not idx:
                continue
            gens = self.generate([requests[i][0] for i in idx], [requests[i][1].parent for i in idx],
                                 [requests[i][1].k for i in idx], [paths[i] for i in idx], whole=whole,
                                 caps=[requests[i][1].token_limit for i in idx])
            drafts: list[tuple[int, Draft]] = []
            for i, g in zip(idx, gens):
                st, e = requests[i]
                parent = e.parent or self.root(st, e.group)
                for k, one in enumerate(g):
                    d = Draft(st, e, parent, (*paths[i], k), parent.think)
                    self.drafting.absorb(d, one)
                    drafts.append((i, d))
            self._settle([d for _, d in drafts], whole)
            for i, d in drafts:
                out[i].append(self.drafting.child(d))
        return _dedup(requests, out) if self.settings.filter_duplicates else out

    def _settle(self, drafts: list[Draft], whole: bool) -> None:
        """Continue every child that is not done yet, all of them in one generator call per pass."""
        todo = [d for d in drafts if self.drafting.goes_on(d, whole)]
        while todo:
            gens = self.generate([d.st for d in todo], [d.prefix() for d in todo], [1] * len(todo),
                                 [(*d.path, "more", d.calls) for d in todo], whole=whole,
                                 caps=[self.drafting.tokens_left(d, whole) for d in todo])
            for d, g in zip(todo, gens):
                self.drafting.absorb(d, g[0])
            todo = [d for d in todo if self.drafting.goes_on(d, whole)]

    # -- scoring ----------------------------------------------------------------------
    def score(self, pairs: Sequence[tuple[ProblemState, Beam]]) -> list[Beam]:
        """Beams with their step scores (and ranking value); one verifier call for all (search/scoring.py)."""
        return self.scorer.score(pairs)

    # -- budgets and results -------------------------------------------------------------
    def admit(self, st: ProblemState, expansions: Sequence[Expansion]) -> list[Expansion]:
        """What of a problem's next round its caps admit (search/caps.py): stop before a cap, not after."""
        return caps.admit(self, st, expansions)

    def worst_tokens(self, e: Expansion) -> int:
        """The most tokens one child of `e` can generate: what search/caps.py sizes a round by."""
        if e.whole:
            left = max(1, self.settings.max_new_tokens - (e.parent.n_tokens if e.parent else 0))
            return min(left, e.token_limit) if e.token_limit is not None else left
        return self.settings.max_step_tokens

    def flops(self, st: ProblemState) -> float:
        return budget_flops(st, self.generator, self.verifier)

    def result(self, st: ProblemState, strategy: str, beams: Sequence[Beam], distinct: bool = False) -> ProblemResult:
        """`distinct`: the candidates come from one tree, so a repeated text votes once (grading.select)."""
        return problem_result(st, strategy, beams, self.settings, self.generator, self.verifier, distinct)


def _dedup(requests: Sequence[tuple[ProblemState, Expansion]], children: list[list[Beam]]) -> list[list[Beam]]:
    """Drop a child whose whole text repeats another child of its problem's round, within its subtree (`group`).

    Across all requests of the problem, not only among siblings: two parents can grow the same
    text, and search-and-learn's beam search filters the whole active set
    (huggingface/search-and-learn, src/sal/search/beam_search.py). Within a subtree only, because DVTS's subtrees are meant to
    be independent (Beeching et al. 2024): one that reaches another's text keeps it, its fate
    its own. Beam search and particle filtering have one subtree, so theirs is the whole problem.
    Children, not earlier beams: a child that adds an empty step repeats its parent's text and is
    that beam finished. Trailing whitespace does not make a beam new (grading.solution_key).
    """
    seen: set[tuple[int, int, str]] = set()
    out = []
    for (st, _), cs in zip(requests, children):
        kept = []
        for c in cs:
            key = (id(st), c.group, solution_key(c.text))
            if key not in seen:
                seen.add(key)
                kept.append(c)
        out.append(kept)
    return out
