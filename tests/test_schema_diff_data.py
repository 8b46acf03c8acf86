"""A schema diff is data (issue 25, item 8): one comparison, then text, DDL and JSON rendered from the same list;
schema upgrade compares once and keeps a type that would change stored values without editing its target."""

import dataclasses
import sqlite3

from conftest import in_the_sqlite3_shell, make_demo, run_cli

from emfix.address import DatabaseAddress
from emfix.backends import open_database
from emfix.catalog import ColumnInfo, expected_catalog, read_catalog
from emfix.schemadiff import Difference, compare_catalogs, describe, diff_catalogs, rated, render
from emfix.upgrade import plan_upgrade


def _with_metric(catalog, **changes):
    """A copy of `catalog` whose METRIC table has `changes` (the original is left as it was)."""
    tables = dict(catalog.tables)
    tables["METRIC"] = dataclasses.replace(catalog.tables["METRIC"], **changes)
    return dataclasses.replace(catalog, tables=tables)


def test_the_comparison_holds_no_words_and_no_sql_only_what_each_side_has():
    a = expected_catalog("sqlite", 2, "json")
    metric = a.tables["METRIC"]
    b = _with_metric(a, columns=[c for c in metric.columns if c.name != "total_val"]
                     + [ColumnInfo("note", "TEXT")], rows=3)
    differences = compare_catalogs(a, b)
    assert [(d.kind, d.table, d.column) for d in differences] == [
        ("missing_column", "METRIC", "total_val"), ("extra_column", "METRIC", "note")]
    missing, extra = differences
    assert isinstance(missing, Difference) and missing.a == metric.column("total_val") and missing.b is None
    assert extra.a is None and extra.b == ColumnInfo("note", "TEXT")
    assert (extra.rating, extra.reason) == ("BREAKING", "dropping the column loses its data (3 rows)")
    assert not any(hasattr(d, name) for d in differences for name in ("what", "fix", "statements"))


def test_text_ddl_and_json_are_renderings_of_the_same_list():
    a = expected_catalog("mysql", 2, "json")
    b = _with_metric(a, indexes=[], columns=[dataclasses.replace(c, not_null=False) if c.name == "total_val" else c
                                              for c in a.tables["METRIC"].columns])
    differences = compare_catalogs(a, b)
    diff = render(differences, a, b)
    assert [c.difference for c in diff.differences] == differences
    assert [c.what for c in diff.differences] == [describe(d, "mysql", "mysql") for d in differences]
    null = next(c for c in diff.differences if c.kind == "column_null")
    assert null.what == "METRIC.total_val is NULL-able (it lost NOT NULL)"
    assert null.fix == ["ALTER TABLE `METRIC` MODIFY COLUMN `total_val` FLOAT NOT NULL"]
    assert null.fix[0] in diff.statements
    as_json = diff.to_dict()["differences"]
    assert [(j["kind"], j["what"], j["fix"]) for j in as_json] == [(c.kind, c.what, c.fix) for c in diff.differences]
    assert diff_catalogs(a, b).to_dict() == diff.to_dict()


def test_row_counts_read_later_rate_the_same_list_again():
    a = expected_catalog("sqlite", 2, "json")
    b = _with_metric(a, columns=a.tables["METRIC"].columns + [ColumnInfo("note", "TEXT")])
    unknown = compare_catalogs(a, b)
    assert unknown[0].reason == "dropping the column loses its data (rows unknown: it may hold data)"
    empty = rated(unknown, _with_metric(b, rows=0))
    assert [(d.kind, d.rating) for d in empty] == [("extra_column", "MINOR")]
    assert empty[0].b is unknown[0].b


def test_upgrade_keeps_a_type_that_would_round_values_and_writes_no_statement_with_the_narrower_one(mysql_address):
    make_demo(mysql_address, faults=False, json_type="json")
    with open_database(mysql_address) as db:
        db.execute("ALTER TABLE `METRIC` MODIFY COLUMN `total_val` DOUBLE NULL")
        before = read_catalog(db, counts=False)
        plan = plan_upgrade(db)
    assert any("total_val is DOUBLE, not FLOAT" in k and "would change stored values" in k for k in plan.kept)
    assert plan.statements == ["ALTER TABLE `METRIC` MODIFY COLUMN `total_val` DOUBLE NOT NULL"]
    assert plan.changes == ["METRIC.total_val is NULL-able (it lost NOT NULL)  [BREAKING: NOT NULL: writes without "
                            "it fail, and NULLs already there block the change]"]
    assert expected_catalog("mysql", 2, "json").table("METRIC").column("total_val").type == "FLOAT"
    assert before.table("METRIC").column("total_val").type == "DOUBLE"


