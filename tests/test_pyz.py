"""The single-file build: `make pyz` runs alone under `python3 -I -S` (no site-packages) on the standard library."""

import glob
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


@pytest.fixture(scope="module")
def pyz(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist") / "emfix.pyz"
    subprocess.run(["make", "-s", "pyz", "PYTHON=" + sys.executable, "PYZ=" + str(out)], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    return out


def run_isolated(pyz_path, directory, *args, list_modules=False):
    """Run the pyz with no site-packages (-I -S); with list_modules, print sys.modules after it exits."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(directory), "EMFIX_HISTORY": str(directory / "h.jsonl")}
    command = [sys.executable, "-I", "-S", str(pyz_path), *args]
    if list_modules:
        command[3:4] = ["-c", LIST_MODULES, str(pyz_path)]
    return subprocess.run(command, cwd=str(directory), env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=300)


LIST_MODULES = """
import runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit:
    pass
finally:
    sys.stderr.write("MODULES " + " ".join(sorted({m.split('.')[0] for m in sys.modules})) + "\\n")
"""


def test_repair_session_from_an_empty_directory(pyz, tmp_path):
    work = tmp_path / "server"
    work.mkdir()
    shutil.copy(str(pyz), str(work / "emfix.pyz"))
    steps = [
        (("demo", ".", "-q"), 0),
        (("validate", "experiment.db", "-q"), 1),
        (("snapshot", "create", "experiment.db", "--verify", "-q"), 0),
        (("cleanup-orphans", "experiment.db", "--yes", "--no-snapshot", "-q"), 0),
        (("fix-json", "experiment.db", "--yes", "--reset-unfixable", "--no-snapshot", "-q"), 0),
        (("validate", "experiment.db", "-q"), 0),
        (("doctor", "experiment.db", "-q"), 0),
    ]
    for args, expected in steps:
        result = run_isolated(work / "emfix.pyz", work, *args)
        assert result.returncode == expected, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert sorted(os.listdir(str(work / "snapshots")))


@pytest.mark.skipif(sys.version_info < (3, 10), reason="sys.stdlib_module_names is 3.10+")
def test_imports_nothing_outside_the_standard_library(pyz, tmp_path):
    run_isolated(pyz, tmp_path, "demo", ".", "-q")
    seen = set()
    for args in (("validate", "experiment.db"), ("snapshot", "create", "experiment.db", "--verify"),
                 ("cleanup-orphans", "experiment.db", "--dry-run"), ("fix-json", "experiment.db", "--dry-run"),
                 ("export", "experiment.db", "-e", "1", "-o", "e.jsonl"), ("doctor", "experiment.db"),
                 ("optimize", "experiment.db", "--dry-run")):
        result = run_isolated(pyz, tmp_path, *args, list_modules=True)
        assert "Traceback" not in result.stderr, result.stderr
        seen |= set(result.stderr.rsplit("MODULES ", 1)[1].split())
    assert "emfix" in seen
    outside = {m for m in seen - {"emfix", "__main__"} if m not in sys.stdlib_module_names}
    assert not outside


def test_mysql_without_the_driver_says_what_to_install(pyz, tmp_path):
    result = run_isolated(pyz, tmp_path, "validate", "mysql://root@127.0.0.1:3306/test")
    assert result.returncode == 3 and "emfix[mysql]" in result.stderr and "Traceback" not in result.stderr


def python_3_8():
    """A Python 3.8 interpreter that really runs (a pyenv shim may exist without one), or None."""
    pyenv = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.8*/bin/python3.8")))
    candidates = [shutil.which("python3.8")] + pyenv
    for candidate in filter(None, candidates):
        try:
            out = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True,
                                 text=True, timeout=30)
        except OSError:
            continue
        if out.returncode == 0 and out.stdout.strip() == "(3, 8)":
            return candidate
    return None


PYTHON_3_8 = python_3_8()


@pytest.mark.skipif(PYTHON_3_8 is None, reason="no Python 3.8 on this machine")
def test_runs_on_python_3_8(pyz, tmp_path):
    """The floor vermin checks, run for real where a 3.8 interpreter exists."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "EMFIX_HISTORY": str(tmp_path / "h.jsonl")}
    for args, expected in ((("demo", ".", "-q"), 0), (("validate", "experiment.db", "-q"), 1),
                           (("migrate", "experiment.db", "copy.db", "-e", "1", "--init", "-q"), 0),
                           (("doctor", "experiment.db", "-q"), 0)):
        result = subprocess.run([PYTHON_3_8, "-I", str(pyz), *args], cwd=str(tmp_path), env=env,
                                capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
        assert result.returncode == expected and "Traceback" not in result.stderr, (args, result.stderr)


COUNT_COMPILED = """
import builtins, sys
compiled, real = [], builtins.compile
builtins.compile = lambda source, name, *rest, **kw: compiled.append(name) or real(source, name, *rest, **kw)
sys.path.insert(0, sys.argv[1])
import emfix.cli, emfix.repair, emfix.snapshot
print(len([m for m in sys.modules if m.startswith("emfix")]), len(compiled))
"""


def test_the_building_python_runs_it_from_bytecode(pyz, tmp_path):
    """zipimport never writes bytecode: without the .pyc in the file, each start compiled every module it imported."""
    imported, compiled = subprocess.run([sys.executable, "-I", "-S", "-c", COUNT_COMPILED, str(pyz)], check=True,
                                        capture_output=True, text=True).stdout.split()
    assert int(imported) > 20 and int(compiled) == 0


def test_two_builds_give_one_hash(tmp_path):
    hashes = []
    for name in ("a", "b"):
        out = tmp_path / name / "emfix.pyz"
        printed = subprocess.run(["make", "-s", "pyz", "PYTHON=" + sys.executable, "PYZ=" + str(out)], cwd=ROOT,
                                 check=True, capture_output=True, text=True).stdout
        digest = (tmp_path / name / "emfix.pyz.sha256").read_text().split()[0]
        assert printed.startswith(digest)
        hashes.append(digest)
        os.utime(os.path.join(ROOT, "emfix", "cli.py"))  # a newer mtime must not change the bytes
    assert hashes[0] == hashes[1]
