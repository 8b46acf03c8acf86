"""cleanup-orphans and undo: exact cascades on both backends, nothing lost, killed and rerun."""

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from conftest import ROOT, hold_write_lock, interrupt_when, make_demo, run_cli, url_of

from emfix.address import DatabaseAddress
from emfix.backends import open_database
from emfix.cleanup import cleanup_orphans
from emfix.demo import Shape
from emfix.errors import DamagedInputError
from emfix.undo import undo
from emfix.validate import validate


def dump_all(address):
    with open_database(address, readonly=True) as db:
        return {t: sorted(db.query("SELECT * FROM %s" % db.quote(t)), key=repr) for t in db.tables()}


def removed_between(before, after):
    out = {}
    for table, rows in before.items():
        gone = len(rows) - len(after.get(table, []))
        if gone:
            out[table] = gone
    return out


def quarantine_rows(path):
    con = sqlite3.connect(path)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                           "AND name NOT LIKE '\\_emfix\\_%' ESCAPE '\\'")]
        return {n: con.execute('SELECT count(*) FROM "%s"' % n).fetchone()[0] for n in names}
    finally:
        con.close()


def test_cleanup_removes_exact_cascade_and_nothing_else(demo_address, tmp_path):
    report = validate(demo_address)
    expected = {t: c.violating_rows + c.cascade_rows for t, c in report.tables.items()
                if c.violating_rows + c.cascade_rows}
    before = dump_all(demo_address)
    dry = cleanup_orphans(demo_address, dry_run=True, quarantine_dir=str(tmp_path / "q"))
    assert dry.plan.remove == {t: expected[t] for t in dry.plan.remove} and set(dry.plan.remove) == set(expected)
    assert dump_all(demo_address) == before  # dry run changes nothing
    result = cleanup_orphans(demo_address, batch_size=7, quarantine_dir=str(tmp_path / "q"),
                             snapshot_dir=str(tmp_path / "s"))
    after = dump_all(demo_address)
    assert result.removed == dry.plan.remove == removed_between(before, after)
    for table, rows in after.items():  # every row that stays is untouched
        assert set(map(repr, rows)) <= set(map(repr, before[table]))
    assert result.final["total_foreign_key_violations"] == 0
    assert result.final["rows_orphaned_through_parent"] == 0
    assert quarantine_rows(result.quarantine) == result.removed
    assert result.snapshot_id and result.batches >= len(result.removed)


def test_cleanup_leaves_pragma_foreign_key_check_empty(tmp_path):
    address = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(address)
    cleanup_orphans(address, snapshot=False, quarantine_dir=str(tmp_path / "q"))
    con = sqlite3.connect(address.path)
    assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    con.close()


def missing_parents(address):
    """Every row whose key names a parent that is not there: (table, key columns, values)."""
    report = validate(address, limit=100000)
    return {(v.table, tuple(v.columns), tuple(map(repr, v.values))) for r in report.relations for v in r.examples}


def test_rows_left_in_place_keep_the_doomed_rows_they_point_at(demo_address, tmp_path):
    """--tables leaves EPOCH's orphans where they are: the trial runs they hang under stay too (they were removed,
    and the epochs became new violations; on MySQL InnoDB refused the delete and emfix blamed another process)."""
    before_violations, before = missing_parents(demo_address), dump_all(demo_address)
    tables = ["TRIAL", "TRIAL_RUN", "EPOCH", "RESULTS"]
    dry = cleanup_orphans(demo_address, dry_run=True, tables=tables, quarantine_dir=str(tmp_path / "q"))
    assert dry.plan.held and set(dry.plan.held) <= set(tables) and "BATCH" in dry.plan.left_behind
    result = cleanup_orphans(demo_address, tables=tables, snapshot=False, quarantine_dir=str(tmp_path / "q"))
    assert result.removed == dry.plan.remove == removed_between(before, dump_all(demo_address))
    assert not result.left_alone and result.plan.held == dry.plan.held
    assert missing_parents(demo_address) <= before_violations  # no row lost its parent to the cleanup


def drop_primary_keys(address, tables):
    """Each table's primary key becomes a plain index (its foreign keys need one)."""
    with open_database(address) as db:
        for table in tables:
            columns = [r[4] for r in db.query("SHOW INDEX FROM %s WHERE Key_name = 'PRIMARY'" % db.quote(table))]
            db.execute("ALTER TABLE %s ADD INDEX emfix_test_key (%s), DROP PRIMARY KEY" % (
                db.quote(table), db.quote_columns(columns)))


def test_mysql_tables_without_a_key_keep_what_their_orphans_point_at(mysql_address, tmp_path):
    """Round 22: rows of a MySQL table without a primary key are not removed, but the plan doomed the rows they
    point at, which InnoDB then refused to delete: the dry run said 3,672, the run removed 360 and blamed "another
    process" for the rest (exit 1). The plan now keeps them and says why; what it promises is what it removes."""
    make_demo(mysql_address)
    drop_primary_keys(mysql_address, ["BATCH_METRIC", "BATCH_ARTIFACT"])
    once = cleanup_orphans(mysql_address, dry_run=True, quarantine_dir=str(tmp_path / "q")).plan.unkeyed
    with open_database(mysql_address) as db:  # round 50: identical orphans were counted once ("3 stay"; 6 did)
        db.execute("SET SESSION foreign_key_checks = 0")
        db.execute("INSERT INTO BATCH_ARTIFACT SELECT * FROM BATCH_ARTIFACT")
    before_violations, before = missing_parents(mysql_address), dump_all(mysql_address)
    dry = cleanup_orphans(mysql_address, dry_run=True, quarantine_dir=str(tmp_path / "q"))
    assert set(dry.plan.unkeyed) == {"BATCH_METRIC", "BATCH_ARTIFACT"} and "BATCH" in dry.plan.held
    assert dry.plan.unkeyed["BATCH_ARTIFACT"] == 2 * once["BATCH_ARTIFACT"] > 0
    assert not set(dry.plan.unkeyed) & set(dry.plan.remove) and "EPOCH_METRIC" in dry.plan.remove
    result = run_cli("cleanup-orphans", url_of(mysql_address), "--yes", "--no-snapshot", "--quarantine-dir",
                     str(tmp_path / "q"))
    assert result.returncode == 1, result.stderr  # orphans remain, said so
    assert "left alone" not in result.stdout and "without a primary key (BATCH_METRIC" in result.stdout
    assert "kept: " in result.stdout and "Traceback" not in result.stderr
    after = dump_all(mysql_address)
    assert removed_between(before, after) == dry.plan.remove
    assert missing_parents(mysql_address) <= before_violations


