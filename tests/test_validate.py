"""emfix validate: exact counts against a brute-force oracle, on SQLite and on the real MariaDB."""

import hashlib
import json
import sqlite3
import subprocess
import sys

import pytest
from conftest import make_demo, run_cli, url_of
from hypothesis import example, given, settings
from hypothesis import strategies as st

from emfix.address import DatabaseAddress
from emfix.backends import open_database
from emfix.demo import Shape
from emfix.schema import discover_graph
from emfix.validate import validate

EXPECTED_JSON = {"python_repr": 1, "python_literals": 1, "trailing_comma": 1, "nan_infinity": 2,
                 "unescaped_backslash": 1, "truncated": 1, "double_encoded": 1, "not_utf8": 1, "empty": 1,
                 "numpy_repr": 1}


def brute_force(address):
    """The same questions answered the slow, obvious way: every row in Python sets."""
    with open_database(address, readonly=True) as db:
        graph = discover_graph(db)
        q = db.quote
        rows = {}
        for table in graph.tables:
            cols = db.columns(table)
            ident = "rowid, " if db.dialect == "sqlite" else ""
            data = db.query("SELECT %s%s FROM %s" % (ident, ", ".join(q(c) for c in cols), q(table)))
            pk = graph.primary_keys[table]
            rows[table] = [(r[0] if ident else tuple(r[cols.index(c)] for c in pk),
                            dict(zip(cols, r[1:] if ident else r))) for r in data]
    relations = {}
    doomed_rows = {}
    for table in graph.parent_first():
        flagged = {}
        for rel in graph.relations_of(table):
            parent_keys = {tuple(row[c] for c in rel.parent_columns) for _, row in rows[rel.parent]}
            doomed_keys = {tuple(row[c] for c in rel.parent_columns) for _, row in doomed_rows.get(rel.parent, [])}
            counts = {"d": 0, "c": 0, "n": 0}
            for ident, row in rows[table]:
                values = tuple(row[c] for c in rel.child_columns)
                if any(v is None for v in values):
                    kind = "n"
                elif values not in parent_keys:
                    kind = "d"
                elif rel.parent != table and values in doomed_keys:
                    kind = "c"
                else:
                    continue
                counts[kind] += 1
                flagged.setdefault(ident, set()).add(kind)
            relations[(rel.child, rel.child_columns, rel.parent)] = counts
        doomed_rows[table] = [(i, r) for i, r in rows[table] if flagged.get(i, set()) & {"d", "c"}]
        relations[table] = {"violating_rows": sum("d" in k for k in flagged.values()),
                            "cascade_rows": sum("c" in k and "d" not in k for k in flagged.values()),
                            "null_key_rows": sum(k == {"n"} for k in flagged.values())}
    return relations


def test_counts_equal_brute_force_on_both_backends(demo_address):
    report = validate(demo_address, limit=1000)
    oracle = brute_force(demo_address)
    for check in report.relations:
        rel = check.relation
        expected = oracle[(rel.child, rel.child_columns, rel.parent)]
        assert (check.violations, check.cascade, check.null_keys) == (expected["d"], expected["c"], expected["n"]), \
            rel.describe()
        assert len(check.examples) == check.violations
    for table, counts in report.tables.items():
        assert (counts.violating_rows, counts.cascade_rows, counts.null_key_rows) == tuple(oracle[table].values())
    assert report.total_violations == 21
    assert report.total_cascade_rows == 156
    assert not report.passed and report.status == "FAIL"


