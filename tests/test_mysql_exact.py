"""Every value read from MySQL comes back with the same bits: FLOAT, DOUBLE, DECIMAL, DATETIME(6), JSON, text."""

import datetime
import struct

import pytest
from conftest import SUBTREE_TABLES, checksums, make_demo

from emfix import snapshot
from emfix.address import DatabaseAddress
from emfix.backends import open_database
from emfix.backends.mysqlvalues import literal_of
from emfix.demo import Shape
from emfix.migrate import migrate_experiment


def test_float_is_read_as_the_stored_value(exact_mysql):
    with open_database(exact_mysql, readonly=True) as db:
        printed = db.query("SELECT total_val FROM METRIC ORDER BY id LIMIT 50")
        exact = db.query("SELECT %s FROM METRIC ORDER BY id LIMIT 50" % db.exact_columns("METRIC", ["total_val"]))
    assert any(len(repr(p[0])) < 10 for p in printed)  # the text protocol rounds to six digits...
    for (value,) in exact:  # ...the exact read is a float32 to the last bit
        assert struct.unpack("f", struct.pack("f", value))[0] == value and len(repr(value)) > 9


def _float32(bits):
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def _bits(value):
    return struct.unpack("<I", struct.pack("<f", value))[0]


def test_float_literals_give_back_every_float_of_a_range_and_of_each_binades_edges(mysql_address):
    """The snapshot's text of a FLOAT (its exact value as DOUBLE text) inserted as
    the file inserts it gives back the same bits: every float from below 0.1 to well above it, the floats
    around every power of two and around 1e7, and random bit patterns."""
    near_tenth = _bits(0.1)
    values = [_float32(near_tenth + k) for k in range(-3000, 12000)]
    values += [_float32(_bits(2.0 ** e) + k) for e in range(-126, 128) for k in (-2, -1, 0, 1, 2)]
    values += [_float32(_bits(x) + k) for x in (1e7, 1e-1, 1.0) for k in range(-50, 50)]
    values += [-v for v in values[::7]] + [1.401298464324817e-45, 3.4028234663852886e38, 0.0]
    seed = 12345
    for _ in range(5000):  # random finite bit patterns (a small LCG: the same floats every run)
        seed = (seed * 1103515245 + 12345) % (1 << 32)
        if (seed >> 23) & 0xFF != 0xFF:
            values.append(_float32(seed))
    with open_database(mysql_address) as db:
        db.execute("CREATE TABLE `F` (`id` INT PRIMARY KEY, `v` FLOAT NULL)")
        db.execute("CREATE TABLE `G` (`id` INT PRIMARY KEY, `v` FLOAT NULL)")
        for start in range(0, len(values), 2000):
            db.execute("INSERT INTO `F` VALUES %s" % ", ".join(
                "(%d, CAST(%r AS DOUBLE))" % (start + i, v) for i, v in enumerate(values[start:start + 2000])))
        db.execute("INSERT INTO `F` VALUES (-1, NULL)")
        texts = db.query("SELECT %s FROM `F`" % db.literal_row("F", ["id", "v"]))
        for start in range(0, len(texts), 2000):
            db.execute("INSERT INTO `G` VALUES %s" % ", ".join("(%s)" % t for (t,) in texts[start:start + 2000]))
        stored = dict(db.query("SELECT `id`, %s FROM `G`" % db.exact_columns("G", ["v"])))
    assert stored.pop(-1) is None
    wrong = [(v, stored[i]) for i, v in enumerate(values) if _bits(stored[i]) != _bits(v) and v != 0.0]
    assert not wrong[:5]
    assert len(stored) == len(values)


def test_a_float_goes_out_as_the_servers_short_text_where_that_reads_back_as_the_same_float(mysql_address):
    """Six digits where they give back the float (the demo's values), the exact double's text where not."""
    with open_database(mysql_address) as db:
        db.execute("CREATE TABLE `F` (`id` INT PRIMARY KEY, `v` FLOAT NULL)")
        db.execute("INSERT INTO `F` VALUES (1, 0.757954), (2, CAST(1 AS DOUBLE) / 3), (3, NULL)")
        texts = [t for (t,) in db.query("SELECT %s FROM `F` ORDER BY `id`" % db.literal_row("F", ["v"]))]
    assert texts[0] == "0.757954"
    assert len(texts[1]) > 9 and texts[2] == "NULL"


