import random
import socket
import threading
import time

import pytest
from conftest import hold_write_lock, make_demo, run_cli, url_of

from emfix.backends import open_database
from emfix.errors import ConnectError, PoolTimeoutError, TooManyConnectionsError
from emfix.pool import ConnectionPool, run_parallel
from emfix.retry import RetriesExhausted, RetryPolicy, call_with_retry, is_transient


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_full_jitter_delay_stays_within_the_cap():
    policy = RetryPolicy(base=0.1, cap=1.0)
    rng = random.Random(1)
    for attempt in range(1, 12):
        assert 0 <= policy.delay(attempt, rng) <= min(1.0, 0.1 * 2 ** attempt)


def test_call_with_retry_gives_up_at_the_deadline():
    import sqlite3
    clock = [0.0]

    def sleep(s):
        clock[0] += s

    def locked():
        raise sqlite3.OperationalError("database is locked")
    with pytest.raises(RetriesExhausted) as info:
        call_with_retry(locked, RetryPolicy(attempts=1000, deadline=5), sleep=sleep, clock=lambda: clock[0])
    assert clock[0] <= 5.0 and info.value.attempts > 1


def test_non_transient_errors_are_not_retried():
    calls = []

    def bad_sql():
        calls.append(1)
        raise ValueError("syntax")
    with pytest.raises(ValueError):
        call_with_retry(bad_sql, RetryPolicy(deadline=10))
    assert calls == [1]


def test_retry_succeeds_after_another_process_releases_the_lock(demo_sqlite):
    holder = hold_write_lock(demo_sqlite.path, 1.5)
    try:
        start = time.monotonic()
        with open_database(demo_sqlite, readonly=True, retry_policy=RetryPolicy(deadline=20)) as db:
            assert db.scalar('SELECT count(*) FROM "EXPERIMENT"') == 3
        assert time.monotonic() - start >= 0.5  # it really waited for the other process
    finally:
        holder.wait(timeout=30)


def test_locked_database_gives_up_after_deadline_with_exit_3(demo_sqlite):
    holder = hold_write_lock(demo_sqlite.path, 30)
    try:
        start = time.monotonic()
        result = run_cli("schema", demo_sqlite.path, "--lock-timeout", "1")
        elapsed = time.monotonic() - start
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 3
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and "locked" in lines[0] and len(lines) <= 2
    assert "Traceback" not in result.stderr
    assert elapsed < 15


def test_unreachable_mysql_port_retries_until_deadline_then_exit_3():
    pytest.importorskip("mysql.connector")
    start = time.monotonic()
    result = run_cli("schema", "mysql://root@127.0.0.1:%d/test" % free_port(), "--lock-timeout", "1.5", "-v")
    assert result.returncode == 3
    assert "cannot reach MySQL server" in result.stderr and "Traceback" not in result.stderr
    assert "retry" in result.stderr  # -v shows each retry
    assert 1.0 <= time.monotonic() - start < 20


@pytest.mark.mysql
def test_wrong_password_is_not_retried(mysql_address):
    from emfix.address import DatabaseAddress
    a = mysql_address
    wrong = DatabaseAddress("mysql", host=a.host, port=a.port, user=a.user, password="definitely-wrong",
                            database=a.database)
    start = time.monotonic()
    with pytest.raises(ConnectError) as info:
        open_database(wrong, retry_policy=RetryPolicy(deadline=30))
    assert time.monotonic() - start < 5
    assert "access denied" in info.value.message
    assert "definitely-wrong" not in info.value.message
    assert not is_transient(info.value.__context__ or info.value)


class _Tracked:
    """Wraps a backend to record checkouts and closes."""

    def __init__(self, backend, registry):
        self.backend = backend
        self.closed = False
        registry.append(self)

    def ping(self):
        return self.backend.ping()

    def close(self):
        self.closed = True
        self.backend.close()


def test_pool_under_8_threads_never_hands_out_a_connection_twice(address):
    make_demo(address)
    created = []
    pool = ConnectionPool(lambda: _Tracked(open_database(address), created), size=4, timeout=30)
    out, guard, errors = set(), threading.Lock(), []

    def worker():
        for _ in range(200):
            with pool.connection() as conn:
                with guard:
                    if id(conn) in out:
                        errors.append("handed out twice")
                    out.add(id(conn))
                try:
                    conn.backend.scalar("SELECT count(*) FROM %s" % conn.backend.quote("EXPERIMENT"))
                except Exception as exc:  # surfaces in the assertion below, not in a thread
                    errors.append(repr(exc))
                with guard:
                    out.discard(id(conn))
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pool.close()
    assert errors == []
    assert 1 <= len(created) <= 4
    assert all(c.closed for c in created)  # every connection it opened, none left open
    with pytest.raises(PoolTimeoutError, match="closed"):
        pool.acquire(timeout=0)  # and a closed pool opens no more


