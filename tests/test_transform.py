"""transform-metrics: the old rules and the new ones, every original kept, never applied twice."""

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys

import pytest
from conftest import ROOT, make_demo, run_cli, select_all, sqlite_rows, url_of
from hypothesis import given, settings
from hypothesis import strategies as st

from emfix.backends import open_database
from emfix.demo import Shape
from emfix.errors import UsageError
from emfix.transform import WRITER, TransformResult, apply_rules, parse_rules, read_rules_text

PASSWORD = {"EMFIX_MYSQL_PASSWORD": ""}


def metric_rows(address):
    with open_database(address, readonly=True) as db:
        return sorted(db.query(select_all("METRIC", db.quote)), key=repr)


def write_rules(tmp_path, rules):
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(rules))
    return str(path)


def test_old_rules_normalize_and_round_and_comments_are_ignored():
    rules = parse_rules({"_comment": "ignored", "accuracy": "normalize", "loss": "round"})
    result = TransformResult(False, {})
    assert apply_rules(rules, {"accuracy": 91.5, "loss": 0.123456, "other": 3}, result) == {
        "accuracy": 0.915, "loss": 0.12, "other": 3}


def test_new_rules_scale_round_rename_drop_and_star():
    rules = parse_rules({"cat": [{"scale": 2}, {"round": 1}], "old": {"rename": "new"}, "tmp": "drop",
                         "*": {"round": 0}})
    result = TransformResult(False, {})
    assert apply_rules(rules, {"cat": 0.26, "old": 1.5, "tmp": 9, "dog": 0.7}, result) == {
        "cat": 0.5, "new": 1.5, "dog": 1.0}
    assert apply_rules(rules, {"old": 1, "new": 2}, result) is None and result.rename_conflicts == 1
    assert apply_rules(parse_rules({"cat": "round"}), {"cat": "high"}, result) is None and result.not_numbers == 1


def test_a_rules_file_with_an_unknown_rule_is_refused_by_name(tmp_path, demo_address):
    path = write_rules(tmp_path, {"cat": "halve"})
    result = run_cli("transform-metrics", url_of(demo_address), "--rules", path, "--yes", env=PASSWORD)
    assert result.returncode == 2 and "'cat'" in result.stderr and "halve" in result.stderr
    assert "Traceback" not in result.stderr
    (tmp_path / "broken.json").write_text("{cat: normalize")
    result = run_cli("transform-metrics", url_of(demo_address), "--rules", str(tmp_path / "broken.json"), env=PASSWORD)
    assert result.returncode == 2 and "not JSON" in result.stderr


def test_dry_run_shows_pairs_and_changes_nothing(demo_address, tmp_path):
    before = metric_rows(demo_address)
    path = write_rules(tmp_path, {"cat": "normalize"})
    result = run_cli("transform-metrics", url_of(demo_address), "--rules", path, "--dry-run", "--json", env=PASSWORD)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["changed"] > 0 and report["examples"][0]["before"] != report["examples"][0]["after"]
    assert metric_rows(demo_address) == before


def test_transform_then_undo_leaves_metric_as_before(demo_address, tmp_path):
    before = metric_rows(demo_address)
    path = write_rules(tmp_path, {"cat": "normalize", "dog": {"rename": "hound"}, "bird": "drop"})
    done = run_cli("transform-metrics", url_of(demo_address), "--rules", path, "--yes", "--json",
                   "--snapshot-dir", str(tmp_path / "s"), "--quarantine-dir", str(tmp_path / "q"), env=PASSWORD)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["changed"] > 0 and report["malformed"] > 0 and report["snapshot_id"]
    after = metric_rows(demo_address)
    assert after != before
    changed = [json.loads(row[3]) for row in after if row not in before]
    assert changed and not any("dog" in values or "bird" in values for values in changed)
    undone = run_cli("undo", report["quarantine"], env=PASSWORD)
    assert undone.returncode == 0, undone.stderr
    assert metric_rows(demo_address) == before


def test_old_spellings_limit_the_run_to_the_experiments_given(tmp_path):
    address = make_sqlite(tmp_path)
    path = write_rules(tmp_path, {"*": {"scale": 10}})
    done = run_cli("transform-metrics", "-d", address.path, "--sqlite", "--transformation-file", path,
                   "--experiment-ids", "1", "--yes", "--no-snapshot", "--json")
    assert done.returncode == 0, done.stderr
    only_first = json.loads(done.stdout)["scanned"]
    every = run_cli("transform-metrics", address.path, "--rules", path, "--dry-run", "--json")
    assert 0 < only_first < json.loads(every.stdout)["scanned"]


def make_sqlite(tmp_path, shape=None):
    from emfix.address import DatabaseAddress
    address = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(address, shape)
    return address