def test_a_server_without_cast_as_float_gets_the_exact_doubles_text():
    assert literal_of("`v`", "float", False, short_floats=False) == "CAST(`v` AS DOUBLE)"
    assert "AS FLOAT" in literal_of("`v`", "float", False)


def test_a_float_column_widened_to_double_since_the_snapshot_gets_each_floats_exact_value(mysql_address, tmp_path):
    """The short text of a FLOAT read into a DOUBLE would be the decimal (0.757954), not the float
    (0.7579540014266968): restore rounds such a column back through FLOAT."""
    make_demo(mysql_address, shape=Shape(experiments=1, trials=1, runs=2, epochs=3, batches=2), faults=False)
    with open_database(mysql_address) as db:
        floats = dict(db.query("SELECT `id`, %s FROM `METRIC`" % db.exact_columns("METRIC", ["total_val"])))
        db.execute("CREATE TABLE `OU` (`id` INT PRIMARY KEY, `x` FLOAT, `changed` TIMESTAMP NOT NULL DEFAULT "
                   "CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP)")
        db.execute("INSERT INTO `OU` VALUES (1, 0.1, '2020-01-01 00:00:00'), (2, NULL, '2020-01-01 00:00:00')")
        db.execute("CREATE TABLE `UPDATES` (`n` INT)")
        db.execute("INSERT INTO `UPDATES` VALUES (0)")
        db.execute("CREATE TRIGGER `ou_updated` BEFORE UPDATE ON `OU` FOR EACH ROW UPDATE `UPDATES` SET `n` = `n` + 1")
    made = snapshot.create_snapshot(mysql_address, str(tmp_path))
    with open_database(mysql_address) as db:
        db.execute("ALTER TABLE `METRIC` MODIFY `total_val` DOUBLE NOT NULL")
        db.execute("ALTER TABLE `OU` MODIFY `x` DOUBLE")
    snapshot.restore_snapshot(mysql_address, str(tmp_path), made.id, safety_snapshot=False)
    with open_database(mysql_address) as db:
        doubles = dict(db.query("SELECT `id`, `total_val` FROM `METRIC`"))
        others = db.query("SELECT `id`, `x`, CAST(`changed` AS CHAR) FROM `OU` ORDER BY `id`")
        updates = db.scalar("SELECT `n` FROM `UPDATES`")
    assert any(len(repr(v)) > 12 for v in floats.values())  # values whose decimal text is not the float
    assert doubles == floats
    # loaded through FLOAT, not mended by an UPDATE: no ON UPDATE column moves, no UPDATE trigger fires
    assert others == [(1, struct.unpack("f", struct.pack("f", 0.1))[0], "2020-01-01 00:00:00"),
                      (2, None, "2020-01-01 00:00:00")]
    assert updates == 0


def test_snapshot_then_restore_leaves_checksum_table_identical(exact_mysql, tmp_path):
    tables = SUBTREE_TABLES + ("VALS",)
    before = checksums(exact_mysql, tables)
    made = snapshot.create_snapshot(exact_mysql, str(tmp_path / "snaps"), verify=True)
    with open_database(exact_mysql) as db:
        db.execute("SET SESSION FOREIGN_KEY_CHECKS = 0")
        for table in tables:
            db.execute("DELETE FROM %s" % db.quote(table))
    snapshot.restore_snapshot(exact_mysql, str(tmp_path / "snaps"), made.id, safety_snapshot=False)
    assert checksums(exact_mysql, tables) == before


def _like(source, target, tables):
    with open_database(target) as db:
        db.execute("SET SESSION FOREIGN_KEY_CHECKS = 0")
        for table in tables:
            db.execute("CREATE TABLE %s LIKE `%s`.%s" % (db.quote(table), source.database, db.quote(table)))


def test_whole_database_round_trip_through_sqlite_keeps_ids_and_bits(exact_mysql, mysql_databases, tmp_path):
    middle = DatabaseAddress("sqlite", path=str(tmp_path / "middle.db"))
    back = mysql_databases()
    _like(exact_mysql, back, SUBTREE_TABLES)
    for src, dst, init in ((exact_mysql, middle, True), (middle, back, False)):
        with open_database(src, readonly=True) as db:
            ids = [r[0] for r in db.query("SELECT id FROM %s ORDER BY id" % db.quote("EXPERIMENT"))]
        for experiment_id in ids:
            result = migrate_experiment(src, dst, experiment_id, init=init, snapshot_dir=str(tmp_path / "s"))
            assert result.verified and result.new_experiment_id == experiment_id
            assert all(shift == 0 for shift in result.offsets.values())  # an empty DST: every id kept
    assert checksums(back, SUBTREE_TABLES) == checksums(exact_mysql, SUBTREE_TABLES)


