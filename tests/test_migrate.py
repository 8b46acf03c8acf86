"""migrate: verified copies in every direction, refusals that protect DST, and resume after a kill."""

import json
import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

import pytest
from conftest import ROOT, interrupt_when, kill_until_done, make_demo, run_cli, select_all, url_of

from emfix.address import DatabaseAddress
from emfix.backends import open_database
from emfix.demo import Shape
from emfix.hierarchy import count_subtree
from emfix.migrate import JOURNAL, migrate_experiment
from emfix.schema import discover_graph
from emfix.subtree import Subtree


def content(address):
    with open_database(address, readonly=True) as db:
        return {t: sorted(db.query(select_all(t, db.quote)), key=repr) for t in db.tables() if t != JOURNAL}


def sqlite_at(tmp_path, name):
    return DatabaseAddress("sqlite", path=str(tmp_path / name))


@pytest.mark.parametrize("generation", [1, 2])
def test_migrate_sqlite_to_each_backend_verifies(address, tmp_path, generation):
    source = sqlite_at(tmp_path, "source.db")
    make_demo(source, shape=Shape(generation=generation), faults=False)
    result = migrate_experiment(source, address, 2, init=True, snapshot_dir=str(tmp_path / "snaps"))
    assert result.verify and result.verified
    assert sum(c.target_rows for c in result.verify) == sum(result.copied.values())


def test_mariadb_to_sqlite(mysql_address, tmp_path):
    make_demo(mysql_address, faults=False)
    target = sqlite_at(tmp_path, "copy.db")
    result = migrate_experiment(mysql_address, target, 1, init=True, snapshot_dir=str(tmp_path / "snaps"))
    assert result.verified and result.copied["BATCH_METRIC"] > 0


def test_second_copy_is_refused_unless_forced(tmp_path):
    source, target = sqlite_at(tmp_path, "s.db"), sqlite_at(tmp_path, "t.db")
    make_demo(source, faults=False)
    migrate_experiment(source, target, 1, init=True, strategy="aggressive")
    refused = run_cli("migrate", source.path, target.path, "-e", "1")
    assert refused.returncode == 2 and "already migrated" in refused.stderr and "--force" in refused.stderr
    forced = migrate_experiment(source, target, 1, force=True, strategy="aggressive")
    assert forced.new_experiment_id != 1 and forced.verified


def test_source_with_breaks_stops_balanced_but_not_aggressive(tmp_path):
    source, target = sqlite_at(tmp_path, "s.db"), sqlite_at(tmp_path, "t.db")
    make_demo(source)  # experiment 3 carries the damage
    result = run_cli("migrate", source.path, target.path, "-e", "3", "--init")
    assert result.returncode == 1 and "breaks" in result.stderr
    assert not os.path.exists(target.path)  # refused before --init created anything, not even an empty file
    assert run_cli("migrate", source.path, target.path, "-e", "3", "--init", "--strategy", "aggressive"
                   ).returncode == 0


def test_missing_schema_and_unknown_experiment(tmp_path):
    source, target = sqlite_at(tmp_path, "s.db"), sqlite_at(tmp_path, "t.db")
    make_demo(source, faults=False)
    open_database(target, create=True).close()
    result = run_cli("migrate", source.path, target.path, "-e", "1")
    assert result.returncode == 2 and "--init" in result.stderr
    result = run_cli("migrate", source.path, target.path, "-e", "999", "--init")
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_every_experiment_into_a_mysql_database_init_creates(tmp_path, mysql_address):
    """--init creates a missing MySQL database for --all as for -e (--all refused it: outside tester)."""
    source = sqlite_at(tmp_path, "s.db")
    make_demo(source, shape=Shape(experiments=2, trials=1, runs=1, epochs=2, batches=1), faults=False)
    with open_database(mysql_address) as db:
        db.execute("DROP DATABASE %s" % db.quote(mysql_address.database))  # the fixture drops it again afterwards
    missing = run_cli("migrate", source.path, url_of(mysql_address), "--all")
    assert missing.returncode == 3 and "does not exist" in missing.stderr and "emfix init" in missing.stderr
    result = run_cli("migrate", source.path, url_of(mysql_address), "--all", "--init")
    assert result.returncode == 0, result.stderr
    with open_database(mysql_address) as db:
        assert db.scalar("SELECT count(*) FROM EXPERIMENT") == 2


def test_killed_at_random_points_then_resume_equals_one_uninterrupted_run(tmp_path):
    shape = Shape(experiments=2, trials=3, runs=4, epochs=20, batches=10)
    source = sqlite_at(tmp_path, "s.db")
    make_demo(source, shape=shape, faults=False)
    reference = sqlite_at(tmp_path, "reference.db")
    migrate_experiment(source, reference, 1, init=True, strategy="aggressive")
    target = sqlite_at(tmp_path, "t.db")
    kills = kill_until_done(["migrate", source.path, target.path, "-e", "1", "--init", "--strategy", "aggressive",
                             "--batch-size", "10", "-q"], seed=3, delay=0.4, at_once=3)
    assert kills >= 3 and content(target) == content(reference)


def test_interrupted_without_resume_explains(tmp_path):
    source, target = sqlite_at(tmp_path, "s.db"), sqlite_at(tmp_path, "t.db")
    make_demo(source, shape=Shape(experiments=2, trials=3, runs=4, epochs=20, batches=10), faults=False)
    code, _out, err = interrupt_when(("migrate", source.path, target.path, "-e", "1", "--init", "--strategy",
                                      "aggressive", "--batch-size", "10"), " rows (")
    assert code == 5 and "--resume" in err, err
    again = run_cli("migrate", source.path, target.path, "-e", "1")
    assert again.returncode == 2 and "partial migration" in again.stderr and "--resume" in again.stderr
    assert run_cli("migrate", source.path, target.path, "-e", "1", "--resume", "--strategy", "aggressive"
                   ).returncode == 0


def test_offset_paging_gives_the_same_copy(tmp_path):
    source = sqlite_at(tmp_path, "s.db")
    make_demo(source, faults=False)
    a, b = sqlite_at(tmp_path, "a.db"), sqlite_at(tmp_path, "b.db")
    migrate_experiment(source, a, 1, init=True, strategy="aggressive", batch_size=7)
    migrate_experiment(source, b, 1, init=True, strategy="aggressive", batch_size=7, paging="offset")
    assert content(a) == content(b)


def test_mariadb_connection_killed_mid_batch_then_resume_equals_one_uninterrupted_run(mysql_databases, tmp_path):
    shape = Shape(experiments=2, trials=3, runs=4, epochs=20, batches=10)
    source = sqlite_at(tmp_path, "s.db")
    make_demo(source, shape=shape, faults=False)
    reference, target = mysql_databases(), mysql_databases()
    migrate_experiment(source, reference, 1, init=True, strategy="aggressive")
    env = dict(os.environ, PYTHONPATH=ROOT)
    command = [sys.executable, "-m", "emfix", "migrate", source.path, url_of(target), "-e", "1", "--init",
               "--strategy", "aggressive", "--batch-size", "20", "-q"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = 0
    with open_database(target) as admin:
        deadline = time.monotonic() + 60
        while not killed and time.monotonic() < deadline and proc.poll() is None:
            rows = admin.query("SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND "
                               "table_name = 'BATCH_METRIC'", (target.database,))
            if rows[0][0] and admin.scalar("SELECT count(*) FROM `BATCH_METRIC`"):
                for (ident,) in admin.query("SELECT id FROM information_schema.processlist WHERE db = ? AND "
                                            "id <> CONNECTION_ID()", (target.database,)):
                    try:
                        admin.execute("KILL CONNECTION %d" % int(ident))
                        killed += 1
                    except Exception as exc:  # noqa: BLE001 - closed meanwhile (emfix stopping after the first kill)
                        assert "Unknown thread id" in str(exc), exc
            time.sleep(0.02)
    _out, err = proc.communicate(timeout=120)
    assert killed and proc.returncode == 3, err
    assert "--resume" in err and "Traceback" not in err
    resumed = run_cli(*command[3:], "--resume", env={"EMFIX_MYSQL_PASSWORD": ""})
    assert resumed.returncode == 0, (err, resumed.stderr)
    assert content(target) == content(reference)


def test_sqlite_to_mariadb_over_two_connections_killed_at_random_points_then_resume_equals_one_run(
        mysql_databases, tmp_path, monkeypatch):
    """Pages of SQL text go into MariaDB over two connections, a table each (its pages in order, each with
    the journal row made from what has committed): a kill at any moment, then --resume, is one whole copy."""
    from emfix import copybatches
    shape = Shape(experiments=2, trials=3, runs=4, epochs=20, batches=10)
    source = sqlite_at(tmp_path, "s.db")
    make_demo(source, shape=shape, faults=False)
    reference, target = mysql_databases(), mysql_databases()
    lanes = []
    original = copybatches.BatchCopy._run_in_lanes
    monkeypatch.setattr(copybatches.BatchCopy, "_run_in_lanes",
                        lambda self, *a: lanes.append(len(self.lanes)) or original(self, *a))
    migrate_experiment(source, reference, 1, init=True, strategy="aggressive")
    assert lanes == [2]
    kills = kill_until_done(["migrate", source.path, url_of(target), "-e", "1", "--init", "--strategy",
                             "aggressive", "--batch-size", "10", "-q"], seed=7, delay=0.5, attempts=12,
                            env={"EMFIX_MYSQL_PASSWORD": ""}, at_once=3)
    assert kills >= 3 and content(target) == content(reference)
    with open_database(target) as db:
        state, copied = db.query("SELECT state, copied FROM `_emfix_migration`")[0]
    assert state == "done" and json.loads(copied) == {t: len(rows) for t, rows in content(reference).items()
                                                      if rows and t != "SCHEMA_VERSION"}  # once, whatever the kills


def test_max_memory_sizes_batches_from_row_size(tmp_path):
    from emfix.pages import batch_for_memory
    from emfix.schema import discover_graph
    source = sqlite_at(tmp_path, "s.db")
    make_demo(source, faults=False)
    with open_database(source, readonly=True) as db:
        graph = discover_graph(db)
        small = batch_for_memory(db, graph, "BATCH_METRIC", "1 = 1", 40)
        large = batch_for_memory(db, graph, "BATCH_METRIC", "1 = 1", 400)
        wide = batch_for_memory(db, graph, "METRIC", "1 = 1", 40)
    assert 10 <= small < large and wide < small  # METRIC rows carry JSON text: fewer per batch
    result = run_cli("migrate", source.path, str(tmp_path / "t.db"), "-e", "1", "--init", "--max-memory", "20")
    assert result.returncode == 2 and "--max-memory" in result.stderr
    assert run_cli("migrate", source.path, str(tmp_path / "t.db"), "-e", "1", "--init", "--max-memory", "40",
                   "--snapshot-dir", str(tmp_path / "snaps")).returncode == 0


def test_progress_forced_for_a_log_prints_whole_lines(tmp_path):
    source = sqlite_at(tmp_path, "s.db")
    make_demo(source, faults=False)
    result = run_cli("migrate", source.path, str(tmp_path / "t.db"), "-e", "1", "--init", "--strategy",
                     "aggressive", "--progress")
    assert result.returncode == 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("migrate: ")]
    assert lines and "\r" not in result.stderr and "rows (" in lines[0]
    quiet = run_cli("migrate", source.path, str(tmp_path / "q.db"), "-e", "1", "--init", "--strategy",
                    "aggressive", "--progress", "-q")
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout == ""


def test_older_target_generation_is_refused_then_upgraded_with_init(tmp_path):
    source = sqlite_at(tmp_path, "s.db")
    make_demo(source, faults=False)  # generation 2: has BATCH tables
    target = sqlite_at(tmp_path, "old.db")
    assert run_cli("init", target.path, "--generation", "1").returncode == 0
    refused = run_cli("migrate", source.path, target.path, "-e", "1", "--strategy", "aggressive")
    assert refused.returncode == 1 and "BATCH" in refused.stderr and "--init" in refused.stderr
    assert content(target)["EXPERIMENT"] == []
    assert run_cli("migrate", source.path, target.path, "-e", "1", "--strategy", "aggressive", "--init"
                   ).returncode == 0


