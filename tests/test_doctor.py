"""doctor: each finding with the right level and the command that fixes it, on both backends."""

import json
import sqlite3

from conftest import hold_write_lock, make_demo, run_cli, url_of

from emfix.backends import open_database
from emfix.doctor import doctor


def by_check(report):
    found = {}
    for finding in report.findings:
        found.setdefault(finding.check, []).append(finding)
    return found


def test_demo_database_reports_unindexed_keys_and_no_history(demo_address, tmp_path, monkeypatch):
    monkeypatch.setenv("EMFIX_HISTORY", str(tmp_path / "history.jsonl"))
    report = doctor(demo_address, snapshot_dir=str(tmp_path / "snaps"))
    found = by_check(report)
    assert found["connect"][0].level == "OK"
    assert found["last_validate"][0].level == "WARN" and "emfix validate" in found["last_validate"][0].fix
    assert found["last_snapshot"][0].level == "WARN" and "snapshot create" in found["last_snapshot"][0].fix
    assert found["tables"][0].details["EXPERIMENT"] > 0
    if demo_address.is_sqlite:
        assert found["indexes"][0].level == "WARN" and found["indexes"][0].fix.startswith("emfix optimize")
        assert found["journal"][0].level == "OK" and found["lock"][0].level == "OK"
    else:
        assert found["engine"][0].level == "OK" and found["foreign_key_checks"][0].level == "OK"


def test_validate_and_snapshot_results_show_up(sqlite_address, tmp_path):
    make_demo(sqlite_address)
    env = {"EMFIX_HISTORY": str(tmp_path / "history.jsonl")}
    assert run_cli("validate", sqlite_address.path, "-q", env=env).returncode == 1
    assert run_cli("snapshot", "create", sqlite_address.path, "--verify", "-q", env=env).returncode == 0
    result = run_cli("doctor", sqlite_address.path, "--json", env=env)
    data = json.loads(result.stdout)
    found = {f["check"]: f for f in data["findings"]}
    assert found["last_validate"]["level"] == "WARN" and "cleanup-orphans" in found["last_validate"]["fix"]
    assert "violations" in found["last_validate"]["message"]
    assert found["last_snapshot"]["level"] == "OK"
    assert result.returncode == 0 and data["status"] == "WARN"


def test_locked_database_names_the_process_holding_it(sqlite_address, tmp_path):
    make_demo(sqlite_address)
    holder = hold_write_lock(sqlite_address.path, 20)
    try:
        result = run_cli("doctor", sqlite_address.path, "--json", "--lock-timeout", "1",
                         env={"EMFIX_HISTORY": str(tmp_path / "h.jsonl")})
    finally:
        holder.kill()
        holder.wait()
    data = json.loads(result.stdout)
    found = {f["check"]: f for f in data["findings"]}
    assert found["lock"]["level"] == "WARN" and "pid %d" % holder.pid in found["lock"]["message"]
    assert "--lock-timeout" in found["lock"]["fix"]
    assert found["connect"]["level"] == "FAIL" and result.returncode == 3  # EXCLUSIVE: not even readable


def test_twenty_megabyte_metric_value_is_flagged_with_the_packet_limit(sqlite_address, tmp_path, monkeypatch):
    monkeypatch.setenv("EMFIX_HISTORY", str(tmp_path / "history.jsonl"))
    make_demo(sqlite_address, faults=False)
    huge = json.dumps({"label_%d" % i: 0.5 for i in range(1300000)})
    assert len(huge) > 20 * 1024 * 1024
    con = sqlite3.connect(sqlite_address.path)
    con.execute('UPDATE METRIC SET per_label_val = ? WHERE id = 7', (huge,))
    con.commit()
    con.close()
    finding = by_check(doctor(sqlite_address))["metric_size"][0]
    assert finding.level == "WARN" and "id 7" in finding.message and "max_allowed_packet" in finding.message
    assert "--max-memory" in finding.fix and "max_allowed_packet" in finding.fix


def test_mariadb_myisam_table_fails_and_missing_index_warns(mysql_address, tmp_path, monkeypatch):
    monkeypatch.setenv("EMFIX_HISTORY", str(tmp_path / "history.jsonl"))
    make_demo(mysql_address, faults=False)
    with open_database(mysql_address) as db:
        for table in ("TRIAL_ARTIFACT", "TRIAL"):
            for (name,) in db.query("SELECT constraint_name FROM information_schema.referential_constraints "
                                    "WHERE constraint_schema = DATABASE() AND table_name = ?", (table,)):
                db.execute("ALTER TABLE `%s` DROP FOREIGN KEY `%s`" % (table, name))
        for (name,) in db.query("SELECT DISTINCT index_name FROM information_schema.statistics WHERE table_schema = "
                                "DATABASE() AND table_name = 'TRIAL' AND column_name = 'experiment_id'"):
            db.execute("ALTER TABLE `TRIAL` DROP INDEX `%s`" % name)
        db.execute("ALTER TABLE `TRIAL_ARTIFACT` ENGINE=MyISAM")
    result = run_cli("doctor", url_of(mysql_address), "--json", env={"EMFIX_HISTORY": str(tmp_path / "h.jsonl")})
    data = json.loads(result.stdout)
    found = {}
    for f in data["findings"]:
        found.setdefault(f["check"], f)
    assert found["engine"]["level"] == "FAIL" and "TRIAL_ARTIFACT (MyISAM)" in found["engine"]["message"]
    assert "ENGINE=InnoDB" in found["engine"]["fix"]
    assert found["indexes"]["level"] == "WARN" and "TRIAL(experiment_id)" in found["indexes"]["message"]
    assert found["indexes"]["fix"].startswith("emfix optimize mysql://")
    assert result.returncode == 1 and data["status"] == "FAIL"


def test_unreachable_server_is_a_fail_finding_with_exit_3(tmp_path):
    result = run_cli("doctor", "mysql://root@127.0.0.1:1/nothing", "--lock-timeout", "0.5",
                     env={"EMFIX_HISTORY": str(tmp_path / "h.jsonl")})
    assert result.returncode == 3 and "FAIL  connect" in result.stdout and "Traceback" not in result.stderr


def test_a_database_without_the_schema_fails_with_init_as_the_fix(sqlite_address):
    con = sqlite3.connect(sqlite_address.path)
    con.execute("CREATE TABLE notes (a)")
    con.close()
    finding = by_check(doctor(sqlite_address))["schema"][0]
    assert finding.level == "FAIL" and "EXPERIMENT" in finding.message and finding.fix.startswith("emfix init")
