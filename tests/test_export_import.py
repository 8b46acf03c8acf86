"""export / import: complete subtrees, exact round trips across backends, damaged files refused."""

import contextlib
import datetime
import decimal
import hashlib
import json
import os
import re
import resource
import struct
import subprocess
import sys

import pytest
from conftest import ROOT, kill_until_done, make_demo, run_cli, url_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emfix.address import DatabaseAddress
from emfix.backends import open_database
from emfix.backends.base import StorageLimit
from emfix.demo import Shape
from emfix.export import export_experiment
from emfix.idshift import id_owner
from emfix.importer import import_file
from emfix.schema import create_schema, discover_graph
from emfix.values import as_stored

DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?$")


def same_instant(value):
    """SQLite keeps the text the app wrote; MySQL gives back a DATETIME: compare the instant."""
    if isinstance(value, str) and DATETIME.match(value):
        return datetime.datetime.fromisoformat(value.replace(" ", "T")).isoformat()
    return value


def records(path):
    """{table: sorted rows} from a jsonl export (header and trailer left out)."""
    out = {}
    with open(path) as handle:
        for line in handle:
            record = json.loads(line)
            if "table" in record:
                out.setdefault(record["table"], []).append([same_instant(v) for v in record["row"]])
    return {t: sorted(rows, key=repr) for t, rows in out.items()}


def shifted(path, address, offsets):
    """The source records with every id moved the way import moves them."""
    with open_database(address, readonly=True) as db:
        graph = discover_graph(db)
    header = json.loads(open(path).readline())
    out = {}
    for table, rows in records(path).items():
        moves = [(i, offsets.get(id_owner(graph, table, c), 0)) for i, c in enumerate(header["columns"][table])]
        out[table] = sorted(([v + m if isinstance(v, int) and m else v for v, (_, m) in zip(row, moves)]
                             for row in rows), key=repr)
    return out


@pytest.mark.parametrize("generation", [1, 2])
def test_export_import_round_trip_on_each_backend(address, tmp_path, generation):
    make_demo(address, shape=Shape(generation=generation))
    first = str(tmp_path / "exp1.jsonl")
    exported = export_experiment(address, 1, first)
    assert exported.counts["TRIAL"] == 2 and (generation == 1 or exported.counts["BATCH_METRIC"] > 0)
    result = import_file(address, first, experiment_title="copy")
    again = str(tmp_path / "copy.jsonl")
    export_experiment(address, result.experiment_id, again)
    expected = shifted(first, address, result.id_offsets)
    expected["EXPERIMENT"][0][1] = "copy"
    assert records(again) == expected


def test_sqlite_to_mariadb_and_back(tmp_path, mysql_address):
    source = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(source)
    path = str(tmp_path / "exp3.jsonl")
    export_experiment(source, 3, path)  # the damaged experiment: breaks travel too
    with open_database(mysql_address, create=True) as db:
        create_schema(db)
    result = import_file(mysql_address, path, allow_dangling=True)  # the breaks, asked for
    assert result.dangling
    back = str(tmp_path / "back.jsonl")
    export_experiment(mysql_address, result.experiment_id, back)
    expected = shifted(path, source, result.id_offsets)
    single = StorageLimit("float", 0, False)  # the application's FLOAT total_val on MySQL
    expected["METRIC"] = [row[:2] + [as_stored(row[2], single)] + row[3:] for row in expected["METRIC"]]
    assert any(a != b for a, b in zip(expected["METRIC"], shifted(path, source, result.id_offsets)["METRIC"]))
    assert records(back) == expected
    kept_otherwise = sum(a != b for a, b in zip(expected["METRIC"], shifted(path, source, result.id_offsets)["METRIC"]))
    assert result.single_precision == {"METRIC.total_val": kept_otherwise}  # (said, as migrate says it)


def test_an_import_says_how_many_numbers_a_float_column_keeps_otherwise(exported, tmp_path, mysql_address):
    assert run_cli("init", url_of(mysql_address)).returncode == 0
    result = run_cli("import", url_of(mysql_address), str(exported))
    values = [json.loads(line)["row"][2] for line in exported.read_text().splitlines()
              if json.loads(line).get("table") == "METRIC"]
    single = StorageLimit("float", 0, False)
    changed = sum(as_stored(v, single) != v for v in values)
    assert result.returncode == 0 and changed and "note: %d value%s of METRIC.total_val %s stored as its " \
        "single-precision FLOAT" % (changed, "s" if changed > 1 else "", "are" if changed > 1 else "is") in \
        result.stdout, result.stdout
    into_sqlite = str(tmp_path / "t.db")
    assert run_cli("init", into_sqlite).returncode == 0
    assert "note:" not in run_cli("import", into_sqlite, str(exported)).stdout


