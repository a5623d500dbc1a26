"""A child while it is generated, and the rules that finish it: the thinking budget forced on reasoning
models (s1, Muennighoff et al. 2025; docs/ALGORITHMS.md, "Thinking budgets"), a short step merged with
the next, and when a solution has answered. The expansion core (search/expand.py) makes the generator
calls; this module decides what each call's text means."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ttscale.grading import stated_answer
from ttscale.search.base import SearchSettings
from ttscale.search.records import Beam, Expansion, ProblemState
from ttscale.search.steps import StepRule, strip_end_marker
from ttscale.search.thinking import Forced, ThinkState, answer_part, force
from ttscale.types import FinishReason, Generation


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


class Drafting:
    """Reads each generation into its child under the thinking budget and the step rule, and says whether
    the child goes on and, once it stops, which beam it is."""

    def __init__(self, settings: SearchSettings, rule: StepRule) -> None:
        self.settings, self.rule = settings, rule

    def forced(self, think: ThinkState | None, offset: int, gen: Generation) -> tuple[Forced, bool]:
        """One generation at solution offset `offset` with the thinking budget applied, and whether the
        model itself ended there (EOS or a format end marker)."""
        text, ended = strip_end_marker(gen.text, self.settings.end_markers)
        ended = ended or gen.finish_reason == "eos"
        return force(self.settings.thinking, think, offset, text, gen.n_tokens, ended), ended

    def absorb(self, d: Draft, gen: Generation) -> None:
        """Add one generation to a child, with the thinking budget applied to it."""
        forced, ended = self.forced(d.think, len(d.parent.text) + len(d.text), gen)
        # forced.state is None only when d.think is: a solution without thinking stays without
        closed_now = d.think is not None and not d.think.closed and forced.state is not None and forced.state.closed
        d.event, d.injected = bool(forced.injected) or closed_now, forced.injected
        d.ended = ended and not forced.injected  # an EOS inside thinking before min_tokens became "Wait"
        d.text, d.think, d.finish_reason = d.text + forced.text, forced.state, gen.finish_reason
        d.n_tokens += gen.n_tokens
        d.last_tokens = gen.n_tokens
        d.calls += 1
        d.logprobs, d.top_logprobs = d.logprobs + gen.logprobs, d.top_logprobs + gen.top_logprobs

    def goes_on(self, d: Draft, whole: bool) -> bool:
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
                and self.rule.too_short(step) and not self.answered(d, step))

    def tokens_left(self, d: Draft, whole: bool) -> int | None:
        """The cap of a child's next call: what its request's token limit (or one step) leaves."""
        if whole:
            limit = d.e.token_limit
            return limit - d.n_tokens if limit is not None else None
        return self.settings.max_step_tokens - d.n_tokens

    def answered(self, d: Draft, step: str) -> bool:
        """A solution is complete at EOS or an end marker, on an empty step, or once its answer part states an
        answer; while it thinks, only EOS ends it ("so the answer is 5... wait" is thinking, not an answer)."""
        if d.ended:
            return True
        if d.injected:  # text was just written for the model (a cue, "Wait"): it has not answered yet
            return False
        return states_answer(d.parent.text + d.text, d.think, step)

    def child(self, d: Draft) -> Beam:
        """The beam a finished draft becomes: its new steps cut by the step rule, whether and why it finished,
        and its node in the problem's search tree."""
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
        answered = self.answered(d, new_steps[-1] if not whole else d.text)
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


def states_answer(text: str, think: ThinkState | None, step: str) -> bool:
    """Past its thinking block, a solution is complete on an empty step or once its answer part states an answer."""
    part = answer_part(text, think)
    return part is not None and (not step.strip() or stated_answer(part) is not None)