def test_malformed_json_into_a_mariadb_json_column_is_a_clear_refusal(mysql_address, tmp_path):
    source = sqlite_at(tmp_path, "s.db")
    make_demo(source)  # carries malformed metric JSON
    checked = run_cli("migrate", source.path, url_of(mysql_address), "-e", "1", "--init", "--snapshot-dir",
                      str(tmp_path / "snaps"))
    assert checked.returncode == 4 and "not valid JSON" in checked.stderr and "fix-json" in checked.stderr
    with open_database(mysql_address) as db:
        assert db.tables() == []  # refused before --init created anything
    with open_database(source) as db:  # the demo's BLOB is refused up front in every strategy (test_migrate_exact_text)
        db.execute("UPDATE METRIC SET per_label_val = CAST(per_label_val AS TEXT) WHERE typeof(per_label_val) = 'blob'")
    unchecked = run_cli("migrate", source.path, url_of(mysql_address), "-e", "1", "--init", "--strategy",
                        "aggressive")
    assert unchecked.returncode == 4 and "fix-json" in unchecked.stderr and "--resume" in unchecked.stderr
    assert "Traceback" not in unchecked.stderr


@pytest.mark.parametrize("value, refused", [
    ("[" * 32 + "]" * 32, True),  # (SQLite's json_valid() takes it, MariaDB's refuses past 31 levels: round 37)
    ('{"a": "\\ud800"}', True),  # a lone surrogate's escape
    ("[" * 31 + "]" * 31, False),
    ('{"a": "\\ud83d\\ude00"}', False),  # a pair: one character
])
def test_json_mariadb_refuses_but_sqlite_takes_is_refused_up_front(mysql_address, tmp_path, value, refused):
    result = migrate_with_one_value(tmp_path, mysql_address, "METRIC", "per_label_val",
                                    "(SELECT min(metric_id) FROM EPOCH_METRIC)", value, "--snapshot-dir",
                                    str(tmp_path / "snaps"))
    refused_whole_or_copied(result, mysql_address, "1 metric values" if refused else None)


def migrate_with_one_value(tmp_path, target, table, column, row_id, value, *options):
    """Migrate experiment 1 of a clean demo, `value` in `column` of `table`'s row `row_id` (SQL), into `target`
    with --init: the finished process."""
    source = sqlite_at(tmp_path, "s.db")
    make_demo(source, faults=False)
    with open_database(source) as db, db.transaction():
        db.execute("UPDATE %s SET %s = ? WHERE id = %s" % (table, column, row_id), (value,))
    return run_cli("migrate", source.path, url_of(target), "-e", "1", "--init", *options)


def refused_whole_or_copied(result, target, words):
    """Refused with `words` (exit 4) before --init made anything, or (words None) copied."""
    if words is None:
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode == 4 and words in result.stderr, result.stderr
    with open_database(target) as db:
        assert db.tables() == []


@pytest.mark.parametrize("value, refused", [
    ("2025-01-01", True),  # (round 37: copied as 2025-01-01 00:00:00, exit 0)
    ("2025/01/01 10:00:00", True),  # (MySQL takes other separators: stored as 2025-01-01 10:00:00)
    ("2025-01-01 10:00:00.1234567", True),  # (a 7th digit of a second: dropped)
    ("2025-01-01 10:00:00.", True),
    (20250101, True),  # (a number: a date to MySQL)
    ("2025-01-01T10:00:00.5", False),
    ("2025-01-01 10:00:00", False),
    ("2025-02-30 10:00:00", True),  # (round 43: the server refused it at its batch, the batches before committed)
    ("2025-04-31T10:00:00.000000", True),
    ("2024-02-29 10:00:00", False),
    ("0000-00-00T00:00:00.000000", False),  # (MariaDB keeps it as written: round 43, then said DIFFERS)
    ("2025-00-10 10:00:00", False),
    ("2025-13-01 00:00:00", True),  # (round 44: each refused by the server at its batch, the rows before committed)
    ("2025-05-01 24:00:00", True),
    ("2025-05-01 23:60:00", True),
    ("2025-05-01 23:59:60", True),
    ("\u0662\u0660\u0662\u0665-05-01 09:00:00", True),  # (Arabic-Indic digits)
    ("2025-05-01 09:00:00.+1", True),
    ("2025-05-01 09:00:00\x00x", True),  # (GLOB and length() stop at the NUL: the server refused it at its batch)
    ("2025-05-01 09:00:00.5\x00", True),
])
def test_text_dst_datetime_would_store_changed_is_refused_up_front(mysql_address, tmp_path, value, refused):
    result = migrate_with_one_value(tmp_path, mysql_address, "TRIAL", "start_time",  # (checksums compared)
                                    "(SELECT min(id) FROM TRIAL WHERE experiment_id = 1)", value)
    refused_whole_or_copied(result, mysql_address, "1 value of TRIAL.start_time is not 'YYYY-MM-DD HH:MM:SS' text"
                            if refused else None)


@pytest.mark.parametrize("value", ["2025-05-01 09:00:00\x00x", "2025-05-01 09:00:00.5\x00"])
def test_aggressive_refuses_datetime_text_holding_a_nul_up_front(mysql_address, tmp_path, value):
    """Text of DATETIME's shape up to a NUL passed the aggressive strategy's check of its shape (GLOB and length()
    stop at the NUL), and the server refused it at its batch, the batches before it committed."""
    result = migrate_with_one_value(tmp_path, mysql_address, "TRIAL", "start_time",
                                    "(SELECT min(id) FROM TRIAL WHERE experiment_id = 1)", value, "--strategy",
                                    "aggressive")
    refused_whole_or_copied(result, mysql_address, "1 value of TRIAL.start_time is not 'YYYY-MM-DD HH:MM:SS' text")


@pytest.mark.parametrize("value, refused", [("a\x00" + "b" * 300, True), ("a\x00" + "\u00e9" * 200, False)])
def test_text_holding_a_nul_is_measured_whole_against_dsts_column(mysql_address, tmp_path, value, refused):
    """SQLite's length() counts up to a NUL: 'a' + NUL + 300 characters passed the check of TRIAL.name's
    VARCHAR(255) as one character, and the server refused it at its batch, the batches before it committed."""
    result = migrate_with_one_value(tmp_path, mysql_address, "TRIAL", "name",
                                    "(SELECT min(id) FROM TRIAL WHERE experiment_id = 1)", value, "--strategy",
                                    "aggressive")
    refused_whole_or_copied(result, mysql_address, "TRIAL.name is 302 characters, more than" if refused else None)


@pytest.mark.parametrize("declared, value, refused", [
    ("VARCHAR(40)", "2025-01-01", True),  # (stored as 2025-01-01 00:00:00)
    ("VARCHAR(40)", "2025/01/01 10:00:00", True),
    ("VARCHAR(40)", "2025-01-01 10:00:00.5", False),
    ("BIGINT", 20250101103000, True),  # (a number: a moment to MySQL)
    ("DATE", "2025-01-01", True),  # (midnight added)
])
def test_a_mariadb_source_column_dst_datetime_would_store_changed_is_refused_up_front(mysql_databases, declared,
                                                                                       value, refused):
    """The check SQLite's text had (round 37), for a MariaDB SRC whose column is no DATETIME: '2025-01-01' was copied
    as midnight, and the copy then said DIFFERS."""
    source, target = mysql_databases(), mysql_databases()
    make_demo(source, shape=Shape(experiments=1, trials=1, runs=1, epochs=1, batches=1), faults=False)
    with open_database(source) as db:
        db.execute("ALTER TABLE TRIAL MODIFY start_time %s NOT NULL" % declared)
        with db.transaction():
            db.execute("UPDATE TRIAL SET start_time = ?", (value,))
    result = run_cli("migrate", url_of(source), url_of(target), "-e", "1", "--init")
    refused_whole_or_copied(result, target, "1 value of TRIAL.start_time is not 'YYYY-MM-DD HH:MM:SS' text"
                            if refused else None)


def test_mariadb_to_mariadb_killed_then_resumed_equals_one_uninterrupted_run(mysql_databases, tmp_path):
    source, reference, target = mysql_databases(), mysql_databases(), mysql_databases()
    make_demo(source, shape=Shape(experiments=2, trials=3, runs=4, epochs=20, batches=10), faults=False)
    migrate_experiment(source, reference, 1, init=True, strategy="aggressive")
    kills = kill_until_done(["migrate", url_of(source), url_of(target), "-e", "1", "--init", "--strategy",
                             "aggressive", "--batch-size", "5", "-q"], seed=5, delay=0.6, attempts=10,
                            env={"EMFIX_MYSQL_PASSWORD": ""})
    assert kills and content(target) == content(reference)


def test_same_database_as_source_and_target_is_refused_at_once(tmp_path):
    source = sqlite_at(tmp_path, "s.db")
    make_demo(source, faults=False)
    result = run_cli("migrate", source.path, str(tmp_path / "." / "s.db"), "-e", "1", "--lock-timeout", "30")
    assert result.returncode == 2 and "same database" in result.stderr and "export" in result.stderr


T = "'2024-01-02 03:04:05'"


def one_run_source(tmp_path, trial_id_type, trial_id, name="t"):
    """A SQLite database made by `emfix init` holding one experiment, trial and run, TRIAL_RUN.trial_id declared
    `trial_id_type` and holding `trial_id`, TRIAL.name declared without a type and holding `name`."""
    path = str(tmp_path / "one.db")
    assert run_cli("init", path).returncode == 0
    con = sqlite3.connect(path)
    with con:
        con.execute("DROP TABLE TRIAL_RUN")
        con.execute("CREATE TABLE TRIAL_RUN (id INTEGER PRIMARY KEY AUTOINCREMENT, trial_id %s NOT NULL, status "
                    "VARCHAR(50) NOT NULL, start_time TEXT NOT NULL, update_time TEXT NOT NULL, FOREIGN KEY "
                    "(trial_id) REFERENCES TRIAL (id))" % trial_id_type)
        con.execute("DROP TABLE TRIAL")
        con.execute("CREATE TABLE TRIAL (id INTEGER PRIMARY KEY AUTOINCREMENT, name NOT NULL, experiment_id INT NOT "
                    "NULL, start_time TEXT NOT NULL, update_time TEXT NOT NULL, FOREIGN KEY (experiment_id) REFERENCES "
                    "EXPERIMENT (id))")
        con.execute("INSERT INTO EXPERIMENT VALUES (1, 'e', NULL, %s, %s)" % (T, T))
        con.execute("INSERT INTO TRIAL VALUES (10, ?, 1, %s, %s)" % (T, T), (name,))
        con.execute("INSERT INTO TRIAL_RUN VALUES (10, ?, 'done', %s, %s)" % (T, T), (trial_id,))
    con.close()
    return path


@pytest.mark.parametrize("trial_id_type, trial_id, name, words", [
    ("TEXT", "10", "t", "1 value of TRIAL_RUN.trial_id is text (e.g. '10')"),  # (stored as 10: DIFFERS, rows kept)
    ("TEXT", " 11", "t", None),  # (not a run of this experiment: nothing of it copied)
    ("", "10", "t", "1 value of TRIAL_RUN.trial_id is text (e.g. '10')"),
    ("INT", 10, 2.5, "1 value of TRIAL.name is a REAL (e.g. 2.5)"),  # (kept by --init's VARCHAR as text)
    ("INT", 10, 5, None),  # (its digits: the same to the verify, round 40)
    ("INT", 10, "t", None),
])
def test_a_value_a_sqlite_dsts_affinity_would_store_otherwise_is_refused_up_front(tmp_path, trial_id_type, trial_id,
                                                                                  name, words):
    """Round 45: a TEXT link column holding '10' (ids as text) into DST's INT column was copied as the integer 10,
    and only the verify said DIFFERS (exit 4, the rows kept in DST); a REAL in a column without a type into DST's
    VARCHAR the same. Refused before anything is written now, by what SQLite's affinity does to each value."""
    source = one_run_source(tmp_path, trial_id_type, trial_id, name)
    target = sqlite_at(tmp_path, "d.db")
    result = run_cli("migrate", source, target.path, "-e", "1", "--init", "--no-snapshot")
    refused_whole_or_never_made(result, target, words)


