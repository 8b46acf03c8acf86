import pytest

from emfix.backends import open_database
from emfix.errors import ConflictError, ConnectError, DamagedInputError, TransactionTooLargeError
from emfix.retry import RetryPolicy


@pytest.fixture
def db(address):
    backend = open_database(address, create=True)
    backend.execute('CREATE TABLE %s (%s INT PRIMARY KEY, %s VARCHAR(50))' % (
        backend.quote('odd "name`'), backend.quote("id"), backend.quote("desc")))
    yield backend
    backend.close()


def test_quoted_identifiers_round_trip_odd_names(db):
    t = db.quote('odd "name`')
    db.execute("INSERT INTO %s VALUES (?, ?)" % t, (1, "it's 100% fine?"))
    assert db.query("SELECT %s FROM %s WHERE %s = ?" % (db.quote("desc"), t, db.quote("id")), (1,)) == [
        ("it's 100% fine?",)]
    assert db.tables() == ['odd "name`']
    assert db.columns('odd "name`') == ["id", "desc"]
    assert db.primary_key('odd "name`') == ("id",)


def test_iter_rows_streams_a_large_result(db):
    t = db.quote('odd "name`')
    with db.transaction():
        db.executemany("INSERT INTO %s VALUES (?, ?)" % t, ((i, "v%d" % i) for i in range(20000)), batch_size=3000)
    seen = 0
    for i, (key,) in enumerate(db.iter_rows("SELECT %s FROM %s ORDER BY 1" % (db.quote("id"), t), arraysize=500)):
        assert key == i
        seen += 1
    assert seen == 20000


def test_abandoned_iterator_leaves_connection_usable(db):
    t = db.quote('odd "name`')
    db.executemany("INSERT INTO %s VALUES (?, ?)" % t, ((i, "x") for i in range(5000)))
    rows = db.iter_rows("SELECT * FROM %s" % t, arraysize=100)
    next(rows)
    rows.close()
    assert db.scalar("SELECT count(*) FROM %s" % t) == 5000


def test_transaction_rolls_back_on_error(db):
    t = db.quote('odd "name`')
    with pytest.raises(RuntimeError):
        with db.transaction():
            db.execute("INSERT INTO %s VALUES (?, ?)" % t, (1, "a"))
            raise RuntimeError("boom")
    assert db.scalar("SELECT count(*) FROM %s" % t) == 0


def test_transaction_commits_on_success(db):
    t = db.quote('odd "name`')
    with db.transaction():
        db.execute("INSERT INTO %s VALUES (?, ?)" % t, (1, "a"))
    assert db.scalar("SELECT count(*) FROM %s" % t) == 1


def test_a_refused_commit_is_rolled_back_and_write_batch_runs_the_batch_again(db, monkeypatch):
    """A Galera node refuses a COMMIT that fails certification (1213): the transaction stayed open on the
    connection, so the retry's BEGIN failed ("Transaction already in progress": a crash, exit 70)."""
    t = db.quote('odd "name`')
    db.retry_policy = RetryPolicy(deadline=5, base=0.01, cap=0.05)
    real_commit, commits = db._commit, []

    def refused_once():
        commits.append(1)
        if len(commits) == 1:
            raise ConflictError("certification failed at COMMIT", hint="h")  # the server kept nothing
        real_commit()
    monkeypatch.setattr(db, "_commit", refused_once)
    tries = []

    def batch():
        tries.append(1)
        db.execute("INSERT INTO %s VALUES (?, ?)" % t, (len(tries), "try %d" % len(tries)))
        return len(tries)
    assert db.write_batch(batch) == 2 and len(commits) == 2
    assert db.query("SELECT %s FROM %s" % (db.quote("desc"), t)) == [("try 2",)]  # the refused try left nothing
    with pytest.raises(ConflictError):  # a plain transaction whose COMMIT is refused leaves none open either
        commits.clear()
        with db.transaction():
            db.execute("INSERT INTO %s VALUES (?, ?)" % t, (9, "x"))
    with db.transaction():
        db.execute("INSERT INTO %s VALUES (?, ?)" % t, (10, "y"))
    assert db.scalar("SELECT count(*) FROM %s" % t) == 2