def _next_float32(value):
    bits = struct.unpack("<I", struct.pack("<f", value))[0]
    return struct.unpack("<f", struct.pack("<I", bits + 1))[0]


def test_verify_sees_a_float_one_ulp_off(exact_mysql, mysql_databases, tmp_path, monkeypatch):
    from emfix import copybatches
    target = mysql_databases()
    _like(exact_mysql, target, SUBTREE_TABLES)
    original = copybatches.BatchCopy._write

    def one_ulp_off(self, table, rows, last, strategy):
        if table == "METRIC" and rows:
            index = self.graph.columns["METRIC"].index("total_val")
            first = list(rows[0])
            first[index] = _next_float32(first[index])
            rows = [tuple(first)] + list(rows[1:])
        return original(self, table, rows, last, strategy)

    monkeypatch.setattr(copybatches.BatchCopy, "_write", one_ulp_off)
    result = migrate_experiment(exact_mysql, target, 1, snapshot_dir=str(tmp_path / "s"))
    assert not result.verified
    assert [c.table for c in result.verify if not c.ok] == ["METRIC"]


def test_server_side_checksum_sees_one_microsecond_and_one_bit(exact_mysql):
    from emfix.copycheck import server_checksum
    columns = ["id", "f", "d", "n", "t6", "t0", "j", "s", "b"]
    with open_database(exact_mysql) as db:
        before = server_checksum(db, "VALS", columns, "1 = 1", [])
        moved = server_checksum(db, "VALS", columns, "1 = 1", [(0, 10)])
        db.execute("UPDATE `VALS` SET t6 = t6 + INTERVAL 1 MICROSECOND WHERE id = 1")
        later = server_checksum(db, "VALS", columns, "1 = 1", [])
        db.execute("UPDATE `VALS` SET t6 = t6 - INTERVAL 1 MICROSECOND, b = x'00fffe' WHERE id = 1")
        again = server_checksum(db, "VALS", columns, "1 = 1", [])
        db.execute("UPDATE `VALS` SET b = x'00fffc' WHERE id = 1")
        flipped = server_checksum(db, "VALS", columns, "1 = 1", [])
    assert before[0] == 4 and again == before
    assert len({before[1], moved[1], later[1], flipped[1]}) == 4


AWKWARD_NAMES = ["back\\slash \\n \\' \\\\", "it's \"quoted\"", "line\nbreak\ttab", "ünïcødé ✓ 🧪", ""]
AWKWARD_FLOATS = [5e-324, 1.7976931348623157e308, -0.0, 0.1 + 0.2, -2.2250738585072014e-308, 1 / 3]


def awkward_sqlite(tmp_path):
    source = DatabaseAddress("sqlite", path=str(tmp_path / "awkward.db"))
    make_demo(source, shape=Shape(experiments=1, trials=2, runs=2, epochs=3, batches=4), faults=False)
    with open_database(source) as db:
        ids = [r[0] for r in db.query("SELECT id FROM TRIAL ORDER BY id")]
        for trial_id, name in zip(ids, AWKWARD_NAMES):
            db.execute("UPDATE TRIAL SET name = ? WHERE id = ?", (name, trial_id))
        metric_ids = [r[0] for r in db.query("SELECT id FROM METRIC ORDER BY id")]
        for metric_id, value in zip(metric_ids, AWKWARD_FLOATS):
            db.execute("UPDATE METRIC SET total_val = ?, per_label_val = ? WHERE id = ?",
                       (value, '{"a\\\\b\\"c": %r}' % value if value == value and abs(value) < 1e300 else "{}",
                        metric_id))
    return source


def double_target(mysql_databases):
    """The application's schema with total_val as DOUBLE, so SQLite's doubles must arrive bit for bit."""
    target = mysql_databases()
    from emfix.schema import create_schema
    with open_database(target) as db:
        create_schema(db)
        db.execute("ALTER TABLE `METRIC` MODIFY `total_val` DOUBLE NOT NULL")
    return target


