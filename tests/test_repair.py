"""emfix repair: the cookbook's whole workflow in one command under one undo, on SQLite and MariaDB.

The damaged demo repaired to a clean validate; the same final rows as the cookbook's steps run one
after the other (cleanup-orphans, then fix-json); undo back bit for bit; a concurrent writer loses
nothing; a kill at each kill point then a rerun ends where one run ends; a second run changes nothing.
"""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile

import pytest
from conftest import ROOT, make_demo, run_cli, url_of
from test_beside_a_writer import (
    Writer,
    copy_database,
    damaged_metrics,
    digest,
    doomed_runs,
    kept_trial_ids,
    lost_writes,
    quarantine_of,
    values_of,
)

from emfix import quarantine as q
from emfix.backends import open_database
from emfix.guarded import GuardedChange, Rewrite, Safeguards, ValueRewrites
from emfix.values import portable


def repair_args(address, tmp_path, *extra, batch="1000"):
    return ["repair", url_of(address), "--yes", "--json", "--batch-size", batch, "--quarantine-dir",
            str(tmp_path / "q"), "--snapshot-dir", str(tmp_path / "snaps"), *extra]


def repaired(address, tmp_path, *extra, batch="1000", expect=(0, 1)):
    result = run_cli(*repair_args(address, tmp_path, *extra, batch=batch))
    assert result.returncode in expect and "Traceback" not in result.stderr, (result.returncode, result.stderr)
    return json.loads(result.stdout)


def other_database(address, tmp_path, request, name):
    databases = request.getfixturevalue("mysql_databases") if not address.is_sqlite else None
    return copy_database(address, tmp_path, databases, name)


# -- the repair itself ------------------------------------------------------------------------------------

def test_repair_turns_the_damaged_demo_into_a_clean_validate(address, tmp_path):
    make_demo(address)
    assert run_cli("validate", url_of(address)).returncode == 1
    done = repaired(address, tmp_path, "--reset-unfixable", expect=(0,))
    assert done["clean"] and done["remaining"] == []
    assert done["after"]["status"] == "PASS" and done["before"]["status"] == "FAIL"
    assert all(row["after"] == {"violations": 0, "orphaned_through_parent": 0, "json_issues": 0}
               for row in done["per_table"])
    values = done["plan"]["values"]
    assert done["removed"] and done["repaired"] == values["to_repair"] == 9
    assert done["reset"] == values["unfixable"] >= 1  # MariaDB holds no text that is not UTF-8: one fewer
    checked = run_cli("validate", url_of(address), "--json")
    assert checked.returncode == 0, checked.stdout[-2000:]
    # One quarantine holds both: the removed rows and the rewritten values.
    con = sqlite3.connect(done["quarantine"])
    names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    meta = q.read_meta(con)
    con.close()
    assert {"TRIAL_RUN", "EPOCH", "_emfix_values_METRIC"} <= names
    assert meta["command"] == "repair" and meta["status"] == "done"
    assert len([f for f in os.listdir(str(tmp_path / "q")) if f.endswith(".quarantine.db")]) == 1
    assert len([f for f in os.listdir(str(tmp_path / "snaps")) if f.endswith(".json")]) <= 1


def test_what_cannot_be_repaired_is_left_said_and_exits_1(address, tmp_path):
    make_demo(address)
    result = run_cli(*repair_args(address, tmp_path))
    assert result.returncode == 1, result.stderr
    done = json.loads(result.stdout)
    unfixable = done["plan"]["values"]["unfixable"]
    assert done["after"]["json_metric_issues"] == unfixable >= 1 and done["after"]["foreign_key_violations"] == 0
    assert len(done["remaining"]) == 1 and "cannot be repaired without guessing" in done["remaining"][0]
    text = run_cli("repair", url_of(address), "--yes", "--quarantine-dir", str(tmp_path / "q"), "--no-snapshot")
    assert text.returncode == 1 and "nothing to repair" in text.stdout and "--reset-unfixable" in text.stdout


def test_the_before_figures_are_what_validate_finds(address, tmp_path):
    make_demo(address)
    report = json.loads(run_cli("validate", url_of(address), "--json").stdout)
    plan = repaired(address, tmp_path, "--dry-run", expect=(0,))
    before = plan["before"]
    assert before["foreign_key_violations"] == report["summary"]["total_foreign_key_violations"]
    assert before["rows_orphaned_through_parent"] == report["summary"]["rows_orphaned_through_parent"]
    assert before["json_metric_issues"] == report["summary"]["total_json_metric_issues"]
    for table, figures in report["tables"].items():
        mine = before["tables"].get(table, {"violations": 0, "orphaned_through_parent": 0})
        assert (mine["violations"], mine["orphaned_through_parent"]) == (
            figures["violating_rows"], figures["orphaned_through_parent"]), table
    assert plan["plan"]["values"]["to_repair"] == report["summary"]["fixable_json_issues"]


@pytest.mark.parametrize("options", [[], ["--reset-unfixable"], ["--recreate-parents"]])
def test_repair_ends_with_the_same_rows_as_the_cookbook_steps_one_after_the_other(address, tmp_path, request,
                                                                                  options):
    make_demo(address)
    steps = other_database(address, tmp_path, request, "steps")
    repaired(address, tmp_path, *options)
    cleanup = ["--recreate-parents"] if "--recreate-parents" in options else []
    fix = ["--reset-unfixable"] if "--reset-unfixable" in options else []
    common = ["--yes", "--no-snapshot", "--quarantine-dir", str(tmp_path / "steps-q")]
    assert run_cli("cleanup-orphans", url_of(steps), *common, *cleanup).returncode in (0, 1)
    assert run_cli("fix-json", url_of(steps), *common, *fix).returncode in (0, 1)
    assert digest(address) == digest(steps)


