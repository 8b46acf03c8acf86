"""Replicas (issue #29): a primary + replica pair of MariaDB servers of our own on loopback.

The write commands run on the primary and the replica stays identical (CHECKSUM TABLE) with its
replication running; every write command refuses the replica, as root (which read_only does not
stop) and as a user read_only does stop, before any snapshot or quarantine. The pair runs only
when EMFIX_TEST_MYSQL_URL is set (the signal that MySQL tests should run) and `mariadbd` is
installed. Galera's findings and errors are tested here without a cluster; tests/test_galera.py runs
one (2 nodes).
"""

import json
import os
import shutil
import sqlite3
import threading
import time

import pytest
from conftest import make_demo, mysql_server_url, run_cli, sqlite_rows
from servers import Server, checksums, find_mariadbd

import emfix.undo as undo_module
from emfix.address import DatabaseAddress
from emfix.backends import open_database
from emfix.backends.replication import Channel, Galera, ReplicationRole, translate_server_error
from emfix.clustercheck import cluster_findings, point_repairs_at_primary
from emfix.commands.common import hint_for
from emfix.doctor import Finding
from emfix.errors import ConflictError, ReadOnlyServerError, TransactionTooLargeError
from emfix.quarantine import write_meta
from emfix.retry import RetryPolicy

ENV = {"EMFIX_MYSQL_PASSWORD": ""}


# -- the pair ---------------------------------------------------------------------------------------

def replication_options(server):
    return lambda: ["--log-bin=%s" % os.path.join(server.folder, "bin"), "--binlog-format=ROW"]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    mysql_server_url()  # skips unless EMFIX_TEST_MYSQL_URL says the MySQL tests should run
    pytest.importorskip("mysql.connector")
    mariadbd, install = find_mariadbd()
    folder = tmp_path_factory.mktemp("pair")
    primary, replica = Server(str(folder / "primary"), 1), Server(str(folder / "replica"), 2)
    try:
        primary.start(mariadbd, install, replication_options(primary))
        replica.start(mariadbd, install, replication_options(replica))
        replica.sql("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='root', "
                    "MASTER_USE_GTID=slave_pos" % primary.port)
        replica.sql("START SLAVE")
        replica.sql("SET GLOBAL read_only = 1")
        primary.sql("CREATE DATABASE em CHARACTER SET utf8mb4")
        primary.sql("CREATE USER app@'%'")  # replicated: on the replica, a user read_only stops
        primary.sql("GRANT ALL ON em.* TO app@'%'")
        make_demo(primary.address("em"))
        wait_for_replica(primary, replica)
        yield primary, replica
    finally:
        replica.stop()
        primary.stop()


def wait_for_replica(primary, replica, seconds=20):
    position = primary.sql("SELECT @@gtid_binlog_pos")[0][0]
    assert replica.sql("SELECT MASTER_GTID_WAIT('%s', %d)" % (position, seconds))[0][0] == 0, replication_state(
        replica)


def replication_state(replica):
    with open_database(replica.address(None)) as db:
        return db.named_rows("SHOW SLAVE STATUS")[0]


def assert_identical(primary, replica, *databases):
    wait_for_replica(primary, replica)
    state = replication_state(replica)
    assert state["Slave_IO_Running"] == "Yes" and state["Slave_SQL_Running"] == "Yes", state
    assert state["Last_SQL_Errno"] in (0, "0"), state["Last_SQL_Error"]
    for database in databases:
        sums = checksums(primary, database)
        assert sums and checksums(replica, database) == sums, database


