"""migrate into a DST the application keeps writing: the ids the copy moves its rows to are reserved as they are
chosen (and again on --resume), a key DST holds all the same is a clear error with a way out, and a SRC column
DST lacks is refused before anything is written. SQLite and MariaDB."""

import json
import os
import sqlite3
import subprocess
import sys
import time

import pytest
from conftest import make_demo, run_cli, url_of

from emfix.address import DatabaseAddress
from emfix.backends import open_database
from emfix.migrate import JOURNAL

APPLICATION = r'''
import json, os, sys, time
url, log_path, stop_path = sys.argv[1], sys.argv[2], sys.argv[3]
if url.startswith("mysql://"):
    import mysql.connector
    user, rest = url[len("mysql://"):].split("@")
    hostport, database = rest.split("/")
    host, port = hostport.split(":")
    con = mysql.connector.connect(host=host, port=int(port), user=user, database=database, autocommit=True)
    mark = "%s"
else:
    import sqlite3
    con = sqlite3.connect(url, timeout=60, isolation_level=None)
    mark = "?"
log = open(log_path, "a")
deadline = time.monotonic() + 90  # bounded, whatever happens to the test
n = 0
print("ready", flush=True)
while not os.path.exists(stop_path) and time.monotonic() < deadline:
    n += 1
    now = "2026-01-01 00:00:00"
    cur = con.cursor()
    cur.execute("INSERT INTO EXPERIMENT (title, start_time, update_time) VALUES (%s, %s, %s)" % (mark, mark, mark),
                ("app %d" % n, now, now))
    experiment = cur.lastrowid
    cur.execute("INSERT INTO TRIAL (name, experiment_id, start_time, update_time) VALUES (%s, %s, %s, %s)" % (
        mark, mark, mark, mark), ("app %d" % n, experiment, now, now))
    trial = cur.lastrowid
    cur.execute("INSERT INTO METRIC (type, total_val, per_label_val) VALUES ('app', 0.5, %s)" % mark,
                (json.dumps({"n": n}),))
    log.write(json.dumps([n, experiment, trial, cur.lastrowid]) + "\n")
    log.flush()
    cur.close()
    time.sleep(0.01)  # an application's pace, not the test's timing
'''