@pytest.mark.parametrize("status_type, words, comment", [("INT", "which %s's STRICT table refuses", ""),
                                                          ("TEXT", None, ""), ("ANY", None, ""),
                                                          ("INT", "which %s's STRICT table refuses", " -- (see it)\n")])
def test_a_strict_table_of_a_sqlite_dst_gets_only_what_it_keeps(tmp_path, status_type, words, comment):
    """Round 46: DST's TRIAL_RUN declared STRICT with status INT refused the demo's 'completed' part way: exit 70,
    the journal left running. Refused up front now; a STRICT table whose types fit takes the copy. Round 47: a
    comment holding ')' after STRICT hid it (exit 70 again)."""
    source = sqlite_at(tmp_path, "s.db")
    make_demo(source, shape=Shape(experiments=2, trials=1, runs=1, epochs=1, batches=1), faults=False)
    target = sqlite_at(tmp_path, "d.db")
    assert run_cli("init", target.path).returncode == 0
    con = sqlite3.connect(target.path)
    with con:
        con.execute("DROP TABLE TRIAL_RUN")
        con.execute("CREATE TABLE TRIAL_RUN (id INTEGER PRIMARY KEY AUTOINCREMENT, trial_id INT NOT NULL, status %s "
                    "NOT NULL, start_time TEXT NOT NULL, update_time TEXT NOT NULL) STRICT%s" % (status_type, comment))
    con.close()
    result = run_cli("migrate", source.path, target.path, "-e", "1", "--no-snapshot")
    refused_whole_or_never_made(result, target, words % target.path if words else None)


def refused_whole_or_never_made(result, target, words):
    """refused_whole_or_copied for a SQLite DST: the refused copy never made it, or left its tables without a row."""
    if words is None:
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode == 4 and words in result.stderr and "nothing was copied" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2, result.stderr
    if os.path.exists(target.path):
        with open_database(target) as db:
            assert not [t for t in db.tables() if t != "SCHEMA_VERSION" and db.scalar(
                "SELECT count(*) FROM %s" % db.quote(t))]


@pytest.mark.parametrize("alter, value, dst_ddl, words", [
    ("ALTER TABLE TRIAL_RUN MODIFY trial_id VARCHAR(20) NOT NULL", "'10'", None,
     "1 value of TRIAL_RUN.trial_id is text (e.g. '10')"),
    ("ALTER TABLE TRIAL_RUN MODIFY trial_id DECIMAL(10,2) NOT NULL", "10.00", None,
     "1 value of TRIAL_RUN.trial_id is DECIMAL"),  # (the DECIMAL refusal read DST's tables as they were, before --init)
    ("ALTER TABLE TRIAL_RUN MODIFY status ENUM('done', '1') NOT NULL", "'1'", "status INT",
     "1 value of TRIAL_RUN.status is text (e.g. '1')"),  # (round 46: ENUM's text was not tried)
    ("ALTER TABLE TRIAL_RUN MODIFY status FLOAT NOT NULL", "3", "status INT",
     "1 value of TRIAL_RUN.status is a REAL (e.g. 3.0)"),  # (round 46: copied as the INTEGER 3, exit 0)
    ("ALTER TABLE TRIAL_RUN MODIFY status DOUBLE NOT NULL", "9.21e18", "status INT",
     "1 value of TRIAL_RUN.status is a REAL (e.g. 9.21e+18)"),  # (round 47: past 9.2e18, under 2^63: copied, DIFFERS)
    ("ALTER TABLE TRIAL_RUN MODIFY status DOUBLE NOT NULL", "9.3e18", "status INT", None),  # (past 2^63: a REAL)
    ("ALTER TABLE TRIAL_RUN MODIFY status INT NOT NULL", "3", "status REAL",
     "1 value of TRIAL_RUN.status is an integer (e.g. 3)"),  # (copied as the REAL 3.0, exit 0)
    ("ALTER TABLE TRIAL_RUN MODIFY status INT NOT NULL", "3", "status INT", None),
    ("ALTER TABLE TRIAL_RUN MODIFY status VARCHAR(20) NOT NULL", "'done'", "status TEXT) STRICT --",
     None),
    ("ALTER TABLE TRIAL_RUN MODIFY status VARCHAR(20) NOT NULL", "'done'", "status INT) STRICT --",
     "which %s's STRICT table refuses or changes in that column (INT: integers only)"),
])
def test_a_mariadb_value_a_sqlite_dst_would_store_otherwise_is_refused_up_front(mysql_address, tmp_path, alter, value,
                                                                                  dst_ddl, words):
    """Round 45: MariaDB's VARCHAR trial_id '10' into --init's SQLite INT was copied as 10, then DIFFERS (rows kept); a
    DECIMAL 10.00 the same. Round 46: an ENUM '1' into DST's INT the same; a FLOAT 3.0 into INT and an INT into REAL
    changed kind, verify "ok"; a STRICT table of DST refused TEXT into INT part way (exit 70)."""
    assert run_cli("init", url_of(mysql_address)).returncode == 0
    with open_database(mysql_address) as db:
        db.execute("INSERT INTO EXPERIMENT VALUES (1, 'e', NULL, %s, %s)" % (T, T))
        db.execute("INSERT INTO TRIAL VALUES (10, 't', 1, %s, %s)" % (T, T))
        db.execute("ALTER TABLE TRIAL_RUN DROP FOREIGN KEY TRIAL_RUN_ibfk_1")
        db.execute(alter)
        db.execute("INSERT INTO TRIAL_RUN (id, trial_id, status, start_time, update_time) VALUES (10, %s, %s, %s, "
                   "%s)" % (value if "trial_id" in alter else "10", value if "status" in alter else "'done'", T, T))
    target = sqlite_at(tmp_path, "d.db")
    options = ["--init"]
    if dst_ddl is not None:
        assert run_cli("init", target.path).returncode == 0
        column, strict = dst_ddl.replace(") STRICT --", ""), dst_ddl.endswith("STRICT --")
        con = sqlite3.connect(target.path)
        with con:
            con.execute("DROP TABLE TRIAL_RUN")
            con.execute("CREATE TABLE TRIAL_RUN (id INTEGER PRIMARY KEY AUTOINCREMENT, trial_id INT NOT NULL, %s NOT "
                        "NULL, start_time TEXT NOT NULL, update_time TEXT NOT NULL)%s" % (
                            column, " STRICT" if strict else ""))
        con.close()
        options = []
    result = run_cli("migrate", url_of(mysql_address), target.path, "-e", "1", "--no-snapshot", *options)
    refused_whole_or_never_made(result, target, words % target.path if words and "%s" in words else words)


@pytest.mark.parametrize("dropped, code", [(("TRIAL_RUN",), 2),
                                           (("EPOCH_METRIC", "BATCH_METRIC", "RESULTS_METRIC"), 0)])
def test_a_source_lacking_tables_is_refused_or_copied_as_it_is(tmp_path, dropped, code):
    """Round 46: a SRC without TRIAL_RUN crashed the copy (exit 70) with DST made and its journal "running"; one
    without METRIC's link tables the same (a key table of METRIC ids read that the walk never made). Not an
    Experiment Manager database now (exit 2, DST not made), and copied as it is (exit 0)."""
    source = sqlite_at(tmp_path, "s.db")
    make_demo(source, shape=Shape(experiments=2, trials=1, runs=1, epochs=1, batches=1), faults=False)
    con = sqlite3.connect(source.path)
    with con:
        con.execute("PRAGMA foreign_keys = OFF")
        for table in dropped:
            con.execute("DROP TABLE %s" % table)
    con.close()
    target = str(tmp_path / "d.db")
    result = run_cli("migrate", source.path, target, "-e", "1", "--init", "--no-snapshot")
    assert result.returncode == code and "a bug in emfix" not in result.stderr, result.stderr
    if code:
        assert "not an Experiment Manager database (no TRIAL_RUN table)" in result.stderr, result.stderr
        assert not os.path.exists(target)


def test_an_experiment_named_twice_is_copied_once(tmp_path):
    """Round 45: `-e 1 -e 1` copied experiment 1, then said it was already migrated (exit 2)."""
    source = sqlite_at(tmp_path, "s.db")
    make_demo(source, shape=Shape(experiments=2, trials=1, runs=1, epochs=1, batches=1), faults=False)
    result = run_cli("migrate", source.path, str(tmp_path / "d.db"), "-e", "1", "-e", "1", "--init", "--no-snapshot")
    assert result.returncode == 0, result.stderr


def test_verify_prints_rows_and_checksums_side_by_side(tmp_path):
    source = sqlite_at(tmp_path, "s.db")
    make_demo(source, faults=False)
    result = run_cli("migrate", source.path, str(tmp_path / "t.db"), "-e", "1", "--init", "--snapshot-dir",
                     str(tmp_path / "snaps"))
    assert result.returncode == 0 and "checksum SRC / DST" in result.stdout
    rows = [line.split() for line in result.stdout.splitlines() if line.strip().startswith("BATCH_METRIC")]
    assert rows and rows[0][1] == rows[0][2] and rows[0][3] == rows[0][5] and rows[0][-1] == "ok"


@pytest.mark.parametrize("asked", [True, False])
def test_no_snapshot_is_heeded_by_a_copy_between_two_databases(tmp_path, asked):
    """Round 43: --no-snapshot was read only by the copy within one database; between two it was passed over, and
    a snapshot of DST was taken anyway."""
    source, target = sqlite_at(tmp_path, "s.db"), str(tmp_path / "t.db")
    make_demo(source, shape=Shape(experiments=1, trials=1, runs=1, epochs=1, batches=1), faults=False)
    result = run_cli("migrate", source.path, target, "-e", "1", "--init", "--snapshot-dir", str(tmp_path / "snaps"),
                     *(["--no-snapshot"] if asked else []))
    assert result.returncode == 0, result.stderr
    listed = run_cli("snapshot", "list", target, "--snapshot-dir", str(tmp_path / "snaps"), "--json")
    assert (json.loads(listed.stdout)["snapshots"] == []) is asked, listed.stdout + listed.stderr


def test_in_engine_copy_equals_the_row_by_row_copy_with_ids_moved(tmp_path, monkeypatch):
    """A rollback-journal SRC is copied by INSERT ... SELECT into the attached DST; a WAL SRC row by row
    through Python (a writer could commit between two batches there). Both copies are the same."""
    import sqlite3

    from emfix import pages
    plain, wal = sqlite_at(tmp_path, "plain.db"), sqlite_at(tmp_path, "wal.db")
    make_demo(plain, shape=Shape(experiments=2, trials=2, runs=3, epochs=4, batches=5), faults=False)
    with open(plain.path, "rb") as a, open(wal.path, "wb") as b:
        b.write(a.read())
    con = sqlite3.connect(wal.path)
    assert con.execute("PRAGMA journal_mode = WAL").fetchone() == ("wal",)
    con.close()
    engine_runs, real = [], pages.engine_batches

    def counting(*args, **kwargs):
        engine_runs.append(args[3])
        return real(*args, **kwargs)

    monkeypatch.setattr(pages, "engine_batches", counting)
    results = {}
    for source in (plain, wal):
        target = sqlite_at(tmp_path, "to-" + os.path.basename(source.path))
        engine_runs.clear()
        for experiment_id, strategy in ((1, "balanced"), (2, "aggressive"), (1, "conservative")):
            # experiment 1 twice: its second copy moves every id (and checks each batch's row count)
            result = migrate_experiment(source, target, experiment_id, init=True, force=True, strategy=strategy,
                                        snapshot_dir=str(tmp_path / "s"), batch_size=7)
            assert result.verified
        results[source.path] = (content(target), bool(engine_runs))
    assert results[plain.path][1] and not results[wal.path][1]
    assert results[plain.path][0] == results[wal.path][0]


