"""Issue 24, item 6: every file emfix reads (schema JSON, transform rules, snapshot manifests, SQL
snapshots, quarantines, import and migration journals), damaged or edited in any way, gives either a
result or an emfix error, never another exception. The CLI runs in-process: a crash there is exit 70
(a bug), so "no exit 70" is "no traceback"."""

import contextlib
import copy
import io
import json
import os
import shutil
import sqlite3
import tempfile

import pytest
from conftest import ROOT, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emfix.cli import main
from emfix.errors import EXIT_BUG, DamagedInputError
from emfix.snapshot.mysqlrestore import loader_shares
from emfix.snapshot.sqlreader import END, MAGIC, SnapshotReader, tail_counts

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers(min_value=-(1 << 70), max_value=1 << 70) | st.floats() | \
    st.text(max_size=8)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=6), inner, max_size=3), max_leaves=8)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, prefix + (index,))


def mutate(data, document, most=3):
    """The document with a few of its values replaced by any JSON value, or removed."""
    document = copy.deepcopy(document)
    for _ in range(data.draw(st.integers(1, most))):
        paths = [p for p in _paths(document) if p]
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(json_values)
    return document


def run_main(*argv):
    """emfix's main() in this process; fails on exit 70, showing the traceback it wrote."""
    out, err = io.StringIO(), io.StringIO()
    crash_dir = tempfile.mkdtemp(prefix="emfix-fuzz-")
    saved, tempfile.tempdir = tempfile.tempdir, crash_dir
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in argv])
    finally:
        tempfile.tempdir = saved
    crashes = [open(os.path.join(crash_dir, n), encoding="utf-8").read() for n in os.listdir(crash_dir)]
    shutil.rmtree(crash_dir, ignore_errors=True)
    assert code != EXIT_BUG, "%s\n%s" % (err.getvalue(), "\n".join(crashes))
    assert "Traceback" not in err.getvalue()
    return code, out.getvalue()


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("odd")
    result = run_cli("demo", str(directory / "d"))
    assert result.returncode == 0, result.stderr
    return directory


@pytest.fixture(scope="module")
def demo_db(demo_dir):
    return str(demo_dir / "d" / "experiment.db")


