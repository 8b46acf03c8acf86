"""Reading a MySQL database in one moment takes no row lock: inside a consistent read, the scratch tables of a
walk (migrate's SRC, export, check-hierarchy) and of validate's foreign-key sweep are filled from plain SELECTs,
never by CREATE/INSERT ... SELECT, which InnoDB runs with shared locks held to the end of the transaction (an
outside tester saw 87,730 rows locked by a migrate, and the application's inserts waiting for all of it)."""

import pytest
from conftest import make_demo

from emfix import fksweep
from emfix.backends import open_database
from emfix.demo import Shape
from emfix.hierarchy import reach_subtree
from emfix.schema import discover_graph

pytestmark = pytest.mark.mysql

LOCKED = "SELECT trx_rows_locked FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = CONNECTION_ID()"


def application_inserts_beside(address):
    """An application's insert into BATCH (the table a walk reads most of), told to give up after a second."""
    import mysql.connector
    app = mysql.connector.connect(host=address.host, port=address.port, user=address.user,
                                  database=address.database, autocommit=True)
    try:
        cursor = app.cursor()
        cursor.execute("SET SESSION innodb_lock_wait_timeout = 1")
        cursor.execute("SELECT idx, trial_run_id FROM EPOCH ORDER BY idx DESC, trial_run_id LIMIT 1")
        epoch, run = cursor.fetchall()[0]
        cursor.execute("INSERT INTO BATCH (idx, epoch_idx, trial_run_id, time) VALUES (99999, %s, %s, NOW())",
                       (epoch, run))
    finally:
        app.close()


def test_a_walk_in_one_moment_locks_no_row_and_the_application_inserts_beside_it(mysql_address):
    make_demo(mysql_address, faults=False)
    with open_database(mysql_address) as db:
        graph = discover_graph(db)
        with db.consistent_read():
            tree = reach_subtree(db, graph, 1)
            counts = {t: tree.count(db, graph, t) for t in tree.tables(graph)}
            assert int(db.scalar(LOCKED) or 0) == 0
            application_inserts_beside(mysql_address)  # would wait, then fail, under a shared lock
            assert {t: tree.count(db, graph, t) for t in tree.tables(graph)} == counts  # the moment holds
        assert db.scalar("SELECT count(*) FROM BATCH WHERE idx = 99999") == 1
    assert counts["BATCH"] > 0 and counts["METRIC"] > 0


def test_the_foreign_key_sweep_in_one_moment_locks_no_row(mysql_address):
    make_demo(mysql_address)  # with its damage: the sweep writes violations into its scratch table
    with open_database(mysql_address) as db:
        graph = discover_graph(db)
        with db.consistent_read():
            found = fksweep.sweep_foreign_keys(db, graph, 100)
            assert int(db.scalar(LOCKED) or 0) == 0
            application_inserts_beside(mysql_address)
    assert found


def test_a_scratch_table_larger_than_a_packet_is_filled_page_by_page(mysql_address, monkeypatch):
    """GROUP_CONCAT stops at its limit without an error: the rows then come in ordered pages, all of them."""
    make_demo(mysql_address, shape=Shape(experiments=2, trials=2, runs=3, epochs=10, batches=5), faults=False)
    with open_database(mysql_address) as db:
        graph = discover_graph(db)
        whole = reach_subtree(db, graph, 1)
        expected = {t: whole.count(db, graph, t) for t in whole.tables(graph)}
    pages = []
    with open_database(mysql_address) as db:
        db._concat = 300  # a page of a dozen rows
        db.execute("SET SESSION group_concat_max_len = 300")
        query_raw = db.query_raw
        db.query_raw = lambda sql, params=(): pages.append(" OFFSET " in sql) or query_raw(sql, params)
        with db.consistent_read():
            paged = reach_subtree(db, graph, 1)
            assert {t: paged.count(db, graph, t) for t in paged.tables(graph)} == expected
    assert sum(pages) > 10, pages


def test_validate_reads_its_moment_without_locking_a_row(mysql_address, monkeypatch):
    """An outside tester saw validate hold 336,839 shared row locks until it ended."""
    from emfix import validate as validating
    make_demo(mysql_address)
    locked, sweep = [], validating.sweep_foreign_keys

    def sweep_then_look(db, *args, **kwargs):
        found = sweep(db, *args, **kwargs)
        locked.append(int(db.scalar(LOCKED) or 0))
        return found

    monkeypatch.setattr(validating, "sweep_foreign_keys", sweep_then_look)
    report = validating.validate(mysql_address, parallel=False)
    assert locked == [0] and report.total_violations > 0


@pytest.mark.parametrize("argv", [["check-hierarchy"], ["check-hierarchy", "-e", "1"],
                                  ["validate", "--experiment", "1"], ["validate"]])
def test_read_only_commands_finish_beside_an_application_transaction_left_open(mysql_address, argv):
    """Found by an outside tester: an application's insert under experiment 1 and into METRIC, not committed yet,
    held check-hierarchy and validate (a locking read waits for it) until it ended."""
    import subprocess

    import mysql.connector
    from conftest import run_cli, url_of
    make_demo(mysql_address, faults=False)
    app = mysql.connector.connect(host=mysql_address.host, port=mysql_address.port, user=mysql_address.user,
                                  database=mysql_address.database)
    try:
        cursor = app.cursor()
        cursor.execute("INSERT INTO TRIAL (name, experiment_id, start_time, update_time) VALUES ('app', 1, NOW(), "
                       "NOW())")
        cursor.execute("INSERT INTO METRIC (type, total_val, per_label_val) VALUES ('app', 0.5, '{}')")
        try:
            result = run_cli(*argv[:1], url_of(mysql_address), *argv[1:], "-q", timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("%s waited for the application's open transaction" % " ".join(argv))
        assert result.returncode in (0, 1), result.stderr
    finally:
        app.rollback()
        app.close()
