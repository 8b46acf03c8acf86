"""schema upgrade keeps what it leaves alone (issue 23, item 3): a table rebuild on SQLite carries extra columns
and their values, indexes, triggers, views and the AUTOINCREMENT counter; the SCHEMA_VERSION row goes with the
change (one transaction on SQLite, a journal on MySQL); the plan confirmed is the plan executed."""

import json
import os
import signal
import sqlite3
import subprocess
import sys

import pytest
from conftest import ROOT, make_demo, run_cli, url_of

from emfix.address import DatabaseAddress
from emfix.backends import open_database
from emfix.catalog import read_catalog
from emfix.demo import Shape
from emfix.errors import Cancelled, SchemaError
from emfix.upgrade import JOURNAL, upgrade_schema

NO_PASSWORD = {"EMFIX_MYSQL_PASSWORD": ""}

# A real SIGKILL at a fixed point of the run: after every statement, before the SCHEMA_VERSION row.
KILL_BEFORE_THE_ROW = """
import os, signal, sys
from emfix.address import parse_address
from emfix.upgrade import upgrade_schema
upgrade_schema(parse_address(sys.argv[1]), snapshot=False, before_commit=lambda: os.kill(os.getpid(), signal.SIGKILL))
"""


def loosen(path, table, old, new):
    """Make `table` again with `old` (part of its SQL) replaced by `new`, as a hand edit would (links to it kept)."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA legacy_alter_table = ON")
    sql = con.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    assert old in sql
    con.executescript('BEGIN; ALTER TABLE "%s" RENAME TO loosened; %s; INSERT INTO "%s" SELECT * FROM loosened; '
                      'DROP TABLE loosened; COMMIT;' % (table, sql.replace(old, new), table))
    con.close()


def sqlite_db(directory, shape=None):
    directory.mkdir(exist_ok=True)
    db = DatabaseAddress("sqlite", path=str(directory / "experiment.db"))
    make_demo(db, shape, faults=False)
    return db


def objects(path):
    con = sqlite3.connect(path)
    try:
        return {name: sql for name, sql in con.execute(
            "SELECT name, sql FROM sqlite_master WHERE type IN ('index', 'trigger', 'view') AND sql IS NOT NULL")}
    finally:
        con.close()


def test_upgrade_rebuild_keeps_an_extra_column_its_values_and_its_index(tmp_path):
    db = sqlite_db(tmp_path)
    loosen(db.path, "TRIAL_RUN", '"status" VARCHAR(50) NOT NULL', '"status" VARCHAR(50)')
    con = sqlite3.connect(db.path)
    con.executescript("ALTER TABLE TRIAL_RUN ADD COLUMN extra_col TEXT DEFAULT 'none' CHECK (extra_col <> '');"
                      "UPDATE TRIAL_RUN SET extra_col = 'note ' || id; CREATE INDEX i1 ON TRIAL_RUN (extra_col);")
    before = con.execute("SELECT id, extra_col FROM TRIAL_RUN ORDER BY id").fetchall()
    con.close()
    assert len(before) == 18
    done = run_cli("schema", "upgrade", db.path, "--yes", "--no-snapshot")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert "not changed: column TRIAL_RUN.extra_col" in done.stdout
    con = sqlite3.connect(db.path)
    assert con.execute("SELECT id, extra_col FROM TRIAL_RUN ORDER BY id").fetchall() == before
    assert con.execute("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'i1'").fetchone()[0] == 1
    with pytest.raises(sqlite3.IntegrityError):  # its CHECK went with it
        con.execute("UPDATE TRIAL_RUN SET extra_col = '' WHERE id = 1")
    con.close()
    after = read_catalog(open_database(db, readonly=True), counts=False).table("TRIAL_RUN")
    assert after.column("status").not_null and after.column("extra_col").default == "'none'"


def test_upgrade_rebuild_keeps_triggers_and_never_reuses_a_deleted_id(tmp_path):
    db = sqlite_db(tmp_path)
    loosen(db.path, "METRIC", '"type" VARCHAR(50) NOT NULL', '"type" VARCHAR(50)')
    con = sqlite3.connect(db.path)
    con.executescript("CREATE TABLE audit (metric_id INT); CREATE TRIGGER metric_audit AFTER INSERT ON METRIC "
                      "BEGIN INSERT INTO audit VALUES (new.id); END; UPDATE sqlite_sequence SET seq = 343824 "
                      "WHERE name = 'METRIC'; DELETE FROM METRIC WHERE id > (SELECT max(id) - 5 FROM METRIC);")
    con.commit()
    con.close()
    saved = objects(db.path)
    done = run_cli("schema", "upgrade", db.path, "--yes", "--no-snapshot")
    assert done.returncode == 0, done.stderr
    assert objects(db.path) == saved
    con = sqlite3.connect(db.path)
    assert con.execute("SELECT seq FROM sqlite_sequence WHERE name = 'METRIC'").fetchone()[0] == 343824
    new_id = con.execute("INSERT INTO METRIC (type, total_val) VALUES ('loss', 1.0)").lastrowid
    assert new_id == 343825 and con.execute("SELECT metric_id FROM audit").fetchall() == [(343825,)]
    con.close()


def test_upgrade_rebuilds_a_table_views_and_other_tables_triggers_name(tmp_path):
    db = sqlite_db(tmp_path)
    loosen(db.path, "TRIAL_RUN", '"status" VARCHAR(50) NOT NULL', '"status" VARCHAR(50)')
    con = sqlite3.connect(db.path)
    con.executescript("CREATE VIEW runs AS SELECT r.id, r.status, t.name FROM TRIAL_RUN r JOIN TRIAL t "
                      "ON t.id = r.trial_id; CREATE TRIGGER trial_touch AFTER UPDATE ON TRIAL BEGIN "
                      "UPDATE TRIAL_RUN SET update_time = new.update_time WHERE trial_id = new.id; END;")
    view = con.execute("SELECT * FROM runs ORDER BY id").fetchall()
    con.close()
    saved = objects(db.path)
    done = run_cli("schema", "upgrade", db.path, "--yes", "--no-snapshot")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert objects(db.path) == saved
    con = sqlite3.connect(db.path)
    assert con.execute("SELECT * FROM runs ORDER BY id").fetchall() == view
    con.execute("UPDATE TRIAL SET update_time = 'later' WHERE id = 1")
    assert con.execute("SELECT count(*) FROM TRIAL_RUN WHERE update_time = 'later'").fetchone()[0] == 3
    assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    con.close()


def test_upgrade_refuses_a_rebuild_that_would_drop_a_collation_and_changes_nothing(tmp_path):
    db = sqlite_db(tmp_path)
    loosen(db.path, "TRIAL_RUN", '"status" VARCHAR(50) NOT NULL', '"status" VARCHAR(50) COLLATE NOCASE')
    before = open(db.path, "rb").read()
    refused = run_cli("schema", "upgrade", db.path, "--yes", "--no-snapshot")
    assert refused.returncode == 1 and "TRIAL_RUN.status has a collation" in refused.stderr
    assert refused.stdout == "" and "Traceback" not in refused.stderr
    assert open(db.path, "rb").read() == before


def kill_before_the_row(address):
    proc = subprocess.run([sys.executable, "-c", KILL_BEFORE_THE_ROW, url_of(address)],
                          env=dict(os.environ, PYTHONPATH=ROOT, **NO_PASSWORD), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def upgrade_rows(address):
    with open_database(address, readonly=True) as db:
        return [r for r in read_catalog(db, counts=False).schema_versions
                if r["migration_name"] == "emfix_schema_upgrade"]


def test_upgrade_killed_before_its_schema_version_row_leaves_no_unrecorded_upgrade_on_sqlite(tmp_path):
    db = sqlite_db(tmp_path, Shape(generation=1))
    kill_before_the_row(db)
    with open_database(db, readonly=True) as con:
        assert read_catalog(con, counts=False).generation == 1  # all or nothing: the row is part of the change
    assert upgrade_rows(db) == []
    again = run_cli("schema", "upgrade", db.path, "--yes", "--no-snapshot")
    assert again.returncode == 0 and "made" in again.stdout, again.stdout + again.stderr
    assert len(upgrade_rows(db)) == 1 and upgrade_rows(db)[0]["version"].startswith("2.")


def test_the_confirmed_plan_is_the_one_executed_or_nothing_is(tmp_path):
    db = sqlite_db(tmp_path / "a", Shape(generation=1))
    shown = []

    def confirm(plan):
        shown.append(plan)
        return True
    result = upgrade_schema(db, confirm=confirm, snapshot=False)
    assert shown == [result] and not result.dry_run and result.generation_after == 2

    db2 = sqlite_db(tmp_path / "b", Shape(generation=1))

    def confirm_while_the_schema_changes(plan):
        assert any("BATCH" in s for s in plan.statements)
        with sqlite3.connect(db2.path) as other:  # the application, while the user reads the plan
            other.execute('CREATE TABLE "BATCH" (idx INT)')
        return True
    with pytest.raises(SchemaError, match="changed since the plan was made"):
        upgrade_schema(db2, confirm=confirm_while_the_schema_changes, snapshot=False)
    with open_database(db2, readonly=True) as con:  # nothing of the plan ran: BATCH is the application's only
        batch = read_catalog(con, counts=False).table("BATCH")
        assert [c.name for c in batch.columns] == ["idx"] and not con.scalar(
            "SELECT count(*) FROM sqlite_master WHERE name = 'BATCH_METRIC'")
    assert upgrade_rows(db2) == []


def test_a_null_written_after_the_plan_is_refused_not_copied_into_a_not_null_column(tmp_path):
    db = sqlite_db(tmp_path)
    loosen(db.path, "TRIAL_RUN", '"status" VARCHAR(50) NOT NULL', '"status" VARCHAR(50)')

    def confirm(plan):
        with sqlite3.connect(db.path) as other:
            other.execute('UPDATE "TRIAL_RUN" SET status = NULL WHERE id = 2')
        return True
    with pytest.raises(SchemaError, match="it now holds a NULL in TRIAL_RUN.status"):
        upgrade_schema(db, confirm=confirm, snapshot=False)
    with open_database(db, readonly=True) as con:
        assert not read_catalog(con, counts=False).table("TRIAL_RUN").column("status").not_null


def test_upgrade_on_mariadb_keeps_extra_columns_indexes_and_triggers(mysql_address):
    make_demo(mysql_address, Shape(generation=1), faults=False, json_type="json")
    with open_database(mysql_address) as db:
        db.execute("ALTER TABLE `TRIAL_RUN` MODIFY `status` VARCHAR(50) NULL")
        db.execute("ALTER TABLE `TRIAL_RUN` ADD COLUMN `extra_col` VARCHAR(40)")
        db.execute("UPDATE `TRIAL_RUN` SET `extra_col` = CONCAT('note ', `id`)")
        db.execute("CREATE INDEX `i1` ON `TRIAL_RUN` (`extra_col`)")
        db.execute("CREATE TRIGGER `run_touch` BEFORE UPDATE ON `TRIAL_RUN` FOR EACH ROW SET NEW.`extra_col` = "
                   "CONCAT(NEW.`extra_col`, '!')")
        values = db.query("SELECT `id`, `extra_col` FROM `TRIAL_RUN` ORDER BY `id`")
    done = run_cli("schema", "upgrade", url_of(mysql_address), "--yes", "--no-snapshot", env=NO_PASSWORD)
    assert done.returncode == 0, done.stderr
    with open_database(mysql_address) as db:
        table = read_catalog(db, counts=False).table("TRIAL_RUN")
        assert table.column("status").not_null and [i.name for i in table.indexes if i.name == "i1"] == ["i1"]
        assert db.query("SELECT `id`, `extra_col` FROM `TRIAL_RUN` ORDER BY `id`") == values
        assert db.scalar("SELECT count(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() AND "
                         "TRIGGER_NAME = 'run_touch'") == 1
        assert JOURNAL not in [t.lower() for t in db.tables()]
    assert len(upgrade_rows(mysql_address)) == 1


def test_upgrade_on_mariadb_killed_after_its_ddl_writes_the_row_when_run_again(mysql_address):
    make_demo(mysql_address, Shape(generation=1), faults=False, json_type="json")
    kill_before_the_row(mysql_address)
    with open_database(mysql_address, readonly=True) as db:
        assert read_catalog(db, counts=False).generation == 2  # MySQL committed the DDL by itself
        journal = db.query("SELECT version FROM %s" % db.quote(JOURNAL))
    assert upgrade_rows(mysql_address) == [] and len(journal) == 1
    again = run_cli("schema", "upgrade", url_of(mysql_address), "--yes", "--no-snapshot", env=NO_PASSWORD)
    assert again.returncode == 0 and "interrupted" in again.stdout, again.stdout + again.stderr
    assert [r["version"] for r in upgrade_rows(mysql_address)] == [journal[0][0]]
    third = run_cli("schema", "upgrade", url_of(mysql_address), "--yes", env=NO_PASSWORD)
    assert third.returncode == 0 and "already has the current" in third.stdout
    assert len(upgrade_rows(mysql_address)) == 1


def test_schema_diff_ddl_for_a_rebuild_keeps_the_extra_column_and_index(tmp_path):
    reference = DatabaseAddress("sqlite", path=str(tmp_path / "reference.db"))
    assert run_cli("init", reference.path).returncode == 0
    db = sqlite_db(tmp_path / "b")
    loosen(db.path, "TRIAL_RUN", '"status" VARCHAR(50) NOT NULL', '"status" VARCHAR(50)')
    con = sqlite3.connect(db.path)
    con.executescript("ALTER TABLE TRIAL_RUN ADD COLUMN extra_col TEXT; UPDATE TRIAL_RUN SET extra_col = 'x' || id;"
                      "CREATE INDEX i1 ON TRIAL_RUN (extra_col);")
    before = con.execute("SELECT id, extra_col FROM TRIAL_RUN ORDER BY id").fetchall()
    con.close()
    diff = run_cli("schema", "diff", reference.path, db.path, "--json")
    assert diff.returncode == 1, diff.stderr
    ddl = [s for s in json.loads(diff.stdout)["ddl"] if not s.startswith("--")]
    assert any(s.startswith('CREATE TABLE "emfix_rebuild_TRIAL_RUN"') for s in ddl)
    con = sqlite3.connect(db.path)
    with con:
        for statement in ddl:
            con.execute(statement)
    assert con.execute("SELECT id, extra_col FROM TRIAL_RUN ORDER BY id").fetchall() == before
    assert con.execute("SELECT count(*) FROM sqlite_master WHERE name = 'i1'").fetchone()[0] == 1
    con.close()


def test_a_statement_the_engine_rejects_stops_the_upgrade_in_one_line_with_nothing_changed(tmp_path):
    db = sqlite_db(tmp_path, Shape(generation=1))
    before = open(db.path, "rb").read()

    def confirm(plan):
        plan.statements.append('INSERT INTO "nowhere" VALUES (1)')  # as if the engine refused the last one
        return True
    with pytest.raises(SchemaError, match=r"stopped at `INSERT INTO \"nowhere\".*no such table.*nothing was changed"):
        upgrade_schema(db, confirm=confirm, snapshot=False)
    assert open(db.path, "rb").read() == before


def test_upgrade_rebuild_keeps_a_generated_column_and_an_extra_foreign_key_with_its_action(tmp_path):
    db = sqlite_db(tmp_path)
    loosen(db.path, "TRIAL_RUN", '"status" VARCHAR(50) NOT NULL', '"status" VARCHAR(50)')
    con = sqlite3.connect(db.path)
    con.executescript("ALTER TABLE TRIAL_RUN ADD COLUMN shout TEXT GENERATED ALWAYS AS (upper(status)) VIRTUAL;"
                      "ALTER TABLE TRIAL_RUN ADD COLUMN artifact_id INT REFERENCES ARTIFACT (id) ON DELETE SET NULL;"
                      "UPDATE TRIAL_RUN SET artifact_id = id;")
    before = con.execute("SELECT id, shout, artifact_id FROM TRIAL_RUN ORDER BY id").fetchall()
    con.close()
    done = run_cli("schema", "upgrade", db.path, "--yes", "--no-snapshot")
    assert done.returncode == 0, done.stderr
    con = sqlite3.connect(db.path)
    assert con.execute("SELECT id, shout, artifact_id FROM TRIAL_RUN ORDER BY id").fetchall() == before
    assert [r[3:7] for r in con.execute("PRAGMA foreign_key_list(TRIAL_RUN)") if r[2] == "ARTIFACT"] == [
        ("artifact_id", "id", "NO ACTION", "SET NULL")]
    con.close()


def test_no_at_the_prompt_changes_nothing_and_takes_no_snapshot(tmp_path):
    db = sqlite_db(tmp_path, Shape(generation=1))
    before = open(db.path, "rb").read()
    with pytest.raises(Cancelled):
        upgrade_schema(db, confirm=lambda plan: False, snapshot_dir=str(tmp_path / "snapshots"))
    assert open(db.path, "rb").read() == before and not (tmp_path / "snapshots").exists()


def test_upgrade_on_mariadb_keeps_the_collation_and_comment_of_a_column_it_modifies(mysql_address):
    make_demo(mysql_address, faults=False, json_type="json")
    with open_database(mysql_address) as db:
        db.execute("ALTER TABLE `TRIAL_RUN` MODIFY `status` VARCHAR(50) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin "
                   "NULL COMMENT 'run''s state'")
    done = run_cli("schema", "upgrade", url_of(mysql_address), "--yes", "--no-snapshot", env=NO_PASSWORD)
    assert done.returncode == 0, done.stderr
    with open_database(mysql_address, readonly=True) as db:
        row = db.query("SELECT IS_NULLABLE, COLLATION_NAME, COLUMN_COMMENT FROM information_schema.COLUMNS WHERE "
                       "TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'TRIAL_RUN' AND COLUMN_NAME = 'status'")
    assert [tuple(r) for r in row] == [("NO", "utf8mb4_bin", "run's state")]
