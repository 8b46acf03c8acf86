"""A 2-node Galera cluster of our own on loopback (issue #29).

Node 1 bootstraps the cluster, node 2 joins it by a mariadb-backup SST (about 15 s, 10 of them the
SST script's own pause); every port (MySQL, group communication, IST, SST) is its own on 127.0.0.1,
and each node has its own data directory and tmpdir (tests/servers.py). emfix runs as a user runs it
(`python -m emfix`) against node 1:

- transform-metrics and value undo commit in batches under a low wsrep_max_ws_rows, the data comes
  back bit for bit on both nodes, and a batch over the limit is a clear error (exit 3) that says to
  lower --batch-size, also in migrate (with --resume); cleanup-orphans and row undo likewise; under
  a low wsrep_max_ws_size the batch size doctor suggests fits;
- a writer on node 2 updating METRIC while transform-metrics runs on node 1: the batches aborted by
  the writes applied from node 2 are run again, values the writer changed are left alone and
  reported, and no update of the writer is lost (nor by the undo after);
- doctor on each node reports the wsrep state, the cluster's size and wsrep_max_ws_rows.

Runs only when EMFIX_TEST_MYSQL_URL is set (the signal that MySQL tests should run), with mariadbd,
the galera-4 library and mariadb-backup installed (.ci/run installs them); skipped, saying why, when
the cluster does not form."""

import contextlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time

import pytest
from conftest import ROOT, make_demo, mysql_server_url, run_cli
from servers import Server, find_mariadbd, free_ports

from emfix.address import DatabaseAddress
from emfix.backends import open_database
from emfix.demo import Shape
from emfix.transform import WRITER, TransformResult, apply_rules, read_rules_text

ENV = {"EMFIX_MYSQL_PASSWORD": ""}

GALERA_LIBRARIES = ("/usr/lib/galera/libgalera_smm.so", "/usr/lib/galera-4/libgalera_smm.so",
                    "/usr/lib64/galera-4/libgalera_smm.so", "/usr/lib64/galera/libgalera_smm.so")
FORM_SECONDS = 90  # node 1 bootstrapping and node 2 joining by SST: a few seconds here


class Node(Server):
    """A Galera node: its MySQL port and, on 127.0.0.1, its group-communication, IST and SST ports."""

    memory = []  # mariadb-backup's SST passes --innodb-buffer-pool-size on to mariadb-backup, which refuses it

    def __init__(self, folder, server_id, library, sst, cluster):
        super().__init__(folder, server_id)
        self.library, self.sst, self.cluster = library, sst, cluster
        self.gcomm = None

    def options(self):
        self.port, self.gcomm, ist, sst = free_ports(4)
        peers = ",".join("127.0.0.1:%d" % n.gcomm for n in self.cluster if n is not self and n.gcomm)
        first = not peers
        return (["--wsrep-new-cluster"] if first else []) + [
            "--wsrep-on=ON", "--wsrep-provider=%s" % self.library, "--wsrep-cluster-name=emfix_test",
            "--wsrep-cluster-address=gcomm://%s" % peers, "--wsrep-node-name=node%d" % self.server_id,
            "--wsrep-node-address=127.0.0.1:%d" % self.gcomm,
            "--wsrep-provider-options=gmcast.listen_addr=tcp://127.0.0.1:%d;ist.recv_addr=127.0.0.1:%d;"
            "gcache.size=16M" % (self.gcomm, ist),
            "--wsrep-sst-method=%s" % self.sst, "--wsrep-sst-auth=root:",
            "--wsrep-sst-receive-address=127.0.0.1:%d" % sst,
            "--binlog-format=ROW", "--default-storage-engine=InnoDB", "--innodb-autoinc-lock-mode=2",
            "--innodb-log-file-size=16M"]

    def start_node(self, mariadbd, install, seconds):
        self.install(install, "--innodb-log-file-size=16M")
        deadline = time.monotonic() + seconds
        for _ in range(3):  # another process may take a port between the probe and the bind
            self.launch(mariadbd, self.options())
            if self.wait_ready(max(1, deadline - time.monotonic())) and self.wait_synced(deadline):
                return True
            self.stop()
            if time.monotonic() >= deadline:
                break
        return False

    def status(self):
        with open_database(self.address(None)) as db:
            return {k.lower(): v for k, v in db.query(
                "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_local_state_comment', 'wsrep_cluster_size', "
                "'wsrep_ready', 'wsrep_cluster_status')")}

    def wait_synced(self, deadline):
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                status = self.status()
            except Exception:  # a node between SST and ready refuses queries
                status = {}
            if status.get("wsrep_local_state_comment") == "Synced" and status.get("wsrep_ready") == "ON" \
                    and int(status.get("wsrep_cluster_size") or 0) == len([n for n in self.cluster if n.proc]):
                return True
            time.sleep(0.2)
        return False


