"""A MySQL restore killed outright (SIGKILL: nothing can say so) leaves its mark in the database: doctor fails with
what to do, validate warns, commands that change the database refuse it (unless --force), a restore finishes it,
and no snapshot carries the mark."""

import json
import os
import sqlite3
import uuid

import pytest
from conftest import make_demo, run_cli, url_of

from emfix.backends import open_database
from emfix.demo import Shape
from emfix.snapshot.restoremark import MARK_TABLE

SHAPE = Shape(experiments=2, trials=2, runs=2, epochs=3, batches=3)


def counts(address):
    with open_database(address) as db:
        return {t: db.scalar("SELECT count(*) FROM %s" % db.quote(t)) for t in db.tables()}


def snapshot(address, folder):
    made = run_cli("snapshot", "create", url_of(address), "--snapshot-dir", folder, "--json")
    assert made.returncode == 0, made.stderr
    return json.loads(made.stdout)


@pytest.fixture(params=["sql", "sqlite"])
def half_restored(request, mysql_address, tmp_path):
    """A demo database whose restore was killed after it emptied its first table (or replaced it)."""
    make_demo(mysql_address, shape=SHAPE, faults=True)
    folder = str(tmp_path / "snaps")
    made = run_cli("snapshot", "create", url_of(mysql_address), "--snapshot-dir", folder, "--format",
                   request.param, "--json")
    assert made.returncode == 0, made.stderr
    taken = json.loads(made.stdout)["id"]
    killed = run_cli("snapshot", "restore", url_of(mysql_address), "--snapshot-dir", folder, "--snapshot-id", taken,
                     "--yes", env={"EMFIX_TEST_KILL_AT": "emptied:2"})
    assert killed.returncode == -9, killed.stderr
    return mysql_address, folder, taken


def test_doctor_fails_on_a_restore_killed_outright_and_says_how_to_finish_it(half_restored):
    address, folder, taken = half_restored
    found = run_cli("doctor", url_of(address), "--snapshot-dir", folder, "--json")
    restore = [f for f in json.loads(found.stdout)["findings"] if f["check"] == "restore"]
    assert found.returncode != 0 and restore and restore[0]["level"] == "FAIL", found.stdout
    assert taken in restore[0]["message"] and "snapshot restore" in restore[0]["fix"]
    assert "--snapshot-dir %s" % folder in restore[0]["fix"]  # the command as printed finds the snapshot


def test_changing_commands_refuse_a_half_restored_database_and_change_nothing(half_restored, tmp_path):
    address, folder, taken = half_restored
    before = counts(address)
    for command in (["cleanup-orphans"], ["repair"], ["fix-json"]):  # repair went ahead (an outside tester)
        refused = run_cli(*command, url_of(address), "--yes", "--snapshot-dir", folder)
        assert refused.returncode == 4 and "partly restored" in refused.stderr, (command, refused.stderr)
        assert "snapshot restore" in refused.stderr and "--snapshot-id %s" % taken in refused.stderr
        assert counts(address) == before
    report = run_cli("validate", url_of(address), "--json")
    assert "unfinished_restore" in {w["kind"] for w in json.loads(report.stdout)["warnings"]}
    assert report.returncode == 1 and json.loads(report.stdout)["summary"]["overall_status"] == "FAIL"  # not a PASS


def test_a_restore_finishes_it_and_no_snapshot_carries_the_mark(half_restored, tmp_path):
    address, folder, taken = half_restored
    finished = run_cli("snapshot", "restore", url_of(address), "--snapshot-dir", folder, "--snapshot-id", taken,
                       "--yes")
    assert finished.returncode == 0, finished.stderr
    assert unfinished(address) is None and MARK_TABLE not in {t.lower() for t in counts(address)}
    assert run_cli("doctor", url_of(address), "--snapshot-dir", folder).returncode == 0
    cleaned = run_cli("cleanup-orphans", url_of(address), "--yes", "--snapshot-dir", folder)
    assert cleaned.returncode == 0, cleaned.stderr


def test_force_changes_a_half_restored_database_as_it_is(half_restored):
    address, folder, _ = half_restored
    forced = run_cli("cleanup-orphans", url_of(address), "--yes", "--force", "--snapshot-dir", folder)
    assert forced.returncode == 0, forced.stderr
    assert "partly restored" in forced.stderr


