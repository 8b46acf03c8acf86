"""SQLite -> MySQL pages go by LOAD DATA LOCAL INFILE where the server allows it, and store exactly what their INSERT
stores: the same bytes read the same way, or the INSERT decides (a warning, a hex literal, a server that says no)."""

import dataclasses
import os
import sqlite3
import struct

import pytest
from conftest import run_cli, server_sql_mode, url_of
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from servers import Server, find_mariadbd

from emfix import pages
from emfix.address import DatabaseAddress
from emfix.backends import mysqlload, open_database
from emfix.demo import Shape, write_demo
from emfix.migrate import migrate_experiment

SHAPE = Shape(experiments=2, trials=2, runs=2, epochs=2, batches=2)
AWKWARD = ["", "NULL", "\\N", "\\", "a\\", "\\'", "it's", "''", "'),('", "a,b", "x'),(1,'y", "\t", "\n", "\r\n",
           "line\nnext", "\\0", "\\n", "caf\u00e9 \u2713 \U0001f600", " lead", "trail ", "'", ",", "),(", "\\\\'),('"]
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40) | st.sampled_from(AWKWARD)
REAL = st.floats(allow_nan=False, allow_infinity=False)
ROWS = st.lists(st.tuples(st.none() | TEXT, st.none() | REAL, st.none() | st.integers(-2 ** 63, 2 ** 63 - 1),
                          st.none() | st.floats(-1e38, 1e38)), min_size=1, max_size=30)
COLUMNS = ("id", "t", "d", "n", "f")


