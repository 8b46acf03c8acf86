"""cleanup-orphans and repair on a SQLite file in WAL mode, killed between a batch and its marks.

In WAL mode SQLite commits an attached database on its own: a delete and its mark in the attached quarantine
are two commits, and a kill between them left rows deleted whose copies the rerun then threw away (an outside
tester: 3 kills in 10 lost a batch for good). There a batch marks its copies pending before it deletes, as on
MySQL, so whichever commit a kill comes between, the rerun knows what was removed.
"""

import json
import sqlite3

import pytest
from conftest import make_demo, run_cli
from test_beside_a_writer import digest
from test_repair import repair_args


def in_wal_mode(address):
    make_demo(address)
    con = sqlite3.connect(address.path)
    try:
        assert con.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal"
    finally:
        con.close()


@pytest.mark.parametrize("command", ["cleanup-orphans", "repair"])
@pytest.mark.parametrize("kill_at", ["pending:2", "written:2"])
def test_a_kill_between_a_batch_and_its_marks_in_wal_mode_loses_nothing(sqlite_address, tmp_path, command, kill_at):
    in_wal_mode(sqlite_address)
    original = digest(sqlite_address)
    args = repair_args(sqlite_address, tmp_path, batch="2")
    args[0] = command
    killed = run_cli(*args, env={"EMFIX_TEST_KILL_AT": kill_at})
    assert killed.returncode == -9, (killed.returncode, killed.stderr)  # the batch marked its copies pending first
    rerun = run_cli(*args)
    assert rerun.returncode in (0, 1) and "Traceback" not in rerun.stderr, (rerun.returncode, rerun.stderr)
    undone = run_cli("undo", json.loads(rerun.stdout)["quarantine"])
    assert undone.returncode == 0, undone.stderr
    assert digest(sqlite_address) == original
