"""The old schema tool's command lines (`schema_diff_cli`), run as its users' scripts wrote them, on
SQLite and on MariaDB: extract-schema, compare-schemas, compare-live-schemas, analyze-schema,
generate-migration-plan. The migration plan is real DDL: applied to the source, it leaves no
difference but the one a person must decide."""

import json
import os

import pytest
from conftest import make_demo, run_cli

from emfix.address import PASSWORD_ENV, DatabaseAddress
from emfix.backends import open_database

SOURCE_CHANGES = ["ALTER TABLE EXPERIMENT ADD COLUMN legacy TEXT", "UPDATE EXPERIMENT SET legacy = 'kept'"]
TARGET_CHANGES = ["CREATE TABLE NOTES (id INT PRIMARY KEY, body TEXT)", "CREATE INDEX ix_metric_type ON METRIC (type)",
                  "ALTER TABLE TRIAL ADD COLUMN note TEXT"]


def run_sql(address, statements):
    with open_database(address) as db:
        for statement in statements:  # outside a transaction: each commits by itself (DDL does on MySQL)
            db.execute(statement)


@pytest.fixture
def pair(address, tmp_path, request):
    """(source, target) on one backend: the demo, the source with a column holding data that the target
    lacks, the target with a new table, a new index and a new column."""
    if address.is_sqlite:
        target = type(address)("sqlite", path=str(tmp_path / "target.db"))
    else:
        target = request.getfixturevalue("mysql_databases")()
    make_demo(address)
    make_demo(target)
    run_sql(address, SOURCE_CHANGES)
    run_sql(target, TARGET_CHANGES)
    return address, target


def old_db_flags(address, prefix=""):
    """The old tool's flags for a database: -d PATH, or -d NAME --mysql --host --port --user."""
    if address.is_sqlite:
        return ["--%sdb" % prefix if prefix else "-d", address.path]
    if prefix:
        return ["--%sdb" % prefix, address.database, "--%smysql" % prefix, "--%shost" % prefix, address.host,
                "--%sport" % prefix, str(address.port), "--%suser" % prefix, address.user]
    return ["-d", address.database, "--mysql", "--host", address.host, "--port", str(address.port), "--user",
            address.user]


def env_of(*addresses):
    secret = next((a.password for a in addresses if a.password), None)
    return {PASSWORD_ENV: secret} if secret else {}


def extract(address, cwd, *extra):
    result = run_cli("extract-schema", *old_db_flags(address), *extra, cwd=str(cwd), env=env_of(address))
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return result


def test_extract_schema_writes_the_old_layout_to_schema_db_json(pair, tmp_path):
    source, _target = pair
    result = extract(source, tmp_path, "--include-stats", "--format", "json")
    name = "schema_%s.json" % ("experiment" if source.is_sqlite else source.database)
    data = json.loads((tmp_path / name).read_text())
    assert "Output: %s" % name in result.stdout and "Tables: %d" % len(data["tables"]) in result.stdout
    assert data["database_type"] == ("sqlite" if source.is_sqlite else "mysql")
    tables = {t["name"]: t for t in data["tables"]}
    assert {"EXPERIMENT", "TRIAL", "BATCH_METRIC"} <= set(tables)
    with open_database(source, readonly=True) as db:
        assert tables["EPOCH"]["row_count"] == db.scalar("SELECT count(*) FROM EPOCH")
    legacy = next(c for c in tables["EXPERIMENT"]["columns"] if c["name"] == "legacy")
    assert legacy["is_nullable"] is True and legacy["normalized_type"] == "TEXT"
    epoch_pk = next(i for i in tables["EPOCH"]["indexes"] if i["is_primary"])
    assert epoch_pk["columns"] == ["idx", "trial_run_id"]
    fk = [f for f in tables["BATCH"]["foreign_keys"]]
    assert {(f["column_name"], f["referenced_table"], f["referenced_column"]) for f in fk} >= {
        ("epoch_idx", "EPOCH", "idx"), ("trial_run_id", "EPOCH", "trial_run_id")}
    assert data["schema_version"]

    named = extract(source, tmp_path, "-o", str(tmp_path / "mine.json"))
    assert "mine.json" in named.stdout and (tmp_path / "mine.json").exists()


