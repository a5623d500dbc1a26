"""JSONL as every reader and writer here handles it: bytes split on b"\\n" only, decoded line by line.

Python reads more than it can write back: a lone UTF-16 surrogate ("\\ud800") parses but cannot be
encoded as UTF-8, and a value nested 100k deep parses into a RecursionError. str.splitlines() also
splits inside a string holding U+2028 or U+0085, which JSON allows unescaped. So a line is split on
"\\n" alone, decoded on its own (one bad byte costs one line, not the file), and checked here, once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BOM = b"\xef\xbb\xbf"
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Line:
    """One line of a JSONL file: its number, its value (None when bad), and why it is bad."""

    number: int
    value: Any
    error: str | None
    last: bool  # the file's last line with no newline after it: a write cut short


def parse(text: str, surrogates: bool = False) -> tuple[Any, str | None]:
    """(value, None) for a usable line, else (None, why).

    An input (a dataset, a pairs file) must be text that can be written back as UTF-8, so a lone
    surrogate is refused there; a run's own files allow one, which `dumps` wrote escaped.
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        return None, f"not valid JSON ({e.msg} at column {e.colno})"
    except RecursionError:
        return None, "JSON nested too deeply to read"
    if not surrogates and (_SURROGATE.search(text) or ("\\u" in text and _has_surrogate(value))):
        return None, "holds a lone UTF-16 surrogate (not encodable as UTF-8)"
    return value, None


def _has_surrogate(value: Any) -> bool:
    """Whether any string in `value` holds a surrogate; iterative, since `value` may be deep."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if _SURROGATE.search(v):
                return True
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


def iter_lines(path: Path, surrogates: bool = False) -> Iterator[Line]:
    """Each non-blank line of `path`, parsed; a byte-order mark before the first line is dropped."""
    with path.open("rb") as f:
        data = f.read()
    if data.startswith(BOM):
        data = data[len(BOM):]
    chunks = data.split(b"\n")
    ends_clean = data.endswith(b"\n")
    for number, raw in enumerate(chunks, 1):
        if not raw.strip():
            continue
        last = number == len(chunks) and not ends_clean
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            yield Line(number, None, f"not UTF-8 text (byte {e.start}: {e.reason})", last)
            continue
        value, error = parse(text, surrogates)
        yield Line(number, value, error, last)


def dumps(obj: Any) -> str:
    """One JSON line (no newline) that always encodes as UTF-8: readable text as is, a surrogate escaped."""
    text = json.dumps(obj, ensure_ascii=False)
    if _SURROGATE.search(text):
        # A finished row is never lost over one character: \\ud800 round-trips through json.loads.
        return json.dumps(obj, ensure_ascii=True)
    return text