@pytest.mark.parametrize("key_dropped_since", [False, True])
def test_mysql_numbers_past_sqlites_integer_are_quarantined_and_come_back_exactly(mysql_address, tmp_path,
                                                                                  key_dropped_since):
    """Round 29: a doomed row holding a BIGINT UNSIGNED past 2^63 or a BIT(64) with its top bit set stopped
    cleanup-orphans (and repair) with exit 70: the quarantine is a SQLite file, whose INTEGER holds 64 signed bits.
    It keeps such a value as its digits now, and undo binds them as the number again (also into the table without
    its primary key, where each copy is counted in the quarantine as it keeps it)."""
    make_demo(mysql_address)
    with open_database(mysql_address) as db:
        db.execute("ALTER TABLE EPOCH_METRIC ADD COLUMN xu BIGINT UNSIGNED, ADD COLUMN xbit BIT(64)")
        db.execute("UPDATE EPOCH_METRIC SET xu = 18446744073709551615 - metric_id, xbit = 18446744073709551600 + "
                   "(metric_id MOD 10)")
    before = dump_all(mysql_address)
    result = run_cli("cleanup-orphans", url_of(mysql_address), "--yes", "--no-snapshot", "--tables", "EPOCH_METRIC",
                     "--quarantine-dir", str(tmp_path / "q"))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr  # (other tables' orphans stay)
    after = dump_all(mysql_address)
    assert removed_between(before, after) == {"EPOCH_METRIC": len(before["EPOCH_METRIC"]) - len(after["EPOCH_METRIC"])}
    assert len(after["EPOCH_METRIC"]) < len(before["EPOCH_METRIC"])
    quarantine = [str(tmp_path / "q" / f) for f in os.listdir(str(tmp_path / "q")) if f.endswith(".quarantine.db")]
    if key_dropped_since:
        drop_primary_keys(mysql_address, ["EPOCH_METRIC"])
    back = run_cli("undo", quarantine[0], "-d", url_of(mysql_address), "--yes")
    assert back.returncode == 0, back.stderr
    assert dump_all(mysql_address) == before


@pytest.mark.parametrize("note_ids", [(70000, 70001), (2 ** 63 + 7, 2 ** 64 - 1)])
def test_mysql_children_of_rows_keyed_by_bit64_are_in_the_cascade(mysql_address, tmp_path, note_ids):
    """Round 32: MIN() of a BIT(64) key comes back as digits the driver reads as the value's bytes: the doomed keys'
    range was wrong (70000 read as 237031665712), so validate left the rows under doomed NOTEs out of the cascade
    and cleanup removed nothing, calling its own rows changed by another process; past 2^32 all three were exit 70."""
    make_demo(mysql_address, shape=Shape(experiments=1, trials=1, runs=1, epochs=1, batches=1), faults=False)
    with open_database(mysql_address) as db:
        db.execute("CREATE TABLE NOTE (id BIT(64) PRIMARY KEY, trial_id INT, FOREIGN KEY (trial_id) REFERENCES "
                   "TRIAL(id))")
        db.execute("CREATE TABLE NOTE_TAG (note_id BIT(64), tag VARCHAR(10), PRIMARY KEY (note_id, tag), "
                   "FOREIGN KEY (note_id) REFERENCES NOTE(id))")
        with db.transaction():
            db.execute("SET foreign_key_checks = 0")
            db.execute("INSERT INTO TRIAL (id, name, experiment_id, start_time, update_time) VALUES (900, 'lost', "
                       "999, '2026-01-01 00:00:00', '2026-01-01 00:00:00')")
            for note, tag in zip(note_ids, "ab"):
                db.execute("INSERT INTO NOTE (id, trial_id) VALUES (?, 900)", (note,))
                db.execute("INSERT INTO NOTE_TAG (note_id, tag) VALUES (?, ?)", (note, tag))
            db.execute("SET foreign_key_checks = 1")
    before = dump_all(mysql_address)
    report = validate(mysql_address)
    assert {t: c.cascade_rows for t, c in report.tables.items() if c.cascade_rows} == {"NOTE": 2, "NOTE_TAG": 2}
    result = run_cli("cleanup-orphans", url_of(mysql_address), "--yes", "--no-snapshot", "--quarantine-dir",
                     str(tmp_path / "q"), "--json")
    assert result.returncode == 0, result.stderr
    after = dump_all(mysql_address)
    assert removed_between(before, after) == {"TRIAL": 1, "NOTE": 2, "NOTE_TAG": 2}
    quarantine = json.loads(result.stdout)["quarantine"]
    assert run_cli("undo", quarantine, "--yes").returncode == 0
    assert dump_all(mysql_address) == before


def test_mysql_metrics_without_a_key_are_not_removed_as_unreferenced(mysql_address, tmp_path):
    """Round 23: with METRIC's primary key dropped and an id held by two rows, --include-unreferenced removed the
    unreferenced metrics by id: each such row was kept twice, one of two rows under an id was lost and undo put
    back the other twice. They stay now, said so, as the orphans of any table without a key."""
    make_demo(mysql_address)
    with open_database(mysql_address) as db:
        db.execute("ALTER TABLE METRIC ADD INDEX emfix_test_key (id), DROP PRIMARY KEY")
        unreferenced = db.scalar("SELECT min(id) FROM METRIC m WHERE NOT EXISTS (SELECT 1 FROM EPOCH_METRIC x WHERE "
                                 "x.metric_id = m.id) AND NOT EXISTS (SELECT 1 FROM BATCH_METRIC x WHERE x.metric_id = "
                                 "m.id) AND NOT EXISTS (SELECT 1 FROM RESULTS_METRIC x WHERE x.metric_id = m.id)")
        db.execute("INSERT INTO METRIC (id, type, total_val, per_label_val) VALUES (?, 'twin', 1.5, NULL)",
                   (unreferenced,))
    before = dump_all(mysql_address)
    result = cleanup_orphans(mysql_address, include_unreferenced=True, snapshot=False,
                             quarantine_dir=str(tmp_path / "q"))
    assert "METRIC" not in result.removed and result.plan.unkeyed.get("METRIC", 0) >= 2
    assert dump_all(mysql_address)["METRIC"] == before["METRIC"]
    undo(result.quarantine, mysql_address)
    assert dump_all(mysql_address) == before