def test_the_safety_snapshot_of_a_half_restored_database_leaves_the_mark_out(half_restored, tmp_path):
    address, folder, taken = half_restored
    with open_database(address) as db:
        assert MARK_TABLE in {t.lower() for t in db.tables()}
    made = run_cli("snapshot", "create", url_of(address), "--snapshot-dir", folder, "--json")
    assert made.returncode == 0 and "partly restored" in made.stderr  # said: the snapshot holds the half
    tables = json.loads(made.stdout)["tables"]
    assert tables and MARK_TABLE not in {t.lower() for t in tables}


def test_the_library_refuses_it_too(half_restored, tmp_path):
    """A program that calls emfix's library (not the command) is refused the same way, by the engine's preflight."""
    from emfix.cleanup import cleanup_orphans
    from emfix.errors import DamagedInputError
    address, folder, _ = half_restored
    before = counts(address)
    with pytest.raises(DamagedInputError, match="partly restored"):
        cleanup_orphans(address, snapshot_dir=folder)
    assert counts(address) == before


def test_a_second_killed_restore_still_names_what_was_there_before_the_first(half_restored):
    """Found by an outside tester: each restore replaced the mark, so after two killed restores doctor named the
    second one's safety snapshot, which holds the first one's half."""
    address, folder, taken = half_restored
    first_safety = unfinished(address)["safety_snapshot_id"]
    again = run_cli("snapshot", "restore", url_of(address), "--snapshot-dir", folder, "--snapshot-id", taken,
                    "--yes", env={"EMFIX_TEST_KILL_AT": "emptied:3"})
    assert again.returncode == -9, again.stderr
    found = unfinished(address)
    assert found["restores"] == 2 and found["safety_snapshot_id"] == first_safety
    doctor = run_cli("doctor", url_of(address), "--snapshot-dir", folder)
    assert first_safety in doctor.stdout and "2 restores" in doctor.stdout, doctor.stdout


def unfinished(address):
    from emfix.snapshot.restoremark import unfinished_restore
    with open_database(address) as db:
        return unfinished_restore(db)


def test_a_restore_is_refused_while_another_one_runs(mysql_address, tmp_path):
    """Found by an outside tester: a restore that finished dropped the mark of one still running, which was then
    killed: half a database, doctor OK. Two restores into one database no longer run at once."""
    from emfix.snapshot.restoremark import lock_name
    make_demo(mysql_address, shape=SHAPE, faults=False)
    folder = str(tmp_path / "snaps")
    taken = snapshot(mysql_address, folder)["id"]
    before = counts(mysql_address)
    with open_database(mysql_address) as running:  # as a restore under way holds it
        assert running.scalar("SELECT GET_LOCK(?, 0)", (lock_name(mysql_address.database),)) == 1
        refused = run_cli("snapshot", "restore", url_of(mysql_address), "--snapshot-dir", folder, "--snapshot-id",
                          taken, "--yes")
    assert refused.returncode == 3 and "another restore" in refused.stderr, refused.stderr
    assert counts(mysql_address) == before and unfinished(mysql_address) is None


def test_a_restore_refused_at_its_first_table_leaves_no_mark(mysql_address, tmp_path):
    """Found by an outside tester: a SQLite-format restore whose first table the server refused changed nothing,
    yet left the mark."""
    make_demo(mysql_address, shape=SHAPE, faults=False)
    folder = str(tmp_path / "snaps")
    made = run_cli("snapshot", "create", url_of(mysql_address), "--snapshot-dir", folder, "--format", "sqlite",
                   "--json")
    taken = json.loads(made.stdout)["id"]
    with sqlite3.connect(os.path.join(folder, taken + ".db")) as snap:  # the table it loads first
        first = snap.execute("SELECT name FROM _emfix_snapshot ORDER BY ordinal LIMIT 1").fetchone()[0]
    with open_database(mysql_address) as db:
        db.execute("CREATE TRIGGER emfix_t_refuse BEFORE INSERT ON %s FOR EACH ROW SIGNAL SQLSTATE '45000' "
                   "SET MESSAGE_TEXT = 'no inserts here'" % db.quote(first))
    refused = run_cli("snapshot", "restore", url_of(mysql_address), "--snapshot-dir", folder, "--snapshot-id",
                      taken, "--yes", "--no-safety-snapshot")
    assert refused.returncode != 0 and "no inserts here" in refused.stderr, refused.stderr
    assert unfinished(mysql_address) is None


