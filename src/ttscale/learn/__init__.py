"""Learn from search: search runs become training data, and the data a better policy and PRM.

    export_sft(run_dir, output)            selected / correct solutions -> chat-format SFT dataset
    label_steps(run_dir, output, ...)      Math-Shepherd Monte Carlo step labels -> stepwise-supervision dataset
    perturb_steps(run_dirs, output, ...)   right solutions' steps good, each with one number changed bad -> .jsonl
    train_prm(data, base, output, ...)     token-classification PRM at step separators -> `trained_prm` verifier

Submodules load on first use, so `ttscale --help` and the verifier registry stay light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "export_sft": "ttscale.learn.sft",
    "label_steps": "ttscale.learn.labels",
    "perturb_steps": "ttscale.learn.perturb",
    "train_prm": "ttscale.learn.train",
    "TrainSettings": "ttscale.learn.train",
    "PRMLayout": "ttscale.verifiers.prm_format",
}

__all__ = ["PRMLayout", "TrainSettings", "export_sft", "label_steps", "perturb_steps", "train_prm"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ttscale.learn' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