@pytest.mark.skipif(not hasattr(sqlite3.Connection, "setlimit"), reason="Connection.setlimit: Python 3.11+")
def test_cleanup_on_an_sqlite_that_binds_at_most_999_values_a_statement(tmp_path, monkeypatch):
    """SQLite before 3.32 (Ubuntu 20.04's 3.31, RHEL 8's 3.26) binds at most 999 values a statement: once the
    batches grew past that, cleanup stopped at "too many SQL variables" (exit 70). Its batches stay under it."""
    address = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(address, shape=Shape.full(0.1))
    before = dump_all(address)
    connect = sqlite3.connect

    def as_before_3_32(*args, **kwargs):
        con = connect(*args, **kwargs)
        con.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
        return con
    monkeypatch.setattr(sqlite3, "connect", as_before_3_32)
    result = cleanup_orphans(address, snapshot=False, quarantine_dir=str(tmp_path / "q"), include_unreferenced=True)
    assert max(result.removed.values()) > 999 and result.final["total_foreign_key_violations"] == 0
    undo(result.quarantine, address)
    monkeypatch.setattr(sqlite3, "connect", connect)
    assert dump_all(address) == before


def test_a_change_to_tables_without_transactions_says_so_first(mysql_address, tmp_path):
    """MyISAM tables (the schema's notes name them as a source of orphans): no batch rolls back, no locking read
    locks their rows, so a change is exact only while nothing else writes there; the command says so before it
    changes anything, and the cleanup and its undo are exact."""
    make_demo(mysql_address)
    with open_database(mysql_address) as db:
        db.execute("CREATE TABLE NOTES (id INT PRIMARY KEY, note VARCHAR(20)) ENGINE=MyISAM")
    before = dump_all(mysql_address)
    result = run_cli("cleanup-orphans", url_of(mysql_address), "--yes", "--no-snapshot", "--json", "--quarantine-dir",
                     str(tmp_path / "q"))
    assert result.returncode == 0, result.stderr
    assert "NOTES: no transactions (MyISAM)" in result.stderr
    undone = run_cli("undo", json.loads(result.stdout)["quarantine"], "--yes")
    assert undone.returncode == 0 and "NOTES: no transactions (MyISAM)" in undone.stderr  # undo says so too
    assert dump_all(mysql_address) == before
    exported = run_cli("export", url_of(mysql_address), "-e", "1", "-o", str(tmp_path / "e1.jsonl"))
    assert exported.returncode == 0, exported.stderr
    imported = run_cli("import", url_of(mysql_address), str(tmp_path / "e1.jsonl"))
    assert imported.returncode == 0 and "NOTES: no transactions (MyISAM)" in imported.stderr  # and import


def test_a_read_of_tables_without_transactions_says_it_is_one_moment_only_while_nothing_writes(
        mysql_address, sqlite_address, tmp_path):
    """No consistent snapshot covers a MyISAM table: validate, export and migrate out of it say so before they read;
    a migrate into it says its change is exact only while nothing else writes there."""
    make_demo(mysql_address, faults=False)
    with open_database(mysql_address) as db:
        for (name,) in db.query("SELECT constraint_name FROM information_schema.referential_constraints "
                                "WHERE constraint_schema = DATABASE() AND table_name = 'TRIAL_ARTIFACT'"):
            db.execute("ALTER TABLE `TRIAL_ARTIFACT` DROP FOREIGN KEY `%s`" % name)
        db.execute("ALTER TABLE `TRIAL_ARTIFACT` ENGINE=MyISAM")
    reading = "TRIAL_ARTIFACT: no transactions (MyISAM): what emfix reads of it is one moment only while no other"
    checked = run_cli("validate", url_of(mysql_address))
    exported = run_cli("export", url_of(mysql_address), "-e", "1", "-o", str(tmp_path / "e1.jsonl"))
    copied = run_cli("migrate", url_of(mysql_address), str(tmp_path / "copy.db"), "-e", "1", "--init")
    for result in (checked, exported, copied):
        assert result.returncode == 0 and reading in result.stderr, result.stderr
    make_demo(sqlite_address, faults=False)
    into = run_cli("migrate", sqlite_address.path, url_of(mysql_address), "-e", "2")
    assert into.returncode == 0, into.stderr
    assert "TRIAL_ARTIFACT: no transactions (MyISAM): emfix's change to it is exact only while" in into.stderr


def test_relations_to_a_parent_without_transactions_are_checked_though_no_foreign_key_declares_them(mysql_address):
    """An outside tester: METRIC made MyISAM (InnoDB lets no foreign key point at it, so those were dropped) and a
    RESULTS_METRIC row pointing at no metric: validate checked 20 relations, not 23, and cleanup saw no orphan. The
    application's relations a table does not declare are taken as the application defines them."""
    make_demo(mysql_address, faults=False)
    with open_database(mysql_address) as db:
        for (table, name) in db.query("SELECT table_name, constraint_name FROM information_schema.referential_"
                                      "constraints WHERE constraint_schema = DATABASE() AND referenced_table_name = "
                                      "'METRIC'"):
            db.execute("ALTER TABLE %s DROP FOREIGN KEY %s" % (db.quote(table), db.quote(name)))
        db.execute("ALTER TABLE `METRIC` ENGINE=MyISAM")
        db.execute("SET SESSION FOREIGN_KEY_CHECKS = 0")
        db.execute("INSERT INTO `RESULTS_METRIC` SELECT MIN(trial_run_id), 999999 FROM `RESULTS`")
    checked = run_cli("validate", url_of(mysql_address), "--json")
    report = json.loads(checked.stdout)
    broken = [r for r in report["relations"] if r["table"] == "RESULTS_METRIC" and r["parent_table"] == "METRIC"]
    assert broken and broken[0]["violations"] == 1, checked.stdout[:2000]
    planned = run_cli("cleanup-orphans", url_of(mysql_address), "--dry-run", "--json")
    assert json.loads(planned.stdout)["plan"]["remove"].get("RESULTS_METRIC") == 1, planned.stdout[:2000]


def test_undo_restores_the_content_from_before(demo_address, tmp_path):
    before = dump_all(demo_address)
    result = cleanup_orphans(demo_address, snapshot=False, quarantine_dir=str(tmp_path / "q"),
                             include_unreferenced=True, recreate_parents=True)
    assert result.created and "METRIC" in result.removed
    assert dump_all(demo_address) != before
    undo(result.quarantine, demo_address)
    assert dump_all(demo_address) == before
    undo(result.quarantine, demo_address)  # idempotent
    assert dump_all(demo_address) == before



