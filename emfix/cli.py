"""The command line: parse arguments, call the library, render the result, map errors to exit codes."""

import argparse
import dataclasses
import json
import logging
import os
import signal
import sqlite3
import sys

from . import __version__, history
from .address import PASSWORD_ENV, mysql_address_from_flags, parse_address
from .backends import open_database
from .errors import EXIT_DAMAGED, EXIT_OK, EXIT_PROBLEMS, DamagedInputError, EmfixError, UsageError
from .retry import RetryPolicy

EXIT_CODES_HELP = """exit codes:
  0  healthy / done          3  cannot open or connect, or locked after retries
  1  problems found          4  damaged input (corrupt file, snapshot mismatch)
  2  usage error             5  interrupted; run again (or --resume) to finish"""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message, hint="see `%s --help`" % self.prog)


def _formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def _add_output_options(parser):
    group = parser.add_argument_group("output")
    group.add_argument("--json", action="store_true", help="machine-readable result on stdout")
    group.add_argument("-v", "--verbose", action="count", default=0, help="more detail on stderr (-vv: debug)")
    group.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    group.add_argument("--progress", action="store_true",
                       help="progress on stderr even when it is not a terminal (a line every 5 s, for logs)")


def _add_database_options(parser, positional=True):
    if positional:
        parser.add_argument("db", nargs="?", metavar="DB",
                            help="SQLite file, sqlite:///path, or mysql://user@host:port/dbname")
    group = parser.add_argument_group("database (the cookbook's flags work too)")
    group.add_argument("-d", "--database", metavar="DB", help="same as DB; with --mysql, the database name")
    group.add_argument("--mysql", action="store_true", help="DB is a MySQL database name on --host")
    group.add_argument("--host", help="MySQL host (with --mysql)")
    group.add_argument("--port", type=int, help="MySQL port (with --mysql)")
    group.add_argument("--user", help="MySQL user (with --mysql)")
    group.add_argument("--password-file", metavar="FILE",
                       help="read the MySQL password from FILE (or set %s, or use ~/.my.cnf)" % PASSWORD_ENV)
    group.add_argument("--defaults-file", metavar="FILE", help="MySQL option file to read instead of ~/.my.cnf")
    group.add_argument("--lock-timeout", type=float, default=30.0, metavar="SECONDS",
                       help="keep retrying a locked or unreachable database this long (default 30)")


def _command(sub, name, help_text, example, **kwargs):
    parser = sub.add_parser(name, help=help_text, description=help_text, formatter_class=_formatter,
                            epilog="Example:\n  " + example, **kwargs)
    return parser


def build_parser():
    parser = _Parser(prog="emfix", formatter_class=_formatter,
                     description="emfix: find and repair damage in Experiment Manager databases "
                                 "(SQLite, MySQL/MariaDB).",
                     epilog=EXIT_CODES_HELP)
    parser.add_argument("--version", action="version",
                        version="emfix %s (Python %s, SQLite %s)" % (
                            __version__, sys.version.split()[0], sqlite3.sqlite_version))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = _command(sub, "demo", "write a sample database with realistic damage to try emfix on",
                 "emfix demo ./emfix-demo && emfix validate ./emfix-demo/experiment.db")
    p.add_argument("directory", nargs="?", default="emfix-demo", metavar="DIR",
                   help="where to write experiment.db (default: ./emfix-demo)")
    p.add_argument("--scale", type=float, metavar="MILLIONS",
                   help="write about MILLIONS million rows (e.g. 10) instead of the small demo")
    p.add_argument("--generation", type=int, choices=(1, 2), default=2,
                   help="schema generation: 1 without the BATCH tables, 2 with (default)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--clean", action="store_true", help="write no damage")
    p.add_argument("--force", action="store_true", help="overwrite an existing demo database")
    _add_output_options(p)

    p = _command(sub, "init", "create the Experiment Manager schema (missing tables only)",
                 "emfix init experiment.db   |   emfix init mysql://root@127.0.0.1/test")
    _add_database_options(p)
    p.add_argument("--generation", type=int, choices=(1, 2), default=2,
                   help="1: without the BATCH tables, 2: with them (default)")
    p.add_argument("--json-type", choices=("json", "text"), default="json",
                   help="MySQL type of METRIC.per_label_val: JSON (default) or LONGTEXT as legacy installs")
    _add_output_options(p)

    p = _command(sub, "schema", "show the relation graph emfix discovered (parents before children)",
                 "emfix schema experiment.db --json")
    _add_database_options(p)
    _add_output_options(p)

    p = _command(sub, "validate", "check every foreign key, the cascade a cleanup would follow, and every "
                 "metric's JSON (read-only; exit 0 PASS, 1 FAIL)",
                 "emfix validate experiment.db -o violation_report.json\n"
                 "  emfix validate --mysql --host db1 --user em -d experiments --experiment 12")
    _add_database_options(p)
    p.add_argument("-o", "--output", metavar="REPORT.json", help="write the full report (the cookbook's format)")
    p.add_argument("--limit", type=_non_negative_int, default=100, metavar="N",
                   help="examples listed per table (default 100; 0: none); counts are always complete")
    p.add_argument("--experiment", type=int, metavar="ID", help="also walk this experiment's hierarchy")
    p.add_argument("--deep-json", action="store_true",
                   help="SQLite: also check every value inside each metric object is a number (about 2x the "
                        "JSON scan time; MySQL always does)")
    p.add_argument("--jobs", type=int, choices=(1, 2), default=2,
                   help="database connections working at once (default 2)")
    _add_output_options(p)

    _add_snapshot_commands(sub)
    _add_cleanup_commands(sub)
    _add_care_commands(sub)
    return parser


