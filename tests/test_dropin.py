"""The cookbook's command lines and scripts, run as written (with `python -m emfix`), get the true answers."""

import json
import os
import sqlite3
import subprocess
import sys

import pytest
from conftest import make_demo, run_cli, sqlite_rows

from emfix import snapshot
from emfix.address import DatabaseAddress

STEP_2 = (  # the cookbook's "Step 2: Analyze the Report", unchanged
    "import json\n"
    "with open('violation_report.json', 'r') as f:\n"
    "    report = json.load(f)\n"
    "\n"
    "# Check foreign key violations by table\n"
    "for table, violations in report['foreign_key_violations'].items():\n"
    "    if violations:\n"
    "        print(f\"\\n{table}: {len(violations)} violations\")\n"
    "        for violation in violations[:3]:  # Show first 3\n"
    "            print(f\"  - {violation}\")\n")


@pytest.fixture
def cookbook(tmp_path):
    """experiment.db in the working directory, as the cookbook has it, with 150 more orphaned epochs."""
    address = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(address)
    con = sqlite3.connect(address.path)
    with con:
        con.executemany("INSERT INTO EPOCH (idx, trial_run_id, time) VALUES (?, 999999, '2025-01-01')",
                        [(i,) for i in range(150)])
    con.close()
    return tmp_path


def test_step_2_counts_every_violation_past_the_limit(cookbook):
    result = run_cli("validate", "-d", "experiment.db", "-o", "violation_report.json", cwd=str(cookbook))
    assert result.returncode == 1, result.stderr
    printed = subprocess.run([sys.executable, "-c", STEP_2], cwd=str(cookbook), capture_output=True, text=True)
    assert "\nEPOCH: 154 violations" in printed.stdout, printed.stdout  # 150 + the demo's 4, not --limit's 100
    report = json.load(open(str(cookbook / "violation_report.json")))
    assert report["summary"]["total_foreign_key_violations"] == sum(
        len(v) for v in report["foreign_key_violations"].values())
    assert report["timestamp"] and all("data" in issue for issue in report["json_metric_issues"])
    assert len(report["json_metric_issues"]) == report["summary"]["total_json_metric_issues"]


COOKBOOK_LINES = [
    (["validate", "-d", "experiment.db", "-o", "violation_report.json"], 1),
    (["validate", "-d", "experiment.db"], 1),
    (["export-experiment", "-d", "experiment.db", "-e", "1", "-o", "large_experiment.json", "--include-metrics",
      "--include-artifacts"], 0),
    (["list-snapshots", "-d", "experiment.db"], 0),
    (["validate", "--sqlite", "-d", "experiment.db"], 1),
    (["check-hierarchy", "-d", "experiment.db"], 1),
    (["check-hierarchy", "-d", "experiment.db", "-e", "1"], 0),
    (["create-snapshot", "-d", "experiment.db", "--description", "Before FK cleanup"], 0),
]


