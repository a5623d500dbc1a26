"""vLLM in-process backend (`model.backend: vllm`, extra `ttscale[vllm]`): the GPU path.

Prompts go in as token ids rendered with ttscale's prompt code, so the chat
template's BOS is not doubled (a second BOS hurts Llama 3's accuracy: Beeching, Tunstall & Rush
2024; data/prompts.py, encode_prompt), and prefix caching is on because
step-wise search re-sends every shared prefix each round.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ttscale.backends.base import cancelled_generation, child_seeds
from ttscale.config import ModelConfig
from ttscale.data.prompts import encode_prompt
from ttscale.errors import MissingDependencyError, ModelLoadError
from ttscale.types import FinishReason, Generation, SamplingParams


def engine_args(cfg: ModelConfig) -> dict[str, Any]:
    """ttscale's model section -> `vllm.LLM(**kwargs)`."""
    args: dict[str, Any] = {
        "model": cfg.name_or_path,
        "tensor_parallel_size": cfg.tensor_parallel_size,
        "gpu_memory_utilization": cfg.gpu_memory_utilization,
        "dtype": cfg.dtype,
        "seed": 0,
        "enable_prefix_caching": True,
        "max_num_seqs": cfg.max_batch_size,
    }
    if cfg.max_model_len is not None:
        args["max_model_len"] = cfg.max_model_len
    if cfg.gguf_file:
        args["model"] = f"{cfg.name_or_path.rstrip('/')}/{cfg.gguf_file}"
    return args


def sampling_args(params: SamplingParams) -> dict[str, Any]:
    """ttscale's SamplingParams -> `vllm.SamplingParams(**kwargs)`; the stop string stays in the text."""
    return {
        "n": params.n,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "max_tokens": params.max_new_tokens,
        "stop": list(params.stop),
        "include_stop_str_in_output": True,
        "seed": params.seed,
        # vLLM returns the top `logprobs` of each token plus the sampled one (what DeepConf and the confidence
        # picks read); None costs nothing.
        "logprobs": params.logprobs or None,
    }


