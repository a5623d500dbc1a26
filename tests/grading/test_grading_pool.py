"""Grading workers end with their parent, however it ends, and not before."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import ttscale
from ttscale.grading.pool import TIMED_OUT, VerifyPool, cpu_seconds

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

# A parent that starts its pool from a non-main thread, which then grades and ends with the parent.
# Busy, the workers never read their pipe's EOF. `sympy` keeps them in big-integer arithmetic, which
# holds the GIL throughout, so only the kernel's PR_SET_PDEATHSIG can end them; `watchdog` turns that
# signal off, as on a platform without prctl, and keeps them busy in Python code, where the
# parent-PID watchdog thread gets the GIL.
FROM_A_THREAD = textwrap.dedent(
    """
    import sys, threading
    from ttscale.grading import _worker
    from ttscale.grading.pool import VerifyPool

    def spin(gold, pred):
        while True:
            pass

    if sys.argv[1] == "watchdog":
        _worker.verify_pair = spin  # the forked workers inherit both
        _worker._arm_pdeathsig = lambda: False

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


def _cpu_s(pid: int) -> float:
    utime, stime = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[11:13]
    return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")


def _wait_until_busy(pids: list[int], cpu_s: float = 0.5, within_s: float = 30.0) -> None:
    """Until each worker has spent `cpu_s` on its request: math-verify parses for ~0.1 s in Python
    code before sympy's arithmetic starts, and a parent killed sooner would test the wrong thing."""
    deadline = time.monotonic() + within_s
    while any(_cpu_s(p) < cpu_s for p in pids):
        assert time.monotonic() < deadline, "the workers never got busy"
        time.sleep(0.05)


def _survivors(script: str, arg: str, how: signal.Signals) -> list[int]:
    """The workers of a parent running `script arg` still alive two seconds after `how` ended it."""
    env = {**os.environ, "PYTHONPATH": SRC}
    parent = subprocess.Popen([sys.executable, "-c", script, arg], stdout=subprocess.PIPE, text=True, env=env)
    pids: list[int] = []
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        _wait_until_busy(pids)
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
    assert _survivors(FROM_A_THREAD, "watchdog", how) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_forked_from_a_thread_die_even_inside_sympy():
    assert _survivors(FROM_A_THREAD, "sympy", signal.SIGKILL) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_workers_outlive_the_thread_that_started_them():
    """PR_SET_PDEATHSIG fires when the forking *thread* ends: a worker started by one request thread
    must still serve the next request, from another thread, after the first one has ended."""
    from ttscale.grading.pool import VerifyPool

    def grade_in_a_thread() -> list:
        results: list = []
        thread = threading.Thread(target=lambda: results.append(pool.verify_many([("1/2", "0.5")], timeout=60)))
        thread.start()
        thread.join()
        return results

    pool = VerifyPool(1)
    try:
        # Graded, not only started, in the first thread: the worker has armed its signal by the time it
        # answers, so the thread ends after that, as a request thread would.
        assert grade_in_a_thread() == [[True]]
        (worker,) = pool._workers
        time.sleep(0.5)  # the kernel signals as the thread exits; a wrongly armed worker is dead by now
        assert worker.process.is_alive()
        assert grade_in_a_thread() == [[True]] and pool._workers == [worker]
    finally:
        pool.shutdown()


@pytest.mark.skipif(cpu_seconds(os.getpid()) is None, reason="no /proc: the deadline is wall-clock time there")
def test_a_worker_starved_of_cpu_is_not_cut_at_the_deadline_but_one_that_spins_is():
    """A stopped worker (what a fully loaded machine looks like to it) uses no CPU: its pair is graded
    once it runs again, not marked undecided because wall time went by; a hung sympy call still ends."""
    pool = VerifyPool(n_workers=1)
    try:
        pool._ensure_workers(1)
        pid = pool._workers[0].process.pid
        os.kill(pid, signal.SIGSTOP)
        resume = threading.Timer(2.5, os.kill, (pid, signal.SIGCONT))
        resume.start()
        try:
            started = time.monotonic()
            assert pool.verify_many([("\\frac{1}{2}", "0.5")], timeout=1.0) == [True]
            assert time.monotonic() - started >= 2.5  # it waited for the stopped worker
        finally:
            resume.cancel()
            os.kill(pid, signal.SIGCONT)
        assert pool.n_timeouts == 0
        assert pool.verify_many([("1", "(10^{10^{10}})!")], timeout=0.5) == [TIMED_OUT]
        assert pool.n_timeouts == 1
    finally:
        pool.shutdown()