def _add_care_commands(sub):
    p = _command(sub, "doctor", "what is wrong around a database and what to run: connection, locks, journal, "
                 "engines, disk, memory, large metrics, unindexed keys, last results (exit 0 OK/WARN, 1 FAIL)",
                 "emfix doctor experiment.db   |   emfix doctor mysql://em@db1/experiments --json")
    _add_database_options(p)
    p.add_argument("--snapshot-dir", metavar="DIR", help="where this database's snapshots live")
    _add_output_options(p)
    p = _command(sub, "optimize", "index foreign-key columns that have no index, ANALYZE, optionally VACUUM / "
                 "OPTIMIZE TABLE; times validate's slowest check before and after",
                 "emfix optimize experiment.db --dry-run   |   emfix optimize experiment.db --vacuum")
    _add_database_options(p)
    p.add_argument("--dry-run", action="store_true", help="list the indexes it would create; change nothing")
    p.add_argument("--vacuum", action="store_true",
                   help="also compact: VACUUM (SQLite) or OPTIMIZE TABLE (MySQL), after checking free disk")
    p.add_argument("--no-timing", action="store_true", help="skip the validate timings before and after")
    _add_output_options(p)


def _add_cleanup_commands(sub):
    for name in ("cleanup-orphans", "cleanup"):
        p = _command(sub, name, "remove orphaned rows and every row orphaned through them, in short batches, "
                     "keeping each removed row in a quarantine file for `emfix undo`" +
                     ("" if name == "cleanup-orphans" else " (same as cleanup-orphans)"),
                     "emfix %s experiment.db --dry-run\n  emfix %s experiment.db --yes" % (name, name))
        _add_database_options(p)
        p.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
        p.add_argument("--batch-size", type=_positive_int, default=5000, metavar="N",
                       help="most rows per delete transaction (default 5000)")
        p.add_argument("--sleep", type=float, default=0.0, metavar="S", help="pause between batches (seconds)")
        p.add_argument("--max-lock-ms", type=_positive_int, default=200, metavar="M",
                       help="shrink batches so each write transaction stays under M milliseconds (default 200)")
        p.add_argument("--tables", metavar="T,...", help="only remove rows from these tables")
        p.add_argument("--include-unreferenced", action="store_true",
                       help="also remove METRIC and ARTIFACT rows nothing references")
        p.add_argument("--recreate-parents", action="store_true",
                       help="create missing RESULTS/EPOCH rows under existing runs instead of removing their links")
        p.add_argument("--no-snapshot", action="store_true", help="skip the verified snapshot taken first")
        p.add_argument("--snapshot-dir", metavar="DIR", help="where the snapshot goes")
        p.add_argument("--quarantine-dir", metavar="DIR",
                       help="where removed rows are kept (default: quarantine/ beside a SQLite file)")
        p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        _add_output_options(p)
    p = _command(sub, "fix-json", "repair malformed metric JSON exactly (never guessing), keeping every "
                 "original in a quarantine file for `emfix undo`",
                 "emfix fix-json experiment.db --dry-run\n  emfix fix-json experiment.db --yes")
    _add_database_options(p)
    p.add_argument("--dry-run", action="store_true", help="show before -> after and the counts; change nothing")
    p.add_argument("--reset-unfixable", action="store_true",
                   help="set values that cannot be repaired to {} (the originals are kept in the quarantine)")
    p.add_argument("--column", default="METRIC.per_label_val", metavar="TABLE.COLUMN",
                   help="the column to repair (default METRIC.per_label_val)")
    p.add_argument("--batch-size", type=_positive_int, default=500, metavar="N", help="values per transaction")
    p.add_argument("--no-snapshot", action="store_true", help="skip the verified snapshot taken first")
    p.add_argument("--snapshot-dir", metavar="DIR", help="where the snapshot goes")
    p.add_argument("--quarantine-dir", metavar="DIR", help="where the original values are kept")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    _add_output_options(p)
    for name in ("export", "export-experiment"):
        p = _command(sub, name, "write one experiment's complete subtree to a file, streamed" +
                     ("" if name == "export" else " (same as export)"),
                     "emfix %s experiment.db -e 12 -o exp12.jsonl\n  emfix %s experiment.db -e 12 -o - "
                     "--format json | gzip > exp12.json.gz" % (name, name))
        _add_database_options(p)
        p.add_argument("-e", "--experiment", type=int, required=True, metavar="ID", help="the experiment to export")
        p.add_argument("-o", "--output", required=True, metavar="FILE", help="where to write ('-' for stdout)")
        p.add_argument("--format", choices=("jsonl", "json"), default="jsonl",
                       help="jsonl: one record per line with a checksummed trailer (default); json: the old layout")
        p.add_argument("--include-metrics", action="store_true", default=True,
                       help="include the METRIC rows the subtree links (always on; kept for the cookbook)")
        p.add_argument("--include-artifacts", action="store_true", default=True,
                       help="include the ARTIFACT rows the subtree links (always on; kept for the cookbook)")
        _add_output_options(p)
    p = _command(sub, "import", "read an export file (jsonl) into a database, with new ids that never collide",
                 "emfix import experiment.db exp12.jsonl --experiment-title 'exp 12 (copy)'")
    _add_database_options(p)
    p.add_argument("file", metavar="FILE", help="a file written by `emfix export --format jsonl`")
    p.add_argument("--experiment-title", metavar="T", help="title of the imported experiment")
    p.add_argument("--resume", action="store_true", help="finish an import that was interrupted")
    p.add_argument("--force", action="store_true", help="import the file again as another experiment")
    _add_output_options(p)
    for name in ("migrate", "migrate-experiment"):
        p = _command(sub, name, "copy experiments between databases (SQLite, MySQL), resumable, verified" +
                     ("" if name == "migrate" else " (same as migrate)"),
                     "emfix %s experiment.db mysql://em@db1/experiments -e 12 --init\n"
                     "  emfix %s experiment.db mysql://em@db1/experiments -e 12 --resume" % (name, name))
        p.add_argument("source", metavar="SRC", help="the database to copy from")
        p.add_argument("target", metavar="DST", help="the database to copy into")
        p.add_argument("-e", "--experiment", type=int, action="append", metavar="ID", help="an experiment (repeatable)")
        p.add_argument("--all", action="store_true", help="every experiment of SRC")
        p.add_argument("--strategy", choices=sorted(STRATEGIES_HELP), default="balanced",
                       help="; ".join("%s: %s" % kv for kv in sorted(STRATEGIES_HELP.items())) + " (default balanced)")
        p.add_argument("--batch-size", type=_positive_int, metavar="N", help="rows per transaction (default 2000)")
        p.add_argument("--max-memory", type=_positive_int, metavar="MB",
                       help="size each table's batches from this memory budget (with --batch-size: the smaller)")
        p.add_argument("--paging", choices=("keyset", "offset"), default="keyset",
                       help="keyset (WHERE key > last; default) or offset (LIMIT/OFFSET, slower on big tables)")
        p.add_argument("--resume", action="store_true", help="continue a migration that was interrupted")
        p.add_argument("--force", action="store_true", help="copy an experiment again that was already migrated")
        p.add_argument("--init", action="store_true", help="create the schema in DST if it has none")
        p.add_argument("--no-verify", action="store_true", help="skip the comparison at the end")
        p.add_argument("--password-file", metavar="FILE", help="MySQL password for both ends")
        p.add_argument("--lock-timeout", type=float, default=30.0, metavar="SECONDS",
                       help="keep retrying a locked or unreachable database this long (default 30)")
        p.add_argument("--snapshot-dir", metavar="DIR", help="where DST's snapshot goes")
        _add_output_options(p)
    p = _command(sub, "undo", "put back what a repair changed: rows cleanup removed, values fix-json rewrote",
                 "emfix undo quarantine/cleanup-orphans-20261125T101500.000000Z.quarantine.db")
    p.add_argument("quarantine", metavar="QUARANTINE", help="the quarantine file the repair printed")
    _add_database_options(p, positional=False)
    _add_output_options(p)