@pytest.mark.parametrize("options", [[], ["--reset-unfixable", "--recreate-parents"]])
def test_undo_of_a_repair_from_another_folder_returns_every_table_bit_for_bit(address, tmp_path, options):
    make_demo(address)
    original = digest(address)
    done = repaired(address, tmp_path, *options)
    assert digest(address) != original
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    undone = run_cli("undo", done["quarantine"], "--json", cwd=str(elsewhere))
    assert undone.returncode == 0, undone.stderr
    assert digest(address) == original
    again = run_cli("undo", done["quarantine"])
    assert again.returncode == 0, again.stderr
    assert digest(address) == original


def test_a_dry_run_changes_nothing_and_the_report_file_holds_the_same_figures(address, tmp_path):
    make_demo(address)
    original = digest(address)
    report = tmp_path / "repair.json"
    result = run_cli(*repair_args(address, tmp_path, "--dry-run", "-o", str(report)))
    assert result.returncode == 0, result.stderr
    assert digest(address) == original
    shown, written = json.loads(result.stdout), json.loads(report.read_text())
    for data in (shown, written):
        data.pop("seconds")
    assert shown == written and shown["dry_run"] and shown["after"] is None
    assert shown["plan"]["rows_to_remove"] == 177 and shown["plan"]["values"]["unfixable"] >= 1
    assert not os.path.exists(str(tmp_path / "q")) or os.listdir(str(tmp_path / "q")) == []


def test_without_yes_and_without_a_terminal_nothing_is_changed(sqlite_address, tmp_path):
    make_demo(sqlite_address)
    original = digest(sqlite_address)
    result = run_cli("repair", sqlite_address.path, "--quarantine-dir", str(tmp_path / "q"))
    assert result.returncode == 2 and "not a terminal" in result.stderr, result.stderr
    assert digest(sqlite_address) == original


def test_a_damaged_file_is_exit_4_and_left_as_it_is(tmp_path, sqlite_address):
    make_demo(sqlite_address)
    with open(sqlite_address.path, "r+b") as handle:
        handle.truncate(os.path.getsize(sqlite_address.path) - 1024)
    before = open(sqlite_address.path, "rb").read()
    result = run_cli("repair", sqlite_address.path, "--yes", "--no-snapshot")
    assert result.returncode == 4 and "is damaged" in result.stderr and "Traceback" not in result.stderr
    assert open(sqlite_address.path, "rb").read() == before


# -- beside a writer, killed, twice ------------------------------------------------------------------------

class Writers:
    """Two writers one after the other (one beside the repair, one beside its undo), as one log."""

    def __init__(self, *writers):
        self.writers = writers

    def last_values(self):
        last = {}
        for writer in self.writers:
            last.update(writer.last_values())
        return last


def beside(address, tmp_path, name, *args, **kwargs):
    """A writer in a folder of its own (its log and stop file), so a second one can follow it."""
    folder = tmp_path / name
    folder.mkdir()
    return Writer(address, folder, *args, **kwargs)


# The writer is stopped before its writes are compared with the database: read while it writes, a
# value it writes after the read would look lost.

def test_a_repair_and_its_undo_lose_no_write_of_a_concurrent_writer(address, tmp_path):
    ids = damaged_metrics(address)
    original = values_of(address, "METRIC", "per_label_val")
    others = {t: rows for t, rows in digest(address).items() if t != "METRIC"}
    during = beside(address, tmp_path, "during", "METRIC", "per_label_val", ids, inserts=True, seed=11)
    try:
        done = repaired(address, tmp_path, batch="2")
    finally:
        during.stop()
    assert done["removed"] and done["quarantine"], done
    assert len(during.writes()) > 0, "the writer made no write while the repair ran"
    assert lost_writes(address, during) == []
    after = beside(address, tmp_path, "undo", "METRIC", "per_label_val", ids, inserts=True, seed=12)
    try:
        undone = run_cli("undo", done["quarantine"], "--json")
    finally:
        after.stop()
    assert undone.returncode in (0, 1) and "Traceback" not in undone.stderr, undone.stderr
    both = Writers(during, after)
    assert lost_writes(address, both) == []
    touched = set(both.last_values())
    now = values_of(address, "METRIC", "per_label_val")
    assert {k: v for k, v in now.items() if k not in touched} == {k: v for k, v in original.items() if k not in touched}
    assert {t: rows for t, rows in digest(address).items() if t != "METRIC"} == others


def test_a_repair_leaves_alone_the_runs_a_concurrent_writer_edits_or_re_parents(address, tmp_path):
    make_demo(address)
    runs = doomed_runs(address, tmp_path)
    with open_database(address) as db:
        live_trials = [str(r[0]) for r in db.query("SELECT id FROM TRIAL")]
    parents = ["999991", "999992", "999993", "999994", "999995", "999996", "999997"] + live_trials[:1]
    during = beside(address, tmp_path, "during", "TRIAL_RUN", "trial_id", runs, values=parents, seed=5)
    try:
        result = run_cli("repair", url_of(address), "--yes", "--json", "--batch-size", "1", "--no-snapshot",
                         "--quarantine-dir", str(tmp_path / "q"))
    finally:
        during.stop()
    assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr
    quarantine = quarantine_of(result.stdout)
    kept = kept_trial_ids(quarantine)
    assert lost_writes(address, during, "TRIAL_RUN", "trial_id", kept) == []
    after = beside(address, tmp_path, "undo", "TRIAL_RUN", "trial_id", runs, values=parents, seed=6)
    try:
        undone = run_cli("undo", quarantine, "--json")
    finally:
        after.stop()
    assert undone.returncode in (0, 1) and "Traceback" not in undone.stderr, undone.stderr
    assert lost_writes(address, Writers(during, after), "TRIAL_RUN", "trial_id") == []


