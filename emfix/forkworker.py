"""A helper process for CPU-bound SQLite work beside the main thread.

SQLite counts every memory allocation under one lock for the whole process (its memory statistics,
which Python's build leaves on), so two threads that allocate much run far slower side by side than
alone: two halves of validate's JSON test (json_valid allocates for every value) took 1.2 s each
alone, 3.9 s each as two threads, and 1.2 s each as two processes (#28). A forked child has a lock
of its own.

The child is forked before the parent opens a connection (a SQLite connection must not cross
fork()), and only while the parent runs no other thread (one holding a lock at that moment would
leave it held in the child forever). It opens its own connection, runs the tasks the parent sends
one at a time, and sends back what each gave, and what it emits on the way, pickled over a pipe. It
leaves when the pipe closes (the parent is done), is killed when the parent dies (PR_SET_PDEATHSIG:
even while it waits for a lock), and killed by a parent that stops early.
"""

import gc
import os
import pickle
import signal
import sys
import threading
import time
import traceback

from .errors import OperationInterrupted

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def fork_possible():
    """Linux, with fork, and no other thread running in this process."""
    return sys.platform.startswith("linux") and hasattr(os, "fork") and threading.active_count() == 1


class RemoteTraceback(Exception):
    """Where an error raised in the helper process came from (the `__cause__` of the error re-raised here)."""

    def __str__(self):
        return "in the helper process:\n" + self.args[0]


class ForkedWorker:
    """The parent's end: `run(task, on_event)` returns what the child's `run_task` gave for it."""

    def __init__(self, pid, to_child, from_child):
        self.pid, self._to, self._from = pid, to_child, from_child
        self.last_cpu = 0.0  # the CPU seconds the child spent on the last task
        self.reaped = False

    @classmethod
    def start(cls, open_state, run_task):
        """Fork a child that calls open_state() once, then run_task(state, task, emit) for each task."""
        down_read, down_write = os.pipe()
        up_read, up_write = os.pipe()
        parent = os.getpid()
        # Ctrl-C and SIGTERM wait while the process forks: a handler that raises inside fork's own hooks (logging
        # releases its lock there) is "Exception ignored" on stderr, and the signal is lost (the suite, 1 in ~10
        # runs of its 30-SIGTERM test). Held back, each lands after the fork, where its exception is handled.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            pid = os.fork()
        except OSError:  # no process to be had (a limit): the caller does without
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
            for fd in (down_read, down_write, up_read, up_write):
                os.close(fd)
            raise
        if pid == 0:  # the child: it never returns into the parent's code
            status = 1
            try:
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
                signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler: a SIGTERM ends it
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
                gc.freeze()  # the parent's objects are not collected (nor closed) here
                _die_with(parent)
                os.close(down_write)
                os.close(up_read)
                with os.fdopen(down_read, "rb") as tasks, os.fdopen(up_write, "wb") as replies:
                    _serve(tasks, replies, open_state, run_task)
                status = 0
            finally:
                os._exit(status)
        os.close(down_read)
        os.close(up_write)
        worker = cls(pid, os.fdopen(down_write, "wb"), os.fdopen(up_read, "rb"))
        signal.pthread_sigmask(signal.SIG_SETMASK, held)  # (a signal held back lands here; the child dies with us)
        return worker

    def run(self, task, on_event=None):
        try:
            _send(self._to, task)
        except BrokenPipeError:
            raise self._gone() from None
        while True:
            try:
                reply = pickle.load(self._from)
            except (EOFError, OSError, ValueError, pickle.UnpicklingError):  # ended, or closed by close(kill=True)
                raise self._gone() from None
            if reply[0] == "event":
                if on_event is not None:
                    on_event(reply[1])
            elif reply[0] == "done":
                self.last_cpu = reply[2]
                return reply[1]
            else:
                error, where = reply[1], reply[2]
                raise error from RemoteTraceback(where)

    def _gone(self):
        return OperationInterrupted("the helper process %d ended before it answered (%s)" % (
            self.pid, self._ending()), hint="run the command again")

    def _ending(self):
        """How the child ended (reaping it): killed from outside, say, by the OOM killer or an admin."""
        try:
            status = os.waitpid(self.pid, 0)[1]
        except ChildProcessError:
            return "already reaped"
        self.reaped = True
        if os.WIFSIGNALED(status):
            return "killed by signal %d" % os.WTERMSIG(status)
        return "exit status %d" % os.WEXITSTATUS(status)

    def close(self, kill=False):
        """Let the child leave (or kill it) and reap it."""
        if kill and not self.reaped:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for stream in (self._to, self._from):
            try:
                stream.close()
            except OSError:  # the child is gone: nothing to flush into
                pass
        if not self.reaped:
            self.reaped = True
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:  # reaped meanwhile by the thread that saw it end
                pass


def _die_with(parent):
    """The child is killed when the parent dies, even while it waits inside SQLite for a lock (Linux's
    PR_SET_PDEATHSIG); if the parent is already gone, it leaves now."""
    try:
        import ctypes  # noqa: PLC0415 -- only the child needs it
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # no prctl here: the closed pipe still ends the child, after its task
        pass
    if os.getppid() != parent:
        os._exit(1)


def _send(stream, message):
    pickle.dump(message, stream, pickle.HIGHEST_PROTOCOL)
    stream.flush()


def _serve(tasks, replies, open_state, run_task):
    state = None
    while True:
        try:
            task = pickle.load(tasks)
        except EOFError:  # the parent is done, or gone
            return
        cpu = time.thread_time()
        try:
            if state is None:
                state = open_state()
            result = run_task(state, task, lambda event: _send(replies, ("event", event)))
        except BaseException as exc:  # noqa: BLE001 -- every error goes back to the parent, which raises it
            _send(replies, ("failed", _portable(exc), traceback.format_exc()))
            return
        _send(replies, ("done", result, time.thread_time() - cpu))


def _portable(exc):
    """The error itself when it survives pickling, else a RuntimeError that says what it was."""
    try:
        return pickle.loads(pickle.dumps(exc, pickle.HIGHEST_PROTOCOL))
    except Exception:  # noqa: BLE001 -- any failure to pickle means: send its text instead
        return RuntimeError("%s: %s" % (type(exc).__name__, exc))
