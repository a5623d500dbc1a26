"""Hugging Face transformers backend: the CPU default, and CUDA when present.

Prompts are grouped so that each unique prompt is prefilled once and its KV cache held
once for its n rows (models/shared_prefix.py; forked n ways where that attention does not
apply), and prefixes seen in earlier rounds, or shared by a call's prompts, are read from
the prefix KV store instead of being re-encoded: step-wise search sends every shared
prefix again each round, and re-encoding it would cost a round as much as the first.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ttscale.backends.base import cancelled_generation, child_seeds, same_params, truncate_at_stop
from ttscale.backends.batch import RunningBatch
from ttscale.backends.sampling import LogprobRecorder, RowSampler
from ttscale.config import ModelConfig
from ttscale.data.prompts import encode_prompt
from ttscale.models.loading import cache_kwarg, compile_kwargs, load_pretrained, prefill_kwargs
from ttscale.models.prefix_cache import KV, PrefixKVStore, common_prefix_length, longest_prefix_match
from ttscale.models.shared_prefix import PREFIX_KWARG
from ttscale.types import FinishReason, Generation, SamplingParams

log = logging.getLogger(__name__)
STATIC_WIDTH_STEP = 64
MIN_COMMON_PREFIX = 32  # tokens all of a call's prompts share before prefilling them once pays for its own call
ROW_QUANTUM = 16  # the compact loop's batch is a multiple of this many rows (HFGenerator._decode says why)


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
        self.n_params = sum(p.numel() for p in model.parameters())  # FLOPs count weights, however stored
        if cfg.quantize == "int8":
            from ttscale.models.quantize import quantize_int8

            quantize_int8(model)  # in place: a model passed in is the caller's to copy first
        self.model, self.tokenizer = model, tokenizer
        self.max_batch_size = cfg.max_batch_size
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        eos = model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) | {tokenizer.eos_token_id}
        self.eos_ids.discard(None)
        self.static = cfg.cache_implementation == "static"
        self._compile = compile_kwargs(cfg.compile, str(self.device.type))
        if cfg.compile == "always":
            log.info("model.compile=always: the first call compiles the decode step (about a minute on 2 CPU cores)")
        # Batch invariance: a row's numbers may depend only on its own prompt. In bf16 a matmul's result
        # moves with the padding and the shapes its neighbours bring, and a reused prefix's KV was
        # computed in whatever batch first held it; so each prompt runs alone and nothing is reused.
        self.batch_invariant = cfg.batch_invariant
        reuse = cfg.prefix_cache and not self.static and not cfg.batch_invariant
        self.store = PrefixKVStore(cfg.kv_cache_mb << 20) if reuse else None
        self._cache_kwarg = cache_kwarg(model)
        self._prefill = prefill_kwargs(model)
        # The compact loop lines caches up by left padding, which a sliding-window cache does not keep.
        sliding = getattr(model.config, "sliding_window", None) and getattr(model.config, "use_sliding_window", True)
        self.compact = cfg.decode_loop == "compact" and not self.static and not sliding
        if self.compact and cfg.shared_prefix_attention:
            from ttscale.models.shared_prefix import enable

            self.shared_prefix = enable(model)  # a prompt's cache held once for its n rows
        else:
            self.shared_prefix = False

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
            for i in [i for i in order if (flag := cancelled[i]) is not None and flag.is_set()]:
                out[i] = [cancelled_generation(len(encoded[i]))] * shared.n  # nobody waits: not even a prefill
                order.remove(i)
            # The compact loop keeps its batch full from every prompt of the call as rows end.
            whole = max(1, len(order)) if self.compact else max(1, self.max_batch_size // shared.n)
            per_batch = 1 if self.batch_invariant else whole
            for start in range(0, len(order), per_batch):
                chunk = order[start : start + per_batch]
                caps = [params[i].max_new_tokens for i in chunk]
                seeds = [s for i in chunk for s in child_seeds(params[i])]
                call = replace(shared, max_new_tokens=max(caps))
                gens = self._generate_batch([encoded[i] for i in chunk], call, seeds, caps, [cancelled[i] for i in chunk])
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

        if self.store is not None and len(batch) > 1:
            self._store_common_prefix(self.store, batch)
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
                position_ids=positions[:, width_c:-1], use_cache=True, **{self._cache_kwarg: cache}, **self._prefill,
            )
        return input_ids, mask, cache, width_c + width_s

    def _store_common_prefix(self, store: PrefixKVStore, batch: list[list[int]]) -> None:
        """Prefill once, and store, the prefix every prompt of `batch` shares beyond what the store holds.

        Prompts of one call often share a long head (k-shot exemplars, a system prompt, a question's
        tree of steps); prefilled together, each row would compute it again. Stored first, it is read
        by every row's lookup, as automatic prefix caching does across requests (vLLM, Kwon et al. 2023).
        """
        common = min(common_prefix_length(batch), min(map(len, batch)) - 1)  # each keeps a token to feed
        held, _ = longest_prefix_match(batch[0][:common], store.arrays.items())
        if common - held < MIN_COMMON_PREFIX:
            return
        head = batch[0][: common + 1]
        _, _, cache, _ = self._layout([head])  # prefills head[:-1], reusing what the store holds
        store.put(head[:-1], [(layer.keys[0], layer.values[0]) for layer in cache.layers])

    def _stack(self, hits: list[tuple[int, KV | None]], width: int) -> KV:
        template = next(kv for c, kv in hits if c and kv is not None)
        layers = []
        for layer, (k0, v0) in enumerate(template):
            keys = k0.new_zeros((len(hits), k0.shape[0], width, k0.shape[2]))
            values = v0.new_zeros((len(hits), v0.shape[0], width, v0.shape[2]))
            for row, (c, kv) in enumerate(hits):
                if c and kv is not None:
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

        # Sampling runs in RowSampler on top of a greedy decode: one seeded stream per row, never the
        # global RNG, so a row's tokens do not depend on its batch (docs/DESIGN.md, "Where randomness
        # comes from"). Static mode pads rows, whose draws are discarded.
        padding = self.max_batch_size - len(seeds) if self.static else 0
        sampler = RowSampler(seeds + [0] * padding, params.temperature, params.top_p) if params.temperature > 0 else None
        recorder = LogprobRecorder(params.logprobs, sampler) if params.logprobs else None
        prompts = [ids for ids in batch for _ in range(params.n)]
        row_caps = [c for c in caps for _ in range(params.n)]
        row_flags = [f for f in cancelled for _ in range(params.n)]
        with torch.inference_mode():
            if self.compact:
                rows = self._decode(prompts, params, sampler, recorder, row_caps, row_flags)
            else:
                rows = self._generate(batch, params, sampler, recorder, row_caps, row_flags)
        gens = []
        for r, new_ids in enumerate(rows):
            gen = self._to_generation(new_ids, len(prompts[r]), params)
            if recorder is not None:
                sampled, top = recorder.row(r, gen.n_tokens)
                gen = replace(gen, logprobs=sampled, top_logprobs=top)
            gens.append(gen)
        return [gens[i * params.n : (i + 1) * params.n] for i in range(len(batch))]

    def _generate(
        self, batch: list[list[int]], params: SamplingParams, sampler: RowSampler | None,
        recorder: LogprobRecorder | None, caps: list[int], cancelled: list[threading.Event | None],
    ) -> list[list[int]]:
        """Each row's new token ids from transformers' `generate`, which computes every row until the
        longest ends. The static cache needs it: its fixed shapes are what compiles into CUDA graphs."""
        import torch

        if self.static:
            input_ids, mask, width = self._static_layout(batch, params.n)
            cache_args: dict[str, Any] = {"cache_implementation": "static", **self._compile}
        else:
            input_ids, mask, cache, width = self._layout(batch)
            if params.n > 1:
                cache.batch_repeat_interleave(params.n)  # fork each prefilled prompt n ways
                input_ids = input_ids.repeat_interleave(params.n, 0)
                mask = mask.repeat_interleave(params.n, 0)
            cache_args = {self._cache_kwarg: cache}
        sampling: dict[str, Any] = {"do_sample": False}
        if recorder is not None or sampler is not None:
            sampling["logits_processor"] = [recorder or sampler]
        # A padding row copies the first prompt, so it stops with it and never keeps a cancelled call going.
        stop = CancelledRows(cancelled + [cancelled[0]] * (input_ids.shape[0] - len(caps)), width)
        if any(f is not None for f in cancelled):
            sampling["stopping_criteria"] = [stop]
        out = self.model.generate(
            input_ids=input_ids, attention_mask=mask, **cache_args,
            max_new_tokens=params.max_new_tokens, stop_strings=list(params.stop) or None,
            tokenizer=self.tokenizer if params.stop else None, pad_token_id=self.tokenizer.pad_token_id,
            top_k=None, return_dict_in_generate=True, **sampling,
        )
        rows = [row[width:].tolist()[: min(cap, stop.cut.get(r, cap))]
                for r, (row, cap) in enumerate(zip(out.sequences, caps))]  # static mode pads rows: zip drops them
        if self.store is not None:
            have = cache.get_seq_length() - width  # the last sampled token was never fed back
            for r, new_ids in enumerate(rows):
                positions = torch.cat([torch.nonzero(mask[r]).flatten(),
                                       torch.arange(width, width + have, device=mask.device)])
                kv = [(layer.keys[r].index_select(1, positions), layer.values[r].index_select(1, positions))
                      for layer in cache.layers]
                self._remember(kv, batch[r // params.n], self._kept(new_ids))
        return rows

    def _decode(
        self, prompts: list[list[int]], params: SamplingParams, sampler: RowSampler | None,
        recorder: LogprobRecorder | None, caps: list[int], cancelled: list[threading.Event | None],
    ) -> list[list[int]]:
        """Each row's new token ids, sampled step by step with continuous batching.

        In `generate` a finished row is computed until the longest row ends (on the CPU world's
        best-of-N about half of each step's rows), and a decode step costs nearly as much at 16 rows
        as at 32, because it streams every weight once. Here a row leaves the batch the step it
        ends (its cap, its EOS, its first stop string or its cancellation), and the next prompt's n
        rows join as soon as max_batch_size has room (Orca, Yu et al. 2022): `_join` prefills them and
        lines their cache up with the running one. Each row samples from its own stream, so a row's
        tokens do not depend on which rows run beside it, as long as the model's numbers do not:
        the batch is kept to a multiple of `ROW_QUANTUM` rows (copies of a row fill the gaps), since
        a CPU GEMM can give a row other low bits at small or odd row counts.
        """
        import torch

        n = params.n
        room = max(self.max_batch_size, n)
        quantum = min(ROW_QUANTUM, len(prompts), room)
        window = max((len(s) for s in params.stop), default=0) + 8  # tokens that can hold a stop string
        out: list[list[int]] = [[] for _ in prompts]
        waiting = list(range(0, len(prompts), n))  # each prompt's first row; its n rows are consecutive
        batch: RunningBatch | None = None
        while waiting or batch is not None:
            live = batch.live() if batch is not None else []
            joining: list[int] = []
            while waiting and (not live and not joining or len(live) + len(joining) + n <= room):
                first = waiting.pop(0)
                joining += range(first, first + n)
            if joining:
                batch = self._join(batch, live, joining, prompts, quantum)
            assert batch is not None
            shared = {PREFIX_KWARG: batch.shared} if batch.shared is not None and batch.shared.trunks else {}
            logits = self.model(input_ids=batch.feed, attention_mask=batch.mask, position_ids=batch.positions,
                                use_cache=True, **{self._cache_kwarg: batch.cache}, **shared).logits[:, -1, :].float()
            tokens = sampler.choose(logits, batch.slots) if sampler is not None else logits.argmax(-1)
            owned = [(i, r) for i, r in enumerate(batch.slots) if r is not None]
            at = [i for i, _ in owned]
            if recorder is not None:
                index = torch.tensor(at, dtype=torch.long, device=logits.device)
                recorder.record([r for _, r in owned], logits[index], tokens[index])
            ended = []
            for (i, r), t in zip(owned, tokens[at].tolist()):
                out[r].append(t)
                flag = cancelled[r]
                if (t in self.eos_ids or len(out[r]) >= caps[r] or (flag is not None and flag.is_set())
                        or (bool(params.stop) and self._stopped(out[r][-window:], params.stop))):
                    ended.append(i)
                    if self.store is not None:
                        self._remember(batch.row_kv(i), prompts[r], self._kept(out[r]))
            batch.advance(tokens)
            if ended:
                for i in ended:
                    batch.slots[i] = None
                batch = batch.shrink(quantum) if any(r is not None for r in batch.slots) else None
        return out

    def _join(self, batch: RunningBatch | None, live: list[int], joining: list[int], prompts: list[list[int]],
              quantum: int) -> RunningBatch:
        """The running batch's live rows with `joining`'s rows prefilled and lined up beside them."""
        n = next((k for k in range(1, len(joining)) if prompts[joining[k]] is not prompts[joining[0]]), len(joining))
        unique = joining[::n]
        input_ids, mask, cache, _ = self._layout([prompts[r] for r in unique])
        if self.shared_prefix and n > 1:  # a prompt of one row has no rows to share its cache with
            new = RunningBatch.forked(input_ids, mask, cache, joining, n, self.model.config.get_text_config(),
                                      self.model.dtype)
        else:
            if n > 1:
                cache.batch_repeat_interleave(n)
                input_ids, mask = input_ids.repeat_interleave(n, 0), mask.repeat_interleave(n, 0)
            new = RunningBatch(cache, mask, (mask.sum(-1, keepdim=True) - 1), input_ids[:, -1:], list(joining))
        if batch is None or not live:
            return new.pad_to(quantum)
        return batch.keep([i for i, r in enumerate(batch.slots) if r is not None]).merge(new).pad_to(quantum)

    def _remember(self, kv: KV, prompt: list[int], kept: list[int]) -> None:
        """Store one row's KV (prompt + kept generated tokens) for the next round's prefixes.

        `kv` holds, per layer, the row's keys and values at the positions it attends to, in order:
        its prompt's, then each generated token fed back (the last sampled token never is).
        """
        if self.store is None or not kv:
            return
        n_gen = max(0, min(len(kept), int(kv[0][0].shape[1]) - len(prompt)))
        end = len(prompt) + n_gen
        self.store.put(prompt + kept[:n_gen], [(k[:, :end].contiguous(), v[:, :end].contiguous()) for k, v in kv])

    def _stopped(self, tail: list[int], stop: Sequence[str]) -> bool:
        text = self.tokenizer.decode(tail, skip_special_tokens=True)
        return any(s in text for s in stop)

    def _kept(self, new_ids: list[int]) -> list[int]:
        """The ids before the first EOS."""
        end = next((i for i, t in enumerate(new_ids) if t in self.eos_ids), None)
        return new_ids if end is None else new_ids[:end]

    def _to_generation(self, new_ids: list[int], prompt_len: int, params: SamplingParams) -> Generation:
        kept = self._kept(new_ids)
        end = len(kept) if len(kept) < len(new_ids) else None
        text, stopped = truncate_at_stop(self.tokenizer.decode(kept, skip_special_tokens=True), params.stop)
        reason: FinishReason = "stop" if stopped else ("eos" if end is not None else "length")
        n_tokens = len(kept) + (1 if end is not None and not stopped else 0)
        return Generation(text=text, n_tokens=n_tokens, finish_reason=reason, prompt_tokens=prompt_len)
