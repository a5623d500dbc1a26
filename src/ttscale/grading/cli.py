"""`ttscale grade`: compare one pair, or a JSONL file of pairs. cli.py wires this into typer."""

from __future__ import annotations

import json
from typing import Any, TextIO

from ttscale.grading.equivalence import is_equiv, is_equiv_many


def _row(line: str) -> tuple[dict[str, Any] | None, str | None]:
    """(object, None) for a usable line, else (object or None, the error message)."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON: {exc.msg} at column {exc.colno}"
    if not isinstance(row, dict):
        return None, f"expected a JSON object with 'gold' and 'pred', got {type(row).__name__}"
    for field in ("gold", "pred"):
        if not isinstance(row.get(field), str):
            return row, f"missing or non-string field '{field}'"
    return row, None


def _grade_pairs(lines: list[str], stdout: TextIO, stderr: TextIO) -> None:
    rows = [_row(line) for line in lines if line.strip()]
    usable = [(row["gold"], row["pred"]) for row, error in rows if error is None]  # type: ignore[index]
    verdicts = iter(is_equiv_many(usable))
    n_equal = n_errors = 0
    for row, error in rows:
        if error is None:
            out = {**row, "equal": next(verdicts)}  # type: ignore[dict-item]
            n_equal += out["equal"]
        else:
            out = {**(row or {}), "error": error}
            n_errors += 1
        stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
    stderr.write(f"{len(rows)} pairs, {n_equal} equal, {n_errors} errors\n")


def grade_main(gold: str | None, pred: str | None, pairs: str | None, stdout: TextIO, stderr: TextIO) -> int:
    """Exit code: 0 equal / file graded, 1 unequal, 2 bad usage or unreadable file."""
    if pairs is not None:
        if gold is not None or pred is not None:
            stderr.write("error: pass either --pairs FILE or --gold and --pred, not both\n")
            return 2
        try:
            with open(pairs, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            stderr.write(f"error: cannot read pairs file '{pairs}': {exc}\n")
            return 2
        _grade_pairs(lines, stdout, stderr)
        return 0
    if gold is None or pred is None:
        stderr.write("error: pass --gold and --pred, or --pairs FILE.jsonl\n")
        return 2
    equal = is_equiv(gold, pred)
    stdout.write("true\n" if equal else "false\n")
    return 0 if equal else 1
