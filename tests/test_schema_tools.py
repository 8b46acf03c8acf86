"""emfix init makes the application's schema; schema show / diff / upgrade read, compare and bring it up to date."""

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from conftest import ROOT, in_the_sqlite3_shell, make_demo, run_cli, url_of

from emfix.address import DatabaseAddress
from emfix.backends import open_database
from emfix.catalog import is_without_rowid, read_catalog
from emfix.demo import Shape
from emfix.schema import create_schema
from emfix.schemadiff import diff_catalogs

# The Experiment Manager's own DDL, written out from ../shared/docs/experiment-manager-schema.md ("Columns").
APP_MYSQL_DDL = """
CREATE TABLE IF NOT EXISTS SCHEMA_VERSION (id INT PRIMARY KEY AUTO_INCREMENT, version VARCHAR(20) NOT NULL UNIQUE,
  migration_name VARCHAR(255) NOT NULL, description TEXT, applied_at DATETIME NOT NULL, rollback_script TEXT);
CREATE TABLE IF NOT EXISTS EXPERIMENT (id INT PRIMARY KEY AUTO_INCREMENT, title VARCHAR(255) NOT NULL, `desc` TEXT,
  start_time DATETIME NOT NULL, update_time DATETIME NOT NULL);
CREATE TABLE IF NOT EXISTS TRIAL (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(255) NOT NULL,
  experiment_id INT NOT NULL, start_time DATETIME NOT NULL, update_time DATETIME NOT NULL,
  FOREIGN KEY (experiment_id) REFERENCES EXPERIMENT(id));
CREATE TABLE IF NOT EXISTS TRIAL_RUN (id INT PRIMARY KEY AUTO_INCREMENT, trial_id INT NOT NULL,
  status VARCHAR(50) NOT NULL, start_time DATETIME NOT NULL, update_time DATETIME NOT NULL,
  FOREIGN KEY (trial_id) REFERENCES TRIAL(id));
CREATE TABLE IF NOT EXISTS RESULTS (trial_run_id INT PRIMARY KEY, time DATETIME NOT NULL,
  FOREIGN KEY (trial_run_id) REFERENCES TRIAL_RUN(id));
CREATE TABLE IF NOT EXISTS EPOCH (idx INT, trial_run_id INT, time DATETIME NOT NULL, PRIMARY KEY (idx, trial_run_id),
  FOREIGN KEY (trial_run_id) REFERENCES TRIAL_RUN(id));
CREATE TABLE IF NOT EXISTS BATCH (idx INT, epoch_idx INT, trial_run_id INT, time DATETIME NOT NULL,
  PRIMARY KEY (idx, epoch_idx, trial_run_id),
  FOREIGN KEY (epoch_idx, trial_run_id) REFERENCES EPOCH(idx, trial_run_id));
CREATE TABLE IF NOT EXISTS METRIC (id INT PRIMARY KEY AUTO_INCREMENT, type VARCHAR(50) NOT NULL,
  total_val FLOAT NOT NULL, per_label_val JSON);
CREATE TABLE IF NOT EXISTS ARTIFACT (id INT PRIMARY KEY AUTO_INCREMENT, type VARCHAR(50) NOT NULL,
  loc VARCHAR(255) NOT NULL);
CREATE TABLE IF NOT EXISTS EXPERIMENT_ARTIFACT (experiment_id INT, artifact_id INT,
  PRIMARY KEY (experiment_id, artifact_id), FOREIGN KEY (experiment_id) REFERENCES EXPERIMENT(id),
  FOREIGN KEY (artifact_id) REFERENCES ARTIFACT(id));
CREATE TABLE IF NOT EXISTS TRIAL_ARTIFACT (trial_id INT, artifact_id INT, PRIMARY KEY (trial_id, artifact_id),
  FOREIGN KEY (trial_id) REFERENCES TRIAL(id), FOREIGN KEY (artifact_id) REFERENCES ARTIFACT(id));
CREATE TABLE IF NOT EXISTS TRIAL_RUN_ARTIFACT (trial_run_id INT, artifact_id INT, PRIMARY KEY (trial_run_id,
  artifact_id), FOREIGN KEY (trial_run_id) REFERENCES TRIAL_RUN(id), FOREIGN KEY (artifact_id) REFERENCES ARTIFACT(id));
CREATE TABLE IF NOT EXISTS RESULTS_METRIC (results_id INT, metric_id INT, PRIMARY KEY (results_id, metric_id),
  FOREIGN KEY (results_id) REFERENCES RESULTS(trial_run_id), FOREIGN KEY (metric_id) REFERENCES METRIC(id));
CREATE TABLE IF NOT EXISTS RESULTS_ARTIFACT (results_id INT, artifact_id INT, PRIMARY KEY (results_id, artifact_id),
  FOREIGN KEY (results_id) REFERENCES RESULTS(trial_run_id), FOREIGN KEY (artifact_id) REFERENCES ARTIFACT(id));
CREATE TABLE IF NOT EXISTS EPOCH_METRIC (epoch_idx INT, epoch_trial_run_id INT, metric_id INT,
  PRIMARY KEY (epoch_idx, epoch_trial_run_id, metric_id),
  FOREIGN KEY (epoch_idx, epoch_trial_run_id) REFERENCES EPOCH(idx, trial_run_id),
  FOREIGN KEY (metric_id) REFERENCES METRIC(id));
CREATE TABLE IF NOT EXISTS EPOCH_ARTIFACT (epoch_idx INT, epoch_trial_run_id INT, artifact_id INT,
  PRIMARY KEY (epoch_idx, epoch_trial_run_id, artifact_id),
  FOREIGN KEY (epoch_idx, epoch_trial_run_id) REFERENCES EPOCH(idx, trial_run_id),
  FOREIGN KEY (artifact_id) REFERENCES ARTIFACT(id));
CREATE TABLE IF NOT EXISTS BATCH_METRIC (batch_idx INT, epoch_idx INT, trial_run_id INT, metric_id INT,
  PRIMARY KEY (batch_idx, epoch_idx, trial_run_id, metric_id),
  FOREIGN KEY (batch_idx, epoch_idx, trial_run_id) REFERENCES BATCH(idx, epoch_idx, trial_run_id),
  FOREIGN KEY (metric_id) REFERENCES METRIC(id));
CREATE TABLE IF NOT EXISTS BATCH_ARTIFACT (batch_idx INT, epoch_idx INT, trial_run_id INT, artifact_id INT,
  PRIMARY KEY (batch_idx, epoch_idx, trial_run_id, artifact_id),
  FOREIGN KEY (batch_idx, epoch_idx, trial_run_id) REFERENCES BATCH(idx, epoch_idx, trial_run_id),
  FOREIGN KEY (artifact_id) REFERENCES ARTIFACT(id));
"""
BATCH_TABLES = ("BATCH ", "BATCH_METRIC", "BATCH_ARTIFACT")


