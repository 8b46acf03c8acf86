"""The guarded-change engine under attack, on SQLite and MariaDB, for every repair that rewrites or
removes rows: (a) a second process writes the same rows throughout the run and the undo, and none of
its writes is lost; (b) a kill at each step of a batch, then a rerun, ends exactly where an
uninterrupted run ends, and undo goes back bit for bit; (c) the same command twice applies nothing
twice; (d) undo from another folder beside a file of the same name touches only the right database.
"""

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time

import pytest
from conftest import ROOT, make_demo, run_cli, url_of

from emfix.backends import open_database

WRITER = r'''
import json, os, random, sys, time
url, config, log_path, stop_path = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
pause_path = stop_path + ".pause"
table, column, ids, values = config["table"], config["column"], config["ids"], config.get("values")
if url.startswith("mysql://"):
    import mysql.connector
    user, rest = url[len("mysql://"):].split("@")
    hostport, database = rest.split("/")
    host, port = hostport.split(":")
    con = mysql.connector.connect(host=host, port=int(port), user=user, database=database, autocommit=True)
    mark, quote = "%s", "`"
else:
    import sqlite3
    con = sqlite3.connect(url, timeout=60, isolation_level=None)
    mark, quote = "?", '"'
rng = random.Random(config["seed"])
log = open(log_path, "a")
deadline = time.monotonic() + 90  # bounded, whatever happens to the test
mine, n = [], 0
print("ready", flush=True)
while not os.path.exists(stop_path) and time.monotonic() < deadline:
    if os.path.exists(pause_path):  # the test reads the database and the log: both must be still
        open(pause_path + ".ack", "w").close()
        while os.path.exists(pause_path) and time.monotonic() < deadline:
            time.sleep(0.001)
        os.remove(pause_path + ".ack")
    n += 1
    cur = con.cursor()
    action = rng.random()
    if not config.get("inserts") or action < 0.8 or not mine:
        target = rng.choice(ids)
        value = rng.choice(values) if values else json.dumps({"w": n})
        cur.execute("UPDATE %s%s%s SET %s%s%s = %s WHERE id = %s" % (quote, table, quote, quote, column, quote,
                                                                   mark, mark), (value, target))
        if cur.rowcount == 1:
            log.write(json.dumps(["U", target, value]) + "\n")
    elif action < 0.9:
        value = json.dumps({"w": n})
        cur.execute("INSERT INTO METRIC (type, total_val, per_label_val) VALUES ('w', 0.5, %s)" % mark, (value,))
        mine.append(cur.lastrowid)
        log.write(json.dumps(["I", cur.lastrowid, value]) + "\n")
    else:
        victim = mine.pop(rng.randrange(len(mine)))
        cur.execute("DELETE FROM METRIC WHERE id = %s" % mark, (victim,))
        log.write(json.dumps(["D", victim, None]) + "\n")
    log.flush()
    cur.close()
    time.sleep(0.002)  # a busy application, not a lock hog
'''