def _journal_states(address):
    with open_database(address, readonly=address.is_sqlite) as db:
        return dict(db.query("SELECT run_key, state FROM %s" % db.quote(JOURNAL)))


def _negate_every_50th_metric(address, trigger):
    """A trigger on DST that flips the sign of every 50th METRIC value as it is written (a copy that
    cannot verify), or (trigger=False) that trigger dropped and those values flipped back, exactly."""
    with open_database(address) as db:
        if not trigger:
            db.execute("DROP TRIGGER %s" % db.quote("emfix_t_flip"))
            db.execute("UPDATE %s SET total_val = -total_val WHERE id %% 50 = 0" % db.quote("METRIC"))
        elif db.dialect == "sqlite":
            db.execute('CREATE TRIGGER emfix_t_flip AFTER INSERT ON "METRIC" WHEN NEW.id % 50 = 0 BEGIN '
                       'UPDATE "METRIC" SET total_val = -total_val WHERE id = NEW.id; END')
        else:
            db.execute("CREATE TRIGGER emfix_t_flip BEFORE INSERT ON `METRIC` FOR EACH ROW SET NEW.total_val = "
                       "IF(NEW.id % 50 = 0, -NEW.total_val, NEW.total_val)")


def test_a_copy_that_fails_its_verify_is_never_done_and_resume_verifies_again(address, tmp_path):
    """#23 item 10: the journal records the verify's result. A copy DST changed as it was written stays
    `differs`: --resume verifies again (exit 4 again), a plain rerun says what to do; once DST holds
    what SRC holds, --resume verifies it and only then is it done."""
    from emfix.schema import create_schema
    source = sqlite_at(tmp_path, "s.db")
    make_demo(source, faults=False)
    with open_database(address, create=True) as db:
        create_schema(db)
    _negate_every_50th_metric(address, trigger=True)
    command = ("migrate", source.path, url_of(address), "-e", "1", "--snapshot-dir", str(tmp_path / "snaps"))
    env = {"EMFIX_MYSQL_PASSWORD": ""}
    first = run_cli(*command, env=env)
    assert first.returncode == 4 and "differs" in first.stderr, first.stderr
    assert list(_journal_states(address).values()) == ["differs"]
    again = run_cli(*command, "--resume", env=env)
    assert again.returncode == 4 and "differs" in again.stderr and "METRIC" in again.stdout, again.stderr
    assert "Traceback" not in again.stderr and list(_journal_states(address).values()) == ["differs"]
    plain = run_cli(*command, env=env)
    assert plain.returncode == 1 and "differs" in plain.stderr and "--resume" in plain.stderr, plain.stderr
    experiments = content(address)["EXPERIMENT"]
    assert len(experiments) == 1  # neither rerun copied anything more
    _negate_every_50th_metric(address, trigger=False)
    fixed = run_cli(*command, "--resume", env=env)
    assert fixed.returncode == 0 and "DIFFERS" not in fixed.stdout, fixed.stderr
    assert list(_journal_states(address).values()) == ["done"]
    done = run_cli(*command, env=env)
    assert done.returncode == 2 and "already migrated" in done.stderr


def test_an_unverified_copy_is_verified_by_resume(tmp_path):
    from emfix.schema import create_schema
    source, target = sqlite_at(tmp_path, "s.db"), sqlite_at(tmp_path, "t.db")
    make_demo(source, faults=False)
    with open_database(target, create=True) as db:
        create_schema(db)
    _negate_every_50th_metric(target, trigger=True)
    command = ("migrate", source.path, target.path, "-e", "1", "--strategy", "aggressive")
    assert run_cli(*command, "--no-verify").returncode == 0
    assert list(_journal_states(target).values()) == ["unverified"]
    plain = run_cli(*command)
    assert plain.returncode == 2 and "not verified" in plain.stderr and "--resume" in plain.stderr
    assert run_cli(*command, "--resume", "--no-verify").returncode == 0  # as asked: not verified, nothing to do
    checked = run_cli(*command, "--resume", "--strategy", "balanced")
    assert checked.returncode == 4 and "differs" in checked.stderr, checked.stderr
    assert list(_journal_states(target).values()) == ["differs"]
    lighter = run_cli(*command, "--resume", "--no-verify")  # a copy that differed is checked in full regardless
    assert lighter.returncode == 4 and "differs" in lighter.stderr, lighter.stderr
    assert list(_journal_states(target).values()) == ["differs"]


@pytest.fixture(params=["sqlite", "mysql"])
def new_database(request, tmp_path):
    """Call it for each fresh, empty database of one backend."""
    if request.param == "mysql":
        return request.getfixturevalue("mysql_databases")
    made = []
    return lambda: made.append(sqlite_at(tmp_path, "db%d.db" % len(made))) or made[-1]


def _kill_in_second_experiment(args):
    """Run `emfix ARGS` and SIGKILL it (killpoints) once the second experiment's journal row and id reservation
    are committed: for certain, not by timing (a kill sent on its first progress line came, under load, after
    the second experiment had finished)."""
    return run_cli(*args, env={"EMFIX_MYSQL_PASSWORD": "", "EMFIX_TEST_KILL_AT": "prepared:2"}).returncode


def test_a_killed_migrate_all_is_finished_by_resume(new_database, tmp_path):
    """#23 item 12: killed in its second experiment, `--all --resume` finishes that one and copies the
    third (not begun); a plain `--all` before it copies nothing and says to use --resume."""
    source = sqlite_at(tmp_path, "s.db")
    make_demo(source, shape=Shape(experiments=3, trials=2, runs=3, epochs=10, batches=5), faults=False)
    reference, target = new_database(), new_database()
    for experiment_id in (1, 2, 3):
        migrate_experiment(source, reference, experiment_id, init=True, strategy="aggressive")
    command = ["migrate", source.path, url_of(target), "--all", "--init", "--strategy", "aggressive",
               "--batch-size", "10"]
    assert _kill_in_second_experiment(command) == -signal.SIGKILL
    assert sorted(_journal_states(target).values()) == ["done", "running"]
    kept = content(target)
    env = {"EMFIX_MYSQL_PASSWORD": ""}
    plain = run_cli(*command, env=env)
    assert plain.returncode == 2 and "nothing was copied" in plain.stderr, plain.stderr
    assert "experiment 1 copied" in plain.stderr and "experiment 2 partly copied" in plain.stderr
    assert "--resume" in plain.stderr and "copies the 1 not begun" in plain.stderr
    assert content(target) == kept
    finished = run_cli(*command, "--resume", env=env)
    assert finished.returncode == 0, finished.stderr
    assert "experiment 2 -> 2" in finished.stdout and "experiment 3 -> 3" in finished.stdout
    assert content(target) == content(reference)
    assert sorted(_journal_states(target).values()) == ["done"] * 3
    again = run_cli(*command, env=env)
    assert again.returncode == 2 and "--force" in again.stderr and "nothing was copied" in again.stderr
    assert run_cli(*command, "--resume", env=env).returncode == 0  # each one done: nothing more to copy
    assert content(target) == content(reference)


def _scalar(address, sql, params=()):
    with open_database(address, readonly=address.is_sqlite) as db:
        return db.scalar(sql, params)


def test_migrate_experiment_within_one_database_twice_is_refused_unless_forced(address, tmp_path):
    """#23 item 11: the old tool's `migrate-experiment -d DB -s 2 -t 1` run twice added the trials
    twice. A finished copy is recorded by its scope (which experiment, into which): a repeat is
    refused (exit 2) even after the source experiment changed, --resume has nothing to do, and
    --force adds them again."""
    make_demo(address, faults=False)
    env, db = {"EMFIX_MYSQL_PASSWORD": ""}, url_of(address)
    trials_of_1 = "SELECT count(*) FROM %s WHERE experiment_id = 1" % ('"TRIAL"' if address.is_sqlite else "`TRIAL`")
    before = _scalar(address, trials_of_1)
    into = ("migrate-experiment", "-d", db, "-s", "2", "-t", "1", "--no-snapshot")
    first = run_cli(*into, env=env)
    assert first.returncode == 0 and "added to experiment 1" in first.stdout, first.stderr
    added = _scalar(address, trials_of_1) - before
    assert added == 2
    again = run_cli(*into, env=env)
    assert again.returncode == 2 and "already added to experiment 1" in again.stderr, again.stderr
    assert "--force" in again.stderr and "Traceback" not in again.stderr
    with open_database(address) as writer:  # the source experiment changes: still the same scope
        writer.execute("UPDATE %s SET name = ? WHERE experiment_id = 2" % writer.quote("TRIAL"), ("renamed",))
    assert run_cli(*into, env=env).returncode == 2
    resumed = run_cli(*into, "--resume", env=env)
    assert resumed.returncode == 0 and "nothing to resume" in resumed.stdout, resumed.stderr
    assert _scalar(address, trials_of_1) == before + added
    assert run_cli(*into, "--force", env=env).returncode == 0
    assert _scalar(address, trials_of_1) == before + 2 * added
    with open_database(address) as writer:  # killed after the import's last commit, before its copy was recorded
        writer.execute("DELETE FROM %s WHERE run_key LIKE 'within:%%'" % writer.quote(JOURNAL))
    unrecorded = run_cli(*into, env=env)
    assert unrecorded.returncode == 2 and "already added" in unrecorded.stderr, unrecorded.stderr
    assert _scalar(address, trials_of_1) == before + 2 * added
    experiments = "SELECT count(*) FROM %s" % ('"EXPERIMENT"' if address.is_sqlite else "`EXPERIMENT`")
    copy = ("migrate-experiment", "-d", db, "-s", "3", "--no-snapshot")
    assert run_cli(*copy, env=env).returncode == 0
    made = _scalar(address, experiments)
    twice = run_cli(*copy, env=env)
    assert twice.returncode == 2 and "already copied as experiment" in twice.stderr, twice.stderr
    assert _scalar(address, experiments) == made


def test_migrate_all_killed_again_and_again_is_finished_by_resume(new_database, tmp_path):
    """#23 item 12, with conftest's kill_until_done: SIGKILLs at random moments across the experiments
    of `--all`, each run after the first with --resume, until one finishes: the same as one run."""
    source = sqlite_at(tmp_path, "s.db")
    make_demo(source, shape=Shape(experiments=3, trials=2, runs=2, epochs=10, batches=5), faults=False)
    reference, target = new_database(), new_database()
    for experiment_id in (1, 2, 3):
        migrate_experiment(source, reference, experiment_id, init=True, strategy="aggressive")
    kills = kill_until_done(["migrate", source.path, url_of(target), "--all", "--init", "--strategy", "aggressive",
                             "--batch-size", "10", "-q"], seed=11, delay=0.5, env={"EMFIX_MYSQL_PASSWORD": ""},
                             at_once=2)  # a run that finishes within its random delay is not killed: two kills for sure
    assert kills >= 2 and content(target) == content(reference)


def test_a_damaged_source_is_refused_before_anything_is_written(tmp_path):
    """SRC's quick_check runs beside the walk now, not before it: still exit 4, and DST never made."""
    source, target = sqlite_at(tmp_path, "s.db"), sqlite_at(tmp_path, "t.db")
    make_demo(source, shape=Shape(experiments=2, trials=3, runs=4, epochs=20, batches=10), faults=False)
    with open(source.path, "r+b") as handle:
        handle.truncate(os.path.getsize(source.path) - 1024)
    result = run_cli("migrate", source.path, target.path, "-e", "1", "--init", "--strategy", "aggressive")
    assert result.returncode == 4 and "is damaged" in result.stderr, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    assert not os.path.exists(target.path)