def test_a_commit_the_server_refuses_through_the_c_extension_is_that_error_not_a_lost_connection(
        mysql_address, monkeypatch):
    """mysql-connector's C extension lets its own MySQLInterfaceError (errno, msg, sqlstate) out of commit():
    a Galera node refusing a write set too large read as "lost the connection ... check that the server runs"
    (Python 3.8's connector 9.0 on a 2-node cluster)."""
    interface_error = type("MySQLInterfaceError", (Exception,), {"__module__": "_mysql_connector"})

    def refused(errno, msg):
        def commit():
            exc = interface_error(msg)
            exc.errno, exc.msg, exc.sqlstate = errno, msg, "HY000"
            raise exc
        return commit
    with open_database(mysql_address) as db:
        db.execute("CREATE TABLE t (id INT PRIMARY KEY)")
        monkeypatch.setattr(db._conn, "commit", refused(1180, "Maximum writeset size exceeded"))
        with pytest.raises(TransactionTooLargeError, match="refused to commit a batch: Maximum writeset size"):
            with db.transaction():
                db.execute("INSERT INTO t VALUES (1)")
        monkeypatch.setattr(db._conn, "commit", refused(1213, "Deadlock found when trying to get lock"))
        with pytest.raises(ConflictError):
            with db.transaction():
                db.execute("INSERT INTO t VALUES (2)")
        monkeypatch.setattr(db._conn, "commit", refused(2013, "Lost connection to MySQL server during query"))
        with pytest.raises(ConnectError, match="lost the connection"):
            with db.transaction():
                db.execute("INSERT INTO t VALUES (3)")
        monkeypatch.undo()
        assert db.scalar("SELECT count(*) FROM t") == 0  # each refused COMMIT was rolled back


def test_a_connection_killed_by_the_server_is_said_at_once_not_retried_until_the_lock_timeout(mysql_address):
    """The driver does not reconnect: retrying a statement (or a BEGIN) on a killed connection failed the
    same way until --lock-timeout, then said the server could not be reached."""
    import time
    with open_database(mysql_address, retry_policy=RetryPolicy(deadline=20)) as db, \
            open_database(mysql_address) as admin:
        admin.execute("KILL CONNECTION %d" % int(db.scalar("SELECT CONNECTION_ID()")))
        started = time.monotonic()
        for run in (lambda: db.scalar("SELECT 1"), lambda: db.transaction().__enter__()):
            with pytest.raises(ConnectError, match="lost the connection to MySQL") as raised:
                run()
            assert "killed" in raised.value.hint
        assert time.monotonic() - started < 5


def test_composite_foreign_keys_are_introspected(address):
    from emfix.schema import create_schema
    with open_database(address, create=True) as db:
        create_schema(db)
        fks = {(fk.child_columns, fk.parent, fk.parent_columns) for fk in db.foreign_keys("EPOCH_METRIC")}
        assert fks == {(("epoch_idx", "epoch_trial_run_id"), "EPOCH", ("idx", "trial_run_id")),
                       (("metric_id",), "METRIC", ("id",))}
        assert db.primary_key("BATCH_METRIC") == ("batch_idx", "epoch_idx", "trial_run_id", "metric_id")
        assert any(ix.columns[:1] == ("idx",) for ix in db.indexes("EPOCH")) or db.dialect == "sqlite"
        assert db.server_version()


def test_sqlite_readonly_open_refuses_writes(sqlite_address):
    open_database(sqlite_address, create=True).close()
    with open_database(sqlite_address, create=True) as db:
        db.execute("CREATE TABLE t (x)")
    with open_database(sqlite_address, readonly=True) as db:
        with pytest.raises(ConnectError):
            db.execute("INSERT INTO t VALUES (1)")