def test_template_is_a_rules_file_once_a_rule_is_uncommented(tmp_path):
    target = tmp_path / "rules.json"
    assert run_cli("create-transformation-template", "-o", str(target)).returncode == 0
    assert run_cli("transform-metrics", "--template", "-").stdout == target.read_text()
    data = json.loads(target.read_text())
    assert parse_rules({"accuracy": data["_example_accuracy"], "loss": data["_example_loss"]})
    db = make_sqlite(tmp_path)
    refused = run_cli("transform-metrics", db.path, "--rules", str(target), "--yes")
    assert refused.returncode == 2 and "no rules" in refused.stderr


def test_a_new_quarantine_says_in_progress_and_names_its_rules_in_one_commit(tmp_path):
    """The suite on a loaded machine: a run killed between the quarantine's "in progress" and the record of its
    rules left a quarantine whose rerun was refused as "another transform-metrics with other rules" (exit 2, for
    good: undo was the only way on). A new file's tables and records are written in one commit now."""
    from emfix import quarantine as q
    from emfix.address import DatabaseAddress
    con = q.open_quarantine(str(tmp_path / "transform-metrics-x.quarantine.db"), create=True)
    statements = []
    con.set_trace_callback(statements.append)
    meta = q.start(con, "transform-metrics", DatabaseAddress("sqlite", path=str(tmp_path / "e.db")), "why",
                   rules_sha256="abc", change_fingerprint="f", tables=["METRIC"])
    con.close()
    assert [s for s in statements if s.strip().upper() == "COMMIT"] == ["COMMIT"], statements
    assert (meta["status"], meta["rules_sha256"], meta["change_fingerprint"], meta["tables"]) == (
        "in progress", "abc", "f", ["METRIC"])


def test_killed_runs_then_a_rerun_apply_each_rule_exactly_once(tmp_path):
    address = make_sqlite(tmp_path, Shape(runs=10, epochs=10, batches=5))
    reference = tmp_path / "reference.db"
    con = sqlite3.connect(address.path)
    con.execute("VACUUM INTO ?", (str(reference),))
    con.close()
    path = write_rules(tmp_path, {"*": {"scale": 2}})
    common = ["--rules", path, "--yes", "--no-snapshot", "--batch-size", "50", "--progress"]
    env = dict(os.environ, PYTHONPATH=ROOT)
    kills = 0
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-m", "emfix", "transform-metrics", address.path] + common, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for line in proc.stderr:
            if b"changed of" in line:  # a batch is under way: kill it mid-run
                proc.send_signal(signal.SIGKILL)
                kills += 1
                break
        proc.communicate()
    finished = run_cli("transform-metrics", address.path, *common)
    assert finished.returncode == 0, finished.stderr
    once = run_cli("transform-metrics", str(reference), *common)
    assert once.returncode == 0 and kills
    assert sqlite_rows(address.path)["METRIC"] == sqlite_rows(str(reference))["METRIC"]


def test_values_that_are_not_json_numbers_are_skipped_not_written(tmp_path):
    address = make_sqlite(tmp_path)
    con = sqlite3.connect(address.path)
    con.execute("UPDATE METRIC SET per_label_val = '{\"cat\": 1e999}' WHERE id = 1")
    con.execute("UPDATE METRIC SET per_label_val = '{\"cat\": NaN}' WHERE id = 2")
    con.commit()
    con.close()
    path = write_rules(tmp_path, {"cat": "normalize"})
    done = run_cli("transform-metrics", address.path, "--rules", path, "--yes", "--no-snapshot", "--json")
    assert done.returncode == 0, done.stderr
    con = sqlite3.connect(address.path)
    assert [r[0] for r in con.execute("SELECT per_label_val FROM METRIC WHERE id IN (1, 2) ORDER BY id")] == [
        '{"cat": 1e999}', '{"cat": NaN}']
    con.close()
    assert json.loads(done.stdout)["malformed"] >= 2


# -- numbers past a double's range, rules files Python's json reads but JSON does not (#23, item 13) ---------

HUGE = "1" + "0" * 400