class Writer:
    """A second process writing `column` of `table` for rows `ids` until stopped; each committed write
    is logged, so the test knows the last value every row was given."""

    def __init__(self, address, tmp_path, table, column, ids, values=None, inserts=False, seed=0):
        self.log = str(tmp_path / "writer.log")
        self.stop_file = str(tmp_path / "writer.stop")
        config = {"table": table, "column": column, "ids": ids, "values": values, "inserts": inserts, "seed": seed}
        self.proc = subprocess.Popen([sys.executable, "-c", WRITER, url_of(address), json.dumps(config), self.log,
                                      self.stop_file], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    def writes(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as handle:
            return [json.loads(line) for line in handle if line.endswith("\n")]

    @contextlib.contextmanager
    def paused(self):
        """The writer between two writes, each logged: the database and the log agree meanwhile."""
        pause = self.stop_file + ".pause"
        open(pause, "w").close()
        try:
            while not os.path.exists(pause + ".ack"):
                if self.proc.poll() is not None:
                    break  # it stopped on its own: still, nothing more will be written
                time.sleep(0.001)
            yield
        finally:
            if os.path.exists(pause):  # a pause inside a pause: the inner one ended it
                os.remove(pause)

    def stop(self):
        open(self.stop_file, "w").close()
        self.proc.wait(timeout=120)

    def last_values(self):
        """{id: the value the writer last wrote} for rows it still has (deleted ones map to None)."""
        last = {}
        for action, key, value in self.writes():
            last[key] = None if action == "D" else value
        return last


def values_of(address, table, column):
    with open_database(address) as db:
        return dict(db.query("SELECT id, %s FROM %s" % (db.quote(column), db.quote(table))))


def lost_writes(address, writer, table="METRIC", column="per_label_val", kept=None):
    """The writer's writes the database no longer holds (a row emfix removed counts as kept when its
    quarantined copy holds the writer's value), compared while the writer is paused."""
    pause = writer.paused() if hasattr(writer, "paused") else contextlib.nullcontext()
    with pause:
        now = values_of(address, table, column)
        last = writer.last_values()
    lost = []
    for key, value in last.items():
        if value is None:
            if key in now:
                lost.append((key, "deleted by the writer, back again"))
        elif key in now and str(now[key]) == str(value):
            continue
        elif key not in now and kept is not None and str(kept.get(key)) == str(value):
            continue
        else:
            lost.append((key, value, now.get(key)))
    return lost


def damaged_metrics(address, every=2):
    """The demo, with every `every`-th metric value written as a Python repr (fix-json's work)."""
    make_demo(address)
    with open_database(address) as db, db.transaction():
        concat = ("CONCAT('{''acc'': 0.5047, ''n'': ', id, '}')" if db.dialect == "mysql"
                  else "'{''acc'': 0.5047, ''n'': ' || id || '}'")
        db.execute("UPDATE METRIC SET per_label_val = %s WHERE id %% %d = 0" % (concat, every))
        return [r[0] for r in db.query("SELECT id FROM METRIC WHERE id %% %d = 0" % every)]


def labelled_metrics(address):
    """The demo, every metric holding an `acc` label for transform-metrics' rule."""
    make_demo(address)
    with open_database(address) as db, db.transaction():
        concat = ("CONCAT('{\"acc\": 0.5047, \"n\": ', id, '}')" if db.dialect == "mysql"
                  else "'{\"acc\": 0.5047, \"n\": ' || id || '}'")
        db.execute("UPDATE METRIC SET per_label_val = %s" % concat)
        return [r[0] for r in db.query("SELECT id FROM METRIC")]


def rules_file(tmp_path):
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"acc": "normalize"}))
    return str(path)


def repair_args(command, address, tmp_path, batch="2"):
    args = [command, url_of(address), "--yes", "--json", "--batch-size", batch,
            "--quarantine-dir", str(tmp_path / "q"), "--snapshot-dir", str(tmp_path / "snaps")]
    if command == "transform-metrics":
        args += ["--rules", rules_file(tmp_path)]
    return args


def quarantine_of(stdout):
    return json.loads(stdout)["quarantine"]


# -- (a) a second process writes the same rows throughout ------------------------------------------

@pytest.mark.parametrize("command", ["fix-json", "transform-metrics"])
def test_value_repairs_and_their_undo_lose_no_write_of_a_concurrent_writer(address, tmp_path, command):
    ids = damaged_metrics(address) if command == "fix-json" else labelled_metrics(address)
    original = values_of(address, "METRIC", "per_label_val")
    writer = Writer(address, tmp_path, "METRIC", "per_label_val", ids, inserts=True, seed=7)
    try:
        before = len(writer.writes())
        result = run_cli(*repair_args(command, address, tmp_path))
        during = len(writer.writes()) - before
        assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr
        quarantine = quarantine_of(result.stdout)
        with writer.paused():
            assert lost_writes(address, writer) == []
        undone = run_cli("undo", quarantine, "--json")
        assert undone.returncode in (0, 1) and "Traceback" not in undone.stderr, undone.stderr
    finally:
        writer.stop()
    assert during > 0, "the writer made no write while the repair ran"
    assert lost_writes(address, writer) == []
    # Every value the writer never touched is back as it was, bit for bit.
    touched = set(writer.last_values())
    now = values_of(address, "METRIC", "per_label_val")
    assert {k: v for k, v in now.items() if k not in touched} == {k: v for k, v in original.items() if k not in touched}