@pytest.mark.parametrize("stop", ["interrupted", "failed"])
def test_grouped_in_engine_batches_stopped_midway_then_resumed_equal_one_run(tmp_path, monkeypatch, stop):
    """Without --batch-size, in-engine batches share a commit up to ENGINE_GROUP rows. Stopped between two
    batches (Ctrl-C: the group so far is committed; an error: it is rolled back), the journal and the rows
    agree, and --resume finishes the copy exactly."""
    from emfix import pages
    from emfix.errors import ConnectError, OperationInterrupted
    monkeypatch.setattr(pages, "ENGINE_BATCH", 23)
    monkeypatch.setattr(pages, "ENGINE_GROUP", 100)
    source = sqlite_at(tmp_path, "s.db")
    make_demo(source, shape=Shape(experiments=2, trials=3, runs=4, epochs=5, batches=4), faults=False)
    reference = sqlite_at(tmp_path, "reference.db")
    migrate_experiment(source, reference, 1, init=True, strategy="aggressive")
    target = sqlite_at(tmp_path, "t.db")
    calls = []

    def stopper():
        calls.append(1)
        if len(calls) == 12:
            if stop == "failed":
                raise ConnectError("lost the disk for a moment")
            return True
        return False

    with pytest.raises(OperationInterrupted if stop == "interrupted" else ConnectError):
        migrate_experiment(source, target, 1, init=True, strategy="aggressive", interrupted=stopper)
    with open_database(target) as db:
        journal = db.query("SELECT copied FROM %s" % db.quote(JOURNAL))[0][0]
        copied = __import__("json").loads(journal)
        counts = {t: int(db.scalar("SELECT count(*) FROM %s" % db.quote(t))) for t in copied}
    assert copied == counts and 0 < sum(copied.values())
    result = migrate_experiment(source, target, 1, strategy="aggressive", resume=True)
    assert result.verified and content(target) == content(reference)
    assert not os.path.exists(target.path + "-journal")


@pytest.mark.parametrize("existing", [False, True])
def test_a_source_found_damaged_while_the_copy_ran_leaves_dst_as_it_was(tmp_path, monkeypatch, existing):
    """In-engine, the copy runs beside SRC's quick_check but commits nothing before it passed: when it finds
    damage, DST holds what it held before (a DST --init made is removed), and the answer is the damage."""
    import threading

    from emfix.backends.sqlite import SQLiteBackend
    from emfix.errors import DamagedInputError
    monkeypatch.setattr("emfix.pages.ENGINE_BATCH", 17)
    monkeypatch.setattr("emfix.pages.ENGINE_GROUP", 40)
    source, target = sqlite_at(tmp_path, "s.db"), sqlite_at(tmp_path, "t.db")
    make_demo(source, shape=Shape(experiments=2, trials=3, runs=4, epochs=5, batches=4), faults=False)
    if existing:
        migrate_experiment(source, target, 2, init=True, strategy="aggressive")
        before = content(target)
    copied = threading.Event()
    real = SQLiteBackend.execute

    def watching(self, sql, params=()):
        if sql.startswith("INSERT INTO emfix_dst."):
            copied.set()
        return real(self, sql, params)

    def slow_and_damaged(self):
        assert copied.wait(30), "the copy never started while the check ran"
        return "quick_check found 1 problem, first: page 7 is never used"

    monkeypatch.setattr(SQLiteBackend, "execute", watching)
    monkeypatch.setattr(SQLiteBackend, "quick_check", slow_and_damaged)
    with pytest.raises(DamagedInputError, match="is damaged"):
        migrate_experiment(source, target, 1, init=True, strategy="aggressive")
    if existing:
        assert content(target) == before
        assert list(_journal_states(target).values()) == ["done"]
    else:
        assert not os.path.exists(target.path)


def test_into_mysql_dst_is_prepared_beside_the_source_check_but_no_page_goes_before_it_passed(tmp_path, monkeypatch,
                                                                                               mysql_databases):
    """#28: SQLite into MySQL, a fresh aggressive copy prepares DST (its journal row, the id reservation) while
    SRC's quick_check still runs, but sends no page before the check passed: a page's transaction does not stay
    open for as long as the check of a large file. When it finds damage, DST holds no row of the copy, its journal
    row is taken back, and the answer is the damage."""
    import threading

    from emfix.backends.mysql import MySQLBackend
    from emfix.backends.sqlite import SQLiteBackend
    from emfix.errors import DamagedInputError
    source, target = sqlite_at(tmp_path, "s.db"), mysql_databases()
    make_demo(source, shape=Shape(experiments=2, trials=3, runs=4, epochs=5, batches=4), faults=False)
    migrate_experiment(source, target, 2, init=True, strategy="aggressive")
    before = content(target)
    sent = []
    real = MySQLBackend.execute_raw

    def watching(self, statement):
        if statement.startswith(b"INSERT INTO"):
            sent.append(threading.current_thread().name)
        return real(self, statement)

    def slow_and_damaged(self):
        with open_database(target) as db:
            for _ in range(600):  # until this copy's journal row is there (DST prepared), at most 30 s
                if len(db.query("SELECT run_key FROM %s" % db.quote(JOURNAL))) == 2:
                    break
                threading.Event().wait(0.05)
            else:
                raise AssertionError("DST was not prepared while the check ran")
        assert not sent, "a page went into DST before the check passed"
        return "quick_check found 1 problem, first: page 7 is never used"

    monkeypatch.setattr(MySQLBackend, "execute_raw", watching)
    monkeypatch.setattr(SQLiteBackend, "quick_check", slow_and_damaged)
    with pytest.raises(DamagedInputError, match="is damaged"):
        migrate_experiment(source, target, 1, strategy="aggressive", batch_size=20)
    assert not sent and content(target) == before
    assert list(_journal_states(target).values()) == ["done"]


def test_dst_locked_part_way_through_an_in_engine_copy_is_said_of_dst(tmp_path):
    """Found in a session's notes: SQLite into SQLite, DST locked by another process once the copy had begun was
    said to be SRC ("database s.db is locked ... held by a process this user cannot see"): in-engine, SRC's
    connection writes the DST attached to it. It names DST and the process that holds it; --resume finishes."""
    from conftest import hold_write_lock

    from emfix.errors import DatabaseLockedError
    from emfix.retry import RetryPolicy
    source, target = sqlite_at(tmp_path, "s.db"), sqlite_at(tmp_path, "t.db")
    make_demo(source, shape=Shape(experiments=2, trials=2, runs=3, epochs=4, batches=3), faults=False)
    holders, pages = [], []

    def lock_dst_once():
        pages.append(1)
        if len(pages) == 3:
            holders.append(hold_write_lock(target.path, 30))
        return False

    try:
        with pytest.raises(DatabaseLockedError) as locked:
            migrate_experiment(source, target, 1, init=True, strategy="aggressive", batch_size=10,
                               retry_policy=RetryPolicy(deadline=0.3), interrupted=lock_dst_once)
    finally:
        for holder in holders:
            holder.kill()
            holder.wait()
    assert holders and "t.db is locked" in locked.value.message, locked.value.message
    assert "pid %d" % holders[0].pid in locked.value.message and "--resume" in locked.value.hint
    reference = sqlite_at(tmp_path, "reference.db")
    migrate_experiment(source, reference, 1, init=True, strategy="aggressive")
    assert migrate_experiment(source, target, 1, strategy="aggressive", resume=True).verified
    assert content(target) == content(reference)


@pytest.mark.parametrize("strategy,force", [("aggressive", True), ("balanced", False)])
def test_a_damaged_source_leaves_a_finished_copy_and_the_snapshot_folder_as_they_were(new_database, tmp_path,
                                                                                      monkeypatch, strategy, force):
    """Found by an outside tester: DST was prepared before SRC's check answered, so `--force` over a finished
    copy replaced its `done` journal row with a `running` one (and a rerun then copied the experiment twice), and
    a balanced copy took its safety snapshot of DST, for a SRC the check then refused. Only a fresh aggressive
    copy is prepared before the answer; these wait for it, and DST stays as it was."""
    from emfix.backends.sqlite import SQLiteBackend
    from emfix.errors import DamagedInputError
    source, target = sqlite_at(tmp_path, "s.db"), new_database()
    make_demo(source, shape=Shape(experiments=2, trials=2, runs=3, epochs=4, batches=3), faults=False)
    migrate_experiment(source, target, 1, init=True, strategy="aggressive")
    before, journal = content(target), _journal_states(target)
    monkeypatch.setattr(SQLiteBackend, "quick_check", lambda self: "quick_check found 1 problem, first: page 9")
    snapshots = tmp_path / "snaps"
    with pytest.raises(DamagedInputError, match="is damaged"):
        migrate_experiment(source, target, 1 if force else 2, strategy=strategy, force=force,
                           snapshot_dir=str(snapshots))
    assert content(target) == before and _journal_states(target) == journal
    assert not snapshots.exists() or not os.listdir(str(snapshots))


def test_a_damaged_source_into_a_fresh_copy_says_what_stays_in_dst(new_database, tmp_path, monkeypatch):
    """A fresh aggressive copy is prepared while SRC's check runs: on damage its journal row is taken back and
    no row is copied, and the answer says the id counters stay past what it reserved (not "nothing changed")."""
    from emfix.backends.sqlite import SQLiteBackend
    from emfix.errors import DamagedInputError
    source, target = sqlite_at(tmp_path, "s.db"), new_database()
    make_demo(source, shape=Shape(experiments=2, trials=2, runs=3, epochs=4, batches=3), faults=False)
    migrate_experiment(source, target, 2, init=True, strategy="aggressive")
    before, journal = content(target), _journal_states(target)
    monkeypatch.setattr(SQLiteBackend, "quick_check", lambda self: "quick_check found 1 problem, first: page 9")
    with pytest.raises(DamagedInputError) as damaged:
        migrate_experiment(source, target, 1, strategy="aggressive")
    assert "nothing was copied into" in damaged.value.message and "id counters" in damaged.value.message
    assert content(target) == before and _journal_states(target) == journal


def test_a_ctrl_c_in_one_wait_for_the_source_check_does_not_let_another_through(tmp_path):
    """Found by an outside tester: Ctrl-C twice while SRC's check ran committed a page of a damaged SRC. The
    second KeyboardInterrupt landed in the main thread's join of the check's thread, which Python (3.11,
    bpo-45274) then marks stopped though it runs on; the other lane's join returned at once, with no damage
    known yet, and its page committed. A wait now ends only on the check's own answer."""
    import signal
    import threading

    from emfix.errors import DamagedInputError, OperationInterrupted
    from emfix.guarded import IntegrityCheck
    answer = threading.Event()

    class Checker:
        connection = None

        def quick_check(self):
            answer.wait(30)
            return "quick_check found 1 problem, first: page 9"

    db = open_database(sqlite_at(tmp_path, "x.db"), create=True)
    check = IntegrityCheck(db, Checker())
    other, outcome = threading.Event(), []

    def lane():
        other.set()
        try:
            check.wait()
            outcome.append("passed")
        except DamagedInputError:
            outcome.append("damaged")

    waiting = threading.Thread(target=lane)
    waiting.start()
    other.wait(10)
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        check.wait()
        timer.join()  # the Ctrl-C came after the wait: let it land here
        threading.Event().wait(5)
    waiting.join(0.5)
    assert waiting.is_alive() and not outcome  # still waiting for the check's answer
    answer.set()
    waiting.join(10)
    assert outcome == ["damaged"]
    stopping = threading.Event()
    stopping.set()
    answer.clear()
    again = IntegrityCheck(db, Checker())
    with pytest.raises(OperationInterrupted):  # a lane of a copy that is stopping does not wait it out
        again.wait(stopping)
    answer.set()
    with pytest.raises(DamagedInputError):  # and its answer is still there for whoever waits
        again.wait()
    db.close()


