"""validate meets databases that are not what it expects: it checks what it can and says what it could not."""

import json
import os
import sqlite3

import pytest
from conftest import hold_write_lock, make_demo, run_cli, url_of

from emfix.backends import open_database
from emfix.validate import validate


def sql(address, *statements):
    """Run statements the way damage happens: on MySQL with foreign-key checks off."""
    with open_database(address) as db:
        if db.dialect == "mysql":
            db.execute("SET SESSION FOREIGN_KEY_CHECKS = 0")
        for statement in statements:
            db.execute(statement)


def test_missing_tables_are_named_and_the_rest_is_checked(demo_address):
    sql(demo_address, "DROP TABLE BATCH_METRIC", "DROP TABLE EPOCH_ARTIFACT", "DROP TABLE ARTIFACT")
    report = validate(demo_address)
    assert set(report.graph.missing_tables) == {"BATCH_METRIC", "EPOCH_ARTIFACT", "ARTIFACT"}
    kinds = {w["kind"] for w in report.warnings()}
    assert {"missing_tables"} <= kinds
    assert report.total_violations > 0  # TRIAL -> EXPERIMENT and the rest are still found
    result = run_cli("validate", url_of(demo_address))
    assert result.returncode == 1 and "BATCH_METRIC" in result.stdout and "Traceback" not in result.stderr


def test_table_without_primary_key_is_checked_by_rowid_and_reported(demo_sqlite):
    sql(demo_sqlite, "CREATE TABLE TRIAL_NOTE (trial_id INTEGER REFERENCES TRIAL(id), note TEXT)",
        "INSERT INTO TRIAL_NOTE VALUES (1, 'fine'), (424242, 'orphan'), (NULL, 'loose')")
    report = validate(demo_sqlite)
    check = [c for c in report.relations if c.relation.child == "TRIAL_NOTE"][0]
    assert (check.violations, check.null_keys) == (1, 1)
    assert check.examples[0].key == {"rowid": 2}
    assert "TRIAL_NOTE" in report.tables_without_key


def test_table_without_primary_key_on_mysql(mysql_address):
    make_demo(mysql_address)
    sql(mysql_address, "CREATE TABLE TRIAL_NOTE (trial_id INT, note TEXT, FOREIGN KEY (trial_id) REFERENCES TRIAL(id))",
        "INSERT INTO TRIAL_NOTE VALUES (1, 'fine'), (424242, 'orphan'), (NULL, 'loose')")
    report = validate(mysql_address)
    check = [c for c in report.relations if c.relation.child == "TRIAL_NOTE"][0]
    assert (check.violations, check.null_keys) == (1, 1)
    assert "TRIAL_NOTE" in report.tables_without_key


def test_blob_values_are_judged_as_bytes(demo_sqlite):
    con = sqlite3.connect(demo_sqlite.path)
    con.execute("UPDATE METRIC SET per_label_val = ? WHERE id = 2", (b'\xff\xfe{"cat": 1}',))
    con.execute("UPDATE METRIC SET per_label_val = ? WHERE id = 3", (b'{"cat": 1}',))
    con.commit()
    con.close()
    issues = {i.metric_id: i for i in validate(demo_sqlite).json.issues}
    assert issues[2].category == "not_utf8" and not issues[2].fixable
    assert issues[3].category == "not_text" and issues[3].fixable


def test_fifty_megabyte_value_is_diagnosed_without_trouble(demo_sqlite):
    huge = '{"cat": [' + "1," * (25 * 1024 * 1024)  # 50 MB, cut off before it ends
    con = sqlite3.connect(demo_sqlite.path)
    con.execute("UPDATE METRIC SET per_label_val = ? WHERE id = 4", (huge,))
    con.commit()
    con.close()
    issues = {i.metric_id: i for i in validate(demo_sqlite).json.issues}
    assert issues[4].category == "truncated"


def test_locked_database_retries_then_exit_3(demo_sqlite):
    holder = hold_write_lock(demo_sqlite.path, 30)
    try:
        result = run_cli("validate", demo_sqlite.path, "--lock-timeout", "1")
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert "locked" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2


