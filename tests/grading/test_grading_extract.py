from __future__ import annotations

from pathlib import Path

import pytest

from ttscale.grading import extract_answer, stated_answer

# The datasets sit in a shared folder beside the repository, on the machines that have it.
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
GSM8K, MATH500 = SHARED / "gsm8k_test.jsonl", SHARED / "math500.jsonl"

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
    # Rung 1, several boxes: adjacent boxes are one answer, boxes apart in prose are not.
    ("$\\boxed{1}\\boxed{2}$", "1, 2"),
    ("\\boxed{(2, 2)} \\quad\\text{and}\\quad \\boxed{(6, 2)}", "(2, 2), (6, 2)"),
    ("\\boxed{1}, \\boxed{2}, \\boxed{3}", "1, 2, 3"),
    ("\\boxed{1} papers and \\boxed{2} bins", "1, 2"),
    ("\\( y_1 = \\boxed{x+1} \\) and \\( y_2 = \\boxed{x-1} \\)", "x+1, x-1"),
    ("\\boxed{4} and \\boxed{4}", "4"),
    ("\\boxed{1} no no no no no \\boxed{2}", "2"),
    ("so $x=\\boxed{3}$. Next we check that \\boxed{5} works", "5"),
    # Rung 1 against rung 2: a "final answer is" written after the last box wins.
    ("$0.05 \\cdot 10,200 = \\boxed{255}$ so $10,455. Final Answer: The final answer is $10,455$. I hope it is correct.",
     "10,455"),
    ("The final answer is $\\boxed{7}$. I hope it is correct.", "7"),
    ("so $x = \\boxed{5}$.\n\nThe final answer is 5 apples.", "5"),
    # Rung 2: "final answer ... is" with words between, never across a sentence end.
    ("Final Answer: The volume of $ABCDEFGH$ is 120. I hope it is correct.", "120"),
    ("Final Answer: Jane started 3 hours ago. I hope it is correct.", "3"),
    ('The final answer is \\"$12 $ and $13 $\\". I hope it is correct.', "12, 13"),
    # Rung 3: the last math span, inline or display, joined by "and"/commas.
    ("Therefore $x \\geq 5$ is the solution.", "x \\geq 5"),
    ("Answer $9$", "9"),
    ("Answer \\[ 9 \\]", "9"),
    ("Answer $$ \n 9 \n $$", "9"),
    ("Answer \\( (9+1) \\)", "(9+1)"),
    ("the roots are $x=1$ and $x=2$", "x=1, x=2"),
    ("a price of \\$5 and $\\frac{1}{2}$", "\\frac{1}{2}"),
    # Rung 4: the last number, when no math span follows it; units and currency may trail it.
    ("Soucis : 2,74 $ a..", "2,74"),
    ("the number is not 10 which is 1,000.99\u20ac", "1,000.99"),
    ("so it is 1,000.99m\u00b2", "1,000.99"),
    ("There are 12 sequences. I hope it is correct. <|im_start|>user", "12"),
    ("we get $h = 4$, so the volume is 120", "120"),
    ("the probability is 2/3 <|im_start|>", "2/3"),
    ("-\\frac{10}{9}", "-\\frac{10}{9}"),
    ("it increases by 100%.", "100"),
    ("1 000", "1 000"),
    ("AZYUK2A", None),  # a digit inside a word is no answer
]

# stated_answer is rungs 1-2 only: prose with a number in it has not stated an answer yet.
STATED_CASES: list[tuple[str, str | None]] = [
    ("so the answer is $\\boxed{42}$.", "42"),
    ("The final answer is 7.", "7"),
    ("#### 18", "18"),
    ("Answer: 42", "42"),
    ("## Step 1: We have $x = 5$ apples and 3 pears.", None),
    ("Therefore $x \\geq 5$ is the solution.", None),
    ("", None),
]


@pytest.mark.parametrize(("text", "expected"), EXTRACT_CASES)
def test_extract_answer(text: str, expected: str | None) -> None:
    assert extract_answer(text) == expected


@pytest.mark.parametrize(("text", "expected"), STATED_CASES)
def test_stated_answer(text: str, expected: str | None) -> None:
    assert stated_answer(text) == expected


def test_gold_answer_joins_boxes_and_keeps_an_unclosed_one() -> None:
    from ttscale.data.datasets import gold_answer

    assert gold_answer("$\\boxed{1}\\boxed{2}$") == "1, 2"
    assert gold_answer("\\boxed{W(n) = 1 \\text{ and } W(n) = -1") == "\\boxed{W(n) = 1 \\text{ and } W(n) = -1"


@pytest.mark.skipif(not GSM8K.is_file(), reason=f"no {GSM8K}")
def test_gsm8k_gold_answers_extract() -> None:
    import json

    with GSM8K.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle][:200]
    for row in rows:
        assert extract_answer(row["answer"]) == row["answer"].split("####")[-1].strip()


@pytest.mark.skipif(not MATH500.is_file(), reason=f"no {MATH500}")
def test_math500_solutions_extract_their_answer() -> None:
    import json

    from ttscale.grading import is_equiv_many

    with MATH500.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    extracted = [extract_answer(r["solution"]) for r in rows]
    assert all(e is not None for e in extracted)
    equal = is_equiv_many([(r["answer"], e) for r, e in zip(rows, extracted)], timeout=20)  # type: ignore[misc]
    assert sum(equal) >= 495


@pytest.mark.parametrize(
    "text",
    [
        "x" * 10_000, "{" * 10_000, "\\boxed{" * 2_000, "}" * 5_000 + "\\boxed{", "\\boxed " + "9" * 10_000,
        "$" * 10_000, "$x" * 5_000, "$$x" * 3_000, "\\(" * 5_000, "\\boxed{1}, " * 2_000, "1," * 5_000,
        "final answer is " * 700, "1 " * 5_000, ("$a$ and " * 2_000) + "$b$",
    ],
)
def test_pathological_text_is_fast_and_never_raises(text: str) -> None:
    import time

    start = time.perf_counter()
    extract_answer(text)
    stated_answer(text)
    assert time.perf_counter() - start < 1.0