class Application:
    """A second process inserting a row into EXPERIMENT, TRIAL and METRIC every 10 ms; each insert logged."""

    def __init__(self, address, tmp_path):
        self.log, self.stop_file = str(tmp_path / "app.log"), str(tmp_path / "app.stop")
        self.proc = subprocess.Popen([sys.executable, "-c", APPLICATION, url_of(address), self.log, self.stop_file],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    def inserted(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as handle:
            return [json.loads(line) for line in handle if line.endswith("\n")]

    def wait_for(self, count):
        """Until it has inserted `count` rows in all (a condition, not a time)."""
        while len(self.inserted()) < count:
            assert self.proc.poll() is None, "the application stopped"
            time.sleep(0.001)

    def stop(self):
        open(self.stop_file, "w").close()
        self.proc.wait(timeout=120)


def app_rows_lost(address, inserted):
    """The application's rows no longer where it put them."""
    with open_database(address) as db:
        found = {(t, i) for t, column in (("EXPERIMENT", "title"), ("TRIAL", "name")) for (i,) in db.query(
            "SELECT id FROM %s WHERE %s LIKE 'app %%'" % (db.quote(t), db.quote(column)))}
        metrics = dict(db.query("SELECT id, per_label_val FROM METRIC WHERE type = 'app'"))
    lost = []
    for n, experiment, trial, metric in inserted:
        for key in (("EXPERIMENT", experiment), ("TRIAL", trial)):
            if key not in found:
                lost.append(key)
        if metric not in metrics or json.loads(metrics[metric])["n"] != n:
            lost.append(("METRIC", metric))
    return lost


def journal_states(address):
    with open_database(address) as db:
        return [s for (s,) in db.query("SELECT state FROM %s" % db.quote(JOURNAL))]


def source_and_target(address, tmp_path):
    source = str(tmp_path / "source.db")
    make_demo(DatabaseAddress("sqlite", path=source), faults=False)
    make_demo(address, faults=False)  # DST holds ids of its own where SRC's are: the copy's ids move
    return source


def lower_reservation(address, table):
    """What a kill before the reservation held would leave: DST hands out max(id) + 1 again."""
    if address.is_sqlite:
        con = sqlite3.connect(address.path, isolation_level=None)
        con.execute("UPDATE sqlite_sequence SET seq = (SELECT max(id) FROM %s) WHERE name = ?" % table, (table,))
        con.close()
        return
    with open_database(address) as db:
        db.execute("ALTER TABLE %s AUTO_INCREMENT = 1" % db.quote(table))  # the server makes it max(id) + 1


def insert_experiment(address):
    with open_database(address) as db, db.transaction():
        db.execute("INSERT INTO EXPERIMENT (title, start_time, update_time) VALUES ('app 0', ?, ?)",
                   ("2026-01-01 00:00:00", "2026-01-01 00:00:00"))
        return db.scalar("SELECT max(id) FROM EXPERIMENT WHERE title = 'app 0'")


def test_a_migrate_beside_an_application_inserting_rows_finishes_and_loses_none_of_them(address, tmp_path):
    """They collided: UNIQUE constraint failed: EXPERIMENT.id (exit 70) or Duplicate entry (exit 1), then
    --resume failed the same way for good."""
    source = source_and_target(address, tmp_path)
    app = Application(address, tmp_path)
    try:
        app.wait_for(3)  # inserting before the copy starts, and throughout it
        done = run_cli("migrate", source, url_of(address), "-e", "1", "--batch-size", "500",
                       "--snapshot-dir", str(tmp_path / "snaps"))
        app.wait_for(len(app.inserted()) + 3)  # and after it
    finally:
        app.stop()
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert journal_states(address) == ["done"]
    assert app_rows_lost(address, app.inserted()) == []


def insert_app_rows(address):
    """One row into EXPERIMENT, TRIAL and METRIC, as the application makes them: {table: id}."""
    now = "2026-01-01 00:00:00"
    with open_database(address) as db, db.transaction():
        db.execute("INSERT INTO EXPERIMENT (title, start_time, update_time) VALUES ('app 0', ?, ?)", (now, now))
        experiment = db.scalar("SELECT max(id) FROM EXPERIMENT WHERE title = 'app 0'")
        db.execute("INSERT INTO TRIAL (name, experiment_id, start_time, update_time) VALUES ('app 0', ?, ?, ?)",
                   (experiment, now, now))
        db.execute("INSERT INTO METRIC (type, total_val, per_label_val) VALUES ('app', 0.5, '{}')")
        return {"EXPERIMENT": experiment, "TRIAL": db.scalar("SELECT max(id) FROM TRIAL WHERE name = 'app 0'"),
                "METRIC": db.scalar("SELECT max(id) FROM METRIC WHERE type = 'app'")}


def test_an_import_beside_an_application_inserting_rows_finishes_and_loses_none_of_them(address, tmp_path):
    """Round 38: an import into MariaDB beside an application inserting METRIC rows stopped at a duplicate key (exit
    70) every time, and --resume at the same id."""
    source = source_and_target(address, tmp_path)
    exported = str(tmp_path / "e.jsonl")
    assert run_cli("export", source, "-e", "1", "-o", exported).returncode == 0
    app = Application(address, tmp_path)
    try:
        app.wait_for(3)
        done = run_cli("import", url_of(address), exported)
        app.wait_for(len(app.inserted()) + 3)
    finally:
        app.stop()
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert app_rows_lost(address, app.inserted()) == []


def test_rows_the_application_inserts_once_the_ids_are_chosen_go_above_the_copy(address, tmp_path):
    source = source_and_target(address, tmp_path)
    args = ("migrate", source, url_of(address), "-e", "1", "--strategy", "aggressive")
    assert run_cli(*args, env={"EMFIX_TEST_KILL_AT": "prepared:1"}).returncode == -9  # ids chosen, nothing copied
    mine = insert_app_rows(address)
    done = run_cli(*args, "--resume")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    with open_database(address) as db:
        assert db.scalar("SELECT title FROM EXPERIMENT WHERE id = ?", (mine["EXPERIMENT"],)) == "app 0"
        assert db.scalar("SELECT name FROM TRIAL WHERE id = ?", (mine["TRIAL"],)) == "app 0"
        assert db.scalar("SELECT type FROM METRIC WHERE id = ?", (mine["METRIC"],)) == "app"


def test_a_key_dst_holds_stops_the_copy_clearly_and_force_is_the_way_out(address, tmp_path):
    source = source_and_target(address, tmp_path)
    args = ("migrate", source, url_of(address), "-e", "1", "--strategy", "aggressive")
    killed = run_cli(*args, env={"EMFIX_TEST_KILL_AT": "prepared:1"})
    assert killed.returncode == -9, killed.stderr
    lower_reservation(address, "EXPERIMENT")
    taken = insert_experiment(address)  # the id the journal says the copy's experiment gets
    for _ in range(2):  # stopped, and again: the same clear error, never a bug's exit 70
        stopped = run_cli(*args, "--resume")
        assert stopped.returncode == 1 and "Traceback" not in stopped.stderr, stopped.stderr
        assert "copying EXPERIMENT into" in stopped.stderr and "--force" in stopped.stderr, stopped.stderr
    forced = run_cli(*args, "--force")
    assert forced.returncode == 0, forced.stderr
    assert journal_states(address) == ["done"]
    with open_database(address) as db:
        assert db.scalar("SELECT title FROM EXPERIMENT WHERE id = ?", (taken,)) == "app 0"


def test_a_resumed_migrate_reserves_its_ids_again(address, tmp_path):
    """A kill before the reservation held must not leave the journal's ids open to the application."""
    source = source_and_target(address, tmp_path)
    args = ("migrate", source, url_of(address), "-e", "1", "--strategy", "aggressive")
    assert run_cli(*args, env={"EMFIX_TEST_KILL_AT": "prepared:1"}).returncode == -9
    with open_database(address) as db:
        before = db.scalar("SELECT count(*) FROM EXPERIMENT")
    lower_reservation(address, "EXPERIMENT")
    resumed = run_cli(*args, "--resume", env={"EMFIX_TEST_KILL_AT": "prepared:1"})
    assert resumed.returncode == -9, resumed.stderr
    mine = insert_experiment(address)  # after the reservation: above the copy's ids
    done = run_cli(*args, "--resume")
    assert done.returncode == 0, done.stderr
    with open_database(address) as db:
        assert db.scalar("SELECT title FROM EXPERIMENT WHERE id = ?", (mine,)) == "app 0"
        assert db.scalar("SELECT count(*) FROM EXPERIMENT") == before + 2  # the copy's and the app's


def test_a_source_column_dst_lacks_is_refused_before_anything_is_written(address, tmp_path):
    source = str(tmp_path / "source.db")
    make_demo(DatabaseAddress("sqlite", path=source), faults=False)
    con = sqlite3.connect(source, isolation_level=None)
    con.execute("ALTER TABLE TRIAL ADD COLUMN owner TEXT")
    con.execute("UPDATE TRIAL SET owner = 'me'")
    con.close()
    assert run_cli("init", url_of(address)).returncode == 0
    refused = run_cli("migrate", source, url_of(address), "-e", "1")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert "TRIAL.owner" in refused.stderr and "schema diff" in refused.stderr, refused.stderr
    with open_database(address) as db:
        assert JOURNAL not in db.tables() or db.scalar("SELECT count(*) FROM %s" % db.quote(JOURNAL)) == 0
        assert db.scalar("SELECT count(*) FROM EXPERIMENT") == 0


@pytest.mark.parametrize("command", ["migrate", "import"])
def test_an_id_the_application_holds_uncommitted_is_never_chosen_for_the_copy(mysql_address, tmp_path, command):
    """Found by an outside tester (once in ten runs): an application's INSERT that had taken the next
    AUTO_INCREMENT id but not committed yet is invisible to a count, so the copy's experiment was given that id
    and stopped at a duplicate key. Whether the chosen ids are free is now asked with a locking read, which waits
    for that insert to commit and then sees it: the copy goes past it. Round 38: import too (it chose its ids
    by a count: duplicate key, exit 70, and --resume stopped at the same id)."""
    import mysql.connector
    source = DatabaseAddress("sqlite", path=str(tmp_path / "src.db"))
    make_demo(source, faults=False)
    make_demo(mysql_address, faults=False)
    with open_database(mysql_address) as db:
        top = int(db.scalar("SELECT max(id) FROM EXPERIMENT"))
    with sqlite3.connect(source.path) as db:  # SRC's experiment moves past DST's largest id: to top + 1
        first = db.execute("SELECT min(id) FROM EXPERIMENT").fetchone()[0]
    app = mysql.connector.connect(host=mysql_address.host, port=mysql_address.port, user=mysql_address.user,
                                  database=mysql_address.database)
    try:
        cursor = app.cursor()
        cursor.execute("INSERT INTO EXPERIMENT (title, start_time, update_time) VALUES ('app', NOW(), NOW())")
        held = cursor.lastrowid  # taken, not committed: no count sees it
        assert held == top + 1
        args = ["migrate", source.path, url_of(mysql_address), "-e", str(first), "--snapshot-dir",
                str(tmp_path / "s"), "-q"]
        if command == "import":
            exported = str(tmp_path / "e.jsonl")
            assert run_cli("export", source.path, "-e", str(first), "-o", exported).returncode == 0
            args = ["import", url_of(mysql_address), exported, "-q"]
        proc = subprocess.Popen([sys.executable, "-m", "emfix", *args],
                                env=dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(__file__))),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        watcher = mysql.connector.connect(host=mysql_address.host, port=mysql_address.port, user=mysql_address.user,
                                          autocommit=True)
        watch = watcher.cursor()
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:  # until migrate waits for the application
            watch.execute("SELECT count(*) FROM information_schema.PROCESSLIST WHERE (STATE LIKE '%metadata lock%' AND "
                          "INFO LIKE 'ALTER TABLE%') OR INFO LIKE '%EXPERIMENT%LOCK IN SHARE MODE' OR INFO LIKE "
                          "'INSERT INTO `EXPERIMENT`%'")
            if watch.fetchall()[0][0]:
                break
            time.sleep(0.02)
        watcher.close()
        app.commit()
        out, err = proc.communicate(timeout=120)
    finally:
        app.close()
    assert proc.returncode == 0, err
    with open_database(mysql_address) as db:
        assert db.scalar("SELECT title FROM EXPERIMENT WHERE id = ?", (held,)) == "app"
        assert db.scalar("SELECT count(*) FROM EXPERIMENT WHERE id > ?", (held,)) == 1


def a_copy_killed_once_its_ids_are_reserved(address, tmp_path):
    """Two demo sources with the same ids; the first's copy of experiment 1 into `address` killed once its ids are
    chosen and reserved (nothing copied yet). Returns both sources' paths."""
    assert run_cli("init", url_of(address)).returncode == 0
    first, second = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    for path in (first, second):
        make_demo(DatabaseAddress("sqlite", path=path), faults=False)  # the same ids in both
    killed = run_cli("migrate", first, url_of(address), "-e", "1", "--strategy", "aggressive",
                     env={"EMFIX_TEST_KILL_AT": "prepared:1"})
    assert killed.returncode == -9, killed.stderr  # ids chosen and reserved, nothing copied
    return first, second


def test_a_copy_begun_meanwhile_takes_no_id_another_unfinished_copy_reserved(address, tmp_path):
    """Found by an outside tester: two migrates into one DST. A chose its ids (the reservation committed, no row
    copied yet); B saw no row at those ids and took the same ones, so A could never be resumed (a duplicate key),
    and run side by side one's trials hung under the other's experiment. The ids of copies still running count
    as taken; on MySQL the copies choose one at a time."""
    first, second = a_copy_killed_once_its_ids_are_reserved(address, tmp_path)
    other = run_cli("migrate", second, url_of(address), "-e", "1", "--strategy", "aggressive", "--json")
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout)[0]["new_experiment_id"] != 1  # experiment 1 is the first copy's
    resumed = run_cli("migrate", first, url_of(address), "-e", "1", "--strategy", "aggressive", "--resume", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)[0]["new_experiment_id"] == 1
    assert journal_states(address) == ["done", "done"]  # each verified: its subtree holds its own rows alone