def test_sqlite_missing_file_is_not_created(tmp_path):
    from emfix.address import DatabaseAddress
    path = tmp_path / "typo.db"
    with pytest.raises(ConnectError):
        open_database(DatabaseAddress("sqlite", path=str(path)), readonly=True)
    assert not path.exists()


def test_sqlite_text_file_is_damaged_input(tmp_path):
    from emfix.address import DatabaseAddress
    path = tmp_path / "notes.db"
    path.write_text("not a database\n" * 100)
    with pytest.raises(DamagedInputError):
        open_database(DatabaseAddress("sqlite", path=str(path)), readonly=True)


def test_sqlite_keeps_non_utf8_text_as_bytes(sqlite_address):
    with open_database(sqlite_address, create=True) as db:
        db.execute("CREATE TABLE t (v TEXT)")
        db.execute("INSERT INTO t VALUES (CAST(? AS TEXT))", (b"\xff\xfeok",))
        (value,), = db.query("SELECT v FROM t")
        assert bytes(value) == b"\xff\xfeok"


def test_read_only_open_recovers_a_hot_journal_left_by_a_killed_writer(tmp_path):
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    from emfix.address import DatabaseAddress
    path = tmp_path / "experiment.db"
    con = sqlite3.connect(str(path))
    con.execute("CREATE TABLE t (x)")
    con.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(20000)])
    con.commit()
    con.close()
    writer = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys, time\n"
        "con = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "con.execute('PRAGMA cache_size = 1')\n"  # spill to the file: the journal becomes hot
        "con.execute('BEGIN IMMEDIATE')\n"
        "con.execute('DELETE FROM t')\n"
        "print('deleted', flush=True)\n"
        "time.sleep(60)\n"), str(path)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "deleted"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    time.sleep(0.1)
    assert (tmp_path / "experiment.db-journal").exists()
    with open_database(DatabaseAddress("sqlite", path=str(path)), readonly=True) as db:
        assert db.scalar("SELECT count(*) FROM t") == 20000


def test_creating_a_missing_mysql_database_leaves_the_callers_address_as_it_is(mysql_databases):
    """No hidden state: the backend connected to the server without a database by a copy of the address."""
    import dataclasses
    import uuid
    base = mysql_databases()
    address = dataclasses.replace(base, database="emfix_t_new_%s" % uuid.uuid4().hex[:8])
    before = dataclasses.asdict(address)
    try:
        with open_database(address, create=True) as db:
            assert db.scalar("SELECT DATABASE()") == address.database
        assert dataclasses.asdict(address) == before
    finally:
        with open_database(base) as admin:
            admin.execute("DROP DATABASE IF EXISTS `%s`" % address.database)


def test_a_key_bound_picks_the_rows_a_tuple_comparison_does_and_mysql_seeks_it(db):
    """key_bound spells a composite key's bound out column by column on MySQL (MariaDB reads a row-value
    comparison from the index's first entry on: each keyset page read every page before it again)."""
    import itertools
    db.execute("CREATE TABLE kb (a INT NOT NULL, b INT NOT NULL, c INT NOT NULL, PRIMARY KEY (a, b, c))")
    rows = list(itertools.product(range(4), range(3), range(3)))
    db.executemany("INSERT INTO kb VALUES (?, ?, ?)", rows)
    for op, test in ((">", tuple.__gt__), (">=", tuple.__ge__), ("<", tuple.__lt__), ("<=", tuple.__le__)):
        for bound in [(1, 1, 1), (0, 2, 2), (3, 0, 0), (2, 3, -1)]:
            where, params = db.key_bound(["a", "b", "c"], op, bound)
            got = [tuple(r) for r in db.query("SELECT a, b, c FROM kb WHERE %s ORDER BY a, b, c" % where, params)]
            assert got == [r for r in rows if test(r, bound)], (op, bound)
    if db.dialect == "mysql":
        where, params = db.key_bound(["a", "b", "c"], ">", (3, 2, 1))
        plan = db.query("EXPLAIN SELECT a, b, c FROM kb WHERE %s ORDER BY a, b, c LIMIT 2" % where, params)
        assert "range" in [str(v) for v in plan[0]], plan
