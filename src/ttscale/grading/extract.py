"""Pull the final answer out of a model's solution text.

Every scan here is linear in the text, so 10 kB of garbage costs microseconds:
no backtracking regex touches unbounded input, and brace matching is a counter.
"""

from __future__ import annotations

import re

_BOX_COMMANDS = ("\\boxed", "\\fbox")
_MAX_BOXES_TRIED = 4
# "the final answer is: $\boxed{5}$. I hope it is correct." (Meta's prompt, REFERENCE.md)
# and its unboxed variants; the lazy tail stops at the sentence end.
_FINAL_ANSWER = re.compile(r"final answer is[:\s]*(.+?)(?:\.\s|\.$|\n|$| I hope)", re.IGNORECASE)
_GSM8K = re.compile(r"####\s*([^\n]+)")
_ANSWER_LINE = re.compile(r"^\s*\**answer\**\s*[:=]\s*\**\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)


def _braced(text: str, open_at: int) -> str | None:
    """The contents of the `{...}` group opening at text[open_at], or None if it never closes."""
    depth = 0
    i = open_at
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2  # `\{`, `\}` are literal braces and `\\` a row break: skip the escaped char
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : i]
        i += 1
    return None


def _box_argument(text: str, after: int) -> str | None:
    """The argument of a box command ending at `after`: `{...}` or a bare `\\boxed 5` token."""
    rest = text[after : after + 1]
    if rest == "{":
        return _braced(text, after)
    if rest in (" ", "\t"):
        token = re.match(r"\s+([^\s$]+)", text[after : after + 200])
        return token.group(1).rstrip(".,;") if token else None
    return None


def _last_boxed(text: str) -> str | None:
    """The last well-formed `\\boxed`/`\\fbox` argument; an unclosed last box falls back to the one before."""
    starts = sorted(
        (m.end(), cmd)
        for cmd in _BOX_COMMANDS
        for m in re.finditer(re.escape(cmd) + r"(?![a-zA-Z])", text)
    )
    # Only the last few boxes are tried: each unclosed one costs a scan to the end of the text.
    for end, _ in reversed(starts[-_MAX_BOXES_TRIED:]):
        argument = _box_argument(text, end)
        if argument is not None and argument.strip():
            return argument.strip()
    return None


def _strip_math(answer: str) -> str:
    """Drop `$` delimiters, a trailing period and `\\boxed` wrappers around a fallback answer."""
    answer = answer.strip().strip("$").strip()
    boxed = _last_boxed(answer)
    if boxed is not None:
        return boxed
    return answer.rstrip(".").strip().strip("$").strip()


def _last_match(pattern: re.Pattern[str], text: str) -> str | None:
    found = None
    for found in pattern.finditer(text):
        pass
    if found is None:
        return None
    answer = _strip_math(found.group(1))
    return answer or None


def extract_answer(text: str) -> str | None:
    """The final answer in `text`, or None; never raises.

    Order: the last `\\boxed{}`/`\\fbox{}` (nested braces, `\\boxed 5`), then
    "the final answer is ...", then GSM8K's `#### 42`, then an `Answer: 42` line
    (tiny models following our few-shot prompt sometimes drop the box).
    """
    if not isinstance(text, str) or not text:
        return None
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed
    for pattern in (_FINAL_ANSWER, _GSM8K, _ANSWER_LINE):
        answer = _last_match(pattern, text)
        if answer is not None:
            return answer
    return None
