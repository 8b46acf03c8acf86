"""MySQL snapshots as SQL text: exact, one moment over several connections, loadable by the mysql client."""

import json
import os
import shutil
import subprocess
import sys
import threading

import pytest
from conftest import ROOT, SUBTREE_TABLES, checksums, make_demo, run_cli, url_of
from hypothesis import given, settings
from hypothesis import strategies as st

from emfix import snapshot
from emfix.backends import open_database
from emfix.demo import Shape
from emfix.errors import EmfixError, SchemaError
from emfix.snapshot import mysqlrestore, restorefit, sqlreader, sqlrows, sqltext

TABLES = SUBTREE_TABLES + ("VALS",)


def empty(address, tables=TABLES):
    with open_database(address) as db:
        db.execute("SET SESSION FOREIGN_KEY_CHECKS = 0")
        for table in tables:
            db.execute("DELETE FROM %s" % db.quote(table))


def round_trip(address, directory, tables=TABLES, **create):
    """Snapshot (verified), empty the tables, restore; CHECKSUM TABLE must be what it was before."""
    before = checksums(address, tables)
    made = snapshot.create_snapshot(address, str(directory), verify=True, **create)
    empty(address, tables)
    result = snapshot.restore_snapshot(address, str(directory), made.id, safety_snapshot=False)
    assert checksums(address, tables) == before
    return made, result


@pytest.mark.parametrize("file_format", ["sql", "sqlite"])
def test_restore_of_either_format_leaves_checksum_table_identical(exact_mysql, tmp_path, file_format):
    made, result = round_trip(exact_mysql, tmp_path, file_format=file_format)
    assert made.file.endswith("." + ("sql" if file_format == "sql" else "db"))
    assert result.tables == made.tables


@pytest.mark.skipif(not shutil.which("mysql"), reason="the mysql client is not installed")
def test_sql_snapshot_loads_with_the_mysql_client_into_an_empty_database(exact_mysql, mysql_databases, tmp_path):
    made = snapshot.create_snapshot(exact_mysql, str(tmp_path))
    target = mysql_databases()
    with open(os.path.join(str(tmp_path), made.file), "rb") as dump:
        subprocess.run(["mysql", "-h", target.host, "-P", str(target.port), "-u", target.user, target.database],
                       stdin=dump, check=True, timeout=120)
    assert checksums(target, TABLES) == checksums(exact_mysql, TABLES)


@pytest.mark.parametrize("file_format", ["sql", "sqlite"])
def test_unsigned_integers_past_64_signed_bits_come_back_exact(mysql_address, tmp_path, file_format):
    """Outside testers: a SQLite-format snapshot of a BIGINT UNSIGNED above 2^63 - 1 crashed (exit 70); one of a
    BIT(64) from 2^63 on could not be restored ("Data too long")."""
    make_demo(mysql_address, shape=Shape(experiments=1, trials=1, runs=1, epochs=1, batches=1), faults=False)
    with open_database(mysql_address) as db:
        db.execute("CREATE TABLE `BIG` (id INT PRIMARY KEY, u BIGINT UNSIGNED, s BIGINT, b BIT(64))")
        db.execute("INSERT INTO `BIG` VALUES (1, 18446744073709551615, -9223372036854775808, b'1%s'), "
                   "(2, 9223372036854775808, 9223372036854775807, b'%s'), (3, 0, NULL, NULL)" % ("0" * 63, "1" * 64))
    round_trip(mysql_address, tmp_path, ("BIG",), file_format=file_format)


@pytest.mark.skipif(not shutil.which("mysql"), reason="the mysql client is not installed")
def test_line_ends_inside_values_survive_the_mysql_client(mysql_address, mysql_databases, tmp_path):
    """An outside tester: the file held a value's CR LF as the bytes, and the mysql client loading it took them for a
    line's end and dropped the CR; they are written as \\r and \\n now, as mysqldump writes them."""
    make_demo(mysql_address, shape=Shape(experiments=1, trials=1, runs=1, epochs=1, batches=1), faults=False)
    with open_database(mysql_address) as db:
        db.execute("UPDATE `EXPERIMENT` SET `desc` = ?", ("line1\r\nline2\rx\ny\r\n\\r\\n\r",))
    made = snapshot.create_snapshot(mysql_address, str(tmp_path), verify=True)
    target = mysql_databases()
    with open(os.path.join(str(tmp_path), made.file), "rb") as dump:
        subprocess.run(["mysql", "-h", target.host, "-P", str(target.port), "-u", target.user, target.database],
                       stdin=dump, check=True, timeout=120)
    assert checksums(target, ("EXPERIMENT",)) == checksums(mysql_address, ("EXPERIMENT",))
    with open_database(target) as db:
        assert db.scalar("SELECT `desc` FROM `EXPERIMENT`") == "line1\r\nline2\rx\ny\r\n\\r\\n\r"


@pytest.mark.parametrize("file_format", ["sql", "sqlite"])
def test_restore_into_a_database_without_tables_needs_no_safety_snapshot(exact_mysql, mysql_databases, tmp_path,
                                                                         file_format):
    """Found by an outside tester: a restore into a database whose tables were dropped failed on its safety
    snapshot ("has no tables: not an Experiment Manager database"); there is nothing to keep from before."""
    made = snapshot.create_snapshot(exact_mysql, str(tmp_path), file_format=file_format)
    target = mysql_databases()
    restored = run_cli("snapshot", "restore", url_of(target), "--snapshot-dir", str(tmp_path), "--snapshot-id",
                       made.id, "--from-other-database", "--yes", env={"EMFIX_MYSQL_PASSWORD": ""})
    assert restored.returncode == 0, restored.stderr
    assert "no safety snapshot: the database had no tables before" in restored.stdout
    assert checksums(target, TABLES) == checksums(exact_mysql, TABLES)


def small_pages(monkeypatch, limit):
    """The server's GROUP_CONCAT limit (and so a page) cut down to `limit` bytes."""
    opened = sqltext.open_reader

    def small_limit(address, retry_policy):
        db = opened(address, retry_policy)
        db.execute("SET SESSION group_concat_max_len = %d" % limit)
        db.page_limit = db.concat_limit = limit
        return db

    monkeypatch.setattr(snapshot.create, "open_reader", small_limit)


def test_pages_shrink_until_each_fits_the_servers_limit(exact_mysql, tmp_path, monkeypatch):
    """GROUP_CONCAT stops at group_concat_max_len without an error: a page that reaches it is read again
    smaller, never written cut off."""
    small_pages(monkeypatch, 3000)
    round_trip(exact_mysql, tmp_path)


@pytest.mark.parametrize("limit, probed", [(3000, False), (200, True)])
def test_one_key_value_too_large_for_a_page_is_split_by_the_next_key_column(mysql_address, tmp_path, monkeypatch,
                                                                            limit, probed):
    """BATCH's first key column (idx) has a few values holding every row: one value is read in ranges of the
    second (epoch_idx), and where one pair of values still holds more than a page, by probes on the third."""
    make_demo(mysql_address, shape=Shape(experiments=1, trials=2, runs=4, epochs=30, batches=2), faults=False)
    small_pages(monkeypatch, limit)  # one BATCH.idx value holds 240 rows, about 9 kB; one (idx, epoch_idx) 8 rows
    split, by_probes = [], sqltext._Pages.by_probes
    values, split_value = [], sqltext._Pages._split_value

    def recording(pages, bounds, params, prefix):
        split.append((pages.plan.table, prefix))
        return by_probes(pages, bounds, params, prefix)

    def recording_value(pages, bounds, params, value):
        values.append((pages.plan.table, value))
        return split_value(pages, bounds, params, value)

    monkeypatch.setattr(sqltext._Pages, "by_probes", recording)
    monkeypatch.setattr(sqltext._Pages, "_split_value", recording_value)
    round_trip(mysql_address, tmp_path, ("BATCH", "BATCH_METRIC", "EPOCH", "METRIC"))
    assert ("BATCH", 0) in values
    assert any(table == "BATCH" and len(prefix) == 2 for table, prefix in split) == probed, split


