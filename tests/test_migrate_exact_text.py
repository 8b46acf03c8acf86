"""SQLite -> MariaDB copies keep every byte of TEXT (a NUL included), and refuse, before writing anything,
metric values no MySQL column can give back as they are (BLOBs)."""

import sqlite3

import pytest
from conftest import run_cli, server_sql_mode, url_of

from emfix import pages
from emfix.address import DatabaseAddress
from emfix.backends import open_database
from emfix.demo import Shape, write_demo
from emfix.errors import DamagedInputError
from emfix.migrate import migrate_experiment
from emfix.schema import create_schema

SHAPE = Shape(experiments=2, trials=2, runs=2, epochs=2, batches=2)
WITH_NUL = {  # (table, column, id): a value SQLite's quote() would end at its first NUL
    ("EXPERIMENT", "desc", 1): "line1\n\\x\r\x00nul \u00e9 'q' \\0",
    ("TRIAL", "name", 1): "\x00",
    ("TRIAL", "name", 2): "\x00\x00 \u2713\x00",
    ("TRIAL_RUN", "status", 1): "it's\x00",
}
JSON_WITH_NUL = '{"cat": 0.5}\x00 and what follows'


def metric_ids(path, experiment_id=1, count=2):
    with sqlite3.connect(path) as db:
        return [r[0] for r in db.execute(
            "SELECT m.metric_id FROM EPOCH_METRIC m JOIN TRIAL_RUN r ON r.id = m.epoch_trial_run_id "
            "JOIN TRIAL t ON t.id = r.trial_id WHERE t.experiment_id = ? ORDER BY 1 LIMIT ?", (experiment_id, count))]


def sqlite_source(tmp_path, values=WITH_NUL):
    path = str(tmp_path / "src.db")
    write_demo(path, SHAPE, faults=False)
    with sqlite3.connect(path) as db:
        for (table, column, key), value in values.items():
            assert db.execute('UPDATE "%s" SET "%s" = ? WHERE id = ?' % (table, column), (value, key)).rowcount == 1
    return DatabaseAddress("sqlite", path=path)


def stored_bytes(address, table, column):
    """{id: the stored bytes of `column`} read as bytes on either engine (hex, so no driver decodes them)."""
    with open_database(address, readonly=True) as db:
        value = "CAST(%s AS BLOB)" % db.quote(column) if address.is_sqlite else db.quote(column)
        return {k: None if null else bytes.fromhex(h) for k, null, h in db.query(
            "SELECT id, %s IS NULL, hex(%s) FROM %s ORDER BY id" % (db.quote(column), value, db.quote(table)))}


def copied_as_text_pages(monkeypatch):
    used = []
    original = pages.literal_pages

    def spy(*args, **kwargs):
        used.append(args[3])
        return original(*args, **kwargs)

    monkeypatch.setattr(pages, "literal_pages", spy)
    return used


def test_text_holding_nul_arrives_whole_on_mariadb(mysql_address, tmp_path, monkeypatch):
    source = sqlite_source(tmp_path)
    used = copied_as_text_pages(monkeypatch)
    result = migrate_experiment(source, mysql_address, 1, init=True, snapshot_dir=str(tmp_path / "s"))
    assert result.verified and "EXPERIMENT" in used and "TRIAL" in used  # the SQL text path, checked as copied
    for table, column in {(t, c) for t, c, _ in WITH_NUL}:
        copied = stored_bytes(mysql_address, table, column)
        original = stored_bytes(source, table, column)
        assert copied == {k: v for k, v in original.items() if k in copied}
    assert stored_bytes(mysql_address, "EXPERIMENT", "desc")[1] == WITH_NUL[("EXPERIMENT", "desc", 1)].encode()
    assert stored_bytes(mysql_address, "TRIAL", "name")[1] == b"\x00"