def kept_trial_ids(quarantine):
    """{TRIAL_RUN id: trial_id} as the quarantine keeps the runs a cleanup removed ({} when it kept none)."""
    con = sqlite3.connect(quarantine)
    try:
        if not con.execute("SELECT 1 FROM sqlite_master WHERE name = 'TRIAL_RUN'").fetchone():
            return {}
        return dict(con.execute("SELECT id, trial_id FROM TRIAL_RUN").fetchall())
    finally:
        con.close()


def doomed_runs(address, tmp_path):
    """The TRIAL_RUN ids an uninterrupted cleanup removes (found on a copy)."""
    if address.is_sqlite:
        copy = tmp_path / "copy.db"
        shutil.copy(address.path, str(copy))
        before = set(values_of(address, "TRIAL_RUN", "status"))
        run_cli("cleanup-orphans", str(copy), "--yes", "--no-snapshot", "--quarantine-dir", str(tmp_path / "cq"))
        from emfix.address import DatabaseAddress
        return sorted(before - set(values_of(DatabaseAddress("sqlite", path=str(copy)), "TRIAL_RUN", "status")))
    with open_database(address) as db:
        return [r[0] for r in db.query("SELECT r.id FROM TRIAL_RUN r LEFT JOIN TRIAL t ON t.id = r.trial_id "
                                       "LEFT JOIN EXPERIMENT e ON e.id = t.experiment_id "
                                       "WHERE t.id IS NULL OR e.id IS NULL")]


def test_cleanup_and_its_undo_lose_no_write_of_a_concurrent_writer(address, tmp_path):
    make_demo(address)
    runs = doomed_runs(address, tmp_path)
    assert runs
    with open_database(address) as db:
        live_trials = [str(r[0]) for r in db.query("SELECT id FROM TRIAL")]
    # Some writes edit a doomed run, some re-parent it under a live trial (it is no orphan any more).
    orphan_parents = ["999991", "999992", "999993", "999994", "999995", "999996", "999997"]
    writer = Writer(address, tmp_path, "TRIAL_RUN", "trial_id", runs, values=orphan_parents + live_trials[:1], seed=3)
    try:
        result = run_cli("cleanup-orphans", url_of(address), "--yes", "--json", "--batch-size", "1",
                         "--quarantine-dir", str(tmp_path / "q"), "--no-snapshot")
        assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr
        quarantine = quarantine_of(result.stdout)
        kept = kept_trial_ids(quarantine)
        with writer.paused():
            assert lost_writes(address, writer, "TRIAL_RUN", "trial_id", kept) == []
        undone = run_cli("undo", quarantine, "--json")
        assert undone.returncode in (0, 1) and "Traceback" not in undone.stderr, undone.stderr
    finally:
        writer.stop()
    assert lost_writes(address, writer, "TRIAL_RUN", "trial_id") == []


# -- (b) killed at each step of a batch, then run again ------------------------------------------------

def digest(address):
    """Every table's rows, exactly (FLOAT read as the double that holds it)."""
    with open_database(address) as db:
        tables = [t for t in db.tables() if not t.lower().startswith(("_emfix", "sqlite"))]
        out = {}
        for table in tables:
            columns = db.columns(table)
            rows = db.query("SELECT %s FROM %s" % (db.exact_columns(table, columns), db.quote(table)))
            out[table] = sorted((repr(r) for r in rows))
        return out


def copy_database(address, tmp_path, mysql_databases, name):
    if address.is_sqlite:
        from emfix.address import DatabaseAddress
        path = str(tmp_path / ("%s.db" % name))
        shutil.copy(address.path, path)
        return DatabaseAddress("sqlite", path=path)
    other = mysql_databases()
    from emfix.snapshot import create_snapshot, restore_snapshot
    manifest = create_snapshot(address, str(tmp_path / ("copy-" + name)))
    restore_snapshot(other, str(tmp_path / ("copy-" + name)), manifest.id, safety_snapshot=False,
                     allow_other_database=True)
    return other


KILLS = [("fix-json", "kept:2"), ("fix-json", "written:3"), ("fix-json", "keeping:2"), ("transform-metrics", "kept:1"),
         ("transform-metrics", "written:4"), ("transform-metrics", "keeping:3"), ("cleanup-orphans", "staged:1"),
         ("cleanup-orphans", "written:2")]


