"""Per-row sampling for the HF backend: each row draws from its own seeded stream, so
a run samples the same whatever its batch size.

transformers samples a batch with one `torch.multinomial` on the global RNG, so a row's
tokens depend on its batch neighbours and on the order of earlier calls. `RowSampler`
runs as the last logits processor of a greedy `generate`: it applies temperature and
top-p, samples each row by inverse CDF with that row's own uniform draw, and returns
scores whose argmax is the sampled token. The uniforms come from Python's
`random.Random(seed)`, one per row and step, so they are the same on every device and
torch build: a row's sample depends on its seed and its own logits alone.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any


class RowSampler:
    """A logits processor: row r samples with temperature and top-p from `random.Random(seeds[r])`."""

    def __init__(self, seeds: Sequence[int | None], temperature: float, top_p: float) -> None:
        self.rngs = [random.Random(s) if s is not None else random.Random() for s in seeds]
        self.temperature, self.top_p = temperature, top_p

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        logits = scores.float() / self.temperature
        if self.top_p < 1.0:
            logits = top_p_filter(logits, self.top_p)
        cdf = logits.softmax(-1).cumsum(-1)
        draws = torch.tensor([r.random() for r in self.rngs[: cdf.shape[0]]], dtype=cdf.dtype, device=cdf.device)
        # right=True: the first token whose CDF passes the draw, so a zero-probability token is never chosen
        tokens = torch.searchsorted(cdf, draws.unsqueeze(1) * cdf[:, -1:], right=True).clamp_(max=cdf.shape[-1] - 1)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, tokens, 0.0)


def top_p_filter(logits: Any, top_p: float) -> Any:
    """Nucleus filtering (Holtzman et al. 2020): keep the smallest set of top tokens whose mass reaches top_p."""
    import torch

    sorted_logits, order = logits.sort(-1, descending=True)
    mass_before = sorted_logits.softmax(-1).cumsum(-1) - sorted_logits.softmax(-1)
    drop_sorted = mass_before >= top_p  # the token that crosses top_p is kept; the first token always is
    drop = torch.zeros_like(drop_sorted).scatter_(1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


class LogprobRecorder:
    """A logits processor that records, per step and row, the chosen token's log-probability and the top k.

    It wraps the sampler (None: greedy) so it sees the model's raw scores and the token chosen
    from them in one place: log-probabilities come from the unscaled distribution, as vLLM's
    default (raw) logprobs do, so a trace's confidence does not change with the sampling
    temperature. Only (rows, k) per step is kept, never the vocabulary-wide scores.
    """

    def __init__(self, k: int, sampler: RowSampler | None = None) -> None:
        self.k, self.sampler = k, sampler
        self.sampled: list[Any] = []
        self.top: list[Any] = []

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        logp = scores.float().log_softmax(-1)
        out = self.sampler(input_ids, scores) if self.sampler is not None else scores
        chosen = out.argmax(-1, keepdim=True)  # what greedy decoding takes next from these scores
        self.sampled.append(logp.gather(1, chosen).squeeze(1))
        self.top.append(logp.topk(self.k, -1).values)
        return out

    def row(self, r: int, n_tokens: int) -> tuple[tuple[float, ...], tuple[tuple[float, ...], ...]]:
        """Row r's first n_tokens positions: (sampled logprobs, top-k rows)."""
        import torch

        if not self.sampled or n_tokens == 0:
            return (), ()
        sampled = torch.stack(self.sampled, 1)[r, :n_tokens].tolist()
        top = torch.stack(self.top, 1)[r, :n_tokens].tolist()
        return tuple(sampled), tuple(tuple(t) for t in top)