@pytest.mark.parametrize("page_bytes", [None, 700])
def test_sqlite_into_mariadb_as_sql_text_keeps_every_bit(mysql_databases, tmp_path, monkeypatch, page_bytes):
    from emfix import pages
    if page_bytes:  # pages cut down to a few rows by the byte limit, then read again smaller
        monkeypatch.setattr(pages, "literal_limit", lambda source, target: page_bytes)
    source, target = awkward_sqlite(tmp_path), double_target(mysql_databases)
    result = migrate_experiment(source, target, 1, snapshot_dir=str(tmp_path / "s"))
    assert result.verified
    with open_database(source) as a, open_database(target) as b:
        for sql in ("SELECT id, name FROM TRIAL ORDER BY id", "SELECT id, total_val, per_label_val FROM METRIC "
                    "ORDER BY id"):
            theirs = [tuple(r) for r in b.query(sql)]
            assert [tuple(r) for r in a.query(sql)] == theirs
        sql = "SELECT total_val FROM METRIC ORDER BY id LIMIT 6"  # repr: 0.1 + 0.2 is not 0.3, nor -0.0 0.0
        assert [repr(v) for (v,) in b.query(sql)] == [repr(v) for (v,) in a.query(sql)]


def test_second_copy_into_mariadb_moves_ids_in_the_sql_text(mysql_databases, tmp_path):
    source, target = awkward_sqlite(tmp_path), double_target(mysql_databases)
    first = migrate_experiment(source, target, 1, snapshot_dir=str(tmp_path / "s"))
    second = migrate_experiment(source, target, 1, force=True, snapshot_dir=str(tmp_path / "s"))
    assert first.verified and second.verified and second.new_experiment_id != 1
    assert any(second.offsets.values())


# -- #23: TIME values beyond a day, negative ones, microseconds -----------------------------------------

TIMES = ["-838:59:59.000000", "838:59:59.000000", "-00:00:00.000001", "00:00:00.000000", "24:00:00.000000",
         "-01:02:03.500000", "100:00:00.250000", "-24:00:00.999999", None]


@pytest.mark.parametrize("file_format", ["sql", "sqlite"])
def test_time_values_outside_a_day_round_trip_exactly_in_both_formats(exact_mysql, tmp_path, file_format):
    read = "SELECT id, CAST(t6 AS CHAR), CAST(t0 AS CHAR) FROM `TIMES` ORDER BY id"
    with open_database(exact_mysql) as db:
        db.execute("CREATE TABLE `TIMES` (id INT PRIMARY KEY, t6 TIME(6), t0 TIME NOT NULL DEFAULT '00:00:00')")
        db.executemany("INSERT INTO `TIMES` VALUES (?, ?, ?)", [(n, t, t or "0") for n, t in enumerate(TIMES)])
        before = db.query(read)
    assert _changed_then_restored(exact_mysql, tmp_path, file_format, "UPDATE `TIMES` SET t6 = '00:00:01', "
                                  "t0 = '00:00:01'", read) == before
    assert [r[1] for r in before] == TIMES


def _changed_then_restored(address, tmp_path, file_format, change, read):
    """Snapshot `address` (in `file_format`), run `change` on it, restore the snapshot: the rows of `read` then."""
    made = snapshot.create_snapshot(address, str(tmp_path), verify=True, file_format=file_format)
    with open_database(address) as db:
        db.execute(change)
    snapshot.restore_snapshot(address, str(tmp_path), made.id, safety_snapshot=False)
    with open_database(address, readonly=True) as db:
        return db.query(read)


DATES = [("2024-02-29", "2024-02-29 23:59:59.999999", "2038-01-19 03:14:07.999", "0000-00-00 00:00:00"),
         ("1000-01-01", "9999-12-31 23:59:59.000001", "1970-01-01 00:00:01.000", "2024-00-00 00:00:00"),
         (None, None, None, "0000-00-00 00:00:00")]