def test_extract_schema_never_writes_over_the_database(tmp_path):
    db = tmp_path / "experiment.db"
    make_demo(DatabaseAddress("sqlite", path=str(db)))
    before = db.read_bytes()
    result = run_cli("extract-schema", "-d", str(db), "-o", str(db), cwd=str(tmp_path))
    assert result.returncode == 2 and "refusing to write over" in result.stderr and result.stdout == ""
    assert db.read_bytes() == before


def test_compare_schemas_takes_the_old_files_and_options(pair, tmp_path):
    source, target = pair
    extract(source, tmp_path, "-o", "old.json")
    extract(target, tmp_path, "-o", "new.json")
    for name in ("old.json", "new.json"):  # as the old tool wrote them: no emfix section
        data = json.loads((tmp_path / name).read_text())
        del data["emfix"]
        (tmp_path / name).write_text(json.dumps(data))
    result = run_cli("compare-schemas", "-s", "old.json", "-t", "new.json", "-o", "reports", "--format", "json",
                     "--format", "html", cwd=str(tmp_path))
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert "  Overall Impact: BREAKING" in result.stdout  # the old tool's summary lines, which scripts grep
    assert "  Tables: 1 added, 0 removed, 3 modified" in result.stdout  # NOTES; TRIAL, METRIC, EXPERIMENT
    assert "  Columns: 1 added, 1 removed, 0 modified" in result.stdout
    diff = json.loads((tmp_path / "reports" / "schema_diff.json").read_text())
    assert (tmp_path / "reports" / "schema_diff_report.html").exists()
    assert diff["overall_impact"] == "BREAKING"
    changes = {t["table_name"]: t["change_type"] for t in diff["table_diffs"]}
    assert changes["NOTES"] == "ADDED" and changes["TRIAL"] == "MODIFIED" and changes["EPOCH"] == "UNCHANGED"
    assert diff["summary"]["added_tables"] == 1 and diff["summary"]["removed_columns"] == 1
    rated = {(d["kind"], d["table"]): d["rating"] for d in diff["emfix"]["differences"]}
    assert rated == {("missing_table", "NOTES"): "MINOR", ("missing_column", "TRIAL"): "MINOR",
                     ("missing_index", "METRIC"): "COSMETIC", ("extra_column", "EXPERIMENT"): "BREAKING"}

    # `schema diff` reads the old files as well (it refused them: exit 4)
    plain = run_cli("schema", "diff", "new.json", "old.json", "--json", cwd=str(tmp_path))
    assert plain.returncode == 1 and json.loads(plain.stdout)["overall_rating"] == "BREAKING", plain.stderr

    default = run_cli("compare-schemas", "--source", "old.json", "--target", "new.json", cwd=str(tmp_path))
    assert default.returncode == 0, default.stderr
    assert sorted(os.listdir(str(tmp_path / "schema_diff_reports"))) == ["schema_diff.json",
                                                                          "schema_diff_report.html"]


def test_compare_schemas_missing_file_is_a_clear_error(tmp_path):
    result = run_cli("compare-schemas", "-s", "nope.json", "-t", "nope2.json", cwd=str(tmp_path))
    assert result.returncode == 3 and "schema file not found: nope.json" in result.stderr and result.stdout == ""