@pytest.fixture(scope="module")
def primary_work(pair, tmp_path_factory):
    """Every write command run on the primary, once: what it left (quarantines, snapshots, an export)."""
    primary, replica = pair
    work = tmp_path_factory.mktemp("work")
    url, snaps, quarantine = primary.url("em"), str(work / "snaps"), str(work / "quarantine")
    rules = work / "rules.json"
    rules.write_text(json.dumps({"*": {"round": 2}}))

    def ok(*args):
        result = run_cli(*args, env=ENV, cwd=str(work))
        assert result.returncode in (0, 1), (args, result.stderr)  # 1: problems found (validate afterwards)
        assert "Traceback" not in result.stderr
        return result

    first = json.loads(ok("snapshot", "create", url, "--snapshot-dir", snaps, "--json").stdout)
    ok("cleanup-orphans", url, "--yes", "--snapshot-dir", snaps, "--quarantine-dir", quarantine)
    ok("fix-json", url, "--yes", "--reset-unfixable", "--snapshot-dir", snaps, "--quarantine-dir", quarantine)
    ok("transform-metrics", url, "--rules", str(rules), "--yes", "--snapshot-dir", snaps, "--quarantine-dir",
       quarantine)
    made = sorted(os.listdir(quarantine))
    transform = os.path.join(quarantine, [m for m in made if m.startswith("transform-metrics")][0])
    ok("undo", transform)
    ok("optimize", url, "--no-timing")
    ok("schema", "upgrade", url, "--yes", "--snapshot-dir", snaps)
    ok("export", url, "-e", "1", "-o", str(work / "exp1.jsonl"))
    ok("import", url, str(work / "exp1.jsonl"), "--allow-dangling")
    ok("init", primary.url("em2"))
    ok("migrate", url, primary.url("em2"), "-e", "2", "--strategy", "aggressive")
    ok("snapshot", "restore", url, "--snapshot-dir", snaps, "--snapshot-id", first["id"], "--yes")
    return {"snaps": snaps, "first": first, "export": str(work / "exp1.jsonl"), "rules": str(rules),
            "quarantine": os.path.join(quarantine, made[0])}


# -- on the primary: everything replicates ------------------------------------------------------

def test_every_write_command_on_the_primary_leaves_the_replica_identical(pair, primary_work):
    primary, replica = pair
    assert_identical(primary, replica, "em", "em2")


def test_snapshot_manifest_records_the_gtid_and_binlog_position_of_its_data(pair, primary_work, tmp_path):
    primary, replica = pair
    first = primary_work["first"]["position"]
    assert first["exact"] and first["gtid_variable"] == "gtid_binlog_pos" and first["binlog_file"].startswith("bin.")
    for fmt in ("sql", "sqlite"):
        expected_gtid = primary.sql("SELECT @@gtid_binlog_pos")[0][0]
        expected_file, expected_pos = primary.sql("SHOW MASTER STATUS")[0][:2]
        made = json.loads(run_cli("snapshot", "create", primary.url("em"), "--snapshot-dir", str(tmp_path), "--format",
                                  fmt, "--json", env=ENV).stdout)
        assert made["position"]["gtid"] == expected_gtid, fmt
        assert (made["position"]["binlog_file"], made["position"]["binlog_position"]) == (expected_file,
                                                                                           int(expected_pos))
    listed = json.loads(run_cli("snapshot", "list", "--snapshot-dir", str(tmp_path), "--json", env=ENV).stdout)
    assert all(s["position"]["gtid"] == expected_gtid for s in listed["snapshots"])
    text = run_cli("snapshot", "list", "--snapshot-dir", str(tmp_path), env=ENV).stdout
    assert "[at gtid %s, %s:%s]" % (expected_gtid, expected_file, expected_pos) in text
    # a replica's snapshot (read-only: allowed there) says where it is in its primary's stream
    wait_for_replica(primary, replica)
    made = json.loads(run_cli("snapshot", "create", replica.url("em"), "--snapshot-dir", str(tmp_path / "r"),
                              "--json", env=ENV).stdout)
    assert made["position"]["replica_gtid"] == expected_gtid


def test_repairs_replicate_under_statement_binlog_format_too(pair, tmp_path):
    primary, replica = pair
    primary.sql("CREATE DATABASE em_statement CHARACTER SET utf8mb4")
    make_demo(primary.address("em_statement"))
    primary.sql("SET GLOBAL binlog_format = 'STATEMENT'")  # our own server: new sessions log statements
    try:
        for args in (["cleanup-orphans"], ["fix-json", "--reset-unfixable"]):
            result = run_cli(args[0], primary.url("em_statement"), *args[1:], "--yes", "--no-snapshot",
                             "--quarantine-dir", str(tmp_path), env=ENV)
            assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr
    finally:
        primary.sql("SET GLOBAL binlog_format = 'ROW'")
    assert_identical(primary, replica, "em_statement")


# -- on the replica: every write command refuses ------------------------------------------------

