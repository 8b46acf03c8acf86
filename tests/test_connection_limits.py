"""Connections a MySQL server gives emfix: a user it allows few (max_user_connections), and the global read lock
several readers need. What several connections only speed up (a snapshot's readers, a restore's loaders,
validate's second connection) takes as many as the server gives; what cannot be done is refused with a clear
error (exit 3), never a traceback."""

import dataclasses
import json
import threading
import time
import uuid

import pytest
from conftest import make_demo, run_cli, url_of

from emfix.address import parse_address
from emfix.backends import open_database
from emfix.demo import Shape
from emfix.errors import ConnectError

PASSWORD = "limited-Pw-7"


@pytest.fixture
def limited(mysql_address):
    """(url of a user allowed `n` connections at once, set_limit(n)) on a demo database."""
    make_demo(mysql_address, shape=Shape(experiments=2, trials=2, runs=2, epochs=3, batches=2))
    user = "emfix_lim_%s" % uuid.uuid4().hex[:8]
    with open_database(mysql_address) as db:
        db.execute("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'" % (user, PASSWORD))
        db.execute("GRANT ALL ON `%s`.* TO '%s'@'%%'" % (mysql_address.database, user))
        db.execute("GRANT RELOAD ON *.* TO '%s'@'%%'" % user)  # FLUSH TABLES WITH READ LOCK: one moment, many readers

    def set_limit(n):
        with open_database(mysql_address) as db:
            db.execute("ALTER USER '%s'@'%%' WITH MAX_USER_CONNECTIONS %d" % (user, n))

    try:
        yield "mysql://%s@%s:%s/%s" % (user, mysql_address.host, mysql_address.port, mysql_address.database), set_limit
    finally:
        with open_database(mysql_address) as db:
            db.execute("DROP USER IF EXISTS '%s'@'%%'" % user)


def as_limited_user(*args):
    return run_cli(*args, env={"EMFIX_MYSQL_PASSWORD": PASSWORD})


def test_a_snapshot_reads_over_the_connections_the_server_allows(limited, tmp_path):
    url, set_limit = limited
    set_limit(2)
    snapshots = str(tmp_path / "snapshots")
    made = as_limited_user("snapshot", "create", url, "--snapshot-dir", snapshots, "--verify", "--json", "-v")
    assert made.returncode == 0, made.stderr
    assert "working over 2 connection(s)" in made.stderr and "max_user_connections" in made.stderr
    manifest = json.loads(made.stdout)
    set_limit(1)  # the restore's safety snapshot and its loading: one connection each, one after the other
    restored = as_limited_user("snapshot", "restore", url, "--snapshot-dir", snapshots, "--snapshot-id", manifest["id"],
                      "--yes", "--json")
    assert restored.returncode == 0, restored.stderr
    result = json.loads(restored.stdout)
    assert result["tables"] == manifest["tables"] and "over 1 connection" in result["method"]


def test_validate_checks_over_one_connection_when_that_is_all_there_is(limited):
    url, set_limit = limited
    everything = json.loads(as_limited_user("validate", url, "--json").stdout)
    set_limit(1)
    alone = as_limited_user("validate", url, "--json")
    assert alone.returncode == 1, alone.stderr  # the demo's damage, found as over two connections
    found = json.loads(alone.stdout)
    assert found["summary"] == everything["summary"] and found["foreign_key_violations"] == everything[
        "foreign_key_violations"]


def test_a_command_the_limit_leaves_no_connection_for_says_so(limited, tmp_path):
    url, set_limit = limited
    set_limit(1)
    with open_database(limited_address(url)) as held:  # the user's one connection is taken
        held.scalar("SELECT 1")
        refused = as_limited_user("validate", url)
    assert refused.returncode == 3, refused.stderr
    assert "Traceback" not in refused.stderr and "no more connections" in refused.stderr
    assert "max_user_connections" in refused.stderr.splitlines()[-1]  # the hint: what to raise
    assert PASSWORD not in refused.stderr


def test_a_connection_refused_while_another_is_closing_is_had_once_that_one_is_gone(limited, monkeypatch):
    """The server counts a connection closed a moment ago until its thread has ended: a restore's probe connection,
    closed, then its safety snapshot's connection refused (a loaded CI machine). A refused connection is asked for
    again for a moment (here: the first refusal closes the one held, as a closing connection would go)."""
    from emfix.backends import mysql
    url, set_limit = limited
    set_limit(1)
    held = open_database(limited_address(url))
    pause = mysql.time.sleep
    refusals = []

    def closing_meanwhile(seconds):
        refusals.append(seconds)
        held.close()
        pause(seconds)

    monkeypatch.setattr(mysql.time, "sleep", closing_meanwhile)
    with open_database(limited_address(url)) as db:
        assert db.scalar("SELECT 1") == 1
    assert refusals  # it was refused first
    monkeypatch.undo()
    with open_database(limited_address(url)) as kept:  # a connection the user keeps is still refused at the end
        kept.scalar("SELECT 1")
        with pytest.raises(ConnectError):
            open_database(limited_address(url))