def test_two_copies_into_one_mysql_database_at_once_each_get_ids_of_their_own(mysql_address, tmp_path):
    """The same, side by side: on MySQL the reservation (ALTER TABLE) commits apart from the journal row, so the
    copies choose their ids one at a time (a named lock), each seeing the journal rows of those before it."""
    assert run_cli("init", url_of(mysql_address)).returncode == 0
    sources = [str(tmp_path / name) for name in ("a.db", "b.db")]
    for path in sources:
        make_demo(DatabaseAddress("sqlite", path=path), faults=False)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    copies = [subprocess.Popen([sys.executable, "-m", "emfix", "migrate", path, url_of(mysql_address), "-e", "1",
                                "--strategy", "aggressive", "-q"], env=env, stderr=subprocess.PIPE, text=True)
              for path in sources]
    errors = [copy.communicate(timeout=120)[1] for copy in copies]
    assert [copy.returncode for copy in copies] == [0, 0], errors
    assert journal_states(mysql_address) == ["done", "done"]


def test_the_same_copy_begun_twice_at_once_is_made_once(address, tmp_path, monkeypatch):
    """An outside tester: the same migrate started twice at once: both found no journal row, and each copied the
    experiment (SQLite: two copies, one journal row) or took the other's journal row (MySQL: a resume then used the
    other's offsets). Here the other run starts while this one finds its subtree. MySQL: this run holds its copy's
    lock, and the other is refused at once. SQLite: the other goes from start to end; this one, about to choose its
    ids, finds the journal row that one wrote and copies nothing."""
    from emfix import migrate
    from emfix.errors import EmfixError
    assert run_cli("init", url_of(address)).returncode == 0
    source = str(tmp_path / "a.db")
    make_demo(DatabaseAddress("sqlite", path=source), faults=False)
    ranges, other = migrate.subtree_id_ranges, []

    def the_other_run_meanwhile(*args):
        other.append(run_cli("migrate", source, url_of(address), "-e", "1", "--strategy", "aggressive"))
        return ranges(*args)

    monkeypatch.setattr(migrate, "subtree_id_ranges", the_other_run_meanwhile)
    try:
        migrate.migrate_experiment(DatabaseAddress("sqlite", path=source), address, 1, strategy="balanced",
                                   snapshot_dir=str(tmp_path / "snaps"))
        ours = "copied"
    except EmfixError as exc:
        ours = exc.message
    if address.is_sqlite:
        assert other[0].returncode == 0 and "began meanwhile" in ours, (other[0].stderr, ours)
    else:
        assert other[0].returncode == 3 and "is running now" in other[0].stderr and ours == "copied", ours
    assert journal_states(address) == ["done"]
    with open_database(address) as db:
        assert db.scalar("SELECT count(*) FROM EXPERIMENT") == 1