def test_cli_copy_in_pages_of_three_rows_keeps_nul_text(mysql_address, tmp_path):
    source = sqlite_source(tmp_path)
    first = run_cli("migrate", source.path, url_of(mysql_address), "-e", "1", "--init", "--batch-size", "3",
                    "--snapshot-dir", str(tmp_path / "s"))
    assert first.returncode == 0, first.stderr
    with open_database(mysql_address) as db:
        assert db.scalar("SELECT count(*) FROM `EXPERIMENT` WHERE `desc` = ?",
                         (WITH_NUL[("EXPERIMENT", "desc", 1)],)) == 1


def test_metric_json_with_nul_is_refused_by_a_json_column_before_anything_is_written(mysql_address, tmp_path):
    path = str(tmp_path / "src.db")
    write_demo(path, SHAPE, faults=False)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE METRIC SET per_label_val = ? WHERE id = ?", (JSON_WITH_NUL, metric_ids(path)[0]))
    refused = run_cli("migrate", path, url_of(mysql_address), "-e", "1", "--init", "--snapshot-dir",
                      str(tmp_path / "s"))
    assert refused.returncode == 4 and "not valid JSON" in refused.stderr and "fix-json" in refused.stderr
    with open_database(mysql_address) as db:
        assert db.tables() == []


def test_metric_json_with_nul_arrives_whole_in_a_longtext_column(mysql_address, tmp_path):
    path = str(tmp_path / "src.db")
    write_demo(path, SHAPE, faults=False)
    first = metric_ids(path)[0]
    with sqlite3.connect(path) as db:
        db.execute("UPDATE METRIC SET per_label_val = ? WHERE id = ?", (JSON_WITH_NUL, first))
    with open_database(mysql_address) as db:
        create_schema(db, json_type="text")
    source = DatabaseAddress("sqlite", path=path)
    result = migrate_experiment(source, mysql_address, 1, snapshot_dir=str(tmp_path / "s"))
    assert result.verified
    copied = stored_bytes(mysql_address, "METRIC", "per_label_val")
    assert copied[first] == JSON_WITH_NUL.encode()
    assert copied == {k: v for k, v in stored_bytes(source, "METRIC", "per_label_val").items() if k in copied}


@pytest.mark.parametrize("json_type,strategy", [("json", "balanced"), ("text", "aggressive")])
def test_metric_json_stored_as_blob_is_refused_before_anything_is_written(mysql_address, tmp_path, json_type,
                                                                          strategy):
    path = str(tmp_path / "src.db")
    write_demo(path, SHAPE, faults=False)
    blobs = metric_ids(path)
    with sqlite3.connect(path) as db:
        db.executemany("UPDATE METRIC SET per_label_val = CAST(per_label_val AS BLOB) WHERE id = ?",
                       [(i,) for i in blobs])
    with open_database(mysql_address) as db:
        create_schema(db, json_type=json_type)
        tables = db.tables()
    source = DatabaseAddress("sqlite", path=path)
    with pytest.raises(DamagedInputError) as refused:
        migrate_experiment(source, mysql_address, 1, strategy=strategy, snapshot_dir=str(tmp_path / "s"))
    assert "BLOB" in str(refused.value) and "METRIC.per_label_val (id %d, %d)" % tuple(blobs) in str(refused.value)
    assert "nothing was copied" in str(refused.value) and "emfix fix-json" in refused.value.hint
    with open_database(mysql_address) as db:
        assert db.tables() == tables  # no journal table either
        assert all(db.scalar("SELECT count(*) FROM %s" % db.quote(t)) == 0 for t in tables if t != "SCHEMA_VERSION")
    # the way out the refusal names: fix-json stores each as its text, and the copy then verifies
    fixed = run_cli("fix-json", path, "--yes", "--no-snapshot", "--quarantine-dir", str(tmp_path / "q"))
    assert fixed.returncode == 0, fixed.stderr
    result = migrate_experiment(source, mysql_address, 1, strategy=strategy, snapshot_dir=str(tmp_path / "s"))
    assert result.verified
    copied = stored_bytes(mysql_address, "METRIC", "per_label_val")
    assert copied == {k: v for k, v in stored_bytes(source, "METRIC", "per_label_val").items() if k in copied}


