"""Exponential backoff with full jitter, for the failures that go away by themselves.

Only transient errors are retried (SQLite busy/locked; MySQL can't-connect, lost connection,
lock wait timeout, deadlock). Bad credentials and SQL errors fail at once.
"""

import dataclasses
import logging
import random
import sqlite3
import threading
import time
from typing import Optional

from .errors import OperationInterrupted

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


def is_transient(exc):
    if isinstance(exc, sqlite3.OperationalError):
        message = str(exc).lower()
        return any(text in message for text in SQLITE_TRANSIENT_MESSAGES)
    errno = getattr(exc, "errno", None)
    module = type(exc).__module__ or ""
    if module.startswith("mysql.connector") and errno in MYSQL_TRANSIENT_ERRNOS:
        return True
    return False


# Set by the first Ctrl-C or SIGTERM of a command that stops between batches (commands.common.StopFlag): a wait
# for a lock ends there (exit 5), instead of holding the stop back until --lock-timeout (found by an outside tester).
STOP_WAITING = threading.Event()


class RetriesExhausted(Exception):
    """Carries the last transient error once the policy gives up."""

    def __init__(self, last_error, attempts, elapsed):
        super().__init__(str(last_error))
        self.last_error = last_error
        self.attempts = attempts
        self.elapsed = elapsed


def call_with_retry(func, policy=None, transient=is_transient, what="operation",
                    sleep=STOP_WAITING.wait, clock=time.monotonic):
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
            if STOP_WAITING.is_set() or sleep(pause) is True:  # (Event.wait says True once the stop is asked)
                raise OperationInterrupted("stopped while waiting to %s (%s)" % (what, exc),
                                           hint="run the command again (or with --resume) to finish") from None