def page_of(rows):
    """The page migrate sends for these rows (pages.literal_pages' text: quote()d values, backslashes doubled)."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE src (id INTEGER PRIMARY KEY, t TEXT, d REAL, n INTEGER, f REAL)")
    db.executemany("INSERT INTO src VALUES (?, ?, ?, ?, ?)", [(i,) + tuple(r) for i, r in enumerate(rows)])
    values = " || ',' || ".join(pages.exact_quote("t.%s" % c) for c in COLUMNS)
    count, text = db.execute("SELECT count(*), CAST(replace(group_concat(%s, '),('), '\\', '\\\\') AS BLOB) "
                             "FROM (SELECT * FROM src ORDER BY id) t" % values).fetchone()
    return count, bytes(text)


def bits(rows):
    """Rows with each double as its 8 bytes: -0.0 and 0.0 differ, as stored values do."""
    return [tuple(struct.pack("<d", v) if isinstance(v, float) else v for v in row) for row in rows]


@pytest.fixture
def loading(mysql_address, tmp_path):
    folder = tmp_path / "pages"
    folder.mkdir()
    with open_database(mysql_address, load_directory=str(folder)) as db:
        for name in ("by_load", "by_insert"):
            db.execute("CREATE TABLE %s (id BIGINT PRIMARY KEY, t LONGTEXT, d DOUBLE, n BIGINT, f FLOAT) "
                       "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin" % name)
        yield db, folder


def stored(db, table, columns="t, d, n"):
    return [tuple(r) for r in db.query("SELECT %s FROM %s ORDER BY id" % (columns, table))]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=ROWS)
@example(rows=[("X", None, None, None)])  # found by the suite: 'X' holds X', taken for a hex literal (its INSERT)
def test_a_loaded_page_stores_what_its_insert_stores_and_what_sqlite_held(loading, rows):
    db, folder = loading
    count, text = page_of(rows)
    columns = db.quote_columns(list(COLUMNS))
    for table in ("by_load", "by_insert"):
        db.execute("DELETE FROM %s" % table)
    with db.transaction():
        loaded = db.load_text_page("by_load", columns, text, count)
        if any(isinstance(row[0], str) and "\x00" in row[0] for row in rows):  # a hex literal: never loaded
            assert loaded is None
        if loaded is None:  # a page holding X' (a hex literal, or text that only looks like one, 'X'): its INSERT
            assert mysqlload.HEX_LITERAL in text
            db.execute_raw(b"INSERT INTO by_load (%s) VALUES (%s)" % (columns.encode(), text))
        db.execute_raw(b"INSERT INTO by_insert (%s) VALUES (%s)" % (columns.encode(), text))
    assert bits(stored(db, "by_load", "t, d, n, f, hex(f)")) == bits(stored(db, "by_insert", "t, d, n, f, hex(f)"))
    assert stored(db, "by_load") == [tuple(r[:3]) for r in rows]
    assert os.listdir(folder) == []  # each page's file goes once it is loaded


def test_a_page_the_server_would_change_is_rolled_back_and_left_to_its_insert(loading):
    db, _ = loading
    columns = db.quote_columns(list(COLUMNS))
    db.execute("INSERT INTO by_load (id, t) VALUES (1, 'already here')")
    count, text = page_of([("first", 0.5, 1, None), ("second", 1.5, 2, None)])  # ids 0 and 1: 1 is taken
    with db.transaction():
        assert db.load_text_page("by_load", columns, text, count) is None  # LOCAL skipped the duplicate, warned
        assert stored(db, "by_load") == [("already here", None, None)]  # and the row it did store is gone
    count, text = page_of([(None, None, 5, 1e300)])  # 1e300 does not fit a FLOAT: LOCAL would store its limit
    with db.transaction():
        assert db.load_text_page("by_load", columns, text, count) is None
    assert stored(db, "by_load") == [("already here", None, None)]


def test_a_table_with_a_column_load_data_reads_otherwise_gets_its_insert(loading):
    """LOAD DATA reads the field 5 into a BIT column as the character '5' (0x35), without a warning."""
    db, _ = loading
    db.execute("ALTER TABLE by_load MODIFY n BIT(8)")
    count, text = page_of([(None, None, 5, None)])
    with db.transaction():
        assert db.load_text_page("by_load", db.quote_columns(list(COLUMNS)), text, count) is None


def test_the_folder_of_a_killed_run_goes_with_its_page_and_nothing_else(tmp_path, monkeypatch):
    monkeypatch.setattr(mysqlload.tempfile, "tempdir", str(tmp_path))
    killed, kept, fresh = tmp_path / "emfix-load-killed", tmp_path / "emfix-load-kept", tmp_path / "emfix-load-new"
    for folder in (killed, kept, fresh):
        folder.mkdir()
    dead = ".page-0.emfix-%d.tmp" % (2 ** 22 + 1)  # a pid no process has (above the largest pid_max)
    (killed / dead).write_bytes(b"1,'a'")
    (kept / dead).write_bytes(b"1,'a'")
    (kept / "notes.txt").write_text("not emfix's")
    (fresh / dead).write_bytes(b"1,'a'")
    old = os.stat(killed).st_mtime - 3600
    for path in (killed, killed / dead, kept, kept / dead):
        os.utime(path, (old, old))
    with mysqlload.load_folder() as folder:
        assert os.path.isdir(folder) and oct(os.stat(folder).st_mode & 0o777) == "0o700"
    assert not killed.exists() and not os.path.exists(folder)
    assert (kept / "notes.txt").exists() and (fresh / dead).exists()


def test_the_driver_reads_no_file_outside_the_commands_own_folder(loading, tmp_path):
    """A server may ask for any file by name in its answer to LOCAL: the driver sends only those of the folder."""
    db, _ = loading
    secret = tmp_path / "secret.txt"
    secret.write_text("1\tx\n")
    with pytest.raises(Exception, match="allow_local_infile_in_path"):  # the driver's own refusal
        db.execute("LOAD DATA LOCAL INFILE '%s' INTO TABLE by_load (id, t)" % secret)
    with open_database(db.address) as other:
        assert stored(other, "by_load") == []


def sqlite_source(tmp_path, texts):
    path = str(tmp_path / "src.db")
    write_demo(path, SHAPE, faults=False)
    with sqlite3.connect(path) as db:
        ids = [r[0] for r in db.execute("SELECT id FROM TRIAL WHERE experiment_id = 1 ORDER BY id")]
        for key, text in zip(ids, texts):
            db.execute("UPDATE TRIAL SET name = ? WHERE id = ?", (text, key))
        db.execute("UPDATE EXPERIMENT SET \"desc\" = ? WHERE id = 1", ("\\'),(" + "\\" * 3,))
    return DatabaseAddress("sqlite", path=path), ids


def names(address):
    with open_database(address) as db:
        return {k: v for k, v in db.query("SELECT id, name FROM TRIAL ORDER BY id")}


def counting_loads(monkeypatch):
    loaded = []
    original = mysqlload.LocalLoadMixin.load_text_page

    def spy(self, table, *args):
        written = original(self, table, *args)
        loaded.append((table, written))
        return written

    monkeypatch.setattr(mysqlload.LocalLoadMixin, "load_text_page", spy)
    return loaded


def test_migrate_loads_its_pages_and_keeps_backslashes_and_quotes(mysql_address, tmp_path, monkeypatch):
    source, ids = sqlite_source(tmp_path, ["a\\b'c", "'),(x"])
    loaded = counting_loads(monkeypatch)
    result = migrate_experiment(source, mysql_address, 1, init=True, strategy="balanced",
                                snapshot_dir=str(tmp_path / "s"))
    assert result.verified  # counts and checksums of both sides
    assert {t for t, written in loaded if written} >= {"TRIAL", "EXPERIMENT", "METRIC"}
    assert names(mysql_address) == {k: v for k, v in names(source).items() if k in ids}
    assert not [n for n in os.listdir(tmp_path) if n.startswith("emfix-load-")]


def test_a_server_that_does_not_allow_local_gets_every_page_as_its_insert(mysql_address, tmp_path, monkeypatch):
    """A server of the test's own, started with --local-infile=0: the option is global, and turning it off on the
    shared server (as this test once did) made the other tests' loads beside it fail now and then."""
    mariadbd, install = find_mariadbd()
    server = Server(str(tmp_path / "data"), 8)
    try:
        server.start(mariadbd, install, lambda: ["--local-infile=0"])
        server.sql("CREATE DATABASE em CHARACTER SET utf8mb4")
        every_page_goes_as_its_insert(server.address("em"), tmp_path, monkeypatch)
    finally:
        server.stop()


