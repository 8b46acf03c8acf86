"""A MySQL statement waits for a lock as long as --lock-timeout says, not as long as the server would (a day for
a table's metadata lock, 50 s for a row's): a restore behind an application's open transaction stops with nothing
emptied instead of waiting on and on, or emptying some tables and then waiting."""

import json

import pytest
from conftest import make_demo, run_cli, url_of

from emfix.backends import open_database
from emfix.demo import Shape
from emfix.retry import RetryPolicy
from emfix.snapshot.restoremark import MARK_TABLE

SHAPE = Shape(experiments=2, trials=2, runs=2, epochs=3, batches=3)


def counts(address):
    with open_database(address) as db:
        return {t: db.scalar("SELECT count(*) FROM %s" % db.quote(t)) for t in db.tables()}


def test_every_connection_waits_for_a_lock_as_long_as_lock_timeout_says(mysql_address):
    for readonly in (False, True):
        with open_database(mysql_address, readonly=readonly, retry_policy=RetryPolicy(deadline=7.5)) as db:
            assert db.query("SELECT @@lock_wait_timeout, @@innodb_lock_wait_timeout")[0] == (8, 8)


def test_a_restore_behind_an_open_transaction_stops_at_lock_timeout_and_empties_nothing(mysql_address, tmp_path):
    make_demo(mysql_address, shape=SHAPE, faults=True)
    folder = str(tmp_path / "snaps")
    made = run_cli("snapshot", "create", url_of(mysql_address), "--snapshot-dir", folder, "--json")
    assert made.returncode == 0, made.stderr
    taken = json.loads(made.stdout)["id"]
    before = counts(mysql_address)
    with open_database(mysql_address) as application:  # reads BATCH in a transaction it keeps open
        application.execute("START TRANSACTION")
        application.scalar("SELECT count(*) FROM BATCH")
        stopped = run_cli("snapshot", "restore", url_of(mysql_address), "--snapshot-dir", folder, "--snapshot-id",
                          taken, "--yes", "--no-safety-snapshot", "--lock-timeout", "1", timeout=60)
        assert stopped.returncode == 3, stopped.stderr
        assert "--lock-timeout" in stopped.stderr and "nothing was changed" in stopped.stderr, stopped.stderr
        assert counts(mysql_address) == before  # no table emptied, no mark left
        application.execute("COMMIT")
    restored = run_cli("snapshot", "restore", url_of(mysql_address), "--snapshot-dir", folder, "--snapshot-id", taken,
                       "--yes", "--no-safety-snapshot")
    assert restored.returncode == 0, restored.stderr
    assert MARK_TABLE not in {t.lower() for t in counts(mysql_address)}


def test_a_table_emptied_while_a_read_of_one_moment_runs_is_a_clear_error_not_a_bug(mysql_address):
    """An outside tester: validate, check-hierarchy and snapshot create beside a restore ended with exit 70
    ("Table definition has changed, please retry transaction")."""
    from emfix.errors import ConflictError
    make_demo(mysql_address, shape=SHAPE, faults=True)
    with open_database(mysql_address) as reader, open_database(mysql_address) as restore:
        with reader.consistent_read():
            reader.scalar("SELECT count(*) FROM EXPERIMENT")
            restore.foreign_key_checks(False)  # as a restore empties it
            restore.execute("TRUNCATE TABLE METRIC")
            with pytest.raises(ConflictError) as stopped:
                reader.scalar("SELECT count(*) FROM METRIC")
    assert "emptied or altered" in stopped.value.message and stopped.value.exit_code == 3


def test_a_read_of_one_moment_that_meets_a_deadlock_stops_rather_than_read_outside_its_moment(mysql_address):
    """An outside tester: a snapshot reading table after table in one transaction met a restore's LOCK TABLES; the
    server ended the deadlock by rolling the snapshot's transaction back, emfix ran the statement again, and it and
    every read after it saw the half the restore left. Inside a transaction a statement is not run again alone."""
    import threading
    import time

    from emfix.errors import ConflictError
    with open_database(mysql_address) as setup:
        for table in ("t0", "t1"):
            setup.execute("CREATE TABLE %s (id INT PRIMARY KEY)" % table)
            setup.execute("INSERT INTO %s VALUES (1), (2)" % table)
    with open_database(mysql_address) as reader, open_database(mysql_address) as restore, \
            open_database(mysql_address) as watcher:
        done = []

        def lock_then_empty():
            restore.execute("LOCK TABLES t0 WRITE, t1 WRITE")  # waits for the reader's t1
            restore.execute("TRUNCATE TABLE t0")
            restore.execute("TRUNCATE TABLE t1")
            restore.execute("UNLOCK TABLES")
            done.append(True)

        with reader.consistent_read():
            assert reader.scalar("SELECT count(*) FROM t1") == 2
            locking = threading.Thread(target=lock_then_empty, daemon=True)
            locking.start()
            deadline = time.monotonic() + 30
            while not watcher.scalar("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE "
                                     "'LOCK TABLES t0 WRITE%' AND STATE LIKE '%metadata lock%'"):
                assert time.monotonic() < deadline, "LOCK TABLES never waited"
                time.sleep(0.02)
            with pytest.raises(ConflictError):
                reader.scalar("SELECT count(*) FROM t0")
        locking.join(30)
        assert done
