"""MariaDB servers of a test's own on loopback (tests/test_replicas.py, tests/test_galera.py).

Each server has its own data directory and its own temporary folder beside it: a mariadbd starting
removes every #sql* file in its tmpdir, which in /tmp would be the live temporary tables of the
machine's other server. Only the processes started here are ever stopped, by their own Popen.
"""

import os
import random
import shutil
import socket
import subprocess
import time

import pytest

from emfix.address import DatabaseAddress
from emfix.backends import open_database


def find_mariadbd():
    """(mariadbd, mariadb-install-db), or a skip saying what is missing."""
    mariadbd = shutil.which("mariadbd") or ("/usr/sbin/mariadbd" if os.path.exists("/usr/sbin/mariadbd") else None)
    install = shutil.which("mariadb-install-db")
    if not mariadbd or not install:
        pytest.skip("mariadbd / mariadb-install-db are not installed: no test servers of our own")
    return mariadbd, install


def free_port(start=3310, stop=3400):
    for port in range(start, stop):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port in %d..%d for the test servers" % (start, stop - 1))


def free_ports(count, low=14000, high=19999):
    """`count` distinct free loopback ports from a random place in [low, high] (below Linux's ephemeral
    range; random, so two test runs side by side seldom reach for the same ones). All are held while
    the next is looked for, so none is given twice."""
    held = []
    try:
        for start in [random.randint(low, high) for _ in range(50)]:
            with_this = socket.socket()
            try:
                with_this.bind(("127.0.0.1", start))
            except OSError:
                with_this.close()
                continue
            held.append(with_this)
            if len(held) == count:
                return [s.getsockname()[1] for s in held]
        pytest.skip("no %d free ports in %d..%d for the test servers" % (count, low, high))
    finally:
        for s in held:
            s.close()


class Server:
    """One mariadbd: `start` installs its data directory and runs it, each try on fresh ports."""

    memory = ["--innodb-buffer-pool-size=32M"]

    def __init__(self, folder, server_id):
        self.folder, self.server_id = folder, server_id
        self.port = None
        self.proc = None

    def install(self, install, *args):
        as_root = ["--user=root"] if os.geteuid() == 0 else []
        done = subprocess.run([install, "--no-defaults", "--datadir=%s" % self.folder, "--tmpdir=%s" % self.tmpdir(),
                               "--skip-test-db", "--auth-root-authentication-method=normal"] + list(args) + as_root,
                              capture_output=True, text=True)
        if done.returncode:
            pytest.fail("mariadb-install-db failed: %s" % done.stderr[-500:])

    def start(self, mariadbd, install, options=None, ports=None, seconds=30):
        """Install, then run the server until it takes connections. `options()`: the server's own
        options for one try (asked again on each, so it may pick fresh ports); `ports()`: that try's
        MySQL port (default: a free one from 3310 + 10 * server_id)."""
        self.install(install)
        for _ in range(5):  # another process may take the port between the probe and the bind
            self.port = ports() if ports else free_port(3310 + 10 * self.server_id)
            self.launch(mariadbd, options() if options else [])
            if self.wait_ready(seconds):
                return
            self.stop()
        pytest.fail("mariadbd did not start: see %s" % self.error_log)

    @property
    def error_log(self):
        return os.path.join(self.folder, "error.log")

    def launch(self, mariadbd, options):
        as_root = ["--user=root"] if os.geteuid() == 0 else []
        self.proc = subprocess.Popen(
            [mariadbd, "--no-defaults", "--datadir=%s" % self.folder, "--port=%d" % self.port,
             "--bind-address=127.0.0.1", "--socket=%s" % os.path.join(self.folder, "sock"),
             "--tmpdir=%s" % self.tmpdir(),  # never /tmp (see the module's docstring)
             "--server-id=%d" % self.server_id, "--skip-name-resolve"] + self.memory + [
             "--log-error=%s" % self.error_log, "--pid-file=%s" % os.path.join(self.folder, "pid")]
            + list(options) + as_root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def tmpdir(self):
        path = self.folder.rstrip(os.sep) + "-tmp"  # beside the datadir: inside it would be a database
        os.makedirs(path, exist_ok=True)
        return path

    def wait_ready(self, seconds=30):
        import mysql.connector
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                mysql.connector.connect(host="127.0.0.1", port=self.port, user="root", password="").close()
                return True
            except mysql.connector.Error:
                time.sleep(0.2)
        return False

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def address(self, database, user="root"):
        return DatabaseAddress("mysql", host="127.0.0.1", port=self.port, user=user, password="", database=database)

    def url(self, database, user="root"):
        return "mysql://%s@127.0.0.1:%d/%s" % (user, self.port, database)

    def sql(self, statement, database=None):
        with open_database(self.address(database)) as db:
            return db.query(statement) if statement.lstrip().upper().startswith(("SELECT", "SHOW", "CHECKSUM")) \
                else db.execute(statement)


def checksums(server, database):
    """{table: CHECKSUM TABLE} of every table of `database` on `server`."""
    with open_database(server.address(database)) as db:
        tables = db.tables()
        return dict((name.split(".")[-1], value) for name, value in db.query(
            "CHECKSUM TABLE %s" % ", ".join(db.quote(t) for t in tables)))