def estimate_params(hf_config: Any) -> int:
    """Parameter count from the HF config (for FLOPs), without materialising weights."""
    d = hf_config.hidden_size
    layers = hf_config.num_hidden_layers
    ffn = getattr(hf_config, "intermediate_size", 4 * d)
    heads = hf_config.num_attention_heads
    kv = getattr(hf_config, "num_key_value_heads", heads)
    attn = d * d * 2 + 2 * d * (d // heads) * kv
    return int(layers * (attn + 3 * d * ffn) + hf_config.vocab_size * d * (1 if hf_config.tie_word_embeddings else 2))


class VLLMGenerator:
    name = "vllm"

    def __init__(self, cfg: ModelConfig) -> None:
        if cfg.batch_invariant:
            # Read once, when vLLM first asks (vllm/model_executor/layers/batch_invariant.py), so set before import.
            os.environ["VLLM_BATCH_INVARIANT"] = "1"
        try:
            import vllm
        except ImportError:
            raise MissingDependencyError("vllm", extra="vllm", purpose="model.backend: vllm (needs a CUDA GPU)") from None
        self._vllm = vllm
        try:
            self.llm = vllm.LLM(**engine_args(cfg))
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"vLLM could not load '{cfg.name_or_path}': {e}") from None
        self.tokenizer = self.llm.get_tokenizer()
        self.n_params = estimate_params(self.llm.llm_engine.model_config.hf_config)
        self._request_ids = itertools.count()

    def count_tokens(self, text: str) -> int:
        return len(encode_prompt(self.tokenizer, text))

    def generate(self, prompts: Sequence[str], params: Sequence[SamplingParams]) -> list[list[Generation]]:
        ids = [encode_prompt(self.tokenizer, p) for p in prompts]
        # One SamplingParams per request: vLLM seeds each request's generator from its own seed
        # (child k of n from seed + k), so identical prompts with their own seeds differ (docs/DESIGN.md).
        outputs = self.llm.generate(
            [{"prompt_token_ids": i} for i in ids],
            [self._vllm.SamplingParams(**sampling_args(p)) for p in params],
            use_tqdm=False,
        )
        return [[to_generation(o, len(i), p.logprobs) for o in out.outputs] for out, i, p in zip(outputs, ids, params)]

    def generate_cancellable(
        self, prompts: Sequence[str], params: Sequence[SamplingParams], cancelled: Sequence[threading.Event | None]
    ) -> list[list[Generation]]:
        """`generate`, where prompt i's requests are aborted between engine steps once `cancelled[i]` is set.

        `LLM.generate` adds its requests, then steps the engine until none is unfinished
        (vllm/entrypoints/llm.py, `_run_engine`). The same loop runs here over the engine's public
        calls, with `LLMEngine.abort_request` between steps, so a cancelled prompt frees its batch
        slots and KV blocks at once and the call ends when what is left is done. Each of a prompt's
        n samples is its own request seeded seed + k, as vLLM fans n out itself
        (v1/engine/parallel_sampling.py), so a seeded sample is the one `generate` gives.
        """
        if all(f is None for f in cancelled):
            return self.generate(prompts, params)
        from vllm.sampling_params import RequestOutputKind

        engine = self.llm.llm_engine
        ids = [encode_prompt(self.tokenizer, p) for p in prompts]
        owner: dict[str, tuple[int, int]] = {}  # request id -> (prompt, sample)
        for i, (tokens, p) in enumerate(zip(ids, params)):
            for k, seed in enumerate(child_seeds(p)):
                request = self._vllm.SamplingParams(**sampling_args(replace(p, n=1, seed=seed)))
                request.output_kind = RequestOutputKind.FINAL_ONLY  # as LLM.generate: only the finished text
                rid = f"ttscale-{next(self._request_ids)}"
                engine.add_request(rid, {"prompt_token_ids": tokens}, request)
                owner[rid] = (i, k)
        finished: dict[str, Any] = {}
        aborted: set[str] = set()
        while engine.has_unfinished_requests():
            gone = {i for i, flag in enumerate(cancelled) if flag is not None and flag.is_set()}
            stop = [rid for rid, (i, _) in owner.items() if i in gone and rid not in finished and rid not in aborted]
            if stop:
                engine.abort_request(stop)
                aborted.update(stop)
                continue  # what is left may be nothing
            for output in engine.step():
                if output.finished and output.request_id in owner and output.request_id not in aborted:
                    finished[output.request_id] = output
        out = [[cancelled_generation(len(tokens))] * p.n for tokens, p in zip(ids, params)]
        for rid, (i, k) in owner.items():
            if rid in finished:
                out[i][k] = to_generation(finished[rid].outputs[0], len(ids[i]), params[i].logprobs)
        return out



def to_generation(output: Any, prompt_tokens: int, k: int = 0) -> Generation:
    """vLLM's CompletionOutput -> Generation: a matched stop string is 'stop', a stop token 'eos'."""
    if output.finish_reason == "length":
        reason: FinishReason = "length"
    else:
        reason = "stop" if isinstance(output.stop_reason, str) else "eos"
    sampled, top = token_logprobs(output, k) if k else ((), ())
    return Generation(text=output.text, n_tokens=len(output.token_ids), finish_reason=reason, prompt_tokens=prompt_tokens,
                      logprobs=sampled, top_logprobs=top)


def token_logprobs(output: Any, k: int) -> tuple[tuple[float, ...], tuple[tuple[float, ...], ...]]:
    """CompletionOutput.logprobs (per token, {token id: Logprob}) -> (sampled, top-k descending).

    Each dict holds the k entries of rank 1..k plus the sampled token when it ranked below them,
    so the top-k row is the entries of rank <= k.
    """
    per_token = output.logprobs or []
    sampled = tuple(float(d[t].logprob) for d, t in zip(per_token, output.token_ids))
    top = tuple(tuple(float(lp.logprob) for lp in sorted(d.values(), key=lambda lp: lp.rank) if lp.rank <= k)
                for d in per_token)
    return sampled, top
