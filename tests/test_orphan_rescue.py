"""The look inside each delete batch (orphanrescue): what it costs and what it holds.

The look decides which of a batch's doomed rows are doomed still; it runs inside the batch's transaction, so it
counts in the batch's lock time. Its first version built some 16 temporary tables a batch: on MariaDB a cleanup of
6,682 rows took 634 batches and 52 s (3.5 s without the look). These tests keep it a few reads a batch, keep the
batch sizes able to grow back after a slow batch, and keep its reads locking ones on MySQL.
"""

import pytest
from conftest import make_demo, server_isolation
from test_cleanup import missing_parents
from test_repair import runs_of_a_missing_trial

from emfix.backends import open_database
from emfix.orphandelete import next_batch_size
from emfix.orphanrescue import RescueLook
from emfix.orphans import plan_orphans
from emfix.schema import discover_graph


def test_batches_grow_back_after_a_slow_one():
    """A batch's write time has a fixed part (the look, the marks) and a part per row. The old rule grew batches
    only while one took under a fifth of the limit: once a slow batch had halved them, a fixed part over 40 ms kept
    them small for good. Now they settle where a batch takes about the target, under the limit."""
    def elapsed(rows):  # 50 ms whatever the size, 0.3 ms a row
        return 50 + 0.3 * rows
    size, seen = 40, []
    for _ in range(30):
        seen.append(elapsed(size))
        size = next_batch_size(size, size, 5000, seen[-1], 200)
    assert 80 <= size <= 110, size
    assert max(seen[10:]) < 200


def test_batch_sizes_shrink_at_once_past_the_limit_and_stay_within_the_most():
    assert next_batch_size(1000, 1000, 5000, 400, 200) == 200  # to the target (80 ms) in one step
    assert next_batch_size(1000, 1000, 5000, 210, 200) == 380
    assert next_batch_size(1, 1, 5000, 900, 200) == 1
    assert next_batch_size(4000, 4000, 5000, 1, 200) == 5000
    assert next_batch_size(100, 100, 5000, 85, 200) == 100  # near the target: kept


def test_a_tables_last_short_batch_does_not_grow_the_next_tables_batches():
    """A cleanup of the demo on MariaDB: the few rows of small tables took a few ms each, and each grew the
    batches by half again, so METRIC's first batch took 3,323 rows and 569 ms (limit 200)."""
    assert next_batch_size(500, 4, 5000, 8, 200) == 500
    assert next_batch_size(500, 40, 5000, 150, 200) == 21  # a short batch that was slow: from its own rows


def doomed_epochs(db, graph):
    """A look over the demo's plan, and a batch of EPOCH rows doomed through a missing trial."""
    work = plan_orphans(db, graph)
    plan = next(p for p in work.plans if p.table == "EPOCH")
    doom = {p.table: p for p in work.plans}
    assert "EPOCH" in doom
    keys = [tuple(r) for r in db.query("SELECT %s FROM %s WHERE kind = 'c' LIMIT 20" % (
        ", ".join("i%d" % n for n in range(len(plan.identity))), db.quote(plan.rows_table)))]
    assert keys
    return RescueLook(db, graph, work.plans), keys


def test_the_look_reads_each_table_up_the_chain_once_a_batch(address):
    """EPOCH -> TRIAL_RUN -> TRIAL: three reads, nothing created (its scratch tables are made once, the first
    time a table is looked at)."""
    make_demo(address)
    with open_database(address) as db:
        graph = discover_graph(db)
        look, keys = doomed_epochs(db, graph)
        assert look.still("EPOCH", keys) == keys  # nothing changed: all doomed still
        statements = []
        query, execute = db.query, db.execute
        db.query = lambda sql, *a, **k: statements.append(sql) or query(sql, *a, **k)
        db.execute = lambda sql, *a, **k: statements.append(sql) or execute(sql, *a, **k)
        assert look.still("EPOCH", keys) == keys
    assert len(statements) <= 3, statements
    assert not any(s.lstrip().upper().startswith(("CREATE", "INSERT", "DROP")) for s in statements), statements


def assert_the_application_waits(address, sql, params):
    """Another connection's `sql` waits for the locks this one holds (it gives up after 1 s: error 1205)."""
    import mysql.connector
    app = mysql.connector.connect(host=address.host, port=address.port, user=address.user,
                                  password=address.password or "", database=address.database, autocommit=True)
    try:
        cursor = app.cursor()
        cursor.execute("SET SESSION innodb_lock_wait_timeout = 1")
        with pytest.raises(mysql.connector.Error) as refused:
            cursor.execute(sql, params)
        assert refused.value.errno == 1205  # lock wait timeout: the look holds what it read, gaps included
    finally:
        app.close()


