"""A small thread-safe connection pool that waits instead of failing at once.

The cookbook's pool raised "Connection pool exhausted" the moment all connections were busy.
This one waits up to `timeout` for a free connection, checks each connection before handing it
out, replaces broken ones, and closes every connection it opened on `close()`. `run_parallel` runs
jobs at once (the readers over a pool's connections, or a file hashed while SQLite checks it).
"""

import contextlib
import logging
import queue
import threading
import time

from .errors import PoolTimeoutError, TooManyConnectionsError

log = logging.getLogger(__name__)


class ConnectionPool:
    def __init__(self, factory, size=4, timeout=30.0, check=None):
        """factory() opens a connection; check(conn) -> bool tells whether it still works."""
        if size < 1:
            raise ValueError("pool size must be at least 1")
        self._factory = factory
        self._check = check or (lambda conn: conn.ping())
        self.size = size
        self.timeout = timeout
        self._idle = []
        self._in_use = set()
        self._opened = 0
        self._closed = False
        self._cond = threading.Condition()

    def acquire(self, timeout=None):
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._closed:
                    raise PoolTimeoutError("the connection pool is closed")
                if self._idle:
                    conn = self._idle.pop()
                    break
                if self._opened < self.size:
                    self._opened += 1  # reserve the slot, open outside the lock
                    conn = None
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PoolTimeoutError(
                        "no database connection became free within %.1fs (pool size %d, all %d in use)"
                        % (timeout, self.size, len(self._in_use)),
                        hint="raise the pool size or the timeout, or finish other work first")
                self._cond.wait(remaining)
        conn = self._ready(conn)
        with self._cond:
            self._in_use.add(id(conn))
        return conn

    def _ready(self, conn):
        """An open, working connection: check an idle one, replace it when broken."""
        if conn is not None:
            try:
                healthy = self._check(conn)
            except Exception:
                healthy = False
            if healthy:
                return conn
            log.info("replacing a broken pooled connection")
            self._discard(conn)
        try:
            return self._factory()
        except BaseException:
            with self._cond:
                self._opened -= 1
                self._cond.notify()
            raise

    def _discard(self, conn):
        try:
            conn.close()
        except Exception:
            pass

    def prepare(self, count):
        """Open up to `count` connections in the background, idle and ready when they are asked for
        (connecting is a few round trips; the caller meanwhile does its own work). A failure here is
        left for the acquire that opens the connection again to report."""
        def open_one():
            try:
                self.release(self.acquire(timeout=0))
            except Exception as exc:
                log.debug("a connection opened ahead failed: %s", exc)  # the acquire that needs it says it
        for _ in range(count):
            threading.Thread(target=open_one, name="emfix-pool-prepare", daemon=True).start()

    def release(self, conn):
        with self._cond:
            if id(conn) not in self._in_use:
                raise ValueError("connection does not belong to this pool or was already released")
            self._in_use.discard(id(conn))
            if self._closed:
                self._opened -= 1
                self._discard(conn)
            else:
                self._idle.append(conn)
            self._cond.notify()

    def acquire_up_to(self, count, first=()):
        """`first` (connections already taken) and more, up to `count` in all, as many as the server allows this
        user (max_connections, max_user_connections): work that several connections only speed up takes fewer.
        The first connection is required: without one, the refusal is raised."""
        taken = list(first)
        while len(taken) < count:
            try:
                taken.append(self.acquire())
            except TooManyConnectionsError as exc:
                if not taken:
                    raise
                log.info("working over %d connection(s): %s", len(taken), exc)
                break
        return taken

    @contextlib.contextmanager
    def connection(self, timeout=None):
        conn = self.acquire(timeout)
        try:
            yield conn
        finally:
            self.release(conn)

    def close(self):
        """Close idle connections now and busy ones as they come back."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._opened -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            self._discard(conn)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def put_unless_stopped(bounded, item, stop, wait=0.2):
    """Put `item` on a bounded queue shared by the threads working over a pool's connections, giving up
    once `stop` is set (the consumer is gone: waiting for room would wait for ever)."""
    while not stop.is_set():
        try:
            bounded.put(item, timeout=wait)
            return
        except queue.Full:
            continue


def run_parallel(jobs, failed=None):
    """Run the callables at once, the first on this thread and each other on its own (hashing, SQLite and
    a driver waiting on its socket release the GIL); return their results in order, or raise the first
    failure once every job has ended. `failed` is set as soon as one fails (or this thread is interrupted
    while it waits), so jobs that watch it stop early."""
    failed = threading.Event() if failed is None else failed
    results, errors = [None] * len(jobs), []

    def run(i):
        try:
            results[i] = jobs[i]()
        except BaseException as exc:
            errors.append(exc)
            failed.set()

    threads = [threading.Thread(target=run, args=(i,), name="emfix-parallel") for i in range(1, len(jobs))]
    for thread in threads:
        thread.start()
    run(0)
    try:
        for thread in threads:
            thread.join()
    except BaseException:
        failed.set()
        raise
    if errors:
        raise errors[0]
    return results
