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


def test_an_alter_table_queued_behind_a_snapshot_waits_for_it_and_stalls_none_of_its_readers(mysql_address, tmp_path,
                                                                                          monkeypatch):
    """An outside tester: two migrates into one database, each with its safety snapshot; one's ALTER TABLE ...
    AUTO_INCREMENT (reserving its ids) waited for a table the other's snapshot had read on one connection, and the
    snapshot's next connection asking for that table queued behind the ALTER: both stalled to --lock-timeout. Every
    reader holds every table from the snapshot's first moment, so the ALTER waits for the snapshot, which finishes."""
    import threading
    import time

    from emfix import snapshot
    from emfix.snapshot import sqltext
    make_demo(mysql_address, shape=SHAPE, faults=True)
    monkeypatch.setattr(sqltext, "CHUNK_ROWS", 5)  # every table in many key ranges: each reader reads METRIC
    altered = []
    real_mark = snapshot.create.marked_in_moment

    def application_alters_metric():
        with open_database(mysql_address) as application:
            application.execute("SET SESSION lock_wait_timeout = 60")
            application.execute("ALTER TABLE METRIC AUTO_INCREMENT = 1000000")
            altered.append(True)

    def alter_queued_in_the_moment(lead):
        lead.scalar("SELECT count(*) FROM METRIC")  # this reader holds METRIC now, whatever the others do
        threading.Thread(target=application_alters_metric, daemon=True).start()
        deadline = time.monotonic() + 30
        with open_database(mysql_address) as watcher:
            while not watcher.scalar("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE "
                                     "'ALTER TABLE METRIC%' AND STATE LIKE '%metadata lock%'"):
                assert time.monotonic() < deadline, "the ALTER never waited for the snapshot"
                time.sleep(0.02)
        return real_mark(lead)

    monkeypatch.setattr(snapshot.create, "marked_in_moment", alter_queued_in_the_moment)
    made = snapshot.create_snapshot(mysql_address, str(tmp_path), workers=3, retry_policy=RetryPolicy(deadline=5))
    assert made.tables["METRIC"] == counts(mysql_address)["METRIC"]
    deadline = time.monotonic() + 30
    while not altered:  # the ALTER went on once the snapshot ended
        assert time.monotonic() < deadline, "the ALTER never finished"
        time.sleep(0.02)


def test_a_statement_another_session_interrupts_is_a_clear_error_not_a_bug(mysql_address):
    """An outside tester: KILL QUERY on one of emfix's statements (error 1317) ended every command with exit 70."""
    import threading
    import time

    from emfix.errors import ConnectError
    with open_database(mysql_address) as emfix_side, open_database(mysql_address) as administrator:
        session = emfix_side.scalar("SELECT CONNECTION_ID()")
        stopped = []

        def long_statement():
            try:
                emfix_side.scalar("SELECT SLEEP(60) FROM (SELECT 1 UNION ALL SELECT 2) two")
            except ConnectError as exc:
                stopped.append(exc)

        running = threading.Thread(target=long_statement, daemon=True)
        running.start()
        deadline = time.monotonic() + 30
        while not administrator.scalar("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ? AND INFO "
                                       "LIKE 'SELECT SLEEP%'", (session,)):
            assert time.monotonic() < deadline, "the statement never ran"
            time.sleep(0.02)
        administrator.execute("KILL QUERY %d" % int(session))
        running.join(30)
        assert stopped and stopped[0].kind == "statement_interrupted" and stopped[0].exit_code == 3, stopped
        assert "KILL QUERY" in stopped[0].hint
        assert emfix_side.scalar("SELECT 1") == 1  # the connection itself is fine


def test_a_table_dropped_between_the_listing_and_the_snapshots_moment_is_a_clear_error(mysql_address, tmp_path,
                                                                                   monkeypatch):
    """An outside tester: an application creating and dropping tables beside `snapshot create` ended it with exit 70
    (SHOW CREATE TABLE of a table listed a moment before). Once the moment has begun, its readers hold every table
and a DROP waits for the snapshot; before that, the table is missed when the moment begins: exit 3, nothing
written."""
    from emfix import snapshot
    from emfix.errors import NotFoundError
    make_demo(mysql_address, shape=SHAPE, faults=True)
    with open_database(mysql_address) as application:
        application.execute("CREATE TABLE scratch (id INT PRIMARY KEY)")
    listed = snapshot.create.snapshot_graph

    def dropped_once_listed(graph, db):
        with open_database(mysql_address) as application:
            application.execute("DROP TABLE scratch")
        return listed(graph, db)

    monkeypatch.setattr(snapshot.create, "snapshot_graph", dropped_once_listed)
    with pytest.raises(NotFoundError) as stopped:
        snapshot.create_snapshot(mysql_address, str(tmp_path))
    assert stopped.value.exit_code == 3 and "a table is not there" in stopped.value.message
    assert not [f for f in tmp_path.iterdir() if f.name.endswith(".sql")]  # nothing listed as a snapshot


def test_a_column_added_between_the_listing_and_the_snapshots_moment_is_in_the_snapshot(mysql_address, tmp_path,
                                                                                      monkeypatch):
    """An outside tester: ALTER TABLE ... ADD COLUMN beside `snapshot create` crashed it (exit 70, KeyError): its
    rows were read by the columns listed before, their kinds by a read at another moment. Both come from the moment
    itself now."""
    from emfix import snapshot
    make_demo(mysql_address, shape=SHAPE, faults=True)
    listed = snapshot.create.snapshot_graph

    def column_added_once_listed(graph, db):
        with open_database(mysql_address) as application:
            application.execute("ALTER TABLE TRIAL ADD COLUMN added INT NOT NULL DEFAULT 7")
            application.execute("UPDATE TRIAL SET added = 9")  # what the snapshot's moment holds
        return listed(graph, db)

    monkeypatch.setattr(snapshot.create, "snapshot_graph", column_added_once_listed)
    made = snapshot.create_snapshot(mysql_address, str(tmp_path))
    monkeypatch.undo()
    with open_database(mysql_address) as application:
        application.execute("UPDATE TRIAL SET added = 8")
    restored = run_cli("snapshot", "restore", url_of(mysql_address), "--snapshot-dir", str(tmp_path), "--snapshot-id",
                       made.id, "--yes", "--no-safety-snapshot")
    assert restored.returncode == 0, restored.stderr
    with open_database(mysql_address) as db:
        assert {r[0] for r in db.query("SELECT DISTINCT added FROM TRIAL")} == {9}
