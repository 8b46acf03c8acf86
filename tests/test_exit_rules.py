"""Issue 24: one exit code per situation, a crash that says it is one (70), and the two commands that
crashed on their plainest use (schema show in text mode; check-hierarchy on MariaDB)."""

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT, make_demo, run_cli, url_of

import emfix.cli
import emfix.commands.validate
from emfix.errors import EXIT_BUG


def assert_one_error(result, code, *words):
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 2 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in result.stderr


# -- 1. a crash is not a finding ------------------------------------------------------------------------

def test_unexpected_exception_exits_70_naming_the_traceback_file(tmp_path, monkeypatch, capsys):
    def boom(_args, _out):
        raise AttributeError("module 'x' has no attribute 'y'")
    monkeypatch.setattr(emfix.commands.validate, "run", boom)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    code = emfix.cli.main(["validate", str(tmp_path / "x.db")])
    err = capsys.readouterr().err
    assert code == EXIT_BUG == 70
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "a bug in emfix" in lines[0] and "AttributeError" in lines[0], err
    written = list(tmp_path.glob("emfix-crash-*.txt"))
    assert len(written) == 1 and str(written[0]) in lines[0]
    assert "Traceback" in written[0].read_text() and "boom" in written[0].read_text()


def test_unexpected_exception_traceback_on_stderr_when_no_file_can_be_written(tmp_path, monkeypatch, capsys):
    def boom(_args, _out):
        raise KeyError("oops")
    monkeypatch.setattr(emfix.commands.validate, "run", boom)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "missing"))
    assert emfix.cli.main(["validate", "x.db"]) == 70
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error: a bug in emfix")
    assert "traceback is above" in err


def test_schema_show_text_mode_on_both_backends(demo_address):
    result = run_cli("schema", "show", url_of(demo_address))
    assert result.returncode == 0, result.stderr
    assert "EXPERIMENT" in result.stdout and "schema generation" in result.stdout


@pytest.mark.mysql
def test_check_hierarchy_on_mariadb_clean_and_damaged(mysql_databases):
    clean, damaged = mysql_databases(), mysql_databases()
    make_demo(clean, faults=False)
    make_demo(damaged)
    result = run_cli("check-hierarchy", url_of(clean))
    assert result.returncode == 0 and "whole" in result.stdout, result.stderr
    result = run_cli("check-hierarchy", url_of(damaged))
    assert result.returncode == 1 and "breaks" in result.stdout and result.stderr == "", result.stderr
    assert run_cli("check-hierarchy", url_of(damaged), "--json").returncode == 1


# -- 4. one rule per situation --------------------------------------------------------------------------

def test_no_command_is_a_usage_error_with_help_on_stderr():
    result = run_cli()
    assert result.returncode == 2 and result.stdout == ""
    assert "usage: emfix" in result.stderr and "error: no command given" in result.stderr


def test_help_lists_every_exit_code():
    text = run_cli("--help").stdout
    for code in ("0  healthy", "1  problems", "2  usage", "3  cannot open", "4  damaged", "5  interrupted",
                 "70  a bug", "130  Ctrl-C", "143  SIGTERM"):
        assert code in text


def test_readme_table_lists_70_130_and_143():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        text = handle.read()
    assert "| 70 |" in text and "| 130 |" in text and "| 143 |" in text


def test_everything_named_that_does_not_exist_is_exit_3(demo_file, tmp_path):
    missing = str(tmp_path / "nosuch")
    assert_one_error(run_cli("validate", missing + ".db"), 3, "not found")
    assert_one_error(run_cli("import", demo_file, missing + ".jsonl"), 3, "nosuch.jsonl")
    assert_one_error(run_cli("schema", "diff", missing + ".json", demo_file), 3, "does not exist")
    assert_one_error(run_cli("snapshot", "verify", demo_file, "nosuch"), 3, "no snapshot nosuch")
    assert_one_error(run_cli("snapshot", "verify", demo_file, "nosuch", "--json"), 3, "no snapshot nosuch")


def test_restore_of_unknown_snapshot_is_exit_3_before_saying_it_restores(demo_file):
    result = run_cli("snapshot", "restore", demo_file, "--snapshot-id", "nosuch", "--yes")
    assert_one_error(result, 3, "no snapshot nosuch")
    assert "restoring" not in result.stderr and result.stdout == ""


def test_damaged_snapshot_stays_exit_4(demo_file):
    made = run_cli("snapshot", "create", demo_file, "--json")
    assert made.returncode == 0, made.stderr
    snapshot_id = json.loads(made.stdout)["id"]
    directory = os.path.join(os.path.dirname(demo_file), "snapshots")
    with open(os.path.join(directory, snapshot_id + ".db"), "ab") as handle:
        handle.write(b"x")
    assert run_cli("snapshot", "verify", demo_file, snapshot_id).returncode == 4


def _with_closed_stdout(*args):
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before emfix writes a byte (`| head` that already exited)
    try:
        env = dict(os.environ, PYTHONPATH=ROOT)
        return subprocess.run([sys.executable, "-m", "emfix", *args], stdout=write_end, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, text=True, env=env, cwd=ROOT, timeout=120)
    finally:
        os.close(write_end)


def test_closed_stdout_one_rule_quiet_and_the_commands_own_code(demo_file):
    validate = _with_closed_stdout("validate", demo_file)
    assert validate.returncode == 1 and validate.stderr == ""  # the demo has damage: FAIL stands
    export = _with_closed_stdout("export", demo_file, "-e", "1", "-o", "-")
    assert export.returncode == 0 and export.stderr == ""


def test_every_place_that_cannot_be_written_is_exit_3(demo_file, tmp_path):
    blocker = tmp_path / "plain-file"
    blocker.write_text("x")
    nowhere = str(blocker / "sub")
    assert_one_error(run_cli("validate", demo_file, "-o", nowhere + "/r.json"), 3, "cannot write")
    assert_one_error(run_cli("snapshot", "create", demo_file, "--snapshot-dir", nowhere), 3, "snapshot directory")
    assert_one_error(run_cli("cleanup-orphans", demo_file, "--yes", "--no-snapshot", "--quarantine-dir", nowhere), 3,
                     "quarantine directory")
    assert_one_error(run_cli("init", nowhere + "/new.db"), 3, "cannot create")
    assert_one_error(run_cli("demo", nowhere), 3, "cannot write")
