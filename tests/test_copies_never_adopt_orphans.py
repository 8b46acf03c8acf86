"""An import or a migrate into a database with orphans (rows whose parent was deleted) never gives a copied row
the id an orphan points at: the orphan would become the copy's child, silently."""

import pytest
from conftest import make_demo, run_cli, url_of

from emfix.address import DatabaseAddress
from emfix.backends import open_database
from emfix.demo import Shape
from emfix.schema import discover_graph

ORPHANS = [  # (child, its column, parent): the relations the damage below breaks
    ("TRIAL", "experiment_id", "EXPERIMENT"),
    ("EPOCH_METRIC", "metric_id", "METRIC"),
    ("BATCH_METRIC", "metric_id", "METRIC"),
]


def orphans(address):
    """Each broken relation's orphan rows, as (child, column, the id they point at, how many)."""
    with open_database(address, readonly=True) as db:
        q = db.quote
        return sorted(((child, column, ref, count) for child, column, parent in ORPHANS for ref, count in db.query(
            "SELECT c.%s, count(*) FROM %s c WHERE NOT EXISTS (SELECT 1 FROM %s p WHERE p.%s = c.%s) GROUP BY c.%s"
            % (q(column), q(child), q(parent), q("id"), q(column), q(column)))), key=repr)


def delete_parents(address):
    """The last experiment and the metrics with the highest ids deleted, their children left behind, as an
    application without foreign-key checks leaves them."""
    with open_database(address) as db:
        q = db.quote
        db.execute("SET foreign_key_checks = 0" if db.dialect == "mysql" else "PRAGMA foreign_keys = OFF")
        top = db.scalar("SELECT max(%s) FROM %s" % (q("id"), q("METRIC")))
        with db.transaction():
            db.execute("DELETE FROM %s WHERE %s = (SELECT m FROM (SELECT max(%s) AS m FROM %s) x)" % (
                q("EXPERIMENT"), q("id"), q("id"), q("EXPERIMENT")))
            db.execute("DELETE FROM %s WHERE %s > ?" % (q("METRIC"), q("id")), (int(top) - 40,))
    found = orphans(address)
    assert {child for child, *_ in found} == {child for child, *_ in ORPHANS}
    return found


def copy_into(command, source, target, experiment, tmp_path):
    """Experiment `experiment` of `source` into `target` by `command` (import of its export, or an aggressive
    migrate): the finished process."""
    if command == "import":
        path = str(tmp_path / ("exp%d.jsonl" % experiment))
        assert run_cli("export", url_of(source), "-e", str(experiment), "-o", path).returncode == 0
        return run_cli("import", url_of(target), path)
    return run_cli("migrate", url_of(source), url_of(target), "-e", str(experiment), "--strategy", "aggressive")


@pytest.fixture
def source(tmp_path):
    address = DatabaseAddress("sqlite", path=str(tmp_path / "source.db"))
    make_demo(address, shape=Shape(), faults=False)
    return address


def test_an_import_leaves_orphans_orphans(address, source, tmp_path):
    make_demo(address, faults=False)
    before = delete_parents(address)
    path = str(tmp_path / "exp3.jsonl")
    assert run_cli("export", url_of(source), "-e", "3", "-o", path).returncode == 0
    result = run_cli("import", url_of(address), path, "--json")
    assert result.returncode == 0, result.stderr
    assert orphans(address) == before


def test_a_migrate_leaves_orphans_orphans(address, source, tmp_path):
    make_demo(address, faults=False)
    before = delete_parents(address)
    result = run_cli("migrate", url_of(source), url_of(address), "-e", "3", "--strategy", "aggressive")
    assert result.returncode == 0, result.stderr
    assert orphans(address) == before


@pytest.mark.parametrize("command", ["import", "migrate"])
def test_text_in_a_link_column_of_dst_is_no_id_and_no_crash(source, tmp_path, command):
    """Round 38: a TRIAL.experiment_id of 'abc' in DST (a damaged database is what emfix is for) crashed both,
    exit 70; SQLite sorts text above numbers, so it also hid the largest id the orphans hold."""
    target = DatabaseAddress("sqlite", path=str(tmp_path / "target.db"))
    make_demo(target, faults=False)
    before = delete_parents(target)
    with open_database(target) as db, db.transaction():
        db.execute("UPDATE TRIAL SET experiment_id = 'abc' WHERE id = 1")
    before = orphans(target)  # ('abc' is one more)
    result = copy_into(command, source, target, 3, tmp_path)
    assert result.returncode == 0, result.stderr
    assert ("TRIAL", "experiment_id", "abc", 1) in before and orphans(target) == before