@pytest.mark.parametrize("command,kill_at", KILLS)
def test_a_kill_at_each_step_then_a_rerun_ends_where_one_run_ends(address, tmp_path, request, command, kill_at):
    if command == "transform-metrics":
        labelled_metrics(address)
    else:
        damaged_metrics(address)
    databases = request.getfixturevalue("mysql_databases") if not address.is_sqlite else None
    reference = copy_database(address, tmp_path, databases, "reference")
    original = digest(address)
    args = repair_args(command, address, tmp_path)
    killed = run_cli(*args, env={"EMFIX_TEST_KILL_AT": kill_at})
    assert killed.returncode == -9, (killed.returncode, killed.stderr)
    rerun = run_cli(*args)
    assert rerun.returncode in (0, 1) and "Traceback" not in rerun.stderr, rerun.stderr
    # The rerun finished the killed run's quarantine (a kill inside its transaction leaves a hot journal
    # there): one file, so one undo puts everything back and no rule is applied twice.
    assert len([f for f in os.listdir(str(tmp_path / "q")) if f.endswith(".quarantine.db")]) == 1
    (tmp_path / "ref").mkdir()
    once = run_cli(*repair_args(command, reference, tmp_path / "ref"))
    assert once.returncode in (0, 1), once.stderr
    assert digest(address) == digest(reference)
    undone = run_cli("undo", quarantine_of(rerun.stdout))
    assert undone.returncode == 0, undone.stderr
    assert digest(address) == original


def test_an_undo_killed_midway_is_finished_by_running_it_again(address, tmp_path):
    damaged_metrics(address)
    original = digest(address)
    done = run_cli(*repair_args("fix-json", address, tmp_path))
    quarantine = quarantine_of(done.stdout)
    killed = run_cli("undo", quarantine, "--batch-size", "10", env={"EMFIX_TEST_KILL_AT": "undone:2"})
    assert killed.returncode == -9
    again = run_cli("undo", quarantine)
    assert again.returncode == 0, again.stderr
    assert digest(address) == original


# -- (c) the same command twice ------------------------------------------------------------------------

def test_the_same_transform_twice_is_refused_and_applies_nothing_twice(address, tmp_path):
    labelled_metrics(address)
    first = run_cli(*repair_args("transform-metrics", address, tmp_path, batch="100"))
    assert first.returncode == 0, first.stderr
    after_first = digest(address)
    second = run_cli(*repair_args("transform-metrics", address, tmp_path, batch="100"))
    assert second.returncode == 2 and "already ran" in second.stderr and "--force" in second.stderr, second.stderr
    assert digest(address) == after_first
    # Undone, the same rules may run again; --force applies them on top on purpose.
    assert run_cli("undo", quarantine_of(first.stdout)).returncode == 0
    assert run_cli(*repair_args("transform-metrics", address, tmp_path, batch="100")).returncode == 0
    forced = run_cli(*repair_args("transform-metrics", address, tmp_path, batch="100"), "--force")
    assert forced.returncode == 0, forced.stderr


@pytest.mark.parametrize("command", ["fix-json", "cleanup-orphans"])
def test_a_second_run_of_a_finished_repair_changes_nothing(address, tmp_path, command):
    damaged_metrics(address)
    first = run_cli(*repair_args(command, address, tmp_path, batch="100"))
    assert first.returncode in (0, 1), first.stderr
    after_first = digest(address)
    second = run_cli(*repair_args(command, address, tmp_path, batch="100"))
    assert second.returncode in (0, 1) and "Traceback" not in second.stderr, second.stderr
    assert digest(address) == after_first


# -- (d) undo from another folder ------------------------------------------------------------------------