def test_stopped_at_once_while_the_source_check_runs_stops_at_once_and_leaves_no_journal_row(tmp_path, monkeypatch,
                                                                                               mysql_databases):
    """Found by an outside tester: a second Ctrl-C while SRC's check ran (SQLite into MySQL) exited only once the
    check was over (the other lane waited it out: seconds on a large file), and left a journal row `running, 0
    rows`, which a rerun took for a partial copy. The other lane stops too, the check is stopped, and the row
    goes; DST is as it was."""
    import threading

    from emfix.backends.sqlite import SQLiteBackend
    from emfix.copybatches import BatchCopy
    source, target = sqlite_at(tmp_path, "s.db"), mysql_databases()
    make_demo(source, shape=Shape(experiments=2, trials=3, runs=4, epochs=5, batches=4), faults=False)
    migrate_experiment(source, target, 2, init=True, strategy="aggressive")
    before, journal = content(target), _journal_states(target)
    real = BatchCopy._pass_gate

    def ctrl_c_while_waiting(self):  # the Ctrl-C reaches the main thread's lane as it waits for the check
        if threading.current_thread() is threading.main_thread():
            raise KeyboardInterrupt
        return real(self)

    def endless_check(self):  # runs until stopped (SQLite's interrupt), as a long quick_check would
        return self.query("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c) SELECT count(*) FROM c")

    monkeypatch.setattr(BatchCopy, "_pass_gate", ctrl_c_while_waiting)
    monkeypatch.setattr(SQLiteBackend, "quick_check", endless_check)
    with pytest.raises(KeyboardInterrupt):
        migrate_experiment(source, target, 1, strategy="aggressive", batch_size=20)
    assert content(target) == before and _journal_states(target) == journal


@pytest.mark.parametrize("moved", [False, True])
def test_the_in_engine_count_verify_reads_dst_rows_missing_or_under_another_parent(tmp_path, monkeypatch, moved):
    """#28: an aggressive SQLite -> SQLite copy counts DST's rows through SRC's key tables while DST is
    attached (no second walk of DST). Rows DST lost as they were written (a trigger), or put under
    another parent, still make the copy differ; with ids moved (a second copy) the counts match."""
    from emfix import copybatches
    from emfix.schema import create_schema
    counted = []
    real = copybatches.count_in_engine
    monkeypatch.setattr(copybatches, "count_in_engine", lambda *a: counted.append(1) or real(*a))
    source, target = sqlite_at(tmp_path, "s.db"), sqlite_at(tmp_path, "t.db")
    make_demo(source, shape=Shape(experiments=2, trials=2, runs=2, epochs=3, batches=3), faults=False)
    if moved:  # a first copy: the second one's ids are moved past it
        assert migrate_experiment(source, target, 1, init=True, strategy="aggressive").verified
        counted.clear()
    with open_database(target, create=True) as db:
        create_schema(db)
        db.execute('CREATE TRIGGER emfix_t_lose AFTER INSERT ON "METRIC" WHEN NEW.id % 7 = 0 BEGIN '
                   'DELETE FROM "METRIC" WHERE id = NEW.id; END')
        db.execute('CREATE TRIGGER emfix_t_move AFTER INSERT ON "BATCH" WHEN NEW.idx = 1 BEGIN '
                   'UPDATE "BATCH" SET trial_run_id = trial_run_id + 100000 WHERE rowid = NEW.rowid; END')
    result = migrate_experiment(source, target, 1, strategy="aggressive", force=moved)
    assert counted and (result.new_experiment_id != 1) == moved
    assert sorted(c.table for c in result.verify if not c.ok) == ["BATCH", "METRIC"]
    with open_database(target) as db:
        db.execute('DROP TRIGGER emfix_t_lose')
        db.execute('DROP TRIGGER emfix_t_move')
    again = migrate_experiment(source, target, 1, strategy="aggressive", force=True)
    assert again.verified and again.new_experiment_id != result.new_experiment_id
    assert len(counted) == 1 and all(c.source_checksum for c in again.verify)  # after a differing copy: in full


def _gain_a_run(address):
    """The application writes on under experiment 1: a new run, its epochs, a metric and its link."""
    when = "2026-01-01 00:00:00"
    with open_database(address) as db, db.transaction():
        trial = db.scalar("SELECT min(id) FROM TRIAL WHERE experiment_id = 1")
        db.execute("INSERT INTO TRIAL_RUN (trial_id, status, start_time, update_time) VALUES (?, 'running', ?, ?)",
                   (trial, when, when))
        run = db.scalar("SELECT max(id) FROM TRIAL_RUN")
        db.executemany("INSERT INTO EPOCH (idx, trial_run_id, time) VALUES (?, ?, ?)",
                       [(i, run, when) for i in range(3)])
        db.execute("INSERT INTO METRIC (type, total_val, per_label_val) VALUES ('acc', 0.25, '{\"a\": 1}')")
        metric = db.scalar("SELECT max(id) FROM METRIC")
        db.execute("INSERT INTO EPOCH_METRIC (epoch_idx, epoch_trial_run_id, metric_id) VALUES (0, ?, ?)",
                   (run, metric))


def test_resume_copies_the_rows_src_gained_after_the_interruption_in_tables_already_copied(new_database, tmp_path):
    """Stopped with TRIAL_RUN, EPOCH and METRIC already copied, then the application adds a run under the
    experiment: --resume copies the new rows too (it walks again the tables SRC has more rows of than the journal
    copied), verifies, and DST equals a copy made in one go of SRC as it is now."""
    source, target = sqlite_at(tmp_path, "s.db"), new_database()
    make_demo(source, shape=Shape(experiments=2, trials=2, runs=3, epochs=4, batches=3), faults=False)
    left = _stop_after_metric(source, target)
    assert left and not left & {"TRIAL_RUN", "EPOCH", "METRIC"}, left
    _gain_a_run(source)
    result = migrate_experiment(source, target, 1, strategy="aggressive", resume=True)
    assert result.verified and result.copied["TRIAL_RUN"] == 7 and result.copied["EPOCH_METRIC"] == 25
    reference = new_database()
    migrate_experiment(source, reference, 1, init=True, strategy="aggressive")
    assert content(target) == content(reference)
    again = migrate_experiment(source, target, 1, strategy="balanced", resume=True, force=False)
    assert again.verified


def test_ctrl_c_during_the_verify_stops_it_and_resume_verifies(tmp_path):
    """Ctrl-C while the verify runs stops it (exit 5, not a copy said to be done), and --resume verifies."""
    from emfix.errors import OperationInterrupted
    source = sqlite_at(tmp_path, "s.db")
    make_demo(source, shape=Shape(experiments=2, trials=2, runs=3, epochs=4, batches=3), faults=False)
    reference, calls = sqlite_at(tmp_path, "reference.db"), []
    migrate_experiment(source, reference, 1, init=True, strategy="balanced", batch_size=10,
                       snapshot_dir=str(tmp_path / "snaps"), interrupted=lambda: calls.append(1) or False)
    every = len(calls)  # the copy's pages, then the verify's tables
    target, calls = sqlite_at(tmp_path, "t.db"), []
    with pytest.raises(OperationInterrupted) as stopped:
        migrate_experiment(source, target, 1, init=True, strategy="balanced", batch_size=10,
                           snapshot_dir=str(tmp_path / "snaps"),
                           interrupted=lambda: calls.append(1) or len(calls) == every - 3)
    assert "verifying" in stopped.value.message and "--resume" in stopped.value.hint
    assert list(_journal_states(target).values()) == ["running"]
    result = migrate_experiment(source, target, 1, strategy="balanced", resume=True,
                                snapshot_dir=str(tmp_path / "snaps"))
    assert result.verified and content(target) == content(reference)
    assert list(_journal_states(target).values()) == ["done"]


@pytest.mark.parametrize("stored", ["VIRTUAL", "PERSISTENT"])
def test_mariadb_to_mariadb_leaves_dst_generated_columns_to_dst(mysql_databases, tmp_path, stored):
    """A generated column (on both sides, or on DST alone) is computed by DST, never sent a value; the copy
    verifies with it."""
    source, target = mysql_databases(), mysql_databases()
    make_demo(source, shape=Shape(experiments=1, trials=2, runs=2, epochs=3, batches=2), faults=False)
    from emfix.schema import create_schema
    with open_database(target) as db:
        create_schema(db)
    for address in (source, target):
        with open_database(address) as db:
            db.execute("ALTER TABLE `METRIC` ADD COLUMN `doubled` DOUBLE AS (`total_val` * 2) %s" % stored)
    with open_database(target) as db:
        db.execute("ALTER TABLE `TRIAL` ADD COLUMN `shout` VARCHAR(300) AS (UPPER(`name`)) %s" % stored)
    for strategy in ("aggressive", "balanced"):
        result = migrate_experiment(source, target, 1, strategy=strategy, force=strategy == "balanced",
                                    snapshot_dir=str(tmp_path / "s"))
        assert result.verified
    with open_database(target) as db:
        assert db.scalar("SELECT count(*) FROM `METRIC` WHERE `doubled` <> `total_val` * 2") == 0
        assert db.scalar("SELECT count(*) FROM `TRIAL` WHERE `shout` = UPPER(`name`)") == 4


def test_columns_dst_cannot_fill_are_refused_before_anything_is_copied(mysql_databases):
    """Found by an outside tester: a DST column NOT NULL without a default stopped the copy half-way with a
    traceback (exit 70); a DST generated column where SRC holds values of its own made the copy differ. Both are
    refused first, naming the column."""
    from emfix.errors import SchemaError
    from emfix.schema import create_schema
    source = mysql_databases()
    make_demo(source, shape=Shape(experiments=1, trials=2, runs=2, epochs=2, batches=2), faults=False)
    with open_database(source) as db:
        db.execute("ALTER TABLE `TRIAL` ADD COLUMN `name_len` INT NOT NULL DEFAULT 99")
    for alter, said in (("ALTER TABLE `ARTIFACT` ADD COLUMN `must` INT NOT NULL",
                         "ARTIFACT.must (NOT NULL, no default)"),
                        ("ALTER TABLE `TRIAL` ADD COLUMN `name_len` INT AS (CHAR_LENGTH(`name`)) STORED",
                         "computes TRIAL.name_len (generated column)")):
        target = mysql_databases()
        with open_database(target) as db:
            create_schema(db)
            db.execute(alter)
            if "must" in alter:
                db.execute("ALTER TABLE `TRIAL` ADD COLUMN `name_len` INT NOT NULL DEFAULT 0")
        with pytest.raises(SchemaError) as refused:
            migrate_experiment(source, target, 1, strategy="aggressive")
        assert said in refused.value.message and "nothing was copied" in refused.value.message
        with open_database(target) as db:
            assert db.scalar("SELECT count(*) FROM `EXPERIMENT`") == 0


def test_mariadb_to_mariadb_keeps_id_zero_rows_and_their_children(mysql_databases):
    """Found by an outside tester: rows with id 0 got new ids in DST (the server's AUTO_INCREMENT took 0 as
    "give me one"), their children still pointing at 0."""
    source, target = mysql_databases(), mysql_databases()
    make_demo(source, shape=Shape(experiments=1, trials=1, runs=1, epochs=2, batches=2), faults=False)
    with open_database(source) as db:
        db.execute("SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'")
        db.foreign_key_checks(False)
        db.execute("UPDATE `EXPERIMENT` SET `id` = 0 WHERE `id` = 1")
        db.execute("UPDATE `TRIAL` SET `id` = 0, `experiment_id` = 0")
        db.execute("UPDATE `TRIAL_RUN` SET `trial_id` = 0")
        for table, column in (("EXPERIMENT_ARTIFACT", "experiment_id"), ("TRIAL_ARTIFACT", "trial_id")):
            db.execute("UPDATE `%s` SET `%s` = 0" % (table, column))
    result = migrate_experiment(source, target, 0, init=True, strategy="aggressive")
    assert result.verified and result.new_experiment_id == 0
    with open_database(target) as db:
        assert db.query("SELECT `id`, `experiment_id` FROM `TRIAL`") == [(0, 0)]
        assert db.scalar("SELECT count(*) FROM `TRIAL_RUN` WHERE `trial_id` = 0") == 1


