"""validate's helper: a forked process on a SQLite file (SQLite's allocator lock is per process), a
thread elsewhere; whichever runs the METRIC checks, the report is the same, and the helper process
neither outlives emfix nor loses an error. (A damaged file, found by the helper's quick_check, is
test_clear_answers' exit 4.)"""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from conftest import ROOT, make_demo

from emfix import validate as validate_module
from emfix.address import DatabaseAddress
from emfix.errors import ConnectError, DamagedInputError, OperationInterrupted
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
@pytest.mark.parametrize("helper_is", ["waiting for a task", "inside a long task"])
def test_the_helper_process_leaves_when_emfix_is_killed(helper_is):
    """Even inside a task (as inside SQLite's wait for a lock a writer holds): not when the task ends."""
    script = textwrap.dedent("""
        import os, signal, sys, threading, time
        from emfix.forkworker import ForkedWorker
        def run(state, task, emit):
            emit("started")
            if task == "long":
                time.sleep(600)
            return task
        worker = ForkedWorker.start(lambda: None, run)
        assert worker.run("ready") == "ready"
        if sys.argv[1] == "inside a long task":
            started = threading.Event()
            threading.Thread(target=worker.run, args=("long", lambda event: started.set()), daemon=True).start()
            started.wait()
        print(worker.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script, helper_is], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    child = int(proc.stdout.split()[0])
    deadline = time.monotonic() + 20
    while not _gone(child):
        assert time.monotonic() < deadline, "the helper process %d outlived its parent" % child
        time.sleep(0.05)


def test_a_helper_process_killed_from_outside_is_exit_5_not_a_bug():
    worker = ForkedWorker.start(lambda: None, lambda state, task, emit: os.kill(os.getpid(), signal.SIGKILL))
    try:
        with pytest.raises(OperationInterrupted) as caught:
            worker.run("die")
    finally:
        worker.close()
    assert caught.value.exit_code == 5 and "killed by signal %d" % signal.SIGKILL in caught.value.message


def test_without_a_process_to_fork_validate_uses_a_thread(demo_sqlite, monkeypatch):
    alone = _findings(validate(demo_sqlite, parallel=False), [])
    monkeypatch.setattr(validate_module, "fork_possible", lambda: True)

    def no_process():
        raise BlockingIOError(11, "Resource temporarily unavailable")
    monkeypatch.setattr(os, "fork", no_process)
    assert _findings(validate(demo_sqlite), []) == alone


def test_a_file_replaced_between_the_two_opens_is_said_not_mixed(demo_sqlite, tmp_path, monkeypatch):
    """The helper process opens its connection after this process: a file renamed over the database
    between the two would give a report of two files."""
    monkeypatch.setattr(validate_module, "fork_possible", lambda: True)
    other = tmp_path / "other.db"
    make_demo(DatabaseAddress("sqlite", path=str(other)), faults=False)
    opened = validate_module._helper_connection

    def replaced_first(address, retry_policy):  # runs in the helper process
        os.rename(str(other), address.path)
        return opened(address, retry_policy)
    monkeypatch.setattr(validate_module, "_helper_connection", replaced_first)
    with pytest.raises(ConnectError, match="replaced while validate opened it"):
        validate(demo_sqlite)


def test_a_task_sent_to_a_helper_process_already_gone_is_exit_5():
    worker = ForkedWorker.start(lambda: None, lambda state, task, emit: task)
    os.kill(worker.pid, signal.SIGKILL)
    try:
        with pytest.raises(OperationInterrupted, match="ended before it answered"):
            for _ in range(100):  # the first sends may still fit in the pipe
                worker.run("x" * 100000)
    finally:
        worker.close()


def test_killing_a_busy_helper_process_raises_nothing_in_close():
    """validate stopping early (Ctrl-C) kills the helper while a thread waits for its answer: the thread sees it
    end and reaps it, and close() must not fail reaping it again (it was exit 70 instead of 130)."""
    worker = ForkedWorker.start(lambda: None, lambda state, task, emit: (emit("busy"), time.sleep(600)))
    busy, seen = threading.Event(), []

    def wait_for_answer():
        try:
            worker.run("long", lambda event: busy.set())
        except OperationInterrupted as exc:
            seen.append(exc)
    thread = threading.Thread(target=wait_for_answer)
    thread.start()
    busy.wait(30)
    worker.close(kill=True)
    thread.join(30)
    assert len(seen) == 1 and ("killed by signal" in seen[0].message or "already reaped" in seen[0].message)
