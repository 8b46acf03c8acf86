"""export / import: complete subtrees, exact round trips across backends, damaged files refused."""

import datetime
import json
import re

import pytest
from conftest import make_demo, run_cli, url_of

from emfix.address import DatabaseAddress
from emfix.backends import open_database
from emfix.demo import Shape
from emfix.export import export_experiment
from emfix.importer import id_owner, import_file
from emfix.schema import create_schema, discover_graph

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
    result = import_file(mysql_address, path)
    back = str(tmp_path / "back.jsonl")
    export_experiment(mysql_address, result.experiment_id, back)
    assert records(back) == shifted(path, source, result.id_offsets)


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
    assert result.returncode in (2, 4) and words in result.stderr and "Traceback" not in result.stderr
    assert open(address.path, "rb").read() == before


def test_import_into_a_database_without_the_schema_says_how(tmp_path):
    source = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(source)
    path = tmp_path / "exp.jsonl"
    export_experiment(source, 1, str(path))
    empty = tmp_path / "empty.db"
    open_database(DatabaseAddress("sqlite", path=str(empty)), create=True).close()
    result = run_cli("import", str(empty), str(path))
    assert result.returncode in (1, 2) and "emfix init" in result.stderr


def test_unknown_experiment_is_a_clear_error(demo_address, tmp_path):
    result = run_cli("export", url_of(demo_address), "-e", "4242", "-o", str(tmp_path / "x.jsonl"))
    assert result.returncode == 2 and "does not exist" in result.stderr
    assert not (tmp_path / "x.jsonl").exists()