def test_a_user_who_may_not_create_tables_restores_unmarked_as_before(mysql_address, tmp_path):
    """Found by an outside tester: the mark needed CREATE (and DROP) a restore from a SQLite-format snapshot did not
    need before; such a user restores as before, told that the restore is not marked."""
    import dataclasses
    make_demo(mysql_address, shape=SHAPE, faults=False)
    folder = str(tmp_path / "snaps")
    made = run_cli("snapshot", "create", url_of(mysql_address), "--snapshot-dir", folder, "--format", "sqlite",
                   "--json")
    taken = json.loads(made.stdout)["id"]
    user = "emfix_t_nocreate_%s" % uuid.uuid4().hex[:8]  # its own: tests run side by side
    with open_database(mysql_address) as db:
        db.execute("DROP USER IF EXISTS '%s'@'%%'" % user)
        db.execute("CREATE USER '%s'@'%%' IDENTIFIED BY 'pw-nocreate'" % user)
        db.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON %s.* TO '%s'@'%%'" % (db.quote(mysql_address.database),
                                                                               user))
    try:
        limited = dataclasses.replace(mysql_address, user=user, password=None)
        done = run_cli("snapshot", "restore", url_of(limited), "--snapshot-dir", folder, "--snapshot-id", taken,
                       "--yes", "--no-safety-snapshot", "--from-other-database",
                       env={"EMFIX_MYSQL_PASSWORD": "pw-nocreate"})
        assert done.returncode == 0, done.stderr
        assert "not marked" in done.stderr
    finally:
        with open_database(mysql_address) as db:
            db.execute("DROP USER IF EXISTS '%s'@'%%'" % user)


def test_a_failure_the_loader_does_not_vouch_for_keeps_the_mark(mysql_address, tmp_path, monkeypatch):
    """Found by an outside tester: a second Ctrl-C inside the handling of the first escaped untagged, and the mark
    was deleted as if nothing had changed, the database half-loaded. Only a loader that says it emptied nothing
    lets the mark go."""
    from emfix import snapshot as snapshots
    from emfix.snapshot import restore as restoring
    make_demo(mysql_address, shape=SHAPE, faults=False)
    folder = str(tmp_path / "snaps")
    taken = snapshots.create_snapshot(mysql_address, folder, file_format="sqlite").id

    def interrupted_twice(*_args, **_kwargs):
        raise KeyboardInterrupt()  # untagged: what a second Ctrl-C in the first one's handling raises

    monkeypatch.setattr(restoring, "load_sqlite_snapshot", interrupted_twice)
    with pytest.raises(KeyboardInterrupt):
        snapshots.restore_snapshot(mysql_address, folder, taken)
    assert unfinished(mysql_address)["snapshot_id"] == taken


def test_a_restore_that_finishes_clears_the_rows_of_killed_ones_even_unmarked_itself(half_restored):
    """Found by an outside tester: a user who may not create tables finished a restore, but the row of an earlier
    killed restore stayed, and every changing command refused a whole database."""
    import dataclasses
    address, folder, taken = half_restored
    user = "emfix_t_nocreate_%s" % uuid.uuid4().hex[:8]
    with open_database(address) as db:
        db.execute("DROP USER IF EXISTS '%s'@'%%'" % user)
        db.execute("CREATE USER '%s'@'%%' IDENTIFIED BY 'pw-nocreate'" % user)
        db.execute("GRANT SELECT, INSERT, UPDATE, DELETE, DROP ON %s.* TO '%s'@'%%'" % (
            db.quote(address.database), user))
    try:
        sqlite_format = run_cli("snapshot", "create", url_of(address), "--snapshot-dir", folder, "--format", "sqlite",
                                "--json")  # (of the half: what matters here is the mark; it warns)
        assert sqlite_format.returncode == 0, sqlite_format.stderr
        limited = dataclasses.replace(address, user=user, password=None)
        done = run_cli("snapshot", "restore", url_of(limited), "--snapshot-dir", folder, "--snapshot-id", json.loads(
            sqlite_format.stdout)["id"], "--yes", "--no-safety-snapshot", "--from-other-database",
            env={"EMFIX_MYSQL_PASSWORD": "pw-nocreate"})
        assert done.returncode == 0, done.stderr
        assert unfinished(address) is None
    finally:
        with open_database(address) as db:
            db.execute("DROP USER IF EXISTS '%s'@'%%'" % user)