def test_old_layout_is_read_by_a_script_written_for_the_old_tool(demo_address, tmp_path):
    path = tmp_path / "exp1.json"
    result = run_cli("export-experiment", url_of(demo_address), "-e", "1", "-o", str(path), "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(path.read_text())
    epochs = sum(len(run["epochs"]) for trial in data["trials"] for run in trial["runs"])
    assert data["experiment"]["id"] == 1 and epochs == 24
    assert all(run["results"] is None or run["results"]["trial_run_id"] == run["run"]["id"]
               for trial in data["trials"] for run in trial["runs"])
    assert data["export_metadata"]["database_type"] in ("SQLite", "MySQL")
    assert any(isinstance(m["per_label_val"], dict) for m in data["metrics"])
    assert "BATCH_METRIC" in data["links"]


def test_export_to_stdout(demo_address):
    result = run_cli("export", url_of(demo_address), "-e", "2", "-o", "-")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert json.loads(lines[0])["header"]["experiment_id"] == 2 and "trailer" in json.loads(lines[-1])


@pytest.mark.parametrize("damage, words", [
    ("truncate", "cut off"),
    ("corrupt", "not valid JSON"),
    ("newer", "format"),
    ("edited", "checksum"),
])
def test_damaged_export_files_are_refused_and_nothing_is_imported(tmp_path, damage, words):
    address = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(address)
    path = tmp_path / "exp.jsonl"
    export_experiment(address, 1, str(path))
    lines = path.read_text().splitlines(keepends=True)
    if damage == "truncate":
        lines = lines[:len(lines) // 2]
    elif damage == "corrupt":
        lines[5] = lines[5][:10] + "\n"
    elif damage == "newer":
        header = json.loads(lines[0])
        header["header"]["format"] = "emfix-export-9"
        lines[0] = json.dumps(header) + "\n"
    elif damage == "edited":
        lines[5] = lines[5].replace("0", "1", 1)
    path.write_text("".join(lines))
    before = open(address.path, "rb").read()
    result = run_cli("import", address.path, str(path))
    assert result.returncode == (2 if damage == "newer" else 4), result.stderr  # newer: another format, not damage
    assert words in result.stderr and "Traceback" not in result.stderr
    assert open(address.path, "rb").read() == before


def test_import_into_a_database_without_the_schema_says_how(tmp_path):
    source = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(source)
    path = tmp_path / "exp.jsonl"
    export_experiment(source, 1, str(path))
    empty = tmp_path / "empty.db"
    open_database(DatabaseAddress("sqlite", path=str(empty)), create=True).close()
    result = run_cli("import", str(empty), str(path))
    assert result.returncode == 2 and "emfix init" in result.stderr  # no tables at all: not an EM database


def test_unknown_experiment_is_a_clear_error(demo_address, tmp_path):
    result = run_cli("export", url_of(demo_address), "-e", "4242", "-o", str(tmp_path / "x.jsonl"))
    assert result.returncode == 2 and "does not exist" in result.stderr
    assert not (tmp_path / "x.jsonl").exists()


def test_import_killed_at_random_points_then_resumed_equals_one_uninterrupted_import(tmp_path):
    source = DatabaseAddress("sqlite", path=str(tmp_path / "source.db"))
    make_demo(source, shape=Shape(experiments=2, trials=4, runs=5, epochs=40, batches=20), faults=False)
    path = str(tmp_path / "e1.jsonl")
    export_experiment(source, 1, path)
    reference = DatabaseAddress("sqlite", path=str(tmp_path / "reference.db"))
    target = DatabaseAddress("sqlite", path=str(tmp_path / "target.db"))
    for address in (reference, target):
        make_demo(address, shape=Shape(experiments=1, trials=1, runs=1, epochs=2, batches=2), faults=False)
    import_file(reference, path)
    kills = kill_until_done(["import", target.path, path, "-q"], seed=7, delay=0.8)
    with open_database(reference, readonly=True) as a, open_database(target, readonly=True) as b:
        for table in a.tables():
            if table != "_emfix_import":
                assert sorted(a.query('SELECT * FROM "%s"' % table)) == sorted(b.query('SELECT * FROM "%s"' % table))
    assert kills


def test_second_import_is_refused_unless_forced_and_a_partial_one_explains(tmp_path):
    source = DatabaseAddress("sqlite", path=str(tmp_path / "source.db"))
    make_demo(source, faults=False)
    path = str(tmp_path / "e1.jsonl")
    export_experiment(source, 1, path)
    assert run_cli("import", source.path, path).returncode == 0
    again = run_cli("import", source.path, path)
    assert again.returncode == 2 and "already imported" in again.stderr and "--force" in again.stderr
    forced = run_cli("import", source.path, path, "--force", "--json")
    assert forced.returncode == 0 and json.loads(forced.stdout)["experiment_id"] > 0
    with open_database(source) as db:  # as a killed run leaves it: some batches in, the journal running
        db.execute("UPDATE _emfix_import SET state = 'running'")
    partial = run_cli("import", source.path, path)
    assert partial.returncode == 2 and "partial import" in partial.stderr and "--resume" in partial.stderr
    forced = run_cli("import", source.path, path, "--force")  # (round 38: it replaced the partial one's journal row,
    assert forced.returncode == 2 and "--resume" in forced.stderr  # the only way to finish it)
    with open_database(source) as db:
        assert db.scalar("SELECT count(*) FROM _emfix_import WHERE state = 'running'") == 1


def test_import_resume_with_nothing_to_resume_is_a_usage_error_and_imports_nothing(tmp_path):
    """Round 35: `import DB FILE --resume` into a database that never saw the file imported it whole, exit 0
    (migrate says "nothing to resume", exit 2, as the README says of both)."""
    source = DatabaseAddress("sqlite", path=str(tmp_path / "source.db"))
    make_demo(source, faults=False)
    path = str(tmp_path / "e1.jsonl")
    export_experiment(source, 1, path)
    target = str(tmp_path / "target.db")
    assert run_cli("init", target).returncode == 0
    resumed = run_cli("import", target, path, "--resume")
    assert resumed.returncode == 2 and "nothing to resume" in resumed.stderr, resumed.stderr
    with open_database(DatabaseAddress("sqlite", path=target)) as db:
        assert db.scalar("SELECT count(*) FROM EXPERIMENT") == 0


def test_arguments_swapped_or_binary_file_is_a_clear_refusal(tmp_path):
    source = DatabaseAddress("sqlite", path=str(tmp_path / "source.db"))
    make_demo(source, faults=False)
    swapped = run_cli("import", str(tmp_path / "new.db"), source.path)
    # arguments the wrong way round: a usage error (round 32: it was 4, damaged input)
    assert swapped.returncode == 2 and "SQLite database" in swapped.stderr and "emfix import DB FILE" in swapped.stderr
    assert "Traceback" not in swapped.stderr
    # a MySQL URL as FILE said "cannot read mysql://...: No such file or directory" (exit 3)
    export = str(tmp_path / "e1.jsonl")
    assert run_cli("export", source.path, "-e", "1", "-o", export).returncode == 0
    swapped = run_cli("import", export, "mysql://em@db1/experiments")
    assert swapped.returncode == 2 and "is a database address" in swapped.stderr, swapped.stderr
    assert "emfix import DB FILE" in swapped.stderr


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=400))
def test_any_bytes_as_an_export_file_are_refused_without_a_traceback(tmp_path_factory, data):
    from emfix.errors import EmfixError
    from emfix.exportfile import check_file
    path = tmp_path_factory.mktemp("junk") / "junk.jsonl"
    path.write_bytes(data)
    with pytest.raises(EmfixError):
        check_file(str(path))