def galera_library():
    for path in GALERA_LIBRARIES:
        if os.path.exists(path):
            return path
    pytest.skip("the Galera library (galera-4: libgalera_smm.so) is not installed: no cluster to test with")


def state_transfer():
    """How node 2 gets node 1's data: mariadb-backup; rsync only when not root (an rsync daemon started
    by root runs as `nobody`, who may not write into a data directory under pytest's private tmp)."""
    if shutil.which("mariabackup") or shutil.which("mariadb-backup"):
        return "mariabackup"
    if os.geteuid() != 0 and shutil.which("rsync"):
        return "rsync"
    pytest.skip("mariadb-backup is not installed (.ci/run installs it): node 2 cannot join the cluster by SST")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    mysql_server_url()  # skips unless EMFIX_TEST_MYSQL_URL says the MySQL tests should run
    pytest.importorskip("mysql.connector")
    mariadbd, install = find_mariadbd()
    library = galera_library()
    sst = state_transfer()
    folder = tmp_path_factory.mktemp("galera")
    nodes = []
    try:
        for n in (1, 2):
            nodes.append(Node(str(folder / ("node%d" % n)), n, library, sst, nodes))
            if not nodes[-1].start_node(mariadbd, install, FORM_SECONDS):
                log = nodes[-1].error_log
                tail = open(log, errors="replace").read()[-1500:] if os.path.exists(log) else ""
                pytest.skip("the Galera cluster did not form within %d s (node %d): %s" % (FORM_SECONDS, n, tail))
        yield nodes
    finally:
        for node in reversed(nodes):
            node.stop()


# -- helpers ----------------------------------------------------------------------------------------

def synced_checksums(node, database):
    """{table: CHECKSUM TABLE} on `node` once it has applied every write the cluster committed before
    (wsrep_sync_wait: a read on one node right after a write on another waits for it)."""
    with open_database(node.address(database)) as db:
        db.execute("SET SESSION wsrep_sync_wait = 1")
        return dict((name.split(".")[-1], value) for name, value in db.query(
            "CHECKSUM TABLE %s" % ", ".join(db.quote(t) for t in db.tables())))


def identical(cluster, database):
    """The checksums of every table of `database`, the same on both nodes."""
    sums = [synced_checksums(node, database) for node in cluster]
    assert sums[0] and sums[0] == sums[1], database
    return sums[0]


def metric_values(node, database):
    with open_database(node.address(database)) as db:
        db.execute("SET SESSION wsrep_sync_wait = 1")
        return dict(db.query("SELECT id, per_label_val FROM %s" % db.quote("METRIC")))


def status(node, name):
    with open_database(node.address(None)) as db:
        return int(db.query("SHOW GLOBAL STATUS LIKE '%s'" % name)[0][1])


def conflicts(node):
    """Local transactions of `node` aborted for the cluster: by a write applied from another node
    (bf_aborts) or failing certification (cert_failures)."""
    return status(node, "wsrep_local_bf_aborts") + status(node, "wsrep_local_cert_failures")