@pytest.mark.parametrize("file_format", ["sql", "sqlite"])
def test_dates_datetimes_and_timestamps_round_trip_exactly_zero_dates_and_nulls_included(exact_mysql, tmp_path,
                                                                                        file_format):
    """Written as the server's own text between quotes (no QUOTE scan): every fraction, zero date and NULL back;
    read through the driver (the SQLite file), a zero date is the server's text, not None. Id 0 stays 0."""
    read = "SELECT id, CAST(d AS CHAR), CAST(dt AS CHAR), CAST(ts AS CHAR), CAST(z AS CHAR) FROM `DATES` ORDER BY id"
    with open_database(exact_mysql) as db:
        db.execute("SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'")  # zero dates, as an old application wrote them
        db.execute("CREATE TABLE `DATES` (id INT AUTO_INCREMENT PRIMARY KEY, d DATE, dt DATETIME(6), "
                   "ts TIMESTAMP(3) NULL, z DATETIME NOT NULL)")
        db.executemany("INSERT INTO `DATES` VALUES (?, ?, ?, ?, ?)",
                       [(n,) + row for n, row in enumerate(DATES)])
        before = db.query(read)
    assert _changed_then_restored(exact_mysql, tmp_path, file_format, "UPDATE `DATES` SET d = '2000-01-01', "
                                  "dt = NULL, ts = NULL", read) == before
    assert [r[2] for r in before] == [r[1] for r in DATES] and [r[0] for r in before] == [0, 1, 2]


def test_a_time_is_written_as_mysql_reads_it():
    from emfix.values import encode_value, portable
    for text in TIMES[:-1]:
        sign, rest = ("-", text[1:]) if text.startswith("-") else ("", text)
        hours, minutes, seconds = rest.split(":")
        value = datetime.timedelta(hours=int(hours), minutes=int(minutes), seconds=float(seconds))
        value = -value if sign else value
        expected = text[:-7] if text.endswith(".000000") else text
        assert portable(value) == encode_value(value) == expected


def test_a_set_column_travels_as_mysql_spells_it_through_export_and_every_migrate(mysql_databases, tmp_path):
    """Round 62: the driver hands a SET back as a Python set: export crashed on it (exit 70), a MySQL -> MySQL migrate
    into a SET column refused every value (exit 4), and into SQLite its members went in alphabetical order ('p,r'
    for SET('r','p')), which the same column then refused on the way back."""
    from conftest import run_cli, url_of

    app_set = ("CREATE TABLE app_set (id INT PRIMARY KEY, trial_id INT NOT NULL, s SET('r','p'), "
               "FOREIGN KEY (trial_id) REFERENCES TRIAL(id))")
    source, into, back = mysql_databases(), mysql_databases(), mysql_databases()
    make_demo(source, shape=Shape(experiments=1, trials=2, runs=1, epochs=1, batches=1), faults=False)
    for address in (source, into, back):
        if address is not source:
            assert run_cli("init", url_of(address)).returncode == 0
        with open_database(address) as db:
            db.execute(app_set)
    with open_database(source) as db:
        db.execute("INSERT INTO app_set SELECT id, id, CASE WHEN id % 2 THEN 'r,p' ELSE 'p' END FROM TRIAL")
    exported = str(tmp_path / "e1.jsonl")
    assert run_cli("export", url_of(source), "-e", "1", "-o", exported).returncode == 0
    with open(exported) as handle:
        assert '"r,p"' in handle.read()
    copied = run_cli("migrate", url_of(source), url_of(into), "-e", "1", "--no-snapshot")
    assert copied.returncode == 0, copied.stderr
    lite = str(tmp_path / "lite.db")
    assert run_cli("init", lite).returncode == 0
    with open_database(DatabaseAddress("sqlite", path=lite)) as db:
        db.execute("CREATE TABLE app_set (id INTEGER PRIMARY KEY, trial_id INT NOT NULL REFERENCES TRIAL(id), s TEXT)")
    assert run_cli("migrate", url_of(source), lite, "-e", "1", "--no-snapshot").returncode == 0
    with open_database(DatabaseAddress("sqlite", path=lite)) as db:
        assert {v for (v,) in db.query("SELECT s FROM app_set")} == {"r,p", "p"}
    returned = run_cli("migrate", lite, url_of(back), "-e", "1", "--no-snapshot")
    assert returned.returncode == 0, returned.stderr
    for address in (into, back):
        with open_database(address) as db:
            assert sorted(v for (v,) in db.query("SELECT CONCAT(s) FROM app_set")) == ["p", "r,p"]
