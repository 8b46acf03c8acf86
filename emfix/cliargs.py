"""The command line's grammar: every command, its options, its help text and example.

Kept apart from cli.py (which runs the commands) so the two stay readable; docs/generate.py
writes docs/commands/ from build_parser().
"""

import argparse
import sqlite3
import sys

from . import __version__
from .address import PASSWORD_ENV
from .errors import UsageError

EXIT_CODES_HELP = """exit codes:
  0  healthy / done          3  cannot open or connect, or locked after retries
  1  problems found          4  damaged input (corrupt file, snapshot mismatch)
  2  usage error             5  interrupted; run again (or --resume) to finish"""


class _Parser(argparse.ArgumentParser):
    """No abbreviations (`--pass` must never become `--password-file`); errors are UsageError."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

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
    group.add_argument("--port", type=_port, help="MySQL port (with --mysql)")
    group.add_argument("--user", help="MySQL user (with --mysql)")
    group.add_argument("--password-file", metavar="FILE",
                       help="read the MySQL password from FILE (or set %s, or use ~/.my.cnf)" % PASSWORD_ENV)
    group.add_argument("--password", metavar="TEXT", help=PASSWORD_HELP)
    group.add_argument("--defaults-file", metavar="FILE", help="MySQL option file to read instead of ~/.my.cnf")
    group.add_argument("--lock-timeout", type=_seconds, default=30.0, metavar="SECONDS",
                       help="keep retrying a locked or unreachable database this long (default 30)")


PASSWORD_HELP = ("the old tool's flag: works, but other users can read it in the process list; prefer "
                 "--password-file, %s or ~/.my.cnf" % PASSWORD_ENV)


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
    p.add_argument("--scale", type=_scale, metavar="MILLIONS",
                   help="write about MILLIONS million rows (e.g. 10) instead of the small demo")
    p.add_argument("--generation", type=int, choices=(1, 2), default=2,
                   help="schema generation: 1 without the BATCH tables, 2 with (default)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--clean", action="store_true", help="write no damage")
    p.add_argument("--force", action="store_true",
                   help="kept for old scripts: demo rewrites a database it wrote itself, and never any other file")
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
    p.add_argument("--experiment", type=_row_id, metavar="ID",
                   help="walk this experiment's hierarchy; the exit code then answers for it alone")
    p.add_argument("--deep-json", action="store_true",
                   help="SQLite: also check every value inside each metric object is a number (about 2x the "
                        "JSON scan time; MySQL always does)")
    p.add_argument("--jobs", type=int, choices=(1, 2), default=2,
                   help="database connections working at once (default 2)")
    p.add_argument("--force", action="store_true",
                   help="work on a database that is not recognised as the Experiment Manager's (refused without)")
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
    p.add_argument("--force", action="store_true",
                   help="work on a database that is not recognised as the Experiment Manager's (refused without)")
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
        p.add_argument("--sleep", type=_seconds, default=0.0, metavar="S", help="pause between batches (seconds)")
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
        p.add_argument("--force", action="store_true",
                       help="work on a database that is not recognised as the Experiment Manager's (refused without)")
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
    p.add_argument("--force", action="store_true",
                   help="work on a database that is not recognised as the Experiment Manager's (refused without)")
    _add_output_options(p)
    for name in ("export", "export-experiment"):
        p = _command(sub, name, "write one experiment's complete subtree to a file, streamed" +
                     ("" if name == "export" else " (same as export)"),
                     "emfix %s experiment.db -e 12 -o exp12.jsonl\n  emfix %s experiment.db -e 12 -o - "
                     "--format json | gzip > exp12.json.gz" % (name, name))
        _add_database_options(p)
        p.add_argument("-e", "--experiment", type=_row_id, required=True, metavar="ID", help="the experiment to export")
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
    p.add_argument("--skip-tables", metavar="T,...",
                   help="leave these tables' rows out (tables DST lacks that are not the Experiment Manager's)")
    _add_output_options(p)
    for name in ("migrate", "migrate-experiment"):
        p = _command(sub, name, "copy experiments between databases (SQLite, MySQL), resumable, verified" +
                     ("" if name == "migrate" else " (same as migrate)"),
                     "emfix %s experiment.db mysql://em@db1/experiments -e 12 --init\n"
                     "  emfix %s experiment.db mysql://em@db1/experiments -e 12 --resume" % (name, name))
        p.add_argument("source", metavar="SRC", help="the database to copy from")
        p.add_argument("target", metavar="DST", help="the database to copy into")
        p.add_argument("-e", "--experiment", type=_row_id, action="append", metavar="ID",
                       help="an experiment (repeatable)")
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
        p.add_argument("--skip-tables", metavar="T,...",
                       help="leave these tables' rows out (tables DST lacks that are not the Experiment Manager's)")
        p.add_argument("--password-file", metavar="FILE", help="MySQL password for both ends")
        p.add_argument("--password", metavar="TEXT", help=PASSWORD_HELP)
        p.add_argument("--lock-timeout", type=_seconds, default=30.0, metavar="SECONDS",
                       help="keep retrying a locked or unreachable database this long (default 30)")
        p.add_argument("--snapshot-dir", metavar="DIR", help="where DST's snapshot goes")
        _add_output_options(p)
    p = _command(sub, "undo", "put back what a repair changed: rows cleanup removed, values fix-json rewrote",
                 "emfix undo quarantine/cleanup-orphans-20261125T101500.000000Z.quarantine.db")
    p.add_argument("quarantine", metavar="QUARANTINE", help="the quarantine file the repair printed")
    _add_database_options(p, positional=False)
    _add_output_options(p)


MAX_ROW_ID = (1 << 63) - 1  # the largest key SQLite and MySQL BIGINT hold
MAX_COUNT = 1 << 31


def _whole_number(text, low, high, what):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a whole number" % text) from None
    if value < low:
        raise argparse.ArgumentTypeError("%s must be %d or more" % (what, low))
    if value > high:
        raise argparse.ArgumentTypeError("%s must be at most %d" % (what, high))
    return value


def _positive_int(text):
    return _whole_number(text, 1, MAX_COUNT, "it")


def _non_negative_int(text):
    return _whole_number(text, 0, MAX_COUNT, "it")


def _row_id(text):
    return _whole_number(text, -MAX_ROW_ID, MAX_ROW_ID, "an id")


def _port(text):
    return _whole_number(text, 1, 65535, "a port")


def _number(text, low, high, what):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number" % text) from None
    if not low <= value <= high:  # also refuses nan and inf
        raise argparse.ArgumentTypeError("%s must be between %g and %g" % (what, low, high))
    return value


def _seconds(text):
    return _number(text, 0, 7 * 86400, "seconds")


def _scale(text):
    return _number(text, 0.001, 1000, "the scale (millions of rows)")


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
        parser.add_argument("--from-other-database", action="store_true",
                            help="restore a snapshot taken of another database (refused without this)")
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