@pytest.mark.parametrize("command", ["import", "migrate"])
def test_text_in_a_link_column_that_reads_as_a_number_is_that_id(source, tmp_path, command):
    """Round 39: in a TEXT link column, '10.0', ' 11' and '1.2e1' are the ids 10, 11 and 12 to the database's own
    comparison; emfix took them for no id, and the copy's metrics 10 to 12 adopted them."""
    target = DatabaseAddress("sqlite", path=str(tmp_path / "target.db"))
    assert run_cli("init", target.path).returncode == 0
    with open_database(target) as db, db.transaction():
        db.execute("DROP TABLE EPOCH_METRIC")
        db.execute("CREATE TABLE EPOCH_METRIC (epoch_idx INTEGER, epoch_trial_run_id INTEGER, metric_id TEXT, "
                   "PRIMARY KEY (epoch_idx, epoch_trial_run_id, metric_id))")
        for text in ("10.0", " 11", "1.2e1"):
            db.execute("INSERT INTO EPOCH_METRIC VALUES (0, 1, ?)", (text,))
    before = orphans(target)
    assert len(before) == 3
    result = copy_into(command, source, target, 1, tmp_path)
    assert result.returncode == 0, result.stderr
    assert orphans(target) == before


def test_a_checked_migrate_into_a_text_link_column_holding_text_verifies(address, source):
    """Round 40: in DST's TRIAL.experiment_id declared as text, '5abc' stopped MariaDB's verify after the copy was
    committed (strict mode made the comparison with a number an error), and the copy's ids, which the column keeps
    as their digits, were said to differ from SRC's numbers (exit 4)."""
    assert run_cli("init", url_of(address)).returncode == 0
    with open_database(address) as db:
        mysql = db.dialect == "mysql"
        columns = "id INTEGER, name %s, experiment_id %s, start_time %s, update_time %s" % (
            ("VARCHAR(255)", "VARCHAR(20)", "DATETIME(6)", "DATETIME(6)") if mysql else ("TEXT",) * 4)
        db.foreign_key_checks(False)
        db.execute("DROP TABLE %s" % db.quote("TRIAL"))  # (empty, as `init` made it; without its foreign keys)
        db.execute("CREATE TABLE %s (%s, PRIMARY KEY (id))" % (db.quote("TRIAL"), columns))
        with db.transaction():
            db.execute("INSERT INTO %s (%s, %s) VALUES (900, '5abc')" % (db.quote("TRIAL"), db.quote("id"),
                                                                         db.quote("experiment_id")))
    result = run_cli("migrate", url_of(source), url_of(address), "-e", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "DIFFERS" not in result.stdout and "of TRIAL.experiment_id are stored as DST's column keeps them" in \
        result.stdout, result.stdout
    with open_database(address) as db:
        assert db.scalar("SELECT count(*) FROM TRIAL WHERE experiment_id = '3'") == Shape().trials


@pytest.mark.parametrize("command", ["import", "migrate"])
def test_ids_sqlites_autoincrement_handed_out_are_not_given_again(source, tmp_path, command):
    """AUTOINCREMENT's promise: a deleted row's id is never handed out again (an outside tester, round 42: the copy
    of an experiment took the ids of the one the application had just deleted, whole, rows and all)."""
    target = DatabaseAddress("sqlite", path=str(tmp_path / "target.db"))
    make_demo(target, shape=Shape(), faults=False)
    with open_database(target) as db:
        last, trials = db.scalar("SELECT max(id) FROM EXPERIMENT"), db.scalar("SELECT max(id) FROM TRIAL")
        db.foreign_key_checks(False)
        with db.transaction():  # every experiment deleted whole: no row, no orphan holds an id
            for table in discover_graph(db).tables:
                if table != "SCHEMA_VERSION":
                    db.execute("DELETE FROM %s" % db.quote(table))
    result = copy_into(command, source, target, last, tmp_path)
    assert result.returncode == 0, result.stderr
    with open_database(target) as db:
        assert db.scalar("SELECT id FROM EXPERIMENT") == last + 1
        assert db.scalar("SELECT min(id) FROM TRIAL") == trials + 1