@pytest.mark.parametrize("argv, code", COOKBOOK_LINES, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_cookbook_command_lines_run_unchanged(cookbook, argv, code):
    result = run_cli(*argv, cwd=str(cookbook))
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr


def test_export_to_a_json_name_writes_one_json_document(cookbook):
    run_cli("export-experiment", "-d", "experiment.db", "-e", "1", "-o", "large_experiment.json", cwd=str(cookbook))
    document = json.load(open(str(cookbook / "large_experiment.json")))  # "Extra data" before
    assert document["experiment"]["id"] == 1 and document["export_metadata"]["database_type"] == "SQLite"
    run_cli("export", "-d", "experiment.db", "-e", "1", "-o", "e1.jsonl", cwd=str(cookbook))
    first = json.loads(open(str(cookbook / "e1.jsonl")).readline())
    assert "header" in first


def test_restore_snapshot_with_yes_and_verify_snapshot_by_id(cookbook):
    address = DatabaseAddress("sqlite", path=str(cookbook / "experiment.db"))
    made = snapshot.create_snapshot(address, str(cookbook / "snapshots"), verify=True)
    verify = run_cli("verify-snapshot", "-d", "experiment.db", made.id, cwd=str(cookbook))
    assert verify.returncode == 0 and "verified" in verify.stdout, verify.stderr
    refused = run_cli("restore-snapshot", "-d", "experiment.db", "--snapshot-id", made.id, cwd=str(cookbook))
    assert refused.returncode == 2 and "--yes" in refused.stderr
    done = run_cli("restore-snapshot", "-d", "experiment.db", "--snapshot-id", made.id, "--yes", cwd=str(cookbook))
    assert done.returncode == 0, done.stderr


def test_sqlite_and_mysql_flags_together_are_refused(cookbook):
    result = run_cli("validate", "--sqlite", "--mysql", "-d", "experiment.db", cwd=str(cookbook))
    assert result.returncode == 2 and "--sqlite and --mysql" in result.stderr


def test_check_hierarchy_json_lists_every_experiment(cookbook):
    result = run_cli("check-hierarchy", "experiment.db", "--json", cwd=str(cookbook))
    found = {e["experiment_id"]: bool(e["breaks"]) for e in json.loads(result.stdout)["experiments"]}
    assert found == {1: False, 2: False, 3: True}


def test_report_file_streams_rather_than_holding_everything(cookbook, monkeypatch):
    """The in-memory report keeps --limit examples; the file has them all."""
    from emfix.validate import validate
    seen = []
    address = DatabaseAddress("sqlite", path=os.path.join(str(cookbook), "experiment.db"))
    report = validate(address, limit=5, every_violation=lambda table, v: seen.append(table))
    assert sum(len(v) for v in report.to_dict()["foreign_key_violations"].values()) < len(seen)
    assert len(seen) == report.total_violations


def _old_tool_snapshot(folder, source, snapshot_id="snapshot_20250601_140322", description="Before FK cleanup"):
    """A snapshot folder as the Experiment Manager's SnapshotManager writes it: <id>.db and <id>_metadata.json."""
    import shutil
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, snapshot_id + ".db")
    shutil.copyfile(source, path)
    with open(os.path.join(folder, snapshot_id + "_metadata.json"), "w") as handle:
        json.dump({"snapshot_id": snapshot_id, "created_at": "2025-06-01 14:03:22.123456", "description": description,
                   "file_path": "snapshots/%s.db" % snapshot_id, "metadata": {}, "size_bytes": os.path.getsize(path)},
                  handle)
    return snapshot_id


def test_old_tool_snapshots_are_listed_verified_and_restored(cookbook):
    db = str(cookbook / "experiment.db")
    wanted = sqlite_rows(db)
    old_id = _old_tool_snapshot(str(cookbook / "snapshots"), db)
    con = sqlite3.connect(db)
    with con:
        con.execute("DELETE FROM METRIC")
    con.close()
    listed = json.loads(run_cli("list-snapshots", "-d", "experiment.db", "--json", cwd=str(cookbook)).stdout)
    assert [(s["id"], s["status"]) for s in listed["snapshots"]] == [(old_id, "legacy")]
    assert run_cli("verify-snapshot", "-d", "experiment.db", old_id, cwd=str(cookbook)).returncode == 0
    done = run_cli("restore-snapshot", "-d", "experiment.db", "--snapshot-id", old_id, "--yes", cwd=str(cookbook))
    assert done.returncode == 0, done.stderr
    assert sqlite_rows(db) == wanted
    safety = [s for s in snapshot.list_snapshots(str(cookbook / "snapshots"),
                                                 DatabaseAddress("sqlite", path=db)) if s.manifest.kind == "safety"]
    assert len(safety) == 1 and safety[0].manifest.tables["METRIC"] == 0  # what was there before is kept


