"""Every command in `emfix --help`, in text and in --json, on SQLite and MariaDB, on the damaged demo
and on a clean one: no traceback, the exit code the README's table gives, --json that parses and
names the same figures as the text. A command without a row here fails
test_every_command_in_help_has_a_row: none lands untested.
"""

import argparse
import dataclasses
import json
import os
import re
import shutil
from typing import Callable, Dict, List, Optional

import pytest
from conftest import make_demo, run_cli, url_of

from emfix.address import DatabaseAddress


@dataclasses.dataclass
class Ctx:
    """Where a row runs: its database (a fresh demo), a folder, and what earlier steps left."""

    address: DatabaseAddress
    tmp: str
    damaged: bool
    prepared: Dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def db(self):
        return url_of(self.address)

    def path(self, name):
        return os.path.join(self.tmp, name)


@dataclasses.dataclass
class Row:
    command: str  # as `emfix --help` names it (sub-actions as "schema show", "snapshot create")
    argv: Callable[[Ctx], List[str]]
    exits: Dict[bool, int]  # damaged? -> exit code
    figures: Callable[[dict], List[int]] = lambda _data: []  # counts the text must name as well
    prepare: Optional[Callable[[Ctx], None]] = None
    sqlite_only: bool = False


def same(code):
    return {True: code, False: code}


def _quarantine(ctx):
    _rules(ctx)
    done = run_cli("transform-metrics", ctx.db, "--rules", ctx.path("rules.json"), "--yes", "--json",
                   "--quarantine-dir", ctx.path("q"), "--no-snapshot")
    assert done.returncode == 0, done.stderr
    ctx.prepared["quarantine"] = json.loads(done.stdout)["quarantine"]


def _snapshot(ctx):
    made = run_cli("snapshot", "create", ctx.db, "--snapshot-dir", ctx.path("snaps"), "--json")
    assert made.returncode == 0, made.stderr
    ctx.prepared["snapshot"] = json.loads(made.stdout)["id"]


def _export(ctx):
    done = run_cli("export", ctx.db, "-e", "1", "-o", ctx.path("exp1.jsonl"))
    assert done.returncode == 0, done.stderr


def _rules(ctx):
    with open(ctx.path("rules.json"), "w") as handle:
        handle.write('{"cat": "normalize"}')


def _schema_files(ctx):
    for name in ("s.json", "s2.json"):
        done = run_cli("extract-schema", "-d", ctx.db, "-o", ctx.path(name))
        assert done.returncode == 0, done.stderr


def _diff_file(ctx):
    _schema_files(ctx)
    done = run_cli("compare-schemas", "-s", ctx.path("s.json"), "-t", ctx.path("s2.json"), "-o", ctx.path("cmp"))
    assert done.returncode == 0, done.stderr


def _undo_argv(ctx):
    return ["undo", ctx.prepared["quarantine"]]


def _validate_figures(data):
    s = data["summary"]
    return [s["total_foreign_key_violations"], s["rows_orphaned_through_parent"], s["total_json_metric_issues"]]


def _sum(values):
    return sum(values) if values else 0


