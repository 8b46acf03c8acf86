"""cleanup-orphans and repair on a SQLite file in WAL mode, killed between a batch and its marks.

In WAL mode SQLite commits an attached database on its own: a delete and its mark in the attached quarantine
are two commits, and a kill between them left rows deleted whose copies the rerun then threw away (an outside
tester: 3 kills in 10 lost a batch for good). There a batch marks its copies pending before it deletes, as on
MySQL, so whichever commit a kill comes between, the rerun knows what was removed.
"""

import json
import sqlite3

import pytest
from conftest import make_demo, run_cli
from test_beside_a_writer import digest
from test_repair import repair_args

from emfix.address import DatabaseAddress


def in_wal_mode(address):
    make_demo(address)
    con = sqlite3.connect(address.path)
    try:
        assert con.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal"
    finally:
        con.close()


@pytest.mark.parametrize("command", ["cleanup-orphans", "repair"])
@pytest.mark.parametrize("kill_at", ["pending:2", "written:2"])
def test_a_kill_between_a_batch_and_its_marks_in_wal_mode_loses_nothing(sqlite_address, tmp_path, command, kill_at):
    in_wal_mode(sqlite_address)
    original = digest(sqlite_address)
    args = repair_args(sqlite_address, tmp_path, batch="2")
    args[0] = command
    killed = run_cli(*args, env={"EMFIX_TEST_KILL_AT": kill_at})
    assert killed.returncode == -9, (killed.returncode, killed.stderr)  # the batch marked its copies pending first
    rerun = run_cli(*args)
    assert rerun.returncode in (0, 1) and "Traceback" not in rerun.stderr, (rerun.returncode, rerun.stderr)
    undone = run_cli("undo", json.loads(rerun.stdout)["quarantine"])
    assert undone.returncode == 0, undone.stderr
    assert digest(sqlite_address) == original


class Killed(BaseException):
    """Stands for a SIGKILL at a kill point: nothing after it runs."""


def killed_in_a_batch_of_batch(address, tmp_path, monkeypatch, point):
    """cleanup-orphans (batches of 2) stopped at kill point `point` of its first BATCH batch; its quarantine."""
    from emfix import orphandelete
    from emfix.cleanup import cleanup_orphans
    remove, kill_point, table = orphandelete._remove, orphandelete.kill_point, []

    def removing(db, graph, plan, *rest):
        table[:] = [plan.table]
        return remove(db, graph, plan, *rest)

    def killed_in_batch(name):
        if name == point and table == ["BATCH"]:
            raise Killed()
        kill_point(name)

    monkeypatch.setattr(orphandelete, "_remove", removing)
    monkeypatch.setattr(orphandelete, "kill_point", killed_in_batch)
    with pytest.raises(Killed):
        cleanup_orphans(address, batch_size=2, snapshot=False, quarantine_dir=str(tmp_path / "q"),
                        final_validate=False)
    monkeypatch.undo()
    (quarantine,) = [str(p) for p in (tmp_path / "q").iterdir() if p.suffix == ".db"]
    return quarantine


def cleaned_again(address, tmp_path):
    """The same cleanup run again, as a user would after the kill."""
    rerun = run_cli("cleanup-orphans", address.path, "--yes", "--json", "--batch-size", "2", "--no-snapshot",
                    "--quarantine-dir", str(tmp_path / "q"))
    assert rerun.returncode in (0, 1), rerun.stderr


def test_a_key_the_application_fills_again_after_a_kill_keeps_the_original_in_the_quarantine(
        sqlite_address, tmp_path, monkeypatch):
    """Round 14: killed between a batch's delete and its marks, the application then inserting a new row under a
    deleted row's key; the rerun took the key's row for the original (never deleted) and dropped the original's
    copy: lost for good. The copy leaves only when the key holds the very row it copied."""
    in_wal_mode(sqlite_address)
    original = digest(sqlite_address)
    quarantine = killed_in_a_batch_of_batch(sqlite_address, tmp_path, monkeypatch, "written")
    with sqlite3.connect(quarantine) as qcon:
        gone = qcon.execute("SELECT idx, epoch_idx, trial_run_id, time FROM BATCH WHERE _emfix_deleted = 0").fetchall()
    assert gone, "the killed batch left its copies pending"
    with sqlite3.connect(sqlite_address.path) as app:  # the application writes a new row under one of those keys
        app.execute("INSERT INTO BATCH (idx, epoch_idx, trial_run_id, time) VALUES (?, ?, ?, '2099-01-01')",
                    gone[0][:3])
    cleaned_again(sqlite_address, tmp_path)
    with sqlite3.connect(quarantine) as qcon:
        assert qcon.execute("SELECT count(*) FROM BATCH WHERE idx IS ? AND epoch_idx IS ? AND trial_run_id IS ? AND "
                            "time IS ? AND _emfix_deleted = 0", gone[0]).fetchone()[0] == 1  # kept, not marked
    undone = run_cli("undo", quarantine)  # the application's row goes back first; the original waits for its key
    assert undone.returncode == 0 and "kept in the quarantine: 1 rows emfix may not have removed" in undone.stdout, (
        undone.stdout, undone.stderr)
    with sqlite3.connect(sqlite_address.path) as app:
        assert app.execute("SELECT time FROM BATCH WHERE idx IS ? AND epoch_idx IS ? AND trial_run_id IS ?",
                           gone[0][:3]).fetchall() == [("2099-01-01",)]
        app.execute("DELETE FROM BATCH WHERE time = '2099-01-01'")
    undone = run_cli("undo", quarantine)
    assert undone.returncode == 0, undone.stderr
    assert digest(sqlite_address) == original


@pytest.mark.parametrize("change", ["edits", "deletes"])
def test_a_row_the_application_changes_after_a_kill_before_its_batch_committed_keeps_the_change(
        sqlite_address, tmp_path, monkeypatch, change):
    """Round 15: killed after a batch marked its copies pending but before its delete committed, the application
    then editing one of those rows (still an orphan); the rerun marked the stale copy removed, and undo put the stale
    row back over the edit. A copy whose key holds another row stays pending: undo puts it back after the others,
    only where its key is free."""
    in_wal_mode(sqlite_address)
    copy = str(tmp_path / "as-the-application-leaves-it.db")  # the same change on a copy nothing cleaned
    with sqlite3.connect(sqlite_address.path) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    quarantine = killed_in_a_batch_of_batch(sqlite_address, tmp_path, monkeypatch, "pending")
    with sqlite3.connect(quarantine) as qcon:
        key = qcon.execute("SELECT idx, epoch_idx, trial_run_id FROM BATCH WHERE _emfix_deleted = 0").fetchone()
    for path in (sqlite_address.path, copy):
        with sqlite3.connect(path) as app:
            if change == "edits":
                app.execute("UPDATE BATCH SET time = '2099-01-01' WHERE idx = ? AND epoch_idx = ? AND trial_run_id = ?",
                            key)
            else:
                app.execute("DELETE FROM BATCH WHERE idx = ? AND epoch_idx = ? AND trial_run_id = ?", key)
    expected = digest(DatabaseAddress("sqlite", path=copy))
    cleaned_again(sqlite_address, tmp_path)
    undone = run_cli("undo", quarantine)
    assert undone.returncode == 0, undone.stderr
    after = digest(sqlite_address)
    if change == "edits":
        assert after == expected
    else:  # emfix cannot tell the application's delete from its own: the row comes back, nothing is lost
        assert sorted(set(after["BATCH"]) - set(expected["BATCH"])) and {
            t: r for t, r in after.items() if t != "BATCH"} == {t: r for t, r in expected.items() if t != "BATCH"}
