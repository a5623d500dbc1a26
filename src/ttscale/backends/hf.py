"""Hugging Face transformers backend: the CPU default, and CUDA when present.

Prompts are grouped so that each unique prompt is prefilled once and its KV cache
forked n ways (`batch_repeat_interleave`), and prefixes seen in earlier rounds are
read from the prefix KV store instead of being re-encoded: step-wise search sends every
shared prefix again each round, and re-encoding it would cost a round as much as the first.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ttscale.backends.base import cancelled_generation, child_seeds, same_params, truncate_at_stop
from ttscale.backends.sampling import LogprobRecorder, RowSampler
from ttscale.config import ModelConfig
from ttscale.data.prompts import encode_prompt
from ttscale.models.loading import cache_kwarg, load_pretrained
from ttscale.models.prefix_cache import KV, PrefixKVStore
from ttscale.types import FinishReason, Generation, SamplingParams

STATIC_WIDTH_STEP = 64


class CancelledRows:
    """A transformers stopping criterion: a row whose flag is set is done at the next decode step.

    A criterion answers one bool per row; `generate` keeps finished rows out of sampling and ends once
    every row is done (transformers generation/utils.py, `_sample`: `unfinished_sequences &
    ~stopping_criteria(...)`), so a cancelled prompt costs one more step, and a call whose prompts are
    all cancelled ends. `cut[row]` is how many tokens the row had generated when it was stopped: what
    it holds past that came after the stop (padding, or tokens nobody asked for).
    """

    def __init__(self, flags: Sequence[threading.Event | None], width: int) -> None:
        self.flags, self.width = flags, width
        self.cut: dict[int, int] = {}

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        done = [f is not None and f.is_set() for f in self.flags]
        for row, stopped in enumerate(done):
            if stopped:
                self.cut.setdefault(row, input_ids.shape[1] - self.width)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class HFGenerator:
    name = "hf"

    def __init__(self, cfg: ModelConfig, model: Any = None, tokenizer: Any = None) -> None:
        from transformers import AutoModelForCausalLM

        if model is None:
            model, tokenizer = load_pretrained(
                AutoModelForCausalLM, cfg.name_or_path, cfg.gguf_file, cfg.device, cfg.dtype
            )
        self.model, self.tokenizer = model, tokenizer
        self.max_batch_size = cfg.max_batch_size
        self.n_params = sum(p.numel() for p in model.parameters())
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        eos = model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) | {tokenizer.eos_token_id}
        self.eos_ids.discard(None)
        self.static = cfg.cache_implementation == "static"
        # Batch invariance: a row's numbers may depend only on its own prompt. In bf16 a matmul's result
        # moves with the padding and the shapes its neighbours bring, and a reused prefix's KV was
        # computed in whatever batch first held it; so each prompt runs alone and nothing is reused.
        self.batch_invariant = cfg.batch_invariant
        reuse = cfg.prefix_cache and not self.static and not cfg.batch_invariant
        self.store = PrefixKVStore(cfg.kv_cache_mb << 20) if reuse else None
        self._cache_kwarg = cache_kwarg(model)

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def count_tokens(self, text: str) -> int:
        return len(encode_prompt(self.tokenizer, text))

    def generate(self, prompts: Sequence[str], params: Sequence[SamplingParams]) -> list[list[Generation]]:
        return self.generate_cancellable(prompts, params, [None] * len(prompts))

    def generate_cancellable(
        self, prompts: Sequence[str], params: Sequence[SamplingParams], cancelled: Sequence[threading.Event | None]
    ) -> list[list[Generation]]:
        """`generate`, where prompt i stops at the next decode step once `cancelled[i]` is set (base.py)."""
        encoded = [encode_prompt(self.tokenizer, p) for p in prompts]
        out: list[list[Generation]] = [[] for _ in prompts]
        # Rows with other token caps share a call: each row samples from its own stream, so decoding
        # past a row's cap and cutting there gives exactly what stopping at the cap would.
        for shared, members in same_params(params, "max_new_tokens").items():
            order = sorted(members, key=lambda i: len(encoded[i]))  # length buckets pad little
            per_batch = 1 if self.batch_invariant else max(1, self.max_batch_size // shared.n)
            for start in range(0, len(order), per_batch):
                chunk = order[start : start + per_batch]
                flags = [cancelled[i] for i in chunk]
                if all(f is not None and f.is_set() for f in flags):
                    for i in chunk:  # nobody waits for these: not even a prefill
                        out[i] = [cancelled_generation(len(encoded[i]))] * shared.n
                    continue
                caps = [params[i].max_new_tokens for i in chunk]
                seeds = [s for i in chunk for s in child_seeds(params[i])]
                call = replace(shared, max_new_tokens=max(caps))
                gens = self._generate_batch([encoded[i] for i in chunk], call, seeds, caps, flags)
                for i, row in zip(chunk, gens):
                    out[i] = row
        return out

    def _layout(self, batch: list[list[int]]) -> tuple[Any, Any, Any, int]:
        """input ids, mask and prefilled cache: [pad | reused prefix | pad | new suffix] per row.

        Holes in the mask are fine: positions come from the mask's cumsum, so a reused
        prefix keeps the positions its keys were rotated with.
        """
        import torch
        from transformers import DynamicCache

        hits = [self.store.lookup(ids) if self.store is not None else (0, None) for ids in batch]
        hits = [(min(c, len(ids) - 1), kv) for (c, kv), ids in zip(hits, batch)]  # >= 1 token to feed
        width_c = max(c for c, _ in hits)
        width_s = max(len(ids) - c for (c, _), ids in zip(hits, batch))
        pad = self.tokenizer.pad_token_id
        rows, masks = [], []
        for (c, _), ids in zip(hits, batch):
            s = len(ids) - c
            rows.append([pad] * (width_c - c) + ids[:c] + [pad] * (width_s - s) + ids[c:])
            masks.append([0] * (width_c - c) + [1] * c + [0] * (width_s - s) + [1] * s)
        input_ids = torch.tensor(rows, device=self.device)
        mask = torch.tensor(masks, device=self.device)
        cache = DynamicCache(ddp_cache_data=self._stack(hits, width_c)) if width_c else DynamicCache()
        if width_s > 1:
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            self.model(
                input_ids=input_ids[:, width_c:-1], attention_mask=mask[:, :-1],
                position_ids=positions[:, width_c:-1], use_cache=True, **{self._cache_kwarg: cache},
            )
        return input_ids, mask, cache, width_c + width_s

    def _stack(self, hits: list[tuple[int, KV | None]], width: int) -> KV:
        template = next(kv for c, kv in hits if c and kv is not None)
        layers = []
        for layer, (k0, v0) in enumerate(template):
            keys = k0.new_zeros((len(hits), k0.shape[0], width, k0.shape[2]))
            values = v0.new_zeros((len(hits), v0.shape[0], width, v0.shape[2]))
            for row, (c, kv) in enumerate(hits):
                if c:
                    keys[row, :, width - c :] = kv[layer][0][:, :c]
                    values[row, :, width - c :] = kv[layer][1][:, :c]
            layers.append((keys, values))
        return layers

    def _static_layout(self, batch: list[list[int]], n: int) -> tuple[Any, Any, int]:
        """[pad | prompt] rows, each prompt n times, in shapes that repeat across rounds.

        A compiled decode graph and transformers' reusable static cache both key on the
        shapes: the row count is padded to max_batch_size (copies, dropped afterwards) and
        the width rounded up to a multiple of STATIC_WIDTH_STEP.
        """
        import torch

        rows = [ids for ids in batch for _ in range(n)]
        rows += [rows[0]] * (self.max_batch_size - len(rows))
        width = -(-max(map(len, rows)) // STATIC_WIDTH_STEP) * STATIC_WIDTH_STEP
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=self.device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=self.device)
        return input_ids, mask, width

    def _generate_batch(
        self, batch: list[list[int]], params: SamplingParams, seeds: list[int | None], caps: list[int],
        cancelled: list[threading.Event | None],
    ) -> list[list[Generation]]:
        import torch

        with torch.inference_mode():
            if self.static:
                input_ids, mask, width = self._static_layout(batch, params.n)
                cache_args: dict[str, Any] = {"cache_implementation": "static"}
            else:
                input_ids, mask, cache, width = self._layout(batch)
                if params.n > 1:
                    cache.batch_repeat_interleave(params.n)  # fork each prefilled prompt n ways
                    input_ids = input_ids.repeat_interleave(params.n, 0)
                    mask = mask.repeat_interleave(params.n, 0)
                cache_args = {self._cache_kwarg: cache}
            # Sampling runs in RowSampler on top of a greedy decode: one seeded stream per row, never
            # the global RNG, so a row's tokens do not depend on its batch (docs/DESIGN.md, "Where randomness
            # comes from").
            sampling: dict[str, Any] = {"do_sample": False}
            sampler = None
            padding = input_ids.shape[0] - len(seeds)  # static mode pads rows; their draws are discarded
            if params.temperature > 0:
                sampler = RowSampler(seeds + [0] * padding, params.temperature, params.top_p)
            recorder = LogprobRecorder(params.logprobs, sampler) if params.logprobs else None
            if recorder is not None or sampler is not None:
                sampling["logits_processor"] = [recorder or sampler]
            # A padding row copies the first prompt, so it stops with it and never keeps a cancelled call going.
            stop = CancelledRows([f for f in cancelled for _ in range(params.n)] + [cancelled[0]] * padding, width)
            if any(f is not None for f in cancelled):
                sampling["stopping_criteria"] = [stop]
            out = self.model.generate(
                input_ids=input_ids, attention_mask=mask, **cache_args,
                max_new_tokens=params.max_new_tokens, stop_strings=list(params.stop) or None,
                tokenizer=self.tokenizer if params.stop else None, pad_token_id=self.tokenizer.pad_token_id,
                top_k=None, return_dict_in_generate=True, **sampling,
            )
            gens = []
            for r, row in enumerate(out.sequences[: len(batch) * params.n]):  # static mode pads rows
                cap = caps[r // params.n]
                new_ids = row[width:].tolist()[: min(cap, stop.cut.get(r, cap))]
                kept, gen = self._to_generation(new_ids, len(batch[r // params.n]), params)
                if recorder is not None:
                    sampled, top = recorder.row(r, gen.n_tokens)
                    gen = replace(gen, logprobs=sampled, top_logprobs=top)
                if self.store is not None:
                    self._remember(cache, r, mask[r], width, batch[r // params.n], kept)
                gens.append(gen)
        return [gens[i * params.n : (i + 1) * params.n] for i in range(len(batch))]

    def _remember(self, cache: Any, row: int, mask: Any, width: int, prompt: list[int], kept: list[int]) -> None:
        """Store one row's KV (prompt + kept generated tokens) for the next round's prefixes."""
        import torch

        have = cache.get_seq_length() - width  # the last sampled token was never fed back
        n_gen = max(0, min(len(kept), have))
        idx = torch.cat([torch.nonzero(mask[:width]).flatten(),
                         torch.arange(width, width + n_gen, device=mask.device)])
        kv = [(layer.keys[row].index_select(1, idx), layer.values[row].index_select(1, idx)) for layer in cache.layers]
        self.store.put(prompt + kept[:n_gen], kv)

    def _to_generation(self, new_ids: list[int], prompt_len: int, params: SamplingParams) -> tuple[list[int], Generation]:
        end = next((i for i, t in enumerate(new_ids) if t in self.eos_ids), None)
        kept = new_ids if end is None else new_ids[:end]
        text, stopped = truncate_at_stop(self.tokenizer.decode(kept, skip_special_tokens=True), params.stop)
        reason: FinishReason = "stop" if stopped else ("eos" if end is not None else "length")
        n_tokens = len(kept) + (1 if end is not None and not stopped else 0)
        return kept, Generation(text=text, n_tokens=n_tokens, finish_reason=reason, prompt_tokens=prompt_len)