def refused_commands(replica, primary_work, snaps, quarantine):
    url = replica.url("em")
    where = ["--snapshot-dir", snaps]
    return {
        "cleanup-orphans": ["cleanup-orphans", url, "--yes", "--quarantine-dir", quarantine] + where,
        "fix-json": ["fix-json", url, "--yes", "--quarantine-dir", quarantine] + where,
        "transform-metrics": ["transform-metrics", url, "--rules", primary_work["rules"], "--yes", "--quarantine-dir",
                              quarantine] + where,
        "undo": ["undo", primary_work["quarantine"], "--database", url],
        "schema upgrade": ["schema", "upgrade", url, "--yes"] + where,
        "snapshot restore": ["snapshot", "restore", url, "--yes"] + where,
        "import": ["import", url, primary_work["export"]],
        "migrate": ["migrate", primary_work["export"].replace("exp1.jsonl", "none.db"), url, "-e", "1"],
        "optimize": ["optimize", url, "--no-timing"],
        "init": ["init", replica.url("brand_new")],
    }


def test_every_write_command_refuses_the_replica_as_root(pair, primary_work, tmp_path):
    primary, replica = pair
    snaps, quarantine = str(tmp_path / "snaps"), str(tmp_path / "quarantine")
    open(primary_work["export"].replace("exp1.jsonl", "none.db"), "a").close()  # migrate's SRC: never read
    for name, args in refused_commands(replica, primary_work, snaps, quarantine).items():
        result = run_cli(*args, env=ENV)
        assert result.returncode == 2, (name, result.stderr)
        assert "is a replica of 127.0.0.1:%d" % primary.port in result.stderr, (name, result.stderr)
        assert "run it on the primary: mysql://root@127.0.0.1:%d/" % primary.port in result.stderr, name
        assert "--force" in result.stderr and "Traceback" not in result.stderr, name
    assert not os.path.exists(snaps) and not os.path.exists(quarantine)  # nothing taken, nothing opened
    for dry in (["cleanup-orphans"], ["fix-json"], ["repair"]):  # a plan only reads: it works on a replica
        result = run_cli(*dry, replica.url("em"), "--dry-run", env=ENV)
        assert result.returncode == 0 and "Traceback" not in result.stderr, (dry, result.stderr)
    # undo without -d goes where the quarantine says it came from: here, the replica
    copy = str(tmp_path / "from-replica.quarantine.db")
    shutil.copyfile(primary_work["quarantine"], copy)
    con = sqlite3.connect(copy)
    write_meta(con, database=replica.url("em"), database_key=replica.address("em").key())
    con.close()
    result = run_cli("undo", copy, env=ENV)
    assert result.returncode == 2 and "is a replica of 127.0.0.1:%d" % primary.port in result.stderr, result.stderr
    assert_identical(primary, replica, "em", "em2")


def test_a_user_read_only_stops_gets_a_clear_error_before_anything_is_taken(pair, tmp_path):
    primary, replica = pair
    snaps, quarantine = str(tmp_path / "snaps"), str(tmp_path / "quarantine")
    for force in ([], ["--force"]):  # --force cannot write past read_only: the same clear error
        result = run_cli("cleanup-orphans", replica.url("em", user="app"), "--yes", "--snapshot-dir", snaps,
                         "--quarantine-dir", quarantine, *force, env=ENV)
        assert result.returncode == 3, result.stderr
        assert result.stderr.startswith("error: this server is read-only: run it on the primary")
        assert "Traceback" not in result.stderr
    assert not os.path.exists(snaps) and not os.path.exists(quarantine)
    report = json.loads(run_cli("doctor", replica.url("em", user="app"), "--json", env=ENV).stdout)
    role = {f["check"]: f for f in report["findings"]}["replication"]
    assert role["level"] == "WARN" and "most likely a replica" in role["message"] and "'app' may not see" in role[
        "message"]
    # 1290 met anywhere else (the gate skipped, as a library caller may) is the same clear error
    with open_database(replica.address("em", user="app")) as db:
        with pytest.raises(ReadOnlyServerError, match="this server is read-only: run it on the primary"):
            db.execute("DELETE FROM %s WHERE id = -1" % db.quote("METRIC"))
    # and the user may write on the primary (the grant replicated): the gate lets it through
    assert run_cli("optimize", primary.url("em", user="app"), "--no-timing", env=ENV).returncode == 0
    assert_identical(primary, replica, "em")