def test_undo_stopped_with_a_statement_open_on_the_quarantine_raises_the_stop_not_a_bug(demo_sqlite, tmp_path,
                                                                                         monkeypatch):
    """Found by an outside tester (2 SIGTERMs in 42): undo's DETACH of the quarantine, in its cleanup, failed
    ("database emfix_q is locked") while a read of it was still open, and that error (exit 70) hid the stop."""
    from emfix import undo as undo_module
    result = cleanup_orphans(demo_sqlite, snapshot=False, quarantine_dir=str(tmp_path / "q"))

    largest = max(result.removed, key=result.removed.get)
    assert result.removed[largest] >= 3  # a read of it still open after its first row

    def stopped_mid_read(db, *args, **kwargs):
        reading = db.connection.execute("SELECT * FROM %s.%s" % (undo_module.ATTACHED, db.quote(largest)))
        reading.fetchone()  # a statement left open on the attached quarantine, as a batch being read is
        stopped_mid_read.open = reading
        raise KeyboardInterrupt

    monkeypatch.setattr(undo_module, "_reinsert", stopped_mid_read)
    with pytest.raises(KeyboardInterrupt):
        undo(result.quarantine, demo_sqlite)


def test_recreate_parents_keeps_old_api_links(demo_address, tmp_path):
    result = cleanup_orphans(demo_address, snapshot=False, quarantine_dir=str(tmp_path / "q"), recreate_parents=True)
    assert result.created == {"RESULTS": 1, "EPOCH": 2}
    plain = validate(demo_address)
    assert plain.total_violations == 0
    with open_database(demo_address, readonly=True) as db:
        q = db.quote
        assert db.scalar("SELECT count(*) FROM %s WHERE %s = ?" % (q("RESULTS_METRIC"), q("results_id")),
                         (14,)) == 2


def test_include_unreferenced_counts_rows_freed_by_the_cleanup(demo_address, tmp_path):
    dry = cleanup_orphans(demo_address, dry_run=True, include_unreferenced=True)
    real = cleanup_orphans(demo_address, snapshot=False, quarantine_dir=str(tmp_path / "q"), include_unreferenced=True)
    assert real.removed == dry.plan.remove
    assert real.removed["METRIC"] > 3  # the 3 never referenced plus those only orphaned links pointed at
    assert [u.count for u in validate(demo_address).unreferenced] == [0, 0]


def test_cli_refuses_without_yes_when_stdin_is_not_a_terminal(demo_address):
    before = dump_all(demo_address)
    result = run_cli("cleanup-orphans", url_of(demo_address))
    assert result.returncode == 2 and "--yes" in result.stderr and "Traceback" not in result.stderr
    assert dump_all(demo_address) == before


def test_cli_cleanup_and_undo(tmp_path):
    address = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(address)
    before = dump_all(address)
    result = run_cli("cleanup-orphans", address.path, "--yes", "--max-lock-ms", "50")
    assert result.returncode == 0, result.stderr
    assert "removed 177 rows" in result.stdout and "0 foreign-key violations" in result.stdout
    qpath = [line.split(": ", 1)[1] for line in result.stdout.splitlines() if line.startswith("removed rows kept")][0]
    assert os.path.dirname(qpath) == str(tmp_path / "quarantine")
    result = run_cli("undo", qpath)
    assert result.returncode == 0, result.stderr
    assert dump_all(address) == before


def make_read_only(path):
    """chmod for ordinary users; root writes anyway, so there the file is made immutable."""
    os.chmod(path, 0o444)
    if os.access(path, os.W_OK):
        subprocess.run(["chattr", "+i", path], capture_output=True)
    return not os.access(path, os.W_OK)


def test_read_only_database_is_refused_before_anything(tmp_path):
    address = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(address)
    before = dump_all(address)
    try:
        if not make_read_only(address.path):
            pytest.skip("cannot make a file read-only here")
        result = run_cli("cleanup-orphans", address.path, "--yes")
        assert result.returncode == 3 and "permission" in result.stderr and "Traceback" not in result.stderr
        assert not (tmp_path / "quarantine").exists() and not (tmp_path / "snapshots").exists()
    finally:
        subprocess.run(["chattr", "-i", address.path], capture_output=True)
        os.chmod(address.path, 0o644)
    assert dump_all(address) == before


def test_unwritable_quarantine_dir_is_refused_before_anything(tmp_path):
    address = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(address)
    before = dump_all(address)
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    result = run_cli("cleanup-orphans", address.path, "--yes", "--no-snapshot", "--quarantine-dir",
                     str(blocker / "q"))
    assert result.returncode == 3 and "quarantine directory" in result.stderr and "Traceback" not in result.stderr
    assert dump_all(address) == before


def test_locked_database_exit_3_and_unchanged(tmp_path):
    address = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(address)
    before = open(address.path, "rb").read()
    holder = hold_write_lock(address.path, 30)
    try:
        result = run_cli("cleanup-orphans", address.path, "--yes", "--lock-timeout", "1")
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 3 and "locked" in result.stderr, result.stderr
    assert open(address.path, "rb").read() == before


def test_killed_at_random_batches_then_rerun_equals_an_uninterrupted_run(tmp_path):
    shape = Shape(experiments=3, trials=3, runs=6, epochs=20, batches=10)
    reference = DatabaseAddress("sqlite", path=str(tmp_path / "ref.db"))
    make_demo(reference, shape=shape)
    original = dump_all(reference)
    cleanup_orphans(reference, snapshot=False, quarantine_dir=str(tmp_path / "refq"), final_validate=False)
    expected = dump_all(reference)

    address = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(address, shape=shape)
    env = dict(os.environ, PYTHONPATH=ROOT)
    rng = random.Random(5)
    qdir = str(tmp_path / "q")
    kills = 0
    for attempt in range(8):
        proc = subprocess.Popen([sys.executable, "-m", "emfix", "cleanup-orphans", address.path, "--yes",
                                 "--no-snapshot", "--batch-size", "5", "--sleep", "0.01", "--quarantine-dir", qdir,
                                 "--progress"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for line in proc.stderr:  # kill only once deletes are under way: no guessing with a sleep
            if b"rows removed" in line:
                time.sleep(rng.uniform(0, 0.1) if attempt else 0)
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    kills += 1
                break
        proc.communicate()
        now = dump_all(address)
        files = [n for n in os.listdir(qdir) if n.endswith(".quarantine.db")] if os.path.isdir(qdir) else []
        for name in files:  # database + quarantine hold every row
            kept = quarantine_rows(os.path.join(qdir, name))
            for table, rows in original.items():
                assert len(now[table]) + kept.get(table, 0) >= len(rows)
        if proc.returncode == 0:
            break
    assert kills >= 2
    final = run_cli("cleanup-orphans", address.path, "--yes", "--no-snapshot", "--quarantine-dir", qdir)
    assert final.returncode == 0, final.stderr
    assert dump_all(address) == expected
    assert len([n for n in os.listdir(qdir) if n.endswith(".quarantine.db")]) == 1  # reruns continue one file


def test_interrupt_between_batches_exits_5_and_rerun_finishes(tmp_path):
    address = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(address, shape=Shape(experiments=3, trials=3, runs=6, epochs=20, batches=10))
    code, out, err = interrupt_when(("cleanup-orphans", address.path, "--yes", "--no-snapshot", "--batch-size", "2",
                                     "--sleep", "0.02"), "quarantining")
    assert code == 5, (out, err)
    assert "run the same command again" in err and "Traceback" not in err
    assert run_cli("cleanup-orphans", address.path, "--yes", "--no-snapshot").returncode == 0
    assert validate(address).total_violations == 0


def test_disk_full_stops_before_anything_is_deleted(tmp_path):
    import resource
    address = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(address)
    before = dump_all(address)

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))

    env = dict(os.environ, PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, "-m", "emfix", "cleanup-orphans", address.path, "--yes",
                             "--no-snapshot", "--quarantine-dir", str(tmp_path / "q")], env=env,
                            capture_output=True, text=True, preexec_fn=small_files)
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr and ("space" in result.stderr or "full" in result.stderr)
    assert dump_all(address) == before


