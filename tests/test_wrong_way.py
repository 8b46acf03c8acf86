"""emfix used the way a new user might, the wrong way included (round 54, from outside): odd names, closed or full
output streams, pipes as input files, typos in paths. Each gets its documented exit code and a clear line, never a
crash (70) or a silent pass."""

import os
import shlex
import shutil
import subprocess
import sys
import threading

import pytest
from conftest import ROOT, run_cli

from emfix.errors import NotFoundError, UsageError
from emfix.inputfile import read_input_text

LATIN1 = os.fsdecode(b"lat\xe4")  # a name that is not UTF-8, as Python holds it (surrogates)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    assert run_cli("demo", str(folder / "d"), "--scale", "0.01").returncode == 0
    return str(folder / "d" / "experiment.db")


def shell(command, cwd):
    """`command` run by sh (for its redirections), emfix as `emfix`: (exit code, stderr)."""
    emfix = "PYTHONPATH=%s %s -m emfix" % (shlex.quote(ROOT), shlex.quote(sys.executable))
    done = subprocess.run(["sh", "-c", command.replace("emfix", emfix, 1)], cwd=str(cwd), capture_output=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    return done.returncode, done.stderr.decode("utf-8", "replace")


@pytest.mark.parametrize("command", [["validate", "{db}"], ["repair", "{db}", "--dry-run"],
                                     ["snapshot", "create", "{db}"], ["export", "{db}", "-e", "1", "-o", "-"],
                                     ["doctor", "{db}"],
                                     ["cleanup-orphans", "{db}", "--dry-run"], ["fix-json", "{db}", "--yes"]])
def test_a_file_name_that_is_not_utf8_works(demo, tmp_path, command):
    """Every command crashed on such a name (exit 70): the SQLite URI quoted the name's characters, not its bytes."""
    named = os.path.join(str(tmp_path), LATIN1 + ".db")
    shutil.copyfile(demo, named)
    env = dict(os.environ, PYTHONPATH=ROOT, XDG_STATE_HOME=str(tmp_path / "state"))
    args = [named if a == "{db}" else a for a in command]
    result = subprocess.run([sys.executable, "-m", "emfix", *args], capture_output=True,
                            env=env, timeout=120, stdin=subprocess.DEVNULL)  # (its output holds the name's bytes)
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode in (0, 1), stderr
    assert "Traceback" not in stderr and "a bug in emfix" not in stderr


@pytest.mark.parametrize("option", [["import", "{db}", "{file}", "--experiment-title"],
                                    ["snapshot", "create", "{db}", "--description"]])
def test_a_title_that_is_not_utf8_is_a_usage_error_and_changes_nothing(demo, tmp_path, option):
    """Round 60: `import --experiment-title` of bytes that are not UTF-8 was exit 70, the import's journal left
    begun (the next plain import refused)."""
    exported = str(tmp_path / "e1.jsonl")
    assert run_cli("export", demo, "-e", "1", "-o", exported).returncode == 0
    target = str(tmp_path / "t.db")
    shutil.copyfile(demo, target)
    with open(target, "rb") as handle:
        before = handle.read()
    args = [target if a == "{db}" else exported if a == "{file}" else a for a in option] + [LATIN1]
    env = dict(os.environ, PYTHONPATH=ROOT, XDG_STATE_HOME=str(tmp_path / "state"))
    result = subprocess.run([sys.executable, "-m", "emfix", *args, "--snapshot-dir", str(tmp_path / "snaps")]
                            if option[0] == "snapshot" else [sys.executable, "-m", "emfix", *args],
                            capture_output=True, env=env, timeout=120, stdin=subprocess.DEVNULL)
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 2 and "holds bytes that are not UTF-8 text" in stderr, stderr
    with open(target, "rb") as handle:
        assert handle.read() == before
    assert not os.path.exists(str(tmp_path / "snaps"))


@pytest.mark.parametrize("redirect, code", [(">&-", 1), ("--json >&-", 1), ("> /dev/full", 3), ("-q 2>&-", 1),
                                            ("<&- -q", 1)])
def test_closed_or_full_output_streams_keep_the_exit_code(demo, tmp_path, redirect, code):
    """`validate >&-` was exit 70; `> /dev/full` exit 70 instead of 3, as for -o /dev/full."""
    assert shell("emfix validate %s %s" % (shlex.quote(demo), redirect), tmp_path)[0] == code


@pytest.mark.parametrize("redirect", ["2>&-", "2>/dev/full"])
def test_an_error_said_on_a_closed_or_full_stderr_keeps_its_code(tmp_path, redirect):
    """A failing write of the error turned every error into exit 1, which scripts read as "problems found"."""
    assert shell("emfix validate nosuch.db %s" % redirect, tmp_path)[0] == 3
    assert shell("emfix repair nosuch.db --yes %s" % redirect, tmp_path)[0] == 3


def test_an_export_to_a_full_stdout_says_so(demo, tmp_path):
    code, err = shell("emfix export %s -e 1 -o - > /dev/full" % shlex.quote(demo), tmp_path)
    assert code == 3 and "cannot write to stdout" in err and "Traceback" not in err


def test_an_empty_output_name_is_refused(demo):
    """`-o ""` (an unset variable) was taken as no -o: the report went to stdout."""
    result = run_cli("validate", demo, "-o", "")
    assert result.returncode == 2 and "empty name" in result.stderr


@pytest.mark.parametrize("where, value", [("password file", b"Zq9SECRETp\xe4"), ("environment", b"Zq9SECRETp\xe4")])
def test_a_password_that_is_not_utf8_is_a_clear_refusal(tmp_path, where, value):
    """Exit 70 in the driver; the password itself never shown."""
    args = ["validate", "mysql://root@127.0.0.1:1/x"]
    env = {}
    if where == "password file":
        (tmp_path / "pw").write_bytes(value)
        args += ["--password-file", str(tmp_path / "pw")]
    else:
        env = {"EMFIX_MYSQL_PASSWORD": os.fsdecode(value)}
    result = run_cli(*args, env=env)
    assert result.returncode == 2 and "UTF-8" in result.stderr, result.stderr
    assert "SECRET" not in result.stderr and "Traceback" not in result.stderr


def test_a_pipe_no_one_writes_to_is_not_waited_for_without_end(tmp_path):
    """--rules, --transformation-file, a schema file: a FIFO waited forever. Those refuse a pipe now (exit 3); a
    password file may be one (`--password-file <(pass show db)`), read if something is written to it in time."""
    fifo = str(tmp_path / "f")
    os.mkfifo(fifo)
    result = run_cli("transform-metrics", "x.db", "--rules", fifo, "--dry-run", timeout=30)
    assert result.returncode == 3 and "not a regular file" in result.stderr
    with pytest.raises(UsageError, match="nothing was written to within"):
        read_input_text(fifo, "password file", pipes=True, wait=0.2)

    def write():
        with open(fifo, "w") as handle:
            handle.write("s3cret\nrest")
    writer = threading.Thread(target=write)
    writer.start()
    assert read_input_text(fifo, "password file", pipes=True, first_line=True, wait=10) == "s3cret\n"
    writer.join()
    with pytest.raises(NotFoundError, match="is a folder"):
        read_input_text(str(tmp_path), "the rules file")


def test_a_mistyped_database_does_not_pass_snapshot_verify(demo, tmp_path):
    """`snapshot verify TYPO --all` said "no snapshots", exit 0, beside a damaged snapshot of the database meant."""
    db = str(tmp_path / "e.db")
    shutil.copyfile(demo, db)
    assert run_cli("snapshot", "create", db, "-q").returncode == 0
    for action in (["verify", "--all"], ["list"], ["prune", "--keep", "1"]):
        result = run_cli("snapshot", action[0], str(tmp_path / "e_typo.db"), *action[1:])
        assert result.returncode == 3 and "holds no snapshot of it" in result.stderr and "e.db" in result.stderr
    os.rename(db, str(tmp_path / "gone.db"))  # the database gone: its snapshots are listed, to restore one
    assert run_cli("snapshot", "list", db).returncode == 0


def test_refused_snapshot_commands_leave_no_trace(demo, tmp_path):
    """A damaged database's snapshot left an empty snapshots/ folder; a restore refused for another database's
    snapshot had first rewritten that snapshot's manifest (its time of verification)."""
    damaged = str(tmp_path / "flip.db")
    shutil.copyfile(demo, damaged)
    with open(damaged, "r+b") as handle:
        handle.seek(4096 * 30)
        handle.write(b"\xff" * 5000)
    assert run_cli("snapshot", "create", damaged).returncode == 4
    assert sorted(os.listdir(str(tmp_path))) == ["flip.db"]
    a, b = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    shutil.copyfile(demo, a)
    shutil.copyfile(demo, b)
    assert run_cli("snapshot", "create", b, "-q").returncode == 0
    folder = str(tmp_path / "snapshots")
    manifest = next(os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".json"))
    before = open(manifest, "rb").read()
    snapshot_id = os.path.basename(manifest)[:-5]
    result = run_cli("snapshot", "restore", a, "--snapshot-id", snapshot_id, "--yes")
    assert result.returncode == 2 and "another database" in result.stderr
    assert open(manifest, "rb").read() == before


