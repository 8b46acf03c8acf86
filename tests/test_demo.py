import json
import os
import sqlite3

from conftest import run_cli

from emfix.demo import MALFORMED_JSON, Shape, write_demo


def test_demo_command_writes_a_damaged_database_and_prints_what_to_try(tmp_path):
    result = run_cli("demo", str(tmp_path / "demo"), python_flags=("-S", "-E"))
    assert result.returncode == 0, result.stderr
    assert "emfix validate" in result.stdout
    conn = sqlite3.connect(str(tmp_path / "demo" / "experiment.db"))
    violations = conn.execute("PRAGMA foreign_key_check").fetchall()
    assert {v[0] for v in violations} >= {"TRIAL", "TRIAL_RUN", "EPOCH", "BATCH", "RESULTS_METRIC", "EPOCH_METRIC"}


def test_demo_rewrites_its_own_database_and_never_another_file(tmp_path):
    assert run_cli("demo", str(tmp_path)).returncode == 0
    assert run_cli("demo", str(tmp_path)).returncode == 0  # the README's first line works twice
    other = tmp_path / "real"
    other.mkdir()
    con = sqlite3.connect(str(other / "experiment.db"))
    con.execute("CREATE TABLE EXPERIMENT (id INTEGER PRIMARY KEY)")
    con.close()
    before = (other / "experiment.db").read_bytes()
    again = run_cli("demo", str(other), "--force")
    assert again.returncode == 2 and "is not a database `emfix demo` wrote" in again.stderr
    assert (other / "experiment.db").read_bytes() == before


def test_demo_that_fails_leaves_no_database(tmp_path):
    result = run_cli("demo", str(tmp_path / "d"), "--scale", "0.0001")
    assert result.returncode == 2 and not (tmp_path / "d" / "experiment.db").exists()


def test_demo_json_lists_every_fault(tmp_path):
    result = run_cli("demo", str(tmp_path), "--json")
    data = json.loads(result.stdout)
    names = {f["name"] for f in data["faults"]}
    assert {"deleted_trial", "deleted_epoch", "null_parent", "unreferenced"} <= names
    assert {"json_" + c for c, _ in MALFORMED_JSON} <= names


def test_clean_demo_has_no_violations(tmp_path):
    path = str(tmp_path / "clean.db")
    write_demo(path, faults=False)
    assert sqlite3.connect(path).execute("PRAGMA foreign_key_check").fetchall() == []


def test_generator_is_deterministic(tmp_path):
    a, b = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    write_demo(a, seed=7)
    write_demo(b, seed=7)
    dump = [list(sqlite3.connect(p).iterdump()) for p in (a, b)]
    assert dump[0] == dump[1]


def test_scale_shape_reaches_about_the_asked_rows():
    shape = Shape.full(10)
    runs = shape.experiments * shape.trials * shape.runs
    assert 9.5e6 <= runs * 3307 <= 10.5e6
    assert 400_000 <= shape.trials * shape.runs * 3307 <= 500_000  # one experiment


def test_first_generation_demo_has_no_batch_tables(tmp_path):
    path = str(tmp_path / "g1.db")
    write_demo(path, Shape(generation=1))
    tables = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "BATCH" not in tables and "EPOCH_METRIC" in tables


def test_the_demo_suggests_commands_that_run_from_another_folder(tmp_path):
    """The "try:" lines work pasted anywhere: `python -m emfix` alone fails outside the clone."""
    import shlex
    import subprocess
    result = run_cli("demo", str(tmp_path / "d"))
    assert result.returncode == 0, result.stderr
    line = [text for text in result.stdout.splitlines() if text.strip().endswith("--help")][0].strip()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    words = shlex.split(line)
    if words[0].startswith("PYTHONPATH="):
        env["PYTHONPATH"] = words.pop(0).split("=", 1)[1]
    ran = subprocess.run(words, cwd=str(elsewhere), env=env, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0 and "usage" in ran.stdout.lower(), (line, ran.stderr)


def test_demo_refuses_a_database_url_for_its_folder_and_never_shows_its_password(tmp_path):
    result = run_cli("demo", "mysql://someone:Pw9SecretWord@127.0.0.1:3306/x", cwd=str(tmp_path))
    assert result.returncode == 2 and "looks like a database URL" in result.stderr
    assert "Pw9SecretWord" not in result.stdout + result.stderr
    assert os.listdir(str(tmp_path)) == []


def test_the_smallest_scales_write_a_damaged_demo(tmp_path):
    """Found by an outside tester: --scale 0.01 stopped with "fault injection needs at least 2 ... runs" (one run
    a trial); any scale --scale accepts writes the demo with its damage."""
    for scale in ("0.001", "0.01"):
        result = run_cli("demo", str(tmp_path / scale), "--scale", scale, "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["faults"]
