"""Every failure a clear answer: one line, the documented exit code, never a traceback, nothing changed."""

import hashlib
import json
import os
import re
import sqlite3
import uuid

import pytest
from conftest import kill_until_done, make_demo, mysql_server_url, run_cli, sqlite_rows, url_of
from hypothesis import example, given, settings
from hypothesis import strategies as st

from emfix import snapshot
from emfix.address import DatabaseAddress, parse_address
from emfix.backends import open_database
from emfix.demo import Shape
from emfix.errors import DamagedInputError


@pytest.fixture
def demo_db(tmp_path):
    address = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(address)
    return address


def assert_one_clear_line(result, code, *words):
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith("warning:")]
    assert 1 <= len(lines) <= 2 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


# -- odd numbers -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, words", [
    (["validate", "{db}", "--experiment", "99999999999999999999999"], "an id must be at most"),
    (["export", "{db}", "-e", "99999999999999999999999", "-o", "x.jsonl"], "an id must be at most"),
    (["migrate", "{db}", "x.db", "-e", "99999999999999999999999"], "an id must be at most"),
    (["validate", "{db}", "--limit", "99999999999999999999"], "must be at most"),
    (["demo", "{dir}", "--scale", "nan"], "between"),
    (["demo", "{dir}", "--scale", "inf"], "between"),
    (["cleanup-orphans", "{db}", "--batch-size", "-5"], "must be 1 or more"),
    (["snapshot", "prune", "{db}", "--older-than", "99999999999d"], "too long an age"),
    (["snapshot", "prune", "{db}", "--older-than", "-1d"], "cannot be negative"),
    (["validate", "{db}", "--lock-timeout", "nan"], "between"),
    (["validate", "--mysql", "-d", "x", "--port", "99999"], "a port must be at most"),
    (["snapshot", "create", "{db}", "--connections", "99"], "must be at most 32"),  # its help says so (round 27)
    (["snapshot", "restore", "{db}", "--snapshot-id", "", "--yes"], "an empty snapshot id"),  # not latest-valid (r29)
])
def test_odd_numbers_are_usage_errors(demo_db, tmp_path, args, words):
    argv = [a.replace("{db}", demo_db.path).replace("{dir}", str(tmp_path / "d")) for a in args]
    assert_one_clear_line(run_cli(*argv, cwd=str(tmp_path)), 2, words)
    assert not (tmp_path / "d").exists()


def test_use_pure_0_without_the_c_extension_is_a_missing_dependency():
    base = parse_address(mysql_server_url(), environ={})
    try:
        import _mysql_connector  # noqa: F401
        pytest.skip("the C extension is installed here")
    except ImportError:
        pass
    url = "mysql://%s@%s:%s/%s?use_pure=0" % (base.user, base.host, base.port, base.database)
    assert_one_clear_line(run_cli("schema", url), 3, "C extension")


# -- exit codes that mean what the README says ------------------------------------------------------------

def test_dry_runs_exit_0(demo_db):
    assert run_cli("fix-json", demo_db.path, "--dry-run").returncode == 0
    assert run_cli("cleanup-orphans", demo_db.path, "--dry-run").returncode == 0


def test_validate_experiment_answers_for_that_experiment_alone(demo_db):
    damaged = run_cli("validate", demo_db.path)  # the database is damaged...
    assert damaged.returncode == 1 and damaged.stdout.startswith("FAIL:") and damaged.stderr == ""
    intact = run_cli("validate", demo_db.path, "--experiment", "1")  # ...experiment 1 is intact
    assert intact.returncode == 0 and "\nExperiment 1:\n" in intact.stdout and intact.stderr == "", intact.stderr
    three = run_cli("validate", demo_db.path, "--experiment", "3")  # experiment 3 is not
    assert three.returncode == 1 and three.stdout.startswith("FAIL:") and three.stderr == ""
    missing = run_cli("validate", demo_db.path, "--experiment", "12")
    assert missing.returncode == 1 and "Experiment 12 (NOT FOUND)" in missing.stdout and missing.stderr == ""


def test_empty_database_is_exit_2_and_doctor_reports_it(tmp_path):
    path = str(tmp_path / "empty.db")
    sqlite3.connect(path).close()
    assert_one_clear_line(run_cli("validate", path), 2, "not an Experiment Manager database")
    doctor = run_cli("doctor", path, "--json")
    assert doctor.returncode == 1 and doctor.stderr == "", doctor.stderr  # a finding, not a crash
    assert any(f["check"] == "schema" and f["level"] == "FAIL" and "not an Experiment Manager database" in f["message"]
               for f in json.loads(doctor.stdout)["findings"])


@pytest.mark.parametrize("argv", [["export", "-e", "1", "-o", "{tmp}/e.jsonl"], ["check-hierarchy", "-e", "1"],
                                  ["validate"]])
def test_a_database_without_trial_run_is_no_experiment_manager_database_to_any_reader(demo_db, tmp_path, argv):
    """Round 46: without TRIAL_RUN, check-hierarchy said experiment 1 was "whole" and export wrote what it reached
    (exit 0), where validate refused it."""
    con = sqlite3.connect(demo_db.path)
    with con:
        con.execute("PRAGMA foreign_keys = OFF")
        con.execute("DROP TABLE TRIAL_RUN")
    con.close()
    result = run_cli(argv[0], demo_db.path, *[a.format(tmp=tmp_path) for a in argv[1:]])
    assert_one_clear_line(result, 2, "not an Experiment Manager database (no TRIAL_RUN table)")
    assert not os.path.exists(str(tmp_path / "e.jsonl"))


def test_a_damaged_file_is_exit_4_for_validate_and_a_fail_for_doctor(demo_db):
    size = os.path.getsize(demo_db.path)
    with open(demo_db.path, "r+b") as handle:
        handle.truncate(size - 1024)
    assert_one_clear_line(run_cli("validate", demo_db.path), 4, "is damaged", "quick_check found")
    doctor = run_cli("doctor", demo_db.path, "--json")
    assert doctor.returncode == 1 and doctor.stderr == "", doctor.stderr  # a finding, not a crash
    assert any(f["check"] == "integrity" and f["level"] == "FAIL" and "quick_check found" in f["message"]
               and "emfix snapshot restore" in f["fix"] for f in json.loads(doctor.stdout)["findings"])


def test_init_on_a_damaged_file_is_exit_4_and_writes_nothing(demo_db):
    """It said "already has every Experiment Manager table", exit 0 (a generation-1 file got tables written)."""
    with sqlite3.connect(demo_db.path) as con:
        con.execute("DROP TABLE BATCH_ARTIFACT")  # a table init would create
    con.close()
    size = os.path.getsize(demo_db.path)
    with open(demo_db.path, "r+b") as handle:
        handle.truncate(size - 1024)
    with open(demo_db.path, "rb") as handle:
        before = handle.read()
    assert_one_clear_line(run_cli("init", demo_db.path), 4, "is damaged", "quick_check found")
    with open(demo_db.path, "rb") as handle:
        assert handle.read() == before


def test_an_old_layout_export_given_to_import_is_a_usage_error(demo_db, tmp_path):
    path = str(tmp_path / "old.json")
    assert run_cli("export", demo_db.path, "-e", "1", "-o", path, "--format", "json").returncode == 0
    assert_one_clear_line(run_cli("import", demo_db.path, path), 2, "old single-document layout")


# -- snapshots after kills and odd manifests ------------------------------------------------------------

def test_prune_removes_a_snapshot_left_without_manifest(demo_db, tmp_path):
    folder = str(tmp_path / "snaps")
    made = snapshot.create_snapshot(demo_db, folder, verify=True)
    os.remove(os.path.join(folder, made.id + ".json"))  # killed between the rename and the manifest
    hour_ago = made.size and (os.path.getmtime(os.path.join(folder, made.file)) - 7200)
    os.utime(os.path.join(folder, made.file), (hour_ago, hour_ago))
    assert run_cli("snapshot", "verify", demo_db.path, "--snapshot-dir", folder, "--all").returncode == 0
    result = run_cli("snapshot", "prune", demo_db.path, "--snapshot-dir", folder, "--keep", "5", "--json")
    assert result.returncode == 0 and json.loads(result.stdout)["deleted"] == [made.id]
    assert os.listdir(folder) == []


@pytest.mark.parametrize("manifest", ['["a list"]', '{"id": 5, "format": "emfix-snapshot-1", "created_at": 1, '
                                                   '"size": "big", "sha256": 1, "file": 2, "tables": []}', "{not json"])
def test_a_manifest_of_the_wrong_shape_is_damage_not_a_crash(demo_db, tmp_path, manifest):
    folder = str(tmp_path / "snaps")
    made = snapshot.create_snapshot(demo_db, folder, verify=True)
    with open(os.path.join(folder, made.id + ".json"), "w") as handle:
        handle.write(manifest)
    for args in (["list"], ["verify", "--all"], ["prune", "--keep", "1"], ["restore"]):
        result = run_cli("snapshot", args[0], demo_db.path, "--snapshot-dir", folder, *args[1:])
        assert "Traceback" not in result.stderr, (args, result.stderr)
        assert result.returncode in (0, 2), (args, result.stderr)
    verify = run_cli("snapshot", "verify", "--snapshot-dir", folder, made.id)
    assert verify.returncode == 4 and "damaged" in verify.stdout


# -- tables the Experiment Manager does not have ----------------------------------------------------------

def _add_trial_notes(path):
    con = sqlite3.connect(path)
    with con:
        con.execute("CREATE TABLE TRIAL_NOTE (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                    "trial_id INTEGER REFERENCES TRIAL(id), note TEXT)")
        con.execute("INSERT INTO TRIAL_NOTE (trial_id, note) VALUES (1, 'a'), (2, 'b')")
    con.close()


def test_migrate_init_copies_an_extra_child_table_between_sqlite_files(demo_db, tmp_path):
    _add_trial_notes(demo_db.path)
    target = str(tmp_path / "dst.db")
    result = run_cli("migrate", demo_db.path, target, "-e", "1", "--init", "--strategy", "aggressive")
    assert result.returncode == 0, result.stderr
    con = sqlite3.connect(target)
    assert con.execute("SELECT trial_id, note FROM TRIAL_NOTE ORDER BY id").fetchall() == [(1, "a"), (2, "b")]
    con.close()


def test_migrate_and_import_name_an_extra_table_up_front(tmp_path, mysql_address):
    demo_db = DatabaseAddress("sqlite", path=str(tmp_path / "clean.db"))
    make_demo(demo_db, faults=False)
    _add_trial_notes(demo_db.path)
    assert run_cli("init", url_of(mysql_address)).returncode == 0
    refused = run_cli("migrate", demo_db.path, url_of(mysql_address), "-e", "1", "--strategy", "aggressive")
    assert_one_clear_line(refused, 1, "TRIAL_NOTE", "--skip-tables")
    with open_database(mysql_address, readonly=True) as db:
        assert db.scalar("SELECT count(*) FROM `EXPERIMENT`") == 0  # nothing was copied
    skipped = run_cli("migrate", demo_db.path, url_of(mysql_address), "-e", "1", "--strategy", "aggressive",
                      "--skip-tables", "TRIAL_NOTE")
    assert skipped.returncode == 0, skipped.stderr
    export = str(tmp_path / "e1.jsonl")
    assert run_cli("export", demo_db.path, "-e", "1", "-o", export).returncode == 0
    assert_one_clear_line(run_cli("import", url_of(mysql_address), export), 1, "TRIAL_NOTE", "--skip-tables")
    assert run_cli("import", url_of(mysql_address), export, "--skip-tables", "TRIAL_NOTE").returncode == 0


def test_migrate_to_a_missing_experiment_leaves_no_empty_dst(demo_db, tmp_path):
    target = tmp_path / "dst.db"
    result = run_cli("migrate", demo_db.path, str(target), "-e", "77", "--init")
    assert result.returncode == 2 and not target.exists()


# -- MySQL: privileges, a missing database, an oversized value ------------------------------------------