def test_a_server_whose_sql_mode_says_no_backslash_escapes_gets_the_same_text(mysql_address, tmp_path, monkeypatch):
    """With NO_BACKSLASH_ESCAPES, a page's doubled backslashes were stored as two (found beside the LOAD DATA work:
    every page's INSERT, and the driver's escaping of bound values, write a backslash as two). emfix's writing
    sessions leave the mode out; the session is given it here first, as such a server's would be."""
    server_sql_mode(monkeypatch, "NO_BACKSLASH_ESCAPES,STRICT_TRANS_TABLES")
    monkeypatch.setattr(mysqlload, "driver_loads_locally", lambda driver: False)  # every page as its INSERT
    source, ids = sqlite_source(tmp_path, ["a\\b'c", "\\"])
    result = migrate_experiment(source, mysql_address, 1, init=True, strategy="balanced",
                                snapshot_dir=str(tmp_path / "s"))
    assert result.verified
    assert names(mysql_address) == {k: v for k, v in names(source).items() if k in ids}
    with open_database(mysql_address) as db:
        assert "NO_BACKSLASH_ESCAPES" not in db.scalar("SELECT @@sql_mode")
        db.execute("UPDATE TRIAL SET name = ? WHERE id = ?", ("c:\\dir\\", ids[0]))  # a bound value, escaped
        assert db.scalar("SELECT name FROM TRIAL WHERE id = ?", (ids[0],)) == "c:\\dir\\"