def test_a_gap_in_the_second_key_column_is_jumped_not_walked(mysql_address, tmp_path, monkeypatch):
    """A value of BATCH.idx read in ranges of epoch_idx: a range with no rows jumps to the next value there is
    (epoch 1,000,000 beside epochs 0-29), as the first column's ranges do, instead of a million empty pages."""
    make_demo(mysql_address, shape=Shape(experiments=1, trials=2, runs=4, epochs=30, batches=2), faults=False)
    with open_database(mysql_address) as db:
        run = db.scalar("SELECT min(trial_run_id) FROM EPOCH")
        db.execute("INSERT INTO EPOCH (idx, trial_run_id, time) VALUES (1000000, ?, '2026-01-01 00:00:00')", (run,))
        db.execute("INSERT INTO BATCH (idx, epoch_idx, trial_run_id, time) VALUES (0, 1000000, ?, "
                   "'2026-01-01 00:00:00')", (run,))
    small_pages(monkeypatch, 3000)
    pages = []
    page = sqltext._Pages._page

    def counted(self, *args, **kwargs):
        pages.append(self.plan.table)
        return page(self, *args, **kwargs)

    monkeypatch.setattr(sqltext._Pages, "_page", counted)
    round_trip(mysql_address, tmp_path, ("BATCH", "EPOCH"))
    assert pages.count("BATCH") < 500, pages.count("BATCH")


def test_a_snapshot_synced_in_the_background_while_written_is_whole(exact_mysql, tmp_path, monkeypatch):
    """The file goes to disk in pieces as it is written (the last fsync has little left); what is written is
    what is restored, and each sync ends before the file is closed."""
    synced, sync = [], sqltext._sync_quietly

    def recording(fd):
        sync(fd)
        synced.append(os.fstat(fd).st_size)  # the descriptor is still open when the sync ends

    monkeypatch.setattr(sqltext, "SYNC_BYTES", 2000)
    monkeypatch.setattr(sqltext, "_sync_quietly", recording)
    small_pages(monkeypatch, 3000)
    made, _ = round_trip(exact_mysql, tmp_path)
    assert len(synced) > 1 and max(synced) <= made.size


@pytest.mark.parametrize("file_format", ["sql", "sqlite"])
def test_floats_whose_text_outgrows_their_declared_width_come_back_exact(mysql_address, tmp_path, file_format):
    """An outside tester: MariaDB writes -2.8019071776292417e-14 as -0.000000000000028019071776292417 (33 characters
    against a DOUBLE's declared 22); GROUP_CONCAT cut such a row, and the snapshot failed as if it were too long."""
    make_demo(mysql_address, shape=Shape(experiments=1, trials=1, runs=1, epochs=1, batches=1), faults=False)
    doubles = [-2.8019071776292417e-14, 1e-300, 5e-324, 1.7976931348623157e308, -123456789012345.67, 0.1,
               3.0000000000000004e-15]
    with open_database(mysql_address) as db:
        db.execute("CREATE TABLE `WIDE` (id INT PRIMARY KEY, d DOUBLE, f FLOAT, d2 DOUBLE)")
        db.executemany("INSERT INTO `WIDE` VALUES (?, ?, ?, ?)", [(n, v, v if abs(v) < 1e38 else 1.5, -v)
                                                                  for n, v in enumerate(doubles)])
    round_trip(mysql_address, tmp_path, ("WIDE",), file_format=file_format)


def test_a_table_whose_ids_are_far_apart_is_read_in_pages_not_a_row_a_page(mysql_address, tmp_path, monkeypatch):
    """An outside tester: ids a million apart were read a row a page, two queries a row (20,000 rows in 34 s): a
    page's width in key values was capped as a row count is."""
    make_demo(mysql_address, shape=Shape(experiments=1, trials=1, runs=1, epochs=1, batches=1), faults=False)
    with open_database(mysql_address) as db:
        db.execute("CREATE TABLE `SPARSE` (id BIGINT PRIMARY KEY, v INT)")
        db.executemany("INSERT INTO `SPARSE` VALUES (?, ?)", [(n * 1000000, n) for n in range(1, 5001)])
    pages, page = [], sqltext._Pages._page

    def counted(self, *args, **kwargs):
        pages.append(self.plan.table)
        return page(self, *args, **kwargs)
    monkeypatch.setattr(sqltext._Pages, "_page", counted)
    made, _ = round_trip(mysql_address, tmp_path, ("SPARSE",))
    assert made.tables["SPARSE"] == 5000 and pages.count("SPARSE") < 50, pages.count("SPARSE")


def test_a_row_longer_than_a_page_is_kept_whole(exact_mysql, tmp_path):
    """Pages stay near 512 kB (memory stays flat); a single 3 MB value still fits, up to max_allowed_packet."""
    with open_database(exact_mysql) as db:
        db.execute("INSERT INTO `VALS` (id, j, s) VALUES (5, ?, ?)", ('{"big": "%s"}' % ("x" * (3 << 20)), "ü" * 1000))
    round_trip(exact_mysql, tmp_path)


def test_a_row_larger_than_the_limit_is_a_clear_error(exact_mysql, tmp_path, monkeypatch):
    small_pages(monkeypatch, 20)
    with pytest.raises(EmfixError, match="larger than the server's max_allowed_packet"):
        snapshot.create_snapshot(exact_mysql, str(tmp_path))
    assert not [n for n in os.listdir(str(tmp_path)) if not n.startswith(".")]


@pytest.mark.parametrize("cut", [1, 100, -1])
def test_cut_off_sql_snapshot_is_damaged_even_with_a_matching_checksum(exact_mysql, tmp_path, cut):
    made = snapshot.create_snapshot(exact_mysql, str(tmp_path))
    path = os.path.join(str(tmp_path), made.file)
    data = open(path, "rb").read()
    with open(path, "wb") as handle:
        handle.write(data[:-cut] if cut > 0 else data + b"-- 5\nX;\n")
    made.size, made.sha256 = os.path.getsize(path), snapshot.sha256_of(path)
    snapshot.write_manifest(str(tmp_path), made)
    status = snapshot.verify_snapshot(str(tmp_path), made.id)
    assert status.status == "damaged"
    assert "emfix SQL snapshot" not in status.problem and status.problem


WRITER = """
import sys
import mysql.connector
host, port, user, database = sys.argv[1:5]
con = mysql.connector.connect(host=host, port=int(port), user=user, database=database, autocommit=False)
cur = con.cursor()
print("writing", flush=True)
n = 0
while True:
    n += 1
    cur.execute("INSERT INTO EXPERIMENT (title, `desc`, start_time, update_time) VALUES ('w', 'w', NOW(), NOW())")
    cur.execute("INSERT INTO TRIAL (name, experiment_id, start_time, update_time) "
                "VALUES ('w', LAST_INSERT_ID(), NOW(), NOW())")
    con.commit()
"""