def test_a_damaged_old_snapshot_is_refused(cookbook):
    db = str(cookbook / "experiment.db")
    old_id = _old_tool_snapshot(str(cookbook / "snapshots"), db)
    path = str(cookbook / "snapshots" / (old_id + ".db"))
    with open(path, "r+b") as handle:
        handle.truncate(os.path.getsize(path) // 2)
    verify = run_cli("verify-snapshot", "-d", "experiment.db", old_id, cwd=str(cookbook))
    assert verify.returncode == 4 and "damaged" in verify.stdout
    before = sqlite_rows(db)
    refused = run_cli("restore-snapshot", "-d", "experiment.db", "--snapshot-id", old_id, "--yes", cwd=str(cookbook))
    assert refused.returncode == 4 and sqlite_rows(db) == before


def test_dangling_links_are_reported_by_export_and_refused_by_import(cookbook):
    exported = run_cli("export", "-d", "experiment.db", "-e", "3", "-o", "e3.jsonl", cwd=str(cookbook))
    assert exported.returncode == 0 and "warning: " in exported.stderr and "--allow-dangling" in exported.stderr
    target = str(cookbook / "other.db")
    assert run_cli("init", target).returncode == 0
    before = sqlite_rows(target)
    refused = run_cli("import", target, "e3.jsonl", cwd=str(cookbook))
    assert refused.returncode == 1 and "parent row is missing" in refused.stderr
    assert sqlite_rows(target) == before  # nothing written
    allowed = run_cli("import", target, "e3.jsonl", "--allow-dangling", "--json", cwd=str(cookbook))
    assert allowed.returncode == 0, allowed.stderr
    assert sum(json.loads(allowed.stdout)["dangling"].values()) == sum(
        json.loads(exported_trailer(cookbook / "e3.jsonl"))["dangling"].values())


def exported_trailer(path):
    with open(str(path)) as handle:
        last = handle.readlines()[-1]
    return json.dumps(json.loads(last)["trailer"])


def _count(path, sql, params=()):
    con = sqlite3.connect(path)
    try:
        return con.execute(sql, params).fetchone()[0]
    finally:
        con.close()


def test_migrate_experiment_within_one_database_as_the_old_tool_did(cookbook):
    db = str(cookbook / "experiment.db")
    trials_of_1 = _count(db, "SELECT count(*) FROM TRIAL WHERE experiment_id = 1")
    experiments = _count(db, "SELECT count(*) FROM EXPERIMENT")
    copied = run_cli("migrate-experiment", "-d", "experiment.db", "-s", "1", "--json", cwd=str(cookbook))
    assert copied.returncode == 0, copied.stderr
    new_id = json.loads(copied.stdout)["experiment_id"]
    assert json.loads(copied.stdout)["snapshot_id"]  # a snapshot first, unless --no-snapshot
    assert _count(db, "SELECT count(*) FROM EXPERIMENT") == experiments + 1
    assert _count(db, "SELECT count(*) FROM TRIAL WHERE experiment_id = ?", (new_id,)) == trials_of_1
    into = run_cli("migrate-experiment", "-d", "experiment.db", "-s", "1", "-t", "2", "--no-snapshot",
                   cwd=str(cookbook))
    assert into.returncode == 0 and "added to experiment 2" in into.stdout, into.stderr
    assert _count(db, "SELECT count(*) FROM EXPERIMENT") == experiments + 1  # no new experiment row
    assert _count(db, "SELECT count(*) FROM TRIAL WHERE experiment_id = 2") == 2 * trials_of_1
    whole = run_cli("check-hierarchy", "-d", "experiment.db", "-e", str(new_id), cwd=str(cookbook))
    assert whole.returncode == 0, whole.stdout


def test_migrate_experiment_refuses_a_damaged_source_and_a_missing_target(cookbook):
    damaged = run_cli("migrate-experiment", "-d", "experiment.db", "-s", "3", "--no-snapshot", cwd=str(cookbook))
    assert damaged.returncode == 1 and "--strategy aggressive" in damaged.stderr
    missing = run_cli("migrate-experiment", "-d", "experiment.db", "-s", "1", "-t", "77", "--no-snapshot",
                      cwd=str(cookbook))
    assert missing.returncode == 2 and "experiment 77 does not exist" in missing.stderr
