from __future__ import annotations

import pytest

from ttscale.grading import extract_answer

EXTRACT_CASES: list[tuple[str, str | None]] = [
    ("so the answer is $\\boxed{42}$.", "42"),
    ("first \\boxed{1} then \\boxed{2}", "2"),
    ("$\\boxed{\\frac{\\sqrt{3}}{2}}$", "\\frac{\\sqrt{3}}{2}"),
    ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("\\boxed{\\{1,2\\}}", "\\{1,2\\}"),
    ("\\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"),
    ("The answer is $\\boxed 5$.", "5"),
    ("hence \\boxed 12.", "12"),
    ("\\fbox{7}", "7"),
    ("\\boxed{3} and finally \\fbox{8}", "8"),
    ("Therefore, the final answer is: $\\boxed{12}$. I hope it is correct.", "12"),
    ("Therefore, the final answer is: $\\frac{1}{2}$. I hope it is correct.", "\\frac{1}{2}"),
    ("The final answer is 7.", "7"),
    ("Janet makes 9 * 2 = $<<9*2=18>>18 every day.\n#### 18", "18"),
    ("#### 1,234", "1,234"),
    ("Step 1: 6*7.\nAnswer: 42", "42"),
    ("Step 1: 6*7.\nAnswer: \\boxed{42}", "42"),
    ("**Answer:** 17", "17"),
    ("no answer here at all", None),
    ("", None),
    ("\\boxed{}", None),
    ("\\boxed{3} then \\boxed{4", "3"),  # unclosed last box: fall back to the previous one
    ("\\boxed{\\frac{1}{2}", "\\frac{1}{2}"),  # unclosed box: no box rung; the last-number rung reads the fraction
    ("}}}{{{ \\boxed{5} }}}", "5"),
]


@pytest.mark.parametrize(("text", "expected"), EXTRACT_CASES)
def test_extract_answer(text: str, expected: str | None) -> None:
    assert extract_answer(text) == expected


def test_gsm8k_gold_answers_extract() -> None:
    import json

    with open("/work/shared/data/gsm8k_test.jsonl", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle][:200]
    for row in rows:
        assert extract_answer(row["answer"]) == row["answer"].split("####")[-1].strip()


def test_math500_solutions_extract_their_answer() -> None:
    import json

    from ttscale.grading import is_equiv_many

    with open("/work/shared/data/math500.jsonl", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    extracted = [extract_answer(r["solution"]) for r in rows]
    assert all(e is not None for e in extracted)
    equal = is_equiv_many([(r["answer"], e) for r, e in zip(rows, extracted)], timeout=20)  # type: ignore[misc]
    assert sum(equal) >= 495


@pytest.mark.parametrize(
    "text",
    ["x" * 10_000, "{" * 10_000, "\\boxed{" * 2_000, "}" * 5_000 + "\\boxed{", "\\boxed " + "9" * 10_000],
)
def test_pathological_text_is_fast_and_never_raises(text: str) -> None:
    import time

    start = time.perf_counter()
    extract_answer(text)
    assert time.perf_counter() - start < 1.0
