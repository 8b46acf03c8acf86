"""Every value read from MySQL comes back with the same bits: FLOAT, DOUBLE, DECIMAL, DATETIME(6), JSON, text."""

import struct

import pytest
from conftest import make_demo

from emfix import snapshot
from emfix.address import DatabaseAddress
from emfix.backends import open_database
from emfix.demo import Shape
from emfix.migrate import migrate_experiment

SUBTREE_TABLES = ("EXPERIMENT", "TRIAL", "TRIAL_RUN", "RESULTS", "EPOCH", "BATCH", "METRIC", "ARTIFACT",
                  "EXPERIMENT_ARTIFACT", "TRIAL_ARTIFACT", "TRIAL_RUN_ARTIFACT", "RESULTS_METRIC", "RESULTS_ARTIFACT",
                  "EPOCH_METRIC", "EPOCH_ARTIFACT", "BATCH_METRIC", "BATCH_ARTIFACT")
VALUES_DDL = ("CREATE TABLE `VALS` (id INT PRIMARY KEY, f FLOAT, d DOUBLE, n DECIMAL(30,10), t6 DATETIME(6), "
              "t0 DATETIME, j JSON, s TEXT, b VARBINARY(16))")
VALUES = [
    (1, 0.40344512462615967, 0.40344512462615967, "12345678901234567890.0123456789", "2025-05-22 23:17:42.123456",
     "2025-05-22 23:17:42", '{"cat": 0.91, "dög": 1e-7}', "ünïcødé ✓", b"\x00\xff\xfe"),
    (2, -3.4028234663852886e38, 5e-324, "-0.0000000001", "1999-12-31 23:59:59.999999", "2000-01-01 00:00:00",
     '{"a": [1, 2, {"b": null}]}', "", b""),
    (3, None, None, None, None, None, None, None, None),
    (4, 1e-45, 1.7976931348623157e308, "0", "2025-01-01 00:00:00.000001", "2025-01-01 00:00:01", "{}", "'\"\\",
     b"\\"),
]


def checksums(address, tables):
    with open_database(address, readonly=True) as db:
        return {t: db.query("CHECKSUM TABLE %s" % db.quote(t))[0][1] for t in tables}


@pytest.fixture
def exact_mysql(mysql_address):
    """A clean demo on MariaDB with the application's FLOAT total_val, random doubles stored in it, and a
    table of every awkward type."""
    make_demo(mysql_address, shape=Shape(experiments=2, trials=2, runs=2, epochs=3, batches=2), faults=False,
              json_type="json")
    with open_database(mysql_address) as db:
        db.execute("ALTER TABLE `METRIC` MODIFY `total_val` FLOAT NOT NULL")
        db.execute("UPDATE `METRIC` SET `total_val` = RAND(7) * 100 - 50")
        db.execute("UPDATE `TRIAL` SET `name` = CONCAT(`name`, ' — ünïcødé'), `start_time` = "
                   "`start_time` + INTERVAL 123456 MICROSECOND")
        db.execute(VALUES_DDL)
        db.executemany("INSERT INTO `VALS` VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", VALUES)
    return mysql_address


def test_float_is_read_as_the_stored_value(exact_mysql):
    with open_database(exact_mysql, readonly=True) as db:
        printed = db.query("SELECT total_val FROM METRIC ORDER BY id LIMIT 50")
        exact = db.query("SELECT %s FROM METRIC ORDER BY id LIMIT 50" % db.exact_columns("METRIC", ["total_val"]))
    assert any(len(repr(p[0])) < 10 for p in printed)  # the text protocol rounds to six digits...
    for (value,) in exact:  # ...the exact read is a float32 to the last bit
        assert struct.unpack("f", struct.pack("f", value))[0] == value and len(repr(value)) > 9


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
    from emfix import migrate
    target = mysql_databases()
    _like(exact_mysql, target, SUBTREE_TABLES)
    original = migrate._Copy._write

    def one_ulp_off(self, table, rows, last, strategy):
        if table == "METRIC" and rows:
            index = self.graph.columns["METRIC"].index("total_val")
            first = list(rows[0])
            first[index] = _next_float32(first[index])
            rows = [tuple(first)] + list(rows[1:])
        return original(self, table, rows, last, strategy)

    monkeypatch.setattr(migrate._Copy, "_write", one_ulp_off)
    result = migrate_experiment(exact_mysql, target, 1, snapshot_dir=str(tmp_path / "s"))
    assert not result.verified
    assert [c.table for c in result.verify if not c.ok] == ["METRIC"]


def test_server_side_checksum_sees_one_microsecond_and_one_bit(exact_mysql):
    from emfix.migrate import _server_checksum
    columns = ["id", "f", "d", "n", "t6", "t0", "j", "s", "b"]
    with open_database(exact_mysql) as db:
        before = _server_checksum(db, "VALS", columns, "1 = 1", [])
        moved = _server_checksum(db, "VALS", columns, "1 = 1", [(0, 10)])
        db.execute("UPDATE `VALS` SET t6 = t6 + INTERVAL 1 MICROSECOND WHERE id = 1")
        later = _server_checksum(db, "VALS", columns, "1 = 1", [])
        db.execute("UPDATE `VALS` SET t6 = t6 - INTERVAL 1 MICROSECOND, b = x'00fffe' WHERE id = 1")
        again = _server_checksum(db, "VALS", columns, "1 = 1", [])
        db.execute("UPDATE `VALS` SET b = x'00fffc' WHERE id = 1")
        flipped = _server_checksum(db, "VALS", columns, "1 = 1", [])
    assert before[0] == 4 and again == before
    assert len({before[1], moved[1], later[1], flipped[1]}) == 4
