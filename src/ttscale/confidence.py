"""Confidence of a sampled trace from its token log-probabilities (DeepConf's measures): pure functions.

Inputs are what a Generator records when `sampling.logprobs = k > 0`: per generated token,
the top-k log-probabilities of the model's distribution, descending. Higher is more
confident everywhere below.

- token confidence, C_i = -mean_j log p_ij over the top k (DeepConf, Fu et al. 2025, eq. 2):
  a peaked distribution puts its alternatives far down, so their mean log-prob is very negative;
- group confidence: C_i averaged over a sliding window of w tokens (DeepConf eq. 4), which
  shows a local collapse that the trace mean hides;
- lowest group / bottom-10% groups / tail (last w tokens): DeepConf's trace scores;
- self-certainty (Kang et al. 2025): mean over tokens of KL(uniform || p). Only the top k of
  the vocabulary are recorded, so it is computed over them renormalised (V = k); with k equal
  to the vocabulary it is the paper's measure exactly.

Self-certainty also scores steps (`prefix_certainty`, the `self_certainty` verifier) and picks among
candidates (grading.select's `self_certainty` and `confidence_weighted`): reward-free best-of-N.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ttscale.types import ConfidenceSummary

TopLogprobs = Sequence[Sequence[float]]

MEASURES = ("mean", "lowest_group", "bottom10_group", "tail")

# DeepConf's experiments read the top 20 log-probabilities (the most vLLM and OpenAI return); used by
# every confidence reader when sampling.logprobs is left at 0.
DEFAULT_TOP_K = 20


def token_confidence(top_logprobs: TopLogprobs) -> list[float]:
    """C_i = -(1/k) sum_j log p_ij for every position i (positions without alternatives count 0)."""
    return [-sum(row) / len(row) if row else 0.0 for row in top_logprobs]


def group_confidence(token_conf: Sequence[float], window: int) -> list[float]:
    """Mean token confidence of every window of `window` consecutive tokens.

    A trace shorter than one window is one group (its mean), so every non-empty trace has a score.
    """
    if not token_conf:
        return []
    if len(token_conf) <= window:
        return [sum(token_conf) / len(token_conf)]
    total = sum(token_conf[:window])
    groups = [total / window]
    for i in range(window, len(token_conf)):
        total += token_conf[i] - token_conf[i - window]
        groups.append(total / window)
    return groups


def lowest_group(groups: Sequence[float]) -> float:
    return min(groups) if groups else 0.0


def bottom_groups(groups: Sequence[float], fraction: float = 0.1) -> float:
    """Mean of the lowest `fraction` of the groups (at least one): DeepConf's bottom-10% confidence."""
    if not groups:
        return 0.0
    k = max(1, math.ceil(fraction * len(groups)))
    return sum(sorted(groups)[:k]) / k


def tail_confidence(token_conf: Sequence[float], tail: int) -> float:
    """Mean token confidence of the last `tail` tokens: the answer's part of a trace (DeepConf)."""
    last = token_conf[-tail:]
    return sum(last) / len(last) if last else 0.0


def token_certainty(top_logprobs: TopLogprobs) -> list[float]:
    """KL(U || p) = -log V - (1/V) sum_j log p_j at every position, over its renormalised top V (no row: none)."""
    values = []
    for row in top_logprobs:
        if not row:
            continue
        top = max(row)
        log_z = top + math.log(sum(math.exp(x - top) for x in row))
        values.append(-math.log(len(row)) - sum(x - log_z for x in row) / len(row))
    return values


def self_certainty(top_logprobs: TopLogprobs) -> float:
    """Mean over tokens of KL(U || p): Kang et al. 2025's self-certainty of a trace."""
    values = token_certainty(top_logprobs)
    return sum(values) / len(values) if values else 0.0


def prefix_certainty(step_rows: Sequence[TopLogprobs]) -> list[float]:
    """Per step, the self-certainty of the trace up to the end of that step.

    The trace's measure read at each step end, so the last step's value is the whole trace's (the
    `last` reduction is Kang et al.'s score) and a step's value never changes when later steps are
    appended (what beam search prunes on). A step with no rows keeps the value before it.
    """
    out, total, count = [], 0.0, 0
    for rows in step_rows:
        values = token_certainty(rows)
        total, count = total + sum(values), count + len(values)
        out.append(total / count if count else 0.0)
    return out


def split_rows(rows: TopLogprobs, weights: Sequence[int]) -> list[TopLogprobs]:
    """`rows` cut into consecutive pieces in proportion to `weights` (each step's token count).

    Generators record rows per token, not per step, and a whole solution's steps are cut from its
    text afterwards; counting each step's tokens on its own can differ from the trace's tokens by
    one at a boundary, so the pieces are proportional and the last one ends at the last row.
    """
    total = sum(max(w, 0) for w in weights)
    out, start, seen = [], 0, 0
    for i, w in enumerate(weights):
        seen += max(w, 0)
        end = len(rows) if i == len(weights) - 1 else (round(len(rows) * seen / total) if total else 0)
        out.append(rows[start:end])
        start = max(start, end)
    return out


def summarize(top_logprobs: TopLogprobs, window: int) -> ConfidenceSummary:
    """Every measure of one trace: what completions.jsonl keeps unless output.save_logprobs."""
    conf = token_confidence(top_logprobs)
    groups = group_confidence(conf, window)
    return ConfidenceSummary(
        mean=sum(conf) / len(conf) if conf else 0.0,
        lowest_group=lowest_group(groups),
        bottom10_group=bottom_groups(groups, 0.1),
        tail=tail_confidence(conf, window),
        self_certainty=self_certainty(top_logprobs),
        n_tokens=len(conf),
    )


def trace_confidence(summary: ConfidenceSummary | None, measure: str) -> float:
    """The named measure of a summary; a trace recorded without logprobs has confidence 0."""
    return 0.0 if summary is None else float(getattr(summary, measure))