def test_upgrade_on_sqlite_rebuilds_with_the_kept_type_when_text_values_would_be_converted(tmp_path):
    address = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(address, faults=False)
    with open_database(address) as db:
        sql = db.scalar("SELECT sql FROM sqlite_master WHERE name = 'METRIC'")
        changed = sql.replace('"total_val" FLOAT NOT NULL', '"total_val" TEXT')
        assert changed != sql
        db.execute("PRAGMA foreign_keys = OFF")
        with db.transaction():
            db.execute('ALTER TABLE "METRIC" RENAME TO old_metric')
            db.execute(changed)
            db.execute('INSERT INTO "METRIC" SELECT * FROM old_metric')
            db.execute("DROP TABLE old_metric")
            db.execute("UPDATE \"METRIC\" SET total_val = 'about 3' WHERE id = (SELECT min(id) FROM \"METRIC\")")
        plan = plan_upgrade(db)
    assert any("total_val is TEXT, not FLOAT" in k for k in plan.kept)
    create = next(s for s in plan.statements if s.startswith('CREATE TABLE "emfix_rebuild_METRIC"'))
    assert '"total_val" TEXT NOT NULL' in create


def test_the_ddl_script_of_a_sqlite_rebuild_runs_whole_beside_a_view_and_keeps_every_row(tmp_path):
    """`schema diff --format ddl` run by hand (as the sqlite3 shell would: one script) rebuilds a table a view
    names without breaking the view, in one transaction (found by an outside tester: TRIAL was left renamed)."""
    reference, target = two_demo_files(tmp_path)
    con = sqlite3.connect(target.path)
    sql = con.execute("SELECT sql FROM sqlite_master WHERE name = 'TRIAL'").fetchone()[0]
    loose = sql.replace('"name" VARCHAR(255) NOT NULL', '"name" VARCHAR(255)')
    assert loose != sql
    con.executescript('PRAGMA foreign_keys = OFF; PRAGMA legacy_alter_table = ON; ALTER TABLE "TRIAL" RENAME TO old; '
                      '%s; INSERT INTO "TRIAL" SELECT * FROM old; DROP TABLE old; '
                      'CREATE VIEW named AS SELECT id, name FROM "TRIAL";' % loose)
    before = con.execute('SELECT * FROM "TRIAL" ORDER BY id').fetchall()
    con.close()
    ddl = run_cli("schema", "diff", reference.path, target.path, "--format", "ddl")
    assert ddl.returncode in (0, 1) and "PRAGMA legacy_alter_table = ON" in ddl.stdout, ddl.stderr
    ran = in_the_sqlite3_shell(target.path, ddl.stdout)
    assert ran.returncode == 0, ran.stderr
    con = sqlite3.connect(target.path)
    assert con.execute('SELECT * FROM "TRIAL" ORDER BY id').fetchall() == before
    assert con.execute("SELECT count(*) FROM named").fetchone()[0] == len(before)
    assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    assert con.execute("SELECT name FROM sqlite_master WHERE name LIKE 'emfix_rebuild%'").fetchall() == []
    con.close()
    assert run_cli("schema", "diff", reference.path, target.path, "--json").returncode == 0


def test_a_sqlite_rebuild_whose_copy_fails_stops_the_script_and_keeps_every_row(tmp_path):
    """Found by an outside tester: ARTIFACT without its `loc` column (NOT NULL, no default in A) is rebuilt by
    the script; the copy into the new table fails on the rows there, and the sqlite3 shell went on to drop the
    old table (114 rows gone). The script stops at the failure now, and the transaction is rolled back."""
    reference, target = two_demo_files(tmp_path)
    con = sqlite3.connect(target.path)
    con.execute('ALTER TABLE "ARTIFACT" DROP COLUMN "loc"')
    con.commit()
    before = con.execute('SELECT * FROM "ARTIFACT" ORDER BY id').fetchall()
    con.close()
    assert before
    ddl = run_cli("schema", "diff", reference.path, target.path, "--format", "ddl")
    assert ddl.returncode == 1 and ddl.stdout.startswith(".bail on\n"), ddl.stdout[:200]
    ran = in_the_sqlite3_shell(target.path, ddl.stdout)
    assert ran.returncode != 0 and "NOT NULL constraint failed" in ran.stderr, (ran.returncode, ran.stderr)
    con = sqlite3.connect(target.path)
    assert con.execute('SELECT * FROM "ARTIFACT" ORDER BY id').fetchall() == before
    assert con.execute("SELECT name FROM sqlite_master WHERE name LIKE 'emfix_rebuild%'").fetchall() == []
    con.close()
    text = run_cli("schema", "diff", reference.path, target.path)  # the text output prints the same script
    assert "\n.bail on\n" in text.stdout and ".bail on;" not in text.stdout