def test_force_writes_to_a_replica_with_a_warning(pair):
    primary, replica = pair
    result = run_cli("init", replica.url("replica_only"), "--force", env=ENV)  # a database the primary never has
    assert result.returncode == 0, result.stderr
    assert "as --force asks: replication from its primary may stop" in result.stderr
    replica.sql("DROP DATABASE replica_only")
    assert_identical(primary, replica, "em")


def test_doctor_says_replica_and_points_repairs_at_the_primary(pair, tmp_path):
    primary, replica = pair
    history = {"EMFIX_HISTORY": str(tmp_path / "history.jsonl"), **ENV}
    assert run_cli("validate", replica.url("em"), "-q", env=history).returncode in (0, 1)  # reading is fine there
    report = json.loads(run_cli("doctor", replica.url("em"), "--json", env=history).stdout)
    found = {f["check"]: f for f in report["findings"]}
    role = found["replication"]
    assert role["level"] == "WARN" and "a replica of 127.0.0.1:%d" % primary.port in role["message"]
    assert "running, 0 s behind" in role["message"] and role["details"]["channels"][0]["seconds_behind_master"] == 0
    assert "mysql://root@127.0.0.1:%d/em" % primary.port in role["fix"]
    writing = ("cleanup-orphans", "fix-json", "optimize", "init", "undo", "snapshot restore", "schema upgrade")
    for finding in report["findings"]:
        assert not any("emfix %s %s" % (c, replica.url("em")) in finding["fix"] for c in writing), finding
    if "cleanup-orphans" in found["last_validate"]["fix"]:
        assert primary.url("em") in found["last_validate"]["fix"]
    on_primary = json.loads(run_cli("doctor", primary.url("em"), "--json", env=history).stdout)
    role = {f["check"]: f for f in on_primary["findings"]}["replication"]
    assert role["level"] == "OK" and role["message"].startswith("a primary") and "ROW" in role["message"]


def test_a_batch_chosen_as_deadlock_victim_is_rolled_back_and_run_again(pair):
    import mysql.connector
    primary, _replica = pair
    primary.sql("CREATE TABLE em.deadlock (id INT PRIMARY KEY, v INT)")
    primary.sql("INSERT INTO deadlock SELECT seq, 0 FROM seq_1_to_200", database="em")
    other = mysql.connector.connect(host="127.0.0.1", port=primary.port, user="root", password="", database="em")
    db = open_database(primary.address("em"), retry_policy=RetryPolicy(deadline=20))
    calls, outcome = [], {}

    def batch():
        calls.append(1)
        db.execute("UPDATE deadlock SET v = 100 WHERE id = 1")
        db.execute("UPDATE deadlock SET v = 100 WHERE id = 2")  # the first time: waits for `other`

    def run():
        try:
            db.write_batch(batch)
            outcome["ok"] = True
        except Exception as exc:  # reported by the assertion below
            outcome["error"] = exc
    try:
        cursor = other.cursor()
        cursor.execute("START TRANSACTION")
        cursor.execute("UPDATE deadlock SET v = v + 1 WHERE id > 1")  # 199 rows: the heavier side survives
        worker = threading.Thread(target=run)
        worker.start()
        deadline = time.monotonic() + 20
        waiting = "SELECT count(*) FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'"
        while primary.sql(waiting)[0][0] == 0:
            assert time.monotonic() < deadline and worker.is_alive(), ("the batch never waited for the lock", outcome)
            time.sleep(0.25)  # INNODB_TRX is a cache, refreshed only when it was not read for 0.1 s
        cursor.execute("UPDATE deadlock SET v = v + 1 WHERE id = 1")  # closes the cycle: the batch is the victim
        other.commit()
        worker.join(30)
    finally:
        other.close()
        db.close()
    assert outcome.get("ok"), outcome.get("error")
    assert len(calls) == 2
    assert primary.sql("SELECT v FROM em.deadlock WHERE id IN (1, 2) ORDER BY id") == [(100,), (100,)]
    primary.sql("DROP TABLE em.deadlock")


# -- without a server: errors, retries and Galera findings ---------------------------------------