def test_a_resumed_copy_moves_no_row_its_source_gained_into_ids_another_unfinished_copy_holds(address, tmp_path):
    """An outside tester: X (experiment 1) and Y (experiment 2 of another file) both stopped after choosing their ids;
    X's source then gained a metric whose id lies in Y's range, and X's --resume wrote it there: Y could never be
    resumed ("Duplicate entry"). X is refused now (finish the other first), and Y finishes."""
    assert run_cli("init", url_of(address)).returncode == 0
    x_source, y_source = str(tmp_path / "x.db"), str(tmp_path / "y.db")
    for path in (x_source, y_source):
        make_demo(DatabaseAddress("sqlite", path=path), faults=False)
    with sqlite3.connect(y_source) as db:
        first = db.execute("SELECT min(m.metric_id) FROM BATCH_METRIC m JOIN TRIAL_RUN r ON r.id = m.trial_run_id "
                           "JOIN TRIAL t ON t.id = r.trial_id WHERE t.experiment_id = 2").fetchone()[0]
    x = ("migrate", x_source, url_of(address), "-e", "1", "--strategy", "aggressive")
    y = ("migrate", y_source, url_of(address), "-e", "2", "--strategy", "aggressive")
    for args in (x, y):
        assert run_cli(*args, env={"EMFIX_TEST_KILL_AT": "prepared:1"}).returncode == -9  # ids chosen, none copied
    with sqlite3.connect(x_source) as db:  # X's source gains metric `first` under experiment 1 (Y holds that id)
        db.execute("DELETE FROM BATCH_METRIC WHERE metric_id = ?", (first,))
        db.execute("DELETE FROM EPOCH_METRIC WHERE metric_id = ?", (first,))
        db.execute("UPDATE METRIC SET type = 'gained' WHERE id = ?", (first,))
        db.execute("INSERT INTO BATCH_METRIC (batch_idx, epoch_idx, trial_run_id, metric_id) SELECT batch_idx, "
                   "epoch_idx, trial_run_id, ? FROM BATCH_METRIC WHERE trial_run_id = 1 LIMIT 1", (first,))
    refused = run_cli(*x, "--resume")
    assert refused.returncode == 1 and "finish that one first" in refused.stderr, refused.stderr
    finished = run_cli(*y, "--resume")
    assert finished.returncode == 0, finished.stderr


