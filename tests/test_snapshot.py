"""Snapshots: consistent under writes, exact round trips, damage found and refused, killed at any moment."""

import json
import os
import random
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from conftest import ROOT, make_demo, run_cli

from emfix import snapshot
from emfix.address import DatabaseAddress
from emfix.backends import open_database
from emfix.demo import Shape
from emfix.errors import DamagedInputError, NoSpaceError


def dump_all(address):
    """Every row of every table, sorted: what 'the same content' means."""
    with open_database(address, readonly=True) as db:
        return {t: sorted(db.query("SELECT * FROM %s" % db.quote(t)), key=repr) for t in db.tables()}


@pytest.fixture
def demo_sqlite(tmp_path):
    address = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(address)
    return address


def snapdir(tmp_path):
    return str(tmp_path / "snaps")


def test_restore_round_trips_exactly_on_both_backends(demo_address, tmp_path):
    before = dump_all(demo_address)
    manifest = snapshot.create_snapshot(demo_address, snapdir(tmp_path), description="before", verify=True)
    assert manifest.row_total == sum(len(rows) for rows in before.values())
    with open_database(demo_address) as db:
        if db.dialect == "mysql":
            db.execute("SET SESSION FOREIGN_KEY_CHECKS = 0")
        db.execute("DELETE FROM METRIC WHERE id > 5")
        db.execute("UPDATE TRIAL SET name = 'changed'")
    assert dump_all(demo_address) != before
    result = snapshot.restore_snapshot(demo_address, snapdir(tmp_path), manifest.id)
    assert dump_all(demo_address) == before
    safety = snapshot.verify_snapshot(snapdir(tmp_path), result.safety_snapshot_id)
    assert safety.status == "verified" and safety.manifest.tables["METRIC"] == 5


def test_a_sqlite_restore_counts_its_rows_before_an_application_writes_again(demo_sqlite, tmp_path, monkeypatch):
    """Round 59: the rows were counted after the restore let go of its lock, and an application's inserts since made
    a whole restore "differ from the snapshot" (exit 4, the user sent to the safety snapshot). An insert the moment
    the lock goes (where the count was taken) changes nothing now; the restore says done."""
    from emfix.snapshot import restore as restore_module

    manifest = snapshot.create_snapshot(demo_sqlite, snapdir(tmp_path))
    real_count_rows = restore_module.count_rows

    def an_application_inserts_first(path):
        con = sqlite3.connect(demo_sqlite.path)
        with con:
            con.execute("INSERT INTO METRIC (type, total_val, per_label_val) VALUES ('late', 1.0, '{}')")
        con.close()
        return real_count_rows(path)
    monkeypatch.setattr(restore_module, "count_rows", an_application_inserts_first)
    result = snapshot.restore_snapshot(demo_sqlite, snapdir(tmp_path), manifest.id)
    assert result.tables == manifest.tables


def test_a_safety_snapshot_is_verified_and_says_before_what(demo_sqlite, tmp_path):
    """The one entry point every change and every restore takes its snapshot through."""
    class Lines:
        def __init__(self):
            self.lines = []

        def update(self, text, force=False):
            self.lines.append((text, force))

    progress, directory = Lines(), snapdir(tmp_path)
    taken = snapshot.safety_snapshot(demo_sqlite, directory, "cleanup-orphans", progress=progress)
    result = snapshot.restore_snapshot(demo_sqlite, directory, taken)
    described = {s.id: (s.status, s.manifest.description, s.manifest.kind) for s in snapshot.list_snapshots(directory)}
    assert described == {taken: ("verified", "before cleanup-orphans", "snapshot"),
                         result.safety_snapshot_id: ("verified", "safety copy before restoring %s" % taken, "safety")}
    assert progress.lines == [("snapshot before cleanup-orphans", True)]
    assert snapshot.resolve_snapshot_id(directory, "latest-valid", demo_sqlite) == taken  # never the restore's own
    beside = snapshot.safety_snapshot(demo_sqlite, None, "schema upgrade")  # no folder given: the database's own
    assert [s.id for s in snapshot.list_snapshots(snapshot.default_snapshot_dir(demo_sqlite))] == [beside]


