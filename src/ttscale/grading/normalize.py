"""Pure-string normalisation: the fast path that settles most answers without sympy.

`canonical_key` maps an answer to a string such that equal keys mean equal
answers (never the reverse guarantee: different keys may still be equivalent,
which `is_equiv` then decides). Numbers get an exact rational key, so `0.5`,
`\\frac12`, `\\dfrac{1}{2}` and `1/2` share one; lists of numbers are sorted.
Every rule here exists because an answer in MATH-500 or a model output needed
it; each has a row in tests/grading/golden.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

# Longest numeral we convert exactly; longer ones (or 9^9^9 towers) stay strings and go to sympy.
_MAX_DIGITS = 400
# Answers longer than this are not normalised beyond trimming: nobody's final answer is 2 kB,
# and the regexes below then stay cheap on garbage.
_MAX_NORMALISED = 2000

_SPACING = re.compile(r"(?<!\\)\\[,;:! ]|\\quad|\\qquad|~|\\displaystyle|\\limits")
_LEFT_RIGHT = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)(?![a-zA-Z])\s*")
_TEXT_CMD = re.compile(r"\\(?:mbox|textbf|textit|textrm|mathrm|mathbf|operatorname)\{")
# `^{\circ}` takes its own braces only: `\boxed{90^\circ}` keeps the box's closing brace.
_DEGREE_MARK = r"(?:\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|°|\\degree)"
_DEGREES = re.compile(_DEGREE_MARK)
# `\sin 30^\circ` is sin(pi/6) = 1/2, not sin(30): inside a trig function a degree mark converts to
# radians instead of being dropped like the unit of a bare `120^\circ` answer.
_TRIG_DEGREES = re.compile(
    r"(\\(?:sin|cos|tan|cot|sec|csc)\s*(?:\^\s*\{?\d\}?\s*)?\(?\s*)(\d+(?:\.\d+)?)\s*" + _DEGREE_MARK
)
# `-1i`, `3-1i`: the explicit unit coefficient. math-verify parses `1i` as an unevaluated `1*i`
# that never equals `i`. Not `11i` or `0.1i`.
_UNIT_IMAGINARY = re.compile(r"(?<![\d.])1\s*(?=i(?![a-zA-Z]))")
# `2j`, `3+2j`: the engineers' imaginary unit, only in an answer that is just a complex number.
_ENGINEERING_COMPLEX = re.compile(r"^(?:[-+]?\d*\.?\d+\s*[-+]\s*)?[-+]?\d*\.?\d+\s*j$")
# `12\text{ and }13`, `19, 46, and 82`: a list written in words.
_TEXT_AND = re.compile(r",?\s*\\text\{\s*(?:and|or)\s*\}\s*|(?<=[\d}).])\s*,?\s+(?:and|or)\s+(?=[-\d\\(])")
_APPROX = re.compile(r"\\approx|\\simeq")
# `=` that is not part of `<=`, `>=`, `!=`, `\=`.
_EQUALS = re.compile(r"(?<![<>!\\=])=(?!=)")
_UNIT_TEXT = re.compile(r"(?<=[\d}])\s*\\text\{\s*[a-zA-Z][a-zA-Z .]*\}(\^\{?\d\}?)?$")
_BARE_UNIT = re.compile(
    r"(?<=\d)\s*(?:cm|m|km|mm|in|inches|inch|ft|feet|units|unit|degrees|degree|cents|cent|dollars|"
    r"meters|miles|mph|hours|minutes|seconds|square units|sq units|percentage|percent|pct)(\^\{?\d\}?)?\.?$"
)
_VAR_PREFIX = re.compile(r"^[a-zA-Z](?:_\{?\w+\}?)?\s*(?:=|\\in)\s*(?=[^=]+$)")
# A leading `0` group is never thousands: `0,111` is 0.111 or the list {0, 111}, never 111.
_THOUSANDS = re.compile(r"^-?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?$")
# `1,22`, `1000,99`, `0,111`: no thousands grouping, so the comma may be a decimal comma. One digit
# after it (`0,1`, `-2,1`) is MATH's list of solutions far more often than a European decimal.
_DECIMAL_COMMA = re.compile(r"^-?\d+,\d{2,}$")
_FRAC_SHORT = re.compile(r"\\frac\s*(\d)\s*(\d)")
_FRAC_HALF_SHORT = re.compile(r"\\frac\s*(\{[^{}]*\}|\d)\s*(\d)")
_FRAC_DIGIT_FIRST = re.compile(r"\\frac\s*(\d)\s*\{")
_SQRT_SHORT = re.compile(r"\\sqrt\s*(\d)")
_SPACE_NOT_BETWEEN_LETTERS = re.compile(r"(?<![a-zA-Z])\s+|\s+(?![a-zA-Z])")

_INTEGER = re.compile(r"^[-+]?\d+$")
_DECIMAL = re.compile(r"^[-+]?(\d*)\.(\d+)$|^[-+]?(\d+)\.$")
_FRACTION = re.compile(r"^([-+]?)\\frac\{([-+]?\d+)\}\{([-+]?\d+)\}$|^([-+]?\d+)/(\d+)$")
_MIXED = re.compile(r"^(\d+)\\frac\{(\d+)\}\{(\d+)\}$")
_SCIENTIFIC = re.compile(r"^([-+]?\d*\.?\d+)(?:\\times|\\cdot|\*)10\^\{?([-+]?\d+)\}?$|^([-+]?\d*\.?\d+)[eE]([-+]?\d+)$")
_REPEATING = re.compile(r"^([-+]?)(\d*)\.(\d*)\\overline\{(\d+)\}$")
_WORD = re.compile(r"^\(?[a-zA-Z][a-zA-Z ]*\)?$")


@dataclass(frozen=True)
class Analysis:
    """What the string pass learned about one answer."""

    normalised: str
    key: str
    value: Fraction | None = None  # exact value when the answer is a plain number
    is_decimal: bool = False  # written with a decimal point: compared after rounding, like math-verify
    is_text: bool = False  # a word or a multiple-choice letter
    # The answer with its `x =` prefix kept: compared instead of `normalised` when the other
    # side is an equation (`2x+4y-3=0` against `y=-\frac12x+\frac34`).
    equation: str = ""
    # The value if a comma between digits is a decimal comma (`1000,99`); used only against a
    # number written with a decimal point, so the lists `1,2` and `0,1` stay lists otherwise.
    comma_value: Fraction | None = None


def _unwrap_text(answer: str) -> str:
    """`\\text{Evelyn}` -> `Evelyn`, keeping the contents of any `\\text{...}` group."""
    return re.sub(r"\\text\{([^{}]*)\}", r"\1", answer)


def normalise(answer: str) -> str:
    """LaTeX spelling differences removed; the result is still LaTeX math-verify can parse."""
    return _strip_prefix(_normalise_keeping_prefix(answer))


def _last_of_chain(s: str) -> str:
    """`x = 5+5+1 = 7 = 11` -> `11`, `x \\approx 11` -> `x = 11`; `a=1, b=2` and `y = 2x` unchanged.

    As math-verify reads a chain: its last part; an approximation after a value is dropped.
    """
    approx = _APPROX.search(s)
    if approx is not None:
        before = s[: approx.start()]
        s = before if len(_top_level_equals(before)) > 1 else _APPROX.sub("=", s, count=1)
    if "," in s or ";" in s:
        return s
    parts = _top_level_equals(s)
    return parts[-1].strip() if len(parts) > 2 else s


def _top_level_equals(s: str) -> list[str]:
    """Split on `=` outside brackets: `\\sum_{k=0}^n a_k = 5` has two parts, not three."""
    parts, depth, start = [], 0, 0
    for m in re.finditer(r"[([{]|[)\]}]|" + _EQUALS.pattern, s):
        char = m.group(0)
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif depth == 0:
            parts.append(s[start : m.start()])
            start = m.end()
    parts.append(s[start:])
    return parts


def _complex_spelling(s: str) -> str:
    s = _UNIT_IMAGINARY.sub("", s)
    engineering = _ENGINEERING_COMPLEX.match(s)
    if engineering is not None and "i" not in s:
        s = s[:-1] + "i"
    return s


def _strip_prefix(s: str) -> str:
    return _VAR_PREFIX.sub("", s)


def _normalise_keeping_prefix(answer: str) -> str:
    """`normalise` short of dropping an `x =` prefix, which only the comparison can decide on."""
    s = answer.strip()
    if len(s) > _MAX_NORMALISED:
        return s
    s = s.strip("$").strip()
    list_commas = re.search(r",[ \t\n]", s) is not None
    s = s.replace("\\$", "").replace("\\%", "").replace("%", "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\cfrac", "\\frac")
    s = s.replace("\\bmatrix", "\\pmatrix").replace("{bmatrix}", "{pmatrix}")
    s = _SPACING.sub(" ", s)
    s = _LEFT_RIGHT.sub("", s)
    s = _TEXT_CMD.sub("\\\\text{", s)
    s = _TRIG_DEGREES.sub(r"\1\\frac{\2\\pi}{180}", s)
    s = _DEGREES.sub("", s)
    s = _UNIT_TEXT.sub("", s).strip()
    s = _BARE_UNIT.sub("", s).strip()
    s = s.rstrip(".").strip()
    # Units once stripped may leave `\text{}` around a whole word answer: unwrap it.
    if s.startswith("\\text{") and s.endswith("}") and s.count("{") == 1:
        s = _unwrap_text(s).strip()
    s = _TEXT_AND.sub(",", s)
    s = _last_of_chain(s)
    s = _FRAC_SHORT.sub(r"\\frac{\1}{\2}", s)
    s = _FRAC_HALF_SHORT.sub(r"\\frac\1{\2}", s)
    s = _FRAC_DIGIT_FIRST.sub(r"\\frac{\1}{", s)
    s = _SQRT_SHORT.sub(r"\\sqrt{\1}", s)
    s = _SPACE_NOT_BETWEEN_LETTERS.sub("", s)
    s = _complex_spelling(s)
    # `32, 349` with a space is the list {32, 349}; `32,349` and `32,\!349` are one number.
    if _THOUSANDS.match(s) and not list_commas:
        s = s.replace(",", "")
    return s


def _number(s: str) -> tuple[Fraction, bool] | None:
    """(exact value, written as a decimal) for a plain numeral, else None."""
    if len(s) > _MAX_DIGITS:
        return None
    if _INTEGER.match(s):
        return Fraction(int(s)), False
    if _DECIMAL.match(s):
        return Fraction(s.rstrip(".") or "0"), True
    frac = _FRACTION.match(s)
    if frac:
        sign, num, den = (frac.group(1), frac.group(2), frac.group(3)) if frac.group(2) else ("", frac.group(4), frac.group(5))
        if int(den) == 0:
            return None
        value = Fraction(int(num), int(den))
        return (-value if sign == "-" else value), False
    mixed = _MIXED.match(s)
    if mixed:
        units, top, bottom = (int(g) for g in mixed.groups())
        # `137 \frac{1}{2}` is MATH-500's mixed number 137.5, never the product 68.5
        return (Fraction(units) + Fraction(top, bottom), False) if bottom else None
    repeating = _REPEATING.match(s)
    if repeating:
        # 0.1\overline{6} = 1/6 exactly; math-verify reads the bar as a product and fails.
        sign, whole, fixed, period = repeating.groups()
        value = Fraction(int(whole or "0")) + Fraction(int(fixed or "0"), 10 ** len(fixed))
        value += Fraction(int(period), 10 ** len(fixed) * (10 ** len(period) - 1))
        return (-value if sign == "-" else value), False
    sci = _SCIENTIFIC.match(s)
    if sci:
        mantissa, exponent = (sci.group(1), sci.group(2)) if sci.group(1) else (sci.group(3), sci.group(4))
        if abs(int(exponent)) > _MAX_DIGITS:
            return None
        return Fraction(mantissa) * Fraction(10) ** int(exponent), "." in mantissa
    return None


def _number_key(value: Fraction) -> str:
    return f"n:{value.numerator}" if value.denominator == 1 else f"n:{value.numerator}/{value.denominator}"


def _top_level_split(s: str) -> list[str]:
    """Split on commas outside any bracket: `1,(2,3)` -> [`1`, `(2,3)`]."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(s):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(s[start:i])
            start = i + 1
    parts.append(s[start:])
    return parts