def test_a_row_the_application_inserts_into_an_emptied_table_gets_an_id_after_the_snapshots_rows(mysql_address,
                                                                                                   tmp_path):
    """TRUNCATE starts a table's ids at 1 again: a row the application inserted while the restore loaded took an id
    of the snapshot's rows, whose INSERT then failed on the duplicate key. The emptied table keeps the snapshot's
    next id (here the restore is killed after it emptied EXPERIMENT, before it loaded it)."""
    make_demo(mysql_address, shape=SHAPE, faults=True)
    with open_database(mysql_address) as db:
        last = db.scalar("SELECT MAX(id) FROM EXPERIMENT")
    folder = str(tmp_path / "snaps")
    taken = snapshot(mysql_address, folder)["id"]
    killed = run_cli("snapshot", "restore", url_of(mysql_address), "--snapshot-dir", folder, "--snapshot-id", taken,
                     "--yes", "--no-safety-snapshot", env={"EMFIX_TEST_KILL_AT": "emptied:2"})  # 2nd: EXPERIMENT
    assert killed.returncode == -9, killed.stderr
    with open_database(mysql_address) as db:
        assert db.scalar("SELECT count(*) FROM EXPERIMENT") == 0
        db.execute("INSERT INTO EXPERIMENT (title, start_time, update_time) VALUES ('meanwhile', NOW(), NOW())")
        assert db.scalar("SELECT MAX(id) FROM EXPERIMENT") > last


@pytest.mark.parametrize("snapshot_format", ["sql", "sqlite"])
def test_a_restore_stopped_before_it_changed_anything_leaves_no_mark(mysql_address, tmp_path, monkeypatch,
                                                                    snapshot_format):
    """An outside tester: Ctrl-C or SIGTERM while the loader's connections opened (SQL text), or inside the first
    table's transaction (a SQLite-file snapshot: rolled back), left the mark on an unchanged database (doctor FAIL,
    every changing command refused)."""
    from emfix.backends.base import Backend
    from emfix.pool import ConnectionPool
    from emfix.snapshot import restore_snapshot
    make_demo(mysql_address, shape=SHAPE, faults=True)
    folder = str(tmp_path / "snaps")
    made = run_cli("snapshot", "create", url_of(mysql_address), "--snapshot-dir", folder, "--format", snapshot_format,
                   "--json")
    assert made.returncode == 0, made.stderr
    before = counts(mysql_address)

    def stopped(*_args, **_kwargs):
        raise KeyboardInterrupt()

    if snapshot_format == "sql":
        monkeypatch.setattr(ConnectionPool, "acquire_up_to", stopped)  # while the loader's connections open
    else:
        monkeypatch.setattr(Backend, "executemany", stopped)  # inside the first table's transaction
    with pytest.raises(KeyboardInterrupt):
        restore_snapshot(mysql_address, folder, json.loads(made.stdout)["id"], safety_snapshot=False)
    monkeypatch.undo()
    assert unfinished(mysql_address) is None and counts(mysql_address) == before


def test_a_table_of_the_marks_name_that_emfix_did_not_make_is_not_taken_for_a_mark(mysql_address, tmp_path):
    """An outside tester: a table `_emfix_restore (x int)` crashed doctor, validate, snapshot create and restore
    (exit 70). It is no mark; a restore says it is in the way and changes nothing."""
    make_demo(mysql_address, shape=SHAPE, faults=True)
    folder = str(tmp_path / "snaps")
    taken = snapshot(mysql_address, folder)["id"]
    with open_database(mysql_address) as db:
        db.execute("CREATE TABLE %s (x INT)" % db.quote(MARK_TABLE))
    before = counts(mysql_address)
    assert unfinished(mysql_address) is None
    assert run_cli("doctor", url_of(mysql_address), "--snapshot-dir", folder).returncode == 0
    assert run_cli("validate", url_of(mysql_address)).returncode == 1  # the demo's damage, found
    refused = run_cli("snapshot", "restore", url_of(mysql_address), "--snapshot-dir", folder, "--snapshot-id", taken,
                      "--yes", "--no-safety-snapshot")
    assert refused.returncode == 1 and "emfix did not make" in refused.stderr and "nothing was changed" in \
        refused.stderr, refused.stderr
    assert counts(mysql_address) == before


def test_a_table_of_the_marks_name_that_emfix_did_not_make_is_in_every_snapshot(mysql_address, tmp_path):
    """An outside tester: snapshots left out every table whose name was the mark's in any letter case, the user's
    own `_emfix_restore (x INT)` too, without a word; restored elsewhere, it was gone."""
    make_demo(mysql_address, shape=SHAPE, faults=True)
    with open_database(mysql_address) as db:
        db.execute("CREATE TABLE %s (x INT PRIMARY KEY)" % db.quote(MARK_TABLE))
        db.execute("INSERT INTO %s VALUES (7)" % db.quote(MARK_TABLE))
    made = snapshot(mysql_address, str(tmp_path / "snaps"))
    assert made["tables"][MARK_TABLE] == 1, made["tables"]


