"""Pull the final answer out of a model's solution text.

Every scan here is linear in the text, so 10 kB of garbage costs microseconds:
no backtracking regex touches unbounded input, and brace matching is one
counting pass over the text.

The ladder (math-verify's own order, boxed first; each rung is there for real model outputs
that the one above it misread, kept in tests/grading's golden tables):
  1. `\\boxed{}`/`\\fbox{}`: the last box, joined with the boxes just before it
     when only "and", commas, `\\quad` or a short `\\text{}` separate them
     (`\\boxed{1}, \\boxed{2}` answers `1, 2`); a "final answer is" sentence
     written after the last box wins over it;
  2. "the final answer is ...", then GSM8K's `#### 42`, then an `Answer: 42` line;
  3. the last math span: `$...$`, `$$...$$`, `\\(...\\)`, `\\[...\\]` (with the spans
     just before it that "and" or commas join: `$12$ and $13$`);
  4. the last number in the text (`\\frac{a}{b}` included), when no math span follows it: a
     number after the last span is the later statement ("$h=4$ ... the volume is 120.").
`stated_answer` stops after rung 2: it says whether a solution has *stated* an
answer (search stops a beam there), which any prose with a number would pass
on rungs 3 and 4.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BOX = re.compile(r"\\(?:boxed|fbox)(?![a-zA-Z])")
# A group of more boxes than this is not one answer; the cap also bounds the join.
_MAX_JOINED_BOXES = 8
# "the final answer is: $\boxed{5}$. I hope it is correct." (Meta's prompt, config.REFERENCE_SYSTEM_PROMPT), its
# unboxed variants, and "Final Answer: The volume of $V$ is 120." (up to 100 characters between
# "final answer" and "is", as math-verify allows). The lazy tail stops at the sentence end.
_FINAL_ANSWER = re.compile(
    r"final answer(?:[^\n.]{0,100}?\s)?is[:\s]*(.+?)(?:\.\s|\.$|\n|$| I hope)", re.IGNORECASE
)
_GSM8K = re.compile(r"####\s*([^\n]+)")
_ANSWER_LINE = re.compile(r"^\s*\**answer\**\s*[:=]\s*\**\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)
# What may stand between two boxes of one answer: `\boxed{1}, \boxed{2}`, `\boxed{a} \quad
# \text{and} \quad \boxed{b}`, `y_1 = \boxed{..} \) and \( y_2 = \boxed{..}`. Prose ("no no no")
# or arithmetic (`++++`) between two boxes means two separate boxes, and only the last counts.
_SEPARATOR_TOKENS = re.compile(
    r"\\text\{[^{}]{0,40}\}|\\q?quad|\\[,;:! ]|\\\\|\\[()\[\]]|\$|[\s,;.&]|\band\b|\bor\b"
    r"|(?<![\w\\])[a-zA-Z](?:_\{?\w+\}?)?\s*="
)
_UNIT_THEN_AND = re.compile(r"\s*[A-Za-z]+\s*(?:,\s*(?:and|or)?|and|or)[\s$]*")
_TRAILING_WORD = re.compile(r"(?<=\d)\s+[A-Za-z]{2,}$")
_PROSE = re.compile(r"[A-Za-z]{2,}\s+[A-Za-z]{2,}")
# A number in running text: not glued to a word before it (`AZYUK2A` holds no answer) but possibly
# followed by a unit or currency (`1,000.99m²`, `2,74 $`). Thousands groups by comma or space,
# a decimal point or comma, a fraction bar.
_NUMBER = re.compile(
    r"(?<![A-Za-z_\d.,])[-+]?(?:\\[dt]?frac\{\d+\}\{\d+\}|"
    r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d{1,3}(?: \d{3})+(?![\d,.])|\d+|(?=\.\d))(?:[.,]\d+)?(?:/\d+)?)"
)
# Math spans joined into one answer: `$12$ and $13$`, `$x=1$, $x=2$` (math-verify joins up to 6).
_SPAN_JOIN = re.compile(r"\s*,?\s*(?:and|or)?\s*")
_MAX_JOINED_SPANS = 6


@dataclass(frozen=True)
class _Box:
    start: int  # index of the backslash
    end: int  # index just past the closing brace
    argument: str


def _closing_braces(text: str, start: int) -> dict[int, int]:
    """Index of each `{` from `start` on -> its matching `}`, in one pass; `\\{`, `\\}`, `\\\\` are escapes.

    Braces before `start` cannot change these pairs: an unmatched `{` there stays below them on the stack.
    """
    pairs: dict[int, int] = {}
    stack: list[int] = []
    i = start
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == "{":
            stack.append(i)
        elif char == "}" and stack:
            pairs[stack.pop()] = i
        i += 1
    return pairs


def _boxes(text: str) -> list[_Box]:
    """Every closed, non-empty box in `text`, in order: `\\boxed{...}` (nested braces) or `\\boxed 5`."""
    first = _BOX.search(text)
    if first is None:
        return []
    closing = _closing_braces(text, first.start())
    found = []
    for m in _BOX.finditer(text, first.start()):
        after = m.end()
        if text[after : after + 1] == "{":
            close = closing.get(after)
            if close is None:
                continue  # unclosed: an earlier box is the answer
            argument, end = text[after + 1 : close], close + 1
        else:
            token = re.match(r"[ \t]+([^\s$]+)", text[after : after + 200])
            if token is None:
                continue
            argument, end = token.group(1).rstrip(".,;"), after + token.end()
        if argument.strip():
            found.append(_Box(m.start(), end, argument.strip()))
    return found


def _joins(between: str) -> bool:
    if len(between) > 200:
        return False
    # One word before the conjunction is the first part's unit: `\boxed{1} papers and \boxed{2} bins`;
    # other words ("and finally", "no no no no no") are prose between two separate boxes.
    return not _SEPARATOR_TOKENS.sub("", between) or _UNIT_THEN_AND.fullmatch(between) is not None


def _box_group(text: str, boxes: list[_Box]) -> tuple[str, int]:
    """The answer in the last box and the boxes joined to it, and where the group ends."""
    last = boxes[-1]
    group = [last]
    for box in reversed(boxes[:-1]):
        if len(group) == _MAX_JOINED_BOXES or box.end > group[0].start:
            break  # enough, or a box enclosing the later one
        if not _joins(text[box.end : group[0].start]):
            break
        group.insert(0, box)
    arguments = list(dict.fromkeys(b.argument for b in group))  # `\boxed{4} and \boxed{4}` is one 4
    return ", ".join(arguments), last.end


@dataclass(frozen=True)
class _Span:
    start: int  # the opening delimiter
    end: int  # just past the closing delimiter
    content: str


def _math_spans(text: str) -> list[_Span]:
    """`$$..$$` and `\\[..\\]` (any lines) and `$..$`, `\\(..\\)` (one line), in order; empty ones left out."""
    spans: list[_Span] = []
    i = 0
    while i < len(text):
        j = text.find("$", i)
        k = text.find("\\", i)
        if j < 0 and k < 0:
            break
        if k >= 0 and (j < 0 or k < j):
            opener = text[k : k + 2]
            if opener in ("\\[", "\\("):
                closer = "\\]" if opener == "\\[" else "\\)"
                end = text.find(closer, k + 2)
                if end >= 0 and (opener == "\\[" or "\n" not in text[k + 2 : end]):
                    spans.append(_Span(k, end + 2, text[k + 2 : end].strip()))
                    i = end + 2
                    continue
            i = k + 2  # any other escape, `\$` included, is not a delimiter
            continue
        if text.startswith("$$", j):
            end = text.find("$$", j + 2)
            if end >= 0:
                spans.append(_Span(j, end + 2, text[j + 2 : end].strip()))
                i = end + 2
                continue
        close = _inline_close(text, j + 1)
        if close is not None:
            spans.append(_Span(j, close + 1, text[j + 1 : close].strip()))
            i = close + 1
        else:
            i = j + 1
    return [s for s in spans if s.content]


def _last_math(text: str, spans: list[_Span]) -> str:
    """The last span, joined with the spans before it that only "and", "or" or commas separate."""
    group = [spans[-1]]
    for span in reversed(spans[:-1]):
        if len(group) == _MAX_JOINED_SPANS or not _SPAN_JOIN.fullmatch(text[span.end : group[0].start]):
            break
        group.insert(0, span)
    return ", ".join(s.content.rstrip(".,").strip() for s in group)


def _last_math_or_number(text: str) -> str | None:
    """Rungs 3-4: the last math span, or the last number when one follows it.

    math-verify ranks unanchored math and bare numbers alike and takes the rightmost: in
    "... $\\Delta x' \\geq 2$ ... increases by 100%." the answer is the 100.
    """
    spans = _math_spans(text)
    after = spans[-1].end if spans else 0
    number = _last_number(text[after:])
    if number is not None or not spans:
        return number
    return _last_math(text, spans) or None


def _inline_close(text: str, start: int) -> int | None:
    """The `$` closing an inline span opened just before `start`, if it closes on the same line."""
    i = start
    while True:
        end = text.find("$", i)
        if end < 0 or text.find("\n", i, end) >= 0:
            return None
        if text[end - 1] != "\\":
            return end
        i = end + 1


def _last_number(text: str) -> str | None:
    found = None
    for found in _NUMBER.finditer(text):
        pass
    return found.group(0) if found is not None and found.group(0) else None


def _strip_math(answer: str) -> str:
    """A statement's answer: its box, else its last math span, else (in prose) its last number."""
    answer = answer.strip()
    boxes = _boxes(answer)
    if boxes:
        return _box_group(answer, boxes)[0]
    spans = _math_spans(answer)
    if spans:
        return _last_math(answer, spans)
    if _PROSE.search(answer) and "\\" not in answer:
        return _last_number(answer) or answer
    # "The final answer is 5 apples." The unit word goes; a known unit would also go in normalise.
    return _TRAILING_WORD.sub("", answer.rstrip(".").strip().strip("$").strip())