def test_export_to_a_full_disk_leaves_no_partial_file(tmp_path):
    source = DatabaseAddress("sqlite", path=str(tmp_path / "source.db"))
    make_demo(source, faults=False)
    out = tmp_path / "out"
    out.mkdir()

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))

    result = subprocess.run([sys.executable, "-m", "emfix", "export", source.path, "-e", "1", "-o",
                             str(out / "e1.jsonl")], env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True,
                            text=True, preexec_fn=small_files)
    assert result.returncode == 3 and "no space" in result.stderr and "Traceback" not in result.stderr
    assert os.listdir(str(out)) == []
    directory = run_cli("export", source.path, "-e", "1", "-o", str(out))
    assert directory.returncode == 2 and "is a directory" in directory.stderr


# What MariaDB 10.11's latin1 column holds, read off the server one code point at a time (U+0001 ... U+2FFF)
LATIN1 = set(map(chr, [0, *range(1, 0x80), 0x81, 0x8D, 0x8F, 0x90, 0x9D, *range(0xA0, 0x100), 0x152, 0x153, 0x160,
                       0x161, 0x178, 0x17D, 0x17E, 0x192, 0x2C6, 0x2DC, 0x2013, 0x2014, 0x2018, 0x2019, 0x201A,
                       0x201C, 0x201D, 0x201E, 0x2020, 0x2021, 0x2022, 0x2026, 0x2030, 0x2039, 0x203A, 0x20AC,
                       0x2122]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(), st.binary(), st.integers(), st.floats(allow_nan=False,
                                                                                     allow_infinity=False),
                          st.decimals(allow_nan=False, allow_infinity=False).filter(  # (as MySQL's DECIMAL holds)
                              lambda d: not d or (d.adjusted() < 65 and d.as_tuple().exponent >= -65)),
                          st.text(st.sampled_from(["a", " ", "\xe9", "\u20ac", "\x81", "\x80", "\u4e2d",
                                                   "\U0001F600"]))),
                min_size=1, max_size=8))
def test_the_tally_of_a_files_values_is_what_mysql_would_measure(values):
    """import's up-front check measures each value as the export file holds it (text as is, bytes as base64, numbers
    as JSON numbers, DECIMALs as their digits): characters, UTF-8 bytes, 4-byte characters, whole numbers, the
    largest magnitude and the most digits after the point, as a MySQL column would count them (the file has no
    database to ask)."""
    from emfix import exportfile as f
    from emfix.values import encode_value

    stats = [list(f.NEW_TALLY)]
    for value in values:
        f.tally_values(stats, [json.loads(json.dumps(encode_value(value)))])
    texts = [v for v in values if isinstance(v, str)]
    blobs = [v for v in values if isinstance(v, bytes)]
    numbers = [v for v in values if isinstance(v, (int, float, decimal.Decimal))]
    wholes = [int(v) for v in numbers if v == int(v)]
    fractions = [v for v in numbers if v != int(v)]
    spelled = [repr(v) if isinstance(v, float) else str(v) for v in fractions]
    spelled += [str(v) for v in numbers if isinstance(v, decimal.Decimal) and v == int(v)]
    assert stats[0][f.CHARACTERS] == max([len(v) for v in texts + blobs + spelled], default=0)
    assert stats[0][f.OCTETS] == max([len(v.encode("utf-8", "surrogatepass")) for v in texts] +
                                     [len(v) for v in blobs + spelled], default=0)
    assert stats[0][f.FOURS] == sum(any(ord(c) > 0xFFFF for c in v) for v in texts)
    assert stats[0][f.SPACED] == sum(v.endswith(" ") for v in texts)
    assert stats[0][f.NOT_LATIN1_TEXT] == sum(any(c not in LATIN1 for c in v) for v in texts)
    assert (stats[0][f.LOW], stats[0][f.HIGH]) == ((min(wholes), max(wholes)) if wholes else (None, None))
    assert stats[0][f.NOT_WHOLE] == len(texts) + len(blobs) + len(fractions)
    assert (stats[0][f.TEXTS], stats[0][f.BLOBS], stats[0][f.NUMBERS]) == (len(texts), len(blobs), len(numbers))
    assert stats[0][f.MAGNITUDE] == max([abs(v) for v in fractions], default=0)  # (the whole ones: LOW and HIGH)
    assert stats[0][f.NEGATIVES] == sum(v < 0 for v in fractions)
    assert stats[0][f.SCALE] == max([-decimal.Decimal(v).as_tuple().exponent for v in spelled if "." in v or "e" in
                                     v.lower()] + [0])
    assert stats[0][f.TINIEST] == min([abs(v) for v in fractions if v], default=None)
    assert stats[0][f.NULLS] == sum(v is None for v in values)
    assert stats[0][f.NOT_UTF8] == sum(not _utf8(v) for v in blobs)
    assert stats[0][f.SINGLE] == sum(_single_keeps_otherwise(v) for v in numbers)  # (a FLOAT column's note)