def test_a_snapshot_of_a_half_restored_database_is_never_the_latest_valid_one(half_restored):
    """An outside tester: a snapshot taken of the half (it warned) became `latest-valid`, and restoring that one
    cleared the mark and left the half for good. Such a snapshot is kept as partial, which `latest-valid` passes by."""
    address, folder, taken = half_restored
    made = snapshot(address, folder)
    assert made["kind"] == "partial" and made["description"].startswith("partial")
    restored = run_cli("snapshot", "restore", url_of(address), "--snapshot-dir", folder, "--yes", "--json")
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["snapshot_id"] == taken and unfinished(address) is None


def test_prune_keeps_the_snapshots_an_unfinished_restore_names(half_restored):
    """An outside tester: `snapshot prune --keep 1` deleted the snapshot doctor says to restore again and the safety
    snapshot of what was there before, and doctor's way out failed ("no snapshot")."""
    address, folder, taken = half_restored
    again = run_cli("snapshot", "restore", url_of(address), "--snapshot-dir", folder, "--snapshot-id", taken, "--yes",
                    env={"EMFIX_TEST_KILL_AT": "emptied:3"})  # a second safety snapshot, of the half: the newest
    assert again.returncode == -9, again.stderr
    named = unfinished(address)
    pruned = run_cli("snapshot", "prune", url_of(address), "--snapshot-dir", folder, "--keep", "1", "--json")
    assert pruned.returncode == 0, pruned.stderr
    left = {os.path.splitext(name)[0] for name in os.listdir(folder)}
    assert taken in left and named["safety_snapshot_id"] in left
    finished = run_cli("snapshot", "restore", url_of(address), "--snapshot-dir", folder, "--snapshot-id", taken,
                       "--yes")
    assert finished.returncode == 0, finished.stderr


def test_a_user_who_may_not_empty_tables_is_told_and_nothing_is_marked(mysql_address, tmp_path):
    """An outside tester: without DROP (which TRUNCATE needs) the first TRUNCATE was refused, yet the restore said
    the database was partly restored and left its mark on an unchanged database."""
    import dataclasses
    make_demo(mysql_address, shape=SHAPE, faults=True)
    folder = str(tmp_path / "snaps")
    taken = snapshot(mysql_address, folder)["id"]
    before = counts(mysql_address)
    user = "emfix_t_nodrop_%s" % uuid.uuid4().hex[:8]
    with open_database(mysql_address) as db:
        db.execute("CREATE USER '%s'@'%%' IDENTIFIED BY 'pw-nodrop'" % user)
        db.execute("GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, INDEX, ALTER ON %s.* TO '%s'@'%%'" % (
            db.quote(mysql_address.database), user))
    try:
        limited = dataclasses.replace(mysql_address, user=user, password=None)
        refused = run_cli("snapshot", "restore", url_of(limited), "--snapshot-dir", folder, "--snapshot-id", taken,
                          "--yes", "--no-safety-snapshot", env={"EMFIX_MYSQL_PASSWORD": "pw-nodrop"})
        assert refused.returncode == 3 and "nothing was changed" in refused.stderr, refused.stderr
        assert "partly restored" not in refused.stderr and "GRANT" in refused.stderr
        left = counts(mysql_address)
        assert left.pop(MARK_TABLE, 0) == 0  # (emptied: a user who may not drop it leaves it so)
        assert unfinished(mysql_address) is None and left == before
    finally:
        with open_database(mysql_address) as db:
            db.execute("DROP USER IF EXISTS '%s'@'%%'" % user)