def awkward_keys_database(tmp_path):
    """The demo with keys made awkward on purpose: NULL parts, REAL and text values in INT columns, a key
    twice, missing and doomed parents, rowids far apart (ranges of rowids by arithmetic: 10**13 of them)."""
    address = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(address)
    con = sqlite3.connect(address.path)
    con.executescript("""
        INSERT INTO BATCH_METRIC VALUES (NULL, 0, 1, 1), (0, NULL, 1, 2), (0, 0, NULL, 3);
        INSERT INTO BATCH_METRIC VALUES (0.0, 0, 1, 4), (1.0, 0, 1, 5), (0.5, 0, 1, 6), ('x', 0, 1, 7);
        INSERT INTO BATCH_METRIC VALUES (999, 0, 1, 8), (999, 0, 1, 9), (-1, 99999, 1, 10);
        INSERT INTO BATCH VALUES ('x', 0, 1, '2025-01-01'), (NULL, 0, 1, '2025-01-01');
        INSERT INTO BATCH_METRIC VALUES (NULL, 0, 1, 11);
        INSERT INTO EPOCH_METRIC VALUES (NULL, 1, 12), (5000, 1, 13), (0.0, 1, 14);
        INSERT INTO BATCH_METRIC (rowid, batch_idx, epoch_idx, trial_run_id, metric_id)
            VALUES (4611686018427387904, 7, 7, 7, 15), (9223372036854775807, NULL, 7, 7, 16);
        INSERT INTO BATCH VALUES (0, NULL, 1, 't'), (1, 0.5, 99999, 't'), (2, 77777, 1, 't'), ('x', 999, 2, 't'),
                                 (NULL, 1, NULL, 't'), (1, 'x', 1, 't');
    """)
    con.close()
    return address


def test_merge_anti_join_finds_what_probing_finds(tmp_path, monkeypatch):
    """#28: relations indexed in one key order on both sides (BATCH_METRIC -> BATCH, EPOCH_METRIC -> EPOCH,
    ...) are swept by merging the two indexes. On awkward keys it reports exactly what the probing sweep and
    the brute-force oracle report, examples included."""
    from emfix import fkmerge, fksweep
    address = awkward_keys_database(tmp_path)
    used = []
    real = fkmerge.merge_order

    def spy(*args):
        found = real(*args)
        used.append(found and (found[0] or "whole"))
        return found

    def report():
        result = validate(address, limit=1000)
        return {c.relation.describe(): (c.violations, c.cascade, c.null_keys,
                                        sorted(json.dumps(v.to_dict(), sort_keys=True) for v in c.examples),
                                        sorted(json.dumps(v.to_dict(), sort_keys=True) for v in c.cascade_examples))
                for c in result.relations}, {t: vars(c) for t, c in result.tables.items()}

    monkeypatch.setattr(fksweep, "merge_order", spy)
    merged = report()
    assert used.count("whole") >= 4 and "idx" in used  # BATCH -> EPOCH merged once per BATCH.idx value
    monkeypatch.setattr(fksweep, "merge_order", lambda *args: None)
    assert report() == merged
    oracle = brute_force(address)
    with open_database(address, readonly=True) as db:
        relations = {r.describe(): r for r in discover_graph(db).relations}
    for described, (violations, cascade, nulls, _examples, _cascade) in merged[0].items():
        rel = relations[described]
        expected = oracle[(rel.child, rel.child_columns, rel.parent)]
        assert (violations, cascade, nulls) == (expected["d"], expected["c"], expected["n"]), described


def offending_rows(address, monkeypatch, chunk_rows, merge=True):
    """Every row the foreign-key sweep flags, per table (duplicates kept), swept whole or in chunks."""
    from emfix import fksweep
    from emfix.fksweep import sweep_foreign_keys
    if not merge:
        monkeypatch.setattr(fksweep, "merge_order", lambda *args: None)
    try:
        with open_database(address, readonly=True) as db:
            plans = sweep_foreign_keys(db, discover_graph(db), limit=0, chunk_rows=chunk_rows)[2]
            return {p.table: sorted(map(tuple, db.query("SELECT * FROM %s" % db.quote(p.rows_table))), key=repr)
                    for p in plans}
    finally:
        monkeypatch.undo()


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 7, 100000])
def test_the_merge_in_short_spans_flags_each_row_once_as_the_whole_sweep_does(tmp_path, monkeypatch, chunk_rows):
    """#5/#28: cleanup and repair sweep beside the application in short statements; the merge then runs over spans
    of the child's index (NULL parts, whole values, values split by the next key part) instead of probing every row
    (10M demo: 1.97 s against 4.08 s). Whatever the span size, each offending row comes out once, with the kind
    the whole sweep gives it (a table smaller than one chunk once had its NULL-key rows twice)."""
    address = awkward_keys_database(tmp_path)
    whole = offending_rows(address, monkeypatch, None)
    assert whole == offending_rows(address, monkeypatch, None, merge=False)
    assert offending_rows(address, monkeypatch, chunk_rows) == whole
    assert offending_rows(address, monkeypatch, chunk_rows, merge=False) == whole
    assert sum(len(rows) for rows in whole.values()) > 100