def _positive_int(text):
    value = _non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


SNAPSHOT_ACTIONS = ("create", "list", "verify", "restore", "prune")
STRATEGIES_HELP = {
    "conservative": "snapshot DST, stop on any break in the source (or JSON a MySQL JSON column refuses), check "
                    "each batch, verify checksums",
    "balanced": "snapshot DST, stop on any break in the source (or JSON a MySQL JSON column refuses), verify "
                "checksums at the end",
    "aggressive": "no snapshot or validation, verify row counts only",
}
SNAPSHOT_ALIASES = {"create-snapshot": "create", "list-snapshots": "list", "verify-snapshot": "verify",
                    "restore-snapshot": "restore"}


def _add_snapshot_options(parser, action):
    _add_database_options(parser)
    parser.add_argument("--snapshot-dir", metavar="DIR",
                        help="where snapshots live (default: snapshots/ beside a SQLite file, ./snapshots for MySQL)")
    if action == "create":
        parser.add_argument("--description", default="", help="a note stored in the manifest")
        parser.add_argument("--verify", action="store_true", help="verify the snapshot right after writing it")
    elif action == "verify":
        parser.add_argument("snapshot_id", nargs="?", metavar="ID", help="the snapshot to check (or --all)")
        parser.add_argument("--all", action="store_true", help="check every snapshot")
        parser.add_argument("--full", action="store_true", help="PRAGMA integrity_check instead of quick_check")
    elif action == "restore":
        parser.add_argument("--snapshot-id", dest="snapshot_id", default=None, metavar="ID",
                            help="the snapshot to restore, or latest-valid (default)")
        parser.add_argument("--no-safety-snapshot", action="store_true",
                            help="do not snapshot the current content first")
    elif action == "prune":
        parser.add_argument("--keep", type=_non_negative_int, metavar="N", help="keep the N newest snapshots")
        parser.add_argument("--older-than", metavar="AGE", help="delete snapshots older than AGE (30d, 12h, 90m)")
        parser.add_argument("--dry-run", action="store_true", help="show what would be deleted")
    _add_output_options(parser)


