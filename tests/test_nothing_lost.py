"""Paths an outside test found that lost or overwrote data: each one, closed."""

import json
import os
import sqlite3
import stat
import subprocess
import sys

import pytest
from conftest import ROOT, make_demo, run_cli, sqlite_rows, url_of

from emfix import snapshot
from emfix.address import DatabaseAddress
from emfix.backends import open_database
from emfix.cleanup import cleanup_orphans
from emfix.errors import NotExperimentManagerError, OperationInterrupted, UsageError
from emfix.schema import create_schema
from emfix.undo import undo


@pytest.fixture
def demo_db(tmp_path):
    address = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(address)
    return address


def table_rows(path, table):
    con = sqlite3.connect(path)
    try:
        return sorted(con.execute('SELECT * FROM "%s"' % table).fetchall(), key=repr)
    finally:
        con.close()


# -- 1. -o never replaces what it must not ------------------------------------------------------------

@pytest.mark.parametrize("command", [["validate"], ["export", "-e", "1"]])
def test_output_onto_the_database_itself_is_refused(demo_db, command):
    before = open(demo_db.path, "rb").read()
    result = run_cli(command[0], demo_db.path, *command[1:], "-o", demo_db.path)
    assert result.returncode == 2, result.stderr
    assert "refusing to write over" in result.stderr and "Traceback" not in result.stderr
    assert open(demo_db.path, "rb").read() == before


def test_output_onto_a_snapshot_or_quarantine_is_refused(demo_db, tmp_path):
    manifest = snapshot.create_snapshot(demo_db, str(tmp_path / "snaps"))
    snap = os.path.join(str(tmp_path / "snaps"), manifest.file)
    for target in (snap, snap[:-3] + ".json"):
        before = open(target, "rb").read()
        result = run_cli("validate", demo_db.path, "-o", target)
        assert result.returncode == 2 and "refusing to write over" in result.stderr, result.stderr
        assert open(target, "rb").read() == before


def test_output_onto_a_mysql_sql_snapshot_is_refused(demo_db, mysql_address, tmp_path):
    make_demo(mysql_address)
    manifest = snapshot.create_snapshot(mysql_address, str(tmp_path / "snaps"))
    target = os.path.join(str(tmp_path / "snaps"), manifest.file)
    before = open(target, "rb").read()
    result = run_cli("validate", demo_db.path, "-o", target)
    assert result.returncode == 2 and "it is a snapshot (SQL text)" in result.stderr, result.stderr
    assert open(target, "rb").read() == before


def test_output_through_a_symlink_writes_its_target_and_keeps_the_link(demo_db, tmp_path):
    real = tmp_path / "reports" / "report.json"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "latest.json"
    link.symlink_to(real)
    result = run_cli("validate", demo_db.path, "-o", str(link), "-q")
    assert result.returncode == 2 and "refusing to overwrite" in result.stderr and real.read_text() == "old"
    result = run_cli("validate", demo_db.path, "-o", str(link), "-q", "--force")  # a user's file: only with --force
    assert result.returncode == 1, result.stderr
    assert link.is_symlink() and json.loads(real.read_text())["summary"]["overall_status"] == "FAIL"


