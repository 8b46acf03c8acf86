"""A MySQL restore killed outright (SIGKILL: nothing can say so) leaves its mark in the database: doctor fails with
what to do, validate warns, commands that change the database refuse it (unless --force), a restore finishes it,
and no snapshot carries the mark."""

import json

import pytest
from conftest import make_demo, run_cli, url_of

from emfix.backends import open_database
from emfix.demo import Shape
from emfix.snapshot.restoremark import MARK_TABLE

SHAPE = Shape(experiments=2, trials=2, runs=2, epochs=3, batches=3)


def counts(address):
    with open_database(address) as db:
        return {t: db.scalar("SELECT count(*) FROM %s" % db.quote(t)) for t in db.tables()}


def snapshot(address, folder):
    made = run_cli("snapshot", "create", url_of(address), "--snapshot-dir", folder, "--json")
    assert made.returncode == 0, made.stderr
    return json.loads(made.stdout)


@pytest.fixture(params=["sql", "sqlite"])
def half_restored(request, mysql_address, tmp_path):
    """A demo database whose restore was killed after it emptied its first table (or replaced it)."""
    make_demo(mysql_address, shape=SHAPE, faults=True)
    folder = str(tmp_path / "snaps")
    made = run_cli("snapshot", "create", url_of(mysql_address), "--snapshot-dir", folder, "--format",
                   request.param, "--json")
    assert made.returncode == 0, made.stderr
    taken = json.loads(made.stdout)["id"]
    killed = run_cli("snapshot", "restore", url_of(mysql_address), "--snapshot-dir", folder, "--snapshot-id", taken,
                     "--yes", env={"EMFIX_TEST_KILL_AT": "emptied:2"})
    assert killed.returncode == -9, killed.stderr
    return mysql_address, folder, taken


def test_doctor_fails_on_a_restore_killed_outright_and_says_how_to_finish_it(half_restored):
    address, folder, taken = half_restored
    found = run_cli("doctor", url_of(address), "--snapshot-dir", folder, "--json")
    restore = [f for f in json.loads(found.stdout)["findings"] if f["check"] == "restore"]
    assert found.returncode != 0 and restore and restore[0]["level"] == "FAIL", found.stdout
    assert taken in restore[0]["message"] and "snapshot restore" in restore[0]["fix"]


def test_changing_commands_refuse_a_half_restored_database_and_change_nothing(half_restored, tmp_path):
    address, folder, taken = half_restored
    before = counts(address)
    refused = run_cli("cleanup-orphans", url_of(address), "--yes", "--snapshot-dir", folder)
    assert refused.returncode == 4 and "partly restored" in refused.stderr, refused.stderr
    assert "snapshot restore" in refused.stderr and "--snapshot-id %s" % taken in refused.stderr
    assert counts(address) == before
    report = run_cli("validate", url_of(address), "--json")
    assert "unfinished_restore" in {w["kind"] for w in json.loads(report.stdout)["warnings"]}


def test_a_restore_finishes_it_and_no_snapshot_carries_the_mark(half_restored, tmp_path):
    address, folder, taken = half_restored
    finished = run_cli("snapshot", "restore", url_of(address), "--snapshot-dir", folder, "--snapshot-id", taken,
                       "--yes")
    assert finished.returncode == 0, finished.stderr
    assert MARK_TABLE not in {t.lower() for t in counts(address)}
    assert run_cli("doctor", url_of(address), "--snapshot-dir", folder).returncode == 0
    cleaned = run_cli("cleanup-orphans", url_of(address), "--yes", "--snapshot-dir", folder)
    assert cleaned.returncode == 0, cleaned.stderr


def test_force_changes_a_half_restored_database_as_it_is(half_restored):
    address, folder, _ = half_restored
    forced = run_cli("cleanup-orphans", url_of(address), "--yes", "--force", "--snapshot-dir", folder)
    assert forced.returncode == 0, forced.stderr
    assert "partly restored" in forced.stderr


def test_the_safety_snapshot_of_a_half_restored_database_leaves_the_mark_out(half_restored, tmp_path):
    address, folder, taken = half_restored
    with open_database(address) as db:
        assert MARK_TABLE in {t.lower() for t in db.tables()}
    tables = snapshot(address, folder)["tables"]
    assert tables and MARK_TABLE not in {t.lower() for t in tables}


def test_the_library_refuses_it_too(half_restored, tmp_path):
    """A program that calls emfix's library (not the command) is refused the same way, by the engine's preflight."""
    from emfix.cleanup import cleanup_orphans
    from emfix.errors import DamagedInputError
    address, folder, _ = half_restored
    before = counts(address)
    with pytest.raises(DamagedInputError, match="partly restored"):
        cleanup_orphans(address, snapshot_dir=folder)
    assert counts(address) == before
