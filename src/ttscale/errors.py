"""The few exception types users see. Each message names the bad value and what is accepted."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class TTScaleError(Exception):
    """Base class: the CLI prints these as one clear line instead of a traceback."""


class ConfigError(TTScaleError):
    """A recipe key or value is wrong; `field` names it ("search.beam_width") where one field is at fault,
    so a server can point a client at its own request field."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class DataError(TTScaleError):
    """A dataset file, row or field is malformed."""


class ModelLoadError(TTScaleError):
    """A model or tokenizer could not be found or loaded."""


class MissingDependencyError(TTScaleError):
    """An optional extra is not installed."""

    def __init__(self, package: str, extra: str | None = None, purpose: str = "") -> None:
        hint = f"pip install 'ttscale[{extra}]'" if extra else f"pip install {package}"
        what = f" (needed for {purpose})" if purpose else ""
        super().__init__(f"the package '{package}' is not installed{what}; install it with: {hint}")


class RunDirError(TTScaleError):
    """An output/run directory is missing, foreign or holds a different config."""


class GenerationError(TTScaleError):
    """A backend failed while generating."""


class VerifierError(TTScaleError):
    """A verifier failed while scoring (a remote one: its server refused or did not answer)."""


def closest(name: str, choices: Iterable[str]) -> str:
    """' (did you mean X?)' for the closest choice, or '' when none is close."""
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


def unknown(kind: str, name: str, choices: Iterable[str]) -> ConfigError:
    """The error for a name that is not in a registry or a section."""
    choices = sorted(choices)
    return ConfigError(f"unknown {kind} '{name}'{closest(name, choices)}; accepted: {', '.join(choices)}")