def app_statements(dialect, generation=2):
    """The application's statements, in SQLite's spelling when asked (the doc's rules)."""
    statements = [s.strip() for s in APP_MYSQL_DDL.split(";") if s.strip()]
    if generation == 1:
        statements = [s for s in statements if not s.startswith(tuple("CREATE TABLE IF NOT EXISTS " + t
                                                                      for t in BATCH_TABLES))]
    if dialect == "sqlite":
        statements = [s.replace("INT PRIMARY KEY AUTO_INCREMENT", "INTEGER PRIMARY KEY AUTOINCREMENT")
                      .replace("DATETIME", "TEXT").replace(" JSON", " TEXT").replace("`desc`", "desc")
                      for s in statements]
    return statements


def create_as_the_application(address, generation=2):
    with open_database(address, create=True) as db:
        for statement in app_statements(address.kind, generation):
            db.execute(statement)


def catalog_of(address):
    with open_database(address, readonly=True) as db:
        return read_catalog(db, counts=False)


def second_address(address, tmp_path, mysql_databases=None):
    if address.is_sqlite:
        return DatabaseAddress("sqlite", path=str(tmp_path / "other.db"))
    return mysql_databases()


@pytest.fixture
def other(address, tmp_path, request):
    return second_address(address, tmp_path, None if address.is_sqlite else request.getfixturevalue("mysql_databases"))


def test_init_creates_exactly_the_applications_ddl(address, other):
    create_as_the_application(address)
    assert run_cli("init", url_of(other), env={"EMFIX_MYSQL_PASSWORD": ""}).returncode == 0
    app, emfix = catalog_of(address), catalog_of(other)
    assert diff_catalogs(app, emfix).differences == []
    metric = emfix.table("METRIC")
    assert metric.column("total_val").type == "FLOAT" and metric.column("total_val").not_null
    assert emfix.table("SCHEMA_VERSION").unique == [("version",)]
    assert emfix.table("ARTIFACT").column("type").type == "VARCHAR(50)"
    assert {"name", "experiment_id", "start_time", "update_time"} <= {
        c.name for c in emfix.table("TRIAL").columns if c.not_null}


def test_schema_diff_sees_the_difference_the_application_ddl_would_not_have(address, other):
    create_as_the_application(address)
    with open_database(other, create=True) as db:
        create_schema(db)
        q = db.quote
        if db.dialect == "mysql":
            db.execute("ALTER TABLE %s MODIFY %s DOUBLE NOT NULL" % (q("METRIC"), q("total_val")))
        else:
            db.execute("ALTER TABLE %s ADD COLUMN %s TEXT" % (q("METRIC"), q("note")))
    diff = diff_catalogs(catalog_of(address), catalog_of(other))
    assert [d.kind for d in diff.differences] == ["column_type" if address.kind == "mysql" else "extra_column"]


def test_sqlite_and_its_mariadb_copy_made_by_migrate_init_are_the_same_schema(tmp_path, mysql_address):
    source = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(source, faults=False)
    done = run_cli("migrate", source.path, url_of(mysql_address), "--all", "--init", "-q",
                   "--snapshot-dir", str(tmp_path / "snapshots"), env={"EMFIX_MYSQL_PASSWORD": ""})
    assert done.returncode == 0, done.stderr
    same = run_cli("schema", "diff", source.path, url_of(mysql_address), env={"EMFIX_MYSQL_PASSWORD": ""})
    assert same.returncode == 0 and "same schema" in same.stdout, same.stdout + same.stderr