def _single_keeps_otherwise(number):
    """Does a single-precision FLOAT keep `number` otherwise (a DECIMAL's digits with a fraction aside)?"""
    if isinstance(number, decimal.Decimal):
        if number != int(number):
            return False
        number = int(number)
    try:
        return struct.unpack("f", struct.pack("f", number))[0] != number
    except OverflowError:
        return True


def _utf8(raw):
    try:
        raw.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


@pytest.mark.parametrize("digits", ["1E+65", "-1E+70", "1E-66", "1E999999999"])
def test_a_decimal_no_mysql_column_holds_is_no_value_an_export_writes(digits):
    from emfix import exportfile as f

    with pytest.raises(f.OddValue):
        f.tally_values([list(f.NEW_TALLY)], [{"$decimal": digits}])


@settings(max_examples=200, deadline=None)
@given(st.datetimes(), st.sampled_from([" ", "T"]), st.booleans())
def test_every_datetime_and_date_export_writes_counts_as_one(moment, separator, date_only):
    from emfix import exportfile as f

    stats = [list(f.NEW_TALLY)]
    f.tally_values(stats, [moment.date().isoformat() if date_only else moment.isoformat(separator)])
    assert (stats[0][f.DATES], stats[0][f.DATETIMES]) == ((1, 0) if date_only else (0, 1))


@pytest.mark.parametrize("text", ["2025-02-30 10:00:00", "0000-00-00 00:00:00", "2025-01-01T10:00:00Z",
                                  "2025-01-01 10:00:00+02:00", "2025-01-01 10:00:00.1234567", "2025-01-01 24:00:00",
                                  "2025-1-01 10:00:00", "2025-01-01 10:00", "20250-01-01", "2025-02-29"])
def test_text_mysql_would_not_give_back_as_written_is_no_datetime(text):
    from emfix import exportfile as f

    stats = [list(f.NEW_TALLY)]
    f.tally_values(stats, [text])
    assert (stats[0][f.DATES], stats[0][f.DATETIMES]) == (0, 0)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                max_size=3), max_leaves=6),
       st.integers(min_value=0, max_value=50), st.integers(min_value=0, max_value=10))
def test_an_export_edited_with_its_checksum_made_again_is_refused_or_read(tmp_path_factory, exported, value, line,
                                                                          position):
    """Round 35: an export edited by hand with its trailer's SHA-256 made again (a list, true, 1e400, NaN in a row)
    crashed import (exit 70) after the first tables were committed. Any such file is read or refused as damaged."""
    from emfix.errors import DamagedInputError
    from emfix.exportfile import ValueTally, check_file

    lines = exported.read_text().splitlines(keepends=True)
    rows = lines[1:-1]
    record = json.loads(rows[line % len(rows)])
    record["row"][position % len(record["row"])] = value
    rows[line % len(rows)] = json.dumps(record) + "\n"
    trailer = json.loads(lines[-1])
    trailer["trailer"]["sha256"] = hashlib.sha256("".join(rows).encode("utf-8")).hexdigest()
    path = tmp_path_factory.mktemp("edited") / "e.jsonl"
    path.write_text(lines[0] + "".join(rows) + json.dumps(trailer) + "\n")
    try:
        check_file(str(path), ValueTally())
    except DamagedInputError as refused:  # a value no export holds, or ids other than the trailer states
        assert refused.exit_code == 4 and ("which no emfix export holds" in refused.message or
                                           "does not match its own trailer" in refused.message), refused.message


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=3), max_leaves=6)


@given(st.one_of(JSON_VALUES, st.fixed_dictionaries({"table": JSON_VALUES, "row": JSON_VALUES})),
       st.integers(min_value=0, max_value=50))
def test_any_json_in_place_of_a_row_line_is_refused_as_damage(tmp_path_factory, exported, line_value, line):
    """Round 61: a row line whose table was a list was exit 70 (unhashable); any JSON where a row line stands, the
    checksum made again, is read or refused as damage, never a crash."""
    from emfix.errors import DamagedInputError
    from emfix.exportfile import ValueTally, check_file

    lines = exported.read_text().splitlines(keepends=True)
    rows = lines[1:-1]
    rows[line % len(rows)] = json.dumps(line_value) + "\n"
    trailer = json.loads(lines[-1])
    trailer["trailer"]["sha256"] = hashlib.sha256("".join(rows).encode("utf-8")).hexdigest()
    path = tmp_path_factory.mktemp("edited") / "e.jsonl"
    path.write_text(lines[0] + "".join(rows) + json.dumps(trailer) + "\n")
    with pytest.raises(DamagedInputError):
        check_file(str(path), ValueTally())


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exported")
    source = DatabaseAddress("sqlite", path=str(folder / "s.db"))
    make_demo(source, shape=Shape(experiments=1, trials=1, runs=1, epochs=2, batches=1), faults=False)
    path = folder / "e1.jsonl"
    assert run_cli("export", source.path, "-e", "1", "-o", str(path)).returncode == 0
    return path