def _stop_after_metric(source, target):
    """A copy stopped (Ctrl-C) once TRIAL_RUN, EPOCH and METRIC are copied and some table is not yet (the order
    the tables go in is the copy's own: DST's journal is asked before each page); the tables not done."""
    from emfix.errors import OperationInterrupted
    with tempfile.TemporaryDirectory() as scratch:  # the tables a whole copy writes
        tables = set(migrate_experiment(source, sqlite_at(pathlib.Path(scratch), "whole.db"), 1, init=True,
                                        strategy="aggressive").copied)

    def not_done():
        with open_database(target) as db:
            rows = db.query("SELECT position FROM %s" % db.quote(JOURNAL)) if JOURNAL in db.tables() else []
        position = json.loads(rows[0][0]) if rows else {}
        return {t for t in tables if position.get(t) != "done"}

    with pytest.raises(OperationInterrupted):
        migrate_experiment(source, target, 1, init=True, strategy="aggressive", batch_size=10,
                           interrupted=lambda: not not_done() & {"TRIAL_RUN", "EPOCH", "METRIC"} and bool(not_done()))
    return not_done()


def test_resume_refuses_gained_ids_the_dst_application_took_before_copying_more(tmp_path):
    """Found by an outside tester: DST's application wrote trials after the kill, at the ids just above what the
    copy reserved; SRC gained a trial, whose id moved lands on one of them. The resume says so before it copies
    anything more (it stopped half-way at a duplicate key, with a misleading hint)."""
    from emfix.idshift import IdsTakenError
    source, target = sqlite_at(tmp_path, "s.db"), sqlite_at(tmp_path, "t.db")
    make_demo(source, shape=Shape(experiments=2, trials=2, runs=3, epochs=4, batches=3), faults=False)
    _stop_after_metric(source, target)
    when = "2026-01-01 00:00:00"
    with open_database(target) as db, db.transaction():  # the application, beside the copy's rows
        db.execute("INSERT INTO EXPERIMENT (title, \"desc\", start_time, update_time) VALUES ('app', '', ?, ?)",
                   (when, when))
        app = db.scalar("SELECT max(id) FROM EXPERIMENT")
        db.executemany("INSERT INTO TRIAL (name, experiment_id, start_time, update_time) VALUES (?, ?, ?, ?)",
                       [("app %d" % n, app, when, when) for n in range(3)])
        before = db.query("SELECT copied FROM %s" % db.quote(JOURNAL))
    _gain_a_run(source)
    with open_database(source) as db, db.transaction():
        db.execute("INSERT INTO TRIAL (name, experiment_id, start_time, update_time) VALUES ('late', 1, ?, ?)",
                   (when, when))
    with pytest.raises(IdsTakenError) as refused:
        migrate_experiment(source, target, 1, strategy="aggressive", resume=True)
    assert "TRIAL" in refused.value.message and "--force" in refused.value.hint
    with open_database(target) as db:
        assert db.query("SELECT copied FROM %s" % db.quote(JOURNAL)) == before
        assert [r[0] for r in db.query("SELECT name FROM TRIAL WHERE name LIKE 'app%' ORDER BY id")] == [
            "app 0", "app 1", "app 2"]


def test_resume_copies_a_gained_row_beside_a_lost_one_and_says_the_copy_differs(tmp_path):
    """Found by an outside tester: SRC lost one TRIAL_ARTIFACT link and gained another (a new artifact) after
    the kill; the count stayed, so the gained row was never looked for, and the count verify said done. Gained
    ids make the resume walk every table: the new link is copied, and the verify says the copy differs (DST
    keeps the link SRC lost)."""
    source, target = sqlite_at(tmp_path, "s.db"), sqlite_at(tmp_path, "t.db")
    make_demo(source, shape=Shape(experiments=2, trials=2, runs=3, epochs=4, batches=3), faults=False)
    _stop_after_metric(source, target)
    with open_database(source) as db, db.transaction():
        trial, artifact = db.query("SELECT ta.trial_id, ta.artifact_id FROM TRIAL_ARTIFACT ta JOIN TRIAL t ON "
                                   "t.id = ta.trial_id WHERE t.experiment_id = 1 LIMIT 1")[0]
        db.execute("DELETE FROM TRIAL_ARTIFACT WHERE trial_id = ? AND artifact_id = ?", (trial, artifact))
        db.execute("INSERT INTO ARTIFACT (type, loc) VALUES ('log', 'gained.txt')")
        db.execute("INSERT INTO TRIAL_ARTIFACT (trial_id, artifact_id) VALUES (?, ?)",
                   (trial, db.scalar("SELECT max(id) FROM ARTIFACT")))
    result = migrate_experiment(source, target, 1, strategy="aggressive", resume=True)
    assert not result.verified
    # the artifact of the lost link is in DST's subtree still, not in SRC's any more
    assert [c.table for c in result.verify if not c.ok] == ["ARTIFACT", "TRIAL_ARTIFACT"]
    with open_database(target) as db:
        assert db.scalar("SELECT count(*) FROM ARTIFACT WHERE loc = 'gained.txt'") == 1


def test_a_copy_an_older_emfix_began_is_resumed_and_its_journal_gains_reserved(tmp_path):
    """A journal table from before `reserved` (what DST reserved): --resume reads it, reserves as before, finishes
    the copy, and the table gains the column."""
    source, target = sqlite_at(tmp_path, "s.db"), sqlite_at(tmp_path, "t.db")
    make_demo(source, shape=Shape(experiments=2, trials=2, runs=3, epochs=4, batches=3), faults=False)
    _stop_after_metric(source, target)
    with open_database(target) as db:
        db.execute("ALTER TABLE %s DROP COLUMN reserved" % db.quote(JOURNAL))
    result = migrate_experiment(source, target, 1, strategy="aggressive", resume=True)
    reference = sqlite_at(tmp_path, "reference.db")
    migrate_experiment(source, reference, 1, init=True, strategy="aggressive")
    assert result.verified and content(target) == content(reference)
    with open_database(target) as db:
        assert "reserved" in db.columns(JOURNAL)


def test_resume_takes_gained_ids_that_are_free_though_dst_wrote_above_the_reservation(tmp_path):
    """Found by a second outside tester: the resume refused when DST's application had written anywhere above the
    copy's reserved ids, though SRC's other experiments' ids lay there and the gained rows' own ids were free."""
    source, target = sqlite_at(tmp_path, "s.db"), sqlite_at(tmp_path, "t.db")
    make_demo(source, shape=Shape(experiments=2, trials=2, runs=3, epochs=4, batches=3), faults=False)
    when = "2026-01-01 00:00:00"
    from emfix.schema import create_schema

    def app_trial(name):
        with open_database(target) as db, db.transaction():
            experiment = db.scalar("SELECT min(id) FROM EXPERIMENT WHERE title = 'app'")
            db.execute("INSERT INTO TRIAL (name, experiment_id, start_time, update_time) VALUES (?, ?, ?, ?)",
                       (name, experiment, when, when))

    with open_database(target, create=True) as db, db.transaction():
        create_schema(db)
        db.execute("INSERT INTO EXPERIMENT (title, \"desc\", start_time, update_time) VALUES ('app', '', ?, ?)",
                   (when, when))
    app_trial("app before")  # TRIAL 1: the copy's trials move by 1
    _stop_after_metric(source, target)
    app_trial("app after")  # just above the copy's reserved trials, at an id of SRC's experiment 2 moved
    with open_database(source) as db, db.transaction():
        db.execute("INSERT INTO TRIAL (name, experiment_id, start_time, update_time) VALUES ('late', 1, ?, ?)",
                   (when, when))
    result = migrate_experiment(source, target, 1, strategy="balanced", resume=True,
                                snapshot_dir=str(tmp_path / "snaps"))
    assert result.verified and result.copied["TRIAL"] == 3
    with open_database(target) as db:
        names = [r[0] for r in db.query("SELECT name FROM TRIAL ORDER BY id")]
    assert names[:2] == ["app before", "trial 1"] and "app after" in names and names[-1] == "late"


def test_a_sqlite_generated_column_in_dst_is_named_as_computed_not_as_missing(tmp_path):
    """Found by a second outside tester: a DST SQLite column GENERATED ALWAYS where SRC holds values was said to be
    missing ("add it to DST first"); it is refused as a column DST computes."""
    from emfix.errors import SchemaError
    from emfix.schema import create_schema
    source, target = sqlite_at(tmp_path, "s.db"), sqlite_at(tmp_path, "t.db")
    make_demo(source, shape=Shape(experiments=1, trials=2, runs=2, epochs=2, batches=2), faults=False)
    with open_database(target, create=True) as db:
        create_schema(db)
        db.execute("DROP TABLE TRIAL")
        db.execute("CREATE TABLE TRIAL (id INTEGER PRIMARY KEY AUTOINCREMENT, name VARCHAR(255) GENERATED ALWAYS "
                   "AS ('t' || id) VIRTUAL, experiment_id INT NOT NULL, start_time TEXT NOT NULL, "
                   "update_time TEXT NOT NULL)")
    with pytest.raises(SchemaError) as refused:
        migrate_experiment(source, target, 1, strategy="aggressive")
    assert "computes TRIAL.name (generated column)" in refused.value.message


def test_after_a_lane_fails_while_committing_no_other_lane_writes_the_journal(tmp_path):
    """Seen once in CI (connections killed beside migrate into MariaDB): a lane whose connection was lost at
    COMMIT may have committed its page; another lane then wrote the journal row from a state without that page,
    taking its last key back, and the resume stopped at a duplicate key. A failure with the journal lock held
    now stops every other lane's commit (its page rolled back, the journal untouched)."""
    import types

    from emfix.copybatches import BatchCopy
    from emfix.copyjournal import ensure_journal, new_journal_row
    from emfix.errors import ConnectError, EmfixError
    from emfix.progress import NoProgress
    target = sqlite_at(tmp_path, "t.db")
    with open_database(target, create=True) as db:
        ensure_journal(db)
        db.execute("CREATE TABLE T (k INTEGER PRIMARY KEY)")
        with db.transaction():
            new_journal_row(db, "run", {}, {}, "now")
        copy = BatchCopy(None, db, types.SimpleNamespace(key="run"),
                         types.SimpleNamespace(position={}, copied={}), lambda: False, NoProgress())

        def commit_lost():
            db.execute("INSERT INTO T VALUES (1)")
            raise ConnectError("lost the connection during COMMIT")  # after the journal lock was taken
        original = copy._update_journal
        copy._update_journal = lambda *a, **k: (original(*a, **k), commit_lost())
        with pytest.raises(ConnectError):
            copy._commit_position(db, "T", [1], 1)
        copy._update_journal = original
        assert copy.journal_unsure
        with pytest.raises(EmfixError) as stopped:
            copy._commit_position(db, "T", [2], 1, write=lambda: db.execute("INSERT INTO T VALUES (2)"))
        assert "another connection to DST failed" in stopped.value.message
        assert db.scalar("SELECT count(*) FROM T") == 0
        assert db.scalar("SELECT copied FROM %s" % db.quote(JOURNAL)) == "{}"


def test_a_refusal_part_way_through_all_says_which_experiments_were_copied_before_it(tmp_path):
    """An outside tester: `migrate --all` stopped at experiment 3's breaks with "nothing was copied", though
    experiments 1 and 2 were copied and committed."""
    src = tmp_path / "src.db"
    make_demo(DatabaseAddress("sqlite", path=str(src)))
    refused = run_cli("migrate", str(src), str(tmp_path / "dst.db"), "--all", "--init", "--snapshot-dir",
                      str(tmp_path / "snaps"))
    assert refused.returncode == 1, refused.stderr
    assert "error: experiment 3: the source subtree has" in refused.stderr, refused.stderr
    assert "(experiments 1, 2 copied before it, and stay)" in refused.stderr, refused.stderr