@contextlib.contextmanager
def max_ws_rows(cluster, rows):
    """wsrep_max_ws_rows on every node (a global setting, not replicated) for the time of a block."""
    for node in cluster:
        node.sql("SET GLOBAL wsrep_max_ws_rows = %d" % rows)
    try:
        yield
    finally:
        for node in cluster:
            node.sql("SET GLOBAL wsrep_max_ws_rows = 0")


def new_demo(cluster, name, **shape):
    node1 = cluster[0]
    node1.sql("CREATE DATABASE %s CHARACTER SET utf8mb4" % name)
    make_demo(node1.address(name), shape=Shape(**shape) if shape else None, faults=not shape)
    return node1.url(name)


def cli(*args):
    result = run_cli(*args, env=ENV)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def assert_batch_too_large(result):
    """A batch over wsrep_max_ws_rows: exit 3, the server's reason, lower --batch-size; no traceback."""
    assert result.returncode == 3, result.stderr
    assert "refused to commit a batch: wsrep_max_ws_rows exceeded" in result.stderr, result.stderr
    assert "run it again with a smaller --batch-size" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "schema diff" not in result.stderr


# -- write-set limits: batches that fit, and a clear error for one that does not ---------------------

def test_value_undo_commits_in_batches_under_a_low_wsrep_max_ws_rows(cluster, tmp_path):
    url = new_demo(cluster, "em_rows")
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"*": {"round": 2}}))
    where = ["--snapshot-dir", str(tmp_path / "snaps"), "--quarantine-dir", str(tmp_path / "quarantine")]
    original = identical(cluster, "em_rows")
    with max_ws_rows(cluster, 50):
        # a batch of 200 values is over the limit: refused whole, nothing of it written
        assert_batch_too_large(cli("transform-metrics", url, "--rules", str(rules), "--yes", "--batch-size", "200",
                                   *where))
        assert identical(cluster, "em_rows") == original
        # batches of 20 fit: the same command finishes the run the refused one began
        done = cli("transform-metrics", url, "--rules", str(rules), "--yes", "--batch-size", "20", "--json", *where)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["changed"] > 50 and report["left_alone_count"] == 0  # more values than one write set takes
        transformed = identical(cluster, "em_rows")
        assert transformed["METRIC"] != original["METRIC"]
        assert {t: v for t, v in transformed.items() if t != "METRIC"} == {
            t: v for t, v in original.items() if t != "METRIC"}
        # value undo: one transaction of every value is over the limit; batches of 20 put every value back
        assert_batch_too_large(cli("undo", report["quarantine"], "--batch-size", "200"))
        assert identical(cluster, "em_rows") == transformed
        undone = cli("undo", report["quarantine"], "--batch-size", "20", "--json")
        assert undone.returncode == 0, undone.stderr
        assert json.loads(undone.stdout)["restored"] == {"METRIC": report["changed"]}
        assert identical(cluster, "em_rows") == original  # bit for bit, on both nodes


def test_cleanup_and_row_undo_in_batches_under_a_low_wsrep_max_ws_rows(cluster, tmp_path):
    url = new_demo(cluster, "em_cleanup")
    original = identical(cluster, "em_cleanup")
    with max_ws_rows(cluster, 50):
        done = cli("cleanup-orphans", url, "--yes", "--batch-size", "10", "--json", "--snapshot-dir",
                   str(tmp_path / "snaps"), "--quarantine-dir", str(tmp_path / "quarantine"))
        assert done.returncode in (0, 1), done.stderr
        report = json.loads(done.stdout)
        assert sum(report["removed"].values()) > 50  # more rows than one write set takes
        assert identical(cluster, "em_cleanup") != original
        assert_batch_too_large(cli("undo", report["quarantine"], "--batch-size", "200"))
        undone = cli("undo", report["quarantine"], "--batch-size", "20")
        assert undone.returncode == 0, undone.stderr
    assert identical(cluster, "em_cleanup") == original