@pytest.fixture
def select_only_user(mysql_address):
    make_demo(mysql_address)
    base = parse_address(mysql_server_url(), environ={})
    user, password = "emfix_ro_%s" % uuid.uuid4().hex[:6], uuid.uuid4().hex
    with open_database(base) as admin:
        admin.execute("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'" % (user, password))
        admin.execute("GRANT SELECT ON `%s`.* TO '%s'@'%%'" % (mysql_address.database, user))
    try:
        yield ("mysql://%s@%s:%s/%s" % (user, base.host, base.port, mysql_address.database),
               {"EMFIX_MYSQL_PASSWORD": password})
    finally:
        with open_database(base) as admin:
            admin.execute("DROP USER IF EXISTS '%s'@'%%'" % user)


@pytest.mark.parametrize("args, grant", [
    (["validate", "{db}"], "GRANT CREATE TEMPORARY TABLES"),
    (["export", "{db}", "-e", "1", "-o", "{tmp}/e.jsonl"], "GRANT CREATE TEMPORARY TABLES"),
    (["fix-json", "{db}", "--yes", "--no-snapshot", "--quarantine-dir", "{tmp}/q"], "GRANT UPDATE"),
])
def test_a_missing_privilege_is_exit_3_with_the_grant(select_only_user, tmp_path, args, grant):
    url, env = select_only_user
    argv = [a.replace("{db}", url).replace("{tmp}", str(tmp_path)) for a in args]
    assert_one_clear_line(run_cli(*argv, env=env), 3, "may not do this", grant)


def test_doctor_without_process_privilege_warns_and_goes_on(select_only_user):
    url, env = select_only_user
    result = run_cli("doctor", url, "--json", env=env)
    assert result.returncode in (0, 1), result.stderr
    lock = [f for f in json.loads(result.stdout)["findings"] if f["check"] == "lock"][0]
    assert lock["level"] == "WARN" and "PROCESS" in lock["fix"]


def test_init_creates_a_missing_mysql_database(mysql_databases):
    base = parse_address(mysql_server_url(), environ={})
    name = "emfix_t_new_%s" % uuid.uuid4().hex[:8]
    url = "mysql://%s@%s:%s/%s" % (base.user, base.host, base.port, name)
    try:
        assert run_cli("init", url).returncode == 0
        assert run_cli("schema", url).returncode == 0
    finally:
        with open_database(base) as admin:
            admin.execute("DROP DATABASE IF EXISTS `%s`" % name)


def test_migrate_refuses_a_value_over_max_allowed_packet_up_front(demo_db, mysql_address):
    with open_database(parse_address(mysql_server_url(), environ={})) as admin:
        packet = int(admin.scalar("SELECT @@max_allowed_packet"))
    con = sqlite3.connect(demo_db.path)
    with con:
        con.execute("UPDATE METRIC SET per_label_val = ? WHERE id = 1", ('{"a": "%s"}' % ("x" * packet),))
    con.close()
    result = run_cli("migrate", demo_db.path, url_of(mysql_address), "-e", "1", "--init", "--strategy", "aggressive")
    assert_one_clear_line(result, 4, "max_allowed_packet", "SET GLOBAL max_allowed_packet")


def tables_with_rows(address):
    with open_database(address, readonly=True) as db:
        return {t for t in db.tables() if db.scalar("SELECT count(*) FROM %s" % db.quote(t))}


@pytest.mark.parametrize("dst_has_tables", [False, True, "varbinary"])
def test_migrate_refuses_a_value_longer_than_dsts_column_up_front(demo_db, mysql_address, dst_has_tables):
    """Round 29: a TRIAL.name longer than the VARCHAR(255) --init makes (or than DST's own column) stopped the copy
    at its batch, after other tables' pages committed: DST held runs and batches without their trial (exit 1, a
    hint about differing tables; MySQL into MySQL: exit 70). Refused before anything is written now."""
    if dst_has_tables:
        assert run_cli("init", url_of(mysql_address)).returncode == 0
        with open_database(mysql_address) as db:
            db.execute("ALTER TABLE TRIAL MODIFY name %s NOT NULL" % (
                "VARBINARY(20)" if dst_has_tables == "varbinary" else "VARCHAR(3)"))
    if dst_has_tables == "varbinary":  # round 30: six emoji are 6 characters, 24 bytes
        con = sqlite3.connect(demo_db.path)
        with con:
            con.execute("UPDATE TRIAL SET name = ? WHERE experiment_id = 1", ("\U0001f600" * 6,))
        con.close()
    elif not dst_has_tables:
        con = sqlite3.connect(demo_db.path)
        with con:
            con.execute("UPDATE TRIAL SET name = ? WHERE experiment_id = 1", ("x" * 300,))
        con.close()
    result = run_cli("migrate", demo_db.path, url_of(mysql_address), "-e", "1", "--init", "--strategy", "aggressive")
    assert_one_clear_line(result, 4, "TRIAL.name", "nothing was copied", {
        False: "255 characters", True: "3 characters", "varbinary": "24 bytes"}[dst_has_tables])
    assert not tables_with_rows(mysql_address) - {"SCHEMA_VERSION"}


@pytest.mark.parametrize("from_mysql", [False, True])
def test_migrate_refuses_a_four_byte_character_into_a_utf8mb3_column_up_front(tmp_path, mysql_address,
                                                                            mysql_databases, from_mysql):
    """Round 30: an emoji into DST's TRIAL.name made CHARACTER SET utf8mb3 stopped the copy at its batch, other
    tables committed, with a hint that the value was not UTF-8 (it was; the column cannot hold it)."""
    demo_db = DatabaseAddress("sqlite", path=str(tmp_path / "clean.db"))
    make_demo(demo_db, faults=False)
    con = sqlite3.connect(demo_db.path)
    with con:
        con.execute("UPDATE TRIAL SET name = ? WHERE id = (SELECT min(id) FROM TRIAL WHERE experiment_id = 1)",
                    ("x\U0001f600",))
    con.close()
    source = demo_db.path
    if from_mysql:
        mysql_source = mysql_databases()
        assert run_cli("migrate", demo_db.path, url_of(mysql_source), "-e", "1", "--init", "--strategy",
                       "aggressive").returncode == 0
        source = url_of(mysql_source)
    assert run_cli("init", url_of(mysql_address)).returncode == 0
    with open_database(mysql_address) as db:
        db.execute("ALTER TABLE TRIAL MODIFY name VARCHAR(255) CHARACTER SET utf8mb3 NOT NULL")
    result = run_cli("migrate", source, url_of(mysql_address), "-e", "1", "--strategy", "aggressive")
    assert_one_clear_line(result, 4, "1 value of TRIAL.name holds a 4-byte character", "nothing was copied")
    assert not tables_with_rows(mysql_address) - {"SCHEMA_VERSION"}


def demo_with_a_trial_named(tmp_path, name):
    """A small clean SQLite demo whose first trial (of experiment 1) is called `name`."""
    demo_db = DatabaseAddress("sqlite", path=str(tmp_path / "clean.db"))
    make_demo(demo_db, shape=Shape(experiments=1, trials=2, runs=1, epochs=1, batches=1), faults=False)
    con = sqlite3.connect(demo_db.path)
    with con:
        con.execute("UPDATE TRIAL SET name = ? WHERE id = (SELECT min(id) FROM TRIAL)", (name,))
    con.close()
    return demo_db


@pytest.mark.parametrize("from_mysql", [False, True])
@pytest.mark.parametrize("name, words", [("\u4e2d\u6587", "a character that character set lacks"),
                                         ("caf\xe9 \u20ac\u2013\u0178\x81", None)])
def test_migrate_refuses_characters_a_latin1_column_lacks_up_front(tmp_path, mysql_address, mysql_databases,
                                                                   from_mysql, name, words):
    """Round 33: CJK text into DST's latin1 column stopped the copy at its batch (exit 4, other tables committed).
    What latin1 (Windows-1252 on MySQL and MariaDB) holds is copied; anything else is refused before the first
    batch, from a SQLite SRC as from a MySQL one."""
    demo_db = demo_with_a_trial_named(tmp_path, name)
    source = demo_db.path
    if from_mysql:
        mysql_source = mysql_databases()
        assert run_cli("migrate", demo_db.path, url_of(mysql_source), "-e", "1", "--init").returncode == 0
        source = url_of(mysql_source)
    assert run_cli("init", url_of(mysql_address)).returncode == 0
    with open_database(mysql_address) as db:
        db.execute("ALTER TABLE TRIAL MODIFY name VARCHAR(255) CHARACTER SET latin1 NOT NULL")
    result = run_cli("migrate", source, url_of(mysql_address), "-e", "1")
    if words is None:
        assert result.returncode == 0, result.stderr
        with open_database(mysql_address) as db:
            assert name in [r[0] for r in db.query("SELECT name FROM TRIAL")]
        return
    assert_one_clear_line(result, 4, "1 value of TRIAL.name holds", words, "CHARACTER SET latin1",
                          "nothing was copied")
    assert not tables_with_rows(mysql_address) - {"SCHEMA_VERSION"}


def test_a_check_constraint_of_dst_refusing_a_name_is_not_called_invalid_json(tmp_path, mysql_address):
    """Round 35: a CHECK constraint of DST's TRIAL refusing a name got the hint "a metric value is not valid JSON"."""
    demo_db = demo_with_a_trial_named(tmp_path, "forbidden")
    assert run_cli("init", url_of(mysql_address)).returncode == 0
    with open_database(mysql_address) as db:
        db.execute("ALTER TABLE TRIAL ADD CONSTRAINT no_forbidden CHECK (name <> 'forbidden')")
    result = run_cli("migrate", demo_db.path, url_of(mysql_address), "-e", "1")
    assert_one_clear_line(result, 4, "no_forbidden", "a CHECK constraint of that table refused it")
    assert "JSON" not in result.stderr


@pytest.mark.parametrize("from_mysql", [False, True])
@pytest.mark.parametrize("value, src_type, dst_type, words", [
    (0.125, "DOUBLE", "DECIMAL(5,2)", "more digits after the point than DST's decimal(5,2) keeps"),
    (12345.0, "DOUBLE", "DECIMAL(5,2)", "past what DST's decimal(5,2) holds"),
    (1e308, "DOUBLE", "FLOAT", "past what a FLOAT holds"),  # (the application's own FLOAT: stopped at its batch)
    (1e-300, "DOUBLE", "FLOAT", "too small for a FLOAT (it would be stored as 0)"),  # (round 38: stored as 0)
    (1e-40, "DOUBLE", "FLOAT", None),  # (a FLOAT's smallest numbers keep a few digits, as the application's do)
    ("1.5", "VARCHAR(10)", "DOUBLE", "text or bytes, which DST's number column"),
    ("DONE", "VARCHAR(10)", "ENUM('done','run')", "'DONE', is not one of the values"),  # (copied as 'done': DIFFERS)
    ("done ", "VARCHAR(10)", "ENUM('done','run')", "'done ', is not one of the values"),
    ("b,a", "VARCHAR(10)", "SET('a','b')", "'b,a', is not one of the values"),  # (copied as 'a,b': DIFFERS)
    (3.14159, "DOUBLE", "FLOAT(7,2)", "more digits after the point than DST's float(7,2) keeps"),  # (3.14: DIFFERS)
    (-1.5, "DOUBLE", "DECIMAL(5,2) UNSIGNED", "negative, which DST's decimal(5,2) unsigned refuses"),
    (0.125, "DOUBLE", "DECIMAL(5,3)", None),
    (1.25, "DOUBLE", "DOUBLE(10,2)", None),
    (3.0e38, "DOUBLE", "FLOAT", None),
    ("run", "VARCHAR(10)", "ENUM('done','run')", None),
    ("Run", "VARCHAR(10)", "ENUM('done','Run')", None),  # (refused: the values were compared in lower case)
    ("a\\b", "VARCHAR(10)", "ENUM('Low','a\\\\b')", None),  # (refused: COLUMN_TYPE writes the backslash twice)
    ("run", "VARCHAR(10)", "ENUM('done','Run')", "'run', is not one of the values DST's column (enum('done','Run'))"),
    ("a,b", "VARCHAR(10)", "SET('a','b')", None),
], ids=["decimal-scale", "decimal-range", "float-range", "float-zero", "float-tiny-fits", "text-into-double",
        "enum-case", "enum-space", "set-order", "float-m-d-scale", "unsigned-negative", "decimal-fits",
        "double-m-d-fits", "float-fits", "enum-fits",
        "enum-case-fits", "enum-backslash-fits", "enum-other-case", "set-fits"])