SNAPSHOT_HELP = {
    "create": ("write a consistent, checksummed snapshot (online backup; one consistent read on MySQL)",
               "emfix snapshot create experiment.db --description 'before cleanup' --verify"),
    "list": ("list snapshots with their status (verified, unverified, damaged, missing, incomplete)",
             "emfix snapshot list experiment.db"),
    "verify": ("check snapshots against their manifests: size, SHA-256, quick_check, row counts (exit 4 if damaged)",
               "emfix snapshot verify experiment.db --all"),
    "restore": ("verify a snapshot, keep a safety snapshot of the current content, then restore atomically",
                "emfix snapshot restore experiment.db --snapshot-id latest-valid"),
    "prune": ("delete old snapshots; the newest verified one is always kept",
              "emfix snapshot prune experiment.db --keep 10 --older-than 30d"),
}


def _add_snapshot_commands(sub):
    group = _command(sub, "snapshot", "create, list, verify, restore and prune snapshots",
                     "emfix snapshot create experiment.db --verify && emfix snapshot list experiment.db")
    actions = group.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    for action in SNAPSHOT_ACTIONS:
        help_text, example = SNAPSHOT_HELP[action]
        _add_snapshot_options(_command(actions, action, help_text, example), action)
    for alias, action in SNAPSHOT_ALIASES.items():
        help_text, example = SNAPSHOT_HELP[action]
        p = _command(sub, alias, "the cookbook's name for `snapshot %s`: %s" % (action, help_text),
                     example.replace("snapshot " + action, alias))
        _add_snapshot_options(p, action)
        p.set_defaults(action=action)


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a whole number" % text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


# -- shared plumbing for command handlers -------------------------------------------------------

def resolve_address(args):
    db = getattr(args, "db", None)
    flag = getattr(args, "database", None)
    if db and flag and db != flag:
        raise UsageError("two databases given (%s and -d %s)" % (db, flag), hint="give DB or -d, not both")
    target = db or flag
    if getattr(args, "mysql", False):
        return mysql_address_from_flags(target, args.host, args.port, args.user,
                                        args.password_file, args.defaults_file)
    if target is None:
        raise UsageError("no database given", hint="pass a SQLite file path or mysql://user@host:port/dbname")
    if args.host or args.port or args.user:
        if not str(target).startswith(("mysql:", "mariadb:")):
            raise UsageError("--host/--port/--user need --mysql", hint="add --mysql, or use a mysql:// URL")
    return parse_address(target, args.password_file, args.defaults_file)


