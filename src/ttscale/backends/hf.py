"""Hugging Face transformers backend: the CPU default, and CUDA when present."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ttscale.backends.base import truncate_at_stop
from ttscale.backends.loading import load_pretrained
from ttscale.config import ModelConfig
from ttscale.data.prompts import encode_prompt
from ttscale.types import FinishReason, Generation, SamplingParams


class HFGenerator:
    """Batched sampling with left padding; rows sorted by length so each batch pads little."""

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

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def count_tokens(self, text: str) -> int:
        return len(encode_prompt(self.tokenizer, text))

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[list[Generation]]:
        encoded = [encode_prompt(self.tokenizer, p) for p in prompts]
        rows = [(i, ids) for i, ids in enumerate(encoded) for _ in range(params.n)]
        order = sorted(range(len(rows)), key=lambda r: len(rows[r][1]))
        out: list[Generation | None] = [None] * len(rows)
        for start in range(0, len(order), self.max_batch_size):
            chunk = order[start : start + self.max_batch_size]
            seed = None if params.seed is None else params.seed + start
            gens = self._generate_batch([rows[r][1] for r in chunk], params, seed)
            for r, g in zip(chunk, gens):
                out[r] = g
        return [out[i * params.n : (i + 1) * params.n] for i in range(len(prompts))]  # type: ignore[misc]

    def _generate_batch(self, batch: list[list[int]], params: SamplingParams, seed: int | None) -> list[Generation]:
        import torch

        width = max(len(ids) for ids in batch)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in batch], device=self.device)
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch], device=self.device)
        if seed is not None:
            torch.manual_seed(seed)
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": params.temperature, "top_p": params.top_p}
            if params.temperature > 0
            else {"do_sample": False}
        )
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids,
                attention_mask=mask,
                max_new_tokens=params.max_new_tokens,
                stop_strings=list(params.stop) or None,
                tokenizer=self.tokenizer if params.stop else None,
                pad_token_id=pad,
                top_k=None,
                **sampling,
            )
        return [self._to_generation(row[width:].tolist(), len(ids), params) for row, ids in zip(out, batch)]

    def _to_generation(self, new_ids: list[int], prompt_len: int, params: SamplingParams) -> Generation:
        end = next((i for i, t in enumerate(new_ids) if t in self.eos_ids), None)
        kept = new_ids if end is None else new_ids[:end]
        text, stopped = truncate_at_stop(self.tokenizer.decode(kept, skip_special_tokens=True), params.stop)
        reason: FinishReason = "stop" if stopped else ("eos" if end is not None else "length")
        n_tokens = len(kept) + (1 if end is not None and not stopped else 0)
        return Generation(text=text, n_tokens=n_tokens, finish_reason=reason, prompt_tokens=prompt_len)