# With --batch-size 2: the orphans staged, then kept (kept:1), a delete batch written (written:3), all
# rows gone and no value yet (between:1), a values batch kept but not written (kept:3), one written and
# the next kept (kept:4); the last is finished by --resume instead of the same command.
KILLS = ["staged:1", "kept:1", "written:3", "between:1", "kept:3", "kept:4", "resume kept:5"]


@pytest.mark.parametrize("kill_at", KILLS)
def test_a_kill_at_each_point_then_a_rerun_ends_where_one_run_ends(address, tmp_path, request, kill_at):
    damaged_metrics(address)
    reference = other_database(address, tmp_path, request, "reference")
    original = digest(address)
    resume = kill_at.startswith("resume ")
    kill_at = kill_at.split()[-1]
    killed = run_cli(*repair_args(address, tmp_path, "--reset-unfixable", batch="2"),
                     env={"EMFIX_TEST_KILL_AT": kill_at})
    assert killed.returncode == -9, (killed.returncode, killed.stderr)
    # --resume takes the options the repair was started with; a plain rerun is the same command again.
    rerun = run_cli(*repair_args(address, tmp_path, *(["--resume"] if resume else ["--reset-unfixable"]), batch="2"))
    assert rerun.returncode == 0 and "Traceback" not in rerun.stderr, (rerun.returncode, rerun.stderr)
    (tmp_path / "ref").mkdir()
    once = run_cli(*repair_args(reference, tmp_path / "ref", "--reset-unfixable", batch="2"))
    assert once.returncode == 0, once.stderr
    assert digest(address) == digest(reference)
    quarantine = json.loads(rerun.stdout)["quarantine"]
    assert quarantine and len(os.listdir(str(tmp_path / "q"))) == 1, "one repair, one quarantine"
    undone = run_cli("undo", quarantine)
    assert undone.returncode == 0, undone.stderr
    assert digest(address) == original


def test_a_repair_whose_quarantine_a_running_process_holds_changes_nothing(address, tmp_path):
    """An outside tester: a second repair begun while the first still ran took the first's quarantine for an
    interrupted one, resumed into it, and took out of it rows the first had removed (an undo then exited 0 with rows
    missing). A run holds its quarantine for itself while it runs; a second run, and an undo, change nothing."""
    damaged_metrics(address)
    killed = run_cli(*repair_args(address, tmp_path, batch="2"), env={"EMFIX_TEST_KILL_AT": "kept:2"})
    assert killed.returncode == -9
    (unfinished,) = [str(p) for p in (tmp_path / "q").iterdir()]
    before = digest(address)
    held = q.hold(unfinished, "a test standing for a repair still running")  # as that run would hold it
    try:
        second = run_cli(*repair_args(address, tmp_path, batch="2"))
        assert second.returncode == 3 and "is working with the quarantine" in second.stderr, second.stderr
        undone = run_cli("undo", unfinished)
        assert undone.returncode == 3 and "is working with the quarantine" in undone.stderr, undone.stderr
        assert digest(address) == before
    finally:
        q.release(held)
    rerun = run_cli(*repair_args(address, tmp_path, batch="2"))  # the one that was running has ended: finished now
    assert rerun.returncode == 1 and json.loads(rerun.stdout)["resumed"], rerun.stderr


def runs_of_a_missing_trial(address):
    """The demo, and (trial id, its runs, their epochs) of a trial it lacks whose runs have epochs."""
    make_demo(address)
    with open_database(address) as db:
        trial, = db.query("SELECT min(r.trial_id) FROM TRIAL_RUN r WHERE NOT EXISTS (SELECT 1 FROM TRIAL t WHERE "
                          "t.id = r.trial_id) AND EXISTS (SELECT 1 FROM EPOCH e WHERE e.trial_run_id = r.id)")[0]
        runs = db.scalar("SELECT count(*) FROM TRIAL_RUN WHERE trial_id = ?", (trial,))
        epochs = db.scalar("SELECT count(*) FROM EPOCH e JOIN TRIAL_RUN r ON r.id = e.trial_run_id WHERE "
                           "r.trial_id = ?", (trial,))
    assert trial is not None and runs and epochs
    return trial, runs, epochs


def test_an_orphan_whose_parent_the_application_inserts_meanwhile_is_left_alone_with_the_rows_under_it(
        address, tmp_path, monkeypatch):
    """An outside tester: while a repair ran, the application inserted the missing trial of some runs; the repair
    went on and removed the runs and everything under them, though they were orphans no more. Before each table's
    deletes the orphans are checked again: a row stays doomed only while its parent is still missing (or still
    doomed itself); the others are left alone and counted so, and an undo still gives back the original."""
    from emfix import orphans
    from emfix.repair import repair
    trial, runs, epochs = runs_of_a_missing_trial(address)
    original = digest(address)
    kill_point = orphans.kill_point

    def the_application_inserts_the_trial(name):
        if name == "kept":  # every doomed row is in the quarantine, none deleted yet
            with open_database(address) as app:
                app.execute("INSERT INTO TRIAL (id, name, experiment_id, start_time, update_time) VALUES "
                            "(?, 'back again', 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00')", (trial,))
        kill_point(name)

    monkeypatch.setattr(orphans, "kill_point", the_application_inserts_the_trial)
    result = repair(address, quarantine_dir=str(tmp_path / "q"), snapshot_dir=str(tmp_path / "snaps"))
    with open_database(address) as db:
        assert db.scalar("SELECT count(*) FROM TRIAL_RUN WHERE trial_id = ?", (trial,)) == runs
        assert db.scalar("SELECT count(*) FROM EPOCH e JOIN TRIAL_RUN r ON r.id = e.trial_run_id WHERE "
                         "r.trial_id = ?", (trial,)) == epochs
    assert result.rows_left_alone.get("TRIAL_RUN") == runs and result.rows_left_alone.get("EPOCH") == epochs
    monkeypatch.setattr(orphans, "kill_point", kill_point)
    undone = run_cli("undo", result.quarantine)
    assert undone.returncode == 0, undone.stderr
    with open_database(address) as db:  # the application's row (not the repair's to undo), as before it came
        db.foreign_key_checks(False)  # (the links undo put back point at it again)
        db.execute("DELETE FROM TRIAL WHERE id = ?", (trial,))
    assert digest(address) == original