def _edited(exported, tmp_path, edit, keep_checksum=False):
    """A copy of the export with `edit(lines)` applied to its lines (header, rows, trailer as objects), the trailer's
    counts and SHA-256 of the rows made again (as a hand who knows the format would), unless `keep_checksum`."""
    lines = [json.loads(line) for line in exported.read_text().splitlines()]
    edit(lines)
    rows = [json.dumps(r) + "\n" for r in lines[1:-1]]
    if not keep_checksum:
        counts = {}
        for r in lines[1:-1]:
            counts[r["table"]] = counts.get(r["table"], 0) + 1
        lines[-1]["trailer"].update(counts=counts, sha256=hashlib.sha256("".join(rows).encode("utf-8")).hexdigest())
    path = tmp_path / "edited.jsonl"
    path.write_text(json.dumps(lines[0]) + "\n" + "".join(rows) + json.dumps(lines[-1]) + "\n")
    return str(path)


def _swap_title_and_desc(lines):
    columns = lines[0]["columns"]["EXPERIMENT"]
    i, j = columns.index("title"), columns.index("desc")
    columns[i], columns[j] = columns[j], columns[i]


def _without_metrics(lines):
    lines[1:-1] = [r for r in lines[1:-1] if r["table"] != "METRIC"]
    for key in ("min_ids", "max_ids"):
        lines[-1]["trailer"][key].pop("METRIC", None)


def _three_metrics_left_out(lines):  # within the range the trailer states: ids 2, 3 and 4 (the demo's are linked)
    lines[1:-1] = [r for r in lines[1:-1] if not (r["table"] == "METRIC" and r["row"][0] in (2, 3, 4))]


def _a_batch_left_out(lines):  # its trial run is there: only the composite key tells (round 38)
    lines[1:-1] = [r for r in lines[1:-1] if r["table"] != "BATCH" or r["row"][:2] != [0, 1]]


def _a_results_row_left_out(lines):
    lines[1:-1] = [r for r in lines[1:-1] if r["table"] != "RESULTS"]


def _a_table_left_out(lines):  # round 39: its BATCH rows were imported pointing at no EPOCH, exit 0
    lines[-1]["trailer"].pop("header_sha256")
    lines[0]["tables"].remove("EPOCH")
    del lines[0]["columns"]["EPOCH"]
    lines[1:-1] = [r for r in lines[1:-1] if r["table"] != "EPOCH"]


def _a_column_left_out(table, column):
    """An edit taking `column` out of `table`'s header and rows (as an export before round 36: no header_sha256)."""
    def edit(lines):
        lines[-1]["trailer"].pop("header_sha256")
        spot = lines[0]["columns"][table].index(column)
        del lines[0]["columns"][table][spot]
        for r in lines[1:-1]:
            if r["table"] == table:
                del r["row"][spot]
    edit.__name__ = "_%s_%s_left_out" % (table.lower(), column)
    return edit


_a_link_column_left_out = _a_column_left_out("EPOCH_METRIC", "epoch_trial_run_id")  # round 39: NULL, links lost
_a_key_column_left_out = _a_column_left_out("EPOCH", "idx")  # round 40: NULL in SQLite, exit 0, BATCH's links to none


def _a_table_in_two_letter_cases(lines):  # round 41: "lacks tables" (exit 1), and a hint that led to exit 2
    header = lines[0]
    header["tables"].append("epoch_metric")
    header["columns"]["epoch_metric"] = header["columns"]["EPOCH_METRIC"]
    lines.insert(len(lines) - 1, {"table": "epoch_metric", "row": next(
        r["row"] for r in lines[1:-1] if r.get("table") == "EPOCH_METRIC")})
    lines[-1]["trailer"].pop("header_sha256")


def _a_line_twice(table):
    def edit(lines):  # round 39: stopped at its batch (exit 70), the import never finished
        first = next(i for i, r in enumerate(lines) if r.get("table") == table)
        lines.insert(first + 1, lines[first])
    edit.__name__ = "_a_%s_line_twice" % table.lower()
    return edit


def _a_null_link(lines):  # round 39: stopped at its batch (exit 70: NOT NULL), the import never finished
    spot = lines[0]["columns"]["TRIAL_RUN"].index("trial_id")
    next(r for r in lines[1:-1] if r["table"] == "TRIAL_RUN")["row"][spot] = None


_a_required_column_left_out = _a_column_left_out("TRIAL", "name")


def _an_id_past_64_bits(lines):  # round 39: OverflowError, exit 70
    for r in lines[1:-1]:
        if r["table"] == "TRIAL":
            r["row"][0] += 1 << 63
        elif r["table"] in ("TRIAL_RUN", "TRIAL_ARTIFACT"):
            r["row"][lines[0]["columns"][r["table"]].index("trial_id")] += 1 << 63
    for key in ("min_ids", "max_ids"):
        lines[-1]["trailer"][key]["TRIAL"] += 1 << 63


def _a_row_with_another_key(lines):  # (round 37: its other keys were read past, silently)
    lines[2]["note"] = "hand-made"


def _half_an_id(lines):
    trial = next(r for r in lines if r.get("table") == "TRIAL")
    trial["row"][lines[0]["columns"]["TRIAL"].index("experiment_id")] += 0.5


def _a_column_twice(lines):
    lines[0]["columns"]["EXPERIMENT"].append("title")
    for r in lines[1:-1]:
        if r["table"] == "EXPERIMENT":
            r["row"].append("again")


def _a_column_no_table_has(lines):  # as an export before round 36 of a source with one more column
    lines[-1]["trailer"].pop("header_sha256")
    lines[0]["columns"]["EXPERIMENT"].append("nosuch")
    for r in lines[1:-1]:
        if r["table"] == "EXPERIMENT":
            r["row"].append("x")


def _a_table_in_columns_alone(lines):  # round 60: its rows read, every other row committed, then exit 70
    lines[-1]["trailer"].pop("header_sha256")
    lines[0]["columns"]["XTRA"] = ["id", "v"]
    lines.insert(len(lines) - 1, {"table": "XTRA", "row": [1, 2]})