def test_output_to_a_fifo_or_device_writes_through_and_never_replaces_it(demo_db, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(str(fifo))
    reader = subprocess.Popen([sys.executable, "-c", "import sys; print(len(open(sys.argv[1]).read()))", str(fifo)],
                              stdout=subprocess.PIPE, text=True)
    result = run_cli("export", demo_db.path, "-e", "1", "-o", str(fifo), "-q")
    assert result.returncode == 0, result.stderr
    assert int(reader.communicate(timeout=30)[0]) > 1000
    assert stat.S_ISFIFO(os.stat(str(fifo)).st_mode)
    result = run_cli("validate", demo_db.path, "-o", os.devnull, "-q")
    assert result.returncode == 1 and stat.S_ISCHR(os.stat(os.devnull).st_mode)


# -- 2. snapshots belong to one database ------------------------------------------------------------

def test_restore_never_takes_another_databases_snapshot(demo_db, tmp_path):
    other = DatabaseAddress("sqlite", path=str(tmp_path / "copy.db"))
    make_demo(other, faults=False)
    shared = str(tmp_path / "snapshots")
    snapshot.create_snapshot(other, shared, description="of the copy", verify=True)
    before = sqlite_rows(demo_db.path)
    result = run_cli("snapshot", "restore", demo_db.path, "--snapshot-dir", shared, "--no-safety-snapshot")
    assert result.returncode == 2 and "no valid snapshot" in result.stderr, result.stderr
    theirs = snapshot.list_snapshots(shared)[0].id
    result = run_cli("snapshot", "restore", demo_db.path, "--snapshot-dir", shared, "--snapshot-id", theirs, "--yes")
    assert result.returncode == 2 and "of another database" in result.stderr, result.stderr
    assert sqlite_rows(demo_db.path) == before
    assert snapshot.list_snapshots(shared, demo_db) == []
    result = run_cli("snapshot", "list", demo_db.path, "--snapshot-dir", shared, "--json")
    assert json.loads(result.stdout)["snapshots"] == []


def test_prune_and_doctor_see_only_their_own_databases_snapshots(demo_db, tmp_path):
    other = DatabaseAddress("sqlite", path=str(tmp_path / "copy.db"))
    make_demo(other, faults=False)
    shared = str(tmp_path / "snapshots")
    theirs = [snapshot.create_snapshot(other, shared, verify=True).id for _ in range(2)]
    ours = [snapshot.create_snapshot(demo_db, shared, verify=True).id for _ in range(2)]
    result = snapshot.prune_snapshots(shared, keep=1, address=demo_db)
    assert result.deleted == [ours[0]]
    assert {s.id for s in snapshot.list_snapshots(shared)} == set(theirs) | {ours[1]}
    report = run_cli("doctor", other.path, "--snapshot-dir", shared, "--json")
    found = {f["check"]: f for f in json.loads(report.stdout)["findings"]}
    assert found["last_snapshot"]["details"]["id"] == theirs[1]


def test_the_same_file_by_another_spelling_is_the_same_database(demo_db, tmp_path):
    shared = str(tmp_path / "snapshots")
    made = snapshot.create_snapshot(demo_db, shared, verify=True)
    link = tmp_path / "alias.db"
    link.symlink_to(demo_db.path)
    relative = os.path.relpath(demo_db.path)
    for spelling in (str(link), relative):
        assert [s.id for s in snapshot.list_snapshots(shared, DatabaseAddress("sqlite", path=spelling))] == [made.id]


def test_mysql_snapshots_of_two_databases_in_one_folder_stay_apart(mysql_databases, tmp_path):
    a, b = mysql_databases(), mysql_databases()
    make_demo(a)
    make_demo(b, faults=False)
    folder = str(tmp_path / "snapshots")
    snapshot.create_snapshot(a, folder, verify=True)
    with pytest.raises(UsageError, match="no valid snapshot"):
        snapshot.restore_snapshot(b, folder, "latest-valid", safety_snapshot=False)
    assert len(snapshot.list_snapshots(folder, a)) == 1 and snapshot.list_snapshots(folder, b) == []


# -- 3. latest-valid is never the restore's own safety copy ----------------------------------------------

def test_restoring_latest_valid_twice_does_not_flip_back(demo_db, tmp_path):
    folder = str(tmp_path / "snapshots")
    snapshot.create_snapshot(demo_db, folder, description="good state", verify=True)
    wanted = sqlite_rows(demo_db.path)
    con = sqlite3.connect(demo_db.path)
    con.execute("DELETE FROM METRIC")
    con.commit()
    con.close()
    for _ in range(2):
        result = run_cli("snapshot", "restore", demo_db.path, "--snapshot-dir", folder, "--yes")
        assert result.returncode == 0, result.stderr
        assert "restoring snapshot" in result.stderr
        assert sqlite_rows(demo_db.path) == wanted
    kinds = sorted(s.manifest.kind for s in snapshot.list_snapshots(folder, demo_db))
    assert kinds == ["safety", "safety", "snapshot"]


# -- 4. a freed rowid reused by the application ---------------------------------------------------------

def _add_orphans(path, batch_idx, count, first_metric=1):
    con = sqlite3.connect(path)
    with con:
        ids = [con.execute("INSERT INTO BATCH_METRIC VALUES (?, 0, 1, ?)", (batch_idx, first_metric + n)).lastrowid
               for n in range(count)]
    con.close()
    return ids


def _add_valid_batch_metric(path):
    con = sqlite3.connect(path)
    with con:
        batch = con.execute("SELECT idx, epoch_idx, trial_run_id FROM BATCH LIMIT 1").fetchone()
        metric = con.execute("INSERT INTO METRIC (type, total_val, per_label_val) VALUES ('acc', 0.5, '{}')"
                             ).lastrowid
        rowid = con.execute("INSERT INTO BATCH_METRIC VALUES (?, ?, ?, ?)", batch + (metric,)).lastrowid
    con.close()
    return rowid


def rowids(path, table):
    con = sqlite3.connect(path)
    try:
        return {r[0]: r[1:] for r in con.execute('SELECT rowid, * FROM "%s"' % table)}
    finally:
        con.close()


def test_undo_puts_back_a_row_whose_rowid_the_application_reused(demo_db, tmp_path):
    _add_orphans(demo_db.path, 999999, 3)
    before = rowids(demo_db.path, "BATCH_METRIC")
    result = cleanup_orphans(demo_db, snapshot=False, quarantine_dir=str(tmp_path / "q"))
    assert result.removed["BATCH_METRIC"] >= 3
    freed = set(before) - set(rowids(demo_db.path, "BATCH_METRIC"))
    quarantined = [before[r] for r in freed]
    reused = _add_valid_batch_metric(demo_db.path)
    assert reused in freed  # the scenario: SQLite handed out a freed rowid
    valid_now = set(table_rows(demo_db.path, "BATCH_METRIC"))
    done = undo(result.quarantine)
    assert done.not_restored == {}
    after = set(table_rows(demo_db.path, "BATCH_METRIC"))
    assert set(quarantined) <= after and valid_now <= after


def test_rerun_after_a_kill_keeps_a_new_orphan_under_a_reused_rowid(demo_db, tmp_path):
    _add_orphans(demo_db.path, 999999, 3)
    before = rowids(demo_db.path, "BATCH_METRIC")
    con = sqlite3.connect(demo_db.path)

    def stop_once_they_are_gone():
        return not con.execute("SELECT count(*) FROM BATCH_METRIC WHERE batch_idx = 999999").fetchone()[0]

    with pytest.raises(OperationInterrupted):
        cleanup_orphans(demo_db, snapshot=False, quarantine_dir=str(tmp_path / "q"), batch_size=100000,
                        interrupted=stop_once_they_are_gone, final_validate=False)
    con.close()
    freed = set(before) - set(rowids(demo_db.path, "BATCH_METRIC"))
    newcomer = _add_orphans(demo_db.path, 888888, 1, first_metric=7)[0]
    assert newcomer in freed
    new_row = [r for r in table_rows(demo_db.path, "BATCH_METRIC") if r[0] == 888888]
    result = cleanup_orphans(demo_db, snapshot=False, quarantine_dir=str(tmp_path / "q"))
    assert len(os.listdir(str(tmp_path / "q"))) == 1  # the rerun continued the same quarantine
    assert not [r for r in table_rows(demo_db.path, "BATCH_METRIC") if r[0] == 888888]
    undo(result.quarantine)
    assert set(new_row) <= set(table_rows(demo_db.path, "BATCH_METRIC"))


def test_undo_reports_a_row_whose_key_now_holds_different_content(demo_db, tmp_path):
    result = cleanup_orphans(demo_db, snapshot=False, quarantine_dir=str(tmp_path / "q"))
    con = sqlite3.connect(result.quarantine)
    trial_run = con.execute('SELECT id, trial_id FROM "TRIAL_RUN" LIMIT 1').fetchone()
    con.close()
    con = sqlite3.connect(demo_db.path)
    with con:  # the application wrote a different run under the same id meanwhile
        con.execute("INSERT INTO TRIAL_RUN (id, trial_id, status, start_time, update_time) VALUES "
                    "(?, ?, 'other', '2026-01-01', '2026-01-01')", (trial_run[0], trial_run[1]))
    con.close()
    cli = run_cli("undo", result.quarantine, "--json")
    assert cli.returncode == 1 and "could not be put back" in cli.stderr
    assert json.loads(cli.stdout)["not_restored"] == {"TRIAL_RUN": 1}


# -- 5. resume knows the database, not the spelling -----------------------------------------------------

def test_resume_with_another_spelling_of_src_continues_the_same_copy(demo_db, tmp_path):
    target = str(tmp_path / "dst.db")
    os.chdir(str(tmp_path))
    try:
        first = run_cli("migrate", demo_db.path, target, "-e", "1", "--init", "--strategy", "aggressive", "-q",
                        cwd=str(tmp_path))
        assert first.returncode == 0, first.stderr
        con = sqlite3.connect(target)
        with con:  # as if killed before the end: the journal still says running
            con.execute("UPDATE _emfix_migration SET state = 'running'")
        con.close()
        again = run_cli("migrate", "./" + os.path.basename(demo_db.path), target, "-e", "1", "--resume",
                        "--strategy", "aggressive", "-q", cwd=str(tmp_path))
        assert again.returncode == 0, again.stderr
        con = sqlite3.connect(target)
        assert con.execute("SELECT count(*) FROM EXPERIMENT").fetchone()[0] == 1
        assert con.execute("SELECT count(*) FROM _emfix_migration").fetchone()[0] == 1
        con.close()
    finally:
        os.chdir(ROOT)


def test_resume_without_a_journal_refuses(demo_db, tmp_path):
    target = str(tmp_path / "dst.db")
    result = run_cli("migrate", demo_db.path, target, "-e", "1", "--init", "--resume")
    assert result.returncode == 2 and "nothing to resume" in result.stderr, result.stderr


# -- 6. not the Experiment Manager's database ----------------------------------------------------------

SHOP = ["CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id))",
        "INSERT INTO users VALUES (1, 'a')",
        "INSERT INTO orders VALUES (1, 1), (2, 7), (3, 8)"]


@pytest.fixture
def shop(address):
    with open_database(address, create=True) as db:
        for statement in SHOP:
            if db.dialect == "mysql":
                statement = statement.replace("INTEGER PRIMARY KEY", "INT PRIMARY KEY").replace(
                    "REFERENCES users(id)", ", FOREIGN KEY (user_id) REFERENCES users(id)").replace(
                    "user_id INTEGER ,", "user_id INT,")
                db.execute("SET SESSION FOREIGN_KEY_CHECKS = 0")
            db.execute(statement)
    return address


@pytest.mark.parametrize("command", [["cleanup-orphans", "--yes", "--no-snapshot"], ["optimize"], ["validate"],
                                     ["fix-json", "--yes", "--no-snapshot"]])
def test_repairs_refuse_a_database_that_is_not_the_experiment_managers(shop, command, tmp_path):
    result = run_cli(command[0], url_of(shop), *command[1:], "--quarantine-dir", str(tmp_path)) \
        if command[0] in ("cleanup-orphans", "fix-json") else run_cli(command[0], url_of(shop), *command[1:])
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "not an Experiment Manager database" in result.stderr and "--force" in result.stderr
    with open_database(shop, readonly=True) as db:
        assert db.scalar("SELECT count(*) FROM orders") == 3
        assert len(db.indexes("orders")) == (1 if db.dialect == "sqlite" else 2) or db.dialect == "sqlite"


def test_cleanup_with_force_works_on_any_schema(shop, tmp_path):
    with pytest.raises(NotExperimentManagerError):
        cleanup_orphans(shop, snapshot=False, quarantine_dir=str(tmp_path))
    result = cleanup_orphans(shop, snapshot=False, quarantine_dir=str(tmp_path), force=True)
    assert result.removed == {"orders": 2}


# -- 7. a live writer in rollback-journal mode -------------------------------------------------------

WRITER = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
con.execute("PRAGMA journal_mode=DELETE")
print("writing", flush=True)
while True:
    con.execute("BEGIN IMMEDIATE")
    con.execute("INSERT INTO ARTIFACT (type, loc) VALUES ('x', 'y')")
    con.execute("COMMIT")
    time.sleep(0.001)  # an application between two writes (a tight loop starves every reader of rollback mode)
"""


@pytest.mark.parametrize("command", [["validate"], ["doctor"], ["snapshot", "create"],
                                     ["export", "-e", "1", "--force", "-o"]])
def test_read_only_commands_work_beside_a_live_writer(demo_db, tmp_path, command):
    writer = subprocess.Popen([sys.executable, "-c", WRITER, demo_db.path], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "writing"
        for n in range(2):
            args = list(command)
            if args[-1] == "-o":
                args.append(str(tmp_path / ("e%d.jsonl" % n)))
            result = run_cli(args[0], *args[1:2] if args[0] == "snapshot" else (), demo_db.path,
                             *args[2:] if args[0] == "snapshot" else args[1:], "-q")
            assert "Traceback" not in result.stderr, result.stderr
            assert result.returncode in {"validate": (1,), "doctor": (0, 1)}.get(args[0], (0,)), result.stderr
    finally:
        writer.kill()
        writer.wait()


@pytest.mark.parametrize("command", [["validate"], ["doctor"], ["snapshot", "create"],
                                     ["export", "-e", "1", "--force", "-o"]])
def test_a_writer_that_never_pauses_gives_exit_3_naming_it_never_a_traceback(demo_db, tmp_path, command):
    tight = WRITER.replace("    time.sleep(0.001)", "")
    writer = subprocess.Popen([sys.executable, "-c", tight, demo_db.path], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "writing"
        for _ in range(2):
            args = [a if a != "-o" else "-o=%s" % (tmp_path / "e.jsonl") for a in command]
            result = run_cli(*args[:len(args) if args[0] != "snapshot" else 2], demo_db.path,
                             *(args[2:] if args[0] == "snapshot" else []), "-q", "--lock-timeout", "1")
            assert "Traceback" not in result.stderr, result.stderr
            if result.returncode == 3:
                assert "held by pid %d" % writer.pid in result.stderr, result.stderr
            else:
                assert result.returncode in (0, 1), result.stderr
    finally:
        writer.kill()
        writer.wait()


def test_a_lock_held_past_the_timeout_is_exit_3_naming_the_holder(demo_db):
    from conftest import hold_write_lock
    holder = hold_write_lock(demo_db.path, 30)
    try:
        result = run_cli("validate", demo_db.path, "--lock-timeout", "1")
        assert result.returncode == 3, result.stderr
        assert "pid %d" % holder.pid in result.stderr and "Traceback" not in result.stderr
    finally:
        holder.kill()
        holder.wait()


# -- 8. init killed between CREATE and INSERT on MySQL -------------------------------------------------

def test_init_writes_the_schema_version_row_whenever_it_is_missing(address):
    with open_database(address, create=True) as db:
        create_schema(db)
        db.execute("DELETE FROM %s" % db.quote("SCHEMA_VERSION"))  # as a kill after MySQL's CREATE left it
    result = run_cli("init", url_of(address))
    assert result.returncode == 0, result.stderr
    with open_database(address, readonly=True) as db:
        assert db.scalar("SELECT count(*) FROM %s" % db.quote("SCHEMA_VERSION")) == 1


# -- 10. a closed pipe never turns a FAIL into 0 -------------------------------------------------------

def test_a_closed_stdout_keeps_the_exit_code(demo_db):
    shell = subprocess.run(["bash", "-c", 'python3 -m emfix validate "$1" | head -1 >/dev/null; '
                            'echo "${PIPESTATUS[0]}"', "-", demo_db.path], capture_output=True, text=True,
                           env=dict(os.environ, PYTHONPATH=ROOT))
    assert shell.stdout.strip() == "1", shell.stderr
    assert "Traceback" not in shell.stderr


# -- 11. files that hold data are private -----------------------------------------------------------------

def test_files_holding_data_are_private(demo_db, tmp_path):
    qdir = tmp_path / "q"
    qdir.mkdir(mode=0o755)
    os.umask(0o022)
    assert run_cli("cleanup-orphans", demo_db.path, "--yes", "--no-snapshot", "--quarantine-dir", str(qdir),
                   "-q").returncode in (0, 1)
    report = tmp_path / "report.json"
    run_cli("validate", demo_db.path, "-o", str(report), "-q")
    made = run_cli("migrate", demo_db.path, str(tmp_path / "dst.db"), "-e", "1", "--init", "--strategy",
                   "aggressive", "-q")
    assert made.returncode == 0, made.stderr
    files = [str(p) for p in qdir.iterdir()] + [str(report), str(tmp_path / "dst.db")]
    for path in files:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path


def test_output_to_dev_stdout_writes_through_the_pipe(demo_db):
    result = run_cli("export", demo_db.path, "-e", "1", "-o", "/dev/stdout")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('{"header"')