def test_dropped_index_not_null_and_table_are_reported_with_the_ddl_that_fixes_them(address, other):
    for target in (address, other):
        with open_database(target, create=True) as db:
            create_schema(db)
            db.execute("CREATE INDEX %s ON %s (%s)" % (db.quote("metric_type"), db.quote("METRIC"), db.quote("type")))
    with open_database(other) as db:
        q = db.quote
        db.execute("DROP INDEX %s%s" % (q("metric_type"), " ON %s" % q("METRIC") if db.dialect == "mysql" else ""))
        db.execute("DROP TABLE %s" % q("BATCH_ARTIFACT"))
        if db.dialect == "mysql":
            db.execute("ALTER TABLE %s MODIFY %s VARCHAR(255) NULL" % (q("TRIAL"), q("name")))
    if address.is_sqlite:  # SQLite cannot drop NOT NULL in place: the table is made again without it
        con = sqlite3.connect(other.path)
        sql = con.execute("SELECT sql FROM sqlite_master WHERE name = 'TRIAL'").fetchone()[0]
        con.executescript('DROP TABLE "TRIAL"; %s;' % sql.replace('"name" VARCHAR(255) NOT NULL',
                                                                 '"name" VARCHAR(255)'))
        con.close()
    result = run_cli("schema", "diff", url_of(address), url_of(other), "--json", env={"EMFIX_MYSQL_PASSWORD": ""})
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert {d["kind"] for d in report["differences"]} == {"missing_index", "missing_table", "column_null"}
    ddl = "\n".join(report["ddl"])
    assert "CREATE INDEX" in ddl and "BATCH_ARTIFACT" in ddl and "NOT NULL" in ddl
    with open_database(other) as db:  # the DDL, run on B, leaves nothing to report
        statements = [s for s in report["ddl"] if not s.startswith("--")]
        with db.transaction():
            for statement in statements:
                db.execute(statement)
    again = run_cli("schema", "diff", url_of(address), url_of(other), env={"EMFIX_MYSQL_PASSWORD": ""})
    assert again.returncode == 0, again.stdout


def ddl_between(a, b, table_a, table_b):
    """`schema diff A B --format ddl` of two MySQL databases, each given one table (`name (columns)`)."""
    for address, table in ((a, table_a), (b, table_b)):
        with open_database(address) as db:
            db.execute("CREATE TABLE %s" % table)
    return run_cli("schema", "diff", url_of(a), url_of(b), "--format", "ddl")


def test_a_diff_keeps_the_letter_case_of_enum_and_set_values(mysql_address, mysql_databases):
    """Round 29: `schema diff --format ddl` wrote ENUM('a','b','c d') as ENUM('A','B','C D') (the type upper-cased
    whole, its values too): a column made by it takes other values. Two ENUMs differing only in a value's case
    differ."""
    result = ddl_between(mysql_address, mysql_databases(), "`WEIRD` (id INT PRIMARY KEY, e ENUM('a','b','c d'), "
                         "s SET('x','Y'))", "`WEIRD` (id INT PRIMARY KEY, e ENUM('a','B','c d'))")
    assert "enum('a','b','c d')" in result.stdout.lower()  # (the text as the server prints it, in any case)
    assert "ENUM('a','b','c d')" in result.stdout and "SET('x','Y')" in result.stdout, result.stdout
    assert "ENUM('A'" not in result.stdout


@pytest.mark.parametrize("into", ["mysql", "sqlite"])
def test_a_diff_across_engines_settles_once_its_ddl_is_run(mysql_address, tmp_path, into):
    """Notes of round 33: a SQLite REAL column against MySQL's DOUBLE (the DDL the diff itself wrote for it) stayed a
    difference, "METRIC.r is DOUBLE, not DOUBLE", however often the DDL was run; round 37: BOOLEAN, a column without
    a type, and defaults such as CURRENT_TIMESTAMP(6), b'101', 'it''s' and 'x\\y' (written back as other text)."""
    sqlite_path = str(tmp_path / "a.db")
    assert run_cli("init", sqlite_path).returncode == 0
    assert run_cli("init", url_of(mysql_address)).returncode == 0
    if into == "mysql":
        con = sqlite3.connect(sqlite_path)
        for column in ("r REAL", "bo BOOLEAN", "un", "q TEXT DEFAULT 'it''s'", "w TEXT DEFAULT 'x\\y'",
                       "f INTEGER DEFAULT TRUE", "x BLOB DEFAULT X'0a01'", "dq VARCHAR(9) DEFAULT \"dq\"",
                       "p REAL DEFAULT +1.50", "nl TEXT DEFAULT 'NULL'"):
            con.execute("ALTER TABLE METRIC ADD COLUMN %s" % column)
        con.close()
        a, b = sqlite_path, url_of(mysql_address)
    else:  # (round 36: an ENUM became TEXT in SQLite, and the diff said "v is TEXT, not TEXT" for ever)
        with open_database(mysql_address) as db:
            db.execute("ALTER TABLE METRIC ADD COLUMN r DOUBLE, ADD COLUMN v ENUM('a','b'), ADD COLUMN s SET('x','y'), "
                       "ADD COLUMN t DATETIME(6) DEFAULT CURRENT_TIMESTAMP(6), ADD COLUMN b BIT(3) DEFAULT b'101', "
                       "ADD COLUMN q VARCHAR(9) DEFAULT 'it''s', ADD COLUMN w VARCHAR(9) DEFAULT 'x\\\\y', "
                       "ADD COLUMN bo BOOLEAN DEFAULT TRUE, ADD COLUMN n DECIMAL(5,2) DEFAULT 1.50")
            db.execute("INSERT INTO METRIC (type, total_val) VALUES ('loss', 1)")  # (SQLite rebuilds: CURRENT_...)
        with sqlite3.connect(sqlite_path) as con:
            con.execute("INSERT INTO METRIC (type, total_val) VALUES ('loss', 1)")
        a, b = url_of(mysql_address), sqlite_path
    ddl = run_cli("schema", "diff", a, b, "--format", "ddl")
    assert ddl.returncode == 1 and "r" in ddl.stdout, ddl.stdout + ddl.stderr
    if into == "mysql":
        with open_database(mysql_address) as db:
            for statement in [s for s in ddl.stdout.split(";\n") if s.strip() and not s.startswith("--")]:
                db.execute(statement)
    else:
        assert in_the_sqlite3_shell(sqlite_path, ddl.stdout).returncode == 0
    again = run_cli("schema", "diff", a, b)
    assert again.returncode == 0 and "same schema" in again.stdout, again.stdout
    if into == "sqlite":
        with sqlite3.connect(sqlite_path) as con:
            assert con.execute("SELECT b, q, w, bo, n FROM METRIC").fetchall() == [(5, "it's", "x\\y", 1, 1.5)]