def test_a_sqlite_rebuild_by_the_ddl_script_keeps_the_autoincrement_counter(tmp_path):
    """Found by an outside tester: TRIAL's highest id deleted (sqlite_sequence 1 above max(id)), then rebuilt
    by the script for a type change: the counter fell to max(id), and the next insert took the deleted id
    (links still pointing at it would have been adopted by the new row)."""
    reference, target = two_demo_files(tmp_path)
    con = sqlite3.connect(target.path)
    con.execute("PRAGMA foreign_keys = OFF")
    top = con.execute('SELECT max(id) FROM "TRIAL"').fetchone()[0]
    con.execute('DELETE FROM "TRIAL" WHERE id = ?', (top,))
    sql = con.execute("SELECT sql FROM sqlite_master WHERE name = 'TRIAL'").fetchone()[0]
    con.executescript('PRAGMA legacy_alter_table = ON; ALTER TABLE "TRIAL" RENAME TO old; %s; INSERT INTO "TRIAL" '
                      'SELECT * FROM old; DROP TABLE old;' % sql.replace('"name" VARCHAR(255)', '"name" TEXT'))
    con.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'TRIAL'", (top,))
    con.commit()
    con.close()
    ddl = run_cli("schema", "diff", reference.path, target.path, "--format", "ddl")
    assert "emfix_rebuild_TRIAL" in ddl.stdout, ddl.stdout
    ran = in_the_sqlite3_shell(target.path, ddl.stdout)
    assert ran.returncode == 0, ran.stderr
    con = sqlite3.connect(target.path)
    assert con.execute("SELECT seq FROM sqlite_sequence WHERE name = 'TRIAL'").fetchone()[0] == top
    con.close()


def test_the_safe_migration_plan_rebuilds_a_sqlite_table_whole_or_not_at_all(tmp_path):
    """Found by an outside tester: the safe plan (one statement per step) stopped at a rebuild's failed copy and
    left emfix_rebuild_ARTIFACT behind, so running the plan again stopped at it. A rebuild is one step now, in
    one transaction: the failure leaves the table as it was and nothing else."""
    reference, target = two_demo_files(tmp_path)
    con = sqlite3.connect(target.path)
    con.execute('ALTER TABLE "ARTIFACT" DROP COLUMN "loc"')
    con.commit()
    before = con.execute('SELECT * FROM "ARTIFACT" ORDER BY id').fetchall()
    con.close()
    compared = run_cli("compare-live-schemas", "--source-db", target.path, "--target-db", reference.path, "-o",
                       "reports", "--format", "json", cwd=str(tmp_path))
    assert compared.returncode == 0, compared.stderr
    plan = run_cli("generate-migration-plan", "-d", "reports/schema_diff.json", "--strategy", "safe", "-o", "p.sql",
                   cwd=str(tmp_path))
    assert plan.returncode == 0, plan.stderr
    for _ in range(2):  # and again: the first run left nothing in the way
        ran = in_the_sqlite3_shell(target.path, (tmp_path / "p.sql").read_text())
        assert ran.returncode != 0 and "NOT NULL constraint failed" in ran.stderr, ran.stderr
    con = sqlite3.connect(target.path)
    assert con.execute('SELECT * FROM "ARTIFACT" ORDER BY id').fetchall() == before
    assert con.execute("SELECT name FROM sqlite_master WHERE name LIKE 'emfix_rebuild%'").fetchall() == []
    con.close()


def two_demo_files(tmp_path):
    """The clean demo twice, as SQLite files: A (reference.db) and B (target.db, the one a test alters)."""
    reference = DatabaseAddress("sqlite", path=str(tmp_path / "reference.db"))
    target = DatabaseAddress("sqlite", path=str(tmp_path / "target.db"))
    make_demo(reference, faults=False)
    make_demo(target, faults=False)
    return reference, target