def snapshots_beside_a_writer(code, address, tmp_path, count=4):
    """`count` verified snapshots of `address` while a process running `code` (given host, port, user, database;
    it prints "writing" once it writes) writes to it."""
    writer = subprocess.Popen([sys.executable, "-c", code, address.host, str(address.port), address.user,
                               address.database], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "writing"
        return [snapshot.create_snapshot(address, str(tmp_path), verify=True) for _ in range(count)]
    finally:
        writer.kill()
        writer.wait()


def test_snapshot_over_two_connections_during_writes_is_one_moment(mysql_address, tmp_path, monkeypatch):
    """Each experiment and its trial are written in one transaction, and both tables are split into
    ranges that two connections take turns reading: a snapshot that mixed two moments would split a pair."""
    make_demo(mysql_address, shape=Shape(experiments=20, trials=2, runs=1, epochs=1, batches=1), faults=False)
    monkeypatch.setattr(sqltext, "CHUNK_ROWS", 2)
    with open_database(mysql_address) as db:
        db.execute("ANALYZE TABLE `EXPERIMENT`, `TRIAL`")  # row estimates, so the tables are split
        gap = int(db.scalar("SELECT (SELECT count(*) FROM EXPERIMENT) - (SELECT count(*) FROM TRIAL)"))
    made = snapshots_beside_a_writer(WRITER, mysql_address, tmp_path)
    for manifest in made:
        assert manifest.tables["EXPERIMENT"] - manifest.tables["TRIAL"] == gap
    assert len({m.tables["TRIAL"] for m in made}) > 1  # the writer really was writing


MYISAM_WRITER = """
import sys
import mysql.connector
host, port, user, database = sys.argv[1:5]
con = mysql.connector.connect(host=host, port=int(port), user=user, database=database, autocommit=True)
cur = con.cursor()
print("writing", flush=True)
while True:
    cur.execute("INSERT INTO LOG_A (note) VALUES ('w')")
    cur.execute("INSERT INTO LOG_B (note) VALUES ('w')")
"""


def test_a_snapshot_of_tables_without_transactions_beside_a_writer_is_one_moment(mysql_address, tmp_path,
                                                                                  monkeypatch):
    """MyISAM tables (the schema's notes name them as a source of orphans) are in no consistent snapshot: read in
    ranges by several connections while the application wrote, a snapshot mixed moments. FLUSH TABLES WITH READ
    LOCK is held until every table is read now (mysqldump's --lock-all-tables): the application's writes wait."""
    make_demo(mysql_address, shape=Shape(experiments=2, trials=1, runs=1, epochs=1, batches=1), faults=False)
    monkeypatch.setattr(sqltext, "CHUNK_ROWS", 2)
    with open_database(mysql_address) as db:
        for table in ("LOG_A", "LOG_B"):
            db.execute("CREATE TABLE %s (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(10)) ENGINE=MyISAM" % table)
            db.executemany("INSERT INTO %s (note) VALUES (?)" % table, [("seed",)] * 50)
        db.execute("ANALYZE TABLE LOG_A, LOG_B")  # row estimates, so the tables are split
    made = snapshots_beside_a_writer(MYISAM_WRITER, mysql_address, tmp_path)
    for manifest in made:  # A is written first: at any one moment A holds as many rows as B, or one more
        assert manifest.tables["LOG_A"] - manifest.tables["LOG_B"] in (0, 1), manifest.tables
    assert len({m.tables["LOG_B"] for m in made}) > 1  # the writer really was writing


REFUSE_ROW = ("CREATE TRIGGER `refuse` BEFORE INSERT ON `%s` FOR EACH ROW IF NEW.id = %d THEN "
              "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'row refused by a trigger'; END IF")


def test_restore_stops_at_the_first_refused_statement(exact_mysql, tmp_path):
    made = snapshot.create_snapshot(exact_mysql, str(tmp_path))
    with open_database(exact_mysql) as db:
        db.execute(REFUSE_ROW % ("VALS", 4))  # the tables fit; one row of the snapshot is refused all the same
    with pytest.raises(SchemaError, match="refused a row: row refused by a trigger"):
        snapshot.restore_snapshot(exact_mysql, str(tmp_path), made.id, safety_snapshot=False)
    assert threading.active_count() == 1  # no loader thread is left waiting


def restore_killed_mid_load(mysql_address, tmp_path, monkeypatch, *options):
    """A restore of a snapshot of the demo killed once BATCH_METRIC is emptied and partly loaded again: (its
    command line, the checksums the snapshot holds)."""
    make_demo(mysql_address, shape=Shape(experiments=2, trials=3, runs=4, epochs=20, batches=10), faults=False)
    before = checksums(mysql_address, RESTORED_TABLES)
    small_pages(monkeypatch, 4000)  # a file of a few hundred small INSERTs: a kill lands between two
    made = snapshot.create_snapshot(mysql_address, str(tmp_path))
    monkeypatch.undo()
    with open_database(mysql_address) as db:
        db.execute("UPDATE `METRIC` SET total_val = total_val + 1")
    total = made.tables["BATCH_METRIC"]
    argv = [sys.executable, "-m", "emfix", "snapshot", "restore", url_of(mysql_address), "--snapshot-dir",
            str(tmp_path), "--snapshot-id", made.id, "--yes"] + list(options)
    proc = subprocess.Popen(argv, env=dict(os.environ, PYTHONPATH=ROOT), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    killed = False
    with open_database(mysql_address) as admin:
        while proc.poll() is None:  # kill it once BATCH_METRIC is emptied and partly loaded again
            if 0 < int(admin.scalar("SELECT count(*) FROM `BATCH_METRIC`")) < total:
                proc.kill()
                killed = True
    proc.wait()
    assert killed, "the restore finished before it could be killed"
    assert checksums(mysql_address, RESTORED_TABLES) != before  # half restored
    return argv, before


RESTORED_TABLES = ("BATCH", "BATCH_METRIC", "EPOCH", "METRIC", "TRIAL_RUN")


def test_restore_killed_mid_load_is_finished_by_running_it_again(mysql_address, tmp_path, monkeypatch):
    argv, before = restore_killed_mid_load(mysql_address, tmp_path, monkeypatch, "--no-safety-snapshot", "-q")
    again = run_cli(*argv[3:])
    assert again.returncode == 0, again.stderr
    assert checksums(mysql_address, RESTORED_TABLES) == before


def test_a_restore_run_again_after_a_kill_names_the_snapshot_from_before_the_first(mysql_address, tmp_path,
                                                                                    monkeypatch):
    """Round 29: the rerun said "the content from before is in snapshot X", X its own safety snapshot of the half
    the killed one left; the snapshot from before that one went unnamed. Both are named now, each for what it is."""
    argv, before = restore_killed_mid_load(mysql_address, tmp_path, monkeypatch)
    with open_database(mysql_address) as db:
        first = db.scalar("SELECT safety_snapshot_id FROM `_emfix_restore`")
    again = run_cli(*argv[3:])
    assert again.returncode == 0, again.stderr
    assert checksums(mysql_address, RESTORED_TABLES) == before
    said = again.stdout.replace("\n", " ")
    assert "before the restore that did not finish is in snapshot %s" % first in said, said
    assert "holds the partly restored content" in said


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_restore_interrupted_mid_load_says_it_is_partly_restored_and_names_the_safety_snapshot(
        mysql_address, tmp_path, monkeypatch, signal_name):
    """Found by an outside tester: a restore stopped by SIGTERM said "nothing half-written was kept" (Ctrl-C:
    "interrupted") over emptied tables. It says the database is partly restored, and which snapshot holds
    what was there (exit 5: running it again finishes it)."""
    import signal
    make_demo(mysql_address, shape=Shape(experiments=2, trials=3, runs=4, epochs=20, batches=10), faults=False)
    tables = ("BATCH", "BATCH_METRIC", "EPOCH", "METRIC", "TRIAL_RUN")
    small_pages(monkeypatch, 4000)  # a file of a few hundred small INSERTs: the signal lands between two
    made = snapshot.create_snapshot(mysql_address, str(tmp_path))
    monkeypatch.undo()
    with open_database(mysql_address) as db:
        db.execute("UPDATE `METRIC` SET total_val = total_val + 1")
    before = checksums(mysql_address, tables)
    total = made.tables["BATCH_METRIC"]
    argv = [sys.executable, "-m", "emfix", "snapshot", "restore", url_of(mysql_address), "--snapshot-dir",
            str(tmp_path), "--snapshot-id", made.id, "--yes", "-q"]
    proc = subprocess.Popen(argv, env=dict(os.environ, PYTHONPATH=ROOT), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    sent = False
    with open_database(mysql_address) as admin:
        while proc.poll() is None and not sent:  # once BATCH_METRIC is emptied and partly loaded again
            if 0 < int(admin.scalar("SELECT count(*) FROM `BATCH_METRIC`")) < total:
                proc.send_signal(getattr(signal, signal_name))
                sent = True
    _out, err = proc.communicate(timeout=120)
    assert sent, "the restore finished before the signal could be sent"
    assert proc.returncode == 5 and "Traceback" not in err, err
    assert "partly restored" in err and ("SIGTERM" if signal_name == "SIGTERM" else "Ctrl-C") in err, err
    safety = [s.id for s in snapshot.list_snapshots(str(tmp_path)) if s.id != made.id]
    assert len(safety) == 1 and "--snapshot-id %s" % safety[0] in err
    back = run_cli("snapshot", "restore", url_of(mysql_address), "--snapshot-dir", str(tmp_path),
                   "--snapshot-id", safety[0], "--yes", "--no-safety-snapshot")
    assert back.returncode == 0, back.stderr
    assert checksums(mysql_address, tables) == before


# -- #23: a page GROUP_CONCAT cut off is never written, and verify sees one an older emfix wrote ------

GRIN = "\U0001F600"
HUGE_JSON = '{"a":"x' + GRIN * 800000 + '"}'  # 3.2 MB: past the 2 MB a page may first take, cut at a whole character


def huge_metric(address):
    make_demo(address, shape=Shape(experiments=1, trials=2, runs=2, epochs=3, batches=2), faults=False)
    with open_database(address) as db:
        db.execute("UPDATE `METRIC` SET per_label_val = ? WHERE id = 3", (HUGE_JSON,))


def test_a_row_that_group_concat_cuts_mid_character_is_read_again_not_written_cut(mysql_address, tmp_path):
    huge_metric(mysql_address)
    made, _ = round_trip(mysql_address, tmp_path, SUBTREE_TABLES)
    assert snapshot.verify_snapshot(str(tmp_path), made.id, full=True).status == "verified"
    with open_database(mysql_address, readonly=True) as db:
        assert db.scalar("SELECT per_label_val FROM `METRIC` WHERE id = 3") == HUGE_JSON


def rewrite_statements(directory, made, change):
    """Write the snapshot again with `change` applied to each statement, its manifest made to match."""
    path = os.path.join(directory, made.file)
    with open(path, "rb") as handle:
        first = handle.readline()
        handle.seek(0)
        statements = [change(s) for s in sqlreader.SnapshotReader(path).frames(handle)]
    last = open(path, "rb").read().rsplit(b"\n", 2)[-2] + b"\n"
    with open(path, "wb") as handle:
        handle.write(first)
        for statement in statements:
            handle.write(b"-- %d\n%s;\n" % (len(statement) + 2, statement))
        handle.write(last)
    made.size, made.sha256 = os.path.getsize(path), snapshot.sha256_of(path)
    snapshot.write_manifest(directory, made)


def test_verify_and_restore_refuse_a_snapshot_with_a_row_cut_mid_character(mysql_address, tmp_path):
    """What emfix wrote before #23: the page cut 1-3 bytes short of the limit, inside the string, `)` after it."""
    huge_metric(mysql_address)
    made = snapshot.create_snapshot(mysql_address, str(tmp_path), verify=True)
    emoji = GRIN.encode("utf-8")
    rewrite_statements(str(tmp_path), made, lambda s: s[:s.index(emoji) + 4 * 500000] + b")" if emoji in s else s)
    before = checksums(mysql_address, SUBTREE_TABLES)
    for full in (False, True):
        status = snapshot.verify_snapshot(str(tmp_path), made.id, full=full)
        assert status.status == "damaged" and "INSERT into METRIC" in status.problem
    listed = run_cli("snapshot", "verify", "--all", "--snapshot-dir", str(tmp_path))
    assert listed.returncode != 0 and "damaged" in listed.stdout
    restore = run_cli("snapshot", "restore", url_of(mysql_address), "--snapshot-dir", str(tmp_path),
                      "--snapshot-id", made.id, "--yes")
    assert restore.returncode != 0 and "cut off" in restore.stderr and "Traceback" not in restore.stderr
    assert checksums(mysql_address, SUBTREE_TABLES) == before  # refused before anything was emptied


def test_full_verify_counts_the_rows_of_every_insert(mysql_address, tmp_path):
    """A page cut exactly where a row ends leaves whole rows: only counting them finds the missing ones."""
    make_demo(mysql_address, shape=Shape(experiments=1, trials=2, runs=2, epochs=3, batches=2), faults=False)
    made = snapshot.create_snapshot(mysql_address, str(tmp_path))
    rewrite_statements(str(tmp_path), made, lambda s: s[:s.rindex(b"),(")] + b")"
                       if s.startswith(b"INSERT INTO `METRIC`") else s)
    assert snapshot.verify_snapshot(str(tmp_path), made.id, record=False).status == "verified"
    status = snapshot.verify_snapshot(str(tmp_path), made.id, full=True)
    assert status.status == "damaged" and "METRIC %d, not %d" % (made.tables["METRIC"] - 1, made.tables["METRIC"]) \
        in status.problem


def sql_quote(text):
    """MySQL's QUOTE(): backslash, quote, NUL and Control-Z escaped."""
    return "'%s'" % text.replace("\\", "\\\\").replace("'", "\\'").replace("\0", "\\0").replace("\x1a", "\\Z")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.one_of(st.none(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                                   st.text(alphabet="'\\(),X0e.-\0\x1a \n" + GRIN, max_size=12), st.binary(max_size=4)),
                         min_size=3, max_size=3), min_size=1, max_size=6),
       st.integers(min_value=1, max_value=40))
def test_rows_read_from_the_text_are_the_rows_written(rows, window):
    def literal(value):
        if value is None:
            return "NULL"
        if isinstance(value, bytes):
            return "X'%s'" % value.hex().upper()
        return sql_quote(value) if isinstance(value, str) else repr(value)

    statement = ("INSERT INTO `T``x` (`a`, `b`, `c`) VALUES (%s)" % "),(".join(
        ",".join(literal(v) for v in row) for row in rows)).encode("utf-8")
    assert sqlrows.count_insert_rows(statement) == ("T`x", len(rows))
    assert sqlrows.last_row_problem(statement) == ""
    assert sqlrows.last_row_problem(statement, statement[-window:]) in ("", None)  # never a cut that is not there
    last = literal(rows[-1][-1]).encode("utf-8")
    if last.endswith(b"'"):  # a cut inside a quoted value (the server cuts at a character, so in a string)
        for cut in range(len(statement) - len(last) + 1, len(statement) - 1):
            for damaged in (statement[:cut] + b")", statement[:cut]):
                assert sqlrows.last_row_problem(damaged), damaged
                with pytest.raises(ValueError):
                    sqlrows.count_insert_rows(damaged)


# -- #23: a restore into tables that changed is refused before anything is emptied ----------------

@pytest.mark.parametrize("file_format", ["sql", "sqlite"])
@pytest.mark.parametrize("change, named", [
    ("ALTER TABLE `METRIC` ADD `note` VARCHAR(10) NOT NULL", "METRIC.note (varchar(10) NOT NULL, no default)"),
    ("ALTER TABLE `TRIAL` DROP COLUMN `name`", "TRIAL.name (in the snapshot) is not in the table"),
    # an outside tester: a unique key added since emptied the tables, then refused a row ("partly restored")
    ("UPDATE `ARTIFACT` SET `type` = CONCAT(`type`, `id`); ALTER TABLE `ARTIFACT` ADD UNIQUE KEY `u_type` (`type`)",
     "ARTIFACT has a unique key u_type on (type) that the snapshot's table did not have"),
    ("ALTER TABLE `TRIAL` ADD CONSTRAINT `named` CHECK (`name` <> '')",
     "TRIAL has a CHECK constraint named that the snapshot's table did not have"),
    # round 28: unique in its first characters only (a prefix), and a column that took NULL made NOT NULL
    ("UPDATE `ARTIFACT` SET `loc` = CONCAT(LPAD(`id`, 10, '0'), `loc`); ALTER TABLE `ARTIFACT` ADD UNIQUE KEY `p10` "
     "(`loc`(10), `type`)", "ARTIFACT has a unique key p10 on (loc(10), type)"),
    ("UPDATE `EXPERIMENT` SET `desc` = '' WHERE `desc` IS NULL; ALTER TABLE `EXPERIMENT` MODIFY `desc` TEXT NOT NULL",
     "EXPERIMENT.desc is NOT NULL now, the snapshot's took NULL"),
    ("UPDATE `EXPERIMENT` SET title = 'abc'; ALTER TABLE `EXPERIMENT` MODIFY `title` VARCHAR(3)",
     "EXPERIMENT.title is varchar(3)"),  # the snapshot's titles are longer
])
def test_restore_into_tables_that_no_longer_fit_is_refused_before_anything_is_emptied(
        mysql_address, tmp_path, file_format, change, named):
    make_demo(mysql_address, shape=Shape(experiments=2, trials=2, runs=2, epochs=3, batches=2), faults=False)
    made = snapshot.create_snapshot(mysql_address, str(tmp_path), file_format=file_format)
    with open_database(mysql_address) as db:
        for statement in change.split("; "):
            db.execute(statement)
    before = checksums(mysql_address, SUBTREE_TABLES)
    result = run_cli("snapshot", "restore", url_of(mysql_address), "--snapshot-dir", str(tmp_path),
                     "--snapshot-id", made.id, "--yes")
    assert result.returncode == 1, result.stderr
    assert named in result.stderr and "nothing was changed" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 2, result.stderr  # its error and hint alone (round 30: 3 lines)
    assert checksums(mysql_address, SUBTREE_TABLES) == before
    assert [s.id for s in snapshot.list_snapshots(str(tmp_path))] == [made.id]  # no safety snapshot taken for it


@pytest.mark.parametrize("file_format", ["sql", "sqlite"])
@pytest.mark.parametrize("change, named", [
    ("ALTER TABLE `COLL` MODIFY `name` VARCHAR(20) COLLATE utf8mb4_general_ci",
     "COLL.name, in a unique key, compares by utf8mb4_general_ci now, the snapshot's by utf8mb4_bin"),
    ("ALTER TABLE `COLL` MODIFY `note` VARCHAR(20) CHARACTER SET latin1",
     "COLL.note is CHARACTER SET latin1 now, the snapshot's was utf8mb4"),
])
def test_a_restore_into_text_columns_of_another_collation_or_character_set_is_refused_first(
        mysql_address, tmp_path, file_format, change, named):
    """Round 29: 'a' and 'A' under a unique key of utf8mb4_bin, the column made utf8mb4_general_ci since: the
    restore emptied the tables, then met the repeated key ("partly restored"); an emoji in a column made latin1 since
    the same. Refused before anything is emptied now."""
    with open_database(mysql_address) as db:
        db.execute("CREATE TABLE `COLL` (id INT PRIMARY KEY, name VARCHAR(20) COLLATE utf8mb4_bin, note VARCHAR(20), "
                   "UNIQUE KEY `u_name` (name)) DEFAULT CHARSET=utf8mb4")
        db.executemany("INSERT INTO `COLL` VALUES (?, ?, ?)", [(1, "a", "x"), (2, "A", "\U0001f600"), (3, "b", "y")])
    made = snapshot.create_snapshot(mysql_address, str(tmp_path), file_format=file_format)
    with open_database(mysql_address) as db:
        db.execute("DELETE FROM `COLL` WHERE id = 2")
        db.execute(change)
        before = sorted(db.query("SELECT * FROM `COLL`"))
    result = run_cli("snapshot", "restore", url_of(mysql_address), "--snapshot-dir", str(tmp_path),
                     "--snapshot-id", made.id, "--yes")
    assert result.returncode == 1, result.stderr
    assert named in result.stderr and "nothing was changed" in result.stderr, result.stderr
    with open_database(mysql_address) as db:
        assert sorted(db.query("SELECT * FROM `COLL`")) == before


@pytest.mark.parametrize("file_format", ["sql", "sqlite"])
def test_a_generated_column_dropped_since_is_no_refusal_one_made_generated_is(mysql_address, tmp_path, file_format):
    """Round 29: a VIRTUAL column dropped since the snapshot was refused as "not in the table", though a snapshot
    holds no value of one (the server computes it); a column made GENERATED since would have the server replace
    the snapshot's values (or refuse them after the tables were emptied): refused first."""
    with open_database(mysql_address) as db:
        db.execute("CREATE TABLE `GEN` (id INT PRIMARY KEY, bi BIGINT, gen BIGINT AS (bi + 1) VIRTUAL, g BIGINT)")
        db.execute("INSERT INTO `GEN` (id, bi, g) VALUES (1, 10, 7), (2, 20, 8)")
    made = snapshot.create_snapshot(mysql_address, str(tmp_path), file_format=file_format)
    argv = ("snapshot", "restore", url_of(mysql_address), "--snapshot-dir", str(tmp_path), "--snapshot-id", made.id,
            "--yes", "--no-safety-snapshot")
    with open_database(mysql_address) as db:
        db.execute("ALTER TABLE `GEN` DROP COLUMN gen")
        db.execute("DELETE FROM `GEN` WHERE id = 2")
    result = run_cli(*argv)
    assert result.returncode == 0, result.stderr
    with open_database(mysql_address) as db:
        assert sorted(db.query("SELECT id, bi, g FROM `GEN`")) == [(1, 10, 7), (2, 20, 8)]
        db.execute("ALTER TABLE `GEN` DROP COLUMN g, ADD COLUMN g BIGINT AS (bi * 2) VIRTUAL")
    result = run_cli(*argv)
    assert result.returncode == 1 and "GEN.g is computed by the server now" in result.stderr, result.stderr
    assert "nothing was changed" in result.stderr
    with open_database(mysql_address) as db:  # round 30: a generated one made plain NOT NULL, no default
        db.execute("ALTER TABLE `GEN` DROP COLUMN g, ADD COLUMN g BIGINT")
        db.execute("ALTER TABLE `GEN` ADD COLUMN gen BIGINT AS (bi + 1) VIRTUAL")
    virtual = snapshot.create_snapshot(mysql_address, str(tmp_path), file_format=file_format)
    with open_database(mysql_address) as db:
        db.execute("ALTER TABLE `GEN` DROP COLUMN gen, ADD COLUMN gen BIGINT NOT NULL")
        before = sorted(db.query("SELECT * FROM `GEN`"))
    result = run_cli(*argv[:-3], virtual.id, "--yes", "--no-safety-snapshot")
    assert result.returncode == 1 and "GEN.gen (bigint NOT NULL, no default) is not in the snapshot" in \
        result.stderr, result.stderr
    with open_database(mysql_address) as db:
        assert sorted(db.query("SELECT * FROM `GEN`")) == before


@pytest.mark.parametrize("keys", [[4294967296], [255, 65536, 4294967296, 18446744073709551615]])
def test_a_table_keyed_by_a_bit_64_is_snapshotted_and_restored_exactly(mysql_address, tmp_path, keys):
    """Round 31: MIN() of a BIT(64) comes back as digits the driver reads as the value's bytes: a key from 2^32 on
    made the snapshot hang (and every repair, which takes one first), a smaller one was read wrong."""
    with open_database(mysql_address) as db:
        db.execute("CREATE TABLE `BITKEY` (k BIT(64) PRIMARY KEY, v INT)")
        db.executemany("INSERT INTO `BITKEY` VALUES (?, ?)", [(k, n) for n, k in enumerate(keys)])
    made = run_cli("snapshot", "create", url_of(mysql_address), "--snapshot-dir", str(tmp_path), "--json", timeout=60)
    assert made.returncode == 0, made.stderr
    with open_database(mysql_address) as db:
        db.execute("UPDATE `BITKEY` SET v = v + 100")
    result = run_cli("snapshot", "restore", url_of(mysql_address), "--snapshot-dir", str(tmp_path), "--yes",
                     "--no-safety-snapshot", timeout=60)
    assert result.returncode == 0, result.stderr
    with open_database(mysql_address) as db:
        assert sorted(db.query("SELECT k + 0, v FROM `BITKEY`")) == sorted((k, n) for n, k in enumerate(keys))


@pytest.mark.parametrize("file_format", ["sql", "sqlite"])
@pytest.mark.parametrize("change, named", [
    ("MODIFY e ENUM('alpha','beta')", "CHANGED.e is enum('alpha','beta'), the snapshot's was enum('Alpha','beta')"),
    ("MODIFY s SET('red','GREEN')", "CHANGED.s is set('red','GREEN')"),
    ("MODIFY bl BINARY(20)", "CHANGED.bl is binary(20), the snapshot's was varbinary(4)"),
    ("DROP COLUMN g, ADD COLUMN g INT NULL", "CHANGED.g was computed by the server (GENERATED) in the snapshot"),
])
def test_a_restore_that_would_change_values_on_their_way_in_is_refused_first(mysql_address, tmp_path, file_format,
                                                                              change, named):
    """Round 31: 'Alpha' came back 'alpha' (an ENUM's values compared in any case), X'00FF' as 20 bytes (a BINARY
    pads), a generated column made plain got NULL for every row: exit 0, no word. Refused before anything is
    emptied now; an ENUM that only gained a value takes the snapshot's rows."""
    with open_database(mysql_address) as db:
        db.execute("CREATE TABLE `CHANGED` (id INT PRIMARY KEY, e ENUM('Alpha','beta'), s SET('Red','GREEN'), "
                   "bl VARBINARY(4), g INT AS (id * 2) VIRTUAL)")
        db.execute("INSERT INTO `CHANGED` (id, e, s, bl) VALUES (1, 'Alpha', 'Red,GREEN', X'00FF')")
    made = snapshot.create_snapshot(mysql_address, str(tmp_path), file_format=file_format)
    argv = ("snapshot", "restore", url_of(mysql_address), "--snapshot-dir", str(tmp_path), "--snapshot-id", made.id,
            "--yes", "--no-safety-snapshot")
    with open_database(mysql_address) as db:
        db.execute("ALTER TABLE `CHANGED` MODIFY e ENUM('Alpha','beta','gamma')")  # a value more: no refusal
    assert run_cli(*argv).returncode == 0
    with open_database(mysql_address) as db:
        db.execute("ALTER TABLE `CHANGED` %s" % change)
        before = sorted(db.query("SELECT * FROM `CHANGED`"))
    result = run_cli(*argv)
    assert result.returncode == 1 and named in result.stderr and "nothing was changed" in result.stderr, result.stderr
    with open_database(mysql_address) as db:
        assert sorted(db.query("SELECT * FROM `CHANGED`")) == before


def test_a_text_column_of_the_same_settings_said_otherwise_is_no_refusal(mysql_address, tmp_path):
    """A collation the snapshot's text leaves to its table's options (or to its character set's default) is that
    one: a restore of an unchanged table is not refused for it."""
    with open_database(mysql_address) as db:
        db.execute("CREATE TABLE `SAME` (id INT PRIMARY KEY, a VARCHAR(9), b VARCHAR(9) CHARACTER SET latin1, "
                   "c TEXT COLLATE utf8mb4_bin, UNIQUE KEY (a), UNIQUE KEY (b), UNIQUE KEY (c(5))) DEFAULT "
                   "CHARSET=utf8mb4")
        db.execute("INSERT INTO `SAME` VALUES (1, 'a', 'b', 'c')")
    made = snapshot.create_snapshot(mysql_address, str(tmp_path))
    result = run_cli("snapshot", "restore", url_of(mysql_address), "--snapshot-dir", str(tmp_path),
                     "--snapshot-id", made.id, "--yes")
    assert result.returncode == 0, result.stderr


def test_a_repeated_unique_key_met_only_at_commit_is_not_called_an_interruption_alone(mysql_address):
    """Round 27: loading into an empty table with the checks off (as a restore does), MariaDB checks unique keys
    only at COMMIT and says `Got error 1 "Operation not permitted" during COMMIT`, which emfix called a KILL QUERY."""
    with open_database(mysql_address, create=True) as db:
        db.execute("CREATE TABLE `U` (id INT PRIMARY KEY, k VARCHAR(10), UNIQUE KEY (k))")
        db.execute("SET SESSION unique_checks = 0")
        db.foreign_key_checks(False)
        try:
            db.execute("INSERT INTO `U` VALUES (1, 'a'), (2, 'a')")
        except EmfixError as exc:
            assert exc.kind == "statement_interrupted" and "a row that repeats a unique key" in exc.message, exc
        else:
            assert not db.is_mariadb(), "MariaDB took a repeated unique key"  # MySQL says 1062 at once


def test_a_restore_says_it_runs_the_tables_insert_triggers_and_a_unique_key_it_had_and_more_is_no_refusal(
        mysql_address, tmp_path):
    """An outside tester: a trigger that changes each row ran on every restored row, exit 0 without a word. It is
    said before the restore now (a trigger is the application's own: not refused). A unique key on a key the
    snapshot's table had, and more columns, holds every row it held: no refusal."""
    make_demo(mysql_address, shape=Shape(experiments=2, trials=2, runs=2, epochs=3, batches=2), faults=False)
    made = snapshot.create_snapshot(mysql_address, str(tmp_path))
    with open_database(mysql_address) as db:
        db.execute("CREATE TRIGGER `tag` BEFORE INSERT ON `TRIAL` FOR EACH ROW SET NEW.name = CONCAT(NEW.name, '!')")
        db.execute("ALTER TABLE `ARTIFACT` ADD UNIQUE KEY `u_id_type` (`type`, `id`)")
    result = run_cli("snapshot", "restore", url_of(mysql_address), "--snapshot-dir", str(tmp_path),
                     "--snapshot-id", made.id, "--yes", "--no-safety-snapshot")
    assert result.returncode == 0, result.stderr
    assert "TRIAL has trigger tag (BEFORE INSERT): the restore runs it on every row it loads" in result.stderr


@pytest.mark.parametrize("file_format", ["sql", "sqlite"])
def test_restore_that_stops_part_way_says_so_and_names_the_safety_snapshot(mysql_address, tmp_path, file_format):
    make_demo(mysql_address, shape=Shape(experiments=2, trials=2, runs=2, epochs=3, batches=2), faults=False)
    made = snapshot.create_snapshot(mysql_address, str(tmp_path), file_format=file_format)
    with open_database(mysql_address) as db:
        db.execute("UPDATE `METRIC` SET total_val = total_val + 1")
        db.execute(REFUSE_ROW % ("METRIC", 5))
    before = checksums(mysql_address, SUBTREE_TABLES)
    result = run_cli("snapshot", "restore", url_of(mysql_address), "--snapshot-dir", str(tmp_path),
                     "--snapshot-id", made.id, "--yes")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "METRIC has trigger refuse (BEFORE INSERT): the restore runs it on every row" in result.stderr
    said = [line for line in result.stderr.splitlines() if not line.startswith(("restoring snapshot", "emfix: "))]
    assert "partly restored" in said[0] and len(said) == 2 and said[1].startswith("hint: "), result.stderr
    safety = [s.id for s in snapshot.list_snapshots(str(tmp_path)) if s.id != made.id]
    assert len(safety) == 1 and "safety snapshot %s" % safety[0] in result.stderr
    assert "--snapshot-id %s" % safety[0] in result.stderr and "earlier restore" not in result.stderr
    # Stopped a second time (found by an outside tester): its own safety snapshot holds the first one's half,
    # so the hint names the one taken before the first (the mark says there was one), and its own as the half.
    twice = run_cli("snapshot", "restore", url_of(mysql_address), "--snapshot-dir", str(tmp_path),
                    "--snapshot-id", made.id, "--yes")
    assert twice.returncode == 1 and "partly restored" in twice.stderr
    assert "safety snapshot %s holds what was there before the first restore that did not finish" % safety[0] in \
        twice.stderr and "holds the half it began on" in twice.stderr, twice.stderr
    half = [s.manifest for s in snapshot.list_snapshots(str(tmp_path)) if s.id not in (made.id, safety[0])]
    assert len(half) == 1 and half[0].description.endswith("(partial: a restore had not finished)")  # round 27
    assert half[0].kind == "safety"  # `latest-valid` picks neither
    with open_database(mysql_address) as db:
        db.execute("DROP TRIGGER `refuse`")
    again = run_cli("snapshot", "restore", url_of(mysql_address), "--snapshot-dir", str(tmp_path),
                    "--snapshot-id", safety[0], "--yes", "--no-safety-snapshot")
    assert again.returncode == 0, again.stderr
    assert checksums(mysql_address, SUBTREE_TABLES) == before


def test_restore_into_tables_that_still_take_every_row_goes_ahead(mysql_address, tmp_path):
    make_demo(mysql_address, shape=Shape(experiments=2, trials=2, runs=2, epochs=3, batches=2), faults=False)
    before = checksums(mysql_address, ("EPOCH_METRIC",))
    made = snapshot.create_snapshot(mysql_address, str(tmp_path))
    with open_database(mysql_address) as db:
        for statement in ("ALTER TABLE `EXPERIMENT` MODIFY `title` VARCHAR(500) NOT NULL",
                          "ALTER TABLE `METRIC` ADD `note` VARCHAR(10) NULL, ADD `kept` INT NOT NULL DEFAULT 7",
                          "DELETE FROM `EPOCH_METRIC`"):
            db.execute(statement)
    snapshot.restore_snapshot(mysql_address, str(tmp_path), made.id, safety_snapshot=False)
    assert checksums(mysql_address, ("EPOCH_METRIC",)) == before


@pytest.mark.parametrize("file_format", ["sql", "sqlite"])
def test_a_table_with_generated_columns_is_restored(mysql_address, tmp_path, file_format):
    """The server computes generated columns and refuses a value for one: the snapshot leaves them out."""
    make_demo(mysql_address, shape=Shape(experiments=1, trials=1, runs=1, epochs=2, batches=2), faults=False)
    with open_database(mysql_address) as db:
        db.execute("CREATE TABLE `G` (`id` INT PRIMARY KEY, `x` FLOAT, `twice` FLOAT AS (`x` * 2) STORED, "
                   "`thrice` FLOAT AS (`x` * 3) VIRTUAL)")
        db.execute("INSERT INTO `G` (`id`, `x`) VALUES (1, 0.5), (2, NULL), (3, 1.25)")
    round_trip(mysql_address, tmp_path, tables=SUBTREE_TABLES + ("G",), file_format=file_format)
    with open_database(mysql_address) as db:
        assert db.query("SELECT `id`, `twice`, `thrice` FROM `G` ORDER BY `id`") == [(1, 1.0, 1.5), (2, None, None),
                                                                                   (3, 2.5, 3.75)]


@pytest.mark.parametrize("live, wanted, fits", [
    ("varchar(20)", "varchar(10)", True), ("varchar(5)", "varchar(10)", False), ("bigint", "int", True),
    ("int", "bigint", False), ("int unsigned", "int", False), ("longtext", "text", True), ("text", "longtext", False),
    ("text", "varchar(255)", True), ("decimal(12,2)", "decimal(10,2)", True), ("decimal(10,3)", "decimal(10,2)", False),
    ("double", "float", True), ("float", "double", False), ("datetime(6)", "datetime", True),
    ("datetime", "datetime(6)", False), ("enum('a','b','c')", "enum('a','b')", True),
    ("enum('a','c')", "enum('a','b')", False), ("enum('A','b')", "enum('a','b')", False),  # (round 31: by name)
    ("blob", "varbinary(16)", True),
])
def test_a_column_type_takes_the_values_of_a_narrower_one(live, wanted, fits):
    assert restorefit.takes(live, wanted) is fits


def test_a_session_without_backslash_escapes_still_ends_each_row_with_a_nul(exact_mysql, tmp_path, monkeypatch):
    """The server's sql_mode may say NO_BACKSLASH_ESCAPES: '\\0' would then be two characters, not a NUL."""
    opened = sqltext.open_database

    def strict_server(*args, **kwargs):
        db = opened(*args, **kwargs)
        db.execute("SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES,STRICT_TRANS_TABLES'")
        return db

    for module in (sqltext, mysqlrestore):  # the snapshot's readers and the restore's loaders
        monkeypatch.setattr(module, "open_database", strict_server)
    round_trip(exact_mysql, tmp_path)


def test_a_snapshot_stopped_while_its_readers_read_cuts_their_connections(exact_mysql, tmp_path, monkeypatch):
    """Found by an outside tester: SIGTERM while the readers ran left them mid-page, and the COMMIT sent on their
    connections after it waited for ever behind their unfinished results (a hang of 10 minutes, holding the
    restore lock). A stopped snapshot now cuts its connections; the server rolls back."""
    from emfix.backends.mysql import MySQLBackend
    abandoned, committed = [], []
    cut = MySQLBackend.abandon
    monkeypatch.setattr(MySQLBackend, "abandon", lambda self: abandoned.append(self) or cut(self))
    end_read = sqltext._end_read
    monkeypatch.setattr(sqltext, "_end_read", lambda db: committed.append(db) or end_read(db))

    def stopped(*_args, **_kwargs):
        raise KeyboardInterrupt()

    monkeypatch.setattr(sqltext, "run_parallel", stopped)
    with pytest.raises(KeyboardInterrupt):
        snapshot.create_snapshot(exact_mysql, str(tmp_path / "s"))
    assert abandoned and not committed


@pytest.mark.parametrize("where", ["flush", "start"])
def test_a_snapshot_stopped_while_it_takes_its_moment_ends_with_the_signal_not_a_connection_error(
        exact_mysql, tmp_path, monkeypatch, where):
    """Ctrl-C or SIGTERM while FLUSH TABLES WITH READ LOCK waits (or while the readers start their transactions)
    leaves the lead connection mid-statement. Resetting its lock wait (or unlocking) on it then failed, and that
    error (exit 3) hid the signal's 130 or 143. The signal goes out; the cut connection unlocks on the server."""
    from emfix.backends.mysql import MySQLBackend
    execute, execute_once = MySQLBackend.execute, MySQLBackend.execute_once

    def cut_and_stop(self):
        self.abandon()  # what a signal in the middle of a statement leaves: a connection that cannot be used
        raise KeyboardInterrupt()

    scalar = MySQLBackend.scalar  # other sessions' statements (tests beside this one) would make it read alone
    monkeypatch.setattr(MySQLBackend, "scalar", lambda self, sql, params=(): 0 if "PROCESSLIST" in sql else scalar(
        self, sql, params))
    if where == "flush":
        monkeypatch.setattr(MySQLBackend, "execute_once", lambda self, sql: cut_and_stop(self) if sql.startswith(
            "FLUSH TABLES WITH READ LOCK") else execute_once(self, sql))
    else:
        monkeypatch.setattr(MySQLBackend, "execute", lambda self, sql, params=(): cut_and_stop(self) if sql.startswith(
            "START TRANSACTION WITH CONSISTENT SNAPSHOT") else execute(self, sql, params))
    with pytest.raises(KeyboardInterrupt):
        snapshot.create_snapshot(exact_mysql, str(tmp_path / "s"))
    monkeypatch.undo()
    assert snapshot.create_snapshot(exact_mysql, str(tmp_path / "s")).row_total > 0  # nothing left locked


def test_a_snapshot_whose_sql_file_is_gone_is_missing_not_a_mismatch(exact_mysql, tmp_path):
    """An outside tester: a snapshot without its .sql file was said to be damaged, "manifest describes X.sql, not
    X.db" (the name guessed for a file that is not there)."""
    made = snapshot.create_snapshot(exact_mysql, str(tmp_path))
    os.remove(os.path.join(str(tmp_path), made.file))
    found = snapshot.verify_snapshot(str(tmp_path), made.id)
    assert found.status == "missing" and found.problem == "file missing: %s" % os.path.join(str(tmp_path), made.file)


def small_demo_on_a_server_that_keeps_letter_case(address):
    """A small demo in `address`, on a server that tells `notes` from `NOTES` (lower_case_table_names = 0)."""
    with open_database(address, create=True) as db:
        if int(db.scalar("SELECT @@lower_case_table_names")):
            pytest.skip("this server folds table names to one case")
    make_demo(address, shape=Shape(experiments=1, trials=1, runs=1, epochs=1, batches=1), faults=False)


def test_tables_whose_names_differ_only_in_letter_case_are_each_snapshotted_and_restored(mysql_address, tmp_path):
    """An outside tester: `notes` and `NOTES` on a case-sensitive server had their columns merged by the catalog, and
    snapshot create crashed (exit 70, "Unknown column"). A SQLite file cannot hold both: said, not crashed."""
    small_demo_on_a_server_that_keeps_letter_case(mysql_address)
    with open_database(mysql_address) as db:
        db.execute("CREATE TABLE notes (a INT PRIMARY KEY)")
        db.execute("CREATE TABLE NOTES (b INT, c TEXT)")
        db.execute("INSERT INTO notes VALUES (1), (2)")
        db.execute("INSERT INTO NOTES VALUES (3, 'x')")
    made = run_cli("snapshot", "create", url_of(mysql_address), "--snapshot-dir", str(tmp_path), "--json")
    assert made.returncode == 0, made.stderr
    taken = json.loads(made.stdout)
    assert taken["tables"]["notes"] == 2 and taken["tables"]["NOTES"] == 1
    refused = run_cli("snapshot", "create", url_of(mysql_address), "--snapshot-dir", str(tmp_path), "--format",
                      "sqlite")
    assert refused.returncode == 2 and "differ only in letter case" in refused.stderr, refused.stderr
    with open_database(mysql_address) as db:
        db.execute("DELETE FROM notes")
        db.execute("UPDATE NOTES SET c = 'y'")
    restored = run_cli("snapshot", "restore", url_of(mysql_address), "--snapshot-dir", str(tmp_path), "--snapshot-id",
                       taken["id"], "--yes", "--no-safety-snapshot")
    assert restored.returncode == 0, restored.stderr
    with open_database(mysql_address) as db:
        assert db.query("SELECT a FROM notes ORDER BY a") == [(1,), (2,)]
        assert db.query("SELECT b, c FROM NOTES") == [(3, "x")]


def test_a_table_spelled_like_an_experiment_manager_table_in_other_letters_is_another_table(mysql_address, tmp_path):
    """An outside tester: beside METRIC and TRIAL, a user's `metric (x INT)` and `trial` on a case-sensitive server
    were taken for them: validate crashed (exit 70, the links to METRIC checked against `metric`), and a migrate into
    the database refused "lacks columns TRIAL.name, ..." (`trial`'s columns read for TRIAL)."""
    from emfix.address import DatabaseAddress
    from emfix.schema import discover_graph
    small_demo_on_a_server_that_keeps_letter_case(mysql_address)
    with open_database(mysql_address) as db:
        db.execute("CREATE TABLE metric (x INT)")
        db.execute("CREATE TABLE trial (id INT PRIMARY KEY, experiment_id INT)")
        db.execute("INSERT INTO trial VALUES (1, 1), (2, 1)")
        graph = discover_graph(db)
    assert {r.parent for r in graph.relations if r.child.endswith("_METRIC") and r.child_columns == ("metric_id",)} \
        == {"METRIC"}
    assert {r.parent for r in graph.relations if r.child == "TRIAL_RUN"} == {"TRIAL"}
    checked = run_cli("validate", url_of(mysql_address))
    assert checked.returncode == 0, checked.stderr
    source = DatabaseAddress("sqlite", path=str(tmp_path / "src.db"))
    make_demo(source, shape=Shape(experiments=1, trials=2, runs=1, epochs=1, batches=1), faults=False)
    copied = run_cli("migrate", source.path, url_of(mysql_address), "-e", "1", "--snapshot-dir", str(tmp_path))
    assert copied.returncode == 0, copied.stderr
    with open_database(mysql_address) as db:
        assert db.scalar("SELECT count(*) FROM trial") == 2 and db.scalar("SELECT count(*) FROM TRIAL") == 3


def test_init_and_schema_diff_tell_a_look_alike_from_the_experiment_managers_table(mysql_databases, tmp_path):
    """An outside tester, on a case-sensitive server: `init` beside a user's `metric` took it for METRIC and stopped
    half-way (exit 70: RESULTS_METRIC's foreign key); `schema diff` compared a user's `trial` with TRIAL (false
    differences, then exit 70), or between two such databases said "same schema"."""
    from emfix.address import DatabaseAddress
    clean, alike = mysql_databases(), mysql_databases()
    with open_database(alike, create=True) as db:
        if int(db.scalar("SELECT @@lower_case_table_names")):
            pytest.skip("this server folds table names to one case")
        db.execute("CREATE TABLE metric (x INT)")
        db.execute("CREATE TABLE trial (id INT PRIMARY KEY, experiment_id INT, name TEXT)")
    for address in (clean, alike):
        made = run_cli("init", url_of(address), "--json-type", "text")
        assert made.returncode == 0, made.stderr
    with open_database(alike) as db:
        assert {"METRIC", "metric", "TRIAL", "trial"} <= set(db.tables())
    between = run_cli("schema", "diff", url_of(clean), url_of(alike))
    assert "table metric is not in A" in between.stdout and "table trial is not in A" in between.stdout, between.stdout
    assert "TRIAL." not in between.stdout and "METRIC." not in between.stdout, between.stdout
    sqlite = DatabaseAddress("sqlite", path=str(tmp_path / "em.db"))
    assert run_cli("init", sqlite.path).returncode == 0
    against_sqlite = run_cli("schema", "diff", url_of(alike), sqlite.path)
    assert against_sqlite.returncode in (0, 1), against_sqlite.stderr
    assert "TRIAL.name" not in against_sqlite.stdout and "TRIAL.start_time" not in against_sqlite.stdout


def test_init_beside_a_look_alike_whose_foreign_key_has_the_name_it_needs_says_so(mysql_address):
    """An outside tester: a user's `trial` with a foreign key (named trial_ibfk_1, which MariaDB compares whatever the
    letter case with TRIAL's TRIAL_ibfk_1) made `init` crash (exit 70) with the schema half-made; then it stopped
    at TRIAL with EXPERIMENT made. It is refused before any table is made now."""
    with open_database(mysql_address, create=True) as db:
        if int(db.scalar("SELECT @@lower_case_table_names")):
            pytest.skip("this server folds table names to one case")
        db.execute("CREATE TABLE experiment (id INT PRIMARY KEY)")
        db.execute("CREATE TABLE trial (id INT PRIMARY KEY, experiment_id INT, FOREIGN KEY (experiment_id) "
                   "REFERENCES experiment (id))")
    refused = run_cli("init", url_of(mysql_address), "--json-type", "text")
    assert refused.returncode == 1, refused.stderr
    assert "the foreign key trial_ibfk_1 of table trial has the name TRIAL's would get" in refused.stderr
    assert "nothing was created" in refused.stderr and "DROP FOREIGN KEY `trial_ibfk_1`" in refused.stderr
    with open_database(mysql_address) as db:
        assert sorted(db.tables()) == ["experiment", "trial"]


def snapshot_then_taken_key_name(address, directory, name):
    """A snapshot of a small demo; then METRIC and its links dropped, and a user's table holding the foreign key name
    `name` (which EPOCH_METRIC's CREATE in the snapshot needs). The snapshot's id."""
    make_demo(address, shape=Shape(experiments=1, trials=1, runs=1, epochs=2, batches=2), faults=False)
    made = snapshot.create_snapshot(address, str(directory))
    with open_database(address) as db:
        db.execute("SET SESSION FOREIGN_KEY_CHECKS = 0")
        for table in ("EPOCH_METRIC", "BATCH_METRIC", "RESULTS_METRIC", "METRIC"):
            db.execute("DROP TABLE %s" % db.quote(table))
        db.execute("CREATE TABLE notes (x INT, CONSTRAINT `%s` FOREIGN KEY (x) REFERENCES `EXPERIMENT` (id))" % name)
    return made


def test_a_restore_whose_new_tables_foreign_key_names_are_taken_is_refused_before_it_makes_anything(
        mysql_address, tmp_path):
    # A table of the user's holds the name of the snapshot's foreign key (InnoDB's names are the database's, in any
    # letter case): METRIC was made, then EPOCH_METRIC refused with errno 121.
    made = snapshot_then_taken_key_name(mysql_address, tmp_path, "epoch_metric_ibfk_1")
    result = run_cli("snapshot", "restore", url_of(mysql_address), "--snapshot-dir", str(tmp_path),
                     "--snapshot-id", made.id, "--yes")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "EPOCH_METRIC's foreign key EPOCH_METRIC_ibfk_1 is the name of table notes's" in result.stderr
    assert "nothing was changed" in result.stderr, result.stderr
    with open_database(mysql_address) as db:
        assert "METRIC" not in db.tables()
    assert [s.id for s in snapshot.list_snapshots(str(tmp_path))] == [made.id]  # no safety snapshot taken for it


def test_a_restore_refused_after_it_created_a_missing_table_says_so_not_that_nothing_changed(
        mysql_address, tmp_path, monkeypatch):
    """A CREATE the check before the restore did not foresee (here the taken name, with the check turned off) is
    refused after the tables before it were made: the restore says which it made, not that nothing changed. (A
    SQLite-format snapshot replaces the tables one by one: there the tables before are restored, and it says so.)"""
    made = snapshot_then_taken_key_name(mysql_address, tmp_path, "EPOCH_METRIC_ibfk_1")
    before = checksums(mysql_address, ("EXPERIMENT", "TRIAL", "EPOCH", "BATCH"))
    monkeypatch.setattr(mysqlrestore, "restore_problems", lambda db, tables: [])
    with pytest.raises(SchemaError) as stopped:
        snapshot.restore_snapshot(mysql_address, str(tmp_path), made.id, safety_snapshot=False)
    said = stopped.value.message
    assert "nothing was changed" not in said and "after it created METRIC, RESULTS_METRIC (empty" in said, said
    assert "nothing else was changed" in said
    assert checksums(mysql_address, ("EXPERIMENT", "TRIAL", "EPOCH", "BATCH")) == before
    with open_database(mysql_address) as db:
        assert db.scalar("SELECT count(*) FROM `METRIC`") == 0


def test_restore_loaders_take_whole_tables_shared_evenly():
    """Two loaders in one table slow each other (the server spent a fifth more CPU): each takes whole tables, the
    rows shared about evenly, the largest first; without the file's counts, every loader takes every table."""
    from emfix.snapshot.mysqlrestore import loader_shares
    counts = {"METRIC": 344, "BATCH": 312, "BATCH_METRIC": 312, "EPOCH": 31, "TRIAL": 2, "WIDE": 50}
    shares = loader_shares(counts, 3, widened={"WIDE"})
    assert sorted(map(sorted, shares)) == [["BATCH", "EPOCH"], ["BATCH_METRIC", "TRIAL"], ["METRIC"]]
    assert loader_shares(counts, 1) == [set(counts)]
    assert loader_shares(None, 2) == [None, None]


def test_a_table_the_last_line_leaves_out_is_loaded_all_the_same(exact_mysql, tmp_path):
    """Round 56: the loaders shared the tables named by the file's last line, so a table it left out (a snapshot
    edited by hand, its manifest made to match) was emptied and loaded by no one: exit 0, its rows gone."""
    import json

    from emfix.snapshot.sqlreader import END
    before = checksums(exact_mysql, TABLES)
    made = snapshot.create_snapshot(exact_mysql, str(tmp_path))
    path = os.path.join(str(tmp_path), made.file)
    data = open(path, "rb").read()
    body, last = data[:data.rindex(END)], json.loads(data[data.rindex(END) + len(END):])
    del last["tables"]["VALS"]
    with open(path, "wb") as handle:
        handle.write(body + END + json.dumps(last).encode() + b"\n")
    made.size, made.sha256 = os.path.getsize(path), snapshot.sha256_of(path)
    del made.tables["VALS"]
    snapshot.write_manifest(str(tmp_path), made)
    empty(exact_mysql, ["VALS"])
    snapshot.restore_snapshot(exact_mysql, str(tmp_path), made.id, safety_snapshot=False)
    assert checksums(exact_mysql, TABLES) == before
