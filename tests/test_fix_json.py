"""fix-json on SQLite and MariaDB: repairs what it can, lists the rest, undo gives back every byte."""

import pytest
from conftest import run_cli, url_of

from emfix.backends import open_database
from emfix.jsonfix import fix_json
from emfix.undo import undo
from emfix.validate import validate


def metric_bytes(address):
    """Every per_label_val with its storage class, as bytes: 'the same' means byte for byte."""
    with open_database(address, readonly=True) as db:
        if db.dialect == "sqlite":
            sql = "SELECT id, typeof(per_label_val), hex(per_label_val) FROM METRIC ORDER BY id"
        else:
            sql = "SELECT id, per_label_val IS NULL, hex(per_label_val) FROM METRIC ORDER BY id"
        return db.query(sql)


@pytest.fixture
def padded_valid(demo_address):
    """A valid value with whitespace around it: must come back exactly as stored."""
    with open_database(demo_address) as db:
        db.execute("UPDATE METRIC SET per_label_val = ? WHERE id = 3", ('  {"cat": 0.5}  ',))
    return demo_address


def test_fix_json_repairs_and_lists_the_rest_then_undo_restores_every_byte(padded_valid, tmp_path):
    address = padded_valid
    before = metric_bytes(address)
    dry = fix_json(address, dry_run=True)
    assert metric_bytes(address) == before
    result = fix_json(address, quarantine_dir=str(tmp_path / "q"), snapshot_dir=str(tmp_path / "s"))
    assert (result.repaired, result.unrepairable) == (dry.repaired, dry.unrepairable)
    expected_unrepairable = 2 if address.kind == "sqlite" else 1  # truncated (+ non-UTF-8 bytes on SQLite)
    assert result.unrepairable == expected_unrepairable and result.repaired == 9
    assert len(result.nulled) == 2  # the NaN and the Infinity values, named one by one
    report = validate(address)
    assert report.json.issue_count == expected_unrepairable
    assert {i.metric_id for i in report.json.issues} == {p["id"] for p in result.problems}
    with open_database(address, readonly=True) as db:
        assert db.scalar("SELECT per_label_val FROM METRIC WHERE id = 3") == '  {"cat": 0.5}  '
    undo(result.quarantine, address)
    assert metric_bytes(address) == before


def test_reset_unfixable_sets_empty_objects_and_keeps_originals(demo_address, tmp_path):
    before = metric_bytes(demo_address)
    result = fix_json(demo_address, reset_unfixable=True, snapshot=False, quarantine_dir=str(tmp_path / "q"))
    assert result.reset == result.unrepairable > 0
    assert validate(demo_address).json.issue_count == 0
    undo(result.quarantine, demo_address)
    assert metric_bytes(demo_address) == before


def test_a_second_run_finds_nothing_more_to_repair(demo_address, tmp_path):
    fix_json(demo_address, snapshot=False, quarantine_dir=str(tmp_path / "q"))
    again = fix_json(demo_address, dry_run=True)
    assert again.repaired == 0


def test_cli_dry_run_then_real_run(demo_address, tmp_path):
    result = run_cli("fix-json", url_of(demo_address), "--dry-run")
    assert result.returncode == 0 and "would repair 9" in result.stdout and "truncated" in result.stdout
    refused = run_cli("fix-json", url_of(demo_address))
    assert refused.returncode == 2 and "--yes" in refused.stderr
    done = run_cli("fix-json", url_of(demo_address), "--yes", "--no-snapshot", "--quarantine-dir",
                   str(tmp_path / "q"))
    assert done.returncode == 1 and "repaired 9" in done.stdout and "undo with" in done.stdout


def test_bad_column_is_a_usage_error(demo_address):
    result = run_cli("fix-json", url_of(demo_address), "--column", "METRIC.nope", "--dry-run")
    assert result.returncode == 2 and "no column" in result.stderr