def test_undo_from_another_folder_beside_a_same_named_file_changes_only_the_right_database(tmp_path):
    from emfix.address import DatabaseAddress
    home = tmp_path / "home"
    elsewhere = tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    ours = DatabaseAddress("sqlite", path=str(home / "experiment.db"))
    damaged_metrics(ours)
    original = digest(ours)
    theirs = DatabaseAddress("sqlite", path=str(elsewhere / "experiment.db"))
    make_demo(theirs)
    untouched = open(theirs.path, "rb").read()
    # The repair is run the way a user would: from the database's folder, by a relative name.
    done = run_cli("fix-json", "experiment.db", "--yes", "--json", "--no-snapshot", cwd=str(home))
    quarantine = os.path.join(str(home), quarantine_of(done.stdout))
    undone = run_cli("undo", quarantine, cwd=str(elsewhere))
    assert undone.returncode == 0, undone.stderr
    assert digest(ours) == original
    assert open(theirs.path, "rb").read() == untouched
    # Naming the other file is refused, and changes nothing.
    again = run_cli(*repair_args("fix-json", ours, tmp_path))
    refused = run_cli("undo", quarantine_of(again.stdout), "-d", "experiment.db", cwd=str(elsewhere))
    assert refused.returncode == 2 and "came from" in refused.stderr, refused.stderr
    assert open(theirs.path, "rb").read() == untouched


def test_undo_into_another_mysql_database_is_refused(mysql_databases, tmp_path):
    ours, theirs = mysql_databases(), mysql_databases()
    damaged_metrics(ours)
    make_demo(theirs)
    before = digest(theirs)
    done = run_cli(*repair_args("fix-json", ours, tmp_path))
    refused = run_cli("undo", quarantine_of(done.stdout), "-d", url_of(theirs))
    assert refused.returncode == 2 and "came from" in refused.stderr, refused.stderr
    assert digest(theirs) == before


def test_root_is_importable_for_the_writer():
    assert os.path.isdir(os.path.join(ROOT, "emfix"))


# -- a damaged file is never acted on -------------------------------------------------------------------

@pytest.mark.parametrize("command", [
    ["cleanup-orphans", "--yes", "--no-snapshot"], ["fix-json", "--yes", "--no-snapshot"],
    ["transform-metrics", "--yes", "--no-snapshot", "--rules", "RULES"], ["export", "-e", "1", "-o", "OUT"],
    ["optimize"], ["check-hierarchy"]])
def test_a_file_quick_check_rejects_is_exit_4_and_left_as_it_is(tmp_path, command):
    from emfix.address import DatabaseAddress
    damaged = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(damaged)
    size = os.path.getsize(damaged.path)
    with open(damaged.path, "r+b") as handle:
        handle.truncate(size - 1024)
    before = open(damaged.path, "rb").read()
    args = [a.replace("RULES", rules_file(tmp_path)).replace("OUT", str(tmp_path / "out.jsonl")) for a in command]
    result = run_cli(args[0], damaged.path, *args[1:])
    assert result.returncode == 4 and "is damaged" in result.stderr, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    assert open(damaged.path, "rb").read() == before
    assert not os.path.exists(str(tmp_path / "out.jsonl"))
    assert not os.path.isdir(str(tmp_path / "quarantine")) or os.listdir(str(tmp_path / "quarantine")) == []


def test_a_recreate_parents_dry_run_on_mariadb_commits_nothing(mysql_address):
    """On MySQL a CREATE INDEX commits the open transaction, even on a temporary table: the dry run's
    parents, created to see the plan they make and rolled back, must not survive it."""
    make_demo(mysql_address)
    before = digest(mysql_address)
    result = run_cli("cleanup-orphans", url_of(mysql_address), "--recreate-parents", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["plan"]["recreate"], "the demo has parents to recreate"
    assert digest(mysql_address) == before


def test_mysql_snapshots_and_quarantines_live_in_one_place_whatever_the_working_directory(mysql_address, tmp_path):
    """A cron job started from elsewhere finds them: one folder per host:port/database under
    $XDG_STATE_HOME/emfix, never ./snapshots or ./quarantine of the current directory."""
    damaged_metrics(mysql_address)
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    done = run_cli("fix-json", url_of(mysql_address), "--yes", "--json", cwd=str(here))
    assert done.returncode in (0, 1), done.stderr
    quarantine = quarantine_of(done.stdout)
    home = os.path.join(str(tmp_path / "state"), "emfix", "mysql")
    assert quarantine.startswith(home) and os.listdir(str(here)) == []
    listed = run_cli("snapshot", "list", url_of(mysql_address), "--json", cwd=str(there))
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout), "the safety snapshot is found from another folder"