@pytest.mark.parametrize("default", [None, "READ COMMITTED"])
def test_a_parent_inserted_while_the_look_holds_its_locks_waits_for_the_batch(mysql_address, monkeypatch, default):
    """On MySQL the look's reads lock what they read, the gap where a missing parent would go included: an
    application inserting that parent waits until the batch has committed (and the next batch sees it). Without
    the lock it would go in between the look and the delete, and the batch would remove rows no longer orphans.
    Also on a server whose default isolation is READ COMMITTED, which takes no gap locks (and reads each statement
    at its own moment): emfix's sessions are REPEATABLE READ whatever the server's default."""
    trial, _runs, _epochs = runs_of_a_missing_trial(mysql_address)
    if default:
        server_isolation(monkeypatch, default)
    with open_database(mysql_address) as db:
        graph = discover_graph(db)
        work = plan_orphans(db, graph)
        plan = next(p for p in work.plans if p.table == "EPOCH")
        keys = [tuple(r) for r in db.query(
            "SELECT h.i0, h.i1 FROM %s h JOIN TRIAL_RUN r ON r.id = h.i1 WHERE r.trial_id = ? LIMIT 5" % db.quote(
                plan.rows_table), (trial,))]
        assert keys and plan.identity_names == ["idx", "trial_run_id"]
        look = RescueLook(db, graph, work.plans)
        with db.transaction():
            assert look.still("EPOCH", keys) == keys
            assert_the_application_waits(mysql_address, "INSERT INTO TRIAL (id, name, experiment_id, start_time, "
                                         "update_time) VALUES (%s, 'back again', 1, '2026-01-01 00:00:00', "
                                         "'2026-01-01 00:00:00')", (trial,))


def test_a_link_saved_while_the_look_holds_its_locks_waits_for_the_batch_of_metrics(mysql_address):
    """--include-unreferenced on MySQL: a link table with an index led by its metric column (InnoDB makes one for
    each foreign key) is probed with a locking read, so a link the application saves to a metric of the batch
    waits for the batch's commit instead of pointing at a metric the batch then removes."""
    make_demo(mysql_address)
    with open_database(mysql_address) as db:
        graph = discover_graph(db)
        work = plan_orphans(db, graph, include_unreferenced=True)
        keys = [tuple(r) for r in db.query(
            "SELECT id FROM METRIC m WHERE NOT EXISTS (SELECT 1 FROM EPOCH_METRIC x WHERE x.metric_id = m.id) AND "
            "NOT EXISTS (SELECT 1 FROM BATCH_METRIC x WHERE x.metric_id = m.id) AND NOT EXISTS (SELECT 1 FROM "
            "RESULTS_METRIC x WHERE x.metric_id = m.id) ORDER BY id LIMIT 3")]
        epoch = db.query("SELECT idx, trial_run_id FROM EPOCH ORDER BY trial_run_id, idx LIMIT 1")[0]
        assert keys
        look = RescueLook(db, graph, work.plans)
        with db.transaction():
            assert look.still("METRIC", keys) == keys
            assert_the_application_waits(mysql_address, "INSERT INTO EPOCH_METRIC (epoch_idx, epoch_trial_run_id, "
                                         "metric_id) VALUES (%s, %s, %s)", (epoch[0], epoch[1], keys[0][0]))


def test_on_sqlite_batches_leave_a_gap_a_waiting_writer_finds_while_an_application_writes(sqlite_address, monkeypatch):
    """SQLite locks the whole file; a writer waiting for it retries after growing sleeps, every 100 ms once its
    first ones are spent: 10 ms gaps between ~100 ms batches let its writes wait 1-2.5 s (the 1M demo), a long gap
    each quarter second 0.43 s (10M). While another connection has committed lately, a gap longer than the early
    retries' 25 ms follows every batch; without one, short gaps only."""
    import sqlite3

    from emfix import orphandelete
    make_demo(sqlite_address)
    pauses = []
    monkeypatch.setattr(orphandelete.time, "sleep", pauses.append)
    with open_database(sqlite_address) as db:
        gaps = orphandelete.Gaps(db, 0.0)
        for _ in range(6):
            gaps.after()
        assert pauses == [orphandelete.YIELD_SECONDS] * 6  # nobody else writes: short gaps only
        pauses.clear()
        app = sqlite3.connect(sqlite_address.path, isolation_level=None)
        try:
            for _ in range(6):
                app.execute("INSERT INTO EXPERIMENT (title, start_time, update_time) VALUES ('app', "
                            "datetime('now'), datetime('now'))")
                gaps.after()
        finally:
            app.close()
    assert pauses == [orphandelete.WRITER_GAP_SECONDS] * 6
    assert orphandelete.WRITER_GAP_SECONDS > 0.025  # the busy handler's early retries are up to 25 ms apart


