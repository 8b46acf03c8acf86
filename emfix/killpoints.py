"""Where a test may kill emfix for certain, without timing: EMFIX_TEST_KILL_AT=POINT:N sends SIGKILL to
the process the N-th time it passes POINT ("keeping": inside a quarantine transaction; "kept": after the
quarantine commit; "written": after a batch's database commit; "staged", "undone" ...)."""

import os
import signal

FAULT_ENV = "EMFIX_TEST_KILL_AT"
_passes = {}


def kill_point(point):
    wanted = os.environ.get(FAULT_ENV)
    if not wanted or not wanted.startswith(point + ":"):
        return
    _passes[point] = _passes.get(point, 0) + 1
    if str(_passes[point]) == wanted.split(":", 1)[1]:
        os.kill(os.getpid(), signal.SIGKILL)