def test_tables_option_limits_what_is_removed(demo_address, tmp_path):
    dry = cleanup_orphans(demo_address, dry_run=True, tables=["BATCH_METRIC", "METRIC"], include_unreferenced=True)
    assert set(dry.plan.remove) == {"BATCH_METRIC", "METRIC"}
    result = cleanup_orphans(demo_address, snapshot=False, quarantine_dir=str(tmp_path / "q"),
                             tables=["BATCH_METRIC", "METRIC"], include_unreferenced=True)
    assert result.removed == dry.plan.remove
    assert result.final["total_foreign_key_violations"] > 0  # the rest was left, as asked


def test_after_a_cleanup_the_table_lines_say_what_was_removed_not_what_was_planned():
    """Round 13: with rows left alone the first line said the rows removed, the lines under it the plan's."""
    from emfix.cleanup import CleanupResult
    from emfix.commands.cleanup import cleanup_lines
    from emfix.orphans import CleanupPlan
    plan = CleanupPlan(remove={"BATCH": 3010, "EPOCH": 17}, recreate={}, keepable={}, examples={})
    result = CleanupResult(plan, dry_run=False, removed={"BATCH": 2010, "EPOCH": 17}, left_alone={"BATCH": 1000})
    lines = cleanup_lines(result, "experiment.db")
    assert lines[0].startswith("removed 2,027 rows")
    assert [line.split()[:2] for line in lines[1:3]] == [["BATCH", "2,010"], ["EPOCH", "17"]]
    planned = cleanup_lines(CleanupResult(plan, dry_run=True), "experiment.db")
    assert [line.split()[:2] for line in planned[1:3]] == [["BATCH", "3,010"], ["EPOCH", "17"]]


def test_with_include_unreferenced_the_metrics_of_links_the_application_saves_meanwhile_stay(address, tmp_path,
                                                                                            monkeypatch):
    """Round 15: the application gave back a run's missing trial while the cleanup ran: its links stayed (the look
    in each batch), but the metrics they point at were removed as unreferenced (METRIC has no parent, so it was never
    looked at again). A METRIC batch keeps the rows a link points at now."""
    from test_repair import runs_of_a_missing_trial

    from emfix import orphandelete
    trial, runs, _epochs = runs_of_a_missing_trial(address)
    remove, inserted = orphandelete._remove, []

    def the_application_gives_the_trial_back_first(db, graph, plan, *rest):
        if not inserted:
            with open_database(address) as app:
                app.execute("INSERT INTO TRIAL (id, name, experiment_id, start_time, update_time) VALUES "
                            "(?, 'back again', 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00')", (trial,))
            inserted.append(trial)
        return remove(db, graph, plan, *rest)

    monkeypatch.setattr(orphandelete, "_remove", the_application_gives_the_trial_back_first)
    cleanup_orphans(address, include_unreferenced=True, snapshot=False, quarantine_dir=str(tmp_path / "q"),
                    batch_size=50, final_validate=False)
    with open_database(address) as db:
        kept = db.scalar("SELECT count(*) FROM BATCH_METRIC b JOIN TRIAL_RUN r ON r.id = b.trial_run_id WHERE "
                         "r.trial_id = ?", (trial,))
        dangling = sum(db.scalar("SELECT count(*) FROM %s l WHERE NOT EXISTS (SELECT 1 FROM METRIC m WHERE m.id = "
                                 "l.metric_id)" % link) for link in ("BATCH_METRIC", "EPOCH_METRIC"))
    assert kept and dangling == 0


def test_a_run_killed_as_its_quarantine_begins_leaves_an_empty_file_that_undo_names_so(demo_sqlite, tmp_path):
    """Round 17: killed right after it made its quarantine file, a cleanup left one holding only emfix's two empty
    tables; undo called it "not an emfix quarantine file" (exit 2) and the rerun began another beside it, without a
    word. The file's tables and its records are one commit now: a kill before leaves it empty, undo says so, and
    the rerun's own quarantine gives everything back."""
    qdir = tmp_path / "q"
    args = ["cleanup-orphans", demo_sqlite.path, "--yes", "--no-snapshot", "--quarantine-dir", str(qdir)]
    before = {t: sorted(rows) for t, rows in sqlite_dump(demo_sqlite.path).items()}
    killed = run_cli(*args, env={"EMFIX_TEST_KILL_AT": "quarantine-opened:1"})
    assert killed.returncode == -signal.SIGKILL
    leftover, = os.listdir(qdir)
    undone = run_cli("undo", str(qdir / leftover), "--yes")
    assert undone.returncode == 2 and "empty" in undone.stderr and "Traceback" not in undone.stderr, undone.stderr
    rerun = run_cli(*args)
    assert rerun.returncode in (0, 1), rerun.stderr
    real, = [name for name in os.listdir(qdir) if name != leftover and name.endswith(".quarantine.db")]
    assert run_cli("undo", str(qdir / real), "--yes").returncode == 0
    assert {t: sorted(rows) for t, rows in sqlite_dump(demo_sqlite.path).items()} == before


def sqlite_dump(path):
    con = sqlite3.connect(path)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                                            "'sqlite_%'")]
        return {t: [tuple(map(repr, r)) for r in con.execute('SELECT * FROM "%s"' % t)] for t in tables}
    finally:
        con.close()


