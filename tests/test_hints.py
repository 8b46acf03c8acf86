"""Issue 24, item 5: hints and messages that fit the situation they are given in."""

import json
import os
import resource
import sqlite3
import subprocess
import sys

import pytest
from conftest import ROOT, make_demo, run_cli, url_of

from emfix.retry import RetryPolicy


def test_migrate_into_a_new_file_without_init_points_at_init(demo_file, tmp_path):
    result = run_cli("migrate", demo_file, str(tmp_path / "new.db"), "-e", "1")
    assert result.returncode == 3, result.stderr
    assert "--init" in result.stderr and "emfix demo" not in result.stderr
    assert not (tmp_path / "new.db").exists()


def _limit_file_size(limit):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_migrate_disk_full_names_dst(tmp_path):
    source = tmp_path / "d" / "experiment.db"
    assert run_cli("demo", str(tmp_path / "d"), "--clean").returncode == 0
    target = tmp_path / "new.db"
    env = dict(os.environ, PYTHONPATH=ROOT)
    # under a file-size limit below the source's size (180 KB) SQLite's reader of SRC meets it first: the
    # error must still say the copy into DST stopped
    result = subprocess.run([sys.executable, "-m", "emfix", "migrate", str(source), str(target), "--all", "--init"],
                            capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=120,
                            stdin=subprocess.DEVNULL, preexec_fn=_limit_file_size(150 * 1024))
    assert result.returncode == 3, result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith("error: ") and str(target) in first, result.stderr
    assert "Traceback" not in result.stderr


def test_snapshot_of_unknown_source_does_not_say_none(demo_file):
    made = json.loads(run_cli("snapshot", "create", demo_file, "--json").stdout)
    manifest_path = os.path.join(os.path.dirname(demo_file), "snapshots", made["id"] + ".json")
    with open(manifest_path, encoding="utf-8") as handle:
        manifest = json.load(handle)
    manifest["source"] = {}  # written by hand, or by a tool that did not say where it came from
    manifest.pop("source_key", None)
    with open(manifest_path, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle)
    result = run_cli("snapshot", "verify", demo_file, made["id"])
    assert result.returncode == 2 and "another database" in result.stderr
    assert "None" not in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_retry_policy_reads_after_is_retried():
    text = "a locked database is retried %s" % RetryPolicy(deadline=30.0).describe()
    assert "retried retries" not in text and "retried for up to 30.0s" in text


def test_doctor_says_is_retried_for_up_to(demo_file):
    result = run_cli("doctor", demo_file)
    assert "is retried for up to 30.0s" in result.stdout and "retried retries" not in result.stdout