def test_rows_under_a_removed_parent_whose_key_is_text_that_is_not_utf8_are_doomed_still(sqlite_address):
    """Round 20: beside a writer (when the look runs), the BATCH rows under an orphaned EPOCH whose trial_run_id
    holds TEXT that is not UTF-8 were left alone, "changed by another process": the look bound that key as a BLOB
    and found no reason. Each value is bound with its storage class now."""
    import sqlite3
    make_demo(sqlite_address)
    con = sqlite3.connect(sqlite_address.path)
    con.execute("INSERT INTO EPOCH VALUES (7, CAST(x'ff41' AS TEXT), '2025-01-01')")
    con.executemany("INSERT INTO BATCH VALUES (?, 7, CAST(x'ff41' AS TEXT), '2025-01-01')", [(i,) for i in range(3)])
    con.commit()
    con.close()
    with open_database(sqlite_address) as db:
        graph = discover_graph(db)
        work = plan_orphans(db, graph)
        plan = next(p for p in work.plans if p.table == "BATCH")
        keys = [tuple(r) for r in db.query("SELECT h.i0 FROM %s h JOIN BATCH b ON b.rowid = h.i0 WHERE "
                                           "b.trial_run_id = CAST(x'ff41' AS TEXT)" % db.quote(plan.rows_table))]
        assert len(keys) == 3
        assert RescueLook(db, graph, work.plans).still("BATCH", keys) == keys


def cleanup_while_the_application(address, tmp_path, monkeypatch, table, act):
    """cleanup-orphans in small batches; `act(app)` runs on another connection, committed, just before the first
    batch of `table`."""
    from emfix import orphandelete
    from emfix.cleanup import cleanup_orphans
    remove, acted = orphandelete._remove, []

    def before_the_batch(db, graph, plan, *args, **kwargs):
        if plan.table == table and not acted:
            acted.append(True)
            with open_database(address) as app:
                with app.transaction():
                    act(app)
        return remove(db, graph, plan, *args, **kwargs)
    monkeypatch.setattr(orphandelete, "_remove", before_the_batch)
    result = cleanup_orphans(address, batch_size=3, snapshot=False, quarantine_dir=str(tmp_path / "q"))
    assert acted
    return result


def test_a_doomed_run_the_application_writes_a_new_epoch_under_is_left_alone(address, tmp_path, monkeypatch):
    """Round 23 (SQLite): the application wrote an epoch under a doomed run while the cleanup ran; the epochs' batches
    were over, so the run was deleted under it and the epoch became a new violation (MySQL's foreign key refuses that
    delete). The run is left alone now, said so, and nothing else changes."""
    trial, _runs, _epochs = runs_of_a_missing_trial(address)
    with open_database(address) as db:
        run = db.scalar("SELECT min(id) FROM TRIAL_RUN WHERE trial_id = ?", (trial,))
    before = missing_parents(address)
    result = cleanup_while_the_application(address, tmp_path, monkeypatch, "TRIAL_RUN", lambda app: app.execute(
        "INSERT INTO EPOCH (idx, trial_run_id, time) VALUES (500, ?, '2030-01-01 00:00:00')", (run,)))
    assert missing_parents(address) <= before  # no row lost its parent to the cleanup
    assert result.left_alone.get("TRIAL_RUN") == 1
    with open_database(address) as db:
        assert db.scalar("SELECT count(*) FROM TRIAL_RUN WHERE id = ?", (run,)) == 1


def test_a_doomed_run_whose_epoch_was_left_alone_is_left_alone_too(address, tmp_path, monkeypatch):
    """Round 23: an epoch the application edited after the plan is left alone (compare-and-swap); its run, doomed
    too, was then deleted under it on SQLite (a new violation). It stays now with the epoch."""
    trial, _runs, _epochs = runs_of_a_missing_trial(address)
    with open_database(address) as db:
        run, idx = db.query("SELECT e.trial_run_id, min(e.idx) FROM EPOCH e JOIN TRIAL_RUN r ON r.id = e.trial_run_id "
                            "WHERE r.trial_id = ? GROUP BY e.trial_run_id ORDER BY e.trial_run_id LIMIT 1",
                            (trial,))[0]
        batches = db.scalar("SELECT count(*) FROM BATCH WHERE epoch_idx = ? AND trial_run_id = ?", (idx, run))
    before = missing_parents(address)
    result = cleanup_while_the_application(address, tmp_path, monkeypatch, "EPOCH" if not batches else "BATCH",
                                           lambda app: app.execute("UPDATE EPOCH SET time = '2031-01-01 00:00:00' "
                                                                   "WHERE idx = ? AND trial_run_id = ?", (idx, run)))
    assert missing_parents(address) <= before  # no row lost its parent to the cleanup
    assert result.left_alone.get("EPOCH") == 1 and result.left_alone.get("TRIAL_RUN") == 1