@pytest.mark.parametrize("engine", ["mysql", "sqlite"])
def test_a_diff_of_expression_and_odd_text_defaults_settles_on_one_engine(mysql_databases, tmp_path, engine):
    """Round 37: defaults were compared with their quotes stripped and written back as quoted text: an expression's
    default became a text, 'it''s' became it''s."""
    columns = ["id INTEGER PRIMARY KEY", "q VARCHAR(9) DEFAULT 'it''s'", "e VARCHAR(9) DEFAULT ''",
               "d DATETIME DEFAULT CURRENT_TIMESTAMP"]
    if engine == "mysql":
        columns += ["w VARCHAR(9) DEFAULT 'x\\\\y'", "k VARCHAR(9) DEFAULT (concat('a', 'b'))",
                    "t DATETIME(3) DEFAULT CURRENT_TIMESTAMP(3)", "b BIT(3) DEFAULT b'101'",
                    "u TIMESTAMP NULL DEFAULT '2025-01-01 00:00:00' ON UPDATE CURRENT_TIMESTAMP"]  # (39: dropped)
        first, second = mysql_databases(), mysql_databases()
        with open_database(first) as db:
            db.execute("CREATE TABLE t (%s)" % ", ".join(columns))
        with open_database(second) as db:
            db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, q VARCHAR(9) DEFAULT 'its')")
        a, b = url_of(first), url_of(second)
    else:
        columns += ["w TEXT DEFAULT 'x\\y'", "k TEXT DEFAULT (upper('a') || 'b')", "f INTEGER DEFAULT FALSE",
                    "g TEXT DEFAULT ('a' || 'b')"]  # (round 39: written back as the text a' || 'b)
        a, b = str(tmp_path / "a.db"), str(tmp_path / "b.db")
        with sqlite3.connect(a) as con:
            con.execute("CREATE TABLE t (%s)" % ", ".join(columns))
        with sqlite3.connect(b) as con:  # (round 39: id INT is no rowid alias; a rebuild made INTEGER's INT too)
            con.execute("CREATE TABLE t (id INT PRIMARY KEY, q VARCHAR(9) DEFAULT 'its')")
            con.execute("INSERT INTO t (id) VALUES (1)")  # (CURRENT_TIMESTAMP and expressions: a rebuild)
    ddl = run_cli("schema", "diff", a, b, "--format", "ddl")
    assert ddl.returncode == 1, ddl.stdout + ddl.stderr
    if engine == "mysql":
        with open_database(second) as db:
            for statement in [s for s in ddl.stdout.split(";\n") if s.strip() and not s.startswith("--")]:
                db.execute(statement)
    else:
        applied = in_the_sqlite3_shell(b, ddl.stdout)
        assert applied.returncode == 0 and not applied.stderr, applied.stderr
    again = run_cli("schema", "diff", a, b)
    assert again.returncode == 0, again.stdout
    if engine == "mysql":
        with open_database(second) as db:
            assert "on update" in db.scalar("SELECT EXTRA FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = "
                                            "DATABASE() AND TABLE_NAME = 't' AND COLUMN_NAME = 'u'").lower()
    if engine == "sqlite":  # a row given no value takes the same ones in both (its id the next rowid)
        made = []
        for path in (a, b):
            with sqlite3.connect(path) as con:
                con.execute("INSERT INTO t (e) VALUES ('x')")
                made.append(con.execute("SELECT id IS NOT NULL, q, w, k, f, g FROM t WHERE e = 'x'").fetchall())
        assert made[0] == made[1] == [(1, "it's", "x\\y", "Ab", 0, "ab")], made


@pytest.mark.parametrize("other", ["CREATE TABLE t (id INTEGER PRIMARY KEY DESC, v TEXT)",
                                   "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT) WITHOUT ROWID"])