def test_a_rerun_after_a_kill_counts_what_the_whole_cleanup_removed(tmp_path):
    """Round 17: a rerun that finished an interrupted cleanup (or repair --resume) said only its own share
    ("removed 3,668 rows"; repair "removed 0 rows") where undo then put back 6,682."""
    reference, address = (DatabaseAddress("sqlite", path=str(tmp_path / name)) for name in ("ref.db", "e.db"))
    for each in (reference, address):
        make_demo(each)
    whole = cleanup_orphans(reference, snapshot=False, quarantine_dir=str(tmp_path / "refq"), final_validate=False)
    args = ["cleanup-orphans", address.path, "--yes", "--no-snapshot", "--batch-size", "5", "--json",
            "--quarantine-dir", str(tmp_path / "q")]
    killed = run_cli(*args, env={"EMFIX_TEST_KILL_AT": "written:3"})
    assert killed.returncode == -signal.SIGKILL
    rerun = run_cli(*args)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["removed"] == whole.removed
    text = run_cli(*args[:-3], "--quarantine-dir", str(tmp_path / "q2"))
    assert text.returncode == 0 and "removed 0 rows" in text.stdout  # a third run: nothing left, its own count


def test_a_lock_limit_under_what_one_rows_batch_takes_is_said(demo_sqlite, tmp_path, monkeypatch):
    """Round 17: with --max-lock-ms 20, batches shrank to a row or two (each one's own cost was over the limit) and a
    cleanup of seconds took minutes, without a word. The summary now says the limit cannot be met."""
    from emfix import orphandelete
    from emfix.commands.cleanup import cleanup_lines

    class SlowClock:  # every batch seems to take 30 ms
        now = 0.0

        def perf_counter(self):  # read once as a batch starts, once as it ends
            self.now += 0.03
            return self.now

        def monotonic(self):
            return self.now

        def sleep(self, _seconds):
            pass

    monkeypatch.setattr(orphandelete, "time", SlowClock())
    result = cleanup_orphans(demo_sqlite, snapshot=False, quarantine_dir=str(tmp_path / "q"), max_lock_ms=20,
                             final_validate=False)
    assert result.one_row_over_ms == pytest.approx(30)
    assert any(line.startswith("note: --max-lock-ms is below") for line in cleanup_lines(result, "db"))
    quick = cleanup_orphans(demo_sqlite, snapshot=False, quarantine_dir=str(tmp_path / "q2"), final_validate=False)
    assert not quick.one_row_over_ms


def test_undo_of_a_run_stopped_before_it_kept_anything_says_so(demo_sqlite, tmp_path):
    """Round 18: undo of a quarantine whose run was killed after its records but before it kept a row said only
    "put back 0 rows" (exit 0)."""
    qdir = tmp_path / "q"
    killed = run_cli("cleanup-orphans", demo_sqlite.path, "--yes", "--no-snapshot", "--quarantine-dir", str(qdir),
                     env={"EMFIX_TEST_KILL_AT": "staged:1"})
    assert killed.returncode == -signal.SIGKILL
    name, = os.listdir(qdir)
    undone = run_cli("undo", str(qdir / name), "--yes")
    assert undone.returncode == 0, undone.stderr
    assert "put back 0 rows" in undone.stdout and "stopped before it finished" in undone.stdout
    assert "it had kept nothing yet" in undone.stdout


def exact_dump(path):
    """Every value of every table as its storage class and bytes (text that is not UTF-8 included)."""
    con = sqlite3.connect(path)
    try:
        dump = {}
        for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"):
            columns = [r[1] for r in con.execute('PRAGMA table_info("%s")' % table)]
            dump[table] = sorted(con.execute('SELECT %s FROM "%s"' % (", ".join(
                'typeof("%s"), hex("%s")' % (c, c) for c in columns), table)).fetchall())
        return dump
    finally:
        con.close()


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_rows_holding_text_that_is_not_utf8_go_and_come_back_byte_for_byte(tmp_path, journal):
    """Round 19: TEXT whose bytes are not UTF-8 in rows a cleanup removes (a doomed trial's name, doomed batches'
    times, an orphan whose key holds it) crashed the end of the run (exit 70, the quarantine left "in progress") and
    every undo of it halfway. Now the run finishes, and undo puts every value back with its storage class."""
    address = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(address)
    con = sqlite3.connect(address.path, isolation_level=None)
    con.execute("PRAGMA journal_mode = %s" % journal)
    con.execute("UPDATE TRIAL SET name = CAST(x'ff6e616d65' AS TEXT) WHERE experiment_id NOT IN (SELECT id FROM "
                "EXPERIMENT)")
    assert con.execute("SELECT changes()").fetchone()[0] >= 1
    con.execute("UPDATE BATCH SET time = CAST(x'c3' AS TEXT) WHERE rowid IN (SELECT b.rowid FROM BATCH b LEFT JOIN "
                "EPOCH e ON e.idx = b.epoch_idx AND e.trial_run_id = b.trial_run_id WHERE e.idx IS NULL LIMIT 5)")
    con.execute("INSERT INTO BATCH VALUES (77, CAST(x'c3' AS TEXT), 1, 't')")
    con.close()
    before = exact_dump(address.path)
    result = cleanup_orphans(address, snapshot=False, quarantine_dir=str(tmp_path / "q"), batch_size=50)
    assert result.final["total_foreign_key_violations"] == 0
    con = sqlite3.connect(address.path)
    assert con.execute("SELECT count(*) FROM BATCH WHERE idx = 77").fetchone()[0] == 0
    con.close()
    edited = str(tmp_path / "edited.quarantine.db")  # the same bytes as a BLOB: not the copy the change kept
    shutil.copyfile(result.quarantine, edited)
    con = sqlite3.connect(edited)
    con.execute("UPDATE TRIAL SET name = CAST(name AS BLOB)")
    con.commit()
    con.close()
    with pytest.raises(DamagedInputError, match="not the ones the change kept"):
        undo(edited, address)
    undo(result.quarantine, address)
    assert exact_dump(address.path) == before


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_damaged_file_is_exit_4_though_its_check_runs_beside_the_planning(tmp_path, dry_run):
    """The integrity check runs on a second connection while the plan is made (1 s of the 10M demo's run): a
    damaged file is still refused as such (exit 4, "is damaged"), whatever the planning met first, and left as it is."""
    address = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(address)
    with open(address.path, "r+b") as handle:
        handle.truncate(os.path.getsize(address.path) - 1024)
    before = open(address.path, "rb").read()
    result = run_cli("cleanup-orphans", address.path, "--yes", "--no-snapshot", *(["--dry-run"] if dry_run else []))
    assert result.returncode == 4 and "is damaged" in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert open(address.path, "rb").read() == before