def test_a_parent_the_application_inserts_while_a_table_is_being_deleted_from_saves_that_tables_rest(
        address, tmp_path, monkeypatch):
    """Round 13: the missing trial inserted while the batches of EPOCH were running, some of the trial's epochs
    already deleted: the rest were deleted too (the second look came only before each table). It comes before each
    batch now: the epochs still there when the trial came stay, with the runs; the ones before are in the
    quarantine, and undo gives back the original."""
    from emfix import orphandelete
    from emfix.repair import repair
    trial, runs, epochs = runs_of_a_missing_trial(address)
    original = digest(address)
    kill_point, left = orphandelete.kill_point, []
    count = ("SELECT count(*) FROM EPOCH e JOIN TRIAL_RUN r ON r.id = e.trial_run_id WHERE r.trial_id = %d" % trial)

    def the_application_inserts_the_trial_midway(name):
        if name == "written" and not left:
            with open_database(address) as app:
                now = app.scalar(count)
                if 0 < now < epochs:  # EPOCH's batches have begun on this trial's epochs
                    app.execute("INSERT INTO TRIAL (id, name, experiment_id, start_time, update_time) VALUES "
                                "(?, 'back again', 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00')", (trial,))
                    left.append(now)
        kill_point(name)

    monkeypatch.setattr(orphandelete, "kill_point", the_application_inserts_the_trial_midway)
    result = repair(address, quarantine_dir=str(tmp_path / "q"), snapshot_dir=str(tmp_path / "snaps"), batch_size=2)
    assert left, "the trial came while EPOCH's batches ran"
    with open_database(address) as db:
        assert db.scalar("SELECT count(*) FROM TRIAL_RUN WHERE trial_id = ?", (trial,)) == runs
        assert db.scalar(count) == left[0]
    monkeypatch.setattr(orphandelete, "kill_point", kill_point)
    undone = run_cli("undo", result.quarantine)
    assert undone.returncode == 0, undone.stderr
    with open_database(address) as db:
        db.foreign_key_checks(False)
        db.execute("DELETE FROM TRIAL WHERE id = ?", (trial,))
    assert digest(address) == original


def test_a_parent_the_application_inserts_just_before_a_batch_saves_that_batch(address, tmp_path, monkeypatch):
    """Round 14: the second look came before each batch, so a parent inserted between the look and the batch's
    delete (an application committing all the time makes the look itself that window) lost the batch in flight.
    The look is in the batch's own transaction now."""
    from emfix import orphandelete
    from emfix.repair import repair
    trial, runs, epochs = runs_of_a_missing_trial(address)
    remove, inserted = orphandelete._remove, []

    def the_application_inserts_the_trial_first(db, graph, plan, stage, keys, *rest):
        if plan.table != "EPOCH" or inserted:
            return remove(db, graph, plan, stage, keys, *rest)
        one = "(%s)" % ", ".join("?" * len(plan.identity))
        batch = "(%s) IN (%s)" % (", ".join("e." + i for i in plan.identity), ", ".join([one] * len(keys)))
        with open_database(address) as app:  # a batch holding some of the trial's epochs
            if app.scalar("SELECT count(*) FROM EPOCH e JOIN TRIAL_RUN r ON r.id = e.trial_run_id WHERE r.trial_id = ? "
                          "AND " + batch, (trial,) + tuple(v for k in keys for v in k)):
                app.execute("INSERT INTO TRIAL (id, name, experiment_id, start_time, update_time) VALUES "
                            "(?, 'back again', 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00')", (trial,))
                inserted.append(trial)
        return remove(db, graph, plan, stage, keys, *rest)

    monkeypatch.setattr(orphandelete, "_remove", the_application_inserts_the_trial_first)
    repair(address, quarantine_dir=str(tmp_path / "q"), snapshot_dir=str(tmp_path / "snaps"), batch_size=2)
    assert inserted
    with open_database(address) as db:
        assert db.scalar("SELECT count(*) FROM TRIAL_RUN WHERE trial_id = ?", (trial,)) == runs
        assert db.scalar("SELECT count(*) FROM EPOCH e JOIN TRIAL_RUN r ON r.id = e.trial_run_id WHERE "
                         "r.trial_id = ?", (trial,)) == epochs