def test_snapshot_files_are_private_and_listed(demo_sqlite, tmp_path):
    result = run_cli("snapshot", "create", demo_sqlite.path, "--description", "first", "--verify", "--json")
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    directory = created["directory"]
    for name in os.listdir(directory):
        assert os.stat(os.path.join(directory, name)).st_mode & 0o777 == 0o600
    listed = json.loads(run_cli("list-snapshots", demo_sqlite.path, "--json").stdout)["snapshots"]
    assert [(s["id"], s["status"], s["description"]) for s in listed] == [(created["id"], "verified", "first")]
    assert "password" not in json.dumps(created["source"]) or created["source"]["password"] in (None, "***")


def test_two_snapshots_in_the_same_second_do_not_collide(demo_sqlite, tmp_path):
    ids = {snapshot.create_snapshot(demo_sqlite, snapdir(tmp_path)).id for _ in range(3)}
    assert len(ids) == 3 and len(snapshot.list_snapshots(snapdir(tmp_path))) == 3


def damage(path, kind):
    data = open(path, "rb").read()
    if kind == "flipped byte":
        position = len(data) // 2
        data = data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1:]
    elif kind == "truncated":
        data = data[:len(data) // 2]
    elif kind == "not sqlite":
        data = b"just some text that is not a database\n" * 100
    with open(path, "wb") as handle:
        handle.write(data)


@pytest.mark.parametrize("kind, status, words", [
    ("flipped byte", "damaged", "SHA-256"),
    ("truncated", "damaged", "size"),
    ("not sqlite", "damaged", "size"),
    ("missing manifest", "incomplete", "no manifest"),
    ("manifest of another file", "damaged", "manifest describes"),
    ("missing file", "missing", "file missing"),
])
def test_restore_refuses_damaged_snapshot_and_leaves_database_untouched(demo_sqlite, tmp_path, kind, status, words):
    directory = snapdir(tmp_path)
    good = snapshot.create_snapshot(demo_sqlite, directory, verify=True)
    other = snapshot.create_snapshot(demo_sqlite, directory)
    path = os.path.join(directory, good.id + ".db")
    if kind in ("flipped byte", "truncated", "not sqlite"):
        damage(path, kind)
    elif kind == "missing manifest":
        os.remove(os.path.join(directory, good.id + ".json"))
    elif kind == "manifest of another file":
        manifest = json.load(open(os.path.join(directory, other.id + ".json")))
        with open(os.path.join(directory, good.id + ".json"), "w") as handle:
            json.dump(manifest, handle)
    elif kind == "missing file":
        os.remove(path)
    checked = snapshot.verify_snapshot(directory, good.id)
    assert checked.status == status and words in checked.problem, checked
    before = open(demo_sqlite.path, "rb").read()
    result = run_cli("restore-snapshot", demo_sqlite.path, "--snapshot-dir", directory, "--snapshot-id", good.id,
                     "--yes")
    assert result.returncode == 4 and "Traceback" not in result.stderr, result.stderr
    assert open(demo_sqlite.path, "rb").read() == before
    verify = run_cli("snapshot", "verify", "--snapshot-dir", directory, good.id)
    assert verify.returncode == 4 and status in verify.stdout


def test_flipped_byte_is_never_listed_as_verified_after_verify(demo_sqlite, tmp_path):
    directory = snapdir(tmp_path)
    good = snapshot.create_snapshot(demo_sqlite, directory, verify=True)
    damage(os.path.join(directory, good.id + ".db"), "flipped byte")
    snapshot.verify_snapshot(directory, good.id)
    assert [s.status for s in snapshot.list_snapshots(directory)] == ["damaged"]


def test_snapshot_id_that_is_a_path_is_refused(demo_sqlite, tmp_path):
    for bad in ("../experiment", "/etc/passwd", "a/b", ".."):
        result = run_cli("snapshot", "restore", demo_sqlite.path, "--snapshot-id", bad)
        assert result.returncode == 2 and "not a snapshot id" in result.stderr


def test_latest_valid_skips_a_damaged_newer_snapshot(demo_sqlite, tmp_path):
    directory = snapdir(tmp_path)
    older = snapshot.create_snapshot(demo_sqlite, directory, verify=True)
    newer = snapshot.create_snapshot(demo_sqlite, directory, verify=True)
    damage(os.path.join(directory, newer.id + ".db"), "flipped byte")
    assert snapshot.resolve_snapshot_id(directory, "latest-valid") == older.id


WRITER = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
n = 0
print("writing", flush=True)
while True:
    con.execute("BEGIN IMMEDIATE")
    con.execute("INSERT INTO TRIAL (name, experiment_id, start_time, update_time) VALUES ('w', 1, '2025', '2025')")
    con.execute("INSERT INTO TRIAL_RUN (trial_id, status, start_time, update_time) "
                "VALUES (last_insert_rowid(), 'running', '2025', '2025')")
    con.execute("COMMIT")
    n += 1
    time.sleep(0.001)  # a busy application, not a loop that never lets go of the lock
"""


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_snapshot_taken_during_writes_is_one_moment(demo_sqlite, tmp_path, journal):
    con = sqlite3.connect(demo_sqlite.path)
    con.execute("PRAGMA journal_mode = %s" % journal)
    gap = con.execute("SELECT (SELECT count(*) FROM TRIAL_RUN) - (SELECT count(*) FROM TRIAL)").fetchone()[0]
    con.close()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, demo_sqlite.path], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "writing"
        manifests = [snapshot.create_snapshot(demo_sqlite, snapdir(tmp_path), verify=True) for _ in range(4)]
    finally:
        writer.kill()
        writer.wait()
    for manifest in manifests:  # each pair was written in one transaction: a moment never splits one
        assert manifest.tables["TRIAL_RUN"] - manifest.tables["TRIAL"] == gap
        path = os.path.join(snapdir(tmp_path), manifest.id + ".db")
        assert snapshot.sqlite_check(path) == ""
        with open(path, "rb") as handle:
            assert handle.read(20)[18:20] == b"\x01\x01"  # rollback-journal format, even from a WAL source
    assert len({m.tables["TRIAL"] for m in manifests}) > 1  # the writer really was writing


def bigger_demo(tmp_path):
    address = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(address, shape=Shape(experiments=3, trials=3, runs=8, epochs=30, batches=10))
    return address


def integrity_ok(path):
    con = sqlite3.connect(path)
    try:
        return con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        con.close()


def test_create_killed_at_random_moments_never_lists_a_partial_snapshot(tmp_path):
    address = bigger_demo(tmp_path)
    directory = snapdir(tmp_path)
    before = open(address.path, "rb").read()
    rng = random.Random(7)
    env = dict(os.environ, PYTHONPATH=ROOT)
    for _ in range(12):
        proc = subprocess.Popen([sys.executable, "-m", "emfix", "snapshot", "create", address.path,
                                 "--snapshot-dir", directory, "--verify", "-q"], env=env)
        time.sleep(rng.uniform(0.05, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert integrity_ok(address.path)
        for status in snapshot.list_snapshots(directory):
            if status.status == "verified":
                assert snapshot.verify_snapshot(directory, status.id, record=False).status == "verified"
    assert open(address.path, "rb").read() == before
    snapshot.create_snapshot(address, directory)  # clears what the killed runs left behind
    assert not [n for n in os.listdir(directory) if ".tmp-" in n]


def test_restore_killed_at_random_moments_leaves_old_or_new_content(tmp_path):
    address = bigger_demo(tmp_path)
    directory = snapdir(tmp_path)
    new = snapshot.create_snapshot(address, directory, verify=True)
    new_counts = new.tables

    def make_old():
        con = sqlite3.connect(address.path)
        con.execute("DELETE FROM BATCH_METRIC WHERE rowid % 2 = 0")
        con.execute("DELETE FROM BATCH WHERE rowid % 3 = 0")
        con.commit()
        con.close()
        return snapshot.count_rows(address.path)

    old_counts = make_old()
    rng = random.Random(11)
    env = dict(os.environ, PYTHONPATH=ROOT)
    outcomes = set()
    for _ in range(12):
        proc = subprocess.Popen([sys.executable, "-m", "emfix", "snapshot", "restore", address.path,
                                 "--snapshot-dir", directory, "--snapshot-id", new.id, "--no-safety-snapshot",
                                 "--yes", "-q"], env=env)
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert integrity_ok(address.path)
        counts = snapshot.count_rows(address.path)
        assert counts in (old_counts, new_counts)
        outcomes.add("new" if counts == new_counts else "old")
        if counts == new_counts:
            old_counts = make_old()
    assert outcomes  # at least one outcome observed; both kinds are typical


def test_disk_full_leaves_no_partial_file_and_a_clear_error(demo_sqlite, tmp_path):
    directory = snapdir(tmp_path)
    os.makedirs(directory)
    before = open(demo_sqlite.path, "rb").read()
    limit = os.path.getsize(demo_sqlite.path) // 3

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = dict(os.environ, PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, "-m", "emfix", "snapshot", "create", demo_sqlite.path,
                             "--snapshot-dir", directory], env=env, capture_output=True, text=True,
                            preexec_fn=small_files)
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr and "cannot write the snapshot" in result.stderr
    assert os.listdir(directory) == []
    assert open(demo_sqlite.path, "rb").read() == before


def test_refuses_when_free_space_is_too_small(demo_sqlite, tmp_path, monkeypatch):
    import collections
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 ** 9, 10 ** 9, 1000))
    with pytest.raises(NoSpaceError, match="not enough free space"):
        snapshot.create_snapshot(demo_sqlite, snapdir(tmp_path))
    assert not os.path.exists(snapdir(tmp_path)) or os.listdir(snapdir(tmp_path)) == []


def test_prune_never_deletes_the_newest_verified_snapshot(demo_sqlite, tmp_path):
    directory = snapdir(tmp_path)
    verified = snapshot.create_snapshot(demo_sqlite, directory, verify=True)
    later = [snapshot.create_snapshot(demo_sqlite, directory) for _ in range(3)]
    result = snapshot.prune_snapshots(directory, keep=1)
    remaining = {s.id for s in snapshot.list_snapshots(directory)}
    assert remaining == {verified.id, later[-1].id}
    assert set(result.deleted) == {later[0].id, later[1].id}
    cli = run_cli("snapshot", "prune", "--snapshot-dir", directory, "--older-than", "0m", "--dry-run")
    assert cli.returncode == 0 and "would delete 1" in cli.stdout


def test_restore_of_a_damaged_database_keeps_its_raw_bytes(demo_sqlite, tmp_path):
    directory = snapdir(tmp_path)
    good = snapshot.create_snapshot(demo_sqlite, directory, verify=True)
    with open(demo_sqlite.path, "r+b") as handle:
        handle.seek(4096 * 3)
        handle.write(b"\xff" * 4096)
    damaged_bytes = open(demo_sqlite.path, "rb").read()
    result = snapshot.restore_snapshot(demo_sqlite, directory, good.id)
    assert integrity_ok(demo_sqlite.path)
    raw = os.path.join(directory, result.safety_snapshot_id + ".db")
    assert open(raw, "rb").read() == damaged_bytes
    assert [s.status for s in snapshot.list_snapshots(directory) if s.id == result.safety_snapshot_id] == ["damaged"]


def test_mysql_snapshot_in_sqlite_format_opens_with_plain_sqlite(mysql_address, tmp_path):
    make_demo(mysql_address)
    manifest = snapshot.create_snapshot(mysql_address, snapdir(tmp_path), verify=True, file_format="sqlite")
    con = sqlite3.connect(os.path.join(snapdir(tmp_path), manifest.id + ".db"))
    assert con.execute("SELECT count(*) FROM METRIC").fetchone()[0] == manifest.tables["METRIC"]
    assert manifest.source["backend"] == "mysql" and manifest.source_dialect == "mysql"


def test_restore_into_the_wrong_kind_of_database_is_refused(demo_sqlite, mysql_address, tmp_path):
    manifest = snapshot.create_snapshot(demo_sqlite, snapdir(tmp_path), verify=True)
    with pytest.raises(Exception, match="restore it into the same kind|is of a sqlite database"):
        snapshot.restore_snapshot(mysql_address, snapdir(tmp_path), manifest.id)


def test_verify_detects_changed_row_counts(demo_sqlite, tmp_path):
    directory = snapdir(tmp_path)
    manifest = snapshot.create_snapshot(demo_sqlite, directory)
    manifest.tables["METRIC"] += 1
    manifest.sha256 = snapshot.sha256_of(os.path.join(directory, manifest.id + ".db"))
    snapshot.write_manifest(directory, manifest)
    status = snapshot.verify_snapshot(directory, manifest.id)
    assert status.status == "damaged" and "row counts" in status.problem
    with pytest.raises(DamagedInputError):
        snapshot.restore_snapshot(demo_sqlite, directory, manifest.id)


def test_cli_snapshot_commands_fail_cleanly_on_bad_input(tmp_path):
    result = run_cli("snapshot", "create", str(tmp_path / "nope.db"))
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert not (tmp_path / "snapshots").exists()
    result = run_cli("snapshot")
    assert result.returncode == 2 and "needs an action" in result.stderr
    result = run_cli("snapshot", "verify", "--snapshot-dir", str(tmp_path))
    assert result.returncode == 2
    result = run_cli("snapshot", "prune", "--snapshot-dir", str(tmp_path), "--older-than", "soon")
    assert result.returncode == 2 and "not an age" in result.stderr


# -- prune deletes only what emfix wrote (#23) ------------------------------------------------------------

def age(path, hours):
    stamp = os.path.getmtime(path) - hours * 3600
    os.utime(path, (stamp, stamp))


def test_prune_never_deletes_the_database_nor_user_files_beside_its_snapshots(tmp_path):
    folder = tmp_path / "w"
    folder.mkdir()
    address = DatabaseAddress("sqlite", path=str(folder / "experiment.db"))
    make_demo(address)
    before = open(address.path, "rb").read()
    made = run_cli("snapshot", "create", address.path, "--snapshot-dir", str(folder), "--json")
    assert made.returncode == 0, made.stderr
    mine = json.loads(made.stdout)["id"]
    users = {"backup.db": b"SQLite format 3\x00" + b"\x00" * 100, "mydump.sql": b"INSERT INTO t VALUES (1);\n",
             "notes.json": b'{"a": 1}\n', ".notes.txt.tmp-4194999": b"an editor's file\n",
             ".x.emfix-restore.tmp": b"not a pid\n"}
    for name, data in users.items():
        (folder / name).write_bytes(data)
    for name in list(users) + ["experiment.db"]:
        age(str(folder / name), 2)
    listed = run_cli("snapshot", "list", "--snapshot-dir", str(folder), "--json")
    assert [s["id"] for s in json.loads(listed.stdout)["snapshots"]] == [mine]
    for args in (["--keep", "3"], ["--keep", "0"], ["--older-than", "0m"]):
        result = run_cli("snapshot", "prune", address.path, "--snapshot-dir", str(folder), *args, "--json")
        assert result.returncode == 0, result.stderr
        assert "experiment" not in result.stdout
    assert open(address.path, "rb").read() == before
    for name, data in users.items():
        assert (folder / name).read_bytes() == data, name


def test_prune_never_deletes_a_database_named_like_a_snapshot(tmp_path):
    """Even a file named as emfix names its snapshots is left alone when it is the database given."""
    folder = tmp_path / "snaps"
    folder.mkdir()
    address = DatabaseAddress("sqlite", path=str(folder / (snapshot.new_snapshot_id() + ".db")))
    make_demo(address)
    age(address.path, 2)
    result = snapshot.prune_snapshots(str(folder), keep=1, address=address)
    assert result.deleted == [] and os.path.exists(address.path)
    link = tmp_path / "experiment.db"
    link.symlink_to(address.path)
    result = snapshot.prune_snapshots(str(folder), keep=1, address=DatabaseAddress("sqlite", path=str(link)))
    assert result.deleted == [] and os.path.exists(address.path)


def test_remove_own_file_refuses_anything_emfix_did_not_write(tmp_path):
    from emfix.errors import UsageError
    from emfix.fileutil import remove_own_file
    user = tmp_path / "backup.db"
    user.write_bytes(b"mine")
    with pytest.raises(UsageError, match="did not write"):
        remove_own_file(str(user))
    assert user.read_bytes() == b"mine"
    own = tmp_path / (snapshot.new_snapshot_id() + ".json")
    own.write_text("{}")
    with pytest.raises(UsageError):
        remove_own_file(str(own), protect=[str(own)])
    assert remove_own_file(str(own)) and not own.exists()


def test_a_database_in_a_folder_named_with_percent_escapes_is_snapshotted_and_repaired(tmp_path):
    """`a%20b` is a folder name, not a URI escape: the snapshot's read-back opened the wrong path."""
    folder = tmp_path / "a%20b ?#"
    folder.mkdir()
    from emfix.address import DatabaseAddress
    address = DatabaseAddress("sqlite", path=str(folder / "experiment.db"))
    make_demo(address)
    made = run_cli("snapshot", "create", address.path, "--verify")
    assert made.returncode == 0, made.stderr
    fixed = run_cli("fix-json", address.path, "--yes")
    assert fixed.returncode in (0, 1) and "damaged" not in fixed.stderr, fixed.stderr


def test_latest_valid_among_damaged_snapshots_of_this_database_says_so(demo_sqlite, tmp_path):
    """An outside tester: with only damaged snapshots of this database, the hint said they were of other databases
    and to restore one with --from-other-database."""
    made = snapshot.create_snapshot(demo_sqlite, snapdir(tmp_path))
    path = os.path.join(snapdir(tmp_path), made.file)
    with open(path, "r+b") as handle:  # one byte flipped: the checksum no longer matches
        handle.seek(made.size // 2)
        byte = handle.read(1)
        handle.seek(made.size // 2)
        handle.write(bytes([byte[0] ^ 0xFF]))
    refused = run_cli("snapshot", "restore", demo_sqlite.path, "--snapshot-dir", snapdir(tmp_path), "--yes")
    assert refused.returncode == 2 and "no valid snapshot" in refused.stderr, refused.stderr
    assert "other databases" not in refused.stderr and "fail their check" in refused.stderr


def test_keeping_freed_memory_is_asked_once_and_never_fails_where_the_allocator_has_no_such_knob(monkeypatch):
    import ctypes

    from emfix import heap
    asked = []

    class Libc:
        def __init__(self, name):
            assert name is None  # the process's own C library

        @property
        def mallopt(self):
            def mallopt(param, value):
                asked.append((param, value))
                return 1
            return mallopt

    monkeypatch.setattr(heap, "_done", [])
    monkeypatch.setattr(ctypes, "CDLL", Libc)
    heap.keep_freed_memory()
    heap.keep_freed_memory()
    assert asked == [(heap.M_TOP_PAD, heap.KEPT_BYTES)]

    class NoMallopt:  # macOS, Windows
        def __init__(self, name):
            raise OSError("no C library named %r" % (name,))

    monkeypatch.setattr(heap, "_done", [])
    monkeypatch.setattr(ctypes, "CDLL", NoMallopt)
    heap.keep_freed_memory()