def test_compare_live_schemas_with_the_old_flags(pair, tmp_path):
    source, target = pair
    result = run_cli("compare-live-schemas", *old_db_flags(source, "source-"), *old_db_flags(target, "target-"),
                     "--open-html", cwd=str(tmp_path), env=dict(env_of(source, target), DISPLAY="",
                                                                 WAYLAND_DISPLAY=""))
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "live_schema_diff"
    assert sorted(os.listdir(str(folder))) == ["schema_diff_report.html", "source_schema.json", "target_schema.json"]
    # no browser here: it says where the page is, and nothing else
    assert result.stderr.strip() == "no browser to open here (no display); the report is %s" % (
        folder / "schema_diff_report.html")
    page = (folder / "schema_diff_report.html").read_text()
    assert "BREAKING" in page and "NOTES" in page
    with_json = run_cli("compare-live-schemas", *old_db_flags(source, "source-"), *old_db_flags(target, "target-"),
                        "-o", "out", "--format", "json", "--json", cwd=str(tmp_path), env=env_of(source, target))
    assert with_json.returncode == 0 and with_json.stderr == "", with_json.stderr
    summary = json.loads(with_json.stdout)
    assert summary["overall_impact"] == "BREAKING" and summary["ratings"]["COSMETIC"] == 1


def test_analyze_schema_writes_its_report_and_doctor_shows_the_same_checks(pair, tmp_path):
    source, _target = pair
    run_sql(source, ["CREATE TABLE scratch (a INT, b TEXT)"])
    extract(source, tmp_path, "-o", "current.json")
    result = run_cli("analyze-schema", "--schema-file", "current.json", cwd=str(tmp_path))
    assert result.returncode == 0 and result.stderr == "", result.stderr
    report = json.loads((tmp_path / "schema_analysis.json").read_text())
    tables = json.loads((tmp_path / "current.json").read_text())["tables"]
    assert report["table_count"] == len(tables) == 19 and 0 < report["complexity_score"] <= 10
    assert "Table 'scratch' has no primary key" in report["potential_issues"]
    keyless = next(f for f in report["findings"] if f["check"] == "primary_keys")
    assert keyless["level"] == "WARN" and keyless["details"]["tables"] == ["scratch"]

    url = source.path if source.is_sqlite else "mysql://%s@%s:%s/%s" % (source.user, source.host, source.port,
                                                                       source.database)
    doctor = run_cli("doctor", url, "--json", cwd=str(tmp_path), env=env_of(source))
    found = {f["check"]: f for f in json.loads(doctor.stdout)["findings"]}
    assert found["primary_keys"]["message"] == keyless["message"]
    unindexed = next(f for f in report["findings"] if f["check"] == "indexes")
    assert (found["indexes"]["message"], found["indexes"]["level"]) == (unindexed["message"], unindexed["level"])
    if source.is_sqlite:  # InnoDB indexes every foreign key by itself
        assert unindexed["level"] == "WARN" and found["indexes"]["fix"].startswith("emfix optimize")
    assert "complexity" in found

    named = run_cli("analyze-schema", "-s", "current.json", "-o", "a.json", cwd=str(tmp_path))
    assert named.returncode == 0 and (tmp_path / "a.json").exists()


def statements_of(script):
    body = "\n".join(line for line in script.splitlines() if not line.startswith(("--", ".")))
    return [s.strip() for s in body.split(";\n") if s.strip() and s.strip() not in (
        "BEGIN TRANSACTION", "START TRANSACTION", "COMMIT")]


@pytest.mark.parametrize("strategy", ["safe", "fast", "minimal-downtime"])
def test_generate_migration_plan_is_ddl_that_takes_source_to_target(pair, tmp_path, strategy):
    source, target = pair
    compared = run_cli("compare-live-schemas", *old_db_flags(source, "source-"), *old_db_flags(target, "target-"),
                       "--format", "json", "-o", "reports", cwd=str(tmp_path), env=env_of(source, target))
    assert compared.returncode == 0, compared.stderr
    result = run_cli("generate-migration-plan", "-d", "reports/schema_diff.json", "--strategy", strategy,
                     cwd=str(tmp_path))
    assert result.returncode == 0 and result.stderr == "", result.stderr
    script = (tmp_path / "migration_plan.sql").read_text()
    assert "TODO" not in script and "strategy: %s" % strategy in script
    assert "-- BREAKING: column EXPERIMENT.legacy is not in A (dropping the column loses its data (" in script
    statements = statements_of(script)
    assert len(statements) == 3 and any(s.startswith("CREATE TABLE") and "NOTES" in s for s in statements)
    if strategy == "safe":
        assert "emfix snapshot create" in script.split("-- Step 2")[0]
    if strategy == "fast":
        assert ("START TRANSACTION;" if not source.is_sqlite else "BEGIN TRANSACTION;") in script
    run_sql(source, statements)
    again = run_cli("compare-live-schemas", *old_db_flags(source, "source-"), *old_db_flags(target, "target-"),
                    "--format", "json", "-o", "after", cwd=str(tmp_path), env=env_of(source, target))
    assert again.returncode == 0, again.stderr
    left = json.loads((tmp_path / "after" / "schema_diff.json").read_text())["emfix"]["differences"]
    assert [(d["kind"], d["table"], d["column"]) for d in left] == [("extra_column", "EXPERIMENT", "legacy")]


