"""`ttscale grade`: compare one pair, or a JSONL file of pairs. cli.py wires this into typer."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, TextIO

from ttscale.data.jsonl import Line, dumps, iter_lines
from ttscale.grading.equivalence import DEFAULT_TIMEOUT, is_equiv, is_equiv_many
from ttscale.grading.pool import get_pool


def _row(line: Line) -> tuple[dict[str, Any] | None, str | None]:
    """(object, None) for a usable line, else (object or None, the error message)."""
    if line.error is not None:
        return None, f"line {line.number}: {line.error}"
    row = line.value
    if not isinstance(row, dict):
        return None, f"expected a JSON object with 'gold' and 'pred', got {type(row).__name__}"
    for field in ("gold", "pred"):
        if not isinstance(row.get(field), str):
            return row, f"missing or non-string field '{field}'"
    return row, None


def _verdicts(pairs: list[tuple[str, str]], timeout_total: float | None) -> list[bool | str]:
    """True/False per pair, or an error string for a pair the total deadline left undecided.

    Without a total every pair is graded at once (each bounded by DEFAULT_TIMEOUT). With one,
    pairs go in batches of one per worker, each under min(DEFAULT_TIMEOUT, half what is left)
    (a batch can spend that twice: a parse screen, then the comparison), so the whole file stays
    within the total (else N pathological pairs would cost ~5N/2 s on 2 cores). In the batch that
    hit the clipped deadline a False may be a cut-off pair, so it is reported undecided, not unequal.
    """
    if timeout_total is None:
        return list(is_equiv_many(pairs))
    pool = get_pool()
    deadline = time.monotonic() + timeout_total
    out: list[bool | str] = []
    for start in range(0, len(pairs), pool.n_workers):
        batch = pairs[start : start + pool.n_workers]
        left = deadline - time.monotonic()
        if left <= 0.01:
            out += [_OVER_TOTAL.format(timeout_total)] * len(batch)
            continue
        timeout = min(DEFAULT_TIMEOUT, left / 2)
        timeouts_before = pool.n_timeouts
        verdicts = is_equiv_many(batch, timeout)
        cut = timeout < DEFAULT_TIMEOUT and pool.n_timeouts > timeouts_before
        out += [_OVER_TOTAL.format(timeout_total) if cut and not v else v for v in verdicts]
    return out


_OVER_TOTAL = "timed out: not decided within --timeout-total {:g}s"


def _grade_pairs(lines: list[Line], stdout: TextIO, stderr: TextIO, timeout_total: float | None = None) -> None:
    rows = [_row(line) for line in lines]
    usable = [(row["gold"], row["pred"]) for row, error in rows if error is None]  # type: ignore[index]
    verdicts = iter(_verdicts(usable, timeout_total))
    n_equal = n_errors = 0
    for row, error in rows:
        verdict = next(verdicts) if error is None else error
        if isinstance(verdict, bool):
            out = {**row, "equal": verdict}  # type: ignore[dict-item]
            n_equal += verdict
        else:
            out = {**(row or {}), "error": verdict}
            n_errors += 1
        stdout.write(dumps(out) + "\n")
    stderr.write(f"{len(rows)} pairs, {n_equal} equal, {n_errors} errors\n")


def grade_main(gold: str | None, pred: str | None, pairs: str | None, stdout: TextIO, stderr: TextIO,
               timeout_total: float | None = None) -> int:
    """Exit code: 0 equal / file graded, 1 unequal, 2 bad usage or unreadable file."""
    if timeout_total is not None and not (math.isfinite(timeout_total) and timeout_total > 0):
        stderr.write(f"error: --timeout-total {timeout_total!r} is invalid; accepted: seconds > 0\n")
        return 2
    if pairs is not None:
        if gold is not None or pred is not None:
            stderr.write("error: pass either --pairs FILE or --gold and --pred, not both\n")
            return 2
        try:
            # split on "\n" alone and decoded line by line: a bad line is one error row, not the file
            lines = list(iter_lines(Path(pairs)))
        except OSError as exc:
            stderr.write(f"error: cannot read pairs file '{pairs}': {exc}\n")
            return 2
        _grade_pairs(lines, stdout, stderr, timeout_total)
        return 0
    if gold is None or pred is None:
        stderr.write("error: pass --gold and --pred, or --pairs FILE.jsonl\n")
        return 2
    equal = is_equiv(gold, pred)
    stdout.write("true\n" if equal else "false\n")
    return 0 if equal else 1