ROWS = [
    Row("demo", lambda c: ["demo", c.path("demo")], same(0), lambda d: [d["total_rows"]], sqlite_only=True),
    Row("init", lambda c: ["init", c.path("new.db")], same(0), sqlite_only=True),
    Row("schema graph", lambda c: ["schema", "graph", c.db], same(0), lambda d: [len(d["tables"])]),
    Row("schema show", lambda c: ["schema", "show", c.db], same(0), lambda d: [len(d["tables"])]),
    Row("schema diff", lambda c: ["schema", "diff", c.db, c.db], same(0)),
    Row("schema upgrade", lambda c: ["schema", "upgrade", c.db, "--dry-run"], same(0),
        lambda d: [d["generation_after"]]),
    Row("validate", lambda c: ["validate", c.db], {True: 1, False: 0}, _validate_figures),
    Row("check-hierarchy", lambda c: ["check-hierarchy", c.db], {True: 1, False: 0},
        lambda d: [len(d["experiments"])]),
    Row("snapshot create", lambda c: ["snapshot", "create", c.db, "--snapshot-dir", c.path("snaps")], same(0)),
    Row("snapshot list", lambda c: ["snapshot", "list", c.db, "--snapshot-dir", c.path("snaps")], same(0),
        prepare=_snapshot),
    Row("snapshot verify", lambda c: ["snapshot", "verify", c.db, c.prepared["snapshot"], "--snapshot-dir",
                                      c.path("snaps")], same(0), prepare=_snapshot),
    Row("snapshot restore", lambda c: ["snapshot", "restore", c.db, "--snapshot-id", c.prepared["snapshot"],
                                       "--snapshot-dir", c.path("snaps"), "--yes"], same(0), prepare=_snapshot),
    Row("snapshot prune", lambda c: ["snapshot", "prune", c.db, "--keep", "5", "--snapshot-dir", c.path("snaps")],
        same(0), prepare=_snapshot),
    Row("create-snapshot", lambda c: ["create-snapshot", c.db, "--snapshot-dir", c.path("snaps")], same(0)),
    Row("list-snapshots", lambda c: ["list-snapshots", c.db, "--snapshot-dir", c.path("snaps")], same(0),
        prepare=_snapshot),
    Row("verify-snapshot", lambda c: ["verify-snapshot", c.db, c.prepared["snapshot"], "--snapshot-dir",
                                      c.path("snaps")], same(0), prepare=_snapshot),
    Row("restore-snapshot", lambda c: ["restore-snapshot", c.db, "--snapshot-id", c.prepared["snapshot"],
                                       "--snapshot-dir", c.path("snaps"), "--yes"], same(0), prepare=_snapshot),
    Row("repair", lambda c: ["repair", c.db, "--yes", "--quarantine-dir", c.path("q"), "--snapshot-dir",
                             c.path("snaps")], {True: 1, False: 0},
        lambda d: [_sum(d["removed"].values()), d["repaired"]]),
    Row("cleanup-orphans", lambda c: ["cleanup-orphans", c.db, "--yes", "--quarantine-dir", c.path("q"),
                                      "--snapshot-dir", c.path("snaps")], same(0),
        lambda d: [_sum(d["removed"].values())]),
    Row("cleanup", lambda c: ["cleanup", c.db, "--dry-run"], same(0), lambda d: [_sum(d["plan"]["remove"].values())]),
    Row("fix-json", lambda c: ["fix-json", c.db, "--yes", "--quarantine-dir", c.path("q"), "--snapshot-dir",
                               c.path("snaps")], {True: 1, False: 0}, lambda d: [d["repaired"], d["candidates"]]),
    Row("transform-metrics", lambda c: ["transform-metrics", c.db, "--rules", c.path("rules.json"), "--yes",
                                        "--quarantine-dir", c.path("q"), "--snapshot-dir", c.path("snaps")],
        same(0), lambda d: [d["changed"], d["scanned"]], prepare=_rules),
    Row("create-transformation-template", lambda c: ["create-transformation-template", "-o", c.path("t.json")],
        same(0)),
    Row("export", lambda c: ["export", c.db, "-e", "1", "-o", c.path("e.jsonl")], same(0),
        lambda d: [_sum(d["counts"].values())]),
    Row("export-experiment", lambda c: ["export-experiment", c.db, "-e", "1", "-o", c.path("e.jsonl")], same(0),
        lambda d: [_sum(d["counts"].values())]),
    Row("import", lambda c: ["import", c.db, c.path("exp1.jsonl"), "--force"], same(0), prepare=_export),
    Row("migrate", lambda c: ["migrate", c.db, c.path("copy.db"), "-e", "1", "--init"], same(0)),
    Row("migrate-experiment", lambda c: ["migrate-experiment", "-d", c.db, "-s", "1"], same(0)),
    Row("undo", _undo_argv, same(0), lambda d: [_sum(d["restored"].values())], prepare=_quarantine),
    Row("doctor", lambda c: ["doctor", c.db], same(0)),
    # The old schema tool's command lines (schema_diff_cli), with their old options.
    Row("extract-schema", lambda c: ["extract-schema", "-d", c.db, "-o", c.path("x.json")], same(0),
        lambda d: [d["tables"], d["rows"]]),
    Row("compare-schemas", lambda c: ["compare-schemas", "-s", c.path("s.json"), "-t", c.path("s2.json"), "-o",
                                      c.path("out")], same(0), lambda d: [d["differences"]], prepare=_schema_files),
    Row("compare-live-schemas", lambda c: ["compare-live-schemas", "--source-db", c.db, "--target-db", c.db, "-o",
                                           c.path("live")], same(0), lambda d: [d["differences"]]),
    Row("analyze-schema", lambda c: ["analyze-schema", "-s", c.path("s.json"), "-o", c.path("a.json")], same(0),
        lambda d: [d["table_count"], d["foreign_key_count"]], prepare=_schema_files),
    Row("generate-migration-plan", lambda c: ["generate-migration-plan", "-d", c.path("cmp/schema_diff.json"), "-o",
                                              c.path("plan.sql")], same(0), lambda d: [len(d["statements"])],
        prepare=_diff_file),
    Row("optimize", lambda c: ["optimize", c.db], same(0)),
]