def test_cli_copy_with_pages_of_one_row_each_loads_them_all(mysql_address, tmp_path):
    source, ids = sqlite_source(tmp_path, ["'", "\\"])
    done = run_cli("migrate", source.path, url_of(mysql_address), "-e", "1", "--init", "--batch-size", "1",
                   "--snapshot-dir", str(tmp_path / "s"))
    assert done.returncode == 0, done.stderr
    assert names(mysql_address) == {k: v for k, v in names(source).items() if k in ids}


def test_without_a_temporary_folder_to_be_had_every_page_goes_as_its_insert(mysql_address, tmp_path, monkeypatch):
    def refused(**_kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(mysqlload.tempfile, "mkdtemp", refused)
    every_page_goes_as_its_insert(mysql_address, tmp_path, monkeypatch)


def every_page_goes_as_its_insert(target, tmp_path, monkeypatch):
    """A copy into `target`: verified, every row there, and not one page loaded (each went as its INSERT)."""
    source, ids = sqlite_source(tmp_path, ["a\\b'c", "'),(x"])
    loaded = counting_loads(monkeypatch)
    result = migrate_experiment(source, target, 1, init=True, strategy="balanced", snapshot_dir=str(tmp_path / "s"))
    assert result.verified and loaded and not any(written for _, written in loaded)
    assert names(target) == {k: v for k, v in names(source).items() if k in ids}


def test_a_real_in_a_column_sqlite_does_not_keep_as_text_is_stored_as_its_insert_stores_it(mysql_address, tmp_path,
                                                                                           monkeypatch):
    """Found by an outside tester: a REAL (SQLite keeps one where the column's affinity is not TEXT) landing in a
    text column was stored by LOAD DATA as quote() spells it (1.0e-05), by the INSERT as MySQL does (0.00001)."""
    path = str(tmp_path / "src.db")
    write_demo(path, SHAPE, faults=False)
    with sqlite3.connect(path) as db:
        ids = [r[0] for r in db.execute("SELECT m.metric_id FROM EPOCH_METRIC m JOIN TRIAL_RUN r ON r.id = "
                                        "m.epoch_trial_run_id JOIN TRIAL t ON t.id = r.trial_id WHERE "
                                        "t.experiment_id = 1 ORDER BY 1 LIMIT 2")]
        db.execute("PRAGMA writable_schema = ON")  # per_label_val declared JSON: NUMERIC affinity, a REAL stays one
        db.execute("UPDATE sqlite_master SET sql = replace(sql, '\"per_label_val\" TEXT', '\"per_label_val\" JSON') "
                   "WHERE name = 'METRIC'")
    with sqlite3.connect(path) as db:
        for key, value in zip(ids, (1e-05, 0.1 + 0.2)):
            db.execute("UPDATE METRIC SET per_label_val = ? WHERE id = ?", (value, key))
        assert {r[0] for r in db.execute("SELECT typeof(per_label_val) FROM METRIC WHERE id IN (?, ?)", ids)} == {
            "real"}
    source = DatabaseAddress("sqlite", path=path)
    loaded = counting_loads(monkeypatch)
    migrate_experiment(source, mysql_address, 1, init=True, strategy="aggressive", snapshot_dir=str(tmp_path / "s"))
    assert not [t for t, written in loaded if t == "METRIC" and written]
    other = dataclasses.replace(mysql_address, database=mysql_address.database + "_i")  # the copy as INSERTs
    monkeypatch.setattr(mysqlload, "driver_loads_locally", lambda driver: False)
    try:
        migrate_experiment(source, other, 1, init=True, strategy="aggressive", snapshot_dir=str(tmp_path / "s"))

        def values(address):
            with open_database(address) as db:
                return db.query("SELECT id, per_label_val FROM METRIC WHERE id IN (?, ?) ORDER BY id", tuple(ids))
        assert values(mysql_address) == values(other)
    finally:
        with open_database(mysql_address) as db:
            db.execute("DROP DATABASE IF EXISTS %s" % db.quote(other.database))


@pytest.mark.parametrize("name", ["q'x\\y", "new\nline"])
def test_a_temporary_folder_whose_name_holds_a_quote_gets_every_page_as_its_insert(mysql_address, tmp_path,
                                                                                   monkeypatch, name):
    """Found by an outside tester: TMPDIR=/tmp/q'x crashed every migrate (exit 70): the driver reads the file's
    name back from the statement without undoing the quote's doubling; in a second round, a newline (the driver's
    pattern for the name stops there)."""
    odd = tmp_path / name
    odd.mkdir()
    monkeypatch.setattr(mysqlload.tempfile, "tempdir", str(odd))
    source, ids = sqlite_source(tmp_path, ["a\\b'c", "'),(x"])
    loaded = counting_loads(monkeypatch)
    result = migrate_experiment(source, mysql_address, 1, init=True, strategy="balanced",
                                snapshot_dir=str(tmp_path / "s"))
    assert result.verified and loaded and not any(written for _, written in loaded)
    assert os.listdir(odd) == []


def source_with_total_val(tmp_path, value):
    """A SQLite demo whose one metric of experiment 1 holds `value` in total_val: its path."""
    path = str(tmp_path / "src.db")
    write_demo(path, SHAPE, faults=False)
    with sqlite3.connect(path) as db:
        key = db.execute("SELECT m.metric_id FROM EPOCH_METRIC m JOIN TRIAL_RUN r ON r.id = m.epoch_trial_run_id "
                         "JOIN TRIAL t ON t.id = r.trial_id WHERE t.experiment_id = 1 LIMIT 1").fetchone()[0]
        db.execute("UPDATE METRIC SET total_val = ? WHERE id = ?", (value, key))
    return path


def test_an_infinite_real_is_refused_as_a_value_mysql_has_none_for(mysql_address, tmp_path):
    """quote() writes SQLite's infinite REAL as Inf, which MySQL read as a column name: "Unknown column 'Inf'",
    with a hint about the schema."""
    path = source_with_total_val(tmp_path, 9e999)
    refused = run_cli("migrate", path, url_of(mysql_address), "-e", "1", "--init", "--strategy", "aggressive",
                      "--snapshot-dir", str(tmp_path / "s"))
    assert refused.returncode == 4 and "infinite" in refused.stderr and "9e999" in refused.stderr, refused.stderr


def test_text_in_a_number_column_is_refused_as_not_a_number_not_as_bytes(mysql_address, tmp_path):
    """An outside tester: 'abc' in METRIC.total_val (SQLite keeps it) was refused by MySQL rightly, but the hint
    said the value's bytes were not UTF-8."""
    path = source_with_total_val(tmp_path, "abc")
    refused = run_cli("migrate", path, url_of(mysql_address), "-e", "1", "--init", "--strategy", "aggressive")
    assert refused.returncode == 4 and "is text or bytes, which DST's number column" in refused.stderr, refused.stderr
    assert "UTF-8" not in refused.stderr and "nothing was copied" in refused.stderr


def test_sqlite_temporary_files_that_cannot_be_written_are_a_clear_error(mysql_address, tmp_path):
    """An outside tester: TMPDIR=/proc (a folder nothing may create files in) made SQLite's temporary tables fail
    with "unable to open database file", exit 70."""
    # key tables that spill to files (at 0.01 only a second walk's DROP of them did, and migrate walks once now)
    made = run_cli("demo", str(tmp_path / "d"), "--scale", "0.2", "--clean")
    assert made.returncode == 0, made.stderr
    path = str(tmp_path / "d" / "experiment.db")
    refused = run_cli("migrate", path, url_of(mysql_address), "-e", "1", "--init", env={"TMPDIR": "/proc",
                                                                                          "SQLITE_TMPDIR": "/proc"})
    assert refused.returncode == 3 and "Traceback" not in refused.stderr, refused.stderr
    assert "TMPDIR" in refused.stderr.splitlines()[-1]
