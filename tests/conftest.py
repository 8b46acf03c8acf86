"""Shared fixtures: demo databases on SQLite and on the real MariaDB server.

EMFIX_TEST_MYSQL_URL names the server (mysql://root@127.0.0.1:3306/test). When it is set, a
server that does not answer fails the MySQL tests; when it is unset they are skipped.
"""

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import uuid

import pytest
from hypothesis import settings

from emfix.address import DatabaseAddress, parse_address
from emfix.backends import open_database
from emfix.demo import Shape, build_demo, write_demo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# CI runs the property tests derandomized (HYPOTHESIS_PROFILE=ci in .ci/run), so a landing never hangs on
# an example nobody saw before; locally they search anew on every run.
settings.register_profile("ci", derandomize=True, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
MYSQL_URL_ENV = "EMFIX_TEST_MYSQL_URL"

# A test run started in the background of a script (`make test &`) inherits SIGINT ignored, as POSIX shells
# start such jobs, and so would every emfix it starts: the tests that press Ctrl-C (send SIGINT) need it heard.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def mysql_server_url():
    url = os.environ.get(MYSQL_URL_ENV)
    if not url:
        pytest.skip("%s is not set: no MySQL server to test against" % MYSQL_URL_ENV)
    return url


@pytest.fixture
def mysql_databases():
    """Make fresh, empty databases on the test server (all dropped afterwards): call it for each one."""
    base = parse_address(mysql_server_url())
    admin = open_database(base)  # fails (not skips) when the server is down
    made = []

    def make():
        name = "emfix_t_%s" % uuid.uuid4().hex[:10]
        admin.execute("CREATE DATABASE `%s` CHARACTER SET utf8mb4" % name)
        made.append(name)
        return DatabaseAddress("mysql", host=base.host, port=base.port, user=base.user, password=base.password,
                               database=name, options=dict(base.options))
    try:
        yield make
    finally:
        for name in made:
            admin.execute("DROP DATABASE IF EXISTS `%s`" % name)
        admin.close()


@pytest.fixture
def mysql_address(mysql_databases):
    """A fresh, empty database on the test server, dropped afterwards."""
    return mysql_databases()


@pytest.fixture
def sqlite_address(tmp_path):
    return DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))


@pytest.fixture(params=["sqlite", "mysql"])
def address(request, tmp_path):
    """An empty database on each backend."""
    if request.param == "sqlite":
        return DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    return request.getfixturevalue("mysql_address")


def make_demo(address, shape=None, faults=True, json_type="text"):
    """Fill `address` with the demo generator; return (rows, faults)."""
    shape = shape or Shape()
    if address.is_sqlite:
        result = write_demo(address.path, shape, faults=faults)
        return result.rows, result.faults
    with open_database(address, create=True) as db:
        return build_demo(db, shape, faults=faults, json_type=json_type)


@pytest.fixture
def demo_address(address):
    make_demo(address)
    return address


@pytest.fixture
def demo_sqlite(sqlite_address):
    """The demo database, damage and all, in a SQLite file: its address."""
    make_demo(sqlite_address)
    return sqlite_address


@pytest.fixture
def demo_file(tmp_path):
    """The demo database as `emfix demo` writes it (tmp_path/d/experiment.db): its path."""
    result = run_cli("demo", str(tmp_path / "d"))
    assert result.returncode == 0, result.stderr
    return str(tmp_path / "d" / "experiment.db")


def url_of(address):
    """The command-line form of an address (password travels by environment, never argv)."""
    if address.is_sqlite:
        return address.path
    return "mysql://%s@%s:%s/%s" % (address.user, address.host, address.port, address.database)


def select_all(table, quote):
    """SELECT every column, except when the schema was made (SCHEMA_VERSION.applied_at): two runs
    that create it a second apart hold the same content."""
    if table == "SCHEMA_VERSION":
        return "SELECT version, migration_name, description FROM %s" % quote(table)
    return "SELECT * FROM %s" % quote(table)