def test_migrate_refuses_what_a_typed_column_of_dst_would_change_up_front(tmp_path, mysql_address, mysql_databases,
                                                                           from_mysql, value, src_type, dst_type,
                                                                           words):
    """Round 35: values DST's DECIMAL, FLOAT, DOUBLE, ENUM or SET column would round, refuse at its batch (other
    tables committed) or store otherwise ('DONE' as 'done', 'b,a' as 'a,b', then DIFFERS) were copied; refused before
    the first batch now, from SQLite and MySQL sources alike; what fits is copied and verifies."""
    demo_db = DatabaseAddress("sqlite", path=str(tmp_path / "clean.db"))
    make_demo(demo_db, shape=Shape(experiments=1, trials=2, runs=1, epochs=2, batches=1), faults=False)
    con = sqlite3.connect(demo_db.path)
    with con:
        con.execute("ALTER TABLE EPOCH ADD COLUMN x %s" % src_type)
        con.execute("UPDATE EPOCH SET x = ? WHERE idx = 1", (value,))
    con.close()
    source = demo_db.path
    if from_mysql:
        mysql_source = mysql_databases()
        assert run_cli("init", url_of(mysql_source)).returncode == 0
        with open_database(mysql_source) as db:
            db.execute("ALTER TABLE EPOCH ADD COLUMN x %s" % src_type)
        assert run_cli("migrate", demo_db.path, url_of(mysql_source), "-e", "1").returncode == 0
        source = url_of(mysql_source)
    assert run_cli("init", url_of(mysql_address)).returncode == 0
    with open_database(mysql_address) as db:
        db.execute("ALTER TABLE EPOCH ADD COLUMN x %s" % dst_type)
    result = run_cli("migrate", source, url_of(mysql_address), "-e", "1")
    if words is None:
        assert result.returncode == 0, result.stdout + result.stderr
        return
    assert_one_clear_line(result, 4, "EPOCH.x", words, "nothing was copied")
    assert not tables_with_rows(mysql_address) - {"SCHEMA_VERSION"}