@pytest.mark.parametrize("make", ["missing", "text", "empty", "directory", "fifo"])
def test_wrong_paths_give_one_line_and_create_nothing(tmp_path, make):
    """(A FIFO hung the first read for ever.)"""
    path = tmp_path / "experiment.db"
    expected = {"missing": 3, "text": 4, "empty": 2, "directory": 3, "fifo": 3}[make]  # empty: not an EM database
    if make == "fifo":
        os.mkfifo(str(path))
    if make == "text":
        path.write_text("not a database\n")
    elif make == "empty":
        sqlite3.connect(str(path)).close()
    elif make == "directory":
        path.mkdir()
    result = run_cli("validate", str(path))
    assert result.returncode == expected, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and result.stderr.startswith("error: ")
    assert (make == "missing") == (not path.exists())


def test_report_to_unwritable_place_is_exit_3_as_every_place_that_cannot_be_written(demo_sqlite, tmp_path):
    result = run_cli("validate", demo_sqlite.path, "-o", str(tmp_path / "no" / "such" / "dir" / "r.json"))
    assert result.returncode == 3 and "cannot write" in result.stderr and "does not exist" in result.stderr


def test_bad_limit_is_a_usage_error(demo_sqlite):
    result = run_cli("validate", demo_sqlite.path, "--limit", "-3")
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_the_report_file_has_the_layout_of_json_output(demo_sqlite, tmp_path):
    """The file is streamed, yet it is ValidationReport.to_dict() key for key (here every list is under --limit)."""
    report = tmp_path / "r.json"
    result = run_cli("validate", demo_sqlite.path, "-o", str(report), "--json")
    assert result.returncode == 1 and result.stderr == "", result.stderr
    written, printed = json.loads(report.read_text()), json.loads(result.stdout)
    assert list(written) == list(printed) and written == printed


def test_an_oserror_of_the_validation_is_not_called_a_failure_to_write_the_report(tmp_path):
    from emfix.errors import EmfixError, NoSpaceError
    from emfix.validatereport import write_validation_report

    def failing(_violation, _issue):
        raise OSError(5, "Input/output error (reading the database)")
    with pytest.raises(OSError) as info:
        write_validation_report(str(tmp_path / "r.json"), failing)
    assert not isinstance(info.value, EmfixError) and "reading the database" in str(info.value)
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind

    class Done:
        def to_dict(self):
            return {"foreign_key_violations": {}, "foreign_key_violation_records": {}, "json_metric_issues": [],
                    "summary": {"overall_status": "PASS"}}
    with pytest.raises(NoSpaceError) as info:  # the write itself failing is said as such (a full one as full)
        write_validation_report("/dev/full", lambda _v, _i: Done(), in_place=True, shown="/dev/full")
    assert "/dev/full" in info.value.message and "free some space" in info.value.hint
    path = tmp_path / "ok.json"
    write_validation_report(str(path), lambda _v, _i: Done())
    assert json.loads(path.read_text()) == Done().to_dict()


def test_sigterm_while_writing_a_report_keeps_no_temporary_file_and_exits_143(demo_sqlite, tmp_path):
    """A service manager's SIGTERM (stop, timeout) is not Ctrl-C but ends emfix as cleanly: the half-written
    report's temporary is removed, the helper process goes with it, and the status is the shell's 143."""
    import signal
    import subprocess
    import sys
    import time

    from conftest import ROOT
    reports = tmp_path / "reports"
    reports.mkdir()
    holder = hold_write_lock(demo_sqlite.path, 120)  # validate waits for it, its report file already open
    try:
        argv = ["validate", demo_sqlite.path, "-o", str(reports / "r.json"), "--lock-timeout", "100"]
        proc = subprocess.Popen([sys.executable, "-m", "emfix", *argv], env=dict(os.environ, PYTHONPATH=ROOT),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not os.listdir(str(reports)) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)  # polling for the temporary file: the signal must land once it exists
        assert os.listdir(str(reports)), "validate never opened its report: %s" % (proc.communicate()[1],)
        for _ in range(30):  # a supervisor that sends several: the first counts, the rest must not break cleanup
            proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 143, err
    assert err.startswith("error: terminated") and "Traceback" not in err and "ignored" not in err and not out
    assert os.listdir(str(reports)) == []
    alive = subprocess.run(["pgrep", "-f", "emfix validate %s" % demo_sqlite.path], capture_output=True, text=True)
    assert alive.stdout == "", "a helper outlived emfix"