def retry_policy(args):
    deadline = max(0.0, getattr(args, "lock_timeout", 30.0))
    return RetryPolicy(deadline=deadline)


def open_from_args(args, readonly=False, create=False):
    return open_database(resolve_address(args), readonly=readonly, create=create, retry_policy=retry_policy(args))


def to_jsonable(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if hasattr(value, "to_dict"):
            return value.to_dict()
        return {k: to_jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return value


def emit_json(value, out=None):
    out = out or sys.stdout
    json.dump(to_jsonable(value), out, indent=2, allow_nan=False, default=str)
    out.write("\n")


class Output:
    """Where a handler writes: text for people unless --json or -q says otherwise."""

    def __init__(self, args):
        self.json = getattr(args, "json", False)
        self.quiet = getattr(args, "quiet", False)

    def text(self, line=""):
        if not self.json and not self.quiet:
            print(line)


def make_progress(label, args, out):
    """On a terminal unless --json or -q; --progress forces it on (whole lines) for logs; -q always wins."""
    from .progress import Progress
    if out.quiet:
        return Progress(label, enabled=False)
    if getattr(args, "progress", False):
        return Progress(label, enabled=True)
    return Progress(label, enabled=None if not out.json else False)


# -- the commands of this module ----------------------------------------------------------------

def cmd_demo(args, out):
    from .demo import Shape, write_demo
    shape = Shape.full(args.scale, args.generation) if args.scale else Shape(generation=args.generation)
    directory = args.directory
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise UsageError("%s exists and is not a directory" % directory)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "experiment.db")
    result = write_demo(path, shape, seed=args.seed, faults=not args.clean, force=args.force)
    if out.json:
        emit_json({"path": path, "rows": result.rows, "total_rows": result.total_rows,
                   "shape": dataclasses.asdict(shape), "faults": [dict(name=n, what=w) for n, w in result.faults]})
        return EXIT_OK
    out.text("wrote %s: %d rows, schema generation %d, %d kinds of damage" % (
        path, result.total_rows, shape.generation, len(result.faults)))
    for _name, what in result.faults:
        out.text("  - %s" % what)
    out.text("")
    out.text("try:")
    for line in ("emfix validate %s" % path, "emfix schema %s" % path, "emfix --help"):
        out.text("  python -m " + line)
    return EXIT_OK


def cmd_init(args, out):
    from .schema import create_schema
    with open_from_args(args, create=True) as db:
        created = create_schema(db, generation=args.generation, json_type=args.json_type)
        if out.json:
            emit_json({"database": db.address.to_dict(), "created": created})
        elif created:
            out.text("created %d tables in %s: %s" % (len(created), db.address.display(), ", ".join(created)))
        else:
            out.text("%s already has every Experiment Manager table" % db.address.display())
    return EXIT_OK


def cmd_schema(args, out):
    from .schema import discover_graph
    with open_from_args(args, readonly=True) as db:
        graph = discover_graph(db)
    if out.json:
        emit_json(graph)
        return EXIT_OK
    out.text("schema generation %d, %d tables, %d relations" % (graph.generation, len(graph.tables),
                                                                len(graph.relations)))
    if graph.missing_tables:
        out.text("missing Experiment Manager tables: %s" % ", ".join(graph.missing_tables))
    out.text("parent -> child order: %s" % ", ".join(graph.parent_first()))
    for rel in graph.relations:
        out.text("  %s%s" % (rel.describe(), "  (built-in: not declared)" if rel.source == "builtin" else ""))
    for rel in graph.unresolved:
        out.text("  %s  (parent table missing)" % rel.describe())
    return EXIT_OK


def command_target(address):
    """How to name the database in a suggested command: never with a password in it."""
    if address.is_sqlite:
        return address.path
    return "mysql://%s@%s:%s/%s" % (address.user or "", address.host, address.port, address.database or "")


def write_report(path, data):
    """Write a JSON report next to its final name, then rename: a reader never sees half a file."""
    from .fileutil import atomic_write_text
    try:
        atomic_write_text(path, json.dumps(to_jsonable(data), indent=2, allow_nan=False, default=str) + "\n")
    except OSError as exc:
        raise UsageError("cannot write report %s: %s" % (path, exc.strerror or exc),
                         hint="check that the directory exists and is writable") from None


def cmd_validate(args, out):
    from .render import validation_lines
    from .validate import validate
    address = resolve_address(args)
    progress = make_progress("validate", args, out)
    report = validate(address, limit=args.limit, experiment=args.experiment, retry_policy=retry_policy(args),
                      progress=progress, parallel=args.jobs > 1, deep_json=args.deep_json)
    data = report.to_dict()
    history.record(address, "validate", report.status, violations=report.total_violations,
                   json_issues=report.json.issue_count)
    if args.output:
        write_report(args.output, data)
    if out.json:
        emit_json(data)
    else:
        for line in validation_lines(report, command_target(address), "emfix", HANDLERS):
            out.text(line)
        if args.output:
            out.text("report written to %s" % args.output)
    return EXIT_OK if report.passed else EXIT_PROBLEMS


def _snapshot_dir(args, need_db=True):
    from .snapshot import default_snapshot_dir
    if args.snapshot_dir and not (args.db or args.database):
        return args.snapshot_dir, None
    address = resolve_address(args)
    return args.snapshot_dir or default_snapshot_dir(address), address


def cmd_snapshot(args, out):
    from . import snapshot
    from .render import snapshot_lines
    action = getattr(args, "action", None)
    if action is None:
        raise UsageError("snapshot needs an action: %s" % ", ".join(SNAPSHOT_ACTIONS),
                         hint="e.g. emfix snapshot create experiment.db")
    if action == "verify" and not args.snapshot_id and args.snapshot_dir and args.db and not args.database:
        args.snapshot_id, args.db = args.db, None  # `verify --snapshot-dir DIR ID`: no database needed
    directory, address = _snapshot_dir(args)
    progress = make_progress("snapshot", args, out)
    if action in ("create", "restore") and address is None:
        raise UsageError("snapshot %s needs the database" % action, hint="pass DB as well as --snapshot-dir")
    if action == "create":
        manifest = snapshot.create_snapshot(address, directory, args.description, args.verify, retry_policy(args),
                                            progress)
        if out.json:
            emit_json(dict(manifest.to_dict(), directory=directory))
        else:
            out.text("snapshot %s: %s rows in %d tables, %.1f MB, sha256 %s%s" % (
                manifest.id, "{:,}".format(manifest.row_total), len(manifest.tables), manifest.size / 1e6,
                manifest.sha256[:16], ", verified" if manifest.verified_at else ""))
            out.text("  in %s" % directory)
        return EXIT_OK
    if action == "list":
        found = snapshot.list_snapshots(directory)
        if out.json:
            emit_json({"directory": directory, "snapshots": [s.to_dict() for s in found]})
        else:
            for line in snapshot_lines(found, directory):
                out.text(line)
        return EXIT_OK
    if action == "verify":
        if not args.all and not args.snapshot_id:
            raise UsageError("verify needs a snapshot id or --all", hint="see `emfix snapshot list`")
        ids = [s.id for s in snapshot.list_snapshots(directory)] if args.all else [args.snapshot_id]
        results = [snapshot.verify_snapshot(directory, i, full=args.full) for i in ids]
        if out.json:
            emit_json({"directory": directory, "snapshots": [r.to_dict() for r in results]})
        else:
            for r in results:
                out.text("%-34s %-10s %s" % (r.id, r.status, r.problem))
            if not results:
                out.text("no snapshots in %s" % directory)
        return EXIT_OK if all(r.status == "verified" for r in results) else EXIT_DAMAGED
    if action == "restore":
        result = snapshot.restore_snapshot(address, directory, args.snapshot_id or "latest-valid",
                                           not args.no_safety_snapshot, retry_policy(args), progress)
        if out.json:
            emit_json(result)
        else:
            out.text("restored snapshot %s into %s (%s rows, %s)" % (
                result.snapshot_id, address.display(), "{:,}".format(sum(result.tables.values())), result.method))
            if result.safety_snapshot_id:
                out.text("the content from before is in snapshot %s" % result.safety_snapshot_id)
        return EXIT_OK
    older = snapshot.parse_age(args.older_than) if args.older_than else None
    result = snapshot.prune_snapshots(directory, args.keep, older, args.dry_run)
    if out.json:
        emit_json(result)
    else:
        verb = "would delete" if result.dry_run else "deleted"
        out.text("%s %d snapshots, kept %d" % (verb, len(result.deleted), len(result.kept)))
        for snapshot_id in result.deleted:
            out.text("  - %s" % snapshot_id)
    return EXIT_OK


class _StopFlag:
    """First Ctrl-C (or SIGTERM) asks the running repair to stop between batches; a second one aborts."""

    def __init__(self):
        self.raised = False

    def __call__(self):
        return self.raised

    def install(self):
        def handler(signum, frame):
            if self.raised:
                raise KeyboardInterrupt
            self.raised = True
            sys.stderr.write("\nstopping after this batch (Ctrl-C again to abort now)\n")
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
        return self


def _confirm(question):
    def ask(plan):
        if not sys.stdin.isatty():
            raise UsageError("this changes the database and stdin is not a terminal",
                             hint="run with --dry-run to see the plan, then with --yes")
        sys.stderr.write("%s [y/N] " % question(plan))
        sys.stderr.flush()
        return sys.stdin.readline().strip().lower() in ("y", "yes")
    return ask


def cmd_cleanup(args, out):
    from .cleanup import cleanup_orphans
    from .render import cleanup_lines
    address = resolve_address(args)
    confirm = None if args.yes or args.dry_run else _confirm(
        lambda plan: "remove %s rows from %s (each kept in a quarantine file)?" % (
            "{:,}".format(plan.total), address.display()))
    tables = [t.strip() for t in args.tables.split(",") if t.strip()] if args.tables else None
    result = cleanup_orphans(
        address, dry_run=args.dry_run, batch_size=args.batch_size, sleep=args.sleep, max_lock_ms=args.max_lock_ms,
        tables=tables, include_unreferenced=args.include_unreferenced, recreate_parents=args.recreate_parents,
        snapshot=not args.no_snapshot, snapshot_dir=args.snapshot_dir, quarantine_dir=args.quarantine_dir,
        retry_policy=retry_policy(args), progress=make_progress("cleanup", args, out),
        confirm=confirm, interrupted=_StopFlag().install())
    if out.json:
        emit_json(result)
    else:
        for line in cleanup_lines(result, command_target(address)):
            out.text(line)
    if not result.dry_run:
        history.record(address, "cleanup-orphans", "done", summary="removed %s rows" % "{:,}".format(
            sum(result.removed.values())), quarantine=result.quarantine)
    if result.final and result.final.get("total_foreign_key_violations"):
        return EXIT_PROBLEMS
    return EXIT_OK


def cmd_fix_json(args, out):
    from .jsonfix import fix_json
    from .render import fix_json_lines
    address = resolve_address(args)
    confirm = None if args.yes or args.dry_run else _confirm(
        lambda _a: "rewrite the malformed values of %s in %s (originals kept in a quarantine file)?" % (
            args.column, address.display()))
    result = fix_json(address, args.column, args.dry_run, args.reset_unfixable, args.batch_size,
                      not args.no_snapshot, args.snapshot_dir, args.quarantine_dir, retry_policy(args),
                      make_progress("fix-json", args, out), confirm,
                      _StopFlag().install())
    if out.json:
        emit_json(result)
    else:
        for line in fix_json_lines(result, command_target(address)):
            out.text(line)
    if not result.dry_run:
        history.record(address, "fix-json", "done", summary="%d repaired, %d unrepairable" % (
            result.repaired, result.unrepairable), quarantine=result.quarantine)
    return EXIT_PROBLEMS if result.unrepairable > result.reset else EXIT_OK


def cmd_export(args, out):
    from .export import export_experiment
    address = resolve_address(args)
    to_stdout = args.output == "-"
    result = export_experiment(address, args.experiment, args.output, args.format, retry_policy=retry_policy(args),
                               progress=make_progress("export", args, out))
    if to_stdout:
        return EXIT_OK
    if out.json:
        emit_json(result)
    else:
        out.text("exported experiment %d to %s: %s rows in %d tables, %.1f s" % (
            result.experiment_id, result.path, "{:,}".format(sum(result.counts.values())), len(result.counts),
            result.seconds))
    return EXIT_OK


def cmd_import(args, out):
    from .importer import import_file
    address = resolve_address(args)
    result = import_file(address, args.file, args.experiment_title, retry_policy(args),
                         make_progress("import", args, out), args.resume, args.force, _StopFlag().install())
    if out.json:
        emit_json(result)
    else:
        out.text("imported %s rows into %s as experiment %d (%.1f s)%s" % (
            "{:,}".format(sum(result.counts.values())), address.display(), result.experiment_id, result.seconds,
            " (resumed)" if result.resumed else ""))
    return EXIT_OK


def cmd_migrate(args, out):
    from .migrate import migrate_experiment
    source = parse_address(args.source, args.password_file)
    target = parse_address(args.target, args.password_file)
    ids = list(args.experiment or [])
    if args.all:
        with open_database(source, readonly=source.is_sqlite, retry_policy=retry_policy(args)) as db:
            ids = [r[0] for r in db.query("SELECT %s FROM %s ORDER BY %s" % (db.quote("id"), db.quote("EXPERIMENT"),
                                                                             db.quote("id")))]
    if not ids:
        raise UsageError("which experiments? give -e ID (repeatable) or --all")
    stop = _StopFlag().install()
    results = []
    for experiment_id in ids:
        result = migrate_experiment(
            source, target, experiment_id, args.strategy, args.batch_size, args.paging, args.resume, args.force,
            args.init, not args.no_verify, retry_policy(args),
            make_progress("migrate", args, out), stop, args.snapshot_dir, args.max_memory)
        results.append(result)
        history.record(target, "migrate", "done" if result.verified else "DIFFERS", summary="experiment %d -> %s" % (
            result.experiment_id, "{:,} rows".format(sum(result.copied.values()))))
        if not out.json:
            out.text("experiment %d -> %d in %s: %s rows in %.1f s%s" % (
                result.experiment_id, result.new_experiment_id, target.display(),
                "{:,}".format(sum(result.copied.values())), result.seconds, " (resumed)" if result.resumed else ""))
            for check in result.verify:
                out.text("  %-20s %10s %10s  %s" % (check.table, "{:,}".format(check.source_rows),
                                                   "{:,}".format(check.target_rows), "ok" if check.ok else "DIFFERS"))
    if out.json:
        emit_json(results)
    if not all(r.verified for r in results):
        raise DamagedInputError("the copy differs from the source (see the table above)",
                                hint="the snapshot of DST taken first holds its content from before")
    return EXIT_OK


def cmd_undo(args, out):
    from .cleanup import undo
    address = resolve_address(args) if (args.database or args.mysql) else None
    result = undo(args.quarantine, address, retry_policy(args))
    if out.json:
        emit_json(result)
    else:
        out.text("put back %s rows or values into %s from %s" % ("{:,}".format(sum(result.restored.values())),
                                                      result.database, result.quarantine))
        if result.removed_created:
            out.text("removed %d parent rows the repair had created" % result.removed_created)
    return EXIT_OK


def cmd_doctor(args, out):
    from .doctor import doctor
    from .render import doctor_lines
    address = resolve_address(args)
    report = doctor(address, retry_policy(args), args.snapshot_dir, command_target(address))
    if out.json:
        emit_json({"database": report.database, "status": report.status, "connected": report.connected,
                   "findings": report.findings, "seconds": round(report.seconds, 3)})
    else:
        for line in doctor_lines(report):
            out.text(line)
    if not report.connected:
        return report.exit_code
    return EXIT_PROBLEMS if report.status == "FAIL" else EXIT_OK


def cmd_optimize(args, out):
    from .optimize import optimize
    from .render import optimize_lines
    address = resolve_address(args)
    result = optimize(address, args.dry_run, args.vacuum, not args.no_timing, retry_policy(args),
                      make_progress("optimize", args, out))
    if out.json:
        emit_json(result)
    else:
        for line in optimize_lines(result, command_target(address)):
            out.text(line)
    return EXIT_OK


HANDLERS = {"demo": cmd_demo, "init": cmd_init, "schema": cmd_schema, "validate": cmd_validate,
            "snapshot": cmd_snapshot}
HANDLERS.update({alias: cmd_snapshot for alias in SNAPSHOT_ALIASES})
HANDLERS.update({"cleanup-orphans": cmd_cleanup, "cleanup": cmd_cleanup, "undo": cmd_undo,
                 "fix-json": cmd_fix_json, "export": cmd_export, "export-experiment": cmd_export,
                 "import": cmd_import, "migrate": cmd_migrate, "migrate-experiment": cmd_migrate,
                 "doctor": cmd_doctor, "optimize": cmd_optimize})


def _configure_logging(args):
    level = logging.WARNING
    if getattr(args, "quiet", False):
        level = logging.ERROR
    elif getattr(args, "verbose", 0) >= 2:
        level = logging.DEBUG
    elif getattr(args, "verbose", 0) == 1:
        level = logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("emfix: %(message)s"))
    root = logging.getLogger("emfix")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _print_error(exc):
    sys.stderr.write("error: %s\n" % exc.message)
    if exc.hint:
        sys.stderr.write("hint: %s\n" % exc.hint)


def main(argv=None):
    if hasattr(signal, "SIGXFSZ"):  # over a file-size limit, let the write fail with EFBIG, not kill us
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help()
            return EXIT_OK
        _configure_logging(args)
        return HANDLERS[args.command](args, Output(args))
    except EmfixError as exc:
        _print_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)  # keep Python from complaining while flushing
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


def run():
    """Entry point for zipapp's generated __main__ (which ignores a return value): exit with main's code."""
    sys.exit(main())