def test_generate_migration_plan_reads_the_old_tools_own_diff_file(pair, tmp_path):
    source, target = pair
    run_cli("compare-live-schemas", *old_db_flags(source, "source-"), *old_db_flags(target, "target-"),
            "--format", "json", "-o", "reports", cwd=str(tmp_path), env=env_of(source, target))
    diff = json.loads((tmp_path / "reports" / "schema_diff.json").read_text())
    old_style = {key: value for key, value in diff.items() if key != "emfix"}
    for side in ("source_schema", "target_schema"):
        del old_style[side]["emfix"]
    (tmp_path / "old_diff.json").write_text(json.dumps(old_style))
    only_tables = {"table_diffs": old_style["table_diffs"], "overall_impact": "MINOR"}
    (tmp_path / "tables_only.json").write_text(json.dumps(only_tables))
    plans = []
    for name in ("reports/schema_diff.json", "old_diff.json", "tables_only.json"):
        result = run_cli("generate-migration-plan", "--diff-file", name, "-o", name + ".sql", cwd=str(tmp_path))
        assert result.returncode == 0, result.stderr
        plans.append(statements_of((tmp_path / (name + ".sql")).read_text()))
    assert plans[0] == plans[1] == plans[2] and len(plans[0]) == 3

    (tmp_path / "junk.json").write_text('{"hello": 1}')
    junk = run_cli("generate-migration-plan", "-d", "junk.json", cwd=str(tmp_path))
    assert junk.returncode == 4 and "not a schema diff file" in junk.stderr and "Traceback" not in junk.stderr
    assert not (tmp_path / "migration_plan.sql").exists()


def test_compare_live_schemas_keeps_the_old_password_flags_out_of_every_message(tmp_path):
    result = run_cli("compare-live-schemas", "--source-db", "em", "--source-mysql", "--source-host", "127.0.0.1",
                     "--source-port", "1", "--source-user", "root", "--source-password", "hunter2-secret",
                     "--target-db", "em2", "--target-mysql", "--target-password=other-secret", "--lock-timeout", "0",
                     cwd=str(tmp_path))
    assert result.returncode == 3, result.stderr
    assert "hunter2-secret" not in result.stderr + result.stdout and "other-secret" not in result.stderr
    assert "warning: --password puts the password where other users can read it" in result.stderr


@pytest.mark.parametrize("argv", [
    ["extract-schema", "-d", "MISSING.db", "-o", "OUT.json"], ["analyze-schema", "-s", "MISSING.json"],
    ["compare-schemas", "-s", "MISSING.json", "-t", "MISSING.json"],
    ["compare-live-schemas", "--source-db", "MISSING.db", "--target-db", "MISSING.db"],
    ["generate-migration-plan", "-d", "MISSING.json"]])
def test_a_missing_input_of_the_old_commands_is_exit_3(tmp_path, argv):
    """Anything named that does not exist is 3, as the README's table says (they said 2)."""
    args = [str(tmp_path / a) if a.startswith(("MISSING", "OUT")) else a for a in argv]
    result = run_cli(*args)
    assert result.returncode == 3 and "Traceback" not in result.stderr, result.stderr
