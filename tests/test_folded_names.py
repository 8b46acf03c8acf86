"""A MariaDB server that folds table names to lower case (lower_case_table_names = 1, Windows' default and a
common setting of hosted servers): it stores the application's METRIC as `metric`, and information_schema says
`metric`. emfix names them as the application does, so every check that names a table runs (validate said "metric
JSON not checked: no METRIC table"), and changes come undone exactly. A server of our own on loopback, as in
tests/test_replicas.py; it runs only when EMFIX_TEST_MYSQL_URL is set and `mariadbd` is installed.
"""

import os
import subprocess

import pytest
from conftest import make_demo, mysql_server_url, run_cli, url_of
from servers import Server, checksums, find_mariadbd

from emfix.validate import validate

FOLDED = "--lower-case-table-names=1"


class FoldingServer(Server):
    def install(self, install, *args):
        super().install(install, FOLDED, *args)


@pytest.fixture(scope="module")
def folding(tmp_path_factory):
    mysql_server_url()  # skips unless EMFIX_TEST_MYSQL_URL says the MySQL tests should run
    pytest.importorskip("mysql.connector")
    mariadbd, install = find_mariadbd()
    server = FoldingServer(str(tmp_path_factory.mktemp("folding") / "data"), 7)
    try:
        server.start(mariadbd, install, lambda: [FOLDED])
        assert server.sql("SELECT @@lower_case_table_names")[0][0] == 1
        yield server
    finally:
        server.stop()


@pytest.fixture
def folded_demo(folding, request):
    name = "em_%s" % request.node.name[-20:].lower().replace("[", "_").replace("]", "")
    folding.sql("DROP DATABASE IF EXISTS `%s`" % name)
    folding.sql("CREATE DATABASE `%s` CHARACTER SET utf8mb4" % name)
    make_demo(folding.address(name))
    assert ("metric",) in folding.sql("SHOW TABLES", name)  # stored in lower case
    yield folding, name
    folding.sql("DROP DATABASE IF EXISTS `%s`" % name)


def test_validate_checks_the_metric_json_of_tables_stored_in_lower_case(folded_demo, mysql_address):
    server, name = folded_demo
    make_demo(mysql_address)  # the same demo where the tables keep their capitals
    expected, found = validate(mysql_address), validate(server.address(name))
    assert found.json.issue_count == expected.json.issue_count > 0
    assert found.warnings() == expected.warnings()  # none says "not checked"
    assert [(u.table, u.count) for u in found.unreferenced] == [(u.table, u.count) for u in expected.unreferenced]
    assert found.total_violations == expected.total_violations


def test_repair_snapshot_and_undo_of_tables_stored_in_lower_case(folded_demo, tmp_path):
    server, name = folded_demo
    url = server.url(name)
    tables = [r[0] for r in server.sql("SHOW TABLES", name)]
    before = checksums(server, name)
    done = run_cli("repair", url, "--yes", "--snapshot-dir", str(tmp_path / "s"), "--quarantine-dir",
                   str(tmp_path / "q"), "--json", env={"EMFIX_MYSQL_PASSWORD": ""})
    assert done.returncode in (0, 1), done.stderr
    assert validate(server.address(name)).total_violations == 0
    assert run_cli("undo", json_of(done)["quarantine"], "--yes", env={"EMFIX_MYSQL_PASSWORD": ""}).returncode == 0
    assert checksums(server, name) == before
    restored = run_cli("snapshot", "restore", url, "--snapshot-dir", str(tmp_path / "s"), "--yes",
                       "--no-safety-snapshot", env={"EMFIX_MYSQL_PASSWORD": ""})
    assert restored.returncode == 0, restored.stderr
    assert checksums(server, name) == before and [r[0] for r in server.sql("SHOW TABLES", name)] == tables


def json_of(result):
    import json
    return json.loads(result.stdout)


def lower_case_copy(mysql_address):
    """The demo on the shared server (which tells letter cases apart), every table renamed to lower case: what a
    dump from a Windows server loaded on Linux holds."""
    make_demo(mysql_address)
    from emfix.backends import open_database
    with open_database(mysql_address) as db:
        tables = db.tables()
        db.execute("RENAME TABLE %s" % ", ".join("%s TO %s" % (db.quote(t), db.quote(t.lower())) for t in tables))
    return mysql_address


def test_tables_held_in_lower_case_by_a_server_that_tells_cases_apart_are_the_applications(
        mysql_address, mysql_databases, tmp_path):
    """Round 24: there the JSON check, the unreferenced rows, --recreate-parents, export and migrate found "no
    METRIC/EXPERIMENT table", and repair ended "PASS" with a truncated value left; a snapshot taken on a folding
    server said `metric` in its CREATE TABLE and METRIC in its INSERTs, which such a server took for two tables.
    Now each table is named as the application does and written as the database holds it."""
    upper = mysql_databases()
    make_demo(upper)
    address = lower_case_copy(mysql_address)
    expected, found = validate(upper), validate(address)
    assert found.json.issue_count == expected.json.issue_count > 0 and found.warnings() == expected.warnings()
    assert found.total_violations == expected.total_violations
    assert sum(r.recreatable for r in found.relations) == sum(r.recreatable for r in expected.relations) > 0
    url = url_of(address)
    made = run_cli("snapshot", "create", url, "--snapshot-dir", str(tmp_path / "s"), "--json")
    assert made.returncode == 0, made.stderr
    text = open(os.path.join(str(tmp_path / "s"), json_of(made)["file"]), "rb").read()
    assert b"INSERT INTO `metric`" in text and b"INSERT INTO `METRIC`" not in text  # one spelling throughout
    verified = run_cli("snapshot", "verify", url, json_of(made)["id"], "--snapshot-dir", str(tmp_path / "s"), "--full")
    assert verified.returncode == 0, verified.stdout + verified.stderr  # its counts name the tables so too
    other = mysql_databases()
    loaded = subprocess.run(["mysql", "-h", other.host, "-P", str(other.port), "-u", other.user, other.database],
                            input=text, capture_output=True)
    assert loaded.returncode == 0, loaded.stderr[-300:]
    assert validate(other).json.issue_count == expected.json.issue_count
    exported = run_cli("export", url, "-e", "1", "-o", str(tmp_path / "e1.json"))
    assert exported.returncode == 0, exported.stderr