def test_the_batch_size_doctor_suggests_under_a_low_wsrep_max_ws_size_fits(cluster, tmp_path):
    url = new_demo(cluster, "em_size")
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"*": {"round": 2}}))
    where = ["--no-snapshot", "--quarantine-dir", str(tmp_path / "quarantine")]
    original = identical(cluster, "em_size")
    for node in cluster:
        node.sql("SET GLOBAL wsrep_max_ws_size = 4096")  # bytes: the smallest the server takes is 1024
    try:
        refused = cli("transform-metrics", url, "--rules", str(rules), "--yes", *where)
        assert refused.returncode == 3 and "Maximum writeset size exceeded" in refused.stderr, refused.stderr
        assert "run it again with a smaller --batch-size" in refused.stderr
        doctor = json.loads(cli("doctor", url, "--json").stdout)
        write_set = {f["check"]: f for f in doctor["findings"]}["write_set"]
        assert write_set["level"] == "WARN" and "wsrep_max_ws_size 4,096 bytes" in write_set["message"]
        fits = {o["command"]: o["batch_size"] for o in write_set["details"]["over"]}
        done = cli("transform-metrics", url, "--rules", str(rules), "--yes", "--batch-size",
                   str(fits["transform-metrics"]), "--json", *where)
        assert done.returncode == 0, done.stderr
        undone = cli("undo", json.loads(done.stdout)["quarantine"], "--batch-size", str(fits["undo"]))
        assert undone.returncode == 0, undone.stderr
    finally:
        for node in cluster:
            node.sql("SET GLOBAL wsrep_max_ws_size = 2147483647")
    assert identical(cluster, "em_size") == original


def test_migrate_into_a_node_says_lower_batch_size_and_resumes_with_a_smaller_one(cluster, tmp_path):
    source = DatabaseAddress("sqlite", path=str(tmp_path / "source.db"))
    make_demo(source, faults=False)
    target = cluster[0].url("em_migrated")
    with max_ws_rows(cluster, 50):
        refused = cli("migrate", source.path, target, "-e", "1", "--init")  # default batch: 2,000 rows
        assert_batch_too_large(refused)
        assert "--resume" in refused.stderr
        done = cli("migrate", source.path, target, "-e", "1", "--init", "--batch-size", "20", "--resume")
        assert done.returncode == 0, done.stderr
    identical(cluster, "em_migrated")


# -- a writer on the other node: conflicts are run again, no update of the writer is lost ----------------

class Writer(threading.Thread):
    """Updates random METRIC rows (not `spared`) on `node`, about `rate` a second, until stopped or
    `seconds` are over; remembers the last value it committed to each row. Its values are objects of
    numbers that round(2) leaves as they are, so a transform-metrics never has a reason to change them."""

    def __init__(self, node, database, ids, rate=300, seconds=60):
        super().__init__(daemon=True)
        self.node, self.database, self.ids = node, database, list(ids)
        self.rate, self.seconds = rate, seconds
        self.last, self.refused, self.count = {}, {}, 0
        self.stop = threading.Event()

    def run(self):
        import mysql.connector
        con = mysql.connector.connect(host="127.0.0.1", port=self.node.port, user="root", password="",
                                      database=self.database, autocommit=True)
        rng, start = random.Random(29), time.monotonic()
        try:
            cursor = con.cursor()
            while not self.stop.is_set() and time.monotonic() - start < self.seconds:
                self.count += 1
                row, value = rng.choice(self.ids), '{"cat": 0.5, "writer": %d}' % self.count
                try:
                    cursor.execute("UPDATE METRIC SET per_label_val = %s WHERE id = %s", (value, row))
                    if cursor.rowcount == 1:  # an update of a row this node does not hold yet changes nothing
                        self.last[row] = value
                except mysql.connector.Error as exc:  # a conflict with emfix's batch: this update is not in
                    self.refused[exc.errno] = self.refused.get(exc.errno, 0) + 1
                pause = start + self.count / self.rate - time.monotonic()  # pacing, not a timing assertion
                if pause > 0:
                    time.sleep(pause)
        finally:
            con.close()