@pytest.mark.parametrize("file_format", ["sql", "sqlite"])
@pytest.mark.parametrize("killed", ["while the safety snapshot was taken", "once marked", "once a table was emptied"])
def test_a_restore_whose_lock_connection_was_killed_stops_and_a_rerun_finishes_it(mysql_address, tmp_path,
                                                                                  monkeypatch, file_format, killed):
    """An outside tester: with the lock's connection killed (an administrator's KILL), a second restore was not
    refused and ran beside the first: one ended "restored", the other at a duplicate key. The first now stops at its
    next write: before it emptied anything, nothing changed and no mark; after, said partly restored with its mark
    kept. A rerun finishes it."""
    from emfix.errors import DatabaseLockedError
    from emfix.snapshot import mysqlrestore, restore_snapshot
    from emfix.snapshot.restoremark import RestoreMark, lock_name
    make_demo(mysql_address, shape=SHAPE, faults=True)
    folder = str(tmp_path / "snaps")
    made = run_cli("snapshot", "create", url_of(mysql_address), "--snapshot-dir", folder, "--json", "--format",
                   file_format)
    assert made.returncode == 0, made.stderr
    taken = json.loads(made.stdout)
    before = counts(mysql_address)

    def kill_the_lock_connection(*_args):
        with open_database(mysql_address) as admin:
            holder = admin.scalar("SELECT IS_USED_LOCK(?)", (lock_name(mysql_address.database),))
            if holder is not None:
                admin.execute("KILL %d" % int(holder))

    if killed == "while the safety snapshot was taken":
        from emfix.snapshot import create
        safety = create.safety_snapshot
        monkeypatch.setattr(create, "safety_snapshot", lambda *a, **k: (kill_the_lock_connection(), safety(*a, **k))[1])
    elif killed == "once marked":
        mark = RestoreMark.mark
        monkeypatch.setattr(RestoreMark, "mark", lambda self, *args: (mark(self, *args), kill_the_lock_connection()))
    else:
        monkeypatch.setattr(mysqlrestore, "kill_point", kill_the_lock_connection)
    with pytest.raises(DatabaseLockedError) as stopped:
        restore_snapshot(mysql_address, folder, taken["id"], safety_snapshot=killed.startswith("while"))
    assert "lost the restore lock" in stopped.value.message and stopped.value.exit_code == 3
    if killed != "once a table was emptied":
        assert "nothing was changed" in stopped.value.message
        left = counts(mysql_address)
        assert left.pop(MARK_TABLE, 0) == 0  # (its empty table: dropped only under the lock)
        assert unfinished(mysql_address) is None and left == before
    else:
        assert "partly restored" in stopped.value.message
        assert unfinished(mysql_address) is not None
    monkeypatch.undo()
    restored = run_cli("snapshot", "restore", url_of(mysql_address), "--snapshot-dir", folder, "--snapshot-id",
                       taken["id"], "--yes", "--no-safety-snapshot")
    assert restored.returncode == 0, restored.stderr
    assert unfinished(mysql_address) is None
    assert counts(mysql_address) == taken["tables"]


def test_the_restore_locks_connection_outlasts_the_servers_wait_timeout(mysql_address):
    from emfix.snapshot.restoremark import LOCK_IDLE_SECONDS, RestoreMark
    held = RestoreMark(mysql_address)
    try:
        assert held.db.scalar("SELECT @@SESSION.wait_timeout") == LOCK_IDLE_SECONDS
    finally:
        held.close()


def test_rows_the_application_inserts_while_a_restore_loads_do_not_leave_a_half_restored_mark(mysql_address, tmp_path,
                                                                                              monkeypatch):
    """An outside tester: an application inserting while the restore loaded made the counts differ (exit 4, right),
    but the mark stayed and doctor said "tables emptied, not all loaded" of a database with every row loaded."""
    from emfix.errors import DamagedInputError
    from emfix.snapshot import mysqlrestore, restore_snapshot
    make_demo(mysql_address, shape=SHAPE, faults=True)
    folder = str(tmp_path / "snaps")
    taken = snapshot(mysql_address, folder)["id"]
    count_tables = mysqlrestore.count_tables

    def the_application_inserts_first(*args):
        with open_database(mysql_address) as application:
            application.execute("INSERT INTO METRIC (type, total_val, per_label_val) VALUES ('app', 0.5, '{}')")
        return count_tables(*args)

    monkeypatch.setattr(mysqlrestore, "count_tables", the_application_inserts_first)
    with pytest.raises(DamagedInputError) as said:
        restore_snapshot(mysql_address, folder, taken, safety_snapshot=False)
    assert "more rows are there than it holds: METRIC +1 (another program inserted them" in said.value.message
    assert unfinished(mysql_address) is None


def test_a_snapshot_without_a_row_is_restored(mysql_address, tmp_path):
    """An outside tester: a snapshot of a database whose tables are all empty could never be restored: nothing
    unlocked the tables its restore locked before emptying them, and its count waited on them (exit 3, marked)."""
    assert run_cli("init", url_of(mysql_address)).returncode == 0
    with open_database(mysql_address) as db:
        db.execute("DELETE FROM SCHEMA_VERSION")
    folder = str(tmp_path / "snaps")
    taken = snapshot(mysql_address, folder)["id"]
    restored = run_cli("snapshot", "restore", url_of(mysql_address), "--snapshot-dir", folder, "--snapshot-id", taken,
                       "--yes", "--lock-timeout", "5")
    assert restored.returncode == 0, restored.stderr
    assert unfinished(mysql_address) is None


