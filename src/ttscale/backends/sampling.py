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
        """As a logits processor: scores whose argmax is each row's sampled token."""
        import torch

        tokens = self.choose(scores, range(scores.shape[0]))
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, tokens.unsqueeze(1), 0.0)

    def choose(self, scores: Any, rows: Sequence[int | None]) -> Any:
        """One sampled token per row of `scores`, which holds the logits of the rows named by `rows`;
        a None row (one whose tokens nobody reads) draws from no stream."""
        import torch

        logits = scores.float() / self.temperature
        if self.top_p < 1.0:
            logits = top_p_filter(logits, self.top_p)
        cdf = logits.softmax(-1).cumsum(-1)
        draws = torch.tensor([self.rngs[r].random() if r is not None else 0.5 for r in rows], dtype=cdf.dtype,
                             device=cdf.device)
        # right=True: the first token whose CDF passes the draw, so a zero-probability token is never chosen
        tokens = torch.searchsorted(cdf, draws.unsqueeze(1) * cdf[:, -1:], right=True).clamp_(max=cdf.shape[-1] - 1)
        return tokens.squeeze(1)


def top_p_filter(logits: Any, top_p: float) -> Any:
    """Nucleus filtering (Holtzman et al. 2020): keep the smallest set of top tokens whose mass reaches top_p."""
    import torch

    sorted_logits, order = logits.sort(-1, descending=True)
    mass_before = sorted_logits.softmax(-1).cumsum(-1) - sorted_logits.softmax(-1)
    drop_sorted = mass_before >= top_p  # the token that crosses top_p is kept; the first token always is
    drop = torch.zeros_like(drop_sorted).scatter_(1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


class LogprobRecorder:
    """Records, per step and row, the chosen token's log-probability and the top k.

    It sees the model's raw scores and the token chosen from them in one place: log-probabilities
    come from the unscaled distribution, as vLLM's default (raw) logprobs do, so a trace's
    confidence does not change with the sampling temperature. Only (rows, k) per step is kept,
    never the vocabulary-wide scores, and as tensors, so a GPU decode is not synchronised per step.
    As a logits processor it wraps the sampler (None: greedy); a decode loop that drops finished
    rows calls `record` with the rows still in the batch.
    """

    def __init__(self, k: int, sampler: RowSampler | None = None) -> None:
        self.k, self.sampler = k, sampler
        self.steps: list[tuple[Sequence[int] | None, Any, Any]] = []  # (rows, or None for all; sampled; top k)
        self._rows: dict[int, tuple[list[float], list[tuple[float, ...]]]] | None = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        out = self.sampler(input_ids, scores) if self.sampler is not None else scores
        self.record(None, scores, out.argmax(-1))  # what greedy decoding takes next from these scores
        return out

    def record(self, rows: Sequence[int] | None, scores: Any, chosen: Any) -> None:
        logp = scores.float().log_softmax(-1)
        self.steps.append((rows, logp.gather(1, chosen.unsqueeze(1)).squeeze(1), logp.topk(self.k, -1).values))

    def row(self, r: int, n_tokens: int) -> tuple[tuple[float, ...], tuple[tuple[float, ...], ...]]:
        """Row r's first n_tokens positions: (sampled logprobs, top-k rows)."""
        if self._rows is None:  # read back once, after the decode
            self._rows = {}
            for rows, sampled, top in self.steps:
                for i, (lp, tk) in enumerate(zip(sampled.tolist(), top.tolist())):
                    got = self._rows.setdefault(i if rows is None else rows[i], ([], []))
                    got[0].append(lp)
                    got[1].append(tuple(tk))
        sampled_r, top_r = self._rows.get(r, ([], []))
        return tuple(sampled_r[:n_tokens]), tuple(top_r[:n_tokens])