def test_schema_upgrade_yes_with_nothing_to_do_is_not_a_dry_run(tmp_path):
    db = str(tmp_path / "fresh.db")
    assert run_cli("init", db).returncode == 0
    result = run_cli("schema", "upgrade", db, "--yes", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["dry_run"] is False
    dry = run_cli("schema", "upgrade", db, "--dry-run", "--json")
    assert json.loads(dry.stdout)["dry_run"] is True


def test_import_resume_of_a_finished_import_says_nothing_was_inserted(demo_file, tmp_path):
    export = str(tmp_path / "e1.jsonl")
    assert run_cli("export", demo_file, "-e", "1", "-o", export).returncode == 0
    target = str(tmp_path / "t.db")
    assert run_cli("init", target).returncode == 0
    assert run_cli("import", target, export).returncode == 0
    again = run_cli("import", target, export, "--resume")
    assert again.returncode == 0, again.stderr
    assert "nothing was inserted" in again.stdout and "(resumed)" not in again.stdout
    assert json.loads(run_cli("import", target, export, "--resume", "--json").stdout)["already_done"] is True


def test_prune_says_why_it_keeps_more_than_keep(demo_file):
    older = json.loads(run_cli("snapshot", "create", demo_file, "--verify", "--json").stdout)["id"]
    assert run_cli("snapshot", "create", demo_file).returncode == 0  # newer, never verified
    result = run_cli("snapshot", "prune", demo_file, "--keep", "1", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "kept 2" in result.stdout
    assert "kept %s as well: the newest verified snapshot" % older in result.stdout
    as_json = json.loads(run_cli("snapshot", "prune", demo_file, "--keep", "1", "--dry-run", "--json").stdout)
    assert as_json["protected"] == [older]


@pytest.mark.mysql
def test_migrate_value_out_of_mysql_float_range_is_named_as_such(tmp_path, mysql_address):
    assert run_cli("demo", str(tmp_path / "d"), "--clean").returncode == 0
    source = str(tmp_path / "d" / "experiment.db")
    con = sqlite3.connect(source)
    con.execute("UPDATE METRIC SET total_val = 1e39 WHERE id = (SELECT min(id) FROM METRIC)")
    con.commit()
    con.close()
    result = run_cli("migrate", source, url_of(mysql_address), "-e", "1", "--init")
    assert result.returncode == 4, result.stderr
    assert "1 value of METRIC.total_val is past what a FLOAT holds" in result.stderr  # before the first batch now
    assert "nothing was copied" in result.stderr and "make the column DOUBLE in DST" in result.stderr


def test_schema_leaves_out_emfixs_own_tables(demo_file, tmp_path):
    target = str(tmp_path / "copy.db")
    assert run_cli("migrate", demo_file, target, "-e", "1", "--init").returncode == 0
    con = sqlite3.connect(target)
    assert con.execute("SELECT count(*) FROM sqlite_master WHERE name = '_emfix_migration'").fetchone()[0] == 1
    con.close()
    for args in (("schema", target), ("schema", "show", target), ("schema", "show", target, "--json"),
                 ("schema", "graph", target, "--json")):
        result = run_cli(*args)
        assert result.returncode == 0 and "_emfix_migration" not in result.stdout, (args, result.stdout)


@pytest.mark.mysql
def test_schema_leaves_out_emfixs_own_tables_on_mariadb(tmp_path, mysql_address):
    make_demo(mysql_address, faults=False)
    result = run_cli("import", url_of(mysql_address), _exported(tmp_path))
    assert result.returncode == 0, result.stderr
    for args in (("schema", url_of(mysql_address)), ("schema", "show", url_of(mysql_address))):
        shown = run_cli(*args)
        assert shown.returncode == 0 and "_emfix_import" not in shown.stdout, shown.stderr


def _exported(tmp_path):
    assert run_cli("demo", str(tmp_path / "src"), "--clean").returncode == 0
    path = str(tmp_path / "e.jsonl")
    assert run_cli("export", str(tmp_path / "src" / "experiment.db"), "-e", "1", "-o", path).returncode == 0
    return path


def test_the_library_says_what_happened_and_the_command_layer_words_what_to_run():
    from emfix.address import DatabaseAddress
    from emfix.backends.replication import translate_server_error
    from emfix.commands.common import hint_for
    address = DatabaseAddress("mysql", host="db1", port=3306, user="em", database="em")
    read_only = translate_server_error(address, 1290, "The MariaDB server is running with the --read-only option")
    assert read_only.kind == "read_only_server" and read_only.hint is None  # no command line in the library
    assert hint_for(read_only) == ("a replica takes every change from its primary; point emfix at the primary "
                                   "(`emfix doctor` says which server this one replicates from)")
    too_large = translate_server_error(address, 1180, "wsrep_max_ws_rows exceeded")
    assert too_large.hint is None and "`emfix doctor` shows the limits" in hint_for(too_large)
    too_large.hint = "the batches copied so far are committed"  # a library hint comes after the command's
    assert hint_for(too_large).endswith("nothing of that batch was written; the batches copied so far are committed")


def test_a_missing_mysql_database_points_at_init_with_its_own_address(mysql_address):
    import dataclasses
    missing = dataclasses.replace(mysql_address, database="emfix_no_such_database")
    result = run_cli("validate", url_of(missing))
    assert result.returncode == 3 and "Traceback" not in result.stderr, result.stderr
    assert "error: MySQL database 'emfix_no_such_database' does not exist" in result.stderr
    assert "hint: check the name; `emfix init mysql://" in result.stderr
    assert "CREATE DATABASE `emfix_no_such_database` CHARACTER SET utf8mb4)" in result.stderr