def test_an_orphan_the_application_points_at_an_existing_parent_meanwhile_keeps_the_rows_under_it(
        address, tmp_path, monkeypatch):
    """Round 11: the application moved an orphan run under a trial that exists while the repair ran (before any
    delete); the run was left alone (it had changed) but everything under it was removed, as the second look read
    the run's trial from the plan, not from the run. It reads the live row now."""
    from emfix import orphans
    from emfix.repair import repair
    trial, runs, epochs = runs_of_a_missing_trial(address)
    with open_database(address) as db:
        moved = db.scalar("SELECT min(id) FROM TRIAL_RUN WHERE trial_id = ?", (trial,))
        under = db.scalar("SELECT count(*) FROM EPOCH WHERE trial_run_id = ?", (moved,))
    kill_point = orphans.kill_point

    def the_application_moves_the_run(name):
        if name == "kept":
            with open_database(address) as app:
                app.execute("UPDATE TRIAL_RUN SET trial_id = (SELECT min(id) FROM TRIAL) WHERE id = ?", (moved,))
        kill_point(name)

    monkeypatch.setattr(orphans, "kill_point", the_application_moves_the_run)
    result = repair(address, quarantine_dir=str(tmp_path / "q"), snapshot_dir=str(tmp_path / "snaps"))
    with open_database(address) as db:
        assert db.scalar("SELECT count(*) FROM TRIAL_RUN WHERE id = ?", (moved,)) == 1
        assert db.scalar("SELECT count(*) FROM EPOCH WHERE trial_run_id = ?", (moved,)) == under
        assert db.scalar("SELECT count(*) FROM TRIAL_RUN WHERE trial_id = ?", (trial,)) == 0  # the others: removed
    assert result.rows_left_alone.get("EPOCH") == under


def test_a_parent_the_application_inserts_while_the_plan_is_read_is_seen(sqlite_address, tmp_path, monkeypatch):
    """Round 12: SQLite's look again is skipped while no other connection has committed (PRAGMA data_version); that
    was read only after the sweep, which reads in chunks, so a parent inserted during the sweep was never seen and
    its orphans removed with everything under them."""
    from emfix import orphans
    from emfix.repair import repair
    trial, runs, _epochs = runs_of_a_missing_trial(sqlite_address)
    sweep = orphans.sweep_foreign_keys

    def the_application_inserts_the_trial_as_the_sweep_ends(*args, **keywords):
        found = sweep(*args, **keywords)
        with open_database(sqlite_address) as app:
            app.execute("INSERT INTO TRIAL (id, name, experiment_id, start_time, update_time) VALUES "
                        "(?, 'back again', 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00')", (trial,))
        monkeypatch.setattr(orphans, "sweep_foreign_keys", sweep)
        return found

    monkeypatch.setattr(orphans, "sweep_foreign_keys", the_application_inserts_the_trial_as_the_sweep_ends)
    result = repair(sqlite_address, quarantine_dir=str(tmp_path / "q"), snapshot_dir=str(tmp_path / "snaps"))
    with open_database(sqlite_address) as db:
        assert db.scalar("SELECT count(*) FROM TRIAL_RUN WHERE trial_id = ?", (trial,)) == runs
    assert result.rows_left_alone.get("TRIAL_RUN") == runs


@pytest.mark.parametrize("edit, said", [
    ("UPDATE _emfix_meta SET value = '{not json' WHERE key = 'tables'", "'tables' is not JSON"),
    ("DROP TABLE TRIAL_RUN", "lists removed rows of TRIAL_RUN"),
    ("DELETE FROM TRIAL_RUN", "copies in TRIAL_RUN are not the ones"),
    ("ALTER TABLE TRIAL ADD COLUMN extra TEXT", "copies in TRIAL are not the ones"),  # round 13: exit 70 halfway
    # round 13, each put into the database by undo with exit 0: a kept row edited, one invented, a column dropped
    # (rows back with a NULL key), an original metric value edited
    ("UPDATE TRIAL_RUN SET trial_id = trial_id + 1000 WHERE rowid = (SELECT min(rowid) FROM TRIAL_RUN)",
     "copies in TRIAL_RUN are not the ones"),
    ("INSERT INTO TRIAL_RUN SELECT * FROM TRIAL_RUN WHERE rowid = (SELECT min(rowid) FROM TRIAL_RUN)",
     "copies in TRIAL_RUN are not the ones"),
    ("ALTER TABLE TRIAL_RUN DROP COLUMN status", "copies in TRIAL_RUN are not the ones"),
    ("UPDATE _emfix_values_METRIC SET per_label_val = '{}' WHERE rowid = (SELECT min(rowid) FROM "
     "_emfix_values_METRIC)", "copies in _emfix_values_METRIC are not the ones"),
    # round 60: the rows went back, then the values stopped at a column the record named (exit 70)
    ("UPDATE _emfix_meta SET value = replace(value, '\"per_label_val\"', '\"per_label_val`; drop table x\"') "
     "WHERE key = 'values'", "record of kept values of METRIC names columns its copies do not hold"),
])
def test_an_undo_of_an_edited_quarantine_is_damaged_input_and_puts_nothing_back(sqlite_address, tmp_path, edit, said):
    """Outside testers: one meta record of a quarantine edited into text that is not JSON crashed undo (exit 70);
    with one table of removed rows dropped, or emptied, undo put back the rest (epochs and batches without their
    runs) and exited 0. Each is damaged input now, refused before anything is changed."""
    damaged_metrics(sqlite_address)
    quarantine = repaired(sqlite_address, tmp_path)["quarantine"]
    with sqlite3.connect(quarantine) as con:
        con.execute(edit)
    assert_undo_refused(sqlite_address, quarantine, said)


def assert_undo_refused(address, quarantine, said):
    """undo of `quarantine` is damaged input (exit 4) saying `said`, and the database is as it was."""
    before = digest(address)
    undone = run_cli("undo", quarantine)
    assert undone.returncode == 4 and said in undone.stderr and "Traceback" not in undone.stderr, undone.stderr
    assert digest(address) == before


def test_an_undo_of_a_finished_quarantine_without_its_checksums_says_they_go_back_unchecked(sqlite_address, tmp_path):
    """Round 60: with the record of its checksums deleted, an edited quarantine went back without a word."""
    damaged_metrics(sqlite_address)
    quarantine = repaired(sqlite_address, tmp_path)["quarantine"]
    with sqlite3.connect(quarantine) as con:
        con.execute("DELETE FROM _emfix_meta WHERE key = 'digests'")
    undone = run_cli("undo", quarantine)
    assert undone.returncode in (0, 1) and "records no checksum of its copies" in undone.stderr, undone.stderr