def test_recreate_parents_keeps_integer_links_and_removes_the_ones_whose_key_is_not_a_number(tmp_path):
    """Round 20: a link to a missing EPOCH whose key held text (or bytes) made --recreate-parents exit 70 (its keys
    were sorted with the integers). The old API left integer keys parentless; other keys are orphans, removed."""
    address = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(address)

    def recreatable():  # what validate calls links whose parent --recreate-parents would create
        return sum(r.recreatable for r in validate(address).relations)
    before = recreatable()
    con = sqlite3.connect(address.path)
    con.execute("INSERT INTO EPOCH_METRIC VALUES ('abc', 1, 5)")
    con.execute("INSERT INTO EPOCH_METRIC VALUES (CAST(x'ff' AS TEXT), 1, 6)")
    con.execute("INSERT INTO EPOCH_METRIC VALUES (77, 1, 7)")  # an integer key: counted
    con.commit()
    con.close()
    assert recreatable() == before + 1
    result = cleanup_orphans(address, snapshot=False, quarantine_dir=str(tmp_path / "q"), recreate_parents=True)
    assert result.created.get("EPOCH") and result.final["total_foreign_key_violations"] == 0
    con = sqlite3.connect(address.path)
    assert con.execute("SELECT count(*) FROM EPOCH_METRIC WHERE typeof(epoch_idx) = 'text'").fetchone()[0] == 0
    con.close()


def demo_without_a_primary_key(tmp_path, journal="delete"):
    """The demo with EPOCH_METRIC rebuilt without a primary key, holding identical orphan rows (pairs and a triple)."""
    address = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(address)
    con = sqlite3.connect(address.path, isolation_level=None)
    con.execute("PRAGMA journal_mode = %s" % journal)
    con.executescript("""
        CREATE TABLE em_copy AS SELECT * FROM EPOCH_METRIC;
        DROP TABLE EPOCH_METRIC;
        CREATE TABLE EPOCH_METRIC (epoch_idx INTEGER, epoch_trial_run_id INTEGER, metric_id INTEGER,
            FOREIGN KEY (epoch_idx, epoch_trial_run_id) REFERENCES EPOCH (idx, trial_run_id),
            FOREIGN KEY (metric_id) REFERENCES METRIC (id));
        INSERT INTO EPOCH_METRIC SELECT * FROM em_copy;
        DROP TABLE em_copy;
        INSERT INTO EPOCH_METRIC VALUES (900, 9, 1), (900, 9, 1), (900, 9, 1), (901, 9, 2), (901, 9, 2);
        INSERT INTO EPOCH_METRIC SELECT epoch_idx, epoch_trial_run_id, metric_id FROM EPOCH_METRIC e WHERE NOT EXISTS
            (SELECT 1 FROM EPOCH p WHERE p.idx = e.epoch_idx AND p.trial_run_id = e.epoch_trial_run_id);
    """)
    con.close()
    return address


def test_identical_rows_of_a_table_without_a_primary_key_all_come_back(tmp_path):
    """Round 20: in a table without a primary key, undo put a copy back "unless one like it is there", so of two
    identical removed rows one came back and the other was lost (exit 0, no word). A copy goes back now while the
    table holds fewer rows like it than the quarantine holds copies; a second undo puts back nothing more."""
    address = demo_without_a_primary_key(tmp_path)
    before = exact_dump(address.path)
    result = cleanup_orphans(address, snapshot=False, quarantine_dir=str(tmp_path / "q"), batch_size=2)
    assert result.removed["EPOCH_METRIC"] >= 5
    undo(result.quarantine, address)
    assert exact_dump(address.path) == before
    undo(result.quarantine, address)
    assert exact_dump(address.path) == before


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_killed_then_run_again_a_table_without_a_primary_key_keeps_every_twin(tmp_path, journal):
    """Round 21: killed between batches, the rerun took the twin of a row already kept for kept (the same content),
    removed it and kept no copy: undo then gave back one row of each pair. Twins are told apart by rowid now."""
    address = demo_without_a_primary_key(tmp_path, journal)
    before = exact_dump(address.path)
    args = ["cleanup-orphans", address.path, "--yes", "--no-snapshot", "--batch-size", "2", "--tables", "EPOCH_METRIC",
            "--quarantine-dir", str(tmp_path / "q")]
    killed = run_cli(*args, env={"EMFIX_TEST_KILL_AT": "written:3"})  # row 53 removed, its twin (79) not yet
    assert killed.returncode == -signal.SIGKILL
    rerun = run_cli(*args)
    assert rerun.returncode == 1 and "Traceback" not in rerun.stderr  # (1: the other tables' orphans are left)
    quarantines = [str(tmp_path / "q" / f) for f in os.listdir(str(tmp_path / "q")) if f.endswith(".quarantine.db")]
    assert len(quarantines) == 1
    undo(quarantines[0], address)
    assert exact_dump(address.path) == before


def test_undo_says_so_when_identical_rows_are_there_already_in_a_table_without_a_primary_key(tmp_path):
    """Round 21: the application inserted a row like removed ones; undo then put back one copy fewer (the table holds
    as many rows like it as the quarantine holds copies) without a word. It says so now, as a note (exit 0): an
    undo killed between its two commits (WAL mode) leaves rows of its own there too, and round 22 found counting
    them as "changed by another process" (exit 1) a false alarm."""
    address = demo_without_a_primary_key(tmp_path)
    result = cleanup_orphans(address, snapshot=False, quarantine_dir=str(tmp_path / "q"))
    con = sqlite3.connect(address.path)
    con.execute("INSERT INTO EPOCH_METRIC VALUES (900, 9, 1)")
    con.commit()
    con.close()
    back = undo(result.quarantine, address)
    assert back.alike_there == {"EPOCH_METRIC": 1} and not back.not_restored
    con = sqlite3.connect(address.path)
    assert con.execute("SELECT count(*) FROM EPOCH_METRIC WHERE epoch_idx = 900").fetchone()[0] == 6
    con.close()


def without_its_primary_key(address, table):
    """`table` rebuilt without a primary key (SQLite), or its primary key made a plain index (MySQL)."""
    if address.kind == "mysql":
        drop_primary_keys(address, [table])
        return
    con = sqlite3.connect(address.path, isolation_level=None)
    columns = [r[1] for r in con.execute('PRAGMA table_info("%s")' % table)]
    con.executescript('CREATE TABLE keep AS SELECT * FROM "{t}"; DROP TABLE "{t}"; CREATE TABLE "{t}" ({c}); '
                      'INSERT INTO "{t}" SELECT * FROM keep; DROP TABLE keep;'.format(
                          t=table, c=", ".join("%s INTEGER" % c for c in columns)))
    con.close()