KEY_VALUES = st.sampled_from([None, -1, 0, 1, 2, 3, "x", 0.5])
FEW_KEY_VALUES = st.sampled_from([None, 1, 2, "x", "X", 0.5, "bad"])  # often held by more rows than a span;
# "bad" becomes TEXT whose bytes are not UTF-8 (emfix reads it as bytes)


@settings(max_examples=100, deadline=None)
@given(grand=st.lists(st.sampled_from([1, 2]), max_size=2, unique=True),
       parents=st.lists(st.tuples(FEW_KEY_VALUES, FEW_KEY_VALUES, st.sampled_from([1, 2, None])), max_size=8),
       children=st.lists(st.tuples(FEW_KEY_VALUES, FEW_KEY_VALUES, KEY_VALUES), min_size=4, max_size=25),
       chunk_rows=st.integers(1, 4))
@example(grand=[1], parents=[(1, 1, 1)], children=[(5, 1, 1), (5, 1, 2), (5, 1, 3), (5, 2, 1)], chunk_rows=1)
def test_any_keys_swept_in_spans_give_the_rows_of_the_whole_sweep(tmp_path_factory, grand, parents, children,
                                                                   chunk_rows):
    """The spans' property, on keys hypothesis picks: NULL parts, text and REAL values in INTEGER columns, one
    value holding more rows than a span (split by the next part), parents missing or doomed (their own parent
    missing), TEXT that is not UTF-8 (an outside tester: a span starting at it left its row unswept), a NOCASE
    child column (the merge compared 'ABC' equal to a parent 'abc'; the probe, as SQLite, by the parent's BINARY).
    The child C is indexed (x, y, z) for the plain merge and W (w, x, y) for the merge per value of w."""
    address = DatabaseAddress("sqlite", path=str(tmp_path_factory.mktemp("spans") / "keys.db"))
    con = sqlite3.connect(address.path)
    con.executescript("""
        CREATE TABLE G (id INTEGER PRIMARY KEY);
        CREATE TABLE P (a INTEGER, b INTEGER, g INTEGER REFERENCES G (id), PRIMARY KEY (a, b));
        CREATE TABLE C (x INTEGER, y INTEGER, z INTEGER, PRIMARY KEY (x, y, z),
                        FOREIGN KEY (x, y) REFERENCES P (a, b));
        CREATE TABLE W (w INTEGER, x INTEGER, y INTEGER, PRIMARY KEY (w, x, y), FOREIGN KEY (x, y) REFERENCES P (a, b));
        CREATE TABLE N (x INTEGER COLLATE NOCASE, y INTEGER, z INTEGER, PRIMARY KEY (x, y, z),
                        FOREIGN KEY (x, y) REFERENCES P (a, b));
    """)
    con.executemany("INSERT INTO G VALUES (?)", [(g,) for g in grand])
    con.executemany("INSERT OR IGNORE INTO P VALUES (?, ?, ?)", parents)
    con.executemany("INSERT OR IGNORE INTO C VALUES (?, ?, ?)", children)
    con.executemany("INSERT OR IGNORE INTO W VALUES (?, ?, ?)", [(z, x, y) for x, y, z in children])
    con.executemany("INSERT OR IGNORE INTO N VALUES (?, ?, ?)", children)
    for table, columns in (("P", "ab"), ("C", "xyz"), ("W", "wxy"), ("N", "xyz")):
        for column in columns:
            con.execute("UPDATE OR IGNORE %s SET %s = CAST(x'c3' AS TEXT) WHERE %s = 'bad'" % (table, column, column))
    con.commit()
    con.close()
    monkeypatch = pytest.MonkeyPatch()
    whole = offending_rows(address, monkeypatch, None)
    assert offending_rows(address, monkeypatch, None, merge=False) == whole
    assert offending_rows(address, monkeypatch, chunk_rows) == whole
    assert offending_rows(address, monkeypatch, chunk_rows, merge=False) == whole