def start_cli(*args):
    return subprocess.Popen([sys.executable, "-m", "emfix", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT, **ENV))


def wait_for(condition, what, proc=None, seconds=30):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "%s did not happen within %d s" % (what, seconds)
        assert proc is None or proc.poll() is None, (what, proc.communicate())
        time.sleep(0.25)  # INNODB_TRX is a cache, refreshed only when it was not read for 0.1 s


def test_a_writer_on_node_2_loses_no_update_while_transform_metrics_runs_on_node_1(cluster, tmp_path):
    node1, node2 = cluster
    url = new_demo(cluster, "em_busy", experiments=4, trials=2, runs=4, epochs=6, batches=3)  # 832 metrics
    ids = sorted(metric_values(node1, "em_busy"))
    # `first` and `held` are in the first batch of 100, which writes `first` and then waits for `held`
    first, held = ids[0], ids[60]
    for row in (first, held):
        node1.sql("UPDATE METRIC SET per_label_val = '{\"cat\": 0.12345, \"dog\": 0.6789}' WHERE id = %d" % row,
                  "em_busy")
    original = metric_values(node1, "em_busy")
    identical(cluster, "em_busy")  # node 2 has applied the demo: the writer's updates find their rows
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"*": {"round": 2}}))
    aborted_before = conflicts(node1)

    import mysql.connector
    holder = mysql.connector.connect(host="127.0.0.1", port=node1.port, user="root", password="", database="em_busy")
    # The writer keeps off the first batch's rows: a write of one of them applied from node 2 would abort
    # that batch before it waits for `held` (a conflict at a random moment, not the one this test makes),
    # and the wait below could miss the short lock waits between such aborts (seen under load in CI).
    writer = Writer(node2, "em_busy", ids[100:])
    proc = None
    try:
        holder.cursor().execute("START TRANSACTION")
        locked = holder.cursor()
        locked.execute("SELECT id FROM METRIC WHERE id = %d FOR UPDATE" % held)
        locked.fetchall()
        writer.start()
        proc = start_cli("transform-metrics", url, "--rules", str(rules), "--yes", "--batch-size", "100",
                         "--no-snapshot", "--quarantine-dir", str(tmp_path / "quarantine"), "--json", "-v")
        # emfix's first batch has written `first` and waits for `held`: node 2 changes `first` meanwhile, so
        # the write applied from node 2 aborts emfix's open batch on node 1 (a certain conflict)
        waiting = "SELECT count(*) FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'"
        wait_for(lambda: node1.sql(waiting)[0][0] > 0, "emfix's batch waiting for the held row", proc)
        node2.sql("UPDATE METRIC SET per_label_val = '{\"cat\": 0.5, \"writer\": 0}' WHERE id = %d" % first,
                  "em_busy")
        writer.last[first] = '{"cat": 0.5, "writer": 0}'
        wait_for(lambda: conflicts(node1) > aborted_before, "a batch aborted by node 2's write", proc)
        holder.rollback()
        out, err = proc.communicate(timeout=120)
    finally:
        writer.stop.set()
        writer.join(30)
        holder.close()
        if proc is not None and proc.poll() is None:  # a failed wait: our emfix must not outlive the test
            proc.kill()
            proc.communicate()
    assert "Traceback" not in err
    assert proc.returncode == 1, err  # values another process changed first were left alone: reported
    assert re.search(r"batch failed \(MySQL .* aborted the transaction: .*\); retry 1 ", err), err
    report = json.loads(out)
    assert first in report["left_alone"] and set(report["left_alone"]) <= set(writer.last)
    assert report["left_alone_count"] == len(report["left_alone"]) and report["changed"] >= 1
    assert writer.count > 100 and writer.last, (writer.count, writer.refused)

    def check(expected_for_others):
        for node in cluster:
            now = metric_values(node, "em_busy")
            lost = {i: (v, now[i]) for i, v in writer.last.items() if now[i] != v}
            assert not lost, "updates of the writer lost on node%d: %s" % (node.server_id, lost)
            for i in ids:
                if i not in writer.last:
                    assert now[i] == expected_for_others(i), (node.server_id, i, now[i], original[i])
        identical(cluster, "em_busy")

    def transformed(row):  # what round(2) makes of the value emfix read (the writer never touched the row)
        if original[row] is None:
            return None
        new = apply_rules(rules_read, json.loads(original[row]), TransformResult(False, {}))
        return original[row] if new is None else WRITER.encode(new)
    rules_read = read_rules_text(rules.read_text())
    assert json.loads(transformed(held)) == {"cat": 0.12, "dog": 0.68}
    check(transformed)
    # undo puts back every value the writer did not change since, and none of the writer's
    undone = cli("undo", report["quarantine"], "--batch-size", "100", "--json")
    assert undone.returncode in (0, 1), undone.stderr
    check(lambda row: original[row])