def test_mysql_to_mysql_into_a_datetime_without_fraction_verifies_as_dst_keeps_it(tmp_path, mysql_address,
                                                                                   mysql_databases):
    """Round 35: from a DATETIME(6) into the application's DATETIME, MySQL -> MySQL said DIFFERS (exit 4), where the
    same copy from SQLite counts the fractions DST drops in its note and verifies: the servers' checksums were
    compared although the columns are declared otherwise."""
    demo_db = DatabaseAddress("sqlite", path=str(tmp_path / "clean.db"))
    make_demo(demo_db, shape=Shape(experiments=1, trials=1, runs=1, epochs=1, batches=1), faults=False)
    source = mysql_databases()
    assert run_cli("init", url_of(source)).returncode == 0
    with open_database(source) as db:
        db.execute("ALTER TABLE EXPERIMENT MODIFY start_time DATETIME(6) NOT NULL")
    assert run_cli("migrate", demo_db.path, url_of(source), "-e", "1").returncode == 0
    with open_database(source) as db:
        db.execute("UPDATE EXPERIMENT SET start_time = '2025-05-01 09:00:01.654321'")
    assert run_cli("init", url_of(mysql_address)).returncode == 0
    result = run_cli("migrate", url_of(source), url_of(mysql_address), "-e", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "note: 1 value of EXPERIMENT.start_time is stored as DST's column keeps them" in result.stdout


def test_an_import_a_batch_of_stopped_says_what_is_committed_and_how_to_finish(tmp_path, mysql_address):
    """Round 35: an import stopped at a batch (here a CHECK constraint of DB) said only what the server refused; its
    first tables were committed, and a plain run again said "partial import exists"."""
    demo_db = demo_with_a_trial_named(tmp_path, "forbidden")
    export = str(tmp_path / "e1.jsonl")
    assert run_cli("export", demo_db.path, "-e", "1", "-o", export).returncode == 0
    assert run_cli("init", url_of(mysql_address)).returncode == 0
    with open_database(mysql_address) as db:
        db.execute("ALTER TABLE TRIAL ADD CONSTRAINT no_forbidden CHECK (name <> 'forbidden')")
    result = run_cli("import", url_of(mysql_address), export)
    assert_one_clear_line(result, 4, "no_forbidden", "the import stopped part way", "--resume finishes it")
    said = int(re.search(r"([0-9,]+) rows? (?:is|are) committed", result.stderr).group(1).replace(",", ""))
    with open_database(mysql_address) as db:  # (round 36: the batch refused was counted too)
        assert said == sum(int(db.scalar("SELECT count(*) FROM %s" % db.quote(t))) for t in db.tables()
                           if t not in ("SCHEMA_VERSION", "_emfix_import"))
    with open_database(mysql_address) as db:
        db.execute("ALTER TABLE TRIAL DROP CONSTRAINT no_forbidden")
    finished = run_cli("import", url_of(mysql_address), export, "--resume")
    assert finished.returncode == 0, finished.stderr
    with open_database(mysql_address) as db:
        assert db.scalar("SELECT count(*) FROM TRIAL") == 2


@pytest.mark.parametrize("name", ["ab", "abcdefghij"])
def test_migrate_refuses_text_a_binary_column_would_pad_up_front(tmp_path, mysql_address, name):
    """Round 45: 'ab' into DST's BINARY(10) came back as 'ab' and eight zero bytes, and the copy said it was exact
    (exit 0). Refused before the first batch now; ten bytes are copied as they are."""
    demo_db = demo_with_a_trial_named(tmp_path, name)
    con = sqlite3.connect(demo_db.path)
    with con:
        con.execute("UPDATE TRIAL SET name = ? || substr(name, 1, 0)", (name,))  # every trial
    con.close()
    assert run_cli("init", url_of(mysql_address)).returncode == 0
    with open_database(mysql_address) as db:
        db.execute("ALTER TABLE TRIAL MODIFY name BINARY(10) NOT NULL")
    result = run_cli("migrate", demo_db.path, url_of(mysql_address), "-e", "1", "--strategy", "aggressive")
    if len(name) == 10:
        assert result.returncode == 0, result.stderr
        with open_database(mysql_address) as db:
            assert {bytes(v) for (v,) in db.query("SELECT name FROM TRIAL")} == {name.encode()}
        return
    assert_one_clear_line(result, 4, "2 values of TRIAL.name are shorter", "BINARY(10)", "nothing was copied",
                          "VARBINARY")
    assert not tables_with_rows(mysql_address) - {"SCHEMA_VERSION"}


def migrate_into_an_altered_column(tmp_path, mysql_address, update, alter, params=(), command="migrate", name="t"):
    """A small demo changed by `update` (SQLite), migrated (or exported, then imported: `command` "import") into a
    MariaDB database made by init, then `alter`ed."""
    demo_db = demo_with_a_trial_named(tmp_path, name)
    con = sqlite3.connect(demo_db.path)
    with con:
        con.execute(update, params)
    con.close()
    export = str(tmp_path / "e1.jsonl")
    if command == "import":
        assert run_cli("export", demo_db.path, "-e", "1", "-o", export).returncode == 0
    assert run_cli("init", url_of(mysql_address)).returncode == 0
    with open_database(mysql_address) as db:
        db.execute(alter)
    if command == "import":
        return run_cli("import", url_of(mysql_address), export)
    return run_cli("migrate", demo_db.path, url_of(mysql_address), "-e", "1")


@pytest.mark.parametrize("real, column_type, refused", [
    (76.0, "VARCHAR(255)", True), (0.25, "TEXT", True), (1e19, "VARCHAR(40)", True),
    (1e19, "BIGINT UNSIGNED", False), (12345678901234567890.0, "BIGINT UNSIGNED", False), (76.0, "INT", False),
    (0.5, "VARBINARY(40)", True), (float("inf"), "LONGBLOB", True)])  # (round 59: DIFFERS; stopped part way)
def test_migrate_refuses_a_real_a_text_column_would_keep_as_its_text_and_verifies_huge_whole_reals(
        tmp_path, mysql_address, real, column_type, refused):
    """The session after round 47: a SQLite REAL into DST's VARCHAR was copied as MySQL's text of it ('76.0'), then
    the verify said DIFFERS (exit 4, the rows written); refused before the first batch now. A whole REAL past 1e15
    (1e19, 2^63 and more) copied into a BIGINT UNSIGNED is stored as the same number, and the verify says so (it said
    DIFFERS: SRC's float against DST's integer)."""
    result = migrate_into_an_altered_column(tmp_path, mysql_address, "UPDATE METRIC SET total_val = ?",
                                            "ALTER TABLE METRIC MODIFY total_val %s NOT NULL" % column_type, (real,))
    if refused:
        assert_one_clear_line(result, 4, "METRIC.total_val are REALs", "never the same value", "nothing was copied",
                              "DOUBLE")
        assert not tables_with_rows(mysql_address) - {"SCHEMA_VERSION"}
        return
    assert result.returncode == 0, result.stdout + result.stderr
    with open_database(mysql_address) as db:
        assert {int(v) for (v,) in db.query("SELECT total_val FROM METRIC")} == {int(real)}


def test_migrate_verifies_whole_numbers_a_bytes_column_keeps_as_their_digits(tmp_path, mysql_address):
    """Round 59: SQLite's 7 copied into an application's VARBINARY column is stored as b'7', as MySQL keeps a number
    there; the verify said DIFFERS (exit 4, every --resume too)."""
    demo_db = demo_with_a_trial_named(tmp_path, "t")
    con = sqlite3.connect(demo_db.path)
    with con:
        con.execute("CREATE TABLE note (k TEXT PRIMARY KEY, trial_id INT REFERENCES TRIAL(id), v)")
        con.execute("INSERT INTO note SELECT 'k' || id, id, CASE id % 2 WHEN 0 THEN id * -1234567 ELSE "
                    "'2025-01-01 10:00:00' END FROM TRIAL WHERE experiment_id = 1")  # (text as written, 'T' or not)
    con.close()
    assert run_cli("init", url_of(mysql_address)).returncode == 0
    with open_database(mysql_address) as db:
        db.execute("CREATE TABLE note (k VARCHAR(20) PRIMARY KEY, trial_id INT, v VARBINARY(30), "
                   "FOREIGN KEY (trial_id) REFERENCES TRIAL(id))")
    result = run_cli("migrate", demo_db.path, url_of(mysql_address), "-e", "1", "--no-snapshot")
    assert result.returncode == 0, result.stdout + result.stderr
    with open_database(mysql_address) as db:
        kept = db.query("SELECT v FROM note ORDER BY k")
    assert kept and all(bytes(v).lstrip(b"-").isdigit() or bytes(v) == b"2025-01-01 10:00:00" for (v,) in kept)


@pytest.mark.parametrize("real, column_type, refused", [
    (76.0, "VARCHAR(255)", True), (0.25, "TEXT", True), (76.0, "DOUBLE", False), (1e19, "BIGINT UNSIGNED", False)])
def test_import_refuses_a_float_a_text_column_would_keep_as_its_text(tmp_path, mysql_address, real, column_type,
                                                                      refused):
    """The session after round 47: the file's 76.0 went into a VARCHAR as the text '76.0', exit 0. Refused before the
    first row now, as migrate refuses a SQLite REAL there; number columns take it as before."""
    result = migrate_into_an_altered_column(tmp_path, mysql_address, "UPDATE METRIC SET total_val = ?",
                                            "ALTER TABLE METRIC MODIFY total_val %s NOT NULL" % column_type, (real,),
                                            command="import")
    if refused:
        assert_one_clear_line(result, 4, "METRIC.total_val", "numbers with a point", "nothing was imported", "DOUBLE")
        assert not tables_with_rows(mysql_address) - {"SCHEMA_VERSION"}
        return
    assert result.returncode == 0, result.stderr
    with open_database(mysql_address) as db:
        assert {float(v) for (v,) in db.query("SELECT total_val FROM METRIC")} == {real}


@pytest.mark.parametrize("name", ["ab", "abcdefghij", b"\x00\xff" * 5])
def test_import_refuses_text_a_binary_column_would_pad_up_front(tmp_path, mysql_address, name):
    """Import had no such check (the session after round 47): 'ab' went into a BINARY(10) as 'ab' and eight zero
    bytes, exit 0. Refused before the first row now, as migrate does; ten bytes are imported as they are, text or
    bytes."""
    result = migrate_into_an_altered_column(tmp_path, mysql_address, "UPDATE TRIAL SET name = ? || substr(name, 1, 0)",
                                            "ALTER TABLE TRIAL MODIFY name BINARY(10) NOT NULL", (name,),
                                            command="import", name=name)
    if len(name) == 10:
        assert result.returncode == 0, result.stderr
        with open_database(mysql_address) as db:
            assert {bytes(v) for (v,) in db.query("SELECT name FROM TRIAL")} == {
                name if isinstance(name, bytes) else name.encode()}
        return
    assert_one_clear_line(result, 4, "2 values of TRIAL.name are shorter", "BINARY(10)", "nothing was imported",
                          "VARBINARY")
    assert not tables_with_rows(mysql_address) - {"SCHEMA_VERSION"}


@pytest.mark.parametrize("name", ["run ", "run", "run\x00 ", "run \x00x"])
def test_migrate_refuses_a_trailing_space_into_a_char_column_up_front(tmp_path, mysql_address, name):
    """Round 33: a TRIAL.name ending in a space into DST's CHAR column (which drops trailing spaces) was copied, and
    only the verify found it: DIFFERS, exit 4, every --resume too. Refused before the first batch now; text holding
    a NUL by its last character, not by the one before the NUL (LIKE reads up to it)."""
    demo_db = demo_with_a_trial_named(tmp_path, name)
    assert run_cli("init", url_of(mysql_address)).returncode == 0
    with open_database(mysql_address) as db:
        db.execute("ALTER TABLE TRIAL MODIFY name CHAR(100) NOT NULL")
    result = run_cli("migrate", demo_db.path, url_of(mysql_address), "-e", "1", "--strategy", "aggressive")
    if not name.endswith(" "):
        assert result.returncode == 0, result.stderr
        return
    assert_one_clear_line(result, 4, "1 value of TRIAL.name ends in a space", "CHAR", "nothing was copied")
    assert not tables_with_rows(mysql_address) - {"SCHEMA_VERSION"}


@pytest.mark.parametrize("case", ["epoch idx 2^31 into --init's INT", "SQLite REAL past INT", "2^63 into BIGINT",
                                  "40000 into DST's SMALLINT", "40000 beside text into DST's SMALLINT",
                                  "32767 beside a fraction into DST's SMALLINT", "32767 into DST's SMALLINT",
                                  "-1 into DST's SMALLINT UNSIGNED", "255 into DST's BIT(8)", "256 into DST's BIT(8)"])
def test_migrate_refuses_a_number_dsts_integer_column_cannot_hold_up_front(tmp_path, mysql_address, mysql_databases,
                                                                          case):
    """Round 32: an EPOCH.idx of 2^31 (and its BATCH rows' epoch_idx) into the INT --init makes stopped the copy at
    its batch, METRIC's rows committed and no EXPERIMENT row (exit 4, and every --resume the same); MySQL into MySQL
    the same with a BIGINT UNSIGNED past 2^63 into a BIGINT. Refused before anything is written now; a number
    that fits is no refusal (the last case)."""
    demo_db = DatabaseAddress("sqlite", path=str(tmp_path / "clean.db"))
    make_demo(demo_db, shape=Shape(experiments=2, trials=2, runs=2, epochs=2, batches=2), faults=False)
    source, words = demo_db.path, None
    con = sqlite3.connect(demo_db.path)
    with con:
        run = con.execute("SELECT min(r.id) FROM TRIAL_RUN r JOIN TRIAL t ON t.id = r.trial_id WHERE "
                          "t.experiment_id = 1").fetchone()[0]
        if case == "epoch idx 2^31 into --init's INT":
            con.execute("PRAGMA foreign_keys = OFF")
            for table, column in (("EPOCH", "idx"), ("BATCH", "epoch_idx"), ("EPOCH_METRIC", "epoch_idx")):
                con.execute("UPDATE %s SET %s = 2147483648 WHERE %s = 0 AND %s = ?" % (
                    table, column, column, "epoch_trial_run_id" if table == "EPOCH_METRIC" else "trial_run_id"), (run,))
            words = "EPOCH.idx is 2147483648"
        elif case == "SQLite REAL past INT":
            con.execute("UPDATE EPOCH SET idx = 3e9 WHERE idx = 1 AND trial_run_id = ?", (run,))
            words = "EPOCH.idx is 3000000000"
        elif "DST's" in case:  # a column of its own: not one of the walk's key tables
            con.execute("ALTER TABLE EPOCH ADD COLUMN n INTEGER")
            con.execute("UPDATE EPOCH SET n = ? WHERE trial_run_id = ?", (int(case.split()[0]), run))
            words = {"40000": "EPOCH.n is 40000", "-1": "EPOCH.n is -1, outside", "256": "EPOCH.n is 256"}.get(
                case.split()[0])
            if "text" in case:  # round 33: text (or a fraction, a BLOB) MySQL's integer column changes or refuses
                con.execute("UPDATE EPOCH SET n = 'many' WHERE idx = 0 AND trial_run_id = ?", (run,))
                words = "1 value of EPOCH.n is not an integer"
            if "fraction" in case:
                con.execute("UPDATE EPOCH SET n = 3.5 WHERE idx = 0 AND trial_run_id = ?", (run,))
                words = "1 value of EPOCH.n is not an integer"
    con.close()
    if case == "2^63 into BIGINT":
        mysql_source = mysql_databases()
        assert run_cli("migrate", demo_db.path, url_of(mysql_source), "-e", "1", "--init", "--strategy",
                       "aggressive").returncode == 0
        with open_database(mysql_source) as db:
            db.execute("ALTER TABLE RESULTS ADD COLUMN xu BIGINT UNSIGNED")
            db.execute("UPDATE RESULTS SET xu = 9223372036854775808")
        source, words = url_of(mysql_source), "RESULTS.xu is 9223372036854775808"
    assert run_cli("init", url_of(mysql_address)).returncode == 0
    with open_database(mysql_address) as db:
        if case == "2^63 into BIGINT":
            db.execute("ALTER TABLE RESULTS ADD COLUMN xu BIGINT")
        if "DST's" in case:
            db.execute("ALTER TABLE EPOCH ADD COLUMN n %s" % case.split("DST's ")[1])
    result = run_cli("migrate", source, url_of(mysql_address), "-e", "1", "--init", "--strategy", "aggressive")
    if words is None:
        assert result.returncode == 0, result.stderr
        return
    assert_one_clear_line(result, 4, words, "nothing was copied",
                          "typeof" if "not an integer" in words else "ALTER TABLE")
    assert not tables_with_rows(mysql_address) - {"SCHEMA_VERSION"}


def test_text_ids_in_a_link_column_are_said_of_the_link_column(tmp_path, mysql_address):
    """Round 45: BATCH_METRIC.metric_id holding its ids as text (a TEXT column) was refused as "values of METRIC.id
    are not an integer": METRIC's ids were read from the walk's key table, which holds the link columns' values."""
    demo_db = DatabaseAddress("sqlite", path=str(tmp_path / "clean.db"))
    make_demo(demo_db, shape=Shape(experiments=1, trials=1, runs=2, epochs=2, batches=2), faults=False)
    con = sqlite3.connect(demo_db.path)
    with con:
        con.execute("PRAGMA foreign_keys = OFF")
        con.execute("CREATE TABLE held AS SELECT batch_idx, epoch_idx, trial_run_id, metric_id FROM BATCH_METRIC")
        con.execute("DROP TABLE BATCH_METRIC")
        con.execute("CREATE TABLE BATCH_METRIC (batch_idx INT, epoch_idx INT, trial_run_id INT, metric_id TEXT, "
                    "PRIMARY KEY (batch_idx, epoch_idx, trial_run_id, metric_id), FOREIGN KEY (batch_idx, epoch_idx, "
                    "trial_run_id) REFERENCES BATCH (idx, epoch_idx, trial_run_id), FOREIGN KEY (metric_id) "
                    "REFERENCES METRIC (id))")
        con.execute("INSERT INTO BATCH_METRIC SELECT batch_idx, epoch_idx, trial_run_id, CAST(metric_id AS TEXT) "
                    "FROM held")
        con.execute("DROP TABLE held")
    con.close()
    result = run_cli("migrate", demo_db.path, url_of(mysql_address), "-e", "1", "--init")
    assert_one_clear_line(result, 4, "values of BATCH_METRIC.metric_id are not an integer", "nothing was copied")


SQLITE_NUMBERS = st.one_of(st.integers(-2 ** 63, 2 ** 63 - 1), st.integers(-5, 5), st.floats(allow_nan=False),
                           st.sampled_from([3.0, 2.5, -0.0, 1e19, 9e999, -9e999, 2.0 ** 63]))
SQLITE_VALUES = st.one_of(st.none(), SQLITE_NUMBERS, SQLITE_NUMBERS, SQLITE_NUMBERS, st.text(max_size=3),
                          st.binary(max_size=3))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(SQLITE_VALUES, min_size=2, max_size=2), max_size=6))
@example([[1, 1], [2.5, 2.5], [3, 3]])
def test_the_quick_integer_check_answers_as_the_value_by_value_count(rows):
    """migrate's check of the numbers an integer column of DST gets from SQLite reads min(), max() and sum(v * 0)
    first, and counts the values that are not integers one by one only where those are not all integers: either way
    the same lowest, highest and count as counting every value (an INTEGER column and one of no affinity)."""
    from emfix.copyrefusals import _integer_tests, integer_bounds
    with open_database(DatabaseAddress("sqlite", path=":memory:")) as db:
        db.execute("CREATE TABLE t (i INTEGER, b)")
        with db.transaction():
            for row in rows:
                db.execute("INSERT INTO t VALUES (?, ?)", tuple(row))
        tests = [_integer_tests(db, c, None) for c in ("i", "b")]
        counted = db.query("SELECT %s FROM t t" % ", ".join("min({0}), max({0}), {1}".format(*x) for x in tests))[0]
        def said(row):  # (a count of no rows is NULL: none)
            return [v or 0 if n % 3 == 2 else v for n, v in enumerate(row)]
        assert said(integer_bounds(db, tests, "t t", sqlite=True)) == said(counted)