JSONLESS = {"create-transformation-template"}  # writes a file: --json says where (checked below)


def help_commands():
    """Every command and sub-action the parser offers, aliases included."""
    from emfix.cli import build_parser
    names = []

    def walk(parser, prefix):
        for action in parser._actions:  # noqa: SLF001 (argparse keeps its sub-parsers here)
            if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
                for name, sub in action.choices.items():
                    full = (prefix + " " + name).strip()
                    names.append(full)
                    walk(sub, full)
    walk(build_parser(), "")
    return names


def test_every_command_in_help_has_a_row():
    rows = {row.command for row in ROWS}
    # `emfix schema DB` is `schema graph`; the snapshot actions are rows of their own.
    missing = [name for name in help_commands() if name not in rows and name not in ("schema", "snapshot")]
    assert missing == [], "commands without a row in the matrix: %s" % missing


def _numbers(text):
    return {int(m.replace(",", "")) for m in re.findall(r"\d[\d,]*", text)}


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    """A damaged and a clean demo file, copied for each SQLite run."""
    folder = tmp_path_factory.mktemp("templates")
    made = {}
    for damaged in (True, False):
        address = DatabaseAddress("sqlite", path=str(folder / ("%s.db" % ("damaged" if damaged else "clean"))))
        make_demo(address, faults=damaged)
        made[damaged] = address.path
    return made


def _context(backend, damaged, tmp_path, templates, request):
    if backend == "sqlite":
        path = str(tmp_path / "experiment.db")
        shutil.copy(templates[damaged], path)
        address = DatabaseAddress("sqlite", path=path)
    else:
        address = request.getfixturevalue("mysql_databases")()
        make_demo(address, faults=damaged)
    return Ctx(address, str(tmp_path), damaged)


@pytest.mark.parametrize("row", ROWS, ids=[r.command for r in ROWS])
@pytest.mark.parametrize("damaged", [True, False], ids=["damaged", "clean"])
@pytest.mark.parametrize("backend", ["sqlite", "mysql"])
def test_the_matrix(backend, damaged, row, tmp_path, templates, request):
    if backend == "mysql" and row.sqlite_only:
        pytest.skip("writes a SQLite file: the same code on both backends")
    runs = {}
    for mode in ("text", "json"):
        (tmp_path / mode).mkdir()
        ctx = _context(backend, damaged, tmp_path / mode, templates, request)
        if row.prepare:
            row.prepare(ctx)
        args = row.argv(ctx) + (["--json"] if mode == "json" else [])
        result = run_cli(*args)
        where = "%s %s (%s, %s): %s" % (mode, row.command, backend, "damaged" if damaged else "clean", result.stderr)
        assert "Traceback" not in result.stderr + result.stdout, where
        assert result.returncode == row.exits[damaged], (result.returncode, where)
        runs[mode] = result
    if row.command in JSONLESS:
        return
    data = json.loads(runs["json"].stdout)
    named = _numbers(runs["text"].stdout + runs["text"].stderr)
    for figure in row.figures(data):
        if figure == 0:
            continue  # none may be said in words ("nothing to repair", "PASS: no ...")
        assert figure in named, "%s: --json says %s, the text does not: %s" % (row.command, figure,
                                                                              runs["text"].stdout[:2000])