def test_a_huge_integer_is_left_as_it_is_counted_and_the_run_goes_on(demo_address, tmp_path):
    with open_database(demo_address) as db:
        ids = [r[0] for r in db.query("SELECT id FROM METRIC ORDER BY id")]
        middle = ids[len(ids) // 2]
        db.execute("UPDATE METRIC SET per_label_val = ? WHERE id = ?", ('{"cat": %s, "dog": 50}' % HUGE, middle))
    path = write_rules(tmp_path, {"cat": "normalize", "dog": "normalize"})
    args = [url_of(demo_address), "--rules", path, "--yes", "--no-snapshot", "--quarantine-dir", str(tmp_path / "q")]
    done = run_cli("transform-metrics", *args, "--json", env=PASSWORD)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    report = json.loads(done.stdout)
    assert report["too_large"] == 1 and report["too_large_ids"] == [middle]
    assert report["scanned"] == len(ids) and report["changed"] > 1
    with open_database(demo_address, readonly=True) as db:
        kept = db.scalar("SELECT per_label_val FROM METRIC WHERE id = ?", (middle,))
    assert json.loads(kept) == {"cat": int(HUGE), "dog": 0.5}  # the huge value as it was, the other label done
    again = run_cli("transform-metrics", *args, "--dry-run", env=PASSWORD)
    assert again.returncode == 0 and "past a double's range (METRIC %s)" % middle in again.stdout, again.stderr


@pytest.mark.parametrize("text, words", [
    ('{"cat": {"scale": NaN}}', "NaN is not a number"),
    ('{"cat": {"scale": Infinity}}', "Infinity is not a number"),
    ('{"cat": {"scale": -Infinity}}', "-Infinity is not a number"),
    ('{"cat": {"scale": 1e400}}', "1e400 is past a double's range"),
    ('{"cat": {"scale": %s}}' % HUGE, "past a double's range"),
    ('{"cat": "normalize", "dog": "round", "cat": "drop"}', "'cat' is given twice"),
    ('{"cat": {"scale": 2, "scale": 3}}', "'scale' is given twice"),
])
def test_a_rules_file_json_would_not_read_is_refused_and_nothing_changes(tmp_path, text, words):
    address = make_sqlite(tmp_path)
    before = sqlite_rows(address.path)
    (tmp_path / "rules.json").write_text(text)
    result = run_cli("transform-metrics", address.path, "--rules", str(tmp_path / "rules.json"), "--yes",
                     "--no-snapshot")
    assert result.returncode == 2 and words in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) <= 2 and not result.stdout
    assert sqlite_rows(address.path) == before


LABELS = st.text(alphabet="abcdefgh*", min_size=1, max_size=4)
STEPS = st.one_of(st.sampled_from(["normalize", "round", "drop"]),
                  st.builds(lambda f: {"scale": f}, st.floats(allow_nan=False, allow_infinity=False)),
                  st.builds(lambda n: {"round": n}, st.integers(0, 17)),
                  st.builds(lambda s: {"rename": s}, st.text(alphabet="xyz", min_size=1, max_size=3)))
RULES = st.dictionaries(LABELS, st.one_of(STEPS, st.lists(STEPS, min_size=1, max_size=3)), min_size=1, max_size=5)


@settings(max_examples=80, deadline=None)
@given(rules=RULES, data=st.data())
def test_any_rules_file_with_a_label_given_twice_is_refused_by_that_label(rules, data):
    label = data.draw(st.sampled_from(sorted(rules)))
    other = data.draw(STEPS)
    text = json.dumps(rules)[:-1] + ", %s: %s}" % (json.dumps(label), json.dumps(other))
    with pytest.raises(UsageError, match="%s is given twice" % re.escape(repr(label))):
        read_rules_text(text, "rules.json")
    assert read_rules_text(json.dumps(rules)).keys() == rules.keys()  # without the repeat it is read


@settings(max_examples=80, deadline=None)
@given(number=st.one_of(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e309", "-2E400", "1" + "0" * 309]),
                        st.integers(309, 5000).map(lambda e: "9.5e%d" % e)))
def test_any_number_past_a_double_in_a_rules_file_is_refused(number):
    with pytest.raises(UsageError, match="not a number|past a double's range"):
        read_rules_text('{"cat": {"scale": %s}}' % number, "rules.json")
    with pytest.raises(UsageError):  # even in a comment: the file is not JSON as RFC 8259 reads it
        read_rules_text('{"_note": %s, "cat": "round"}' % number, "rules.json")


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_any_text_given_as_a_rules_file_is_rules_or_a_usage_error(text):
    try:
        rules = read_rules_text(text, "rules.json")
    except UsageError:
        return
    assert rules and all(isinstance(steps, list) and steps for steps in rules.values())


NUMBERS = st.one_of(st.integers(-10 ** 500, 10 ** 500), st.floats(allow_nan=False, allow_infinity=False),
                    st.booleans(), st.text(max_size=3), st.none())


@settings(max_examples=300, deadline=None)
@given(rules=RULES, values=st.dictionaries(LABELS, NUMBERS, max_size=6))
def test_rules_over_any_finite_values_never_raise_and_always_write_json(rules, values):
    result = TransformResult(False, {})
    out = apply_rules(parse_rules(rules), values, result)
    if out is not None:
        WRITER.encode(out)  # allow_nan=False: no infinity ever written


def test_a_database_after_the_experiment_ids_is_the_database(sqlite_address, tmp_path):
    """`-e 1 2 DB`: the ids stop where a path begins (it was read as one more id)."""
    make_demo(sqlite_address)
    rules = tmp_path / "rules.json"
    rules.write_text('{"cat": "normalize"}')
    result = run_cli("transform-metrics", "-e", "1", "2", sqlite_address.path, "--rules", str(rules), "--dry-run",
                     "--json")
    assert result.returncode == 0, result.stderr
    wrong = run_cli("transform-metrics", "-e", "1", "x2", sqlite_address.path, "--rules", str(rules), "--dry-run")
    assert wrong.returncode == 2 and "'x2' is not a whole number" in wrong.stderr