@pytest.mark.parametrize("engine, src_type, values, dst_type, words", [
    ("sqlite", "REAL", (3.0, 1e19), "BIGINT UNSIGNED", None),  # whole numbers that fit (round 34: refused)
    ("sqlite", "INTEGER", (5,), "YEAR", "EPOCH.n is 5, outside"),  # (stored as 2005)
    ("mysql", "DOUBLE", (3.0, 3.5), "INT", "1 value of EPOCH.n is not an integer"),  # (copied as 4)
    ("mysql", "VARCHAR(20)", ("12", "12abc"), "INT", "2 values of EPOCH.n are not an integer"),  # (stopped its
    ("mysql", "VARCHAR(20)", ("12",), "INT", "1 value of EPOCH.n is not an integer"),  # batch; '12' never verified)
    ("mysql", "DECIMAL(20,0)", (1000000000000,), "INT", "EPOCH.n is 1000000000000, outside"),
    ("mysql", "DOUBLE", (3.0, -7.0), "INT", None),
])
def test_migrate_refuses_what_an_integer_column_would_change_and_copies_what_it_keeps(
        tmp_path, mysql_address, mysql_databases, engine, src_type, values, dst_type, words):
    """Round 34: MySQL -> MySQL from a DOUBLE, a DECIMAL or a VARCHAR into an INT, and anything into a YEAR, was not
    checked before the copy (3.5 copied as 4, 5 as 2005, then DIFFERS; '12abc' stopped its batch); from SQLite a
    whole REAL (3.0, 1e19) was refused as "not an integer"."""
    source = mysql_databases() if engine == "mysql" else DatabaseAddress("sqlite", path=str(tmp_path / "s.db"))
    make_demo(source, shape=Shape(experiments=2, trials=1, runs=1, epochs=3, batches=1), faults=False)
    with open_database(source) as db:
        db.execute("ALTER TABLE EPOCH ADD COLUMN n %s" % src_type)
        run = db.scalar("SELECT min(r.id) FROM TRIAL_RUN r JOIN TRIAL t ON t.id = r.trial_id WHERE t.experiment_id = 1")
        with db.transaction():
            for idx, value in enumerate(values):
                db.execute("UPDATE EPOCH SET n = ? WHERE trial_run_id = ? AND idx = ?", (value, run, idx))
    assert run_cli("init", url_of(mysql_address)).returncode == 0
    with open_database(mysql_address) as db:
        db.execute("ALTER TABLE EPOCH ADD COLUMN n %s" % dst_type)
    result = run_cli("migrate", url_of(source), url_of(mysql_address), "-e", "1", "--strategy", "aggressive")
    if words is None:
        assert result.returncode == 0, result.stderr
        return
    assert_one_clear_line(result, 4, words, "nothing was copied")
    assert not tables_with_rows(mysql_address) - {"SCHEMA_VERSION"}


def imported_or_refused_whole(result, mysql_address, words, *said):
    """An import that went in (exit 0) where `words` is None, else one clear line (exit 4) saying `said` and
    `words`, with nothing imported."""
    if words is None:
        assert result.returncode == 0, result.stderr
        return
    assert_one_clear_line(result, 4, *said, words, "nothing was imported")
    assert not tables_with_rows(mysql_address) - {"SCHEMA_VERSION"}


def import_epoch_values(tmp_path, mysql_address, values, src_type, dst_type, column="x"):
    """Export experiment 1 of a small SQLite demo whose EPOCH has one more column (`src_type`) holding `values` (by
    idx), then import it into MySQL whose EPOCH has that column as `dst_type`; the import's result."""
    source = DatabaseAddress("sqlite", path=str(tmp_path / "s.db"))
    make_demo(source, shape=Shape(experiments=1, trials=1, runs=1, epochs=3, batches=1), faults=False)
    con = sqlite3.connect(source.path)
    with con:
        con.execute("ALTER TABLE EPOCH ADD COLUMN %s %s" % (column, src_type))
        for idx, value in values.items():
            con.execute("UPDATE EPOCH SET %s = ? WHERE idx = ?" % column, (value, idx))
    con.close()
    export = str(tmp_path / "e1.jsonl")
    assert run_cli("export", source.path, "-e", "1", "-o", export).returncode == 0
    assert run_cli("init", url_of(mysql_address)).returncode == 0
    with open_database(mysql_address) as db:
        db.execute("ALTER TABLE EPOCH ADD COLUMN %s %s" % (column, dst_type))
    return run_cli("import", url_of(mysql_address), export)


@pytest.mark.parametrize("values, dst_type, words", [
    ((3.0, 3.5), "INT", "1 value of EPOCH.n in "),  # (imported as 4, exit 0)
    ((5,), "YEAR", "is 5, outside 1901 to 2155"),  # (imported as 2005; a REAL column of SQLite)
    ((300,), "TINYINT UNSIGNED", "is 300, outside 0 to 255"),  # (stopped part way, the rows before it committed)
    ((3.0, -7, 1e9), "INT", None),
])
def test_import_into_mysql_refuses_what_an_integer_column_would_change_before_writing(tmp_path, mysql_address,
                                                                                       values, dst_type, words):
    """Round 34: import had no check of its own: a REAL 3.5 into an INT column was imported as 4 with exit 0, 5 into
    a YEAR as 2005, and a value out of range stopped it part way. Refused before anything is written now."""
    result = import_epoch_values(tmp_path, mysql_address, dict(enumerate(values)), "REAL", dst_type, column="n")
    if words is None:
        assert result.returncode == 0, result.stderr
        with open_database(mysql_address) as db:
            assert sorted(r[0] for r in db.query("SELECT n FROM EPOCH")) == sorted(int(v) for v in values)
        return
    assert_one_clear_line(result, 4, words, "nothing was imported")
    assert not tables_with_rows(mysql_address) - {"SCHEMA_VERSION"}


@pytest.mark.parametrize("value, dst_type, words", [
    ("é" * 21, "VARCHAR(20)", "EPOCH.note is 21 characters, more than"),  # (stopped at its batch, exit 4)
    ("ab\U0001F600", "VARCHAR(20) CHARACTER SET utf8mb3", "a 4-byte character"),
    ("é" * 200, "TINYTEXT", "EPOCH.note is 400 bytes, more than"),  # characters of 2 bytes: TINYTEXT holds 255 bytes
    (b"\x00\x01\x02" * 4, "VARBINARY(11)", "EPOCH.note is 12 bytes, more than"),
    ("run ", "CHAR(20)", "1 value of EPOCH.note ends in a space"),  # (imported without it, exit 0)
    ("\u4e2d\u6587", "VARCHAR(20) CHARACTER SET latin1", "a character that character set lacks"),
    ("caf\xe9 \u20ac\u2013\x81", "VARCHAR(20) CHARACTER SET latin1", None),  # latin1 (Windows-1252) holds these
    ("é" * 20, "VARCHAR(20)", None),  # as long as the column: imported
    (b"\xff" * 11, "VARBINARY(11)", None),
], ids=["characters", "utf8mb3", "bytes-of-text", "bytes", "char", "latin1", "latin1-fits", "text-fits",
        "bytes-fit"])
def test_import_into_mysql_refuses_text_its_columns_cannot_hold_before_writing(tmp_path, mysql_address, value,
                                                                               dst_type, words):
    """An outside tester (round 33): import had no check of text lengths or character sets; a value longer than its
    column, or an emoji into utf8mb3, stopped it at its batch (exit 4) with the batches before committed. Measured
    while the file is checked now, and refused before anything is written."""
    result = import_epoch_values(tmp_path, mysql_address, {1: value}, "", dst_type, column="note")
    if words is None:
        assert result.returncode == 0, result.stderr
        with open_database(mysql_address) as db:
            assert [r[0] for r in db.query("SELECT note FROM EPOCH WHERE note IS NOT NULL")] == [value]
        return
    assert_one_clear_line(result, 4, words, "nothing was imported")
    assert not tables_with_rows(mysql_address) - {"SCHEMA_VERSION"}


@pytest.mark.parametrize("value, dst_type, words", [
    (0.125, "DECIMAL(5,2)", "3 digits after the point, which its DECIMAL(5,2) column would round"),  # (0.13, exit 0)
    (12345.0, "DECIMAL(5,2)", "12345, past what its DECIMAL(5,2) column holds"),
    (1e308, "FLOAT", "past what a FLOAT holds"),  # (stopped at its batch: the application's own total_val type)
    (-1e-300, "FLOAT", "too small for a FLOAT (it would be stored as 0)"),  # (round 38: stored as 0, exit 0)
    (float("inf"), "DOUBLE", "inf or nan, which no MySQL number holds"),  # (exit 70: Unknown column 'inf')
    ("abc", "DOUBLE", "text or bytes, which its number column"),
    ("2025-01-01", "DATETIME", "not a valid DATETIME"),  # (imported as 2025-01-01 00:00:00, exit 0)
    ("2025-01-01T10:00:00Z", "DATETIME(6)", "not a valid DATETIME"),
    ("2025-02-30 10:00:00", "DATETIME", "not a valid DATETIME"),
    (20250101, "DATE", "not a valid DATE"),
    (123456, "VARCHAR(3)", "is 6 characters, more than"),  # (a number's digits: stopped at its batch)
    (3.14159, "FLOAT(7,2)", "5 digits after the point, which its FLOAT(7,2) column would round"),  # (3.14, exit 0)
    ("DONE", "ENUM('done','Run')", "'DONE', not one of the values its column (enum('done','Run'))"),  # ('done')
    ("run", "ENUM('done','Run')", "'run', not one of the values"),  # (imported as 'Run', exit 0)
    (1, "ENUM('done','Run')", "not text, which its ENUM column would store as another value"),  # ('done')
    ("b,a", "SET('a','b')", "'b,a', not one of the values"),  # (imported as 'a,b', exit 0)
    (-1000.0, "DOUBLE(6,3)", "-1000, past what its DOUBLE(6,3) column holds"),  # (said as 1000: round 37)
    ("Run", "ENUM('done','Run')", None),
    ("a\\b", "ENUM('Low','a\\\\b')", None),  # (a member holding a backslash was refused: round 37)
    ("a,b", "SET('a','b')", None),
    (-2.5, "DOUBLE UNSIGNED", "negative, which its DOUBLE UNSIGNED column refuses"),  # (stopped part way)
    (0.125, "DECIMAL(5,3)", None),
    ("2025-01-01T10:00:00.5", "DATETIME(6)", None),
    ("2025-01-01", "DATE", None),
    (3.0e38, "FLOAT", None),
], ids=["decimal-scale", "decimal-range", "float-range", "float-zero", "inf", "text-into-double",
        "date-into-datetime", "zulu",
        "no-such-day", "number-into-date", "digits-into-varchar", "float-m-d-scale", "enum-case", "enum-other-case",
        "number-into-enum", "set-order", "negative-range", "enum-fits", "enum-backslash-fits", "set-fits",
        "unsigned-negative", "decimal-fits",
        "datetime-fits", "date-fits", "float-fits"])
def test_import_into_mysql_refuses_what_its_columns_would_change_before_writing(tmp_path, mysql_address, value,
                                                                                dst_type, words):
    """Round 35: import has no verify, and changed values with exit 0 (a DECIMAL(5,2) rounded 0.125 to 0.13, a DATE
    into a DATETIME got a time), or stopped part way (1e308 into a FLOAT, 'abc' into a DOUBLE, a Z time zone), or
    crashed (inf: exit 70). The file's values are measured while it is checked, and refused before writing."""
    result = import_epoch_values(tmp_path, mysql_address, {1: value}, "", dst_type)
    imported_or_refused_whole(result, mysql_address, words, "EPOCH.x")


def test_import_says_the_fractions_of_a_second_a_datetime_column_does_not_keep(tmp_path, mysql_address):
    """Round 36: "2025-01-01 10:00:00.5" into the application's DATETIME was stored without its fraction, said
    nowhere (migrate says so in its note)."""
    result = import_epoch_values(tmp_path, mysql_address, {1: "2025-01-01 10:00:00.500"}, "", "DATETIME")
    assert result.returncode == 0, result.stderr
    assert "EPOCH.x in" in result.stderr and "fractions of a second to 1 digit;" in result.stderr, result.stderr
    assert "keeps 0: they are stored as it keeps them" in result.stderr