def test_known_demo_faults_are_named(demo_address):
    report = validate(demo_address)
    by_relation = {(c.relation.child, c.relation.parent): c for c in report.relations}
    assert by_relation[("TRIAL", "EXPERIMENT")].examples[0].values == [999999]
    assert by_relation[("RESULTS_METRIC", "RESULTS")].recreatable == 2  # old-API links under an existing run
    if demo_address.kind == "sqlite":  # MySQL makes every primary-key column NOT NULL
        assert by_relation[("TRIAL_RUN_ARTIFACT", "TRIAL_RUN")].null_keys == 1
    assert {u.table: u.count for u in report.unreferenced} == {"METRIC": 3, "ARTIFACT": 1}


def test_json_issues_are_diagnosed_by_category(demo_address):
    report = validate(demo_address)
    expected = dict(EXPECTED_JSON)
    if demo_address.kind == "mysql":
        expected.pop("not_utf8")  # a utf8mb4 column cannot hold those bytes
    assert report.json.categories == expected
    assert report.json.issue_count == sum(expected.values())
    assert report.json.structure_count == 1  # the list [0.91, 0.87]
    needs_a_person = {"truncated", "not_utf8"} & set(expected)
    assert report.json.fixable_count == report.json.issue_count - len(needs_a_person)
    assert report.json.fixable_count == sum(i.fixable for i in report.json.issues)


def test_results_agree_with_pragma_foreign_key_check(tmp_path):
    path = tmp_path / "experiment.db"
    address = DatabaseAddress("sqlite", path=str(path))
    make_demo(address)
    report = validate(address, limit=10 ** 6)
    ours = {(v.table, v.key["rowid"], v.parent_table) for check in report.relations for v in check.examples}
    con = sqlite3.connect(str(path))
    theirs = {(t, rowid, parent) for t, rowid, parent, _fk in con.execute("PRAGMA foreign_key_check")}
    con.close()
    assert ours == theirs and len(ours) == 21


def test_clean_database_passes_with_exit_0(address):
    make_demo(address, faults=False)
    report = validate(address)
    assert report.passed and report.total_violations == 0 and report.total_cascade_rows == 0
    result = run_cli("validate", url_of(address))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("PASS")


def test_damaged_database_fails_with_exit_1_and_suggests_next_command(demo_address):
    result = run_cli("validate", url_of(demo_address))
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("FAIL")
    assert "no EXPERIMENT with id=999999" in result.stdout
    assert "validate %s -o report.json" % url_of(demo_address) in result.stdout
    assert "Traceback" not in result.stderr