def test_an_integer_key_that_is_no_rowid_alias_differs_from_one_that_is(tmp_path, other):
    """SQLite's `INTEGER PRIMARY KEY DESC` column is no rowid alias (its documented quirk), nor is a WITHOUT ROWID
    table's key: a row inserted without an id gets none (round 40: schema diff called them the same)."""
    a, b = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    for path, statement in ((a, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"), (b, other)):
        with sqlite3.connect(path) as con:
            con.execute(statement)
    ddl = run_cli("schema", "diff", a, b, "--format", "ddl")
    assert ddl.returncode == 1, ddl.stdout + ddl.stderr
    applied = in_the_sqlite3_shell(b, ddl.stdout)
    assert applied.returncode == 0 and not applied.stderr, applied.stderr
    assert run_cli("schema", "diff", a, b).returncode == 0
    with sqlite3.connect(b) as con:
        con.execute("INSERT INTO t (v) VALUES ('x')")
        assert con.execute("SELECT id FROM t").fetchall() == [(1,)]
    with sqlite3.connect(a) as con:  # (the same the other way: a DESC key has no same as the alias)
        con.execute("DROP TABLE t")
        con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY DESC, v TEXT)")
    assert run_cli("schema", "diff", a, b).returncode == 1


def test_a_without_rowid_table_differs_from_a_rowid_table_with_the_same_columns(tmp_path):
    """Round 41: `k TEXT PRIMARY KEY ... WITHOUT ROWID` against the same table with a rowid was "same schema" once
    its key was NOT NULL; the rebuild the DDL makes keeps the rows."""
    a, b = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    for path, options in ((a, " WITHOUT ROWID"), (b, "")):
        with sqlite3.connect(path) as con:
            con.execute("CREATE TABLE t (k TEXT NOT NULL PRIMARY KEY, v INT)%s" % options)
            con.execute("INSERT INTO t VALUES ('a', 1)")
    found = run_cli("schema", "diff", a, b)
    assert found.returncode == 1 and "t is a rowid table, A's is a WITHOUT ROWID table" in found.stdout, found.stdout
    applied = in_the_sqlite3_shell(b, run_cli("schema", "diff", a, b, "--format", "ddl").stdout)
    assert applied.returncode == 0 and not applied.stderr, applied.stderr
    assert run_cli("schema", "diff", a, b).returncode == 0
    with sqlite3.connect(b) as con:
        assert con.execute("SELECT k, v FROM t").fetchall() == [("a", 1)]
        with pytest.raises(sqlite3.OperationalError):
            con.execute("SELECT rowid FROM t")


@pytest.mark.mysql
def test_an_application_column_narrower_in_mariadb_differs_from_sqlites(mysql_address, tmp_path):
    """Round 42: EXPERIMENT.desc as TINYTEXT (255 bytes) was "same schema" against SQLite's TEXT, where a diff of two
    MariaDB databases said it, and an import then refused a 301-byte description. A legacy install's LONGTEXT
    per_label_val is the application's own."""
    source = str(tmp_path / "a.db")
    assert run_cli("init", source).returncode == 0 and run_cli("init", url_of(mysql_address)).returncode == 0
    with open_database(mysql_address) as db:
        db.execute("ALTER TABLE EXPERIMENT MODIFY `desc` TINYTEXT")
        db.execute("ALTER TABLE METRIC MODIFY per_label_val LONGTEXT")
    found = run_cli("schema", "diff", source, url_of(mysql_address))
    assert found.returncode == 1 and "EXPERIMENT.desc is TINYTEXT, not TEXT" in found.stdout, found.stdout
    assert "per_label_val" not in found.stdout, found.stdout
    ddl = run_cli("schema", "diff", source, url_of(mysql_address), "--format", "ddl").stdout
    with open_database(mysql_address) as db:
        for statement in [s for s in ddl.split(";\n") if s.strip() and not s.startswith("--")]:
            db.execute(statement)
    assert run_cli("schema", "diff", source, url_of(mysql_address)).returncode == 0


@pytest.mark.mysql
def test_the_application_schema_from_mariadb_into_an_empty_sqlite_file_applies_whole(mysql_address, tmp_path):
    """Round 43: MariaDB's index names are its tables' own (a foreign key's index bears its column's name, artifact_id
    in seven tables), SQLite's the whole database's: the DDL stopped at "index artifact_id already exists"."""
    assert run_cli("init", url_of(mysql_address)).returncode == 0
    target = str(tmp_path / "b.db")
    with sqlite3.connect(target) as con:
        con.execute("CREATE TABLE t (a)")
        con.execute("DROP TABLE t")
    applied = in_the_sqlite3_shell(target, run_cli("schema", "diff", url_of(mysql_address), target, "--format",
                                                   "ddl").stdout)
    assert applied.returncode == 0 and not applied.stderr, applied.stderr
    assert run_cli("schema", "diff", url_of(mysql_address), target).returncode == 0


@pytest.mark.mysql
def test_sqlites_hex_integers_are_numbers_and_a_default_left_out_keeps_bs(mysql_address, tmp_path):
    """Round 43: SQLite's DEFAULT 0x10 (the integer 16) was called X'10', and the DDL MariaDB got for it failed;
    A's expression default, left out of B's DDL, made MODIFY COLUMN drop B's own default."""
    source = str(tmp_path / "a.db")
    with sqlite3.connect(source) as con:
        con.execute("CREATE TABLE h (id INTEGER PRIMARY KEY, d INT DEFAULT 0x10, e INT DEFAULT -0x10, "
                    "k TEXT NOT NULL DEFAULT (upper('a')))")
    with open_database(mysql_address) as db:
        db.execute("CREATE TABLE h (id INT PRIMARY KEY, d INT DEFAULT 16, e INT DEFAULT -16, k TEXT DEFAULT 'zz')")
    found = run_cli("schema", "diff", source, url_of(mysql_address))
    assert found.returncode == 1 and "h.k is NULL-able" in found.stdout and "h.d" not in found.stdout and \
        "h.e" not in found.stdout, found.stdout
    ddl = run_cli("schema", "diff", source, url_of(mysql_address), "--format", "ddl").stdout
    assert "MODIFY COLUMN `k` TEXT NOT NULL DEFAULT 'zz'" in ddl, ddl


def test_a_sqlite_index_named_primary_is_an_index(tmp_path):
    """Round 44: a SQLite unique index named "PRIMARY" (MySQL's name of a key) was read past: "same schema"."""
    a, b = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    for path in (a, b):
        with sqlite3.connect(path) as con:
            con.execute("CREATE TABLE u (a INT, b INT)")
    with sqlite3.connect(a) as con:
        con.execute('CREATE UNIQUE INDEX "PRIMARY" ON u (b)')
    found = run_cli("schema", "diff", a, b)
    assert found.returncode == 1 and "u lacks UNIQUE (b)" in found.stdout, found.stdout


@pytest.mark.mysql
def test_mariadb_index_names_into_sqlite_stay_apart(mysql_address, tmp_path):
    """Round 44: `a`'s index `b_c` and `a_b`'s index `c` both became a_b_c in SQLite."""
    with open_database(mysql_address) as db:
        db.execute("CREATE TABLE a (id INT PRIMARY KEY, c INT, KEY b_c (c))")
        db.execute("CREATE TABLE a_b (id INT PRIMARY KEY, c INT, KEY c (c))")
    target = str(tmp_path / "b.db")
    sqlite3.connect(target).close()
    applied = in_the_sqlite3_shell(target, run_cli("schema", "diff", url_of(mysql_address), target, "--format",
                                                   "ddl").stdout)
    assert applied.returncode == 0 and not applied.stderr, applied.stderr
    assert run_cli("schema", "diff", url_of(mysql_address), target).returncode == 0


def test_a_diff_into_sqlite_writes_ddl_the_sqlite3_shell_runs(mysql_address, tmp_path):
    """Round 30: a MySQL table's ENUM, SET (and DECIMAL with a default) went into SQLite's rebuild as they were:
    `near "'Low'": syntax error`. They are written as SQLite names them now, and the script runs."""
    with open_database(mysql_address) as db:
        db.execute("CREATE TABLE `t` (id INT PRIMARY KEY, e ENUM('Low','HIGH','it''s') NOT NULL DEFAULT 'HIGH', "
                   "s SET('Aa','bB') DEFAULT 'Aa,bB', d DECIMAL(10,2) DEFAULT 1.50)")
    target = str(tmp_path / "b.db")
    con = sqlite3.connect(target)
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, e TEXT, s TEXT)")
    con.execute("INSERT INTO t VALUES (1, 'Low', 'Aa')")
    con.commit()
    con.close()
    result = run_cli("schema", "diff", url_of(mysql_address), target, "--format", "ddl")
    assert "ENUM" not in result.stdout and "SET(" not in result.stdout, result.stdout
    applied = in_the_sqlite3_shell(target, result.stdout)
    assert applied.returncode == 0 and not applied.stderr, applied.stderr
    con = sqlite3.connect(target)
    assert con.execute("SELECT id, e, s FROM t").fetchall() == [(1, "Low", "Aa")]
    assert [r[1] for r in con.execute("PRAGMA table_info(t)")] == ["id", "e", "s", "d"]
    con.close()