def test_pool_waits_for_a_free_connection_instead_of_failing(demo_sqlite):
    pool = ConnectionPool(lambda: open_database(demo_sqlite), size=1, timeout=10)
    first = pool.acquire()
    threading.Timer(0.3, pool.release, args=(first,)).start()
    start = time.monotonic()
    second = pool.acquire()
    assert second is first and time.monotonic() - start >= 0.2
    pool.release(second)
    pool.close()


def test_pool_timeout_names_the_sizes(demo_sqlite):
    pool = ConnectionPool(lambda: open_database(demo_sqlite), size=1, timeout=10)
    held = pool.acquire()
    with pytest.raises(PoolTimeoutError) as info:
        pool.acquire(timeout=0.2)
    assert "pool size 1" in info.value.message
    pool.release(held)
    pool.close()


def test_pool_prepares_connections_in_the_background_and_hands_them_out_later():
    opened, gate = [], threading.Event()

    class Connection:
        def ping(self):
            return True

        def close(self):
            pass

    def factory():
        gate.wait(5)  # connecting takes a while; the caller is not kept waiting for it
        opened.append(Connection())
        return opened[-1]

    pool = ConnectionPool(factory, size=2, timeout=5)
    pool.prepare(2)
    assert not opened
    gate.set()
    first, second = pool.acquire(), pool.acquire()  # the two prepared ones: no third connection made
    assert len(opened) == 2 and {id(first), id(second)} == {id(c) for c in opened}
    pool.release(first)
    pool.release(second)
    pool.close()


def test_work_that_more_connections_only_speed_up_takes_as_many_as_the_server_allows():
    allowed, opened = [3], []

    class Connection:
        def ping(self):
            return True

        def close(self):
            allowed[0] += 1

    def factory():  # a server that lets this user have `allowed` connections at once
        if not allowed[0]:
            raise TooManyConnectionsError("MySQL allows user 'u' no more connections now")
        allowed[0] -= 1
        opened.append(Connection())
        return opened[-1]

    pool = ConnectionPool(factory, size=6, timeout=5)
    pool.prepare(5)  # opened ahead: the refusals are left for the acquires
    lead = pool.acquire()
    taken = pool.acquire_up_to(6, first=[lead])
    assert taken[0] is lead and len(taken) == 3 and len({id(c) for c in taken}) == 3
    for conn in taken:
        pool.release(conn)
    pool.close()
    with ConnectionPool(factory, size=2, timeout=5) as none_left:
        allowed[0] = 0
        with pytest.raises(TooManyConnectionsError):  # not even one: that is the caller's error to report
            none_left.acquire_up_to(2)


def test_run_parallel_gives_results_in_order_and_a_failure_once_every_job_ended():
    assert run_parallel([lambda: 1, lambda: 2, lambda: 3]) == [1, 2, 3]
    failed, ended = threading.Event(), []

    def stops_when_another_fails():
        ended.append(failed.wait(30))  # True: told by the failure, not by the time running out

    def boom():
        raise ValueError("first job failed")

    with pytest.raises(ValueError, match="first job failed"):
        run_parallel([boom, stops_when_another_fails], failed)
    assert ended == [True]


def test_pool_replaces_a_broken_connection(address):
    make_demo(address)
    pool = ConnectionPool(lambda: open_database(address), size=1, timeout=5)
    conn = pool.acquire()
    conn.close()  # broken behind the pool's back
    pool.release(conn)
    fresh = pool.acquire()
    assert fresh is not conn and fresh.scalar("SELECT count(*) FROM %s" % fresh.quote("EXPERIMENT")) == 3
    pool.release(fresh)
    pool.close()


@pytest.mark.mysql
def test_cli_connects_to_mariadb_with_password_from_environment(mysql_address):
    make_demo(mysql_address)
    result = run_cli("schema", url_of(mysql_address), "--json",
                     env={"EMFIX_MYSQL_PASSWORD": mysql_address.password or ""})
    assert result.returncode == 0, result.stderr
    assert '"generation": 2' in result.stdout


def test_a_stop_asked_for_ends_a_wait_for_a_sqlite_lock_at_once(sqlite_address):
    """Found by an outside tester: a batch command's first Ctrl-C (StopFlag sets STOP_WAITING) was held back until
    --lock-timeout while SQLite itself waited for the lock. Opening a file, SQLite now waits in turns and emfix
    between them, where the stop ends the wait (exit 5)."""
    from emfix.errors import OperationInterrupted
    from emfix.retry import STOP_WAITING
    make_demo(sqlite_address)
    holder = hold_write_lock(sqlite_address.path, 120)
    asked = threading.Timer(0.3, STOP_WAITING.set)  # whenever it lands, before the wait or in it, the wait ends
    try:
        asked.start()
        started = time.monotonic()
        with pytest.raises(OperationInterrupted):
            open_database(sqlite_address, retry_policy=RetryPolicy(deadline=60))
        assert time.monotonic() - started < 30  # not at --lock-timeout (60 s here)
    finally:
        asked.cancel()
        STOP_WAITING.clear()
        holder.kill()
        holder.wait()