def test_import_refuses_a_row_past_max_allowed_packet_before_writing(tmp_path, mysql_address):
    """Round 35: two values each under max_allowed_packet, in one row over it, crashed import (exit 70: 1153) after
    its first tables were committed."""
    with open_database(mysql_address) as db:
        packet = int(db.scalar("SELECT @@max_allowed_packet"))
    source = DatabaseAddress("sqlite", path=str(tmp_path / "s.db"))
    make_demo(source, shape=Shape(experiments=1, trials=1, runs=1, epochs=1, batches=1), faults=False)
    con = sqlite3.connect(source.path)
    with con:
        con.execute("UPDATE ARTIFACT SET type = ?, loc = ? WHERE id = (SELECT min(id) FROM ARTIFACT)",
                    ("t" * (packet * 6 // 10), "l" * (packet * 6 // 10)))
    con.close()
    export = str(tmp_path / "e1.jsonl")
    assert run_cli("export", source.path, "-e", "1", "-o", export).returncode == 0
    assert run_cli("init", url_of(mysql_address)).returncode == 0
    with open_database(mysql_address) as db:
        db.execute("ALTER TABLE ARTIFACT MODIFY type LONGTEXT NOT NULL, MODIFY loc LONGTEXT NOT NULL")
    assert_one_clear_line(run_cli("import", url_of(mysql_address), export), 4, "a row of ARTIFACT",
                          "max_allowed_packet", "nothing was imported")
    assert not tables_with_rows(mysql_address) - {"SCHEMA_VERSION"}


def test_import_of_the_damaged_demo_into_mysqls_json_column_refuses_its_metrics_up_front(tmp_path, demo_db,
                                                                                         mysql_address):
    """Round 36: the demo's own malformed metric JSON, imported into the JSON column `emfix init` makes on MariaDB,
    stopped the import part way; refused before the first row now, as migrate does."""
    export = str(tmp_path / "e1.jsonl")
    assert run_cli("export", demo_db.path, "-e", "1", "-o", export).returncode == 0
    assert run_cli("init", url_of(mysql_address)).returncode == 0
    result = run_cli("import", url_of(mysql_address), export, "--allow-dangling")
    assert_one_clear_line(result, 4, "METRIC.per_label_val", "not valid JSON", "nothing was imported")
    assert not tables_with_rows(mysql_address) - {"SCHEMA_VERSION"}


@pytest.mark.parametrize("depth, words", [(31, None), (32, "not valid JSON")])
def test_import_holds_metric_json_to_what_mariadbs_json_column_takes(tmp_path, mysql_address, depth, words):
    """Round 37: a metric nested 32 deep (MariaDB's json_valid() takes 31) stopped the import part way."""
    source = DatabaseAddress("sqlite", path=str(tmp_path / "s.db"))
    make_demo(source, shape=Shape(experiments=1, trials=1, runs=1, epochs=1, batches=1), faults=False)
    con = sqlite3.connect(source.path)
    with con:
        con.execute("UPDATE METRIC SET per_label_val = ? WHERE id = (SELECT min(id) FROM METRIC)",
                    ('{"a": %s}' % ("[" * (depth - 1) + "]" * (depth - 1)),))
    con.close()
    export = str(tmp_path / "e1.jsonl")
    assert run_cli("export", source.path, "-e", "1", "-o", export).returncode == 0
    assert run_cli("init", url_of(mysql_address)).returncode == 0
    result = run_cli("import", url_of(mysql_address), export)
    imported_or_refused_whole(result, mysql_address, words, "METRIC.per_label_val")


def test_import_into_sqlite_refuses_nan_which_sqlite_stores_as_null(tmp_path, demo_db):
    export = str(tmp_path / "e1.jsonl")
    assert run_cli("export", demo_db.path, "-e", "1", "-o", export).returncode == 0
    lines = open(export).read().splitlines(keepends=True)
    metric = next(i for i, line in enumerate(lines) if '"table": "METRIC"' in line)
    record = json.loads(lines[metric])
    record["row"][2] = {"$float": "nan"}
    lines[metric] = json.dumps(record) + "\n"
    trailer = json.loads(lines[-1])
    trailer["trailer"]["sha256"] = hashlib.sha256("".join(lines[1:-1]).encode("utf-8")).hexdigest()
    lines[-1] = json.dumps(trailer) + "\n"
    open(export, "w").writelines(lines)
    target = str(tmp_path / "t.db")
    assert run_cli("init", target).returncode == 0
    assert_one_clear_line(run_cli("import", target, export), 4, "METRIC.total_val", "NaN, which SQLite stores as NULL",
                          "nothing was imported")


@pytest.mark.parametrize("command", ["migrate", "import"])
def test_ids_moved_past_dsts_int_id_column_are_refused_before_they_are_reserved(tmp_path, mysql_address, command):
    """Round 33: a DST whose TRIAL ids already reach near an INT's 2^31 - 1 moved the copy's colliding ids past it;
    the copy stopped at its first batch. Refused before the ids are reserved now, nothing written."""
    demo_db = DatabaseAddress("sqlite", path=str(tmp_path / "clean.db"))
    make_demo(demo_db, shape=Shape(experiments=2, trials=3, runs=1, epochs=1, batches=1), faults=False)
    assert run_cli("init", url_of(mysql_address)).returncode == 0
    with open_database(mysql_address) as db:
        with db.transaction():
            db.execute("SET foreign_key_checks = 0")
            for ident in (1, 2147483646):
                db.execute("INSERT INTO TRIAL (id, name, experiment_id, start_time, update_time) VALUES (?, 'app', 9, "
                           "'2026-01-01 00:00:00', '2026-01-01 00:00:00')", (ident,))
            db.execute("SET foreign_key_checks = 1")
        counters = "SELECT TABLE_NAME, AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() " \
                   "AND TABLE_NAME NOT LIKE '\\_emfix%' ORDER BY 1"  # (round 34: EXPERIMENT's was reserved first)
        auto = db.query(counters)
    if command == "migrate":
        result = run_cli("migrate", demo_db.path, url_of(mysql_address), "-e", "1", "--strategy", "aggressive")
    else:
        export = str(tmp_path / "e1.jsonl")
        assert run_cli("export", demo_db.path, "-e", "1", "-o", export).returncode == 0
        result = run_cli("import", url_of(mysql_address), export)
    assert_one_clear_line(result, 4, "TRIAL's ids 1 to 3 would be 2147483647 to 2147483649", "(2147483647)",
                          "nothing was written", "ALTER TABLE")
    assert tables_with_rows(mysql_address) - {"SCHEMA_VERSION", "_emfix_migrations"} == {"TRIAL"}
    with open_database(mysql_address) as db:
        assert db.scalar("SELECT count(*) FROM TRIAL") == 2
        assert db.query(counters) == auto


@pytest.mark.parametrize("column, value", [("t DATETIME", "x"), ("n INT", "0x10")])
def test_text_a_mysql_column_cannot_read_is_a_refused_value_not_a_statement(mysql_address, column, value):
    """Round 33: 'x' into a DATETIME (1292) and '0x10' into an INT (1265, "Data truncated") were exit 1 with a hint
    that DST's tables differed from the statements' (they did not): exit 4, a refused value, what to correct."""
    with open_database(mysql_address) as db:
        db.execute("CREATE TABLE odd (%s)" % column)
        with pytest.raises(DamagedInputError, match="refused a value") as raised:
            db.executemany("INSERT INTO odd VALUES (?)", [(value,)])
    assert raised.value.exit_code == 4 and "correct it where it comes from" in raised.value.hint


def test_a_value_too_long_for_a_mysql_column_is_a_refused_value_not_a_bug(mysql_address):
    """Round 29: MySQL's 1406 (Data too long) reached the top as the driver's DataError: exit 70."""
    with open_database(mysql_address) as db:
        db.execute("CREATE TABLE narrow (v VARCHAR(2))")
        with pytest.raises(DamagedInputError, match="refused a value: .*Data too long") as raised:
            db.executemany("INSERT INTO narrow (v) VALUES (?)", [("abcd",)])
    assert raised.value.exit_code == 4 and "widen it" in raised.value.hint


@pytest.mark.parametrize("mysql_type, value, sqlite_type, words", [
    ("BIT(64)", 18446744073709551615, "INTEGER", "past 9223372036854775807"),
    ("BIGINT UNSIGNED", 9223372036854775808, "INTEGER", "past 9223372036854775807"),
    ("DECIMAL(65,30)", "12345678901234567890123456789012345.123456789012345678901234567891", "DECIMAL(65,30)",
     "which SQLite stores as a REAL"),
    ("DECIMAL(10,2)", "1.50", "NUMERIC", "which SQLite stores as a REAL"),  # (round 31: it never verified)
    ("BIGINT", 123, "TEXT", "is a number (BIGINT), and"),  # (stored as '123': DIFFERS after the copy)
    ("FLOAT", 0.5, "VARCHAR(20)", "which SQLite stores as text"),
    ("YEAR", 2001, "TEXT", "which SQLite stores as text"),
])
def test_migrate_mysql_into_sqlite_refuses_a_number_sqlite_cannot_hold_up_front(mysql_address, tmp_path, mysql_type,
                                                                                 value, sqlite_type, words):
    """Round 29: a BIGINT UNSIGNED (or BIT(64)) value past 2^63 stopped a copy into SQLite with exit 70, its
    EXPERIMENT row committed; a DECIMAL(65,30) into a SQLite column of that type kept 15 of its digits, said only
    by the verify after the copy; round 33: a BIGINT into a SQLite TEXT column became text, DIFFERS after the copy."""
    make_demo(mysql_address, faults=False)
    with open_database(mysql_address) as db:
        db.execute("ALTER TABLE METRIC ADD COLUMN xu %s" % mysql_type)
        db.execute("UPDATE METRIC SET xu = ? WHERE id = 3", (value,))
    target = DatabaseAddress("sqlite", path=str(tmp_path / "copy.db"))
    assert run_cli("init", target.path).returncode == 0
    con = sqlite3.connect(target.path)
    con.execute("ALTER TABLE METRIC ADD COLUMN xu %s" % sqlite_type)
    con.close()
    result = run_cli("migrate", url_of(mysql_address), target.path, "-e", "1")
    assert_one_clear_line(result, 4, "METRIC.xu", words, "nothing was copied")
    assert not tables_with_rows(target) - {"SCHEMA_VERSION"}


def test_a_decimal_into_a_sqlite_text_column_is_copied_with_every_digit(mysql_address, tmp_path):
    make_demo(mysql_address, faults=False)
    digits = "12345678901234567890123456789012345.123456789012345678901234567891"
    with open_database(mysql_address) as db:
        db.execute("ALTER TABLE METRIC ADD COLUMN xu DECIMAL(65,30)")
        db.execute("UPDATE METRIC SET xu = ? WHERE id = 3", (digits,))
    target = DatabaseAddress("sqlite", path=str(tmp_path / "copy.db"))
    assert run_cli("init", target.path).returncode == 0
    con = sqlite3.connect(target.path)
    con.execute("ALTER TABLE METRIC ADD COLUMN xu TEXT")
    con.close()
    assert run_cli("migrate", url_of(mysql_address), target.path, "-e", "1").returncode == 0
    con = sqlite3.connect(target.path)
    assert con.execute("SELECT xu FROM METRIC WHERE xu IS NOT NULL").fetchall() == [(digits,)]
    con.close()


# -- disk full ----------------------------------------------------------------------------------------------

def test_import_over_a_file_size_limit_is_exit_3(demo_db, tmp_path):
    export = str(tmp_path / "e1.jsonl")
    assert run_cli("export", demo_db.path, "-e", "1", "-o", export).returncode == 0
    target = DatabaseAddress("sqlite", path=str(tmp_path / "small.db"))
    assert run_cli("init", target.path).returncode == 0
    import subprocess
    import sys

    from conftest import ROOT
    blocks = os.path.getsize(target.path) // 1024 + 4  # room for the empty schema, not for the rows
    limited = subprocess.run(["bash", "-c", 'ulimit -f %d; exec "$0" -m emfix import "$1" "$2"' % blocks,
                              sys.executable, target.path, export], capture_output=True, text=True,
                             env=dict(os.environ, PYTHONPATH=ROOT))
    assert_one_clear_line(limited, 3, "cannot write")


def test_host_flags_beside_a_url_are_refused():
    assert_one_clear_line(run_cli("validate", "mysql://u@h/db", "--host", "other"), 2, "beside a mysql:// URL")


def _ask_on_a_terminal(args, answer):
    """Run emfix on a pseudo-terminal, answer its question; return (exit code, everything it showed)."""
    import pty
    import subprocess
    import sys
    import time

    from conftest import ROOT
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "emfix", *args], stdin=slave, stdout=slave, stderr=slave,
                            env=dict(os.environ, PYTHONPATH=ROOT), close_fds=True)
    os.close(slave)
    shown, deadline = b"", time.monotonic() + 60
    while b"[y/N]" not in shown and time.monotonic() < deadline:
        shown += os.read(master, 4096)
    os.write(master, answer + b"\n")
    code = proc.wait(timeout=60)
    try:
        while True:
            chunk = os.read(master, 4096)
            if not chunk:
                break
            shown += chunk
    except OSError:
        pass
    os.close(master)
    return code, shown.decode("utf-8", "replace")


def test_answering_no_exits_1_after_showing_the_plan_on_its_own_line(demo_db, tmp_path):
    before = sqlite_rows(demo_db.path)
    code, shown = _ask_on_a_terminal(["cleanup-orphans", demo_db.path, "--recreate-parents", "--quarantine-dir",
                                      str(tmp_path / "q")], b"n")
    assert code == 1 and "cancelled; nothing was changed" in shown
    question = [line for line in shown.splitlines() if "[y/N]" in line][0]
    assert question.lstrip("\r").startswith("remove "), question  # not glued to a progress line
    assert "creates missing parents first: EPOCH 2, RESULTS 1" in shown  # said before, not after
    assert sqlite_rows(demo_db.path) == before


def test_fix_json_with_nothing_to_fix_takes_no_snapshot(tmp_path):
    clean = DatabaseAddress("sqlite", path=str(tmp_path / "clean.db"))
    make_demo(clean, faults=False)
    result = run_cli("fix-json", clean.path, "--yes", "--snapshot-dir", str(tmp_path / "snaps"),
                     "--quarantine-dir", str(tmp_path / "q"))
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "snaps").exists() and not os.listdir(str(tmp_path / "q"))