def test_a_column_that_differs_twice_gets_one_modify(mysql_address, mysql_databases):
    """Round 30: a column whose type and default both differ got its ALTER TABLE ... MODIFY twice (a big table
    rebuilt twice)."""
    result = ddl_between(mysql_address, mysql_databases(), "`t` (id INT PRIMARY KEY, e VARCHAR(9) NOT NULL DEFAULT "
                         "'a')", "`t` (id INT PRIMARY KEY, e VARCHAR(5))")
    assert result.stdout.count("MODIFY COLUMN") == 1, result.stdout


def test_schema_show_json_is_a_file_diff_reads(tmp_path):
    db = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(db)
    shown = run_cli("schema", "show", db.path, "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["generation"] == 2 and data["tables"]["METRIC"]["rows"] > 0
    assert data["schema_versions"][0]["version"] == "2.0"
    path = tmp_path / "schema.json"
    path.write_text(shown.stdout)
    assert run_cli("schema", "diff", str(path), db.path).returncode == 0
    bad = tmp_path / "bad.json"
    bad.write_text("{\"tables\": 1}")
    refused = run_cli("schema", "diff", str(bad), db.path)
    assert refused.returncode == 4 and "schema show --json" in refused.stderr and "Traceback" not in refused.stderr


def test_first_wave_spelling_still_shows_the_graph(tmp_path):
    db = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(db)
    result = run_cli("schema", db.path)
    assert result.returncode == 0 and "parent -> child order" in result.stdout


def test_upgrade_turns_a_first_generation_database_into_what_init_makes(address, other, tmp_path):
    make_demo(address, Shape(generation=1), faults=False, json_type="json")
    create_as_the_application(other)
    dry = run_cli("schema", "upgrade", url_of(address), "--dry-run", env={"EMFIX_MYSQL_PASSWORD": ""})
    assert dry.returncode == 0 and "CREATE TABLE" in dry.stdout
    assert catalog_of(address).generation == 1
    done = run_cli("schema", "upgrade", url_of(address), "--yes", "--snapshot-dir", str(tmp_path / "snapshots"),
                   env={"EMFIX_MYSQL_PASSWORD": ""})
    assert done.returncode == 0, done.stderr
    assert "snapshot before" in done.stdout
    after = catalog_of(address)
    assert after.generation == 2 and after.schema_versions[-1]["migration_name"] == "emfix_schema_upgrade"
    assert diff_catalogs(catalog_of(other), after).differences == []
    again = run_cli("schema", "upgrade", url_of(address), "--yes", env={"EMFIX_MYSQL_PASSWORD": ""})
    assert "already has the current" in again.stdout


def test_upgrade_without_a_terminal_asks_for_yes(tmp_path):
    db = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(db, Shape(generation=1))
    result = run_cli("schema", "upgrade", db.path)
    assert result.returncode == 2 and "--yes" in result.stderr
    assert catalog_of(db).generation == 1


def test_upgrade_rebuilds_a_table_that_lost_not_null_and_keeps_every_row(tmp_path):
    db = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(db)
    con = sqlite3.connect(db.path)
    sql = con.execute("SELECT sql FROM sqlite_master WHERE name = 'TRIAL_RUN'").fetchone()[0]
    before = con.execute('SELECT * FROM "TRIAL_RUN" ORDER BY id').fetchall()
    con.executescript('ALTER TABLE "TRIAL_RUN" RENAME TO old; %s; INSERT INTO "TRIAL_RUN" SELECT * FROM old; '
                      'DROP TABLE old;' % sql.replace('"status" VARCHAR(50) NOT NULL', '"status" VARCHAR(50)'))
    con.close()
    assert not catalog_of(db).table("TRIAL_RUN").column("status").not_null
    done = run_cli("schema", "upgrade", db.path, "--yes")
    assert done.returncode == 0, done.stderr
    assert catalog_of(db).table("TRIAL_RUN").column("status").not_null
    con = sqlite3.connect(db.path)
    assert con.execute('SELECT * FROM "TRIAL_RUN" ORDER BY id').fetchall() == before
    con.close()


def test_upgrade_killed_at_any_moment_leaves_the_database_before_or_upgraded(tmp_path):
    db = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(db, Shape(generation=1, runs=12))
    con = sqlite3.connect(db.path)  # a rebuild too, so the transaction holds more than CREATE TABLEs
    sql = con.execute("SELECT sql FROM sqlite_master WHERE name = 'EPOCH'").fetchone()[0]
    con.executescript('ALTER TABLE "EPOCH" RENAME TO old; %s; INSERT INTO "EPOCH" SELECT * FROM old; DROP TABLE old;'
                      % sql.replace('"time" TEXT NOT NULL', '"time" TEXT'))
    con.close()
    rng = random.Random(7)
    env = dict(os.environ, PYTHONPATH=ROOT)
    upgraded = False
    for _ in range(12):
        proc = subprocess.Popen([sys.executable, "-m", "emfix", "schema", "upgrade", db.path, "--yes",
                                 "--no-snapshot"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, 0.6))  # when the kill lands is the variable; every outcome must hold
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        con = sqlite3.connect(db.path)
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        con.close()
        catalog = catalog_of(db)
        epoch_required = catalog.table("EPOCH").column("time").not_null
        assert (catalog.generation == 2) == epoch_required  # one transaction: both or neither
        upgraded = upgraded or epoch_required
    finished = run_cli("schema", "upgrade", db.path, "--yes", "--no-snapshot")
    assert finished.returncode == 0
    assert catalog_of(db).generation == 2 and catalog_of(db).table("EPOCH").column("time").not_null


def test_upgrade_refuses_a_not_null_its_rows_would_break_and_changes_nothing(tmp_path):
    db = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(db)
    con = sqlite3.connect(db.path)
    sql = con.execute("SELECT sql FROM sqlite_master WHERE name = 'TRIAL_RUN'").fetchone()[0]
    con.executescript('ALTER TABLE "TRIAL_RUN" RENAME TO old; %s; INSERT INTO "TRIAL_RUN" SELECT * FROM old; '
                      'DROP TABLE old; UPDATE "TRIAL_RUN" SET status = NULL WHERE id = 1;'
                      % sql.replace('"status" VARCHAR(50) NOT NULL', '"status" VARCHAR(50)'))
    con.close()
    before = open(db.path, "rb").read()
    refused = run_cli("schema", "upgrade", db.path, "--yes")
    assert refused.returncode == 4 and "NULL in status" in refused.stderr and "Traceback" not in refused.stderr
    assert open(db.path, "rb").read() == before


@pytest.mark.parametrize("engine", ["sqlite", "mysql"])
@pytest.mark.parametrize("a_auto", [True, False])
def test_a_key_that_hands_out_ids_and_one_that_does_not_differ_and_settle(mysql_databases, tmp_path, engine, a_auto):
    """Round 40: `id INT PRIMARY KEY` against `INTEGER PRIMARY KEY AUTOINCREMENT` (and MariaDB's AUTO_INCREMENT
    against none) was "same schema": a row inserted without its id then got NULL, or was refused."""
    auto = {"sqlite": "id INTEGER PRIMARY KEY AUTOINCREMENT", "mysql": "id INT AUTO_INCREMENT PRIMARY KEY"}[engine]
    plain = "id INT PRIMARY KEY" if engine == "sqlite" else "id INT NOT NULL PRIMARY KEY"
    tables = ["CREATE TABLE t (%s, v TEXT)" % (auto if first else plain) for first in (a_auto, not a_auto)]
    if engine == "sqlite":
        a, b = str(tmp_path / "a.db"), str(tmp_path / "b.db")
        for path, table in zip((a, b), tables):
            with sqlite3.connect(path) as con:
                con.execute(table)
                con.execute("INSERT INTO t (id, v) VALUES (7, 'kept')")
    else:
        first, second = mysql_databases(), mysql_databases()
        for address, table in zip((first, second), tables):
            with open_database(address) as db:
                db.execute(table)
                db.execute("INSERT INTO t (id, v) VALUES (7, 'kept')")
        a, b = url_of(first), url_of(second)
    found = run_cli("schema", "diff", a, b)
    assert found.returncode == 1 and "t.id hands out" in found.stdout, found.stdout
    ddl = run_cli("schema", "diff", a, b, "--format", "ddl")
    if engine == "sqlite":
        applied = in_the_sqlite3_shell(b, ddl.stdout)
        assert applied.returncode == 0 and not applied.stderr, applied.stderr
    else:
        with open_database(second) as db:
            for statement in [s for s in ddl.stdout.split(";\n") if s.strip() and not s.startswith("--")]:
                db.execute(statement)
    again = run_cli("schema", "diff", a, b)
    assert again.returncode == 0, again.stdout


def test_an_expression_default_across_engines_is_advice_not_ddl_that_breaks_b(mysql_address, tmp_path):
    """Round 40: MariaDB's DEFAULT (concat('a','b')) was written into SQLite's rebuild (SQLite 3.40 has no concat():
    every insert leaving the column out failed), its ON UPDATE clock and a clock's fraction digits dropped without a
    word."""
    with open_database(mysql_address) as db:
        db.execute("CREATE TABLE t (id INT PRIMARY KEY, k VARCHAR(9) DEFAULT (concat('a', 'b')), u TIMESTAMP NULL "
                   "DEFAULT '2025-01-01 00:00:00' ON UPDATE CURRENT_TIMESTAMP, f DATETIME(6) DEFAULT "
                   "CURRENT_TIMESTAMP(6))")
    target = str(tmp_path / "b.db")
    with sqlite3.connect(target) as con:
        con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        con.execute("INSERT INTO t VALUES (1)")
    ddl = run_cli("schema", "diff", url_of(mysql_address), target, "--format", "ddl")
    statements = [line for line in ddl.stdout.splitlines() if not line.startswith("--")]
    assert not any("concat" in line for line in statements), ddl.stdout
    assert "-- t.k: A's default (concat('a','b')) is an expression of mysql" in ddl.stdout, ddl.stdout
    assert "-- t.u: MySQL's ON UPDATE CURRENT_TIMESTAMP has no SQLite column clause" in ddl.stdout, ddl.stdout
    assert "-- t.f: MySQL's CURRENT_TIMESTAMP(6) keeps 6 fraction digits" in ddl.stdout, ddl.stdout
    applied = in_the_sqlite3_shell(target, ddl.stdout)
    assert applied.returncode == 0 and not applied.stderr, applied.stderr
    with sqlite3.connect(target) as con:
        con.execute("INSERT INTO t (id) VALUES (2)")  # (refused: unknown function concat())
        assert con.execute("SELECT u FROM t WHERE id = 2").fetchone() == ("2025-01-01 00:00:00",)


@pytest.mark.parametrize("sql, without", [
    ("CREATE TABLE t (a, PRIMARY KEY (a)) WITHOUT ROWID", True),
    ("CREATE TABLE t (a, PRIMARY KEY (a)) WITHOUT/**/ROWID", True),
    ("CREATE TABLE t (a INT PRIMARY KEY) WITHOUT -- why\n ROWID, STRICT", True),
    ("CREATE TABLE t (a PRIMARY KEY) WITHOUT ROWID /* (see the notes) */", True),
    ('CREATE TABLE "x)" (a PRIMARY KEY) WITHOUT ROWID', True),
    ("CREATE TABLE t (a PRIMARY KEY) /* WITHOUT ROWID */", False),
    ("CREATE TABLE t (a PRIMARY KEY) -- WITHOUT ROWID", False),
    ("CREATE TABLE t (a PRIMARY KEY, b DEFAULT ') WITHOUT ROWID')", False),
    ("CREATE TABLE t (a PRIMARY KEY, b DEFAULT 'it''s') ", False),
    ("CREATE TABLE t (a)", False),
])
def test_without_rowid_is_read_past_comments_and_never_inside_one(sql, without):
    assert is_without_rowid(sql) is without
    with sqlite3.connect(":memory:") as con:  # what SQLite itself made of it
        con.execute(sql)
        table = con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        made = bool(con.execute("SELECT count(*) FROM pragma_table_list WHERE name = ? AND wr", (table,)).fetchone()[
            0]) if sqlite3.sqlite_version_info >= (3, 37) else without
    assert made is without
