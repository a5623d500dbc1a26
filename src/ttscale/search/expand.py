"""The one expansion core every strategy shares, so no strategy drifts from another (docs/DESIGN.md).

It owns batching (all requests of all problems in flight in one generator call and
one verifier call per round), step detection, completion handling, budget
accounting and trees; search/rounds.py runs the round loop on it. A strategy is only the `Policy` that decides
which beams survive and how many children each gets.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ttscale.backends.base import Generator
from ttscale.confidence import DEFAULT_TOP_K, TopLogprobs, split_rows, summarize
from ttscale.grading import solution_key, stated_answer
from ttscale.grading.select import CONFIDENCE_SELECTIONS, reduce_scores, select
from ttscale.search import caps
from ttscale.search.base import SearchSettings
from ttscale.search.records import Beam, Expansion, ProblemState
from ttscale.search.seeds import request_seed
from ttscale.search.steps import StepRule, clean_step, strip_end_marker
from ttscale.search.thinking import Forced, ThinkState, answer_part, force, initial_state, token_cap
from ttscale.types import Completion, FinishReason, Generation, ProblemResult, SamplingParams
from ttscale.verifiers.base import Verifier


@dataclass
class Draft:
    """A child while it is generated: one generator call, or several when budget forcing writes text for
    the model or a short step merges with the next."""

    st: ProblemState
    e: Expansion
    parent: Beam
    path: tuple[object, ...]
    think: ThinkState | None
    text: str = ""
    n_tokens: int = 0
    finish_reason: FinishReason = "stop"
    ended: bool = False  # EOS or a format end marker that forcing let stand
    event: bool = False  # the last call closed the thinking block or had text written for the model
    injected: str = ""
    calls: int = 0
    last_tokens: int = 0
    logprobs: tuple[float, ...] = ()
    top_logprobs: tuple[tuple[float, ...], ...] = ()

    def prefix(self) -> Beam:
        """The parent grown by what this child generated so far: what its next call continues."""
        p = self.parent
        return replace(p, steps=(*p.steps, p.carry + self.text), carry="", n_tokens=p.n_tokens + self.n_tokens,
                       think=self.think)


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
        self._counted: dict[str, int] = {}
        self.rule = StepRule(settings.step_split, settings.step_delimiter, settings.min_step_tokens,
                             settings.max_step_tokens, tuple(settings.step_markers), generator.count_tokens)

    def root(self, st: ProblemState, group: int = 0) -> Beam:
        return Beam(group=group, think=initial_state(self.settings.thinking, st.prompt))

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
        stop = s.end_markers if whole else (*self.rule.stops, *s.end_markers)

        def params(st: ProblemState, prefix: Beam | None, n: int, path: tuple[object, ...], c: int | None) -> SamplingParams:
            think = prefix.think if prefix else initial_state(s.thinking, st.prompt)
            cap = max(1, s.max_new_tokens - (prefix.n_tokens if prefix else 0)) if whole else s.max_step_tokens
            caps_ = [x for x in (cap, c, token_cap(s.thinking, think)) if x is not None]
            # While a solution thinks, its end marker stops generation so the budget can be applied.
            stops = (*stop, s.thinking.end) if think is not None and not think.closed else stop
            return self._params(st, n, max(1, min(caps_)), stops, greedy, path)

        caps = caps or [None] * len(states)
        params_ = [params(st, b, n, path, c) for st, b, n, path, c in zip(states, prefixes, ns, seed_paths, caps, strict=True)]
        outputs = self.generator.generate([st.prompt + (b.text if b else "") for st, b in zip(states, prefixes)], params_)
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
        return outputs

    def _forced(self, think: ThinkState | None, offset: int, gen: Generation) -> tuple[Forced, bool]:
        """One generation at solution offset `offset` with the thinking budget applied, and whether the
        model itself ended there (EOS or a format end marker)."""
        text, ended = strip_end_marker(gen.text, self.settings.end_markers)
        ended = ended or gen.finish_reason == "eos"
        return force(self.settings.thinking, think, offset, text, gen.n_tokens, ended), ended

    def _absorb(self, d: Draft, gen: Generation) -> None:
        """Add one generation to a child, with the thinking budget applied to it."""
        forced, ended = self._forced(d.think, len(d.parent.text) + len(d.text), gen)
        closed_now = d.think is not None and not d.think.closed and forced.state.closed
        d.event, d.injected = bool(forced.injected) or closed_now, forced.injected
        d.ended = ended and not forced.injected  # an EOS inside thinking before min_tokens became "Wait"
        d.text, d.think, d.finish_reason = d.text + forced.text, forced.state, gen.finish_reason
        d.n_tokens += gen.n_tokens
        d.last_tokens = gen.n_tokens
        d.calls += 1
        d.logprobs, d.top_logprobs = d.logprobs + gen.logprobs, d.top_logprobs + gen.top_logprobs

    def _more(self, d: Draft, whole: bool) -> bool:
        """Does this child go on within the same request? A call that made no token ends it, so this terminates
        (a server answering empty text to every "Wait" would loop otherwise)."""
        s = self.settings
        if d.ended or d.parent.n_tokens + d.n_tokens >= s.max_new_tokens or not d.last_tokens:
            return False
        if whole:
            limit = d.e.token_limit
            return d.event and not (limit is not None and d.n_tokens >= limit)
        step = d.parent.carry + d.text
        return (not d.event and d.finish_reason == "stop" and d.n_tokens < s.max_step_tokens
                and self.rule.too_short(step) and not self._answered(d, step))

    def _left(self, d: Draft, whole: bool) -> int | None:
        if whole:
            limit = d.e.token_limit
            return limit - d.n_tokens if limit is not None else None
        return self.settings.max_step_tokens - d.n_tokens

    def _settle(self, drafts: list[Draft], whole: bool) -> None:
        """Continue every child that is not done yet, all of them in one generator call per pass."""
        todo = [d for d in drafts if self._more(d, whole)]
        while todo:
            gens = self.generate([d.st for d in todo], [d.prefix() for d in todo], [1] * len(todo),
                                 [(*d.path, "more", d.calls) for d in todo], whole=whole,
                                 caps=[self._left(d, whole) for d in todo])
            for d, g in zip(todo, gens):
                self._absorb(d, g[0])
            todo = [d for d in todo if self._more(d, whole)]

    def _answered(self, d: Draft, step: str) -> bool:
        """A solution is complete at EOS or an end marker, on an empty step, or once its answer part states an
        answer; while it thinks, only EOS ends it ("so the answer is 5... wait" is thinking, not an answer)."""
        if d.ended:
            return True
        if d.injected:  # text was just written for the model (a cue, "Wait"): it has not answered yet
            return False
        return _states_answer(d.parent.text + d.text, d.think, step)

    def child(self, d: Draft) -> Beam:
        s, parent, whole = self.settings, d.parent, d.e.whole
        n_tokens = parent.n_tokens + d.n_tokens
        head = parent.steps
        if whole:
            text = parent.carry + d.text
            if d.e.max_tokens is not None and head:
                # A chunk stops anywhere, mid-step too: its parent's last step is cut again with the new text, so a
                # verifier scoring the partial solution every chunk sees the steps a whole sample would have.
                head, text = head[:-1], head[-1] + text
            # A whole-solution child holds many steps: split them so the verifier scores each, as it would have.
            new_steps, carry = self.rule.steps(text) or (text,), ""
        else:
            body = parent.carry + d.text.removesuffix(d.injected)
            step, carry = self.rule.close(body, d.finish_reason == "stop" and not d.event, d.finish_reason == "length")
            new_steps, carry = (step,), carry + d.injected
        answered = self._answered(d, new_steps[-1] if not whole else d.text)
        capped = n_tokens >= s.max_new_tokens or (d.e.cap_share is not None and d.n_tokens >= d.e.cap_share)
        finished = answered or capped or (whole and not d.event and d.finish_reason != "length")
        reason: FinishReason = "eos" if answered or finished and not capped else ("length" if capped else "stop")
        if d.think is not None:
            d.st.budget.thinking_tokens += d.think.tokens - (parent.think.tokens if parent.think else 0)
        node = d.st.add_node(parent.node if parent.node >= 0 else None, parent.carry + d.text, d.n_tokens, finished)
        return Beam(
            steps=(*head, *new_steps), scores=parent.scores, n_tokens=n_tokens, finished=finished,
            finish_reason=reason, node=node, group=d.e.group, top_logprobs=parent.top_logprobs + d.top_logprobs,
            logprobs=parent.logprobs + d.logprobs, carry=carry, think=d.think,
        )

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
                    self._absorb(d, one)
                    drafts.append((i, d))
            self._settle([d for _, d in drafts], whole)
            for i, d in drafts:
                out[i].append(self.child(d))
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
        if reads_logprobs(self.verifier):
            rows = [self.step_rows(b) for b in scored_on]
            scores = self.verifier.score_logprobs(problems, steps, rows)  # type: ignore[attr-defined]
        else:
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

    def step_rows(self, beam: Beam) -> list[TopLogprobs]:
        """The recorded top-k rows of each step's tokens, the steps' shares counted by the policy's tokenizer."""
        return split_rows(beam.top_logprobs, [self._step_tokens(x) for x in beam.steps])

    def _step_tokens(self, step: str) -> int:
        # A beam's earlier steps are read again every round: each text is tokenized once per search.
        if step not in self._counted:
            self._counted[step] = self.generator.count_tokens(step)
        return self._counted[step]

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
                rolled[i] = self._extend_silently(states[i], rolled[i], g[0])
        return rolled

    def _extend_silently(self, st: ProblemState, beam: Beam, gen: Generation) -> Beam:
        """A lookahead child: not a tree node, never returned, only scored.

        The roll is what the beam would write next, so the thinking budget applies to it as to a
        real step (and its thinking tokens count, as its tokens do in generated_tokens).
        """
        forced, ended = self._forced(beam.think, len(beam.text), gen)
        if beam.think is not None and forced.state is not None:  # always, when beam.think is (for the type checker)
            st.budget.thinking_tokens += forced.state.tokens - beam.think.tokens
        done = not forced.injected and (ended or _states_answer(beam.text + forced.text, forced.state, forced.text))
        # Its rows go with it: a verifier that reads the policy's confidence scores the roll's end as a PRM would.
        return replace(beam, steps=(*beam.steps, beam.carry + forced.text), carry="", finished=done,
                       think=forced.state, top_logprobs=beam.top_logprobs + gen.top_logprobs,
                       logprobs=beam.logprobs + gen.logprobs)

    # -- results -----------------------------------------------------------------
    def admit(self, st: ProblemState, expansions: Sequence[Expansion]) -> list[Expansion]:
        """What of a problem's next round its caps admit (search/caps.py): stop before a cap, not after."""
        return caps.admit(self, st, expansions)

    def worst_tokens(self, e: Expansion) -> int:
        if e.whole:
            left = max(1, self.settings.max_new_tokens - (e.parent.n_tokens if e.parent else 0))
            return min(left, e.token_limit) if e.token_limit is not None else left
        return self.settings.max_step_tokens

    def flops(self, st: ProblemState) -> float:
        """2 x parameters x tokens through each model, counting prefix-cache hits as free."""
        b = st.budget
        policy_tokens = b.generated_tokens + b.prompt_tokens - b.prompt_tokens_reused
        verifier_params = self.verifier.n_params if self.verifier is not None else 0
        return 2.0 * self.generator.n_params * policy_tokens + 2.0 * verifier_params * b.verifier_tokens

    def completion(self, beam: Beam) -> Completion:
        # A solution that never closed its thinking has no answer, only thoughts: graded as unanswered.
        unclosed = beam.think is not None and not beam.think.closed
        return Completion(
            text=beam.text,
            steps=beam.steps,
            answer=beam.answer,
            step_scores=beam.scores if self.verifier is not None else None,
            n_tokens=beam.n_tokens,
            finished=beam.finished,
            finish_reason="length" if unclosed or not beam.finished else beam.finish_reason,
            thinking_tokens=beam.think.tokens if beam.think else 0,
            confidence=summarize(beam.top_logprobs, self.settings.confidence_window) if beam.top_logprobs else None,
            logprobs=beam.logprobs if self.settings.save_logprobs else (),
            top_logprobs=beam.top_logprobs if self.settings.save_logprobs else (),
        )

    def result(self, st: ProblemState, strategy: str, beams: Sequence[Beam], distinct: bool = False) -> ProblemResult:
        """`distinct`: the candidates come from one tree, so a repeated text votes once (grading.select)."""
        completions = tuple(self.completion(b) for b in beams)
        st.budget.wall_time_s = time.perf_counter() - st.started
        st.budget.flops = self.flops(st)
        return ProblemResult(
            problem=st.problem,
            strategy=strategy,
            completions=completions,
            selected=select(completions, self.settings.selection, self.settings.reduction, distinct),
            budget=st.budget,
            tree=tuple(st.tree) if self.settings.save_trees else (),
            distinct=distinct,
        )


def reads_logprobs(verifier: Verifier | None) -> bool:
    """Does the verifier score from the policy's recorded log-probabilities (verifiers/self_certainty.py)?"""
    return bool(getattr(verifier, "reads_logprobs", False))


def _states_answer(text: str, think: ThinkState | None, step: str) -> bool:
    """Past its thinking block, a solution is complete on an empty step or once its answer part states an answer."""
    part = answer_part(text, think)
    return part is not None and (not step.strip() or stated_answer(part) is not None)


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