def test_undo_into_a_table_that_lost_its_primary_key_puts_back_each_copy_once(demo_address, tmp_path):
    """Identical rows of a table without a primary key are told apart by their number: each batch's copies are
    counted against the table in one statement now (one count per copy read the whole table each time: 40,000
    copies took 35 s). A row the application added like a removed one stands in for one copy, and says so."""
    address = demo_address
    result = cleanup_orphans(address, snapshot=False, quarantine_dir=str(tmp_path / "q"), batch_size=3)
    removed = result.removed["EPOCH_METRIC"]
    assert removed >= 4
    after_cleanup = dump_all(address)
    without_its_primary_key(address, "EPOCH_METRIC")
    con = sqlite3.connect(result.quarantine)
    first, second = con.execute("SELECT epoch_idx, epoch_trial_run_id, metric_id FROM EPOCH_METRIC "
                                "ORDER BY rowid LIMIT 2").fetchall()
    con.close()
    with open_database(address) as db:  # the application: a row like the first removed, and twins of the second
        db.foreign_key_checks(False)  # (MySQL: they are orphans)
        db.executemany("INSERT INTO EPOCH_METRIC (epoch_idx, epoch_trial_run_id, metric_id) VALUES (?, ?, ?)",
                       [first, second, second])
    back = undo(result.quarantine, address, batch_size=3)
    # the first's copy is not put back (a row like it is there), the second's neither (two are there, one kept)
    assert back.alike_there == {"EPOCH_METRIC": 2} and not back.not_restored
    assert back.restored["EPOCH_METRIC"] == removed - 2
    rows = dump_all(address)["EPOCH_METRIC"]
    assert rows.count(tuple(first)) == 1 and rows.count(tuple(second)) == 2
    assert len(rows) == len(after_cleanup["EPOCH_METRIC"]) + removed + 1
    assert undo(result.quarantine, address).restored.get("EPOCH_METRIC", 0) == 0
    assert dump_all(address)["EPOCH_METRIC"] == rows


@pytest.mark.parametrize("options", ["WITHOUT ROWID", "WITHOUT ROWID, STRICT", "STRICT, WITHOUT ROWID"])
@pytest.mark.parametrize("command", [("cleanup-orphans",), ("cleanup-orphans", "--dry-run"), ("repair",)])
def test_orphans_in_a_without_rowid_table_are_refused_up_front(tmp_path, command, options):
    """Round 20: a WITHOUT ROWID child made cleanup and repair stop at "no such column: t.rowid", blamed on the
    quarantine folder, after the dry run had promised to remove its orphans. Now each says what the table is and
    changes nothing (exit 2), the dry run included. Spelled `WITHOUT ROWID, STRICT`, it was taken for a table with
    a rowid, and validate itself crashed (exit 70)."""
    address = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(address)
    con = sqlite3.connect(address.path)
    con.executescript("""
        CREATE TABLE bm_copy AS SELECT * FROM BATCH_METRIC;
        DROP TABLE BATCH_METRIC;
        CREATE TABLE BATCH_METRIC (batch_idx INTEGER, epoch_idx INTEGER, trial_run_id INTEGER, metric_id INTEGER,
            PRIMARY KEY (batch_idx, epoch_idx, trial_run_id, metric_id),
            FOREIGN KEY (batch_idx, epoch_idx, trial_run_id) REFERENCES BATCH (idx, epoch_idx, trial_run_id),
            FOREIGN KEY (metric_id) REFERENCES METRIC (id)) %s;
        INSERT INTO BATCH_METRIC SELECT * FROM bm_copy;
        DROP TABLE bm_copy;
    """ % options)
    con.commit()
    con.close()
    before = exact_dump(address.path)
    assert run_cli("validate", address.path, "-q").returncode == 1
    result = run_cli(*command, address.path, "--yes", "--no-snapshot", "--quarantine-dir", str(tmp_path / "q"))
    assert result.returncode == 2 and "WITHOUT ROWID" in result.stderr and "Traceback" not in result.stderr, \
        result.stderr
    assert exact_dump(address.path) == before


def test_a_directory_given_as_the_database_is_named_so(tmp_path):
    """Round 20: `cleanup-orphans DIR` said the file had "1 other name (hard links)" and suggested copying it."""
    for command in ("cleanup-orphans", "repair"):
        result = run_cli(command, str(tmp_path), "--yes")
        assert result.returncode == run_cli("validate", str(tmp_path)).returncode == 3, result.stderr
        assert "is a directory" in result.stderr and "hard links" not in result.stderr


def test_a_table_whose_rows_were_partly_left_alone_says_its_examples_are_the_plans():
    """Round 33: "C 2 e.g. id 10, 9223372036854775808, 18446744073709551615": three keys for two rows removed (one
    was left alone, changed by another process). The line says the count is of how many planned now."""
    import types

    from emfix.commands.cleanup import cleanup_plan_lines
    plan = types.SimpleNamespace(remove={"C": 3, "D": 1}, examples={"C": [{"id": 10}, {"id": 11}, {"id": 12}],
                                                                    "D": [{"id": 5}]},
                                 recreate={}, keepable={}, unkeyed={}, held={}, left_behind={})
    lines = cleanup_plan_lines(plan, removed={"C": 2, "D": 1})
    assert "of 3 planned, e.g." in lines[0] and lines[0].split()[:2] == ["C", "2"]
    assert "planned" not in lines[1] and "e.g." in lines[1]


@pytest.mark.mysql
def test_cleanup_on_mariadb_with_a_text_link_holding_5abc_plans_and_removes_the_orphans(mysql_address):
    """Round 44: in a TRIAL.experiment_id declared VARCHAR, '5abc' (the id 5 to MariaDB's comparison) stopped
    repair and cleanup-orphans, even --dry-run: strict mode made the sweep's comparison an error (exit 4)."""
    make_demo(mysql_address, shape=Shape(experiments=2, trials=1, runs=1, epochs=1, batches=1), faults=False)
    with open_database(mysql_address) as db:
        db.foreign_key_checks(False)
        name = db.scalar("SELECT CONSTRAINT_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = "
                         "DATABASE() AND TABLE_NAME = 'TRIAL' AND REFERENCED_TABLE_NAME = 'EXPERIMENT'")
        db.execute("ALTER TABLE TRIAL DROP FOREIGN KEY `%s`" % name)
        db.execute("ALTER TABLE TRIAL MODIFY experiment_id VARCHAR(20) NOT NULL")
        with db.transaction():
            db.execute("UPDATE TRIAL SET experiment_id = '2abc' WHERE experiment_id = '2'")
            db.execute("DELETE FROM EXPERIMENT WHERE id = 1")  # (experiment 1's trial: an orphan)
    planned = run_cli("cleanup-orphans", url_of(mysql_address), "--dry-run", "--json")
    assert planned.returncode == 0, planned.stderr
    assert run_cli("cleanup-orphans", url_of(mysql_address), "--yes", "--no-snapshot").returncode == 0
    with open_database(mysql_address) as db:
        assert db.query("SELECT experiment_id FROM TRIAL") == [("2abc",)]  # (experiment 2's, kept)