def test_a_blob_that_is_not_utf8_is_named_with_the_only_fix_json_that_changes_it(mysql_address, tmp_path):
    """Found in a session's notes: the refusal said fix-json would store each BLOB as its text, but one whose bytes
    are not UTF-8 fix-json leaves alone (it needs a person). The hint names it and `--reset-unfixable`, which
    then lets the copy through."""
    path = str(tmp_path / "src.db")
    write_demo(path, SHAPE, faults=False)
    text, raw = metric_ids(path)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE METRIC SET per_label_val = CAST(per_label_val AS BLOB) WHERE id = ?", (text,))
        db.execute("UPDATE METRIC SET per_label_val = X'7B2261223A20FF7D' WHERE id = ?", (raw,))
    with open_database(mysql_address) as db:
        create_schema(db)
    source = DatabaseAddress("sqlite", path=path)
    with pytest.raises(DamagedInputError) as refused:
        migrate_experiment(source, mysql_address, 1, strategy="aggressive")
    hint = refused.value.hint
    assert "id %d is not UTF-8 text" % raw in hint and "--reset-unfixable" in hint and "id %d " % text not in hint, hint
    fixed = run_cli("fix-json", path, "--yes", "--no-snapshot", "--quarantine-dir", str(tmp_path / "q"))
    assert fixed.returncode == 1 and "cannot be repaired without guessing" in fixed.stdout, fixed  # one left
    with pytest.raises(DamagedInputError) as still:
        migrate_experiment(source, mysql_address, 1, strategy="aggressive")
    assert "(id %d)" % raw in str(still.value)
    fixed = run_cli("fix-json", path, "--yes", "--reset-unfixable", "--no-snapshot", "--quarantine-dir",
                    str(tmp_path / "q"))
    assert fixed.returncode == 0, fixed.stderr
    assert migrate_experiment(source, mysql_address, 1, strategy="aggressive").verified


def test_a_blob_in_any_text_column_is_refused_before_anything_is_written(mysql_address, tmp_path):
    """A BLOB in TRIAL.name or ARTIFACT.loc comes back from a MySQL text column as text (or not at all): the
    copy is refused up front, naming table, column and rows; stored as text, it then copies and verifies."""
    path = str(tmp_path / "src.db")
    write_demo(path, SHAPE, faults=False)
    with sqlite3.connect(path) as db:
        trial = db.execute("SELECT min(id) FROM TRIAL WHERE experiment_id = 1").fetchone()[0]
        db.execute("UPDATE TRIAL SET name = CAST(name AS BLOB) WHERE id = ?", (trial,))
        db.execute("UPDATE ARTIFACT SET loc = CAST(loc AS BLOB) WHERE id IN (SELECT artifact_id FROM "
                   "EXPERIMENT_ARTIFACT WHERE experiment_id = 1)")
    with open_database(mysql_address) as db:
        create_schema(db)
    source = DatabaseAddress("sqlite", path=path)
    with pytest.raises(DamagedInputError) as refused:
        migrate_experiment(source, mysql_address, 1, strategy="aggressive", snapshot_dir=str(tmp_path / "s"))
    message = str(refused.value)
    assert "TRIAL.name (id %d)" % trial in message and "ARTIFACT.loc (id " in message, message
    assert "nothing was copied" in message and "CAST(column AS TEXT)" in refused.value.hint
    with open_database(mysql_address) as db:
        assert all(db.scalar("SELECT count(*) FROM %s" % t) == 0 for t in ("EXPERIMENT", "TRIAL", "ARTIFACT"))
    with sqlite3.connect(path) as db:  # the way out the hint names
        db.execute("UPDATE TRIAL SET name = CAST(name AS TEXT) WHERE typeof(name) = 'blob'")
        db.execute("UPDATE ARTIFACT SET loc = CAST(loc AS TEXT) WHERE typeof(loc) = 'blob'")
    result = migrate_experiment(source, mysql_address, 1, snapshot_dir=str(tmp_path / "s"))
    assert result.verified
    assert stored_bytes(mysql_address, "TRIAL", "name")[trial] == stored_bytes(source, "TRIAL", "name")[trial]


