"""The checks every recipe section runs on its fields, each refusal one ConfigError naming `section.key`."""

from __future__ import annotations

import math
from typing import Any

from ttscale.errors import ConfigError, closest


def check(cond: bool, section: str, name: str, value: Any, accepted: str) -> None:
    if not cond:
        raise ConfigError(f"{section}.{name}={value!r} is invalid; accepted: {accepted}")


def finite(x: float) -> bool:
    return math.isfinite(x)


def one_of(section: str, name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(
            f"{section}.{name}={value!r} is invalid{closest(str(value), choices)}; accepted: {', '.join(choices)}"
        )