def test_a_copy_into_mysql_begun_again_while_it_runs_is_refused_at_once(mysql_address, tmp_path, monkeypatch):
    """An outside tester: two --resume of one copy at once; the loser stopped at a duplicate key and its hint
    (--force) then copied the experiment a second time. A copy holds a lock of its own while it runs."""
    from emfix import migrate
    assert run_cli("init", url_of(mysql_address)).returncode == 0
    source = str(tmp_path / "a.db")
    make_demo(DatabaseAddress("sqlite", path=source), faults=False)
    args = ("migrate", source, url_of(mysql_address), "-e", "1", "--strategy", "aggressive")
    assert run_cli(*args, env={"EMFIX_TEST_KILL_AT": "prepared:1"}).returncode == -9
    ranges = migrate.subtree_id_ranges
    seen = []

    def the_other_resume_meanwhile(*args_):
        seen.append(run_cli(*args, "--resume"))
        return ranges(*args_)

    monkeypatch.setattr(migrate, "subtree_id_ranges", the_other_resume_meanwhile)
    result = migrate.migrate_experiment(DatabaseAddress("sqlite", path=source), mysql_address, 1,
                                        strategy="aggressive", resume=True)
    assert result.verified
    assert seen[0].returncode == 3 and "is running now" in seen[0].stderr, seen[0].stderr
    assert journal_states(mysql_address) == ["done"]