def _columns_that_are_no_list(lines):  # round 60: TypeError before the checksum was read, exit 70
    lines[-1]["trailer"].pop("header_sha256")
    lines[0]["columns"]["XTRA"] = 5


def _a_lone_surrogate(lines):  # round 60: exit 70 part way, a half-begun import left behind
    next(r for r in lines[1:-1] if r["table"] == "EXPERIMENT")["row"][lines[0]["columns"]["EXPERIMENT"].index(
        "title")] = "half a pair \ud800"


def _a_number_past_a_double(lines):  # round 60: struct.error in the tally (exit 70); into SQLite, OverflowError
    next(r for r in lines[1:-1] if r["table"] == "METRIC")["row"][lines[0]["columns"]["METRIC"].index(
        "total_val")] = 10 ** 400


def _a_table_named_by_a_list(lines):  # round 61: unhashable, exit 70 (the checksum is read after the rows)
    lines[2]["table"] = [lines[2]["table"]]


def _no_table_at_all(lines):  # round 60: "imported 0 rows as experiment 1", another's, exit 0
    lines[-1]["trailer"].pop("header_sha256")
    lines[0]["tables"], lines[0]["columns"] = [], {}
    lines[1:-1] = []
    for key in ("min_ids", "max_ids"):
        lines[-1]["trailer"][key] = {}


@pytest.mark.parametrize("edit, keep, code, words", [
    (_swap_title_and_desc, True, 4, "does not match its own checksum"),  # (title and desc swapped, exit 0)
    (_without_metrics, False, 4, "refers to METRIC rows the file does not hold"),  # (linked to another's metrics)
    (_three_metrics_left_out, False, 4, "refers to METRIC id=3, a row the file does not hold"),  # (linked nothing)
    (_a_batch_left_out, False, 4, "refers to BATCH idx=0, epoch_idx=1, trial_run_id=1, a row the file does not"),
    (_a_results_row_left_out, False, 4, "refers to RESULTS trial_run_id=1, a row the file does not hold"),
    (_a_table_left_out, False, 4, "refers to EPOCH idx=0, trial_run_id=1, a row the file does not hold"),
    (_a_link_column_left_out, False, 4, "EPOCH_METRIC in %s lacks column epoch_trial_run_id of its link to EPOCH"),
    (_a_key_column_left_out, False, 4, "EPOCH in %s lacks column idx of its key, which BATCH's links point at"),
    (_a_line_twice("TRIAL"), False, 4, "holds TRIAL id=1 twice"),
    (_a_line_twice("EPOCH"), False, 4, "holds EPOCH idx=0, trial_run_id=1 twice"),
    (_a_line_twice("EPOCH_METRIC"), False, 4, "holds EPOCH_METRIC epoch_idx=0, epoch_trial_run_id=1, metric_id="),
    (_a_line_twice("BATCH_ARTIFACT"), False, 4, "holds BATCH_ARTIFACT batch_idx=0, epoch_idx=0, trial_run_id=1, "),
    (_a_null_link, False, 4, "TRIAL_RUN.trial_id in %s is NULL, which its NOT NULL column refuses"),
    (_a_required_column_left_out, False, 1, "'s TRIAL requires column name, which %s lacks"),
    (_an_id_past_64_bits, False, 4, "TRIAL.id in %s holds 9223372036854775809, past what any id column holds"),
    (_a_row_with_another_key, False, 4, "line 3 is not a row of a table its header names (its table and row alone"),
    (_half_an_id, False, 4, "not a whole number: an id import cannot move"),  # (stored as another experiment's id)
    (_a_column_twice, False, 4, "its header's tables and columns are not"),  # (MySQL: exit 70; SQLite: one dropped)
    (_a_column_no_table_has, False, 1, "lacks column EXPERIMENT.nosuch"),  # (exit 70)
    (_a_table_in_two_letter_cases, False, 4, "its header names one table twice, as EPOCH_METRIC and epoch_metric"),
    (_a_table_in_columns_alone, False, 4, "its header's tables and columns are not what emfix writes"),
    (_columns_that_are_no_list, False, 4, "its header's tables and columns are not what emfix writes"),
    (_a_lone_surrogate, False, 4, "is text holding half of a UTF-16 pair (a lone surrogate)"),
    (_a_number_past_a_double, False, 4, "METRIC.total_val in %s is 100000000000... (401 digits), past what SQLite"),
    (_no_table_at_all, False, 4, "holds 0 EXPERIMENT rows; an export holds its experiment's one"),
    (_a_table_named_by_a_list, True, 4, "line 3 is not a row of a table its header names"),
], ids=["header-edited", "rows-left-out", "rows-within-the-range-left-out", "a-batch-left-out", "results-left-out",
        "a-table-left-out", "a-link-column-left-out", "a-key-column-left-out", "a-trial-twice", "an-epoch-twice",
        "a-link-row-twice", "a-batch-artifact-twice",
        "a-null-link",
        "a-required-column-left-out", "an-id-past-64-bits", "a-row-with-another-key", "half-an-id", "column-twice",
        "column-db-lacks", "a-table-in-two-letter-cases", "a-table-in-columns-alone", "columns-no-list",
        "a-lone-surrogate", "a-number-past-a-double", "no-table-at-all", "a-table-named-by-a-list"])