def tables_of(address):
    from emfix.backends import open_database
    with open_database(address) as db:
        return sorted(db.tables())


def test_commands_that_write_before_reading_the_catalog_find_the_lower_case_tables(
        mysql_address, mysql_databases, tmp_path):
    """Round 25, on the shared server (which tells letter cases apart), every table held in lower case: undo of
    fix-json wrote to a METRIC that is not there (exit 3, nothing put back); init made SCHEMA_VERSION and EXPERIMENT
    beside them, then failed; migrate --all read EXPERIMENT; a snapshot of them restored into a database spelled
    the application's way made empty lower-case tables beside its own, then failed. Each finds them now, or (the
    restore) refuses before it makes anything."""
    address = lower_case_copy(mysql_address)
    url, held = url_of(address), tables_of(address)
    fixed = run_cli("fix-json", url, "--yes", "--snapshot-dir", str(tmp_path / "s"), "--json", "--quarantine-dir",
                    str(tmp_path / "q"))
    assert fixed.returncode in (0, 1), fixed.stderr
    before = validate(address).json.issue_count
    undone = run_cli("undo", json_of(fixed)["quarantine"], "--yes")
    assert undone.returncode == 0, undone.stderr
    assert validate(address).json.issue_count > before  # the originals are back
    assert run_cli("init", url).returncode == 0 and tables_of(address) == held  # nothing made beside them
    into = mysql_databases()
    assert run_cli("init", url_of(into), "--json-type", "text").returncode == 0  # it takes the demo's bad JSON
    copied = run_cli("migrate", url, url_of(into), "--all", "--strategy", "aggressive")
    assert copied.returncode == 0, copied.stderr
    upper = mysql_databases()
    make_demo(upper)
    taken = json_of(fixed)["snapshot_id"]  # fix-json's snapshot, of the lower-case tables
    spelled_otherwise = run_cli("snapshot", "restore", url_of(upper), "--snapshot-dir", str(tmp_path / "s"),
                                "--snapshot-id", taken, "--from-other-database", "--yes", "--no-safety-snapshot")
    assert spelled_otherwise.returncode != 0 and "another spelling" in spelled_otherwise.stderr
    assert all(t == t.upper() for t in tables_of(upper))  # no lower-case table made beside them


def test_an_upgrade_of_a_first_generation_database_held_in_lower_case_makes_its_tables_so(mysql_address):
    address = lower_case_copy(mysql_address)
    from emfix.backends import open_database
    with open_database(address) as db:
        db.execute("DROP TABLE batch_metric, batch_artifact, batch")
    upgraded = run_cli("schema", "upgrade", url_of(address), "--yes", "--no-snapshot")
    assert upgraded.returncode == 0, upgraded.stderr
    assert {"batch", "batch_metric", "batch_artifact"} <= set(tables_of(address))
    assert all(t == t.lower() for t in tables_of(address))


def test_a_user_table_spelled_otherwise_and_a_partly_capitalised_set_keep_every_check(mysql_address, mysql_databases,
                                                                                     tmp_path):
    """Round 26, on the shared server: a SQLite-format snapshot of a lower-case database was refused by its own
    database ("another spelling"); the application's tables in lower case beside a user's own `Metric` had the JSON
    check skipped (no table taken for METRIC) and repair said PASS; a lower-case set with METRIC and its links
    capitalised made init fail half-way. Each as on the application's own spelling now."""
    upper = mysql_databases()
    make_demo(upper)
    expected = validate(upper).json.issue_count
    address = lower_case_copy(mysql_address)
    url, before = url_of(address), tables_of(address)
    made = run_cli("snapshot", "create", url, "--snapshot-dir", str(tmp_path / "s"), "--format", "sqlite")
    assert made.returncode == 0, made.stderr
    from emfix.backends import open_database
    with open_database(address) as db:
        db.execute("DELETE FROM batch_metric")
    restored = run_cli("snapshot", "restore", url, "--snapshot-dir", str(tmp_path / "s"), "--yes",
                       "--no-safety-snapshot")
    assert restored.returncode == 0, restored.stderr
    assert tables_of(address) == before and validate(address).json.issue_count == expected
    with open_database(address) as db:
        assert db.scalar("SELECT count(*) FROM batch_metric") > 0
        db.execute("CREATE TABLE Metric (k VARCHAR(20) PRIMARY KEY, v DOUBLE)")
    assert validate(address).json.issue_count == expected > 0
    with open_database(address) as db:
        db.execute("DROP TABLE Metric")
        db.execute("RENAME TABLE metric TO METRIC, epoch_metric TO EPOCH_METRIC")
    assert run_cli("init", url).returncode == 0 and len(tables_of(address)) == len(before)
    assert validate(address).json.issue_count == expected
