"""What a search returns: its beams as `Completion`s, the pick among them, and the problem's budget
with its FLOPs counted."""

from __future__ import annotations

import time
from collections.abc import Sequence

from ttscale.backends.base import Generator
from ttscale.confidence import summarize
from ttscale.grading.select import select
from ttscale.search.base import SearchSettings
from ttscale.search.records import Beam, ProblemState
from ttscale.types import Completion, ProblemResult
from ttscale.verifiers.base import Verifier


def budget_flops(st: ProblemState, generator: Generator, verifier: Verifier | None) -> float:
    """2 x parameters x tokens through each model, counting prefix-cache hits as free."""
    b = st.budget
    policy_tokens = b.generated_tokens + b.prompt_tokens - b.prompt_tokens_reused
    verifier_params = verifier.n_params if verifier is not None else 0
    return 2.0 * generator.n_params * policy_tokens + 2.0 * verifier_params * b.verifier_tokens


def completion(beam: Beam, settings: SearchSettings, scored: bool) -> Completion:
    """`scored`: a verifier gave the beam its step scores (else the completion has none)."""
    # A solution that never closed its thinking has no answer, only thoughts: graded as unanswered.
    unclosed = beam.think is not None and not beam.think.closed
    return Completion(
        text=beam.text,
        steps=beam.steps,
        answer=beam.answer,
        step_scores=beam.scores if scored else None,
        n_tokens=beam.n_tokens,
        finished=beam.finished,
        finish_reason="length" if unclosed or not beam.finished else beam.finish_reason,
        thinking_tokens=beam.think.tokens if beam.think else 0,
        confidence=summarize(beam.top_logprobs, settings.confidence_window) if beam.top_logprobs else None,
        logprobs=beam.logprobs if settings.save_logprobs else (),
        top_logprobs=beam.top_logprobs if settings.save_logprobs else (),
    )


def problem_result(st: ProblemState, strategy: str, beams: Sequence[Beam], settings: SearchSettings,
                   generator: Generator, verifier: Verifier | None, distinct: bool = False) -> ProblemResult:
    """`distinct`: the candidates come from one tree, so a repeated text votes once (grading.select)."""
    completions = tuple(completion(b, settings, verifier is not None) for b in beams)
    st.budget.wall_time_s = time.perf_counter() - st.started
    st.budget.flops = budget_flops(st, generator, verifier)
    return ProblemResult(
        problem=st.problem,
        strategy=strategy,
        completions=completions,
        selected=select(completions, settings.selection, settings.reduction, distinct),
        budget=st.budget,
        tree=tuple(st.tree) if settings.save_trees else (),
        distinct=distinct,
    )
