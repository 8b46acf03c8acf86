"""The command line: parse arguments, call the library, render the result, map errors to exit codes."""

import argparse
import dataclasses
import json
import logging
import os
import sqlite3
import sys

from . import __version__
from .address import PASSWORD_ENV, mysql_address_from_flags, parse_address
from .backends import open_database
from .errors import EXIT_OK, EXIT_PROBLEMS, EmfixError, UsageError
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

    return parser


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
    from .progress import Progress
    from .render import validation_lines
    from .validate import validate
    address = resolve_address(args)
    progress = Progress("validate", enabled=None if not (out.json or out.quiet) else False)
    report = validate(address, limit=args.limit, experiment=args.experiment, retry_policy=retry_policy(args),
                      progress=progress, parallel=args.jobs > 1, deep_json=args.deep_json)
    data = report.to_dict()
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


HANDLERS = {"demo": cmd_demo, "init": cmd_init, "schema": cmd_schema, "validate": cmd_validate}


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
