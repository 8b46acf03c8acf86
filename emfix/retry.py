"""Exponential backoff with full jitter, for the failures that go away by themselves.

Only transient errors are retried (SQLite busy/locked; MySQL can't-connect, lost connection,
lock wait timeout, deadlock). Bad credentials and SQL errors fail at once.
"""

import dataclasses
import logging
import random
import sqlite3
import time
from typing import Optional

from .errors import OperationInterrupted, Terminated

log = logging.getLogger(__name__)

# mysql-connector errno values worth another try.
MYSQL_TRANSIENT_ERRNOS = frozenset({
    2002,  # can't connect through socket
    2003,  # can't connect to server
    2006,  # server has gone away
    2013,  # lost connection during query
    2055,  # lost connection, system error
    1205,  # lock wait timeout
    1213,  # deadlock
})
SQLITE_TRANSIENT_MESSAGES = ("database is locked", "database table is locked", "database schema is locked")


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    attempts: Optional[int] = None  # None: the deadline alone decides when to give up
    base: float = 0.05
    cap: float = 2.0
    deadline: float = 30.0

    def describe(self):
        """What follows "is retried": `for up to 30.0s (backoff ...)`."""
        tries = "for up to %.1fs" % self.deadline if self.attempts is None else "up to %d times within %.1fs" % (
            self.attempts, self.deadline)
        return "%s (backoff %.2fs..%.1fs with full jitter)" % (tries, self.base, self.cap)

    def delay(self, attempt, rng=random):
        """Full jitter: uniform(0, min(cap, base * 2**attempt))."""
        return rng.uniform(0, min(self.cap, self.base * (2 ** attempt)))


LOCK_TURN = 0.5  # seconds SQLite itself waits for a lock at each turn of a wait in turns (with lock_wait_policy)


def lock_wait_policy(policy):
    """`policy`'s deadline with short pauses: between turns of a wait for a SQLite lock, where a pause of its own
    would let an application that commits in a tight loop take the lock every time (found by an outside tester)."""
    return dataclasses.replace(policy or RetryPolicy(), base=0.005, cap=0.02)


def is_transient(exc):
    if isinstance(exc, sqlite3.OperationalError):
        message = str(exc).lower()
        return any(text in message for text in SQLITE_TRANSIENT_MESSAGES)
    errno = getattr(exc, "errno", None)
    module = type(exc).__module__ or ""
    if module.startswith("mysql.connector") and errno in MYSQL_TRANSIENT_ERRNOS:
        return not any(text in str(exc) for text in NO_SUCH_HOST)
    return False


# A host name the resolver says does not exist (not "Temporary failure in name resolution"): no retry brings it
# (round 54: 35 attempts over 30 s for `mysql://root@nosuchhost/x`).
NO_SUCH_HOST = ("Name or service not known", "nodename nor servname provided", "No address associated with hostname",
                "Unknown MySQL server host")


class SignalFlag:
    """A flag a signal handler sets: a plain attribute, no lock (a handler that takes a lock deadlocks when a
    second signal lands inside it: found by CI), read between the turns of call_with_retry."""

    def __init__(self):
        self.on = False

    def set(self):
        self.on = True

    def clear(self):
        self.on = False

    def is_set(self):
        return self.on


# Set by the first Ctrl-C or SIGTERM of a command that stops between batches (commands.common.StopFlag): a wait
# for a lock ends there (exit 5), instead of holding the stop back until --lock-timeout (found by an outside tester).
STOP_WAITING = SignalFlag()
# Set by SIGTERM to a command without batches (cli): a wait ends in Terminated (exit 143). The handler raises
# Terminated too, but Python drops an exception raised inside an at-fork or __del__ callback, which a signal may
# land in (found by CI: validate then waited for a lock until --lock-timeout).
TERMINATE = SignalFlag()


def _stop_asked(what, exc):
    if TERMINATE.is_set():
        return Terminated()
    if STOP_WAITING.is_set():
        return OperationInterrupted("stopped while waiting to %s (%s)" % (what, exc),
                                    hint="run the command again (or with --resume) to finish")
    return None


class RetriesExhausted(Exception):
    """Carries the last transient error once the policy gives up."""

    def __init__(self, last_error, attempts, elapsed):
        super().__init__(str(last_error))
        self.last_error = last_error
        self.attempts = attempts
        self.elapsed = elapsed


def call_with_retry(func, policy=None, transient=is_transient, what="operation",
                    sleep=time.sleep, clock=time.monotonic):
    """Run func() until it succeeds, a non-transient error is raised, or the policy gives up (or a stop was
    asked for: STOP_WAITING, OperationInterrupted)."""
    policy = policy or RetryPolicy()
    start = clock()
    attempt = 0
    while True:
        try:
            return func()
        except Exception as exc:
            if not transient(exc):
                raise
            attempt += 1
            elapsed = clock() - start
            remaining = policy.deadline - elapsed
            if (policy.attempts is not None and attempt >= policy.attempts) or remaining <= 0:
                raise RetriesExhausted(exc, attempt, elapsed) from exc
            pause = min(policy.delay(attempt), remaining)
            log.info("%s failed (%s); retry %d in %.2fs (%.1fs left)", what, exc, attempt, pause, remaining)
            for _turn in (0, 1):  # before the pause and after it (a signal cuts a sleep short only by raising)
                stop = _stop_asked(what, exc)
                if stop is not None:
                    raise stop from None
                if not _turn:
                    sleep(pause)