def test_a_resume_another_resume_went_on_with_meanwhile_stops_without_pointing_at_force(address, tmp_path, monkeypatch):
    """An outside tester: two --resume of one copy at once into a SQLite DST (no named lock there): the loser
    stopped at a key the winner had copied, and its hint was --force, which copies the experiment a second time.
    Here the other resume runs from start to end after this one read the journal: this one stops, says why, and
    points at --resume, not --force; the experiment is in DST once."""
    from emfix import migrate
    from emfix.errors import DatabaseLockedError
    assert run_cli("init", url_of(address)).returncode == 0
    source = str(tmp_path / "a.db")
    make_demo(DatabaseAddress("sqlite", path=source), faults=False)
    args = ("migrate", source, url_of(address), "-e", "1", "--strategy", "aggressive")
    assert run_cli(*args, env={"EMFIX_TEST_KILL_AT": "prepared:1"}).returncode == -9  # ids reserved, nothing copied
    other = []

    def the_other_resume_meanwhile(name):
        if name == "prepared":  # this run has read the journal and committed its start, and copied nothing yet
            other.append(run_cli(*args, "--resume"))

    monkeypatch.setattr(migrate, "kill_point", the_other_resume_meanwhile)
    try:
        migrate.migrate_experiment(DatabaseAddress("sqlite", path=source), address, 1, strategy="aggressive",
                                   resume=True)
        ours = None
    except DatabaseLockedError as exc:
        ours = exc
    if address.is_sqlite:
        assert other[0].returncode == 0, other[0].stderr
        assert ours is not None and "went on with this copy meanwhile" in ours.message, ours
        assert "--force" not in ours.hint.replace("not --force", ""), ours.hint
    else:  # the copy's named lock: the other resume is refused at once, this one finishes
        assert other[0].returncode == 3 and "is running now" in other[0].stderr and ours is None, other[0].stderr
    assert journal_states(address) == ["done"]
    with open_database(address) as db:
        assert db.scalar("SELECT count(*) FROM EXPERIMENT") == 1