def test_report_file_is_read_by_the_cookbook_snippet(demo_address, tmp_path):
    report_path = tmp_path / "violation_report.json"
    result = run_cli("validate", url_of(demo_address), "-o", str(report_path), "-q")
    assert result.returncode == 1 and result.stdout == ""
    snippet = (  # the cookbook's "Step 2: Analyze the Report", unchanged
        "import json\n"
        "with open('violation_report.json', 'r') as f:\n"
        "    report = json.load(f)\n"
        "for table, violations in report['foreign_key_violations'].items():\n"
        "    if violations:\n"
        "        print(f\"\\n{table}: {len(violations)} violations\")\n"
        "        for violation in violations[:3]:  # Show first 3\n"
        "            print(f\"  - {violation}\")\n")
    out = subprocess.run([sys.executable, "-c", snippet], cwd=str(tmp_path), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "TRIAL: 1 violations" in out.stdout
    data = json.loads(report_path.read_text())
    assert data["summary"]["overall_status"] == "FAIL"
    assert data["summary"]["total_foreign_key_violations"] == 21
    assert {"metric_id", "metric_type", "error"} <= set(data["json_metric_issues"][0])


def test_limit_caps_examples_never_counts(demo_address):
    report = validate(demo_address, limit=1)
    data = report.to_dict()
    assert all(len(v) <= 1 for v in data["foreign_key_violations"].values())
    assert data["summary"]["total_foreign_key_violations"] == 21
    assert data["tables"]["EPOCH"]["violations"] == 4
    assert len(data["json_metric_issues"]) == 1 and data["summary"]["total_json_metric_issues"] >= 10
    assert validate(demo_address, limit=0).to_dict()["foreign_key_violations"]["TRIAL"] == []


def test_validate_never_writes_to_sqlite(tmp_path):
    address = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(address)
    before = hashlib.sha256((tmp_path / "experiment.db").read_bytes()).hexdigest()
    validate(address, experiment=3)
    assert hashlib.sha256((tmp_path / "experiment.db").read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["experiment.db"]


def test_validate_never_writes_to_mysql(mysql_address):
    make_demo(mysql_address)
    with open_database(mysql_address) as db:
        tables = db.tables()
        checksum = "CHECKSUM TABLE %s" % ", ".join(db.quote(t) for t in tables)
        before = db.query(checksum)
        validate(mysql_address, experiment=3)
        assert db.query(checksum) == before
        assert db.tables() == tables


def test_hierarchy_counts_levels_and_breaks(demo_address):
    report = validate(demo_address, experiment=1)
    levels = {lv.table: lv.rows for lv in report.hierarchy.levels}
    shape = Shape()
    assert levels["TRIAL"] == shape.trials and levels["TRIAL_RUN"] == shape.trials * shape.runs
    assert levels["EPOCH"] == shape.trials * shape.runs * shape.epochs
    assert levels["BATCH"] == levels["EPOCH"] * shape.batches
    assert report.hierarchy.breaks == []
    damaged = validate(demo_address, experiment=3).hierarchy
    breaks = {(b.table, b.parent_table): b.count for b in damaged.breaks}
    assert breaks[("EPOCH_METRIC", "EPOCH")] == 2 and breaks[("BATCH", "EPOCH")] == 3
    assert breaks[("RESULTS_METRIC", "RESULTS")] == 2
    stray = validate(demo_address, experiment=999999).hierarchy
    assert not stray.exists and [(b.table, b.count) for b in stray.breaks] == [("TRIAL", 1)]
    said = run_cli("validate", url_of(demo_address), "-e", "1", "--json")  # -e as migrate and export spell it
    assert json.loads(said.stdout)["hierarchy"]["experiment_id"] == 1, said.stderr


def test_counting_a_subtree_counts_what_the_walk_holds_breaks_included(demo_address):
    """migrate's aggressive verify counts DST's rows where they are (count_subtree); each count must be the
    walk's, the rows under a missing parent (experiment 3's breaks) and METRIC rows linked twice included."""
    from emfix.hierarchy import count_subtree, reach_subtree
    with open_database(demo_address) as db:
        graph = discover_graph(db)
        q = db.quote
        shared = db.query("SELECT e.%s, e.%s FROM %s e JOIN %s r ON r.%s = e.%s ORDER BY 1, 2 LIMIT 1" % (
            q("epoch_trial_run_id"), q("metric_id"), q("EPOCH_METRIC"), q("RESULTS"), q("trial_run_id"),
            q("epoch_trial_run_id")))[0]
        with db.transaction():  # one metric linked by two link tables: counted once
            db.execute("INSERT INTO %s (%s, %s) VALUES (?, ?)" % (q("RESULTS_METRIC"), q("results_id"),
                                                                  q("metric_id")), shared)
        for experiment in (1, 3, 999999):
            tree = reach_subtree(db, graph, experiment)
            walked = {t: tree.count(db, graph, t) for t in tree.tables(graph)}
            counted = count_subtree(db, graph, experiment)
            assert counted.pop("EXPERIMENT") == int(tree.exists) and walked.pop("EXPERIMENT") == 1
            assert counted == walked and (experiment == 999999 or walked["METRIC"] > 0)


LINK_VALUES = st.one_of(st.none(), st.integers(-3, 40), st.floats(-3, 40), st.sampled_from(
    [2.5, 4.0, "4", " 4", "4.0", "04", "x", "", b"\x04", 2 ** 63 - 1, -2 ** 63, 9e999]))


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(["INT", "REAL", "NUMERIC", "TEXT", ""]), values=st.lists(LINK_VALUES, max_size=12))
def test_the_walk_takes_a_child_row_exactly_when_in_does(tmp_path_factory, kind, values):
    """On SQLite the walk bounds a scan of a child table by the least and greatest held ids before it asks each
    row's IN: a row of a link column of any affinity, holding any kind of value, is in the experiment's key table
    exactly when `IN` alone takes it (a bound on a column that compares as text would leave out '10' > '9')."""
    from emfix.hierarchy import reach_subtree
    address = DatabaseAddress("sqlite", path=str(tmp_path_factory.mktemp("walk") / "w.db"))
    make_demo(address, shape=Shape(experiments=2, trials=2, runs=3, epochs=1, batches=1), faults=False)
    with open_database(address) as db:
        db.execute('CREATE TABLE "RUN_NOTE" (n INTEGER PRIMARY KEY, run %s REFERENCES "TRIAL_RUN" ("id"))' % kind)
        with db.transaction():
            for value in values:
                db.execute('INSERT INTO "RUN_NOTE" (run) VALUES (?)', (value,))
        graph = discover_graph(db)
        tree = reach_subtree(db, graph, 1)
        held = db.query('SELECT n FROM %s ORDER BY n' % db.quote(tree.held["RUN_NOTE"]))
        taken = db.query('SELECT n FROM "RUN_NOTE" WHERE run IN (SELECT id FROM %s) ORDER BY n' % db.quote(
            tree.held["TRIAL_RUN"]))
        assert held == taken


def test_json_output_is_the_report(demo_address):
    result = run_cli("validate", url_of(demo_address), "--json", "--limit", "2")
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data["summary"]["total_foreign_key_violations"] == 21
    assert data["database"]["backend"] == demo_address.kind


def test_password_is_masked_in_the_report(mysql_address, tmp_path):
    make_demo(mysql_address, shape=Shape(experiments=2, trials=2, runs=2, epochs=2, batches=1))
    with open_database(mysql_address) as db:
        db.execute("CREATE USER IF NOT EXISTS 'emfix_secret'@'%' IDENTIFIED BY 'Hunter2-secret'")
        db.execute("GRANT ALL ON `%s`.* TO 'emfix_secret'@'%%'" % mysql_address.database)
    try:
        url = "mysql://emfix_secret@%s:%s/%s" % (mysql_address.host, mysql_address.port, mysql_address.database)
        out = tmp_path / "report.json"
        result = run_cli("validate", url, "-o", str(out), "--json", env={"EMFIX_MYSQL_PASSWORD": "Hunter2-secret"})
        assert result.returncode == 1, result.stderr
        assert "Hunter2-secret" not in result.stdout + result.stderr + out.read_text()
        assert json.loads(out.read_text())["database"]["password"] == "***"
    finally:
        with open_database(mysql_address) as db:
            db.execute("DROP USER IF EXISTS 'emfix_secret'@'%'")


def test_object_with_non_number_values_is_a_structure_warning(address):
    make_demo(address)
    with open_database(address) as db:
        db.execute("UPDATE METRIC SET per_label_val = ? WHERE id = 2", ('{"cat": "0.91", "dog": {"x": 1}}',))
    deep = validate(address, deep_json=True).json
    assert 2 in [i.metric_id for i in deep.structure_examples] and deep.structure_count == 2
    assert deep.issue_count == validate(address).json.issue_count  # a warning, never a failure
    if address.kind == "sqlite":  # the per-value test is opt-in there (it doubles the scan)
        assert validate(address).json.structure_count == 1


def test_unreferenced_rows_by_merge_equal_not_in(tmp_path, monkeypatch):
    """#28: METRIC/ARTIFACT rows no link points at, found by merges of sorted ids (one EXCEPT per link table),
    equal NOT IN's answer (links holding NULL, REAL, text and missing ids included; a link table WITHOUT ROWID)."""
    from emfix import fksweep
    address = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(address)
    con = sqlite3.connect(address.path)
    con.executescript("""
        INSERT INTO METRIC (type, total_val) VALUES ('loss', 1), ('loss', 2), ('loss', 3);
        INSERT INTO BATCH_METRIC VALUES (0, 0, 1, NULL), (0, 0, 2, 'x'), (0, 0, 3, 99999999);
        INSERT INTO EPOCH_METRIC VALUES (0, 1, (SELECT max(id) FROM METRIC) + 0.0);
        INSERT INTO ARTIFACT (type, loc) VALUES ('file', '/a'), ('file', '/b');
    """)
    con.close()

    def found():
        with open_database(address, readonly=True) as db:
            graph = discover_graph(db)
            return [vars(fksweep.find_unreferenced(db, graph, 1000, t)) for t in fksweep.UNREFERENCED_TABLES]

    merged = found()
    assert merged[0]["count"] >= 2 and merged[1]["count"] >= 2  # two of the three new METRIC rows, both ARTIFACTs
    con = sqlite3.connect(address.path)  # a link table without rowid: the merges' order cannot ask it its size
    con.executescript("""
        CREATE TABLE em (epoch_idx INT, epoch_trial_run_id INT, metric_id INT,
                         PRIMARY KEY (epoch_idx, epoch_trial_run_id, metric_id)) WITHOUT ROWID;
        INSERT INTO em SELECT * FROM EPOCH_METRIC WHERE metric_id IS NOT NULL;
        DROP TABLE EPOCH_METRIC;
        ALTER TABLE em RENAME TO EPOCH_METRIC;
    """)
    con.close()
    assert found() == merged
    monkeypatch.setattr(fksweep, "unreferenced_by_merge", lambda *args: None)
    assert found() == merged



def test_metric_id_ranges_come_from_the_key_not_a_scan_of_metric(tmp_path):
    """#28: the JSON scan's id ranges cost two seeks, however many METRIC rows there are (min() and max() in
    one SELECT made SQLite read the whole table: 0.4 s of 10M rows before validate's sweep began)."""
    from emfix.jsoncheck import metric_id_ranges
    address = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(address, Shape(experiments=2, runs=4, epochs=20, batches=10))
    with open_database(address, readonly=True) as db:
        graph = discover_graph(db)
        rows = db.scalar("SELECT count(*) FROM METRIC")
        low, high = db.query("SELECT min(id), max(id) FROM METRIC")[0]
    con = sqlite3.connect(address.path)
    steps = []
    con.set_progress_handler(lambda: steps.append(1), 10)  # called every 10 VM instructions

    class Plain:
        dialect = "sqlite"
        quote = staticmethod(lambda name: '"%s"' % name)
        query = staticmethod(lambda sql, params=(): con.execute(sql, params).fetchall())

    ranges = metric_id_ranges(Plain, graph.columns, 4)
    con.close()
    assert ranges[0][0] == low and ranges[-1][0] <= high < ranges[-1][1] and len(ranges) == 4
    assert rows > 2000 and len(steps) < 100  # a scan: several instructions a row


AWKWARD_METRIC_VALUES = [
    None, "", " ", "{}", " {}", "\n{\"a\": 1}", "[1]", " [1]", "\"x\"", "1", "true", "null", "{\"a\": \"x\"}",
    " {\"a\": \"x\"}", "{\"a\": 1}", "{\"a\": [1]}", "{", "{\"a\": 1,}", "{'a': 1}", b"{}", b"\xff", 1, 1.5,
    "\ufeff{}", "{\"a\": 1} ", "{\"a\": 1}x", "{\"a\": NaN}", "\"{\\\"a\\\": 1}\"", "{\"a\": null}", "{}\x00x",
    "\t{\"a\": {\"b\": 1}}", "{\"a\": 1} {\"b\": 2}", "[{\"a\": 1}]", "{\"a\": true}", "{\"\\u00e9\": 1.5e300}",
    "\u017b{}", "\u7b00", "|{}", "z{}", "{\"a\": 1}\u017b", b"{\"a\": 1}"]


@pytest.mark.parametrize("encoding, collation", [("UTF-8", ""), ("UTF-8", " COLLATE NOCASE"), ("UTF-16le", ""),
                                                 ("UTF-16be", " COLLATE RTRIM")])
def test_sqlite_json_candidates_equal_the_plain_test(tmp_path, encoding, collation):
    """#28: the JSON scan's one-CASE test (json_valid alone for text starting with "{", found by a range of
    bytes; json_type asked only of valid text not starting so) picks exactly the rows of the plain "not text,
    not valid, or not an object" test, with and without --deep-json's per-value test, whatever the
    database's text encoding and the column's collation."""
    from emfix.jsoncheck import _candidates_sql
    con = sqlite3.connect(str(tmp_path / "m.db"))
    con.execute("PRAGMA encoding = '%s'" % encoding)
    con.execute("CREATE TABLE METRIC (id INTEGER PRIMARY KEY, type TEXT, per_label_val TEXT%s)" % collation)
    con.executemany("INSERT INTO METRIC (type, per_label_val) VALUES ('t', ?)", [(v,) for v in AWKWARD_METRIC_VALUES])
    con.execute("UPDATE METRIC SET per_label_val = CAST(per_label_val AS BLOB) WHERE id = 20")  # b"{}" as a BLOB

    class Backend:
        dialect = "sqlite"
        quote = staticmethod(lambda name: '"%s"' % name)

    plain = ("per_label_val IS NOT NULL AND (typeof(per_label_val) <> 'text' OR NOT json_valid(per_label_val) "
             "OR json_type(per_label_val) <> 'object'%s)")
    deep_part = (" OR EXISTS (SELECT 1 FROM json_each(per_label_val) e WHERE e.type NOT IN "
                 "('integer', 'real', 'null'))")
    for deep in (False, True):
        for id_range in (None, (3, 30)):
            sql, params = _candidates_sql(Backend(), True, id_range, deep)
            expected_sql = "SELECT id, type, per_label_val FROM METRIC WHERE %s%s ORDER BY id" % (
                plain % (deep_part if deep else ""), " AND id >= ? AND id < ?" if id_range else "")
            expected = con.execute(expected_sql, id_range or ()).fetchall()
            assert con.execute(sql, params).fetchall() == expected
            assert len(expected) >= (10 if id_range else 20)
    con.close()


def with_tables_in_lower_case(path):
    """Every table renamed to its name in lower case, as a MySQL server with lower_case_table_names = 1 (Windows'
    default) stores the application's tables (SQLite, like such a server, finds a table whatever the case)."""
    con = sqlite3.connect(path)
    names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                                       "'sqlite\\_%' ESCAPE '\\'")]
    for name in names:
        con.execute('ALTER TABLE "%s" RENAME TO "%s_renamed"' % (name, name))
        con.execute('ALTER TABLE "%s_renamed" RENAME TO "%s"' % (name, name.lower()))
    con.commit()
    con.close()