def sqlite_rows(path):
    """Every row of every table of a SQLite file (emfix's own and SQLite's tables left out), sorted:
    what "the same content" means in a test."""
    con = sqlite3.connect(path)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                                           "'sqlite%' AND name NOT LIKE '\\_emfix%' ESCAPE '\\'")]
        return {n: sorted(con.execute(select_all(n, lambda t: '"%s"' % t)).fetchall(), key=repr) for n in names}
    finally:
        con.close()


def in_the_sqlite3_shell(path, script):
    """Run a script as its header says a person runs it: `sqlite3 DB < script`."""
    shell = shutil.which("sqlite3")
    if shell is None:
        pytest.skip("no sqlite3 shell on this machine: the script is written for it")
    return subprocess.run([shell, path], input=script, capture_output=True, text=True)


def run_cli(*args, env=None, cwd=None, timeout=120, python_flags=()):
    """Run `python -m emfix` in a subprocess, as a user would."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = ROOT
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable, *python_flags, "-m", "emfix", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd or ROOT, timeout=timeout, stdin=subprocess.DEVNULL)


def interrupt_when(args, marker, timeout=120):
    """Run `python -m emfix ARGS --progress`, send it Ctrl-C once its stderr shows `marker` (so the signal lands
    in the work, not while Python starts, whatever the machine's load), and return (exit code, stdout, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "emfix", *args, "--progress"], env=dict(os.environ, PYTHONPATH=ROOT),
                            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    seen = []
    try:
        for line in proc.stderr:
            seen.append(line)
            if marker in line:
                proc.send_signal(signal.SIGINT)
                break
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert any(marker in line for line in seen), "never showed %r: %s" % (marker, "".join(seen)[-2000:])
    return proc.returncode, out, "".join(seen) + err


HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


def hold_write_lock(path, seconds):
    """Another process holding an exclusive lock on a SQLite file for `seconds`."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, path, str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


# Whole-system scenarios (every command in every output, a concurrent writer, kills, server pairs and
# clusters, a browser): run on the default Python in CI; the other Pythons run the rest (see PROCESS_TEST below).
SCENARIO_MODULES = {"test_matrix", "test_beside_a_writer", "test_replicas", "test_galera", "test_html_reports",
                    "test_repair"}


# Kills, interrupts, resumes and concurrent writers: what they test happens between processes (signals, locks,
# a second writer), the same on every Python, and they are a third of the suite's time. The default Python
# runs them; the other Pythons run the rest (`-m "not scenario and not processes and not slow"`, CI's time).
PROCESS_TEST = re.compile(r"kill|interrupt|resum|writer|random_moments")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module.__name__ in SCENARIO_MODULES:
            item.add_marker(pytest.mark.scenario)
        if PROCESS_TEST.search(item.name):
            item.add_marker(pytest.mark.processes)
        params = getattr(item, "callspec", None)
        if "mysql_databases" in item.fixturenames or (params is not None and "mysql" in params.params.values()):
            item.add_marker(pytest.mark.mysql)  # the newest Python in CI runs without these (Makefile)


@pytest.fixture(autouse=True)
def private_history(tmp_path, monkeypatch):
    """Commands record what they found (emfix.history): in a test, into its own file, never ~/.local."""
    monkeypatch.setenv("EMFIX_HISTORY", str(tmp_path / "emfix-history.jsonl"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # MySQL snapshots and quarantines too


def kill_until_done(args, seed, delay=0.3, attempts=30, env=None, at_once=1):
    """Run `emfix ARGS --progress` (with --resume once there is something to resume), SIGKILL it a random
    0..delay seconds after its first rows-copied line (the first `at_once` times: at once), until a run finishes
    on its own or the attempts run out; then finish with --resume. Returns how many kills landed mid-copy.

    Waiting for the progress line, not a fixed sleep, is what makes the kills land on a loaded machine."""
    import random
    import signal
    import time
    full_env = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
    rng, kills, resume = random.Random(seed), 0, False
    for attempt in range(attempts):
        proc = subprocess.Popen([sys.executable, "-m", "emfix", *[a for a in args if a != "-q"], "--progress"]
                                + (["--resume"] if resume else []), env=full_env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if b" rows (" in line:
                time.sleep(rng.uniform(0, delay) if attempt >= at_once else 0)
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    kills += 1
                break
        _out, err = proc.communicate()
        if proc.returncode == 0:
            return kills
        # Killed before anything was journalled: there is nothing to resume yet, so start again.
        resume = not (proc.returncode == 2 and b"nothing to resume" in b"".join(seen) + err)
    final = run_cli(*args, *(["--resume"] if resume else []), env=env)
    assert final.returncode == 0, final.stderr
    return kills


# -- MariaDB values that only an exact read keeps (tests of #16) ----------------------------------

SUBTREE_TABLES = ("EXPERIMENT", "TRIAL", "TRIAL_RUN", "RESULTS", "EPOCH", "BATCH", "METRIC", "ARTIFACT",
                  "EXPERIMENT_ARTIFACT", "TRIAL_ARTIFACT", "TRIAL_RUN_ARTIFACT", "RESULTS_METRIC", "RESULTS_ARTIFACT",
                  "EPOCH_METRIC", "EPOCH_ARTIFACT", "BATCH_METRIC", "BATCH_ARTIFACT")
VALUES_DDL = ("CREATE TABLE `VALS` (id INT PRIMARY KEY, f FLOAT, d DOUBLE, n DECIMAL(30,10), t6 DATETIME(6), "
              "t0 DATETIME, j JSON, s TEXT, b VARBINARY(16))")
VALUES = [
    (1, 0.40344512462615967, 0.40344512462615967, "12345678901234567890.0123456789", "2025-05-22 23:17:42.123456",
     "2025-05-22 23:17:42", '{"cat": 0.91, "dög": 1e-7}', "ünïcødé ✓", b"\x00\xff\xfe"),
    (2, -3.4028234663852886e38, 5e-324, "-0.0000000001", "1999-12-31 23:59:59.999999", "2000-01-01 00:00:00",
     '{"a": [1, 2, {"b": null}]}', "", b""),
    (3, None, None, None, None, None, None, None, None),
    (4, 1e-45, 1.7976931348623157e308, "0", "2025-01-01 00:00:00.000001", "2025-01-01 00:00:01", "{}", "'\"\\",
     b"\\"),
]


def checksums(address, tables):
    with open_database(address, readonly=True) as db:
        return {t: db.query("CHECKSUM TABLE %s" % db.quote(t))[0][1] for t in tables}


@pytest.fixture
def exact_mysql(mysql_address):
    """A clean demo on MariaDB with the application's FLOAT total_val, random doubles stored in it, and a
    table of every awkward type."""
    make_demo(mysql_address, shape=Shape(experiments=2, trials=2, runs=2, epochs=3, batches=2), faults=False,
              json_type="json")
    with open_database(mysql_address) as db:
        db.execute("ALTER TABLE `METRIC` MODIFY `total_val` FLOAT NOT NULL")
        db.execute("UPDATE `METRIC` SET `total_val` = RAND(7) * 100 - 50")
        db.execute("UPDATE `TRIAL` SET `name` = CONCAT(`name`, ' — ünïcødé'), `start_time` = "
                   "`start_time` + INTERVAL 123456 MICROSECOND")
        db.execute(VALUES_DDL)
        db.executemany("INSERT INTO `VALS` VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", VALUES)
    return mysql_address


def server_sql_mode(monkeypatch, mode):
    """Every MySQL session emfix opens starts with sql_mode `mode`, as on a server configured so (emfix's own
    session settings come after it)."""
    server_session(monkeypatch, "SET SESSION sql_mode = '%s'" % mode)


def server_isolation(monkeypatch, level):
    """Every MySQL session emfix opens starts at transaction isolation `level` ("READ COMMITTED"), as on a server
    whose default is so (transaction_isolation / tx_isolation in its configuration)."""
    server_session(monkeypatch, "SET SESSION TRANSACTION ISOLATION LEVEL %s" % level)


def server_session(monkeypatch, statement):
    """Every MySQL session emfix opens runs `statement` first, as a server's own setting would make it."""
    import mysql.connector
    connect = mysql.connector.connect

    def configured(**kwargs):
        conn = connect(**kwargs)
        conn.cmd_query(statement)
        return conn

    monkeypatch.setattr(mysql.connector, "connect", configured)