def test_value_repairs_reach_keys_of_any_size(tmp_path):
    """Keys past ±2**62, up to the largest a BIGINT or SQLite rowid holds, are repaired too."""
    from emfix.address import DatabaseAddress
    address = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(address)
    con = sqlite3.connect(address.path)
    with con:
        for ident in (-(1 << 63), (1 << 63) - 1, 1 << 62, -(1 << 62) - 1):
            con.execute("INSERT INTO METRIC (id, type, total_val, per_label_val) VALUES (?, 'x', 0.5, ?)",
                        (ident, "{'acc': 0.5, 'n': 1}"))
    con.close()
    fixed = run_cli("fix-json", address.path, "--yes", "--json", "--no-snapshot", "--batch-size", "3")
    assert fixed.returncode in (0, 1), fixed.stderr
    values = values_of(address, "METRIC", "per_label_val")
    for ident in (-(1 << 63), (1 << 63) - 1, 1 << 62, -(1 << 62) - 1):
        assert values[ident] == '{"acc": 0.5, "n": 1}', (ident, values[ident])
    rules = rules_file(tmp_path)
    changed = run_cli("transform-metrics", address.path, "--rules", rules, "--yes", "--json", "--no-snapshot")
    assert changed.returncode == 0, changed.stderr
    values = values_of(address, "METRIC", "per_label_val")
    for ident in (-(1 << 63), (1 << 63) - 1, 1 << 62, -(1 << 62) - 1):
        assert values[ident] == '{"acc": 0.005, "n": 1}', (ident, values[ident])


# -- what an outside attack found ------------------------------------------------------------------------

def _doomed_epoch(address):
    with open_database(address) as db:
        return db.query("SELECT e.idx, e.trial_run_id FROM EPOCH e LEFT JOIN TRIAL_RUN r ON r.id = e.trial_run_id "
                        "WHERE r.id IS NULL ORDER BY e.trial_run_id, e.idx")[0]


def test_undo_never_brings_back_a_row_another_process_deleted_during_the_cleanup(address, tmp_path):
    """Staged and quarantined, then deleted by someone else before emfix's own delete: not emfix's to put
    back. (A kill after staging, the delete, then the rerun.)"""
    make_demo(address)
    idx, run = _doomed_epoch(address)
    args = ["cleanup-orphans", url_of(address), "--yes", "--json", "--no-snapshot", "--quarantine-dir",
            str(tmp_path / "q"), "--batch-size", "5"]
    killed = run_cli(*args, env={"EMFIX_TEST_KILL_AT": "kept:1"})
    assert killed.returncode == -9, killed.stderr
    with open_database(address) as db:
        db.foreign_key_checks(False)  # the application's delete, whatever hangs below the row
        with db.transaction():
            assert db.execute("DELETE FROM EPOCH WHERE idx = ? AND trial_run_id = ?", (idx, run)) == 1
    done = run_cli(*args)
    assert done.returncode in (0, 1), done.stderr
    undone = run_cli("undo", quarantine_of(done.stdout))
    assert undone.returncode == 0, undone.stderr
    with open_database(address) as db:
        assert db.query("SELECT 1 FROM EPOCH WHERE idx = ? AND trial_run_id = ?", (idx, run)) == []


def test_undo_after_a_killed_cleanup_puts_back_the_version_it_removed(address, tmp_path):
    """A killed run kept a row it never removed; the application changed it; the rerun removed the changed
    row: undo puts back that one, not the old copy."""
    make_demo(address)
    runs = doomed_runs(address, tmp_path)
    args = ["cleanup-orphans", url_of(address), "--yes", "--json", "--no-snapshot", "--quarantine-dir",
            str(tmp_path / "q"), "--batch-size", "5"]
    killed = run_cli(*args, env={"EMFIX_TEST_KILL_AT": "kept:1"})
    assert killed.returncode == -9, killed.stderr
    with open_database(address) as db, db.transaction():
        db.execute("UPDATE TRIAL_RUN SET status = 'CHANGED-BY-USER' WHERE id = ?", (runs[0],))
    done = run_cli(*args)
    assert done.returncode in (0, 1), done.stderr
    undone = run_cli("undo", quarantine_of(done.stdout))
    assert undone.returncode == 0, undone.stderr
    assert values_of(address, "TRIAL_RUN", "status")[runs[0]] == "CHANGED-BY-USER"


