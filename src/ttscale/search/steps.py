"""Steps of a solution as text: splitting a whole solution at its delimiter, and the end markers
of the prompt format. Shared by the search core, best-of-N scoring and the step labeller."""

from __future__ import annotations

from collections.abc import Sequence


def split_steps(text: str, delimiter: str) -> tuple[str, ...]:
    """Steps of a whole solution, each keeping its trailing delimiter (the last may lack one)."""
    parts = text.split(delimiter)
    steps = [p + delimiter for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
    # Runs of delimiters ("\n\n\n\n") would make empty steps; fold them into the previous one.
    merged: list[str] = []
    for s in steps:
        if merged and not s.strip():
            merged[-1] += s
        else:
            merged.append(s)
    return tuple(merged)


def clean_step(step: str, delimiter: str) -> str:
    return step.removesuffix(delimiter).strip()


def strip_end_marker(text: str, end_markers: Sequence[str]) -> tuple[str, bool]:
    for marker in end_markers:
        if text.endswith(marker):
            return text[: -len(marker)], True
    return text, False