def test_cleanup_dry_run_says_what_tables_leaves_behind(demo_db):
    result = run_cli("cleanup-orphans", demo_db.path, "--dry-run", "--tables", "TRIAL_RUN")
    assert result.returncode == 0 and "warning: --tables leaves" in result.stdout and "EPOCH" in result.stdout


def test_cleanup_with_an_empty_tables_option_changes_nothing(demo_db):
    """Round 23: `--tables "$T"` with an empty $T planned a cleanup of every table."""
    before = sqlite_rows(demo_db.path)
    result = run_cli("cleanup-orphans", demo_db.path, "--yes", "--no-snapshot", "--tables", " , ")
    assert result.returncode == 2 and "--tables names no table" in result.stderr
    assert sqlite_rows(demo_db.path) == before


def test_cleanup_tables_are_named_whatever_their_letter_case(demo_db):
    lower = run_cli("cleanup-orphans", demo_db.path, "--dry-run", "--tables", "trial_run", "--json")
    upper = run_cli("cleanup-orphans", demo_db.path, "--dry-run", "--tables", "TRIAL_RUN", "--json")
    assert lower.returncode == upper.returncode == 0, lower.stderr
    assert json.loads(lower.stdout)["plan"] == json.loads(upper.stdout)["plan"]


def test_snapshot_verify_of_a_database_without_an_id_asks_for_one(demo_db, tmp_path):
    """Round 25: `snapshot verify DB --snapshot-dir DIR --full` took the database for the id ("... is not a snapshot
    id"); an old-tool `verify --snapshot-dir DIR ID` still takes the id."""
    result = run_cli("snapshot", "verify", demo_db.path, "--snapshot-dir", str(tmp_path / "s"), "--full")
    assert result.returncode == 2 and "needs a snapshot id or --all" in result.stderr, result.stderr


def test_undo_of_a_directory_says_it_is_a_directory(tmp_path):
    result = run_cli("undo", str(tmp_path), "--yes")
    assert result.returncode == 3 and "is a directory" in result.stderr


def test_validate_and_fix_json_give_one_diagnosis():
    from emfix.jsoncheck import diagnose
    from emfix.jsonrepair import repair
    for raw in ("\x00\x01garbage\xff", "garbage", '{"a": 1', "{'a': 1}", '{"a": 1} x'):
        found, outcome = diagnose(raw), repair(raw)
        assert found.fixable == outcome.fixed, raw
        if not outcome.fixed:
            assert outcome.reason.split(" (")[0] in found.message, (raw, found.message, outcome.reason)
    assert diagnose("\x00\x01garbage\xff").category != "truncated"


def test_an_unreachable_server_is_retried_until_the_lock_timeout():
    import time
    started = time.monotonic()
    result = run_cli("schema", "mysql://nobody@127.0.0.1:1/db", "--lock-timeout", "3")
    elapsed = time.monotonic() - started
    assert_one_clear_line(result, 3, "cannot reach MySQL server")
    assert elapsed >= 2.5, elapsed  # the deadline decides, not a count of attempts


def test_restore_without_a_terminal_says_to_add_yes(demo_db, tmp_path):
    snapshot.create_snapshot(demo_db, str(tmp_path / "snaps"), verify=True)
    result = run_cli("snapshot", "restore", demo_db.path, "--snapshot-dir", str(tmp_path / "snaps"))
    assert_one_clear_line(result, 2, "add --yes")
    assert "--dry-run" not in result.stderr


def test_snapshot_by_a_user_without_reload_reads_in_one_connection(select_only_user, tmp_path):
    """FLUSH TABLES WITH READ LOCK needs RELOAD; without it the snapshot is read by one connection, still
    in one moment, and restores like any other."""
    url, env = select_only_user
    result = run_cli("snapshot", "create", url, "--snapshot-dir", str(tmp_path), "--json", "-v", env=env)
    assert result.returncode == 0, result.stderr
    assert "reading with one connection" in result.stderr and "RELOAD" in result.stderr
    made = json.loads(result.stdout)
    assert made["file"].endswith(".sql") and made["tables"]["METRIC"] > 0
    assert run_cli("snapshot", "verify", url, made["id"], "--snapshot-dir", str(tmp_path), env=env).returncode == 0


@pytest.mark.parametrize("file_format", ["sql", "sqlite"])
def test_a_snapshot_that_could_not_hold_tables_without_transactions_at_its_moment_says_so_in_its_manifest(
        select_only_user, mysql_address, tmp_path, file_format):
    """Without RELOAD no FLUSH TABLES WITH READ LOCK holds a MyISAM table while it is read (and a SQLite-format
    snapshot takes none): the snapshot says so when taken, and keeps saying so in its manifest and in the list."""
    url, env = select_only_user
    with open_database(mysql_address) as db:
        db.execute("CREATE TABLE NOTES (id INT PRIMARY KEY, note VARCHAR(20)) ENGINE=MyISAM")
    made = run_cli("snapshot", "create", url, "--snapshot-dir", str(tmp_path), "--format", file_format, env=env)
    assert made.returncode == 0, made.stderr
    assert "not one moment: NOTES read without transactions or a lock over them (MyISAM)" in made.stdout, made.stdout
    listed = run_cli("snapshot", "list", "--snapshot-dir", str(tmp_path), env=env)
    assert "[not one moment: NOTES]" in listed.stdout, listed.stdout
    manifest = snapshot.list_snapshots(str(tmp_path))[0].manifest
    assert manifest.not_in_moment == {"NOTES": "MyISAM"}
    with open_database(mysql_address) as db:
        db.execute("ALTER TABLE NOTES ENGINE=InnoDB")
    again = run_cli("snapshot", "create", url, "--snapshot-dir", str(tmp_path), "--format", file_format, "--json",
                    env=env)
    assert json.loads(again.stdout)["not_in_moment"] is None


def test_undo_on_a_terminal_says_what_it_puts_back_and_asks_first(demo_db, tmp_path):
    done = run_cli("cleanup-orphans", demo_db.path, "--yes", "--no-snapshot", "--json",
                   "--quarantine-dir", str(tmp_path / "q"))
    quarantine = json.loads(done.stdout)["quarantine"]
    after_cleanup = sqlite_rows(demo_db.path)
    code, shown = _ask_on_a_terminal(["undo", quarantine], b"n")
    assert code == 1 and "cancelled; nothing was changed" in shown, shown
    assert "kept by cleanup-orphans: " in shown and "TRIAL_RUN" in shown
    assert sqlite_rows(demo_db.path) == after_cleanup
    code, shown = _ask_on_a_terminal(["undo", quarantine], b"y")
    assert code == 0, shown
    assert sqlite_rows(demo_db.path) != after_cleanup


def test_import_of_bytes_that_are_not_utf8_into_a_mysql_text_column_is_refused_up_front(tmp_path, demo_db,
                                                                                       mysql_address):
    """Round 39: the damaged demo's metric holding bytes that are not UTF-8, imported into the LONGTEXT column
    `emfix init --json-type text` makes, stopped the import part way (1 to 275,934 rows committed)."""
    export = str(tmp_path / "e1.jsonl")
    assert run_cli("export", demo_db.path, "-e", "1", "-o", export).returncode == 0
    assert run_cli("init", url_of(mysql_address), "--json-type", "text").returncode == 0
    result = run_cli("import", url_of(mysql_address), export, "--allow-dangling")
    assert_one_clear_line(result, 4, "METRIC.per_label_val", "bytes that are not UTF-8 text", "nothing was imported")
    assert not tables_with_rows(mysql_address) - {"SCHEMA_VERSION"}


# -- round 48: what the walk reaches and the copy could not take as it is ------------------------------------

def _one(path, sql):
    con = sqlite3.connect(path)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def _untyped_trial_with_a_link(path, link, kind=""):
    """TRIAL rebuilt without column types (as an old tool made it; experiment_id of type `kind`), its third trial's
    experiment_id `link`."""
    con = sqlite3.connect(path)
    with con:
        con.executescript("CREATE TABLE T2 (id INTEGER PRIMARY KEY AUTOINCREMENT, name, experiment_id %s, start_time, "
                          "update_time); INSERT INTO T2 SELECT * FROM TRIAL; DROP TABLE TRIAL; "
                          "ALTER TABLE T2 RENAME TO TRIAL" % kind)
        con.execute("UPDATE TRIAL SET experiment_id = ? WHERE id = (SELECT max(id) FROM TRIAL)", (link,))
    con.close()


@pytest.mark.parametrize("link, kind, hint", [(1.0, "", "CAST"), ("1", "", "CAST"), (" 1", "", "CAST"),
                                              ("1", "TEXT", "give TRIAL.experiment_id an integer type"),
                                              (1.5, "REAL", "give TRIAL.experiment_id an integer type")])
def test_migrate_refuses_a_link_it_cannot_move_before_writing(tmp_path, link, kind, hint):
    """Round 48: a trial whose experiment_id was the REAL 1.0 (or the text '1' in a column without a type) was
    reached by the walk, as SQLite compares it with 1, but the copy moves only integers: it was copied still pointing
    at experiment 1, DST's own, and the rest went to experiment 2 (DIFFERS, the rows kept). Refused up front. The
    hint's UPDATE ... CAST suits a column without a type; a TEXT or REAL one stores its own kind again (round 50)."""
    demo_db = demo_with_a_trial_named(tmp_path, "t")
    _untyped_trial_with_a_link(demo_db.path, link, kind)
    dst = str(tmp_path / "dst.db")
    con = sqlite3.connect(dst)
    with con:  # the same schema, and an experiment 1 of its own
        for (sql,) in sqlite3.connect(demo_db.path).execute(
                "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite%'"):
            con.execute(sql)
        con.execute("INSERT INTO EXPERIMENT VALUES (1, 'own', 'd', 'x', 'y')")
    con.close()
    result = run_cli("migrate", demo_db.path, dst, "-e", "1", "--no-snapshot")
    assert_one_clear_line(result, 4, "of TRIAL.experiment_id", "not an integer", "nothing was copied", hint)
    assert _one(dst, "SELECT count(*) FROM TRIAL") == 0