def cleanup_recreating_parents(address, tmp_path, table):
    """cleanup-orphans --recreate-parents on the demo: (its output, the keys of the `table` rows it created)."""
    make_demo(address)
    done = run_cli("cleanup-orphans", address.path, "--yes", "--json", "--no-snapshot", "--recreate-parents",
                   "--quarantine-dir", str(tmp_path / "q"))
    assert done.returncode == 0, done.stderr
    kept = sqlite3.connect(quarantine_of(done.stdout))
    keys = [json.loads(k) for (k,) in kept.execute("SELECT key_json FROM _emfix_created WHERE table_name = ?",
                                                    (table,))]
    kept.close()
    return done, keys


def test_undo_leaves_a_created_parent_the_application_changed(sqlite_address, tmp_path):
    done, keys = cleanup_recreating_parents(sqlite_address, tmp_path, "RESULTS")
    created = [k["trial_run_id"] for k in keys]
    assert created, "the demo has RESULTS rows to create"
    con = sqlite3.connect(sqlite_address.path)
    with con:
        changed = con.execute("UPDATE RESULTS SET time = 'APP WROTE THIS' WHERE trial_run_id = ?",
                              (created[0],)).rowcount
    con.close()
    assert changed == 1
    undone = run_cli("undo", quarantine_of(done.stdout), "--json")
    assert undone.returncode == 1 and "could not be put back" in undone.stderr, undone.stderr
    con = sqlite3.connect(sqlite_address.path)
    assert con.execute("SELECT count(*) FROM RESULTS WHERE time = 'APP WROTE THIS'").fetchone()[0] == changed
    con.close()


def test_an_import_beside_an_application_inserting_rows_finishes_and_loses_none_of_them(address, tmp_path):
    """The ids an import moves its rows to are reserved first: the application's own inserts go above them
    (they collided: a UNIQUE/duplicate-key traceback, and --resume failed the same way)."""
    make_demo(address)
    exported = str(tmp_path / "e1.jsonl")
    assert run_cli("export", url_of(address), "-e", "1", "-o", exported).returncode == 0
    with open_database(address) as db:
        ids = [r[0] for r in db.query("SELECT id FROM METRIC ORDER BY id LIMIT 20")]
    writer = Writer(address, tmp_path, "METRIC", "per_label_val", ids, inserts=True, seed=11)
    try:
        done = run_cli("import", url_of(address), exported, "--force", "--json")
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        assert lost_writes(address, writer) == []
    finally:
        writer.stop()
    assert lost_writes(address, writer) == []


def test_rows_the_application_inserts_while_an_import_is_interrupted_keep_their_ids(address, tmp_path):
    make_demo(address)
    exported = str(tmp_path / "e1.jsonl")
    assert run_cli("export", url_of(address), "-e", "1", "-o", exported).returncode == 0
    killed = run_cli("import", url_of(address), exported, "--force", env={"EMFIX_TEST_KILL_AT": "journaled:1"})
    assert killed.returncode == -9, killed.stderr
    with open_database(address) as db, db.transaction():  # the application goes on meanwhile
        for n in range(5):
            db.execute("INSERT INTO METRIC (type, total_val, per_label_val) VALUES ('app', 0.5, ?)", ('{"n": %d}' % n,))
        mine = db.query("SELECT id, per_label_val FROM METRIC WHERE type = 'app'")
    done = run_cli("import", url_of(address), exported, "--resume")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    with open_database(address) as db:
        assert db.query("SELECT id, per_label_val FROM METRIC WHERE type = 'app'") == mine