def test_a_table_of_the_marks_name_with_more_columns_is_no_mark_and_keeps_its_rows(mysql_address, tmp_path):
    """An outside tester: a table with the mark's columns and one more was taken for a mark (doctor FAIL), and a
    restore that finished dropped it with its rows."""
    make_demo(mysql_address, shape=SHAPE, faults=True)
    folder = str(tmp_path / "snaps")
    taken = snapshot(mysql_address, folder)["id"]
    with open_database(mysql_address) as db:
        db.execute("CREATE TABLE %s (run_id VARCHAR(64) PRIMARY KEY, snapshot_id VARCHAR(100) NOT NULL, "
                   "safety_snapshot_id VARCHAR(100), snapshot_dir TEXT, started_at VARCHAR(40) NOT NULL, note TEXT)"
                   % db.quote(MARK_TABLE))
        db.execute("INSERT INTO %s VALUES ('mine', 'x', NULL, NULL, '2020', 'important')" % db.quote(MARK_TABLE))
    assert unfinished(mysql_address) is None
    refused = run_cli("snapshot", "restore", url_of(mysql_address), "--snapshot-dir", folder, "--snapshot-id", taken,
                      "--yes", "--no-safety-snapshot")
    assert refused.returncode == 1 and "emfix did not make" in refused.stderr, refused.stderr
    with open_database(mysql_address) as db:
        assert db.scalar("SELECT note FROM %s" % db.quote(MARK_TABLE)) == "important"


def test_a_snapshot_whose_moment_began_after_a_restore_marked_is_partial(mysql_address, tmp_path, monkeypatch):
    """An outside tester: snapshot create looked for the mark before its moment began; a restore that marked and
    emptied tables in between went into an ordinary, verified snapshot, which `latest-valid` then restored. The
    mark is read in the snapshot's own moment (here a half-restored database appears just before it begins)."""
    from emfix.snapshot import sqltext
    make_demo(mysql_address, shape=SHAPE, faults=True)
    folder = str(tmp_path / "snaps")
    taken = snapshot(mysql_address, folder)["id"]
    one_moment = sqltext._one_moment

    def a_restore_killed_just_before(connections, tables):
        killed = run_cli("snapshot", "restore", url_of(mysql_address), "--snapshot-dir", folder, "--snapshot-id",
                         taken, "--yes", "--no-safety-snapshot", env={"EMFIX_TEST_KILL_AT": "emptied:3"})
        assert killed.returncode == -9, killed.stderr
        return one_moment(connections, tables)

    monkeypatch.setattr(sqltext, "_one_moment", a_restore_killed_just_before)
    from emfix.snapshot import create_snapshot
    made = create_snapshot(mysql_address, folder)
    assert made.kind == "partial"


def test_the_mark_read_while_a_restore_drops_it_is_no_bug(mysql_address, monkeypatch):
    """An outside tester: `snapshot create` beside a restore that finished just then crashed (exit 70, "Table
    '_emfix_restore' doesn't exist"): the table was listed, then dropped before it was read."""
    from emfix.snapshot import restoremark
    with open_database(mysql_address) as db:
        db.execute("CREATE TABLE %s (run_id VARCHAR(64) PRIMARY KEY, snapshot_id VARCHAR(100) NOT NULL, "
                   "safety_snapshot_id VARCHAR(100), snapshot_dir TEXT, started_at VARCHAR(40) NOT NULL)"
                   % db.quote(MARK_TABLE))
        found = restoremark._mark_table
        calls = []

        def dropped_after_the_first_look(reader):
            name = found(reader)
            if not calls:
                with open_database(mysql_address) as restore:
                    restore.execute("DROP TABLE %s" % restore.quote(MARK_TABLE))
            calls.append(name)
            return name

        monkeypatch.setattr(restoremark, "_mark_table", dropped_after_the_first_look)
        assert restoremark.unfinished_restore(db) is None


def test_a_restore_that_lost_its_lock_clears_its_own_mark_alone(mysql_address, tmp_path):
    """An outside tester: with the lock's connection killed, a second restore ran beside the first, and the first,
    finishing, deleted the second's row too (every row goes only under the lock)."""
    from emfix.snapshot.restoremark import RestoreMark
    first, second = RestoreMark(mysql_address), None
    try:
        first.mark("snapshot-a", None, str(tmp_path))
        with open_database(mysql_address) as admin:
            admin.execute("KILL %d" % first.db.scalar("SELECT CONNECTION_ID()"))
        second = RestoreMark(mysql_address)  # the lock is free again: a second restore marks
        second.mark("snapshot-b", None, str(tmp_path))
        first.finish()
        assert unfinished(mysql_address)["snapshot_id"] == "snapshot-b"
    finally:
        if second is not None:
            second.finish()
    assert unfinished(mysql_address) is None