ADDRESS = DatabaseAddress("mysql", host="db1", port=3306, user="em", database="em")


def test_server_errors_become_clear_errors_with_what_to_do():
    read_only = translate_server_error(ADDRESS, 1290, "The MariaDB server is running with the --read-only option")
    assert isinstance(read_only, ReadOnlyServerError) and read_only.exit_code == 3
    assert read_only.message.startswith("this server is read-only: run it on the primary")
    deadlock = translate_server_error(ADDRESS, 1213, "Deadlock found when trying to get lock")
    assert isinstance(deadlock, ConflictError) and "--lock-timeout" not in deadlock.hint.split(";")[-1]
    assert "raise --lock-timeout" not in deadlock.hint
    assert "raise --lock-timeout" in translate_server_error(ADDRESS, 1205, "Lock wait timeout exceeded").hint
    for errno, msg in ((1180, "wsrep_max_ws_rows exceeded"), (1180, "Got error 90 during COMMIT"),
                       (1105, "Maximum writeset size exceeded (wsrep_max_ws_size)")):
        error = translate_server_error(ADDRESS, errno, msg)
        assert isinstance(error, TransactionTooLargeError) and "--batch-size" in hint_for(error), msg
        assert error.exit_code == 3, msg  # the database could not be written, whatever the batch size asked
    assert isinstance(translate_server_error(ADDRESS, 1180, 'Got error 149 "Lock deadlock" during COMMIT'),
                      ConflictError)
    assert translate_server_error(ADDRESS, 1146, "Table 'em.x' doesn't exist") is None
    not_ready = translate_server_error(ADDRESS, 1047, "WSREP has not yet prepared node for application use")
    assert not_ready.exit_code == 3 and "Synced" in hint_for(not_ready)


def test_write_batch_runs_a_conflicted_batch_again_and_gives_up_at_the_deadline(sqlite_address):
    make_demo(sqlite_address, faults=False)
    with open_database(sqlite_address, retry_policy=RetryPolicy(deadline=0.5, base=0.01, cap=0.05)) as db:
        calls = []

        def flaky():
            calls.append(1)
            db.execute("UPDATE EXPERIMENT SET title = 'changed' WHERE id = 1")
            if len(calls) < 3:
                raise ConflictError("deadlock", hint="h")
            return "done"
        assert db.write_batch(flaky) == "done" and len(calls) == 3
        assert db.scalar("SELECT title FROM EXPERIMENT WHERE id = 1") == "changed"

        def never():
            db.execute("UPDATE EXPERIMENT SET title = 'never' WHERE id = 1")
            raise ConflictError("deadlock", hint="h")
        with pytest.raises(ConflictError, match="gave up after"):
            db.write_batch(never)
        assert db.scalar("SELECT title FROM EXPERIMENT WHERE id = 1") == "changed"  # each try rolled back


def test_row_undo_runs_a_batch_aborted_by_a_conflict_again(sqlite_address, tmp_path, monkeypatch):
    """Undo of a cleanup put rows back in plain transactions: a batch aborted by a deadlock or a Galera
    conflict ended the undo (exit 3) under a hint saying such batches are run again."""
    make_demo(sqlite_address)
    before = sqlite_rows(sqlite_address.path)
    made = run_cli("cleanup-orphans", sqlite_address.path, "--yes", "--json", "--no-snapshot", "--quarantine-dir",
                   str(tmp_path / "quarantine"))
    assert made.returncode in (0, 1), made.stderr
    real_open, aborted = undo_module.open_database, []

    def open_with_one_conflict(*args, **kwargs):
        db = real_open(*args, **kwargs)
        db.retry_policy = RetryPolicy(deadline=5, base=0.01, cap=0.05)
        real_executemany = db.executemany

        def executemany(sql, rows, **options):
            written = real_executemany(sql, rows, **options)
            if sql.startswith("INSERT") and not aborted:
                aborted.append(sql)  # written, then the server aborts the transaction
                raise ConflictError("deadlock", hint="h")
            return written
        db.executemany = executemany
        return db
    monkeypatch.setattr(undo_module, "open_database", open_with_one_conflict)
    result = undo_module.undo(json.loads(made.stdout)["quarantine"])
    assert aborted and not result.not_restored
    assert sqlite_rows(sqlite_address.path) == before


