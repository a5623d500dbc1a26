"""What every model-based verifier shares: loading, length-bucketed batching, reading one output per step.

A family (rlhflow.py, math_shepherd.py, ...) only says how a (problem, steps) item
becomes token ids plus the positions whose output scores each step (`encode`), and
how those positions' outputs become scores in [0, 1] (`read`). Everything is causal,
so one forward pass over the whole solution scores every step, and a step's score
does not depend on the steps after it.

Causality also makes search's rescoring incremental: every round, beam
search sends each beam's FULL step list again, and each beam extends one scored the
round before. So every scored item's KV cache and step scores are kept
(`StepKVCache`, keyed by token ids, LRU under a byte budget); a new item reuses the
entry sharing its longest token prefix and only its remaining tokens are run. The
match is on token ids, not on step strings, so a chat template or tokenizer that
re-tokenizes the old text differently once a step is appended simply matches a
shorter prefix (at worst none: full scoring); a reused score is one read at a
position inside the matched prefix, whose output depends on nothing after it.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from ttscale.config import VerifierConfig
from ttscale.errors import ConfigError
from ttscale.models.loading import cache_kwarg
from ttscale.types import Problem
from ttscale.verifiers.encoding import Encoded, bucket_batches, candidate_logits, pad_id_of
from ttscale.verifiers.kv_cache import KVBlock, KVSlab, Reuse, StepKVCache, slab_layer_class


class HFVerifier:
    """Base of the model-based verifiers. Subclasses set `name`, `default_model` and implement encode/read.

    `kv_cache_bytes` bounds the incremental-scoring cache (see the module docstring);
    0 turns it off and every item is scored in full.
    """

    name = "hf"
    default_model = ""

    def __init__(
        self,
        cfg: VerifierConfig | None = None,
        *,
        model: Any = None,
        tokenizer: Any = None,
        kv_cache_bytes: int | None = None,
    ) -> None:
        self.cfg = cfg or VerifierConfig(name=self.name)
        if kv_cache_bytes is None:
            kv_cache_bytes = self.cfg.kv_cache_mb << 20
        if (model is None) != (tokenizer is None):
            raise ConfigError(f"verifier '{self.name}': pass both model= and tokenizer=, or neither")
        if kv_cache_bytes < 0:
            raise ConfigError(f"verifier '{self.name}': kv_cache_bytes={kv_cache_bytes}; accepted: >= 0 (0 = off)")
        if model is None:
            model, tokenizer = self._load(self.cfg.model or self.default_model, self.cfg.device, self.cfg.dtype)
        self.model = model
        self.tokenizer = tokenizer
        self.max_tokens_per_batch = self.cfg.max_tokens_per_batch
        self.pad_id = pad_id_of(tokenizer)
        self._last_lengths: dict[tuple[str, tuple[str, ...]], int] = {}
        self._setup()
        self.n_params = sum(p.numel() for p in self._modules_for_params().parameters())
        self._read_takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(self.read).parameters.values())
        self.kv_cache = StepKVCache(kv_cache_bytes) if kv_cache_bytes and self._takes_kv_cache() else None
        self._slab = KVSlab()
        self._cache_kwarg = cache_kwarg(self.model)

    # -- per family ---------------------------------------------------------------------
    def _load(self, name_or_path: str, device: str, dtype: str) -> tuple[Any, Any]:
        from transformers import AutoModelForCausalLM

        from ttscale.models.loading import load_pretrained

        return load_pretrained(AutoModelForCausalLM, name_or_path, None, device, dtype)

    def _setup(self) -> None:
        """Look up the family's special token ids once the tokenizer is known."""

    def _modules_for_params(self) -> Any:
        return self.model

    def _takes_kv_cache(self) -> bool:
        # transformers' own classes take a DynamicCache and position ids; remote code
        # (Qwen2ForProcessRewardModel) may predate them, so it is always scored in full,
        # as is a family whose `read` cannot pass model keyword arguments on
        return self._read_takes_kwargs and type(self.model).__module__.startswith("transformers.")

    def encode(self, problem: Problem, steps: Sequence[str]) -> Encoded:
        raise NotImplementedError

    def read(self, input_ids: Any, attention_mask: Any, rows: Any, cols: Any, **model_kwargs: Any) -> Any:
        """Scores in [0, 1] at the (row, col) positions of one padded batch, as a 1-D tensor.

        `model_kwargs` go to the model's forward as they are: use_cache, and the cache and
        position ids when a cached prefix is reused. A family whose `read` takes no
        `**model_kwargs` is called without them and always scored in full.
        """
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------
    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def count_tokens(self, problem: Problem, steps: Sequence[str]) -> int:
        """Tokens run through the model for this item by the last score() (all of them if it was not scored)."""
        if not steps:
            return 0
        known = self._last_lengths.get((problem.question, tuple(steps)))
        return known if known is not None else len(self.encode(problem, steps).input_ids)

    def score(self, problems: Sequence[Problem], steps: Sequence[Sequence[str]]) -> list[list[float]]:
        results: list[list[float]] = [[] for _ in problems]
        todo = [i for i, s in enumerate(steps) if s]
        encoded = {i: self.encode(problems[i], steps[i]) for i in todo}
        reuse = {i: self._reuse(encoded[i]) for i in todo}
        run = [len(encoded[i].input_ids) - reuse[i].tokens for i in todo]
        # search asks count_tokens for every item it just scored, to charge the verifier's FLOPs to its problem
        self._last_lengths = {(problems[i].question, tuple(steps[i])): n for i, n in zip(todo, run)}
        for batch in bucket_batches(run, self.max_tokens_per_batch):
            scores = self._score_batch([encoded[todo[b]] for b in batch], [reuse[todo[b]] for b in batch])
            for b, item_scores in zip(batch, scores):
                results[todo[b]] = item_scores
        return results

    def _reuse(self, e: Encoded) -> Reuse:
        """The longest cached prefix of `e` that holds a score for every read position inside it."""
        if self.kv_cache is None:
            return Reuse()
        shared, entry = self.kv_cache.longest_prefix(e.input_ids)
        if entry is None:
            return Reuse()
        # >= 1 token must run; a read position the entry never scored must run too
        unscored = [p for p in e.positions if p < shared and p not in entry.scores]
        tokens = min([shared, len(e.input_ids) - 1, *unscored])
        if tokens == 0:
            return Reuse()
        self.kv_cache.hits += 1
        self.kv_cache.reused_tokens += tokens
        whole = tuple(e.input_ids[:shared]) if shared == entry.length < len(e.input_ids) else None
        return Reuse(tokens, entry, {p: entry.scores[p] for p in e.positions if p < tokens}, whole)

    def _score_batch(self, items: list[Encoded], reuse: list[Reuse]) -> list[list[float]]:
        """One forward over the new tokens of each item; rows are [pad | reused prefix | new tokens | pad].

        Keeping each row's tokens contiguous means no query row is fully masked (a pad
        query after the new tokens still sees them), and positions from the mask's
        cumsum give a reused prefix the positions its keys were rotated with.
        """
        import torch

        width_c = max(r.tokens for r in reuse)
        width_s = max(len(e.input_ids) - r.tokens for e, r in zip(items, reuse))
        input_ids = torch.full((len(items), width_c + width_s), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(items), width_c + width_s), dtype=torch.long)
        rows, cols = [], []
        for row, (e, r) in enumerate(zip(items, reuse)):
            start = width_c - r.tokens
            input_ids[row, start : start + len(e.input_ids)] = torch.tensor(e.input_ids, dtype=torch.long)
            attention_mask[row, start : start + len(e.input_ids)] = 1
            new = [p - r.tokens for p in e.positions if p >= r.tokens]
            rows += [row] * len(new)
            cols += new
        device = self.device
        model_kwargs: dict[str, Any] = {}
        with torch.inference_mode():
            if self.kv_cache is not None:
                model_kwargs["use_cache"] = True
                model_kwargs[self._cache_kwarg] = self._prefilled(reuse, width_c + width_s)
                model_kwargs["position_ids"] = (attention_mask.cumsum(-1) - 1).clamp(min=0)[:, width_c:].to(device)
            elif self._read_takes_kwargs:
                model_kwargs["use_cache"] = False
            flat = self.read(
                input_ids[:, width_c:].to(device),
                attention_mask.to(device),
                torch.tensor(rows, dtype=torch.long, device=device),
                torch.tensor(cols, dtype=torch.long, device=device),
                **model_kwargs,
            )
            out = self._assemble(items, reuse, flat.float().clamp(0.0, 1.0).tolist())
            if self.kv_cache is not None:
                self._remember(model_kwargs[self._cache_kwarg], items, reuse, out, width_c)
        return out

    @staticmethod
    def _assemble(items: list[Encoded], reuse: list[Reuse], flat: list[float]) -> list[list[float]]:
        """Each item's step scores: reused below its cached prefix, read from this batch's `flat` after it."""
        out, k = [], 0
        for e, r in zip(items, reuse):
            new = [p for p in e.positions if p >= r.tokens]
            computed = dict(zip(new, flat[k : k + len(new)]))
            k += len(new)
            out.append([r.scores[p] if p < r.tokens else computed[p] for p in e.positions])
        return out

    def _prefilled(self, reuse: list[Reuse], width: int) -> Any:
        """A cache over the slab, `width` columns wide, holding each row's reused prefix KV right-aligned."""
        from transformers.cache_utils import Cache

        layer = slab_layer_class()
        # the layers transformers makes on first use (no row reuses a prefix) are slab layers too; it types
        # the argument as a layer class and calls it with no arguments, so a lambda typed Any
        replicate: Any = lambda: layer(self._slab, len(cache.layers), width)  # noqa: E731
        cache: Any = Cache(layer_class_to_replicate=replicate)
        template = next((r.item for r in reuse if r.tokens), None)
        if template is None:
            return cache
        for index, (k0, _) in enumerate(template.kv):
            cache.layers.append(layer(self._slab, index, width))
            cache.layers[-1].bind(len(reuse), k0.shape[0], k0.shape[2], k0.dtype, k0.device)
        prefix = max(r.tokens for r in reuse)
        for row, r in enumerate(reuse):
            offset = prefix - r.tokens
            for lo, hi, kv, first in r.item.segments(r.tokens) if r.tokens and r.item is not None else []:
                for slab_layer, (keys, values) in zip(cache.layers, kv):
                    slab_layer.keys[row, :, offset + lo : offset + hi] = keys[:, lo - first : hi - first]
                    slab_layer.values[row, :, offset + lo : offset + hi] = values[:, lo - first : hi - first]
        for slab_layer in cache.layers:
            slab_layer.filled = prefix
        return cache

    def _remember(
        self, cache: Any, items: list[Encoded], reuse: list[Reuse], scores: list[list[float]], width_c: int
    ) -> None:
        """Store each row's new tokens' KV (one copy out of the slab for the batch) chained to what it reused.

        An entry an item reused whole is dropped from the index: the item's own entry
        covers every token of it (beam search never returns to a parent once it has
        children); its KV stays as long as a child reads it.
        """
        store = self.kv_cache
        if store is None:  # only called while incremental scoring keeps a cache
            return
        width_s = max(len(e.input_ids) - r.tokens for e, r in zip(items, reuse))
        new = [
            (
                layer.keys[:, :, width_c : width_c + width_s].clone(),
                layer.values[:, :, width_c : width_c + width_s].clone(),
            )
            for layer in cache.layers
        ]
        block = KVBlock([t for pair in new for t in pair])
        rows = []
        for row, (e, r, sc) in enumerate(zip(items, reuse, scores)):
            n = len(e.input_ids) - r.tokens
            kv = [(keys[row, :, :n], values[row, :, :n]) for keys, values in new]
            rows.append((e.input_ids, r.tokens, kv, dict(zip(e.positions, sc)), r.item if r.tokens else None))
        store.put_block(block, rows)
        for r in reuse:
            if r.whole is not None:
                store.discard(r.whole)


class CandidateTokenVerifier(HFVerifier):
    """Causal-LM PRMs and judges: a step's score is P(good tokens) against P(bad tokens) at its position."""

    good_ids: list[int]
    bad_ids: list[int]

    def read(self, input_ids: Any, attention_mask: Any, rows: Any, cols: Any, **model_kwargs: Any) -> Any:
        import torch

        ids = self.good_ids + self.bad_ids
        logits = candidate_logits(self.model, input_ids, attention_mask, rows, cols, ids, **model_kwargs)
        n_good = len(self.good_ids)
        good = torch.logsumexp(logits[:, :n_good], dim=-1)
        bad = torch.logsumexp(logits[:, n_good:], dim=-1)
        # softmax over [good, bad], first column; with one token each this is the cards' formula
        return torch.sigmoid(good - bad)