def _list_key(s: str) -> str | None:
    """Key for `1,-2` / `\\{1,-2\\}` (unordered) and `(1,-2)` (ordered) lists of numbers."""
    ordered = False
    inner = s
    if s.startswith("\\{") and s.endswith("\\}"):
        inner = s[2:-2]
    elif s.startswith("(") and s.endswith(")") and s.count("(") == 1:
        # `(1,2)` is a point or an open interval; both are ordered, and both key to the same
        # string, which math-verify also treats as equal.
        inner, ordered = s[1:-1], True
    parts = _top_level_split(inner)
    if len(parts) < 2:
        return None
    numbers = [_number(p) for p in parts]
    if any(n is None for n in numbers):
        return None
    keys = [_number_key(n[0]) for n in numbers]  # type: ignore[index]
    return f"tuple:({','.join(keys)})" if ordered else f"set:{{{','.join(sorted(keys))}}}"


@lru_cache(maxsize=1 << 16)
def analyse(answer: str) -> Analysis:
    """Normalise once per distinct string; vote() calls this for every sample."""
    equation = _normalise_keeping_prefix(answer)
    s = _strip_prefix(equation)
    number = _number(s)
    if number is not None:
        return Analysis(s, _number_key(number[0]), number[0], number[1], equation=equation)
    if _WORD.match(s) and not s.isupper() or re.fullmatch(r"\(?[A-Ea-e]\)?", s):
        # Words and choice letters: `\text{(B)}`, `B`, `Evelyn`. Compared as text, never as sympy
        # products of symbols (math-verify calls `east` and `seat` equal).
        return Analysis(s, "t:" + s.strip("()").lower(), is_text=True, equation=equation)
    comma_value = Fraction(s.replace(",", ".")) if _DECIMAL_COMMA.match(s) and len(s) <= _MAX_DIGITS else None
    listed = _list_key(s)
    if listed is not None:
        return Analysis(s, listed, equation=equation, comma_value=comma_value)
    return Analysis(s, "s:" + s, equation=equation, comma_value=comma_value)