def galera_role(**changes):
    galera = dict(state="Synced", cluster_size=3, cluster_status="Primary", ready=True, max_ws_rows=0,
                  max_ws_size=2147483647, sync_wait=0)
    galera.update(changes)
    return ReplicationRole(False, None, [], True, True, Galera(**galera), True, "ROW")


def test_doctor_on_a_galera_node_checks_state_write_set_limits_snapshot_lock_and_sync_wait():
    found = {f.check: f for f in cluster_findings(ADDRESS, galera_role(), (0, 5000))}
    assert found["galera"].level == "OK" and "Synced, cluster of 3" in found["galera"].message
    assert found["write_set"].level == "OK"
    assert "desyncs this node" in found["galera_snapshot"].message
    assert "SET SESSION wsrep_sync_wait = 1" in found["sync_wait"].message
    found = {f.check: f for f in cluster_findings(ADDRESS, galera_role(max_ws_rows=4000), (0, 5000))}
    assert found["write_set"].level == "WARN" and "--batch-size 3600" in found["write_set"].fix
    assert "transform-metrics" in found["write_set"].message and "fix-json" not in found["write_set"].message
    found = {f.check: f for f in cluster_findings(ADDRESS, galera_role(max_ws_rows=500), (0, 5000))}
    assert "emfix undo ... --batch-size 450" in found["write_set"].fix  # value undo's 1,000 a batch is over
    # wsrep_max_ws_size: a METRIC value rewritten by compare-and-swap cost 555 bytes a row in a write set (values
    # of 53 bytes on average), a transaction 120, measured on a node; doctor said 22 rows fit in 4,096 bytes
    found = {f.check: f for f in cluster_findings(ADDRESS, galera_role(max_ws_size=4096), (0, 79))}
    fits = {o["command"]: o["batch_size"] for o in found["write_set"].details["over"]}
    assert set(fits) == {"transform-metrics", "cleanup-orphans", "migrate", "undo", "fix-json"}
    assert all(fits[c] * (555 + 5 * (79 - 53)) + 120 <= 4096 for c in ("transform-metrics", "undo", "fix-json")), fits
    found = {f.check: f for f in cluster_findings(ADDRESS, galera_role(ready=False, cluster_status="non-Primary"),
                                                  None)}
    assert found["galera"].level == "FAIL"


def test_on_a_replica_doctor_names_the_primary_in_every_repair_it_suggests():
    role = ReplicationRole(True, None, [Channel("", "db0:3306", "Yes", "Yes", 3, "")], True, None)
    target = ADDRESS.target()
    findings = [Finding("a", "WARN", "x", "emfix cleanup-orphans %s --dry-run; emfix fix-json %s --dry-run" % (
        target, target)), Finding("b", "WARN", "y", "emfix validate %s" % target)]
    point_repairs_at_primary(findings, role, ADDRESS, target)
    assert target not in findings[0].fix and findings[0].fix.count("mysql://em@db0:3306/em") == 2
    assert findings[1].fix == "emfix validate %s" % target  # reading on a replica is fine
    found = {f.check: f for f in cluster_findings(ADDRESS, role, None)}
    assert "a replica of db0:3306" in found["replication"].message and "3 s behind" in found["replication"].message
    stopped = ReplicationRole(True, None, [Channel("", "db0:3306", "Yes", "No", None, "Could not execute "
                                                   "Delete_rows_v1 event")], True, None)
    finding = cluster_findings(ADDRESS, stopped, None)[0]
    assert finding.level == "FAIL" and "STOPPED" in finding.message and "Delete_rows" in finding.message


def test_a_commit_another_session_interrupted_is_said_so_not_taken_for_a_batch_too_large():
    """An outside tester: KILL QUERY landing on a restore's COMMIT read "refused to commit a batch" (Galera's limit)."""
    error = translate_server_error(ADDRESS, 1180, 'Got error 1 "Operation not permitted" during COMMIT')
    assert error.kind == "statement_interrupted" and error.exit_code == 3 and "KILL QUERY" in error.hint
    too_large = translate_server_error(ADDRESS, 1180, 'Got error 5 "Input/output error" during COMMIT')
    assert too_large.kind == "transaction_too_large"