@pytest.mark.parametrize("command", ["migrate", "export"])
def test_rows_with_null_in_their_key_are_refused_not_left_out(tmp_path, command):
    """Round 48: EPOCH_METRIC rows whose metric_id was NULL (SQLite keeps them in a key) matched no key in the copy's
    reads: left out of migrate's copy and export's file, exit 0, verify "ok". Refused before anything is written."""
    demo_db = demo_with_a_trial_named(tmp_path, "t")
    con = sqlite3.connect(demo_db.path)
    with con:
        con.execute("INSERT INTO EPOCH_METRIC (epoch_idx, epoch_trial_run_id, metric_id) SELECT idx, trial_run_id, "
                    "NULL FROM EPOCH LIMIT 1")
    con.close()
    out = str(tmp_path / ("dst.db" if command == "migrate" else "e1.jsonl"))
    result = run_cli(command, demo_db.path, *(["-o", out] if command == "export" else [out, "--init"]), "-e", "1")
    assert_one_clear_line(result, 4, "1 row of EPOCH_METRIC in experiment 1 has NULL in its primary key",
                          "nothing was %s" % ("copied" if command == "migrate" else "exported"), "IS NULL")
    assert not os.path.exists(out) or command == "migrate"


def test_migrate_into_sqlite_copies_a_table_without_a_primary_key(tmp_path):
    """Round 48: an application's table without a primary key made an in-engine copy wait on its own lock (its page
    of rows went in on DST's connection while the group of batches held DST): exit 3 after --lock-timeout."""
    demo_db = demo_with_a_trial_named(tmp_path, "t")
    con = sqlite3.connect(demo_db.path)
    with con:
        con.execute("CREATE TABLE TRIAL_NOTE (trial_id INT REFERENCES TRIAL(id), note TEXT)")
        con.execute("INSERT INTO TRIAL_NOTE SELECT id, 'note ' || id FROM TRIAL")
    con.close()
    dst = str(tmp_path / "dst.db")
    result = run_cli("migrate", demo_db.path, dst, "-e", "1", "--init", "--lock-timeout", "5")
    assert result.returncode == 0, result.stderr
    assert sqlite_rows(dst)["TRIAL_NOTE"] == sqlite_rows(demo_db.path)["TRIAL_NOTE"]


@pytest.mark.parametrize("column_type", ["DECIMAL(40,30)", "DECIMAL(65,30)", "DECIMAL(38,20)"])
def test_migrate_takes_whole_reals_into_a_decimal_of_a_wide_scale(tmp_path, mysql_address, column_type):
    """Round 48: 757954.0 was refused by a DECIMAL(40,30) as having "more digits after the point" (SQLite's round()
    past 15 places makes digits of its own)."""
    result = migrate_into_an_altered_column(tmp_path, mysql_address, "UPDATE METRIC SET total_val = round(total_val * "
                                            "1000000)", "ALTER TABLE METRIC MODIFY total_val %s NOT NULL" % column_type)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("column_type, words", [
    ("DATE", "not 'YYYY-MM-DD' text"), ("TIME", "not 'HH:MM:SS' text"),
    ("DATETIME(3)", "more digits of a second than DST's datetime(3) keeps"), ("DATETIME(6)", None)])
def test_migrate_refuses_what_a_date_time_or_narrow_datetime_column_would_change(tmp_path, mysql_address,
                                                                                column_type, words):
    """Round 48: TRIAL.start_time copied into a DATE lost its time of day (written, then DIFFERS); into a DATETIME(3)
    '09:00:01.123456' kept '.123' with only a note (that note is for the Experiment Manager's own DATETIME)."""
    result = migrate_into_an_altered_column(tmp_path, mysql_address, "UPDATE TRIAL SET start_time = '2025-05-01 "
                                            "09:00:01.123456'", "ALTER TABLE TRIAL MODIFY start_time %s NOT NULL" %
                                            column_type)
    if words is None:
        assert result.returncode == 0, result.stderr
        return
    assert_one_clear_line(result, 4, "values of TRIAL.start_time", words, "nothing was copied")
    assert not tables_with_rows(mysql_address) - {"SCHEMA_VERSION"}


NOTES_DDL = "CREATE TABLE NOTES (trial_id INT REFERENCES TRIAL(id), run_id INT REFERENCES TRIAL_RUN(id), note TEXT%s)"
NOTES_ROWS = ["INSERT INTO NOTES SELECT r.trial_id, r.id, 'run' FROM TRIAL_RUN r",
              "INSERT INTO NOTES SELECT id, NULL, 'trial' FROM TRIAL",
              "INSERT INTO NOTES SELECT id, NULL, 'trial' FROM TRIAL"]  # the same rows twice


@pytest.mark.parametrize("command, batch", [("migrate", None), ("migrate", "1"), ("migrate", "2"), ("export", None)])
def test_a_table_without_a_key_keeps_its_rows_with_a_null_link(tmp_path, command, batch):
    """Round 49: an application's NOTES (trial_id, run_id, note) without a primary key was held by its link columns,
    and its rows of a trial with no run (run_id NULL) matched nothing: left out, exit 0, verify "ok". Paged by all
    its columns, a page ending on a NULL or inside a group of identical rows left the rest out (written, then
    DIFFERS): each page now takes whole groups of rows sharing their links."""
    demo_db = demo_with_a_trial_named(tmp_path, "t")
    con = sqlite3.connect(demo_db.path)
    with con:
        con.execute(NOTES_DDL % "")
        for statement in NOTES_ROWS:
            con.execute(statement)
    con.close()
    expected = _one(demo_db.path, "SELECT count(*) FROM NOTES")
    out = str(tmp_path / ("dst.db" if command == "migrate" else "e1.jsonl"))
    result = run_cli(command, demo_db.path, *(["-o", out] if command == "export" else [out, "--init"]), "-e", "1",
                     *(["--batch-size", batch] if batch else []))
    assert result.returncode == 0, result.stderr
    if command == "migrate":
        assert _one(out, "SELECT count(*) FROM NOTES") == expected
        assert _one(out, "SELECT count(*) FROM NOTES WHERE run_id IS NULL") == 2 * _one(
            demo_db.path, "SELECT count(*) FROM TRIAL")
    else:
        with open(out) as handle:
            assert sum(1 for line in handle if line.startswith('{"table": "NOTES"')) == expected


@pytest.mark.parametrize("command", ["migrate", "export"])
def test_a_mysql_table_without_a_key_keeps_its_rows_with_a_null_link(tmp_path, mysql_address, mysql_databases,
                                                                     command):
    """Found after round 49: the NULL-safe hold of a table without a primary key was SQLite's alone; from MySQL,
    export wrote 2 of NOTES' 6 rows, exit 0."""
    make_demo(mysql_address, shape=Shape(experiments=1, trials=2, runs=1, epochs=1, batches=1), faults=False)
    with open_database(mysql_address) as db:
        db.execute(NOTES_DDL.replace(" REFERENCES TRIAL(id)", "").replace(" REFERENCES TRIAL_RUN(id)", "") % (
            ", FOREIGN KEY (trial_id) REFERENCES TRIAL (id), FOREIGN KEY (run_id) REFERENCES TRIAL_RUN (id)"))
        for statement in NOTES_ROWS:
            db.execute(statement)
        expected = db.scalar("SELECT count(*) FROM NOTES")
    if command == "export":
        out = str(tmp_path / "e1.jsonl")
        result = run_cli("export", url_of(mysql_address), "-o", out, "-e", "1")
        assert result.returncode == 0, result.stderr
        with open(out) as handle:
            assert sum(1 for line in handle if line.startswith('{"table": "NOTES"')) == expected
        return
    target = mysql_databases()
    result = run_cli("migrate", url_of(mysql_address), url_of(target), "-e", "1", "--init", "--batch-size", "1")
    assert result.returncode == 0, result.stderr
    with open_database(target) as db:
        assert db.scalar("SELECT count(*) FROM NOTES WHERE run_id IS NULL") == 4
        assert db.scalar("SELECT count(*) FROM NOTES") == expected


@pytest.mark.parametrize("command", [("migrate", "-e", "1"), ("migrate", "--all"), ("export", "-e", "1")])
def test_rows_linking_into_two_experiments_are_refused_up_front(tmp_path, command):
    """Round 50: NOTES(trial_id, run_id) with a note of experiment 1's trial and experiment 2's run was taken by the
    walk through its trial, and the copy moved the run id too: it pointed at a run never copied (exit 0, verify
    "ok"); --all copied such a row once for each experiment. Refused before anything is written; left out with
    --skip-tables, the rest is copied."""
    demo_db = DatabaseAddress("sqlite", path=str(tmp_path / "src.db"))
    make_demo(demo_db, shape=Shape(experiments=2, trials=2, runs=1, epochs=1, batches=1), faults=False)
    con = sqlite3.connect(demo_db.path)
    with con:
        con.execute(NOTES_DDL % "")
        con.execute("INSERT INTO NOTES SELECT r.trial_id, r.id, 'its own' FROM TRIAL_RUN r")
        con.execute("INSERT INTO NOTES SELECT (SELECT min(id) FROM TRIAL WHERE experiment_id = 1), (SELECT min(r.id) "
                    "FROM TRIAL_RUN r JOIN TRIAL t ON t.id = r.trial_id WHERE t.experiment_id = 2), 'across'")
    con.close()
    out = str(tmp_path / ("dst.db" if command[0] == "migrate" else "e1.jsonl"))
    extra = ["-o", out] if command[0] == "export" else [out, "--init"]
    result = run_cli(command[0], demo_db.path, *extra, *command[1:])
    assert_one_clear_line(result, 4, "of NOTES in experiment 1 link", "TRIAL", "outside it",
                          "nothing was %s" % ("copied" if command[0] == "migrate" else "exported"), "--skip-tables")
    assert not os.path.exists(out) or command[0] == "migrate"
    if command[0] == "migrate":
        assert "NOTES" not in sqlite_rows(out) or not sqlite_rows(out)["NOTES"]
        result = run_cli(*command[:1], demo_db.path, *extra, *command[1:], "--skip-tables", "NOTES")
        assert result.returncode == 0, result.stderr


def test_a_copy_of_a_table_without_a_key_killed_at_random_finishes_exactly(tmp_path):
    """Each page of a table without a primary key ends after a whole group of rows sharing their links, and that
    group's link key is the position a rerun goes on from: killed at random moments, nothing twice, nothing left."""
    source = DatabaseAddress("sqlite", path=str(tmp_path / "src.db"))
    make_demo(source, shape=Shape(experiments=1, trials=6, runs=2, epochs=2, batches=2), faults=False)
    con = sqlite3.connect(source.path)
    with con:
        con.execute(NOTES_DDL % "")
        for _round in range(40):
            for statement in NOTES_ROWS:
                con.execute(statement)
    con.close()
    target = str(tmp_path / "dst.db")
    kill_until_done(["migrate", source.path, target, "-e", "1", "--init", "--batch-size", "7", "-q"], seed=3,
                    delay=0.5)
    query = "SELECT trial_id, run_id, note, count(*) FROM NOTES GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    assert sqlite3.connect(target).execute(query).fetchall() == sqlite3.connect(source.path).execute(query).fetchall()


def test_migrate_refuses_a_moment_a_timestamp_column_cannot_hold(tmp_path, mysql_address):
    """Round 49: '2040-01-01T00:00:00' into DST's TIMESTAMP (1970 to 2038) was refused by the server at its batch,
    the batches before it committed (exit 4). Refused up front now."""
    result = migrate_into_an_altered_column(
        tmp_path, mysql_address, "UPDATE TRIAL SET start_time = '2040-01-01T00:00:00.000000' WHERE id = (SELECT "
        "min(id) FROM TRIAL)", "ALTER TABLE TRIAL MODIFY start_time TIMESTAMP(2) NOT NULL")
    assert_one_clear_line(result, 4, "TRIAL.start_time is outside what DST's timestamp(2) holds",
                          "nothing was copied")
    assert not tables_with_rows(mysql_address) - {"SCHEMA_VERSION"}