def test_a_restore_stopped_while_its_mark_waits_leaves_no_mark(mysql_address, tmp_path):
    """An outside tester: SIGTERM while the mark's INSERT waited for another session's lock on the table: the
    statement, abandoned, still committed once that lock went, and an unchanged database was marked."""
    import signal
    import subprocess
    import sys
    import time

    from conftest import ROOT
    make_demo(mysql_address, shape=SHAPE, faults=True)
    folder = str(tmp_path / "snaps")
    taken = snapshot(mysql_address, folder)["id"]
    before = counts(mysql_address)
    with open_database(mysql_address) as holder, open_database(mysql_address) as watcher:
        holder.execute("CREATE TABLE %s (run_id VARCHAR(64) NOT NULL PRIMARY KEY, snapshot_id VARCHAR(100) NOT NULL, "
                       "safety_snapshot_id VARCHAR(100), snapshot_dir TEXT, started_at VARCHAR(40) NOT NULL)"
                       % holder.quote(MARK_TABLE))
        holder.execute("START TRANSACTION")
        holder.query("SELECT * FROM %s FOR UPDATE" % holder.quote(MARK_TABLE))  # the table's every gap
        proc = subprocess.Popen([sys.executable, "-m", "emfix", "snapshot", "restore", url_of(mysql_address),
                                 "--snapshot-dir", folder, "--snapshot-id", taken, "--yes", "--no-safety-snapshot"],
                                env=dict(os.environ, PYTHONPATH=ROOT), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        waiting = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'INSERT INTO `_emfix_restore`%'"
        deadline = time.monotonic() + 60
        while not watcher.scalar(waiting):
            assert time.monotonic() < deadline and proc.poll() is None, "the mark's INSERT never waited"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=60)[1]
        holder.execute("ROLLBACK")
    assert proc.returncode == 143 and "could not end the restore's mark" not in err, err
    left = counts(mysql_address)
    assert left.pop(MARK_TABLE) == 0 and unfinished(mysql_address) is None and left == before


def test_validate_beside_a_restore_that_ends_before_it_does_still_says_so(mysql_address, tmp_path, monkeypatch):
    """An outside tester: validate beside a running restore reported the half's foreign-key violations (and
    suggested cleanup-orphans) without a word of the restore: it read the mark only at its end, once gone."""
    from emfix import validate as validating
    from emfix.snapshot.restoremark import RestoreMark
    make_demo(mysql_address, shape=SHAPE, faults=True)
    restore = RestoreMark(mysql_address)
    restore.mark("snapshot-a", None, str(tmp_path))
    look = validating.unfinished_restore
    looks = []

    def the_restore_ends_after_the_first_look(db):
        found = look(db)
        if not looks:
            restore.finish()
        looks.append(found)
        return found

    monkeypatch.setattr(validating, "unfinished_restore", the_restore_ends_after_the_first_look)
    report = validating.validate(mysql_address)
    assert looks[-1] is None and report.unfinished_restore["running"]
    assert "unfinished_restore" in {w["kind"] for w in report.warnings()}


def test_on_a_case_sensitive_server_the_mark_is_read_from_its_own_table(mysql_address, tmp_path):
    """An outside tester: with a table `_EMFIX_RESTORE` (the mark's columns, empty) beside the mark's own, doctor read
    one or the other (WARN, FAIL, WARN)."""
    from emfix.snapshot.restoremark import RestoreMark
    with open_database(mysql_address) as db:
        if db.scalar("SELECT @@lower_case_table_names") != 0:
            pytest.skip("the server folds table names")
        db.execute("CREATE TABLE `_EMFIX_RESTORE` (run_id VARCHAR(64) NOT NULL PRIMARY KEY, snapshot_id VARCHAR(100) "
                   "NOT NULL, safety_snapshot_id VARCHAR(100), snapshot_dir TEXT, started_at VARCHAR(40) NOT NULL)")
        db.execute("INSERT INTO `_EMFIX_RESTORE` VALUES ('theirs', 'theirs', NULL, NULL, '2020')")
    assert unfinished(mysql_address) is None  # not the mark's table: its row is no restore of emfix's
    restore = RestoreMark(mysql_address)
    try:
        restore.mark("snapshot-a", None, str(tmp_path))
        assert all(unfinished(mysql_address)["snapshot_id"] == "snapshot-a" for _ in range(3))
    finally:
        restore.finish()
    assert unfinished(mysql_address) is None
    with open_database(mysql_address) as db:
        assert "_EMFIX_RESTORE" in db.tables()  # not emfix's: left as it is
