"""Grading workers end with their parent, however it ends (issue 18)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import ttscale

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

# The parent processes run the ttscale this test imported, wherever it was loaded from.
SRC = str(Path(ttscale.__file__).resolve().parents[1])

# A parent that starts two workers, prints their pids, then keeps both busy on pairs that take sympy
# minutes; `thread` grades from a non-main thread. The workers are forked from the main thread either
# way, so the pool arms PR_SET_PDEATHSIG for them.
PARENT = textwrap.dedent(
    """
    import sys, threading
    from ttscale.grading.pool import VerifyPool

    pool = VerifyPool(2)
    pool._ensure_workers(2)
    print(" ".join(str(w.process.pid) for w in pool._workers), flush=True)
    grade = lambda: pool.verify_many([("(10^{10^{10}})!", "1"), ("9^{9^{9^{9}}}", "2")], timeout=600)
    if sys.argv[1] == "thread":
        t = threading.Thread(target=grade)
        t.start()
        t.join()
    else:
        grade()
    """
)

# A parent that starts its pool from a non-main thread: there the pool does not arm PR_SET_PDEATHSIG
# (the kernel fires it when the forking *thread* ends), so only the parent-PID watchdog can end the
# workers; busy, they never read their pipe's EOF. `python` keeps them busy in Python code, where
# the watchdog thread gets the GIL; `sympy` in big-integer arithmetic, which holds it throughout.
FROM_A_THREAD = textwrap.dedent(
    """
    import sys, threading
    from ttscale.grading import _worker
    from ttscale.grading.pool import VerifyPool

    def spin(gold, pred):
        while True:
            pass

    if sys.argv[1] == "python":
        _worker.verify_pair = spin  # the forked workers inherit it

    def start_and_grade():
        pool = VerifyPool(2)
        pool._ensure_workers(2)
        print(" ".join(str(w.process.pid) for w in pool._workers), flush=True)
        pool.verify_many([("(10^{10^{10}})!", "1"), ("9^{9^{9^{9}}}", "2")], timeout=600)

    t = threading.Thread(target=start_and_grade)
    t.start()
    t.join()
    """
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")  # a zombie nobody reaps has ended all the same


def _survivors(script: str, arg: str, how: signal.Signals) -> list[int]:
    """The workers of a parent running `script arg` still alive two seconds after `how` ended it."""
    env = {**os.environ, "PYTHONPATH": SRC}
    parent = subprocess.Popen([sys.executable, "-c", script, arg], stdout=subprocess.PIPE, text=True, env=env)
    pids: list[int] = []
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        time.sleep(0.5)  # both workers are busy on their request now
        parent.send_signal(how)
        parent.wait(10)
        deadline = time.monotonic() + 2.0
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        return [p for p in pids if _alive(p)]
    finally:
        parent.kill()
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("where", ["main", "thread"])
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_busy_workers_die_within_two_seconds_of_their_parent(where, how):
    assert _survivors(PARENT, where, how) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_the_watchdog_ends_workers_forked_from_a_thread(how):
    assert _survivors(FROM_A_THREAD, "python", how) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.xfail(strict=True, reason="the watchdog is a thread: it never runs while sympy's big-integer "
                   "arithmetic holds the GIL, and no PR_SET_PDEATHSIG is armed for a worker forked from a thread")
def test_workers_forked_from_a_thread_die_even_inside_sympy():
    assert _survivors(FROM_A_THREAD, "sympy", signal.SIGKILL) == []