def test_an_undo_into_a_table_that_lost_a_column_since_puts_nothing_back(sqlite_address, tmp_path):
    """A column the quarantine kept rows with that the table no longer has: exit 4 before anything goes back (the
    same shape as round 13's hand-added quarantine column, which was exit 70 halfway)."""
    damaged_metrics(sqlite_address)
    quarantine = repaired(sqlite_address, tmp_path)["quarantine"]
    with sqlite3.connect(sqlite_address.path) as con:
        con.execute("ALTER TABLE TRIAL_RUN DROP COLUMN status")
    assert_undo_refused(sqlite_address, quarantine, "hold column(s) status")


def test_an_undo_whose_original_values_the_json_check_refuses_puts_nothing_back(mysql_address, tmp_path):
    """Round 13: MariaDB's CHECK (json_valid(...)) on the metric values, added after the repair (the bad values had
    been written with the check off): undo put the removed rows back, then stopped at the values with exit 4."""
    damaged_metrics(mysql_address)
    quarantine = repaired(mysql_address, tmp_path, "--reset-unfixable")["quarantine"]
    with open_database(mysql_address) as db:
        db.execute("ALTER TABLE METRIC ADD CONSTRAINT emfix_test_json CHECK (json_valid(per_label_val))")
    assert_undo_refused(mysql_address, quarantine, "takes JSON only; nothing was put back")


def test_an_undo_of_an_interrupted_repair_whose_quarantine_lost_a_key_column_changes_nothing(sqlite_address, tmp_path):
    """Round 14: a quarantine table without one of its table's key columns (no digest yet: the repair was killed)
    put its rows back with that key NULL (SQLite) or 0 (MariaDB), exit 0."""
    damaged_metrics(sqlite_address)
    killed = run_cli(*repair_args(sqlite_address, tmp_path, batch="2"), env={"EMFIX_TEST_KILL_AT": "written:3"})
    assert killed.returncode == -9, killed.stderr
    (quarantine,) = [str(p) for p in (tmp_path / "q").iterdir()]
    with sqlite3.connect(quarantine) as con:
        con.execute('DROP INDEX IF EXISTS "_emfix_content_BATCH_METRIC"')
        con.execute("ALTER TABLE BATCH_METRIC DROP COLUMN metric_id")
    assert_undo_refused(sqlite_address, quarantine, "lack its key column(s) metric_id")


def test_a_resumed_repair_keeps_the_snapshot_taken_before_it_began(sqlite_address, tmp_path):
    damaged_metrics(sqlite_address)
    killed = run_cli(*repair_args(sqlite_address, tmp_path, batch="2"), env={"EMFIX_TEST_KILL_AT": "kept:2"})
    assert killed.returncode == -9
    snapshots = sorted(os.listdir(str(tmp_path / "snaps")))
    rerun = run_cli(*repair_args(sqlite_address, tmp_path, "--resume", batch="2"))
    assert rerun.returncode == 1, rerun.stderr
    done = json.loads(rerun.stdout)
    assert done["resumed"] and done["snapshot_id"] and sorted(os.listdir(str(tmp_path / "snaps"))) == snapshots


def test_the_readme_first_line_works_and_works_again(tmp_path):
    for _ in range(2):
        assert run_cli("demo", cwd=str(tmp_path)).returncode == 0
        result = run_cli("repair", "emfix-demo/experiment.db", "--yes", cwd=str(tmp_path))
        assert result.returncode == 1 and "cannot be repaired without guessing" in result.stdout, result.stderr
        assert "undo with: emfix undo" in result.stdout and "Traceback" not in result.stderr


def test_a_repair_resumed_after_its_deletes_counts_the_rows_they_removed(address, tmp_path):
    """Round 17: `repair --resume` after a kill between the deletes and the values said "removed 0 rows", where its
    quarantine held (and undo put back) every row the interrupted run had removed."""
    make_demo(address)
    killed = run_cli(*repair_args(address, tmp_path), env={"EMFIX_TEST_KILL_AT": "between:1"})
    assert killed.returncode == -9, killed.stderr
    rerun = repaired(address, tmp_path, "--resume")
    assert rerun["resumed"] and sum(rerun["removed"].values()) > 0
    undone = run_cli("undo", rerun["quarantine"], "--json")
    assert undone.returncode == 0, undone.stderr
    restored = json.loads(undone.stdout)["restored"]
    assert {t: n for t, n in restored.items() if t in rerun["removed"]} == rerun["removed"]


def test_resume_without_an_interrupted_repair_is_refused(sqlite_address, tmp_path):
    make_demo(sqlite_address)
    result = run_cli(*repair_args(sqlite_address, tmp_path, "--resume"))
    assert result.returncode == 2 and "nothing to resume" in result.stderr


@pytest.mark.parametrize("options", [[], ["--reset-unfixable"]])
def test_a_second_repair_changes_nothing(address, tmp_path, options):
    damaged_metrics(address)
    first = repaired(address, tmp_path, *options)
    after_first = digest(address)
    second = repaired(address, tmp_path, *options, expect=(1,) if not options else (0,))
    assert second["quarantine"] is None and second["removed"] == {} and second["repaired"] == 0
    assert second["plan"]["rows_to_remove"] == 0 and second["plan"]["values"]["to_repair"] == 0
    assert digest(address) == after_first
    assert first["quarantine"] and len(os.listdir(str(tmp_path / "q"))) == 1


