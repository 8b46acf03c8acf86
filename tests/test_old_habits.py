"""The old tool's habits kept: migrate-experiment --transformation-file and its Migrated_<title> copies,
create-transformation-template's default file, transform-metrics --transformation-file without a
question, validate's report strings beside emfix's records, schema upgrade --dry-run rated."""

import json
import math

import pytest
from conftest import make_demo, run_cli, select_all, url_of

from emfix.address import PASSWORD_ENV, DatabaseAddress
from emfix.backends import open_database


def old_flags(address):
    if address.is_sqlite:
        return ["-d", address.path]
    return ["-d", address.database, "--mysql", "--host", address.host, "--port", str(address.port), "--user",
            address.user]


def env_of(address):
    return {PASSWORD_ENV: address.password} if address.password else {}


def metrics(address):
    with open_database(address, readonly=True) as db:
        return {row[0]: row for row in db.query(select_all("METRIC", db.quote))}


def labels(raw):
    try:
        value = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        return None
    if isinstance(value, dict) and value and all(isinstance(v, (int, float)) and not isinstance(v, bool) and
                                                 math.isfinite(v) for v in value.values()):
        return value
    return None


def test_migrate_experiment_with_transformation_file_names_the_copy_and_transforms_its_metrics(address, tmp_path):
    make_demo(address)
    rules = tmp_path / "r.json"
    rules.write_text(json.dumps({"*": {"scale": 10}}))
    with open_database(address, readonly=True) as db:
        title, desc = db.query("SELECT title, %s FROM EXPERIMENT WHERE id = 1" % db.quote("desc"))[0]
    before = metrics(address)
    done = run_cli("migrate-experiment", *old_flags(address), "-s", "1", "--transformation-file", str(rules),
                   "--quarantine-dir", str(tmp_path / "q"), "--json", cwd=str(tmp_path), env=env_of(address))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    new_id, offset = result["experiment_id"], result["id_offsets"].get("METRIC", 0)
    with open_database(address, readonly=True) as db:
        copied = db.query("SELECT title, %s FROM EXPERIMENT WHERE id = ?" % db.quote("desc"), (new_id,))[0]
    assert copied == ("Migrated_%s" % title, "Migrated from experiment 1: %s" % (desc or ""))

    after = metrics(address)
    assert all(after[i] == row for i, row in before.items())  # the source's metrics are untouched
    made = {i: row for i, row in after.items() if i not in before}
    assert len(made) == result["counts"]["METRIC"] == result["transform"]["scanned"]
    scaled = 0
    for i, row in made.items():
        old, new = labels(before[i - offset][3]), labels(row[3])
        if old is not None:
            assert new is not None and set(new) == set(old)
            assert all(abs(new[k] - 10 * old[k]) <= 1e-6 * max(1.0, abs(10 * old[k])) for k in old)
            scaled += 1
    assert scaled and result["transform"]["changed"] >= scaled

    undone = run_cli("undo", result["transform"]["quarantine"], env=env_of(address))
    assert undone.returncode == 0, undone.stderr
    restored = metrics(address)
    assert all(restored[i][1:] == before[i - offset][1:] for i in made)


def test_transformation_file_with_src_and_dst_says_where_it_works(tmp_path):
    rules = tmp_path / "r.json"
    rules.write_text("{}")
    result = run_cli("migrate", "a.db", "b.db", "-e", "1", "--transformation-file", str(rules), cwd=str(tmp_path))
    assert result.returncode == 2 and "works with the old form" in result.stderr and result.stdout == ""


def test_create_transformation_template_writes_the_old_default_file_and_never_overwrites(tmp_path):
    first = run_cli("create-transformation-template", cwd=str(tmp_path))
    assert first.returncode == 0, first.stderr
    written = tmp_path / "transformation_rules_template.json"
    assert json.loads(written.read_text())
    written.write_text('{"accuracy": "normalize"}')  # someone's edits
    again = run_cli("create-transformation-template", cwd=str(tmp_path))
    assert again.returncode == 2 and "the file exists" in again.stderr and again.stdout == ""
    assert written.read_text() == '{"accuracy": "normalize"}'
    assert run_cli("create-transformation-template", "-o", "-").stdout.startswith("{")


def test_transform_metrics_old_spelling_runs_in_a_script_the_new_one_asks(tmp_path):
    db = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(db)
    rules = tmp_path / "r.json"
    rules.write_text(json.dumps({"*": {"scale": 2}}))
    asks = run_cli("transform-metrics", db.path, "--rules", str(rules), cwd=str(tmp_path))
    assert asks.returncode == 2 and "not a terminal" in asks.stderr
    old = run_cli("transform-metrics", "-d", db.path, "--transformation-file", str(rules), "--json",
                  cwd=str(tmp_path))
    assert old.returncode == 0, old.stderr
    result = json.loads(old.stdout)
    assert result["changed"] > 0 and result["snapshot_id"] and result["quarantine"]
    both = run_cli("transform-metrics", db.path, "--rules", str(rules), "--transformation-file", str(rules))
    assert both.returncode == 2 and "together" in both.stderr


def test_validate_report_keeps_the_old_strings_and_emfix_records_beside_them(tmp_path):
    db = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(db)
    report = tmp_path / "report.json"
    result = run_cli("validate", "-d", db.path, "-o", str(report), cwd=str(tmp_path))
    assert result.returncode == 1, result.stderr
    data = json.loads(report.read_text())
    strings, records = data["foreign_key_violations"], data["foreign_key_violation_records"]
    assert set(strings) == set(records)
    assert all(len(strings[t]) == len(records[t]) for t in strings)
    assert all(isinstance(s, str) for items in strings.values() for s in items)
    assert "TRIAL.experiment_id = 999999 references non-existent EXPERIMENT.id" in strings["TRIAL"]
    assert any(s.startswith("BATCH.(epoch_idx, trial_run_id) = (0, 14) references non-existent "
                            "EPOCH.(idx, trial_run_id)") for s in strings["BATCH"])
    assert records["TRIAL"][0]["values"] == [999999] and records["TRIAL"][0]["parent_table"] == "EXPERIMENT"
    as_json = json.loads(run_cli("validate", db.path, "--json").stdout)
    assert as_json["foreign_key_violations"] == strings and as_json["foreign_key_violation_records"] == records


@pytest.mark.parametrize("spelling", [["--dry-run"], ["--dry-run", "--json"]])
def test_schema_upgrade_dry_run_shows_each_change_rated(tmp_path, spelling):
    db = str(tmp_path / "old.db")
    assert run_cli("init", db, "--generation", "1").returncode == 0
    result = run_cli("schema", "upgrade", db, *spelling)
    assert result.returncode == 0, result.stderr
    text = result.stdout if "--json" not in spelling else "\n".join(json.loads(result.stdout)["changes"])
    assert "table BATCH is missing  [MINOR: a new table; no existing row changes]" in text


def test_validate_of_mariadb_keeps_the_old_strings(mysql_address, tmp_path):
    make_demo(mysql_address)
    report = tmp_path / "report.json"
    result = run_cli("validate", url_of(mysql_address), "-o", str(report), env=env_of(mysql_address))
    assert result.returncode == 1, result.stderr
    data = json.loads(report.read_text())
    assert "TRIAL.experiment_id = 999999 references non-existent EXPERIMENT.id" in data["foreign_key_violations"][
        "TRIAL"]