@pytest.mark.parametrize("engine", ["sqlite", "mysql"])
@pytest.mark.parametrize("strategy", ["balanced", "aggressive"])
def test_a_table_dst_made_without_its_foreign_key_is_verified_by_srcs(engine, strategy, tmp_path, request):
    """Round 33: SRC's table X points at TRIAL; DST has X with the same columns but no declared foreign key. The copy
    put X's rows in DST exactly, and the verify, walking DST by DST's declared relations, counted 0 of them: DIFFERS
    (exit 4), and every --resume the same. DST's rows are reached by SRC's relations now."""
    if engine == "mysql":
        mysql_databases = request.getfixturevalue("mysql_databases")
        source, target = mysql_databases(), mysql_databases()
    else:
        source = DatabaseAddress("sqlite", path=str(tmp_path / "src.db"))
        target = DatabaseAddress("sqlite", path=str(tmp_path / "dst.db"))
    make_demo(source, shape=Shape(experiments=2, trials=2, runs=1, epochs=1, batches=1), faults=False)
    assert run_cli("init", url_of(target)).returncode == 0
    with open_database(source) as db:
        db.execute("CREATE TABLE X (trial_id INT PRIMARY KEY, note VARCHAR(20), FOREIGN KEY (trial_id) REFERENCES "
                   "TRIAL(id))")
        with db.transaction():
            db.execute("INSERT INTO X (trial_id, note) SELECT id, name FROM TRIAL")
    with open_database(target) as db:
        db.execute("CREATE TABLE X (trial_id INT PRIMARY KEY, note VARCHAR(20))")
    result = run_cli("migrate", url_of(source), url_of(target), "-e", "1", "--strategy", strategy,
                     "--snapshot-dir", str(tmp_path / "s"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "DIFFERS" not in result.stdout
    with open_database(target) as db:
        assert db.scalar("SELECT count(*) FROM X") == 2


ODD_LINK_VALUES = [2.5, "m\x00x", b"\x00\xff", "seven", 2 ** 63 - 1]


def stored_rows(path, experiment_id, table="BATCH_METRIC", columns=("batch_idx", "epoch_idx", "trial_run_id",
                                                                     "metric_id")):
    """`table`'s rows of one experiment as stored: each value's kind and bytes (hex: a NUL stays)."""
    with sqlite3.connect(path) as db:
        return sorted(db.execute(
            "SELECT " + ", ".join("typeof(m.%s), hex(m.%s)" % (c, c) for c in columns) +
            " FROM %s m JOIN TRIAL_RUN r ON r.id = m.trial_run_id JOIN TRIAL t ON t.id = r.trial_id "
            "WHERE t.experiment_id = ?" % table, (experiment_id,)).fetchall())


def test_tables_read_through_the_walks_key_tables_are_copied_with_their_values_as_stored(tmp_path, monkeypatch):
    """BATCH_METRIC's key is all its columns: its copy reads them from the walk's key table; BATCH's key is an index
    of its own: its rows are read by the rowid the walk kept. Odd values (a REAL, text holding a NUL, a BLOB, words,
    the greatest integer) must be what each row stores."""
    read_from = {}
    original = Subtree.copy_source

    def spy(self, db, graph, table):
        read_from[table] = original(self, db, graph, table)
        return read_from[table]

    monkeypatch.setattr(Subtree, "copy_source", spy)
    source = sqlite_at(tmp_path, "source.db")
    make_demo(source, shape=Shape(experiments=2), faults=False)
    with sqlite3.connect(source.path) as db:
        rowids = [r[0] for r in db.execute(
            "SELECT m.rowid FROM BATCH_METRIC m JOIN TRIAL_RUN r ON r.id = m.trial_run_id JOIN TRIAL t "
            "ON t.id = r.trial_id WHERE t.experiment_id = 1 ORDER BY m.rowid LIMIT ?", (len(ODD_LINK_VALUES),))]
        for rowid, value in zip(rowids, ODD_LINK_VALUES):
            db.execute("UPDATE BATCH_METRIC SET metric_id = ? WHERE rowid = ?", (value, rowid))
            db.execute("UPDATE BATCH SET time = ? WHERE rowid = ?", (value, rowid))
    before = stored_rows(source.path, 1)
    assert {kind for row in before for kind in row[6::8]} == {"integer", "real", "text", "blob"}
    batches = stored_rows(source.path, 1, "BATCH", ("idx", "epoch_idx", "trial_run_id", "time"))
    assert {kind for row in batches for kind in row[6::8]} == {"text", "blob"}  # (TEXT affinity: numbers as text)
    target = sqlite_at(tmp_path, "copy.db")
    result = migrate_experiment(source, target, 1, init=True, strategy="aggressive")  # (breaks: orphan ids)
    assert result.verified and result.offsets.get("EXPERIMENT", 0) == 0
    assert stored_rows(target.path, 1) == before
    assert stored_rows(target.path, 1, "BATCH", ("idx", "epoch_idx", "trial_run_id", "time")) == batches
    assert read_from["BATCH_METRIC"][1] == "x" and read_from["BATCH"][1] == "t"  # BATCH has a column more
    assert "emfix_rowid" in read_from["BATCH"][0] and "emfix_rowid" not in read_from["BATCH_METRIC"][0]


def test_an_aggressive_verify_counts_the_same_over_two_connections_as_over_one(mysql_address):
    """count_subtree's METRIC/ARTIFACT counts run on a second connection beside the others (migrate's aggressive
    verify into MySQL): the counts are those of one connection, a METRIC row missing included."""
    make_demo(mysql_address, shape=Shape(experiments=2))  # (with its damage: links to missing METRIC rows)
    with open_database(mysql_address) as db, open_database(mysql_address) as beside:
        graph = discover_graph(db)
        for experiment_id in (1, 2):
            alone = count_subtree(db, graph, experiment_id)
            assert alone["METRIC"] and alone["BATCH_METRIC"]
            assert count_subtree(db, graph, experiment_id, beside) == alone


def test_an_in_engine_copy_holds_srcs_moment_through_its_verify(tmp_path, monkeypatch):
    """Round 57: SQLite into SQLite (SRC in rollback-journal mode), the read lock that keeps writers out of SRC was
    let go after the copy, and a writer's commit before the verify's checksums of SRC made a whole copy DIFFERS
    (exit 4). The writer waits until the verify is done now."""
    from emfix import migrate
    source = sqlite_at(tmp_path, "source.db")
    make_demo(source, shape=Shape(experiments=2), faults=False)
    verify, writes = migrate._Migration.verify, []

    def verify_after_a_write(self, *args):
        writer = sqlite3.connect(source.path, timeout=0)
        try:
            with writer:
                writer.execute("UPDATE BATCH SET time = '2030-01-01 00:00:00' WHERE trial_run_id IN (SELECT r.id "
                               "FROM TRIAL_RUN r JOIN TRIAL t ON t.id = r.trial_id WHERE t.experiment_id = 1)")
            writes.append("committed")
        except sqlite3.OperationalError as exc:
            writes.append(str(exc))
        finally:
            writer.close()
        return verify(self, *args)

    monkeypatch.setattr(migrate._Migration, "verify", verify_after_a_write)
    result = migrate_experiment(source, sqlite_at(tmp_path, "copy.db"), 1, init=True, strategy="balanced",
                                snapshot=False)
    assert writes == ["database is locked"] and result.verified


@pytest.mark.parametrize("refusal, code, words", [
    ("CREATE TRIGGER frozen BEFORE INSERT ON TRIAL BEGIN SELECT RAISE(ABORT, 'trials are frozen'); END", 1,
     "SQLite refused a row: trials are frozen"),
    ("CREATE TRIGGER frozen BEFORE INSERT ON BATCH BEGIN SELECT RAISE(ABORT, 'no batches'); END", 1,
     "copying BATCH into %s stopped: SQLite refused a row: no batches"),  # (the table named: round 59)
    ("CREATE TABLE NOTE (id INTEGER PRIMARY KEY, trial_id INT REFERENCES TRIAL(id), v TEXT CHECK (v <> 'v1'))", 4,
     "SQLite refused a value: CHECK constraint failed"),
])
def test_a_row_a_sqlite_dst_refuses_is_said_and_resume_finishes_once_it_is_allowed(tmp_path, refusal, code, words):
    """Round 58: a SQLite DST's trigger or CHECK constraint refusing a row of an in-engine copy was exit 70 (its
    IntegrityError untranslated), every --resume too; into MariaDB the same was exit 1."""
    source, target = str(tmp_path / "source.db"), str(tmp_path / "copy.db")
    make_demo(DatabaseAddress("sqlite", path=source), shape=Shape(experiments=2), faults=False)
    with sqlite3.connect(source) as con:
        con.execute("CREATE TABLE NOTE (id INTEGER PRIMARY KEY, trial_id INT REFERENCES TRIAL(id), v TEXT)")
        con.execute("INSERT INTO NOTE (trial_id, v) SELECT id, 'v' || id FROM TRIAL")
    con.close()
    assert run_cli("init", target).returncode == 0
    with sqlite3.connect(target) as con:
        con.execute(refusal)
    con.close()
    refused = run_cli("migrate", source, target, "-e", "1", "--init")
    words = words % target if "%s" in words else words
    assert refused.returncode == code and words in refused.stderr and "Traceback" not in refused.stderr, \
        refused.stderr
    with sqlite3.connect(target) as con:
        con.execute("DROP TRIGGER IF EXISTS frozen")
        con.execute("DROP TABLE IF EXISTS NOTE")
    con.close()
    resumed = run_cli("migrate", source, target, "-e", "1", "--init", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert run_cli("validate", target, "-q").returncode == 0


def test_a_unique_index_of_dsts_own_is_named_as_such_and_resume_finishes_once_it_is_gone(tmp_path):
    """Round 59: two rows of the copy meeting a UNIQUE index DST alone has were said to be a key DST held already,
    and --force hinted (new ids meet it again); the way out is the index, then --resume."""
    source, target = str(tmp_path / "source.db"), str(tmp_path / "copy.db")
    make_demo(DatabaseAddress("sqlite", path=source), shape=Shape(experiments=2, trials=3), faults=False)
    assert run_cli("init", target).returncode == 0
    with sqlite3.connect(target) as con:
        con.execute("CREATE UNIQUE INDEX one_trial_each ON TRIAL(experiment_id)")
    con.close()
    refused = run_cli("migrate", source, target, "-e", "1")
    assert refused.returncode == 1 and "a unique index of DST's own refused a row" in refused.stderr and \
        "drop or change the UNIQUE index of TRIAL that DST alone has" in refused.stderr and "--force" not in \
        refused.stderr, refused.stderr
    with sqlite3.connect(target) as con:
        con.execute("DROP INDEX one_trial_each")
    con.close()
    resumed = run_cli("migrate", source, target, "-e", "1", "--resume")
    assert resumed.returncode == 0, resumed.stderr


def test_a_row_a_mariadb_trigger_refuses_is_said_and_resume_finishes_once_it_is_allowed(tmp_path, mysql_address):
    """Round 59: a trigger's SIGNAL into MariaDB (errno 1644) was exit 70, every --resume too."""
    source = str(tmp_path / "source.db")
    make_demo(DatabaseAddress("sqlite", path=source), shape=Shape(experiments=2), faults=False)
    assert run_cli("init", url_of(mysql_address)).returncode == 0
    with open_database(mysql_address) as db:
        db.execute("CREATE TRIGGER frozen BEFORE INSERT ON BATCH FOR EACH ROW SIGNAL SQLSTATE '45000' SET "
                   "MESSAGE_TEXT = 'no batches'")
    refused = run_cli("migrate", source, url_of(mysql_address), "-e", "1")
    assert refused.returncode == 1 and "copying BATCH into" in refused.stderr and "refused a row: no batches" in \
        refused.stderr and "Traceback" not in refused.stderr, refused.stderr
    with open_database(mysql_address) as db:
        db.execute("DROP TRIGGER frozen")
    resumed = run_cli("migrate", source, url_of(mysql_address), "-e", "1", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert run_cli("validate", url_of(mysql_address), "-q").returncode == 0
