"""Bad input tried the way a new user would: one clear line, the documented exit code, no traceback."""

import json
import os
import signal
import socket
import subprocess
import sys

import pytest
from conftest import ROOT, make_demo, run_cli

from emfix.address import DatabaseAddress


@pytest.fixture
def no_mysql_driver(tmp_path):
    """A PYTHONPATH on which `import mysql.connector` fails, as on a server without the extra."""
    blocker = tmp_path / "block" / "mysql"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('No module named mysql')\n")
    import os

    return {"PYTHONPATH": os.pathsep.join([str(blocker.parent), ROOT])}


def assert_clean_failure(result, code, *words):
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 2 and lines[0].startswith("error: ")
    for word in words:
        assert word in result.stderr


def test_missing_file_exit_3_and_no_file_created(tmp_path):
    result = run_cli("schema", str(tmp_path / "typo.db"))
    assert_clean_failure(result, 3, "not found")
    assert not (tmp_path / "typo.db").exists()


def test_text_file_as_database_exit_4(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("just some notes\n")
    assert_clean_failure(run_cli("schema", str(path)), 4, "not a usable SQLite database")


def test_repair_forced_onto_another_schema_says_what_it_needs_not_fix_jsons_hint(tmp_path):
    """An outside tester: `repair --force` on a database that is not the Experiment Manager's said "write it as
    TABLE.COLUMN", fix-json's hint for an option repair does not have."""
    import sqlite3
    path = str(tmp_path / "other.db")
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    result = run_cli("repair", path, "--yes", "--force")
    assert result.returncode == 2 and "repair works on the Experiment Manager's METRIC" in result.stderr, result.stderr
    assert "write it as" not in result.stderr


def test_directory_as_database_exit_3(tmp_path):
    assert_clean_failure(run_cli("schema", str(tmp_path)), 3, "is a directory")


def test_a_restore_into_a_directory_is_exit_3_in_two_lines_with_or_without_a_snapshot_id(tmp_path):
    """Round 32: with an id it said "restoring snapshot ... into DIR" before its error (three lines); without one
    it looked for snapshots of the folder first (exit 2, "no valid snapshot of DIR")."""
    demo = str(tmp_path / "experiment.db")
    make_demo(DatabaseAddress("sqlite", path=demo))
    snapshots = str(tmp_path / "snaps")
    created = run_cli("snapshot", "create", demo, "--snapshot-dir", snapshots, "--json")
    snapshot_id = json.loads(created.stdout)["id"]
    folder = tmp_path / "adir"
    folder.mkdir()
    for chosen in (["--snapshot-id", snapshot_id, "--from-other-database"], []):
        result = run_cli("snapshot", "restore", str(folder), "--snapshot-dir", snapshots, "--yes", *chosen)
        assert_clean_failure(result, 3, "is a directory, not a SQLite database file")
        assert len(result.stderr.strip().splitlines()) == 2 and not list(folder.iterdir())


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_as_the_database_or_the_export_is_exit_3_without_waiting_for_a_writer(tmp_path):
    """Round 33: snapshot restore and import into a FIFO waited forever to open it (the write gate read its first
    bytes); an import from a FIFO waited for a writer and then could not read it twice."""
    demo = str(tmp_path / "experiment.db")
    make_demo(DatabaseAddress("sqlite", path=demo))
    export = str(tmp_path / "e1.jsonl")
    assert run_cli("export", demo, "-e", "1", "-o", export).returncode == 0
    assert run_cli("snapshot", "create", demo, "--snapshot-dir", str(tmp_path / "s")).returncode == 0
    pipe = str(tmp_path / "pipe.db")
    os.mkfifo(pipe)
    for args in (["snapshot", "restore", pipe, "--yes", "--snapshot-dir", str(tmp_path / "s")],
                 ["import", pipe, export], ["import", demo, pipe], ["repair", pipe, "--yes"],
                 ["cleanup-orphans", pipe, "--yes"]):
        result = run_cli(*args, timeout=60)
        assert_clean_failure(result, 3, "not a regular file")


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets here")
def test_output_onto_a_socket_is_exit_3(tmp_path):
    """Round 34: `export -o SOCKET` and `transform-metrics --template SOCKET` were exit 70 (ENXIO from open())."""
    demo = str(tmp_path / "experiment.db")
    make_demo(DatabaseAddress("sqlite", path=demo))
    path = str(tmp_path / "sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    try:
        for args in (["export", demo, "-e", "1", "-o", path], ["transform-metrics", "--template", path, "--force"]):
            assert_clean_failure(run_cli(*args), 3, "cannot write %s" % path)
    finally:
        listener.close()


def test_a_file_given_as_the_snapshot_folder_is_exit_3_for_every_snapshot_action(tmp_path):
    """Round 32: list and verify --all said "no snapshots in FILE" (exit 0); create said exit 3."""
    demo = str(tmp_path / "experiment.db")
    make_demo(DatabaseAddress("sqlite", path=demo))
    afile = tmp_path / "afile"
    afile.write_text("mine\n")
    for action in (["list", demo], ["verify", "--all"], ["create", demo], ["restore", demo, "--yes"]):
        result = run_cli("snapshot", *action, "--snapshot-dir", str(afile))
        assert result.returncode == 3 and "Traceback" not in result.stderr, (action, result.stderr)
    assert afile.read_text() == "mine\n"


def test_malformed_url_exit_2():
    assert_clean_failure(run_cli("schema", "mysql://root@localhost:port/test"), 2, "malformed MySQL URL")


def test_unknown_scheme_exit_2():
    assert_clean_failure(run_cli("schema", "postgres://u@h/db"), 2, "unknown database URL scheme")


def test_unknown_command_exit_2():
    assert_clean_failure(run_cli("frobnicate"), 2)


def test_host_without_mysql_flag_exit_2():
    assert_clean_failure(run_cli("schema", "-d", "x.db", "--host", "h"), 2, "--mysql")


def test_no_database_given_exit_2():
    assert_clean_failure(run_cli("schema"), 2, "no database")


def test_missing_mysql_driver_says_what_to_install(no_mysql_driver):
    result = run_cli("schema", "mysql://root@127.0.0.1/test", env=no_mysql_driver)
    assert_clean_failure(result, 3, "pip install 'emfix[mysql]'")


def test_missing_driver_does_not_matter_for_sqlite(tmp_path, no_mysql_driver):
    result = run_cli("demo", str(tmp_path / "d"), env=no_mysql_driver)
    assert result.returncode == 0, result.stderr


def test_unreachable_host_exit_3():
    result = run_cli("schema", "mysql://root@127.0.0.1:1/test", "--lock-timeout", "0.5")
    assert_clean_failure(result, 3, "cannot reach MySQL server")


@pytest.mark.mysql
def test_wrong_password_exit_3_and_password_not_shown(mysql_address):
    url = "mysql://%s@%s:%s/%s" % (mysql_address.user, mysql_address.host, mysql_address.port,
                                   mysql_address.database)
    result = run_cli("schema", url, env={"EMFIX_MYSQL_PASSWORD": "s3cret-wrong"})
    assert_clean_failure(result, 3, "access denied")
    assert "s3cret-wrong" not in result.stderr


@pytest.mark.mysql
def test_an_account_that_signs_in_by_socket_only_is_access_denied_not_a_bug(mysql_address):
    """MariaDB's root@localhost signs in through the unix socket: over TCP the server says 1698, which was exit 70
    ("a bug in emfix", a traceback file) where 1045 was exit 3 (found beside a second server made for a test)."""
    import uuid

    from emfix.backends import open_database
    user = "emfix_sock_%s" % uuid.uuid4().hex[:8]
    with open_database(mysql_address) as db:
        if not db.is_mariadb():
            pytest.skip("unix_socket accounts as MariaDB makes them")
        db.execute("CREATE USER '%s'@'%%' IDENTIFIED VIA unix_socket" % user)
    try:
        result = run_cli("schema", "mysql://%s@%s:%s/%s" % (user, mysql_address.host, mysql_address.port,
                                                           mysql_address.database))
        assert_clean_failure(result, 3, "access denied", "unix socket")
    finally:
        with open_database(mysql_address) as db:
            db.execute("DROP USER '%s'@'%%'" % user)


def test_version_names_emfix_and_sqlite():
    result = run_cli("--version")
    assert result.returncode == 0 and "emfix" in result.stdout and "SQLite" in result.stdout


def test_help_lists_exit_codes_and_runs_without_site_packages():
    result = run_cli("--help", python_flags=("-S", "-E"))
    assert result.returncode == 0 and "exit codes" in result.stdout


def test_every_command_help_has_an_example():
    from emfix.cli import build_parser
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, command in sub.choices.items():
        assert "Example:" in (command.epilog or ""), name
        assert command.description, name


def test_each_command_name_leads_to_the_module_that_registers_it():
    """A command line builds only its command's parser (commands.NAMES): every name a module registers is there,
    pointing at that module, and nothing else is."""
    import importlib

    from emfix import commands
    from emfix.cli import build_parser
    registered = {}
    for name in commands.ORDER:
        parser = build_parser([importlib.import_module("emfix.commands." + name)])
        sub = next(a for a in parser._actions if a.dest == "command")
        registered.update({command: name for command in sub.choices})
    assert registered == commands.NAMES


def test_a_command_line_imports_only_its_own_command(tmp_path):
    listed = subprocess.run([sys.executable, "-c", "import sys; from emfix.cli import main; main(sys.argv[1:]); "
                             "print(sorted(m for m in sys.modules if m.startswith('emfix.commands.')))",
                             "snapshot", "list", "--snapshot-dir", str(tmp_path)],
                            capture_output=True, text=True, cwd=str(ROOT), check=True).stdout.splitlines()[-1]
    assert listed == str(["emfix.commands.argvalues", "emfix.commands.common", "emfix.commands.snapshot"])


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_second_signal_stops_at_once_and_says_the_batches_before_stay(signum, code, capsys):
    """Found by an outside tester: the second signal to a batch command aborted with a bare `interrupted` (130 even
    for SIGTERM), not saying the batches before were committed nor how to finish."""
    from emfix.cli import _interrupted
    from emfix.commands.common import StopFlag
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    stop = StopFlag().install()
    try:
        handler = signal.getsignal(signum)
        handler(signum, None)  # the first: stop after this batch
        assert stop()
        with pytest.raises(KeyboardInterrupt) as second:
            handler(signum, None)
    finally:
        for s, h in before.items():
            signal.signal(s, h)
        from emfix.retry import STOP_WAITING
        STOP_WAITING.clear()
    assert _interrupted(second.value) == code
    err = capsys.readouterr().err
    assert ("terminated (SIGTERM)" if signum == signal.SIGTERM else "error: interrupted") in err
    assert "what the batches before committed stays" in err and "--resume" in err
