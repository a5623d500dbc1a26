"""The code that runs inside a grading worker process: math-verify with its signal timeouts off.

The parent bounds each request with a deadline and kills this process when it
overruns (sympy cannot be interrupted from inside a thread, and math-verify's
own SIGALRM timeout only works in a main thread).
"""

from __future__ import annotations

import logging
from functools import lru_cache
from multiprocessing.connection import Connection
from typing import Any


def _quiet_math_verify() -> None:
    import math_verify.grader
    import math_verify.parser

    # We disable its timeouts on purpose; its once-per-process warning would be noise in every worker.
    math_verify.parser.TIMEOUT_WARNING_SHOWN = True
    math_verify.grader.TIMEOUT_WARNING_SHOWN = True
    logging.getLogger("math_verify").setLevel(logging.ERROR)


@lru_cache(maxsize=1 << 14)
def parse_answer(answer: str) -> list[Any]:
    """math-verify's parse of an extracted answer; boxing it makes the LaTeX extractor take all of it."""
    from math_verify import parse

    return parse("\\boxed{" + answer + "}", parsing_timeout=None)


def verify_pair(gold: str, pred: str) -> bool:
    from math_verify import verify

    return bool(verify(parse_answer(gold), parse_answer(pred), timeout_seconds=None))


def serve(conn: Connection) -> None:
    """Answer ("equiv", gold, pred) and ("parse", answer, "") requests until "stop" or EOF.

    EOF alone is not enough: a forked sibling inherits our parent's end of the pipe.
    """
    _quiet_math_verify()
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        kind, gold, pred = request
        if kind == "stop":
            return
        try:
            result: bool | str = verify_pair(gold, pred) if kind == "equiv" else bool(parse_answer(gold))
        except Exception as exc:  # noqa: BLE001 - a sympy failure is an answer ("unequal"), not a crash
            result = f"error: {type(exc).__name__}"
        conn.send(result)