def test_exact_quote_gives_back_every_sqlite_value_as_quote_would_or_whole():
    db = sqlite3.connect(":memory:")
    rows = [(1,), (2.5,), (None,), (b"\x00\xff",), ("plain 'q'",), ("a\x00b",), ("\x00",), ("\u00e9\x00\u2713",)]
    got = [db.execute("SELECT %s FROM (SELECT ? AS v)" % pages.exact_quote("v"), r).fetchone()[0] for r in rows]
    assert got[:5] == ["1", "2.5", "NULL", "X'00FF'", "'plain ''q'''"]
    assert got[5:] == ["_utf8mb4 X'610062'", "_utf8mb4 X'00'", "_utf8mb4 X'C3A900E29C93'"]


def test_a_server_that_is_not_strict_never_cuts_a_value_emfix_writes(mysql_address, tmp_path, monkeypatch):
    """An outside tester's question: on a server whose sql_mode is not strict, a value longer than its column is
    cut with a warning only. emfix's writing sessions add strict mode, so the copy stops instead (the session is
    made lax here, as such a server's would be, before emfix sets its own)."""
    from emfix.errors import EmfixError
    server_sql_mode(monkeypatch, "")
    path = str(tmp_path / "src.db")
    write_demo(path, SHAPE, faults=False)
    with sqlite3.connect(path) as db:
        run = db.execute("SELECT min(r.id) FROM TRIAL_RUN r JOIN TRIAL t ON t.id = r.trial_id "
                         "WHERE t.experiment_id = 1").fetchone()[0]
        db.execute("UPDATE TRIAL_RUN SET status = ? WHERE id = ?", ("x" * 80, run))  # the column is VARCHAR(50)
    with open_database(mysql_address) as db:
        create_schema(db)
        assert "STRICT" in db.scalar("SELECT @@sql_mode")
    with pytest.raises(EmfixError) as stopped:
        migrate_experiment(DatabaseAddress("sqlite", path=path), mysql_address, 1, strategy="aggressive",
                           snapshot_dir=str(tmp_path / "s"))
    assert "status" in str(stopped.value), stopped.value
    with open_database(mysql_address) as db:
        assert db.scalar("SELECT count(*) FROM TRIAL_RUN WHERE status = ?", ("x" * 50,)) == 0


@pytest.mark.parametrize("column_type", ["VARBINARY(255)", "BINARY(40)", "BLOB"])
def test_text_into_a_binary_column_of_dst_verifies_as_its_bytes(mysql_address, tmp_path, column_type):
    """Round 30 (left then): a text column of SRC into a binary column of DST never verified (DIFFERS, exit 4, after
    the copy): the copy keeps the text's UTF-8 bytes, and the verify compares SRC's values as DST keeps them, saying
    how many it counted so. A BINARY(n) pads text shorter than n bytes with zero bytes: refused up front (round 45:
    the copy said it was exact)."""
    source = DatabaseAddress("sqlite", path=str(tmp_path / "src.db"))
    write_demo(source.path, SHAPE, faults=False)
    with sqlite3.connect(source.path) as con:
        con.execute("UPDATE TRIAL SET name = name || ' \u00e9\u2713'")
        names = dict(con.execute("SELECT id, name FROM TRIAL WHERE experiment_id = 1").fetchall())
    assert run_cli("init", url_of(mysql_address)).returncode == 0
    with open_database(mysql_address) as db:
        db.execute("ALTER TABLE TRIAL MODIFY name %s NOT NULL" % column_type)
    result = run_cli("migrate", source.path, url_of(mysql_address), "-e", "1")
    if column_type.startswith("BINARY"):
        assert result.returncode == 4 and "values of TRIAL.name are shorter than" in result.stderr, result.stderr
        with open_database(mysql_address) as db:
            assert db.scalar("SELECT count(*) FROM TRIAL") == 0
        return
    assert result.returncode == 0, result.stdout + result.stderr
    assert "note: %d values of TRIAL.name are stored as DST's column keeps them" % len(names) in result.stdout
    with open_database(mysql_address) as db:
        held = {r[0]: bytes(r[1]) for r in db.query("SELECT id, name FROM TRIAL")}
    assert held == {i: n.encode("utf-8") for i, n in names.items()}
