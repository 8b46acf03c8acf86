"""A MySQL user the server allows few connections (max_user_connections): what several connections only
speed up (a snapshot's readers, a restore's loaders, validate's second connection) takes as many as the
server gives; what cannot be done is refused with a clear error (exit 3), never a traceback."""

import dataclasses
import json
import uuid

import pytest
from conftest import make_demo, run_cli

from emfix.address import parse_address
from emfix.backends import open_database
from emfix.demo import Shape

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


def limited_address(url):
    return dataclasses.replace(parse_address(url), password=PASSWORD)