def test_a_host_that_does_not_exist_is_not_tried_again():
    """35 attempts over 30 s for `mysql://root@nosuchhost/x`; a resolver that failed for now is tried again."""
    errors = pytest.importorskip("mysql.connector.errors")
    from emfix.retry import is_transient
    assert not is_transient(errors.InterfaceError(
        msg="Can't connect to MySQL server on 'nosuchhost:3306' (Errno -2: Name or service not known)", errno=2003))
    assert is_transient(errors.InterfaceError(
        msg="Can't connect to MySQL server on 'db:3306' (Errno -3: Temporary failure in name resolution)", errno=2003))


@pytest.mark.parametrize("command", [["export", "{db}", "-e", "1", "-e", "2", "-o", "x.jsonl"],
                                     ["validate", "{db}", "-e", "1", "-e", "2"],
                                     ["check-hierarchy", "{db}", "-e", "1", "-e", "2"]])
def test_an_option_taking_one_experiment_given_twice_is_refused(demo, tmp_path, command):
    """`export -e 1 -e 2` exported experiment 2 alone, exit 0."""
    result = run_cli(*[demo if a == "{db}" else a for a in command], cwd=str(tmp_path))
    assert result.returncode == 2 and "more than once" in result.stderr, result.stderr
    assert os.listdir(str(tmp_path)) == []


