"""The policy as its own verifier: a step scored by the self-certainty of the tokens that wrote it.

Kang et al. 2025 ("Scalable Best-of-N Selection for LLMs via Self-Certainty", arXiv 2502.18581)
rank whole samples by self-certainty, the mean over tokens of KL(uniform || p); read at every step
end, the same measure guides beam search, DVTS and particle filtering with no reward model at all.

It reads the top-k log-probabilities the generator recorded while sampling (every backend records
them when asked; the search asks for `confidence.DEFAULT_TOP_K` when `sampling.logprobs` is 0), so
it runs no model and costs no tokens: `n_params` and `count_tokens` are 0, and the budget shows
the search's compute alone. Text alone says nothing of the policy's confidence, so `score` (the
Verifier protocol's text-only call, what `serve-verifier` and rescoring scripts make) refuses.

A step's score is 1 - exp(-s), s the self-certainty of the trace up to the end of that step
(`confidence.prefix_certainty`): in [0, 1], increasing in s, unchanged when later steps are
appended, and logit(score) = log(e^s - 1) ~ s, so particle filtering's softmax(logit(p) / T)
weighs particles by about e^(s / T).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ttscale.confidence import TopLogprobs, prefix_certainty
from ttscale.config import VerifierConfig
from ttscale.errors import ConfigError
from ttscale.types import Problem


class SelfCertaintyVerifier:
    name = "self_certainty"
    n_params = 0
    reads_logprobs = True  # the search core passes each step's recorded rows (search/expand.py)

    def __init__(self, cfg: VerifierConfig | None = None) -> None:
        pass

    def score(self, problems: Sequence[Problem], steps: Sequence[Sequence[str]]) -> list[list[float]]:
        raise ConfigError(
            "verifier 'self_certainty' scores steps by the log-probabilities the policy recorded while writing "
            "them, which text alone does not carry; use it as a search's verifier (verifier.name=self_certainty), "
            "not to rescore or serve text (accepted there: a PRM, lm_judge, arithmetic_rules)"
        )

    def score_logprobs(self, problems: Sequence[Problem], steps: Sequence[Sequence[str]],
                       rows: Sequence[Sequence[TopLogprobs]]) -> list[list[float]]:
        """rows[i][j]: the top-k log-probability rows of the tokens of steps[i][j]."""
        # KL(U || p) >= 0; max() keeps a rounding error of a flat row out of [0, 1]'s complement
        return [[1.0 - math.exp(-max(s, 0.0)) for s in prefix_certainty(item)] for item in rows]

    def count_tokens(self, problem: Problem, steps: Sequence[str]) -> int:
        return 0
