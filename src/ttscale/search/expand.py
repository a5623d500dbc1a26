"""The one expansion core every strategy shares (STYLE.md: the lesson of search-and-learn).

It owns batching (all requests of all problems in flight in one generator call and
one verifier call per round), step detection, completion handling, budget
accounting and trees; search/rounds.py runs the round loop on it. A strategy is only the `Policy` that decides
which beams survive and how many children each gets.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from ttscale.backends.base import Generator
from ttscale.confidence import summarize
from ttscale.grading import extract_answer, stated_answer
from ttscale.grading.select import reduce_scores, select
from ttscale.search.base import SearchSettings
from ttscale.search.seeds import request_seed
from ttscale.search.steps import clean_step, split_steps, strip_end_marker
from ttscale.types import Budget, Completion, FinishReason, Generation, Problem, ProblemResult, SamplingParams, TreeNode
from ttscale.verifiers.base import Verifier


@dataclass(frozen=True)
class Beam:
    """A partial or complete solution: its steps keep their delimiters, so text is their concatenation."""

    steps: tuple[str, ...] = ()
    scores: tuple[float, ...] = ()
    n_tokens: int = 0
    finished: bool = False
    finish_reason: FinishReason = "stop"
    node: int = -1
    group: int = 0
    value: float = 0.0  # what the policy ranks by: the scored (lookahead) sequence's reduction
    top_logprobs: tuple[tuple[float, ...], ...] = ()  # per generated token, when sampling.logprobs > 0
    logprobs: tuple[float, ...] = ()

    @property
    def text(self) -> str:
        return "".join(self.steps)


@dataclass(frozen=True)
class Expansion:
    """Ask for `k` children of `parent` (None = the problem's root) in subtree `group`.

    `whole`: each child runs to the end of the solution instead of stopping at the next step.
    `max_tokens`: a whole child stops after this many new tokens (DeepConf online's chunks, issue 20).
    """

    parent: Beam | None
    k: int
    group: int = 0
    whole: bool = False
    max_tokens: int | None = None


@dataclass
class ProblemState:
    """Per-problem bookkeeping while its search runs."""

    problem: Problem
    prompt: str
    budget: Budget = field(default_factory=Budget)
    tree: list[TreeNode] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    step_tokens: list[int] = field(default_factory=list)

    def add_node(self, parent: int | None, step: str, n_tokens: int, completed: bool) -> int:
        self.tree.append(TreeNode(len(self.tree), parent, step, None, n_tokens, completed))
        return len(self.tree) - 1

    def set_score(self, node: int, score: float) -> None:
        if 0 <= node < len(self.tree):
            self.tree[node] = replace(self.tree[node], score=score)


class Policy(Protocol):
    """The part of a strategy that differs: which beams to expand next, and what to return."""

    def initial(self) -> list[Expansion]: ...

    def step(self, children: list[Beam]) -> list[Expansion]: ...

    def finish(self) -> list[Beam]: ...


class Expander:
    """Runs expansion and scoring for many problems at once and keeps their budgets."""

    def __init__(self, generator: Generator, verifier: Verifier | None, settings: SearchSettings) -> None:
        self.generator, self.verifier, self.settings = generator, verifier, settings

    # -- generation ----------------------------------------------------------------
    def _params(self, st: ProblemState, n: int, max_new_tokens: int, stop: tuple[str, ...], greedy: bool,
                seed_path: tuple[object, ...]) -> SamplingParams:
        s = self.settings
        return SamplingParams(
            temperature=0.0 if greedy else s.temperature,
            top_p=s.top_p,
            max_new_tokens=max_new_tokens,
            stop=stop,
            n=n,
            seed=request_seed(s.seed, st.problem.id, *seed_path),
            logprobs=s.logprobs,
        )

    def generate(
        self, states: Sequence[ProblemState], prefixes: Sequence[Beam | None], ns: Sequence[int],
        seed_paths: Sequence[tuple[object, ...]], whole: bool = False, greedy: bool = False,
        caps: Sequence[int | None] | None = None,
    ) -> list[list[Generation]]:
        """One generator call for all requests; budgets charged per problem.

        Request i samples ns[i] children of prefixes[i], seeded from (run seed, problem id,
        seed_paths[i]): a request's samples never depend on where it sits in the call.
        """
        s = self.settings
        stop = s.end_markers if whole else (s.step_delimiter, *s.end_markers)

        def cap(prefix: Beam | None) -> int:
            return max(1, s.max_new_tokens - (prefix.n_tokens if prefix else 0)) if whole else s.max_step_tokens

        caps = caps or [None] * len(states)
        params = [self._params(st, n, min(cap(b), c) if c else cap(b), stop, greedy, path)
                  for st, b, n, path, c in zip(states, prefixes, ns, seed_paths, caps, strict=True)]
        outputs = self.generator.generate([st.prompt + (b.text if b else "") for st, b in zip(states, prefixes)], params)
        seen: set[int] = set()
        for st, prefix, gens in zip(states, prefixes, outputs):
            if id(st) not in seen:
                st.budget.generator_calls += 1
                seen.add(id(st))
            prompt_tokens = gens[0].prompt_tokens if gens else 0
            st.budget.prompt_tokens += prompt_tokens
            # A prefix cache has every token of an earlier round (prompt and generated steps)
            # already, so only round 1 reads its prompt for real.
            if prefix is not None and prefix.text:
                st.budget.prompt_tokens_reused += prompt_tokens
            st.budget.generated_tokens += sum(g.n_tokens for g in gens)
            st.step_tokens.extend(g.n_tokens for g in gens)
        return outputs

    def child(self, st: ProblemState, parent: Beam | None, gen: Generation, e: Expansion) -> Beam:
        s = self.settings
        text, ended = strip_end_marker(gen.text, s.end_markers)
        parent = parent or Beam(group=e.group)
        n_tokens = parent.n_tokens + gen.n_tokens
        answered = _answered(gen, text, ended)
        capped = n_tokens >= s.max_new_tokens
        finished = answered or capped or (e.whole and gen.finish_reason != "length")
        reason: FinishReason = "eos" if answered or finished and not capped else ("length" if capped else "stop")
        node = st.add_node(parent.node if parent.node >= 0 else None, text, gen.n_tokens, finished)
        # A whole-solution child holds many steps: split them so the verifier scores each, as it would have.
        new_steps = (split_steps(text, s.step_delimiter) or (text,)) if e.whole else (text,)
        return Beam(
            steps=(*parent.steps, *new_steps), scores=parent.scores, n_tokens=n_tokens, finished=finished,
            finish_reason=reason, node=node, group=e.group,
            top_logprobs=parent.top_logprobs + gen.top_logprobs, logprobs=parent.logprobs + gen.logprobs,
        )

    def expand(self, requests: Sequence[tuple[ProblemState, Expansion]], round_: int) -> list[list[Beam]]:
        """Children of every request, grouped by request: one generator call per kind (step or whole).

        A request's seed comes from its index among its problem's requests this round, so
        identical prompts (DVTS roots, duplicate beams, a particle drawn twice) get distinct
        children on every backend (issue 15).
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
                                 caps=[requests[i][1].max_tokens for i in idx])
            for i, g in zip(idx, gens):
                st, e = requests[i]
                out[i] = [self.child(st, e.parent, one, e) for one in g]
        return _dedup(requests, out) if self.settings.filter_duplicates else out

    # -- scoring -----------------------------------------------------------------
    def score(self, pairs: Sequence[tuple[ProblemState, Beam]]) -> list[Beam]:
        """Beams with their step scores (and ranking value); one verifier call for all."""
        if not pairs:
            return []
        if self.verifier is None:
            return [replace(b, value=0.0) for _, b in pairs]
        scored_on = [b for _, b in pairs]
        if self.settings.lookahead > 0:
            scored_on = self._rollout([st for st, _ in pairs], scored_on)
        d = self.settings.step_delimiter
        problems = [st.problem for st, _ in pairs]
        steps = [[clean_step(x, d) for x in b.steps] for b in scored_on]
        scores = self.verifier.score(problems, steps)
        seen: set[int] = set()
        out = []
        for (st, beam), look, sc, item in zip(pairs, scored_on, scores, steps):
            if id(st) not in seen:
                st.budget.verifier_calls += 1
                seen.add(id(st))
            st.budget.verifier_tokens += self.verifier.count_tokens(st.problem, item)
            own = tuple(sc[: len(beam.steps)])
            st.set_score(beam.node, own[-1] if own else 0.0)
            value = reduce_scores(sc, self.settings.reduction) if look is not beam else reduce_scores(own, self.settings.reduction)
            out.append(replace(beam, scores=own, value=value))
        return out

    def _rollout(self, states: list[ProblemState], beams: list[Beam]) -> list[Beam]:
        """Lookahead: roll each unfinished beam `lookahead` greedy steps; score the end of the roll."""
        rolled = list(beams)
        for depth in range(self.settings.lookahead):
            todo = [i for i, b in enumerate(rolled) if not b.finished]
            if not todo:
                break
            gens = self.generate([states[i] for i in todo], [rolled[i] for i in todo], [1] * len(todo),
                                 [("lookahead", depth, i) for i in todo], greedy=True)
            for i, g in zip(todo, gens):
                rolled[i] = self._extend_silently(rolled[i], g[0])
        return rolled

    def _extend_silently(self, beam: Beam, gen: Generation) -> Beam:
        """A lookahead child: not a tree node, never returned, only scored."""
        text, ended = strip_end_marker(gen.text, self.settings.end_markers)
        return replace(beam, steps=(*beam.steps, text), finished=_answered(gen, text, ended))

    # -- results -----------------------------------------------------------------
    def over_budget(self, st: ProblemState, expansions: Sequence[Expansion]) -> bool:
        """Would the next round pass the per-problem cap? (issue 6: stop before, not after).

        Projected at the worst case (every step hits max_step_tokens, a whole solution its
        remaining max_new_tokens), so a cap is never passed.
        """
        s = self.settings
        worst = sum(e.k * self.worst_tokens(e) for e in expansions)
        if s.max_tokens_per_problem is not None and st.budget.generated_tokens + worst > s.max_tokens_per_problem:
            return True
        if s.max_flops_per_problem is not None:
            return self.flops(st) + 2.0 * self.generator.n_params * worst > s.max_flops_per_problem
        return False

    def worst_tokens(self, e: Expansion) -> int:
        if e.whole:
            left = max(1, self.settings.max_new_tokens - (e.parent.n_tokens if e.parent else 0))
            return min(left, e.max_tokens) if e.max_tokens else left
        return self.settings.max_step_tokens

    def flops(self, st: ProblemState) -> float:
        """2 x parameters x tokens through each model, counting prefix-cache hits as free."""
        b = st.budget
        policy_tokens = b.generated_tokens + b.prompt_tokens - b.prompt_tokens_reused
        verifier_params = self.verifier.n_params if self.verifier is not None else 0
        return 2.0 * self.generator.n_params * policy_tokens + 2.0 * verifier_params * b.verifier_tokens

    def completion(self, beam: Beam) -> Completion:
        text = beam.text
        return Completion(
            text=text,
            steps=beam.steps,
            answer=extract_answer(text),
            step_scores=beam.scores if self.verifier is not None else None,
            n_tokens=beam.n_tokens,
            finished=beam.finished,
            finish_reason=beam.finish_reason if beam.finished else "length",
            confidence=summarize(beam.top_logprobs, self.settings.confidence_window) if beam.top_logprobs else None,
            logprobs=beam.logprobs if self.settings.save_logprobs else (),
            top_logprobs=beam.top_logprobs if self.settings.save_logprobs else (),
        )

    def result(self, st: ProblemState, strategy: str, beams: Sequence[Beam]) -> ProblemResult:
        completions = tuple(self.completion(b) for b in beams)
        st.budget.wall_time_s = time.perf_counter() - st.started
        st.budget.flops = self.flops(st)
        return ProblemResult(
            problem=st.problem,
            strategy=strategy,
            completions=completions,
            selected=select(completions, self.settings.selection, self.settings.reduction),
            budget=st.budget,
            tree=tuple(st.tree) if self.settings.save_trees else (),
        )


def _answered(gen: Generation, text: str, ended: bool) -> bool:
    """A solution is complete at EOS, at an end marker, on an empty step, or once it states an answer."""
    return ended or gen.finish_reason == "eos" or not text.strip() or stated_answer(text) is not None


def _dedup(requests: Sequence[tuple[ProblemState, Expansion]], children: list[list[Beam]]) -> list[list[Beam]]:
    """Drop a child whose whole text repeats another active beam of its problem and subtree.

    Across all requests of the problem, not only among siblings (two parents can grow the
    same text); trailing whitespace does not make a beam new (issue 16).
    """
    seen: set[tuple[int, int, str]] = set()
    out = []
    for (st, _), cs in zip(requests, children):
        kept = []
        for c in cs:
            key = (id(st), c.group, c.text.rstrip())
            if key not in seen:
                seen.add(key)
                kept.append(c)
        out.append(kept)
    return out


class CompletionPool:
    """Finished candidates are set aside, the rest stay active.

    Whatever the policy keeps, `finish` returns exactly N, finished first (never more: a
    bug users hit in the reference).
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.completed: list[Beam] = []
        self.active: list[Beam] = []

    def absorb(self, children: list[Beam]) -> None:
        self.completed += [c for c in children if c.finished]
        self.active = [c for c in children if not c.finished]

    def finish(self) -> list[Beam]:
        done = top(self.completed, self.n)
        return done + top(self.active, self.n - len(done))


def top(beams: Sequence[Beam], k: int) -> list[Beam]:
    """The k best beams by value; ties keep generation order (deterministic)."""
    return sorted(beams, key=lambda b: -b.value)[:k]


def softmax(values: Sequence[float], temperature: float) -> list[float]:
    m = max(values)
    w = [math.exp((v - m) / temperature) for v in values]
    z = sum(w)
    return [x / z for x in w]