def sympy_forms(a: Analysis, b: Analysis) -> tuple[str, str]:
    """The strings math-verify compares: with `x =` prefixes kept when either side is an equation."""
    if "=" in a.normalised or "=" in b.normalised:
        return a.equation, b.equation
    return a.normalised, b.normalised


def canonical_key(answer: str) -> str:
    """Equal keys for equivalent answers in the common cases, in O(len(answer)) without sympy."""
    return analyse(answer).key


def _round6(value: Fraction) -> Fraction:
    # math-verify rounds both sides to 6 places when either is a float (grader.sympy_numeric_eq).
    return Fraction(round(value * 10**6), 10**6)


def quick_equiv(a: Analysis, b: Analysis) -> bool | None:
    """True/False when the string pass can decide, None when sympy must."""
    if a.key == b.key:
        return True
    if a.value is not None and b.value is not None:
        if a.is_decimal or b.is_decimal:
            return _round6(a.value) == _round6(b.value)
        return False
    for x, y in ((a, b), (b, a)):
        if x.comma_value is not None and y.is_decimal and y.value is not None:
            return _round6(x.comma_value) == _round6(y.value)
    if a.is_text and b.is_text:
        return False
    if (a.is_text and b.value is not None) or (b.is_text and a.value is not None):
        return False
    both_lists = a.key[:2] in ("se", "tu") and b.key[:2] in ("se", "tu")
    if both_lists and a.key[:2] == b.key[:2]:
        return False
    if (a.value is not None and b.key.startswith(("set:", "tuple:"))) or (
        b.value is not None and a.key.startswith(("set:", "tuple:"))
    ):
        return False
    return None
