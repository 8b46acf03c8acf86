"""Every value read from MySQL comes back with the same bits: FLOAT, DOUBLE, DECIMAL, DATETIME(6), JSON, text."""

import struct

from conftest import SUBTREE_TABLES, checksums

from emfix import snapshot
from emfix.address import DatabaseAddress
from emfix.backends import open_database
from emfix.migrate import migrate_experiment


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
