"""optimize: the missing foreign-key indexes appear, nothing else changes, doctor turns OK."""

import json

from conftest import make_demo, run_cli

from emfix.backends import open_database
from emfix.doctor import doctor
from emfix.optimize import find_missing_indexes, optimize
from emfix.schema import discover_graph


def table_contents(address):
    with open_database(address, readonly=address.is_sqlite) as db:
        return {t: sorted(db.query("SELECT * FROM %s" % db.quote(t)), key=repr) for t in db.tables()}


def test_optimize_creates_every_missing_index_and_changes_no_row(demo_address, tmp_path, monkeypatch):
    monkeypatch.setenv("EMFIX_HISTORY", str(tmp_path / "history.jsonl"))
    before = table_contents(demo_address)
    result = optimize(demo_address)
    with open_database(demo_address) as db:
        assert find_missing_indexes(db, discover_graph(db)) == []
        names = {i.name for t in db.tables() for i in db.indexes(t)}
    assert {gap.name for gap in result.created} <= names
    assert result.analyzed and result.before_seconds is not None and result.after_seconds is not None
    assert table_contents(demo_address) == before
    finding = [f for f in doctor(demo_address).findings if f.check == "indexes"][0]
    assert finding.level == "OK"
    assert optimize(demo_address, timing=False).created == []  # a second run has nothing to do


def test_dry_run_lists_and_changes_nothing(sqlite_address):
    make_demo(sqlite_address)
    result = run_cli("optimize", sqlite_address.path, "--dry-run", "--json", "--no-timing")
    data = json.loads(result.stdout)
    assert result.returncode == 0 and data["dry_run"] and data["created"]
    assert all(c["name"].startswith("emfix_idx_") for c in data["created"])
    with open_database(sqlite_address, readonly=True) as db:
        assert len(find_missing_indexes(db, discover_graph(db))) == len(data["created"])


def test_vacuum_refuses_without_room(sqlite_address, monkeypatch):
    import shutil
    from collections import namedtuple
    make_demo(sqlite_address)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10, 10, 0))
    from emfix.errors import NoSpaceError
    try:
        optimize(sqlite_address, vacuum=True, timing=False)
    except NoSpaceError as exc:
        assert "free" in str(exc)
    else:
        raise AssertionError("VACUUM ran without room for its copy")


def test_index_names_fit_mysql_limit():
    from emfix.optimize import MissingIndex
    gap = MissingIndex("A_VERY_LONG_TABLE_NAME_THAT_GOES_ON", ("first_long_column", "second_long_column"))
    assert len(gap.name) <= 64 and gap.name.startswith("emfix_idx_")