def test_an_edited_export_is_refused_before_anything_is_imported(exported, tmp_path, edit, keep, code, words):
    """Round 36: exports edited by hand (the rows' checksum made again, or the header alone changed) were imported
    with title and description swapped, links pointing at another experiment's rows, or crashed (exit 70); round 37:
    links to rows taken out from within the file's range of ids were imported pointing at nothing."""
    path = _edited(exported, tmp_path, edit, keep_checksum=keep)
    target = str(tmp_path / "t.db")
    assert run_cli("init", target).returncode == 0
    result = run_cli("import", target, path)
    words = words % path if "%s" in words else words
    assert result.returncode == code and words in result.stderr and "Traceback" not in result.stderr, result.stderr
    with open_database(DatabaseAddress("sqlite", path=target)) as db:
        assert db.scalar("SELECT count(*) FROM EXPERIMENT") == 0


def test_a_line_nested_deeper_than_python_reads_is_damage_not_a_crash(exported, tmp_path):
    """Round 60: a line of 100,000 '[' was a RecursionError (exit 70)."""
    lines = exported.read_text().splitlines(keepends=True)
    path = tmp_path / "deep.jsonl"
    path.write_text(lines[0] + "[" * 100000 + "\n" + "".join(lines[1:]))
    result = run_cli("import", str(tmp_path / "t.db"), str(path))
    assert result.returncode == 4 and "line 2 is not valid JSON" in result.stderr, result.stderr


def test_a_line_that_is_not_utf8_is_named_by_its_own_number(exported, tmp_path):
    lines = exported.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"table"', b'"t\xedble"', 1)
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"".join(lines))
    result = run_cli("import", str(tmp_path / "t.db"), str(path))
    assert result.returncode == 4 and "line 3 is not UTF-8" in result.stderr, result.stderr


def _ids_as_floats(lines):
    spot = lines[0]["columns"]["TRIAL"].index("experiment_id")
    for r in lines[1:-1]:
        if r["table"] == "TRIAL":
            r["row"][spot] = float(r["row"][spot])


def _ids_as_decimals(lines):
    spot = lines[0]["columns"]["TRIAL"].index("experiment_id")
    for r in lines[1:-1]:
        if r["table"] == "TRIAL":
            r["row"][spot] = {"$decimal": str(r["row"][spot])}


def _ids_as_decimals_with_a_point(lines):  # round 38: "1.0" and "1E0" were not moved (linked to experiment 1)
    spot = lines[0]["columns"]["TRIAL"].index("experiment_id")
    for r in lines[1:-1]:
        if r["table"] == "TRIAL":
            r["row"][spot] = {"$decimal": "%d.000" % r["row"][spot]}
    spot = lines[0]["columns"]["TRIAL_RUN"].index("trial_id")
    for r in lines[1:-1]:
        if r["table"] == "TRIAL_RUN":
            r["row"][spot] = {"$decimal": "%dE0" % r["row"][spot]}


def _link_spelled_otherwise(lines):
    columns = lines[0]["columns"]["TRIAL"]
    columns[columns.index("experiment_id")] = "Experiment_Id"
    lines[-1]["trailer"].pop("header_sha256")  # (as an export before round 36)


def _tables_in_lower_case(lines):  # round 40: the database "lacked" every table (exit 1)
    header, trailer = lines[0], lines[-1]["trailer"]
    header["tables"] = [t.lower() for t in header["tables"]]
    header["columns"] = {t.lower(): c for t, c in header["columns"].items()}
    for r in lines[1:-1]:
        r["table"] = r["table"].lower()
    for part in ("min_ids", "max_ids"):
        trailer[part] = {t.lower(): n for t, n in trailer[part].items()}
    trailer.pop("header_sha256")


def _header_names_another_experiment(lines):
    lines[0]["header"]["experiment_id"] = 2
    lines[-1]["trailer"].pop("header_sha256")


@pytest.mark.parametrize("edit", [_ids_as_floats, _ids_as_decimals, _ids_as_decimals_with_a_point,
                                  _link_spelled_otherwise, _tables_in_lower_case,
                                  _header_names_another_experiment])
def test_an_export_whose_ids_are_written_otherwise_is_imported_as_its_own_experiment(exported, tmp_path, edit):
    """Round 37: a TRIAL.experiment_id written 1.0 or as a DECIMAL's digits, or its column spelled Experiment_Id, was
    imported unmoved (exit 0): the trials joined the experiment already there; an edited header's experiment id was
    reported as the new one."""
    target = DatabaseAddress("sqlite", path=str(tmp_path / "t.db"))
    make_demo(target, shape=Shape(experiments=1, trials=1, runs=1, epochs=1, batches=1), faults=False)
    result = run_cli("import", target.path, _edited(exported, tmp_path, edit), "--json")
    assert result.returncode == 0, result.stderr
    new = json.loads(result.stdout)["experiment_id"]
    with open_database(target) as db:
        assert new == 2 and db.scalar("SELECT count(*) FROM TRIAL WHERE experiment_id = 2") == 1
        assert db.scalar("SELECT count(*) FROM TRIAL WHERE experiment_id = 1") == 1
        assert db.scalar("SELECT count(*) FROM TRIAL_RUN r JOIN TRIAL t ON t.id = r.trial_id "
                         "WHERE t.experiment_id = 2") == 1  # (its run under its own trial)


@pytest.mark.mysql
def test_an_export_of_tables_in_lower_case_goes_into_mariadb_tables_in_upper_case(exported, tmp_path, mysql_address):
    """MariaDB on Linux tells `trial` from `TRIAL` (round 40: the import "lacked" every table, exit 1)."""
    make_demo(mysql_address, shape=Shape(experiments=1, trials=1, runs=1, epochs=1, batches=1), faults=False)
    result = run_cli("import", url_of(mysql_address), _edited(exported, tmp_path, _tables_in_lower_case), "--json")
    assert result.returncode == 0, result.stderr
    with open_database(mysql_address) as db:
        assert db.scalar("SELECT count(*) FROM BATCH_METRIC m JOIN TRIAL_RUN r ON r.id = m.trial_run_id JOIN TRIAL t "
                         "ON t.id = r.trial_id WHERE t.experiment_id = 2") == exported.read_text().count(
                             '"table": "BATCH_METRIC"') > 0
    assert run_cli("validate", url_of(mysql_address), "-q").returncode == 0