@pytest.fixture(scope="module")
def schema_file(demo_db):
    result = run_cli("schema", "show", demo_db, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _write(path, document):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(document, handle)  # NaN and Infinity as json.dump writes them: json.load reads them back
    return str(path)


# -- schema JSON (`schema diff A B`) -------------------------------------------------------------------

@FUZZ
@given(data=st.data())
def test_schema_diff_of_any_edited_schema_file(tmp_path, schema_file, data):
    a = _write(tmp_path / "a.json", mutate(data, schema_file))
    b = _write(tmp_path / "b.json", mutate(data, schema_file) if data.draw(st.booleans()) else schema_file)
    for extra in ((), ("--json",)):
        code, _out = run_main("schema", "diff", a, b, *extra)
        assert code in (0, 1, 4)


def test_schema_diff_with_a_non_string_name_or_foreign_key_is_exit_4(tmp_path, schema_file):
    edited = copy.deepcopy(schema_file)
    edited["tables"]["TRIAL"]["foreign_keys"][0]["columns"] = [1]
    assert run_main("schema", "diff", _write(tmp_path / "a.json", edited), _write(tmp_path / "b.json",
                                                                                   schema_file))[0] == 4
    edited = copy.deepcopy(schema_file)
    edited["tables"]["TRIAL"]["columns"][0]["name"] = None
    assert run_main("schema", "diff", _write(tmp_path / "a.json", edited), _write(tmp_path / "b.json",
                                                                                   schema_file))[0] == 4


# -- transform rules -------------------------------------------------------------------------------------

TEMPLATE_RULES = {"accuracy": "normalize", "loss": {"round": 4}, "old": {"rename": "new"}, "debug": "drop",
                  "*": [{"scale": 0.01}, {"round": 4}]}


@FUZZ
@given(data=st.data())
def test_transform_rules_of_any_shape(tmp_path, demo_db, data):
    rules = mutate(data, TEMPLATE_RULES) if data.draw(st.booleans()) else data.draw(json_values)
    path = _write(tmp_path / "rules.json", rules)
    for extra in ((), ("--json",)):
        code, _out = run_main("transform-metrics", demo_db, "--rules", path, "-e", "1", "--dry-run", *extra)
        assert code in (0, 1, 2)


def test_transform_rules_with_nan_under_json_is_parseable_json(tmp_path, demo_db):
    path = _write(tmp_path / "rules.json", {"*": {"scale": float("nan")}})
    code, out = run_main("transform-metrics", demo_db, "--rules", path, "-e", "1", "--dry-run", "--json")
    if code == 0:
        json.loads(out)


# -- snapshot manifests ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def snapshot_of_demo(demo_db):
    made = run_cli("snapshot", "create", demo_db, "--json")
    assert made.returncode == 0, made.stderr
    snapshot_id = json.loads(made.stdout)["id"]
    path = os.path.join(os.path.dirname(demo_db), "snapshots", snapshot_id + ".json")
    with open(path, encoding="utf-8") as handle:
        return snapshot_id, path, json.load(handle)


@FUZZ
@given(data=st.data())
def test_any_edited_manifest(demo_db, snapshot_of_demo, data):
    snapshot_id, path, manifest = snapshot_of_demo
    try:
        _write(path, mutate(data, manifest))
        assert run_main("snapshot", "verify", demo_db, snapshot_id)[0] in (0, 2, 3, 4)
        assert run_main("snapshot", "list", demo_db, "--json")[0] == 0
        assert run_main("snapshot", "prune", demo_db, "--keep", "5", "--dry-run")[0] in (0, 2)
    finally:
        _write(path, manifest)


# -- SQL snapshots ---------------------------------------------------------------------------------------

def _sql_snapshot(statements):
    body = MAGIC + b"\n"
    for statement in statements:
        framed = statement + b";\n"
        body += b"-- %d\n" % len(framed) + framed
    return body + END + json.dumps({"tables": {"T": len(statements)}}).encode() + b"\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(statements=st.lists(st.binary(max_size=30), max_size=4), cut=st.integers(0, 400),
       edits=st.lists(st.tuples(st.integers(0, 400), st.binary(min_size=0, max_size=25)), max_size=3))
def test_any_damaged_sql_snapshot_is_read_as_damage(tmp_path, statements, cut, edits):
    raw = bytearray(_sql_snapshot(statements))
    for position, replacement in edits:
        position %= max(len(raw), 1)
        raw[position:position + len(replacement)] = replacement
    path = tmp_path / "s.sql"
    path.write_bytes(bytes(raw[:cut]) if cut < len(raw) else bytes(raw))
    assert isinstance(SnapshotReader(str(path)).check(), str)
    try:
        with open(str(path), "rb") as handle:
            list(SnapshotReader(str(path)).frames(handle))
    except DamagedInputError:
        pass
    try:  # a restore's loaders each read it for their own statements, shared by the counts of its end
        with open(str(path), "rb") as handle:
            list(SnapshotReader(str(path)).statements_where(handle, lambda first: len(first) % 2 == 0))
    except DamagedInputError:
        pass
    counts = tail_counts(str(path))
    assert counts is None or all(isinstance(n, int) for n in counts.values())
    shares = loader_shares(counts, 3)
    assert shares == [None] * 3 or set().union(*shares) == set(counts)


@pytest.mark.parametrize("digits", [19, 20, 40])
def test_sql_snapshot_length_line_of_many_digits_is_damage(tmp_path, digits):
    path = tmp_path / "s.sql"
    path.write_bytes(MAGIC + b"\n-- " + b"9" * digits + b"\nSELECT 1;\n")
    assert "cut off" in SnapshotReader(str(path)).check()