def test_a_sqlite_restore_beside_a_writer_loses_none_of_its_writes(sqlite_address, tmp_path):
    """Each write lands in the safety snapshot (before) or in the restored database (after): the safety
    snapshot and the restore happen under one write lock."""
    make_demo(sqlite_address)
    snaps = str(tmp_path / "snaps")
    made = run_cli("snapshot", "create", sqlite_address.path, "--snapshot-dir", snaps, "--json")
    snapshot_id = json.loads(made.stdout)["id"]
    with open_database(sqlite_address) as db:
        ids = [r[0] for r in db.query("SELECT id FROM METRIC ORDER BY id LIMIT 20")]
    writer = Writer(sqlite_address, tmp_path, "METRIC", "per_label_val", ids, inserts=True, seed=5)
    try:
        restored = run_cli("snapshot", "restore", sqlite_address.path, "--snapshot-dir", snaps, "--snapshot-id",
                           snapshot_id, "--yes", "--json")
        assert restored.returncode == 0, restored.stderr
        safety = json.loads(restored.stdout)["safety_snapshot_id"]
    finally:
        writer.stop()
    from emfix.address import DatabaseAddress
    kept = DatabaseAddress("sqlite", path=os.path.join(snaps, safety + ".db"))
    now, before = values_of(sqlite_address, "METRIC", "per_label_val"), values_of(kept, "METRIC", "per_label_val")
    written = [(k, v) for k, v in writer.last_values().items() if v is not None]
    assert written
    assert [(k, v) for k, v in written if now.get(k) != v and before.get(k) != v] == []


def test_an_undo_killed_then_run_again_never_puts_back_a_row_deleted_in_between(address, tmp_path):
    make_demo(address)
    done = run_cli("cleanup-orphans", url_of(address), "--yes", "--json", "--no-snapshot", "--quarantine-dir",
                   str(tmp_path / "q"))
    quarantine = quarantine_of(done.stdout)
    killed = run_cli("undo", quarantine, "--batch-size", "5", env={"EMFIX_TEST_KILL_AT": "undone:2"})
    assert killed.returncode == -9, killed.stderr
    kept = sqlite3.connect(quarantine)
    tables = [r[0] for r in kept.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                                         "'\\_emfix\\_%' ESCAPE '\\'")]
    table, victim = next((t, row) for t in tables for row in kept.execute(
        "SELECT * FROM \"%s\" WHERE _emfix_deleted = 2 LIMIT 1" % t))  # one the first undo put back
    names = [r[1] for r in kept.execute("PRAGMA table_info(\"%s\")" % table) if not r[1].startswith("_emfix")]
    values = dict(zip([r[1] for r in kept.execute("PRAGMA table_info(\"%s\")" % table)], victim))
    kept.close()
    with open_database(address) as db:  # the application deletes it again
        db.foreign_key_checks(False)
        where = " AND ".join("%s = ?" % db.quote(c) for c in names if values[c] is not None)
        params = tuple(values[c] for c in names if values[c] is not None)
        with db.transaction():
            assert db.execute("DELETE FROM %s WHERE %s" % (db.quote(table), where), params) == 1
    again = run_cli("undo", quarantine)
    assert again.returncode in (0, 1), again.stderr
    with open_database(address) as db:
        assert db.query("SELECT 1 FROM %s WHERE %s" % (db.quote(table), where), params) == []


def test_undo_of_a_file_that_is_not_there_is_exit_3_and_creates_nothing(tmp_path):
    missing = str(tmp_path / "nope.quarantine.db")
    result = run_cli("undo", missing)
    assert result.returncode == 3 and "no quarantine file" in result.stderr, result.stderr
    assert not os.path.exists(missing)


def test_undo_leaves_a_created_parent_the_application_has_since_used(sqlite_address, tmp_path):
    done, epochs = cleanup_recreating_parents(sqlite_address, tmp_path, "EPOCH")
    assert epochs, "the demo has EPOCH rows to create"
    epoch = epochs[0]
    con = sqlite3.connect(sqlite_address.path)
    with con:  # the application logs a batch under the epoch the repair created
        con.execute("INSERT INTO BATCH (idx, epoch_idx, trial_run_id, time) VALUES (777, ?, ?, 'app')",
                    (epoch["idx"], epoch["trial_run_id"]))
    con.close()
    undone = run_cli("undo", quarantine_of(done.stdout), "--json")
    assert undone.returncode == 1 and "could not be put back" in undone.stderr, undone.stderr
    con = sqlite3.connect(sqlite_address.path)
    assert con.execute("SELECT count(*) FROM EPOCH WHERE idx = ? AND trial_run_id = ?",
                       (epoch["idx"], epoch["trial_run_id"])).fetchone()[0] == 1
    con.close()
