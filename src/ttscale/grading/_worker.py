"""The code that runs inside a grading worker process: math-verify with its signal timeouts off.

The parent bounds each request with a deadline and kills this process when it
overruns (sympy cannot be interrupted from inside a thread, and math-verify's
own SIGALRM timeout only works in a main thread).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from functools import lru_cache
from multiprocessing.connection import Connection
from typing import Any

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_WATCH_INTERVAL_S = 0.2


def die_with_parent(parent_pid: int) -> None:
    """End this worker when its parent ends, however it ends: a `kill -9` of `ttscale grade` must
    not leave a worker re-parented to PID 1 at 100% CPU, and daemon=True only helps on a clean exit.

    On Linux the kernel SIGKILLs us through PR_SET_PDEATHSIG, which needs no cooperation from this
    process: sympy's big-integer arithmetic holds the GIL for minutes inside one bytecode, and no
    Python thread or signal handler runs until it returns. The signal fires when the parent
    *thread* that forked us exits (prctl(2)); the pool forks only from threads that live as long as
    its process. Elsewhere a watchdog thread on the parent's PID is the best we have: it ends a
    worker busy in Python code, not one inside a single long bytecode.
    """
    armed = _arm_pdeathsig()
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(0)
    if not armed:
        threading.Thread(target=_watch_parent, args=(parent_pid,), name="parent-watchdog", daemon=True).start()


def _arm_pdeathsig() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False  # no prctl in this libc: the watchdog alone


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(_WATCH_INTERVAL_S)
    os._exit(0)


def close_inherited(fds: Sequence[int]) -> None:
    """Close the parent's pipe ends a forked worker inherited (its own and its siblings'), so the
    parent closing a pipe is an EOF in that pipe's worker."""
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


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


def serve(conn: Connection, parent_pid: int | None = None, inherited_fds: Sequence[int] = ()) -> None:
    """Answer ("equiv", gold, pred) and ("parse", answer, "") requests until "stop" or EOF."""
    close_inherited(inherited_fds)
    if parent_pid is not None:
        die_with_parent(parent_pid)
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