# -- undo of a quarantine holding both rows and values -------------------------------------------------------

def test_undo_puts_back_a_value_rewritten_in_a_row_removed_later(address, tmp_path):
    """A value is rewritten, then its row is removed (kept as it was then: with the new value). Undo puts
    the row back first, then its original value, whatever order the repair's parts ran in."""
    make_demo(address)
    with open_database(address) as db, db.transaction():
        db.execute("INSERT INTO METRIC (id, type, total_val, per_label_val) VALUES (900001, 'x', 0.5, ?)",
                   ("{'a': 1}",))
    original = digest(address)
    values = {"table": "METRIC", "column": "per_label_val", "key": "id", "kept_as": "_emfix_values_METRIC"}
    change = GuardedChange(address, "repair", "test", Safeguards(snapshot=False, quarantine_dir=str(tmp_path / "q")))
    change.prepare(values=[values])
    with open_database(address) as db, change:
        rewrites = ValueRewrites(change, "METRIC", "id", "per_label_val", kept_as=values["kept_as"])
        assert rewrites.apply(db, [Rewrite(900001, "{'a': 1}", "text", '{"a": 1}')]) == []
        con = change.open()
        columns = db.columns("METRIC")
        row = db.query("SELECT %s FROM METRIC WHERE id = 900001" % db.exact_columns("METRIC", columns))[0]
        q.ensure_table(con, "METRIC", columns, with_rowid=False)
        con.execute("INSERT INTO METRIC (%s, %s) VALUES (%s, 1)" % (  # kept, and marked removed, as cleanup does
            ", ".join(q.qi(c) for c in columns), q.qi(q.DELETED), ", ".join("?" * len(columns))),
            tuple(portable(v) for v in row))
        with db.transaction():
            db.execute("DELETE FROM METRIC WHERE id = 900001")
        change.finish()
        path = change.quarantine_path
    undone = run_cli("undo", path, "--json")
    assert undone.returncode == 0, undone.stderr
    assert digest(address) == original


def test_undo_finds_a_repair_by_its_id(sqlite_address, tmp_path):
    make_demo(sqlite_address)
    original = digest(sqlite_address)
    done = run_cli("repair", sqlite_address.path, "--yes", "--json", "--no-snapshot")
    quarantine = json.loads(done.stdout)["quarantine"]
    assert os.path.dirname(quarantine) == os.path.join(str(tmp_path), "quarantine")
    name = os.path.basename(quarantine)[:-len(".quarantine.db")]
    undone = run_cli("undo", name, "-d", sqlite_address.path)
    assert undone.returncode == 0, undone.stderr
    assert digest(sqlite_address) == original
    missing = run_cli("undo", "repair-nothing", "-d", sqlite_address.path)
    assert missing.returncode == 3 and "no quarantine file" in missing.stderr  # missing: 3, as every named thing


@pytest.mark.parametrize("read_only", ["file", "folder"])
def test_an_undo_of_a_quarantine_it_cannot_write_is_exit_3_naming_the_quarantine(sqlite_address, tmp_path, read_only):
    """Round 32: a quarantine undo cannot write (a copy from a backup, another user's) was exit 70 (PermissionError);
    one in a folder undo cannot write was exit 3 blaming the database's folder. Undo keeps its progress in the
    quarantine, so it says which and changes nothing."""
    if os.geteuid() == 0 and not shutil.which("setpriv"):
        pytest.skip("needs setpriv to run the undo as another user")
    make_demo(sqlite_address)
    done = run_cli("repair", sqlite_address.path, "--yes", "--json", "--no-snapshot")
    quarantine = json.loads(done.stdout)["quarantine"]
    repaired_digest = digest(sqlite_address)
    folder = tempfile.mkdtemp(prefix="emfix-test-ro-")  # (tmp_path's folders are the owner's alone)
    try:
        copy = os.path.join(folder, os.path.basename(quarantine))
        shutil.copyfile(quarantine, copy)
        os.chmod(copy, 0o444 if read_only == "file" else 0o666)
        os.chmod(folder, 0o555 if read_only == "folder" else 0o755)
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
        if read_only == "file" and prefix:
            os.chmod(folder, 0o777)
        result = subprocess.run(prefix + [sys.executable, "-m", "emfix", "undo", copy, "-d", sqlite_address.path,
                                          "--yes"], capture_output=True, text=True, timeout=120, cwd=ROOT,
                                env=dict(os.environ, PYTHONPATH=ROOT, XDG_STATE_HOME=folder))
        assert result.returncode == 3, result.stderr
        assert "the quarantine %s cannot be written" % copy in result.stderr and "Traceback" not in result.stderr
        assert ("its folder" in result.stderr) == (read_only == "folder")
        assert len(result.stderr.strip().splitlines()) == 2
        assert digest(sqlite_address) == repaired_digest
    finally:
        os.chmod(folder, 0o700)
        shutil.rmtree(folder)


@pytest.mark.parametrize("kill_at", ["undone:2", "undone:26"])  # in the rows' batches; the values' batch
def test_an_undo_of_a_repair_killed_midway_is_finished_by_running_it_again(address, tmp_path, kill_at):
    make_demo(address)
    original = digest(address)
    done = repaired(address, tmp_path)
    killed = run_cli("undo", done["quarantine"], "--batch-size", "10", env={"EMFIX_TEST_KILL_AT": kill_at})
    assert killed.returncode == -9, (killed.returncode, killed.stderr)
    again = run_cli("undo", done["quarantine"])
    assert again.returncode == 0, again.stderr
    assert digest(address) == original


