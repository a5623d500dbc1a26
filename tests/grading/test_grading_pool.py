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

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

# A parent that starts two workers, prints their pids, then keeps both busy on pairs that take sympy
# minutes; `thread` grades from a non-main thread, where only the parent-PID watchdog applies.
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


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")  # a zombie nobody reaps has ended all the same


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("where", ["main", "thread"])
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_busy_workers_die_within_two_seconds_of_their_parent(where, how):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    parent = subprocess.Popen([sys.executable, "-c", PARENT, where], stdout=subprocess.PIPE, text=True, env=env)
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        time.sleep(0.5)  # both workers are inside sympy now
        parent.send_signal(how)
        parent.wait(10)
        deadline = time.monotonic() + 2.0
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in pids if _alive(p)]
    finally:
        parent.kill()
        for pid in pids if "pids" in locals() else []:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