def test_a_refused_source_creates_no_mysql_database(tmp_path, demo):
    """`migrate BAD_SRC mysql://.../newdb --init` created the empty database newdb, then said "nothing was changed"."""
    import uuid

    from conftest import mysql_server_url

    from emfix.address import parse_address
    from emfix.backends import open_database
    server = parse_address(mysql_server_url())
    name = "emfix_t_%s" % uuid.uuid4().hex[:10]
    url = "mysql://%s@%s:%s/%s" % (server.user, server.host, server.port, name)
    empty = str(tmp_path / "empty.db")
    import sqlite3
    sqlite3.connect(empty).execute("CREATE TABLE x (a)").connection.close()
    try:
        assert run_cli("migrate", empty, url, "-e", "1", "--init").returncode == 2
        assert run_cli("migrate", demo, url, "-e", "99", "--init").returncode == 2
        with open_database(server) as db:
            assert not db.query("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", (name,))
    finally:
        with open_database(server) as db:
            db.execute("DROP DATABASE IF EXISTS `%s`" % name)


def test_a_finished_copy_resumed_after_its_experiment_left_src_says_done(tmp_path, demo):
    """SRC is checked for the experiment before DST is opened, but not on --resume: a copy that finished may have
    been followed by the experiment's deletion from SRC (a move), and a script resuming it is told it is done."""
    import sqlite3
    source, target = str(tmp_path / "src.db"), str(tmp_path / "dst.db")
    shutil.copyfile(demo, source)
    assert run_cli("migrate", source, target, "-e", "2", "--init", "--strategy", "aggressive").returncode == 0
    con = sqlite3.connect(source)
    with con:
        con.execute("DELETE FROM EXPERIMENT WHERE id = 2")
    con.close()
    result = run_cli("migrate", source, target, "-e", "2", "--resume")
    assert result.returncode == 0, result.stderr
    assert run_cli("migrate", source, target, "-e", "2").returncode == 2  # without --resume: not in SRC
