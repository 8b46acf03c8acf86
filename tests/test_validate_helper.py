"""validate's helper: a forked process on a SQLite file (SQLite's allocator lock is per process), a
thread elsewhere; whichever runs the METRIC checks, the report is the same, and the helper process
neither outlives emfix nor loses an error. (A damaged file, found by the helper's quick_check, is
test_clear_answers' exit 4.)"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import ROOT

from emfix import validate as validate_module
from emfix.errors import DamagedInputError
from emfix.forkworker import ForkedWorker, RemoteTraceback
from emfix.validate import validate


def _findings(report, issues):
    found = report.to_dict()
    for key in ("timings", "generated_at", "timestamp", "database"):
        found.pop(key)
    for relation in found["relations"]:
        relation.pop("seconds")
    return found, sorted(repr(i.to_dict()) for i in issues)


@pytest.mark.parametrize("helper", ["process", "thread", "none"])
def test_every_helper_finds_what_one_connection_finds(demo_sqlite, monkeypatch, helper):
    issues = []
    alone = _findings(validate(demo_sqlite, parallel=False, every_json_issue=lambda i, part: issues.append(i)),
                      issues)
    monkeypatch.setattr(validate_module, "fork_possible", lambda: helper == "process")
    issues = []
    report = validate(demo_sqlite, parallel=helper != "none", every_json_issue=lambda i, part: issues.append(i))
    assert _findings(report, issues) == alone
    assert report.json.issue_count > 0 and report.unreferenced and alone[1]


def test_an_error_in_the_helper_process_comes_back_whole():
    def fail(state, task, emit):
        emit("first")
        raise DamagedInputError("the file is damaged: %s" % task, hint="restore a snapshot", kind="damaged")

    events = []
    worker = ForkedWorker.start(lambda: None, fail)
    try:
        with pytest.raises(DamagedInputError) as caught:
            worker.run("page 7", events.append)
    finally:
        worker.close()
    assert events == ["first"]
    assert (caught.value.message, caught.value.hint, caught.value.kind) == (
        "the file is damaged: page 7", "restore a snapshot", "damaged")
    assert isinstance(caught.value.__cause__, RemoteTraceback) and "in fail" in str(caught.value.__cause__)


def test_the_helper_process_answers_task_after_task_and_leaves_when_closed():
    worker = ForkedWorker.start(lambda: {"opened": os.getpid()}, lambda state, task, emit: (state["opened"], task * 2))
    try:
        answers = [worker.run(n) for n in range(3)]
    finally:
        worker.close()
    assert [a[1] for a in answers] == [0, 2, 4]
    assert {a[0] for a in answers} == {worker.pid} != {os.getpid()}
    with pytest.raises(ChildProcessError):  # reaped by close()
        os.waitpid(worker.pid, os.WNOHANG)


def _gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie has left
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the helper process is Linux's")
def test_the_helper_process_leaves_when_emfix_is_killed():
    script = textwrap.dedent("""
        import os, signal, sys
        from emfix.forkworker import ForkedWorker
        worker = ForkedWorker.start(lambda: None, lambda state, task, emit: task)
        assert worker.run("ready") == "ready"
        print(worker.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    child = int(proc.stdout.split()[0])
    deadline = time.monotonic() + 30
    while not _gone(child):
        assert time.monotonic() < deadline, "the helper process %d outlived its parent" % child
        time.sleep(0.05)