# -- doctor on a node ------------------------------------------------------------------------------

def test_doctor_on_each_node_reports_its_state_the_cluster_size_and_wsrep_max_ws_rows(cluster):
    new_demo(cluster, "em_doctor")
    identical(cluster, "em_doctor")
    with max_ws_rows(cluster, 500):
        for node in cluster:
            result = cli("doctor", node.url("em_doctor"), "--json")
            assert result.returncode == 0, result.stderr  # OK and WARN only
            found = {f["check"]: f for f in json.loads(result.stdout)["findings"]}
            galera = found["galera"]
            assert galera["level"] == "OK"
            assert galera["message"] == "Galera node Synced, cluster of 2 (Primary component)"
            assert galera["details"]["cluster_size"] == 2 and galera["details"]["wsrep_max_ws_rows"] == 500
            write_set = found["write_set"]
            assert write_set["level"] == "WARN" and write_set["message"].startswith("wsrep_max_ws_rows 500,")
            fits = {o["command"]: o["batch_size"] for o in write_set["details"]["over"]}
            assert fits == {"transform-metrics": 450, "cleanup-orphans": 450, "migrate": 450, "undo": 450}
            assert "emfix undo ... --batch-size 450" in write_set["fix"]
            assert "desyncs this node" in found["galera_snapshot"]["message"]
            assert found["replication"]["level"] == "OK"  # a node of a cluster is no replica
            text = cli("doctor", node.url("em_doctor")).stdout
            assert "Galera node Synced, cluster of 2" in text and "wsrep_max_ws_rows 500" in text


# -- snapshot and restore on a node ----------------------------------------------------------------

def test_a_restore_into_a_node_leaves_both_nodes_as_the_snapshot_was(cluster, tmp_path):
    """A restore locks the tables it empties (LOCK TABLES) before the first TRUNCATE: on a node the emptying and the
    loading still reach the other node, which ends with the snapshot's rows."""
    url = new_demo(cluster, "em_restore", experiments=2, trials=2, runs=2, epochs=3, batches=3)
    original = identical(cluster, "em_restore")
    snaps = str(tmp_path / "snaps")
    made = cli("snapshot", "create", url, "--snapshot-dir", snaps, "--json")
    assert made.returncode == 0, made.stderr
    cluster[1].sql("DELETE FROM em_restore.BATCH_METRIC")  # changed on the other node
    assert identical(cluster, "em_restore") != original
    restored = cli("snapshot", "restore", url, "--snapshot-dir", snaps, "--snapshot-id", json.loads(made.stdout)["id"],
                   "--yes", "--no-safety-snapshot")
    assert restored.returncode == 0, restored.stderr
    assert identical(cluster, "em_restore") == original