def test_tables_stored_in_lower_case_are_checked_as_the_applications_own(tmp_path):
    """On a server that stores METRIC as `metric` (lower_case_table_names = 1), validate said "metric JSON not
    checked: no METRIC table" and left out every check that names a table; the same report as on METRIC now."""
    upper = DatabaseAddress("sqlite", path=str(tmp_path / "upper.db"))
    make_demo(upper)
    lower = DatabaseAddress("sqlite", path=str(tmp_path / "lower.db"))
    make_demo(lower)
    with_tables_in_lower_case(lower.path)
    expected, found = validate(upper), validate(lower)
    assert found.json.issue_count == expected.json.issue_count > 0 and found.warnings() == expected.warnings()
    assert [(u.table, u.count) for u in found.unreferenced] == [(u.table, u.count) for u in expected.unreferenced]
    assert found.total_violations == expected.total_violations
    assert found.total_cascade_rows == expected.total_cascade_rows


def test_a_repair_of_tables_stored_in_lower_case_comes_undone_exactly(tmp_path):
    address = DatabaseAddress("sqlite", path=str(tmp_path / "lower.db"))
    make_demo(address)
    with_tables_in_lower_case(address.path)
    before = sqlite_dump(address.path)
    result = run_cli("repair", address.path, "--yes", "--no-snapshot", "--quarantine-dir", str(tmp_path / "q"),
                     "--json")
    assert result.returncode in (0, 1), result.stderr
    done = json.loads(result.stdout)
    assert done["removed"] and done["repaired"]
    assert validate(address).total_violations == 0
    undone = run_cli("undo", done["quarantine"], "--yes")
    assert undone.returncode == 0, undone.stderr
    assert sqlite_dump(address.path) == before


def sqlite_dump(path):
    con = sqlite3.connect(path)
    con.text_factory = bytes
    try:
        return {t: sorted(map(repr, con.execute('SELECT * FROM "%s"' % t.decode()))) for (t,) in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()}
    finally:
        con.close()


def test_bytes_that_are_not_utf8_show_in_json_as_their_hex_whole():
    """Round 33: a BINARY key's bytes in `validate --json` came out backslash-replaced (0x80 as the four characters
    \\x80, 0x00 as a real NUL beside them): neither the bytes nor text. Not UTF-8 now: 0x and every byte's hex."""
    from emfix.jsonable import to_jsonable
    assert to_jsonable({"k": b"\x80\x00\x00A"}) == {"k": "0x80000041"}
    assert to_jsonable([b"ABC\x00", "\\x80"]) == ["ABC\x00", "\\x80"]  # UTF-8 bytes stay text; text stays as it is