@pytest.mark.parametrize("named", ["METRIC", "metric"])
def test_skip_tables_naming_a_table_the_database_has_is_a_usage_error(exported, tmp_path, named):
    """Round 37: `--skip-tables METRIC` left every link of the copy without its metric (8,816 violations, exit 0);
    round 40: `--skip-tables metric` skipped nothing, silently."""
    target = str(tmp_path / "t.db")
    assert run_cli("init", target).returncode == 0
    result = run_cli("import", target, str(exported), "--skip-tables", named)
    assert result.returncode == 2 and "which the file's other rows need" in result.stderr, result.stderr


@pytest.mark.parametrize("field, value", [("min_ids", [1]), ("dangling", "none"), ("counts", None)])
def test_a_trailer_edited_into_other_shapes_is_refused(exported, tmp_path, field, value):
    def edit(lines):
        lines[-1]["trailer"][field] = value
    path = _edited(exported, tmp_path, edit, keep_checksum=True)
    result = run_cli("import", str(tmp_path / "t.db"), path)
    assert result.returncode == 4 and "Traceback" not in result.stderr and "trailer" in result.stderr, result.stderr


def _link_check(rows, monkeypatch=None, **bounds):
    """exportlinks.LinkCheck of a file holding `rows` ((table, row) in the order given), its bounds (MAX_PAGES,
    MAX_MASKS, MAX_PENDING) as given: what it finds missing, as {child table.columns: first key}."""
    from emfix import exportlinks

    columns = {"METRIC": ["id", "type"], "EPOCH_METRIC": ["epoch_idx", "epoch_trial_run_id", "metric_id"],
               "BATCH": ["idx", "epoch_idx", "trial_run_id", "time"],
               "BATCH_METRIC": ["batch_idx", "epoch_idx", "trial_run_id", "metric_id"]}
    with contextlib.ExitStack() as stack, exportlinks.LinkCheck() as check:
        if monkeypatch is not None:  # (undone after each of hypothesis's examples)
            patched = stack.enter_context(monkeypatch.context())
            for name, value in bounds.items():
                if value is not None:
                    patched.setattr(exportlinks, name, value)
        check.begin({"tables": list(columns), "columns": columns})
        for table, row in rows:
            check.add(table, row)
        return {rel.child + "." + ",".join(rel.child_columns): first for rel, first in check.missing()
                if rel.parent in columns}  # (links to EPOCH, which these rows leave out, are not what is asked)


IDS = st.integers(min_value=-(1 << 40), max_value=1 << 40) | st.integers(min_value=-50, max_value=50)
BOUNDS = st.fixed_dictionaries({"MAX_PAGES": st.sampled_from([None, 1, 3]), "MAX_MASKS": st.sampled_from([None, 1, 4]),
                                "MAX_PENDING": st.sampled_from([None, 0, 2])})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sets(IDS), st.lists(IDS), BOUNDS, st.booleans(), st.booleans())
def test_a_link_to_an_id_the_file_lacks_is_the_first_one_found(monkeypatch, held, linked, bounds, as_decimals,
                                                                 links_first):
    """exportlinks.LinkCheck, whatever the order, sign and spread of the ids, kept as bits or (past its bounds) in
    its temporary database, written as ints, floats or a DECIMAL's digits: the smallest linked id not held."""
    parents = [("METRIC", [metric_id, "loss"]) for metric_id in sorted(held, key=lambda i: hash(i) % 7)]
    links = [("EPOCH_METRIC", [0, 1, {"$decimal": "%d.0" % i} if as_decimals else float(i) if i % 3 else i])
             for i in linked]
    lacking = sorted(set(linked) - held)
    found = _link_check(links + parents if links_first else parents + links, monkeypatch, **bounds)
    assert found == ({"EPOCH_METRIC.metric_id": (lacking[0],)} if lacking else {})


KEYS = st.tuples(st.integers(0, 5) | st.integers(4094, 4098), st.integers(0, 3), st.integers(1, 4))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sets(KEYS), st.lists(KEYS), BOUNDS, st.booleans())
def test_a_link_to_a_composite_key_the_file_lacks_is_the_first_one_found(monkeypatch, batches, linked, bounds,
                                                                         links_first):
    """Round 38: a BATCH row taken out left its BATCH_METRIC rows pointing at nothing (their trial run was there)."""
    parents = [("BATCH", [idx, epoch, run, "2025-01-01 00:00:00"]) for idx, epoch, run in batches]
    links = [("BATCH_METRIC", [idx, epoch, run, 1]) for idx, epoch, run in linked] + [("METRIC", [1, "loss"])]
    lacking = sorted(set(linked) - batches)
    found = _link_check(links + parents if links_first else parents + links, monkeypatch, **bounds)
    assert found == ({"BATCH_METRIC.batch_idx,epoch_idx,trial_run_id": lacking[0]} if lacking else {})


def test_keys_that_are_no_whole_number_are_compared_as_they_are():
    rows = [("METRIC", [1, "loss"]), ("METRIC", [2, "loss"]), ("EPOCH_METRIC", [0, 1, 2.0]),
            ("EPOCH_METRIC", [0, 1, 1.5]), ("EPOCH_METRIC", [0, 1, None])]
    assert _link_check(rows) == {"EPOCH_METRIC.metric_id": (1.5,)}
