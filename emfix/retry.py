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


class RetriesExhausted(Exception):
    """Carries the last transient error once the policy gives up."""

    def __init__(self, last_error, attempts, elapsed):
        super().__init__(str(last_error))
        self.last_error = last_error
        self.attempts = attempts
        self.elapsed = elapsed


def call_with_retry(func, policy=None, transient=is_transient, what="operation",
                    sleep=time.sleep, clock=time.monotonic):
    """Run func() until it succeeds, a non-transient error is raised, or the policy gives up."""
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
            sleep(pause)