def test_sql_snapshot_length_below_two_is_damage_not_a_seek_backwards(tmp_path):
    path = tmp_path / "s.sql"
    path.write_bytes(MAGIC + b"\n-- 0\n" + END + b'{"tables": {}}\n')
    assert SnapshotReader(str(path)).check() != ""


# -- quarantines (`undo`) --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def quarantine_of_demo(demo_dir, demo_db):
    work = demo_dir / "q"
    work.mkdir()
    db = str(work / "experiment.db")
    shutil.copy(demo_db, db)
    done = run_cli("cleanup-orphans", db, "--yes", "--no-snapshot", "--json")
    assert done.returncode in (0, 1), done.stderr
    quarantine = json.loads(done.stdout)["quarantine"]
    con = sqlite3.connect(quarantine)
    meta = {k: json.loads(v) for k, v in con.execute("SELECT key, value FROM _emfix_meta")}
    con.close()
    return db, quarantine, meta


@FUZZ
@given(data=st.data())
def test_undo_of_any_edited_quarantine(tmp_path, quarantine_of_demo, data):
    db, quarantine, meta = quarantine_of_demo
    target, copy_of = str(tmp_path / "t.db"), str(tmp_path / "x.quarantine.db")
    shutil.copy(db, target)
    shutil.copy(quarantine, copy_of)
    edited = mutate(data, meta)
    rows = [(key, json.dumps(value) if data.draw(st.integers(0, 9)) else data.draw(st.text(max_size=5)))
            for key, value in edited.items()]
    created = [(data.draw(st.sampled_from(["EPOCH", "RESULTS", "nosuch", ""])), json.dumps(data.draw(json_values)))
               for _ in range(data.draw(st.integers(0, 1)))]
    con = sqlite3.connect(copy_of)  # every draw made first: a draw that stops the example leaves no lock behind
    try:
        con.execute("DELETE FROM _emfix_meta")
        con.executemany("INSERT INTO _emfix_meta VALUES (?, ?)", rows)
        con.executemany("INSERT INTO _emfix_created (table_name, key_json) VALUES (?, ?)", created)
        con.commit()
    finally:
        con.close()
    assert run_main("undo", copy_of, target)[0] in (0, 1, 2, 3, 4)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=300))
def test_undo_of_any_bytes(tmp_path, raw):
    path = tmp_path / "junk.quarantine.db"
    path.write_bytes(raw)
    assert run_main("undo", str(path), str(tmp_path / "none.db"))[0] in (1, 2, 3, 4)


# -- journals (import --resume, migrate --resume) --------------------------------------------------------

@pytest.fixture(scope="module")
def half_import(demo_dir, demo_db):
    export = str(demo_dir / "e1.jsonl")
    assert run_cli("export", demo_db, "-e", "1", "-o", export).returncode == 0
    target = str(demo_dir / "imported.db")
    assert run_cli("init", target).returncode == 0
    assert run_cli("import", target, export).returncode == 0
    con = sqlite3.connect(target)
    row = con.execute("SELECT run_key, state, offsets, line, counts FROM _emfix_import").fetchone()
    con.close()
    return export, target, row


@FUZZ
@given(data=st.data())
def test_import_resume_with_any_journal(tmp_path, half_import, data):
    export, target, (key, state, offsets, line, counts) = half_import
    db = str(tmp_path / "t.db")
    shutil.copy(target, db)
    fields = {"state": state, "offsets": json.loads(offsets), "counts": json.loads(counts)}
    edited = mutate(data, fields)
    state_value = edited.get("state")
    state_value = state_value if isinstance(state_value, (str, int, type(None))) else json.dumps(state_value)
    values = [state_value, json.dumps(edited.get("offsets")), json.dumps(edited.get("counts"))]
    values = [v if data.draw(st.integers(0, 5)) else data.draw(st.text(max_size=4)) for v in values]
    line_value = data.draw(st.one_of(st.integers(-5, 1 << 62), st.text(max_size=3), st.none()))
    con = sqlite3.connect(db)
    try:
        con.execute("UPDATE _emfix_import SET state = ?, offsets = ?, counts = ?, line = ? WHERE run_key = ?",
                    (*values, line_value, key))
        con.commit()
    finally:
        con.close()
    assert run_main("import", db, export, "--resume")[0] in (0, 1, 2, 3, 4)


