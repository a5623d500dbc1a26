"""Steps of a solution as text: splitting a whole solution at its delimiter, and the end markers
of the prompt format. Shared by the search core, best-of-N scoring and the step labeller."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


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


# A sentence ends at . ! ? (optionally closed by a quote, bracket or $) before whitespace.
_SENTENCE_END = re.compile(r"[.!?][\"')\]$]*(?=\s)\s*")


@dataclass(frozen=True)
class StepRule:
    """What a step is (`search.step_split`), the same for the policy and the verifier.

    delimiter: a step ends at the delimiter (the reference's "\\n\\n").
    paragraph: likewise, but a step under `min_tokens` merges with the next and one over
        `max_tokens` is cut at its last sentence end (long chains of thought have no "## Step").
    markers: a new step starts at a reflection word ("Wait", "Alternatively", ...), with the
        same merging and cutting.
    """

    split: str = "delimiter"
    delimiter: str = "\n\n"
    min_tokens: int = 0
    max_tokens: int = 256
    markers: tuple[str, ...] = ()
    count_tokens: Callable[[str], int] = field(default=lambda text: len(text.split()), compare=False)

    @property
    def stops(self) -> tuple[str, ...]:
        """Stop strings that end a step while it is generated."""
        if self.split == "markers":
            return tuple(f"{sep}{m}" for m in self.markers for sep in (" ", "\n"))
        return (self.delimiter,)

    def steps(self, text: str) -> tuple[str, ...]:
        """The steps of a whole solution; their concatenation is `text`."""
        if self.split == "delimiter":
            return split_steps(text, self.delimiter)
        pieces = _at_markers(text, self.markers) if self.split == "markers" else split_steps(text, self.delimiter)
        cut = [part for piece in pieces for part in self._cut(piece)]
        return self._merge(cut)

    def close(self, text: str, stopped: bool, capped: bool) -> tuple[str, str]:
        """A step as generated -> (the step, the text carried into the next step).

        A stop on a marker leaves the marker to open the next step; a step cut by its token
        cap ends at its last sentence end and carries the rest (delimiter mode keeps today's steps).
        """
        if self.split == "delimiter":
            return text, ""
        if stopped and self.split == "markers":
            for stop in self.stops:
                if text.endswith(stop):
                    return text[: -len(stop) + 1], stop[1:]
        if capped:
            ends = list(_SENTENCE_END.finditer(text))
            if ends and ends[-1].end() < len(text):
                return text[: ends[-1].end()], text[ends[-1].end() :]
        return text, ""

    def too_short(self, step: str) -> bool:
        return self.split != "delimiter" and self.min_tokens > 0 and self.count_tokens(step) < self.min_tokens

    def _cut(self, piece: str) -> list[str]:
        if self.count_tokens(piece) <= self.max_tokens:
            return [piece]
        bounds = [m.end() for m in _SENTENCE_END.finditer(piece)]
        out, start, last = [], 0, 0
        for end in [*bounds, len(piece)]:
            if end > last and self.count_tokens(piece[start:end]) > self.max_tokens and last > start:
                out.append(piece[start:last])
                start = last
            last = end
        out.append(piece[start:])
        return [p for p in out if p]

    def _merge(self, pieces: list[str]) -> tuple[str, ...]:
        merged: list[str] = []
        for p in pieces:
            if merged and (self.too_short(merged[-1]) or not p.strip()):
                merged[-1] += p
            else:
                merged.append(p)
        if len(merged) > 1 and self.too_short(merged[-1]):
            last = merged.pop()
            merged[-1] += last
        return tuple(merged)


def _at_markers(text: str, markers: Sequence[str]) -> list[str]:
    if not markers:
        return [text] if text else []
    pattern = re.compile(r"(?<=\s)(?=(?:" + "|".join(re.escape(m) for m in markers) + r")\b)")
    return [p for p in pattern.split(text) if p]