def _last_statement(pattern: re.Pattern[str], text: str) -> tuple[str, int] | None:
    """The answer in the last match of `pattern`, and where that match starts."""
    found = None
    for found in pattern.finditer(text):
        pass
    if found is None:
        return None
    answer = _strip_math(found.group(1))
    return (answer, found.start()) if answer else None


def stated_answer(text: str) -> str | None:
    """The answer the text explicitly states (rungs 1-2 of the module's ladder), or None; never raises."""
    if not isinstance(text, str) or not text:
        return None
    final = _last_statement(_FINAL_ANSWER, text)
    boxes = _boxes(text)
    if boxes:
        boxed, end = _box_group(text, boxes)
        # "... = \boxed{255} ... Final Answer: The final answer is $10,455$.": the box was an intermediate result
        return final[0] if final is not None and final[1] >= end else boxed
    if final is not None:
        return final[0]
    for pattern in (_GSM8K, _ANSWER_LINE):
        statement = _last_statement(pattern, text)
        if statement is not None:
            return statement[0]
    return None


def extract_answer(text: str) -> str | None:
    """The final answer in `text` as a run grades it (the module's whole ladder), or None; never raises."""
    stated = stated_answer(text)
    if stated is not None or not isinstance(text, str):
        return stated
    return _last_math_or_number(text)