def test_undo_names_a_value_written_since_the_repair_instead_of_overwriting_it(address, tmp_path):
    make_demo(address)
    done = repaired(address, tmp_path)
    with open_database(address) as db, db.transaction():
        db.execute("UPDATE METRIC SET per_label_val = '{\"later\": 1}' WHERE id = 1")
    undone = run_cli("undo", done["quarantine"], "--json")
    assert undone.returncode == 1 and "another process changed them" in undone.stderr
    assert values_of(address, "METRIC", "per_label_val")[1] == '{"later": 1}'
    conflicts = json.loads(undone.stdout)["conflicts"]
    assert [c["key"] for c in conflicts] == [1]


def test_values_failing_after_the_repair_beyond_the_unrepairable_ones_are_not_called_unrepairable():
    """An outside tester: malformed values the application wrote while a repair ran (fixable ones) were counted
    with the plan's unrepairable values, "cannot be repaired without guessing"."""
    from types import SimpleNamespace

    from emfix.repair import ValuePlan, remaining
    result = SimpleNamespace(after={"json_metric_issues": 5, "foreign_key_violations": 0,
                                    "rows_orphaned_through_parent": 0},
                             plan=SimpleNamespace(values=ValuePlan("METRIC.per_label_val", unfixable=2)),
                             rows_left_alone={}, values_left_alone=0)
    said = remaining(result)
    assert said[0].startswith("2 metric values cannot be repaired") and said[1].startswith("3 metric values still fail")


def test_an_undo_forced_into_a_copy_leaves_the_quarantine_whole_for_its_own_database(address, tmp_path, request):
    """An outside tester: `undo Q -d COPY --force` into an unrepaired copy (the rows there already) marked every
    row put back and the quarantine undone; the undo into the database the rows came from then put none back."""
    damaged_metrics(address)
    original = digest(address)
    copy = other_database(address, tmp_path, request, "copy")
    quarantine = repaired(address, tmp_path)["quarantine"]
    forced = run_cli("undo", quarantine, "-d", url_of(copy), "--force")
    assert forced.returncode == 0, forced.stderr
    undone = run_cli("undo", quarantine)
    assert undone.returncode == 0, undone.stderr
    assert digest(address) == original


def test_an_undo_asked_to_stop_stops_between_batches_and_the_same_undo_finishes_it(address, tmp_path):
    """An outside tester: a SIGTERM to undo was exit 143 ("terminated"), though it has batches to stop between, as
    repair has (exit 5). Asked to stop (first Ctrl-C or SIGTERM), undo stops after a committed batch; run again,
    it puts back the rest."""
    from emfix.errors import OperationInterrupted
    from emfix.undo import undo
    damaged_metrics(address)
    original = digest(address)
    quarantine = repaired(address, tmp_path)["quarantine"]
    asked = iter([False, False])  # two batches, then asked to stop
    with pytest.raises(OperationInterrupted) as stopped:
        undo(quarantine, batch_size=2, interrupted=lambda: next(asked, True))
    assert stopped.value.exit_code == 5 and "run the same undo again" in stopped.value.hint
    assert digest(address) != original
    again = run_cli("undo", quarantine)
    assert again.returncode == 0, again.stderr
    assert digest(address) == original


def test_a_rerun_with_other_options_than_the_interrupted_repair_changes_nothing(sqlite_address, tmp_path):
    """An outside tester: a repair begun with --recreate-parents and killed was finished by `repair --yes
    --reset-unfixable`, "(resumed)": parents recreated by the first, values reset by the second, and the quarantine
    then said recreate_parents: false. A rerun with other options is refused; --resume (its own options) finishes it."""
    damaged_metrics(sqlite_address)
    killed = run_cli(*repair_args(sqlite_address, tmp_path, "--recreate-parents", batch="2"),
                     env={"EMFIX_TEST_KILL_AT": "kept:2"})
    assert killed.returncode == -9
    before = digest(sqlite_address)
    other = run_cli(*repair_args(sqlite_address, tmp_path, "--reset-unfixable", batch="2"))
    assert other.returncode == 2 and "begun with --recreate-parents has not finished" in other.stderr, other.stderr
    assert "--resume" in other.stderr and digest(sqlite_address) == before
    resumed = run_cli(*repair_args(sqlite_address, tmp_path, "--resume", batch="2"))
    assert resumed.returncode in (0, 1) and json.loads(resumed.stdout)["resumed"], resumed.stderr


def test_on_sqlite_the_metric_scans_read_a_window_of_ids_at_a_time_and_find_the_same(sqlite_address, tmp_path,
                                                                                      monkeypatch):
    """Round 19: beside an application, repair's JSON scans of the 10M demo held the read lock 1.3 s each (one
    statement looking for rare rows reads the whole table; in rollback-journal mode every commit waits). They read
    a window of METRIC ids at a time now: with windows of 7 ids, the same plan, the same repair, the same check."""
    from emfix import guarded
    from emfix.repair import repair
    make_demo(sqlite_address)
    whole = repair(sqlite_address, dry_run=True)
    windows = []
    real = guarded.rowid_windows
    monkeypatch.setattr(guarded, "SCAN_WINDOW", 7)
    monkeypatch.setattr("emfix.repair.rowid_windows", lambda *a: windows.append(a[1]) or real(*a))
    monkeypatch.setattr("emfix.jsonpages.rowid_windows", lambda *a: windows.append(a[1]) or real(*a))
    windowed = repair(sqlite_address, dry_run=True)
    assert windowed.plan == whole.plan and windowed.before == whole.before
    done = repair(sqlite_address, reset_unfixable=True, snapshot=False, quarantine_dir=str(tmp_path / "q"))
    assert done.after["status"] == "PASS" and done.repaired == whole.plan.values.to_repair
    assert windows.count("METRIC") >= 3  # the plan's scan, the repair's, the check's