def limited_address(url):
    return dataclasses.replace(parse_address(url), password=PASSWORD)


def test_a_snapshot_does_not_hold_every_write_behind_the_global_lock_for_a_long_statement(mysql_address, tmp_path):
    """FLUSH TABLES WITH READ LOCK waits for every running statement, and every write on the server waits for it:
    with another session's statement running, the snapshot reads over one connection and asks for no lock."""
    make_demo(mysql_address, shape=Shape(experiments=2, trials=2, runs=2, epochs=2, batches=1))
    holder = open_database(mysql_address)
    long_one = threading.Thread(target=lambda: _ignore_kill(holder, "UPDATE METRIC SET type = type WHERE id = 1 "
                                                                    "AND SLEEP(120) = 0"), daemon=True)
    long_one.start()
    with open_database(mysql_address) as watcher:
        running = "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'UPDATE METRIC SET type = type%' " \
                  "AND TIME >= 1"
        try:
            wait_until(lambda: watcher.query(running), "the long statement running for a second")
            made = run_cli("snapshot", "create", url_of(mysql_address), "--snapshot-dir", str(tmp_path), "-v")
            assert made.returncode == 0, made.stderr
            assert "reading with one connection" in made.stderr and "FLUSH TABLES WITH READ LOCK" in made.stderr
            assert "retry" not in made.stderr  # the lock is not asked for again and again (writes wait each time)
            assert long_one.is_alive()  # the snapshot did not wait for it (it sleeps two minutes)
        finally:
            for (thread_id,) in watcher.query(running.replace(" AND TIME >= 1", "")):
                watcher.execute("KILL QUERY %d" % int(thread_id))
    long_one.join(30)
    holder.close()


def _ignore_kill(db, statement):
    try:
        db.execute(statement)
    except Exception:  # noqa: BLE001 - the test kills it at the end
        pass


def wait_until(condition, what, seconds=60):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "%s did not happen within %d s" % (what, seconds)
        time.sleep(0.1)


class _CutShort:
    """A socket that raises KeyboardInterrupt (Ctrl-C landing there) after `reads` reads: mid-packet."""

    def __init__(self, sock, reads):
        self._sock, self.reads = sock, reads

    def recv_into(self, *args):
        self.reads -= 1
        if self.reads < 0:
            raise KeyboardInterrupt
        return self._sock.recv_into(*args)

    def __getattr__(self, name):
        return getattr(self._sock, name)


def test_ctrl_c_mid_result_cuts_the_connection_instead_of_reading_on_for_ever(mysql_address):
    """Found by an outside tester: Ctrl-C inside a page of a snapshot left the protocol mid-packet, and the
    cursor's close then waited for bytes that never came (the command hung)."""
    make_demo(mysql_address, shape=Shape(experiments=2, trials=2, runs=2, epochs=3, batches=2))
    db = open_database(mysql_address)
    socket_of = getattr(getattr(db._conn, "_socket", None), "sock", None)
    if socket_of is None:
        pytest.skip("not the pure-Python driver's socket")
    db._conn._socket.sock = _CutShort(socket_of, reads=3)
    outcome = []

    def interrupted_then_next_statement():
        try:
            db.query_raw("SELECT GROUP_CONCAT(per_label_val) FROM METRIC")
        except KeyboardInterrupt:
            outcome.append("interrupted")
        try:
            db.execute("ROLLBACK")
        except ConnectError as exc:
            outcome.append(str(exc))
    worker = threading.Thread(target=interrupted_then_next_statement, daemon=True)
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "a statement after the interruption waited on the cut-off result"
    assert outcome[0] == "interrupted" and "lost the connection" in outcome[1]
    db.close()


def test_a_restore_by_a_user_allowed_one_connection_is_still_marked_when_killed(limited, tmp_path):
    """The restore's lock needs a connection of its own for the whole restore: a user allowed one restores without
    it (told so), and a kill still leaves the mark (snapshot/restoremark.py)."""
    from emfix.snapshot.restoremark import unfinished_restore
    url, set_limit = limited
    snapshots = str(tmp_path / "snapshots")
    made = as_limited_user("snapshot", "create", url, "--snapshot-dir", snapshots, "--json")
    assert made.returncode == 0, made.stderr
    set_limit(1)
    killed = run_cli("snapshot", "restore", url, "--snapshot-dir", snapshots, "--snapshot-id",
                     json.loads(made.stdout)["id"], "--yes", env={"EMFIX_MYSQL_PASSWORD": PASSWORD,
                                                                  "EMFIX_TEST_KILL_AT": "emptied:2"})
    assert killed.returncode == -9 and "without the restore lock" in killed.stderr, killed.stderr
    set_limit(0)
    with open_database(limited_address(url)) as db:
        assert unfinished_restore(db) is not None