def test_an_import_takes_no_id_an_unfinished_copy_reserved(address, tmp_path):
    """The same between an import and a migrate: an import into DST chose its ids past the rows there, into the ids
    a migrate still running had reserved (its rows not copied yet), and that copy could never be resumed."""
    first, second = a_copy_killed_once_its_ids_are_reserved(address, tmp_path)
    exported = str(tmp_path / "exp1.jsonl")
    assert run_cli("export", second, "-e", "1", "-o", exported).returncode == 0
    imported = run_cli("import", url_of(address), exported, "--json")
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["experiment_id"] != 1  # experiment 1 is the unfinished copy's
    resumed = run_cli("migrate", first, url_of(address), "-e", "1", "--strategy", "aggressive", "--resume", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)[0]["new_experiment_id"] == 1


def test_a_migrate_takes_no_id_an_unfinished_import_reserved(address, tmp_path):
    """The other way round: an import stopped once its ids were chosen (its journal row written, no row imported yet);
    a migrate into the same database chose its ids past the rows there, into the import's, and the import could never
    be resumed. An import's journal row now holds the file's highest ids, and a migrate counts them as taken."""
    assert run_cli("init", url_of(address)).returncode == 0
    first, second = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    for path in (first, second):
        make_demo(DatabaseAddress("sqlite", path=path), faults=False)  # the same ids in both
    exported = str(tmp_path / "exp1.jsonl")
    assert run_cli("export", first, "-e", "1", "-o", exported).returncode == 0
    killed = run_cli("import", url_of(address), exported, env={"EMFIX_TEST_KILL_AT": "journaled:1"})
    assert killed.returncode == -9, killed.stderr  # ids chosen and reserved, nothing imported
    copied = run_cli("migrate", second, url_of(address), "-e", "1", "--strategy", "aggressive", "--json")
    assert copied.returncode == 0, copied.stderr
    assert json.loads(copied.stdout)[0]["new_experiment_id"] != 1  # experiment 1 is the unfinished import's
    resumed = run_cli("import", url_of(address), exported, "--resume", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["experiment_id"] == 1
    for source, experiment in ((first, 1), (second, json.loads(copied.stdout)[0]["new_experiment_id"])):
        with sqlite3.connect(source) as src, open_database(address) as db:  # each subtree holds its own rows alone
            trials = src.execute("SELECT count(*) FROM TRIAL WHERE experiment_id = 1").fetchone()[0]
            assert db.scalar("SELECT count(*) FROM TRIAL WHERE experiment_id = ?", (experiment,)) == trials