@pytest.fixture(scope="module")
def finished_migration(demo_dir):
    assert run_cli("demo", str(demo_dir / "clean"), "--clean").returncode == 0
    source = str(demo_dir / "clean" / "experiment.db")
    target = str(demo_dir / "migrated.db")
    assert run_cli("migrate", source, target, "-e", "1", "--init").returncode == 0
    con = sqlite3.connect(target)
    con.row_factory = sqlite3.Row
    row = dict(con.execute("SELECT * FROM _emfix_migration").fetchone())
    con.close()
    return source, target, row


@FUZZ
@given(data=st.data())
def test_migrate_resume_with_any_journal(tmp_path, finished_migration, data):
    source, target, row = finished_migration
    db = str(tmp_path / "t.db")
    shutil.copy(target, db)
    decoded = {}
    for name, value in row.items():
        try:
            decoded[name] = json.loads(value) if isinstance(value, str) and value[:1] in "{[" else value
        except ValueError:
            decoded[name] = value
    edited = mutate(data, decoded)
    con = sqlite3.connect(db)
    try:
        for name in row:
            if name == "run_key":
                continue
            value = edited.get(name)
            value = value if isinstance(value, (str, type(None))) else json.dumps(value)
            con.execute('UPDATE _emfix_migration SET "%s" = ?' % name, (value,))
        con.commit()
    finally:
        con.close()
    assert run_main("migrate", source, db, "-e", "1", "--resume")[0] in (0, 1, 2, 3, 4)


def test_fuzz_helpers_see_a_crash(monkeypatch):
    import emfix.commands.validate

    def boom(_args, _out):
        raise RuntimeError("x")
    monkeypatch.setattr(emfix.commands.validate, "run", boom)
    with pytest.raises(AssertionError):
        run_main("validate", os.path.join(ROOT, "nosuch.db"))


# -- places that cannot be written ------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["/proc/emfix-test", "file"])
def test_init_demo_and_migrate_init_into_a_place_that_cannot_be_written(tmp_path, demo_db, where):
    # a folder under /proc, or under a plain file: refused as a read-only folder is, even for root
    if where == "file":
        (tmp_path / "plain").write_text("x")
        where = str(tmp_path / "plain" / "sub")
    for args in (("init", where + "/new.db"), ("demo", where), ("migrate", demo_db, where + "/new.db", "-e", "1",
                                                                  "--init")):
        result = run_cli(*args)
        assert result.returncode == 3, (args, result.stderr)
        assert "Traceback" not in result.stderr and result.stderr.startswith("error: "), result.stderr


def test_snapshot_verify_of_a_sql_snapshot_with_a_19_digit_length_line(tmp_path):
    assert run_cli("demo", str(tmp_path / "d")).returncode == 0
    db = str(tmp_path / "d" / "experiment.db")
    made = json.loads(run_cli("snapshot", "create", db, "--json").stdout)
    directory = os.path.join(os.path.dirname(db), "snapshots")
    raw = MAGIC + b"\n-- " + b"9" * 19 + b"\nSELECT 1;\n"
    with open(os.path.join(directory, made["id"] + ".sql"), "wb") as handle:
        handle.write(raw)
    manifest_path = os.path.join(directory, made["id"] + ".json")
    with open(manifest_path, encoding="utf-8") as handle:
        manifest = json.load(handle)
    manifest.update(file=made["id"] + ".sql", size=len(raw))  # the SHA-256 differs as well
    _write(manifest_path, manifest)
    result = run_cli("snapshot", "verify", db, made["id"])
    assert result.returncode == 4 and "damaged" in result.stdout and "Traceback" not in result.stderr, result.stderr
