"""What every command module shares: the options declared once, and the plumbing between the parser,
the library and the terminal (addresses, output, progress, questions, Ctrl-C)."""

import argparse
import json
import os
import signal
import sys

from ..address import PASSWORD_ENV, mysql_address_from_flags, parse_address, remember_secret
from ..errors import Terminated, UsageError
from ..jsonable import to_jsonable  # noqa: F401 (the commands use common.to_jsonable)
from .argvalues import (  # noqa: F401 (the commands use common.row_id, common.Once, ...)
    MAX_COUNT,
    MAX_ROW_ID,
    IdsThenDatabase,
    Once,
    non_negative_int,
    number,
    port,
    positive_int,
    row_id,
    seconds,
    table_list,
    utf8_text,
    whole_number,
)

# -- what to run next, for what the library says happened (EmfixError.kind and .facts) ------------

GALERA_LIMIT = "wsrep_max_ws_rows / wsrep_max_ws_size"
HINTS = {
    "access_denied": lambda: "check the password (%s, --password-file or ~/.my.cnf)" % PASSWORD_ENV,
    "unknown_database": lambda target, database: (
        "check the name; `emfix init %s` creates it with the schema (or, as an administrator: CREATE DATABASE %s "
        "CHARACTER SET utf8mb4)" % (target, database)),
    "refused_json": lambda: ("a metric value is not valid JSON: repair the source with `emfix fix-json`, or write "
                             "into a LONGTEXT column (`emfix init DST --json-type text`)"),
    "refused_text": lambda: ("the value's bytes are not UTF-8 (a SQLite database can hold such text, a MySQL text "
                             "column refuses it), or the column there has a character set that cannot hold its "
                             "characters (utf8mb3 holds no emoji, latin1 only Western European letters: make it "
                             "utf8mb4); otherwise correct it in SRC, in the column the error names (in "
                             "METRIC.per_label_val, `emfix fix-json SRC --reset-unfixable` replaces such values, the "
                             "originals kept)"),
    "refused_statement": lambda: ("its tables differ from the ones the statements were written for; "
                                  "`emfix schema diff` shows how"),
    "read_only_server": lambda: ("a replica takes every change from its primary; point emfix at the primary "
                                 "(`emfix doctor` says which server this one replicates from)"),
    "galera_node_not_ready": lambda: ("point emfix at a node that is Synced in the Primary component "
                                      "(`emfix doctor` shows a node's state)"),
    "transaction_too_large": lambda galera_limit: (
        "%s: run it again with a smaller --batch-size (`emfix doctor` shows the limits); nothing of that batch was "
        "written" % ("a Galera node refuses a transaction over " + GALERA_LIMIT if galera_limit
                     else "on a Galera node this is most often a batch over " + GALERA_LIMIT)),
}


def hint_for(error):
    """The `hint:` a user sees for an EmfixError: the command to run for what happened (its kind), then
    the library's own hint; None when there is neither."""
    wording = HINTS.get(getattr(error, "kind", None))
    parts = [wording(**error.facts) if wording else None, error.hint]
    return "; ".join(p for p in parts if p) or None

# -- the grammar shared by every command ----------------------------------------------------------


class Parser(argparse.ArgumentParser):
    """No abbreviations (`--pass` must never become `--password-file`); errors are UsageError."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise UsageError(message, hint="see `%s --help`" % self.prog)


def formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def command(sub, name, help_text, example, **kwargs):
    """A command's parser with its help and a pasteable example; `aliases=[...]` for its other names."""
    return sub.add_parser(name, help=help_text, description=help_text, formatter_class=formatter,
                          epilog="Example:\n  " + example, **kwargs)


PASSWORD_HELP = ("the old tool's flag: works, but other users can read it in the process list; prefer "
                 "--password-file, %s or ~/.my.cnf" % PASSWORD_ENV)
SKIP_TABLES_HELP = "leave these tables' rows out (tables DST lacks that are not the Experiment Manager's)"
FORCE_HELP = "work on a database that is not recognised as the Experiment Manager's (refused without)"
WRITE_FORCE_HELP = ("work on a database that is not recognised as the Experiment Manager's, or write to a MySQL "
                    "replica (both refused without)")
REPLICA_FORCE_HELP = "write to a MySQL server that is a replica or read_only (refused without: run it on the primary)"


def add_output_options(parser):
    group = parser.add_argument_group("output")
    group.add_argument("--json", action="store_true", help="machine-readable result on stdout")
    group.add_argument("-v", "--verbose", action="count", default=0, help="more detail on stderr (-vv: debug)")
    group.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    group.add_argument("--progress", action="store_true",
                       help="progress on stderr even when it is not a terminal (a line every 5 s, for logs)")


def finish(parser, handler):
    """What every command ends with: the output options, and the handler its arguments go to."""
    add_output_options(parser)
    parser.set_defaults(func=handler)


def add_database_options(parser, positional=True):
    if positional:
        parser.add_argument("db", nargs="?", metavar="DB",
                            help="SQLite file, sqlite:///path, or mysql://user@host:port/dbname")
    group = parser.add_argument_group("database (the cookbook's flags work too)")
    group.add_argument("-d", "--database", metavar="DB", help="same as DB; with --mysql, the database name")
    group.add_argument("--mysql", action="store_true", help="DB is a MySQL database name on --host")
    group.add_argument("--sqlite", action="store_true", help="DB is a SQLite file (the default; the old tool's flag)")
    group.add_argument("--host", help="MySQL host (with --mysql)")
    group.add_argument("--port", type=port, help="MySQL port (with --mysql)")
    group.add_argument("--user", help="MySQL user (with --mysql)")
    group.add_argument("--password-file", metavar="FILE",
                       help="read the MySQL password from FILE (or set %s, or use ~/.my.cnf)" % PASSWORD_ENV)
    group.add_argument("--password", metavar="TEXT", help=PASSWORD_HELP)
    group.add_argument("--defaults-file", metavar="FILE", help="MySQL option file to read instead of ~/.my.cnf")
    add_lock_timeout(group)


def add_lock_timeout(parser):
    parser.add_argument("--lock-timeout", type=seconds, default=30.0, metavar="SECONDS",
                        help="keep retrying a locked or unreachable database this long (default 30)")


def add_repair_options(parser, batch_default, batch_help, force_help=WRITE_FORCE_HELP):
    """The options every repair shares: a plan first, a question, a snapshot, a quarantine, batches."""
    parser.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    parser.add_argument("--batch-size", type=positive_int, default=batch_default, metavar="N", help=batch_help)
    parser.add_argument("--no-snapshot", action="store_true", help="skip the verified snapshot taken first")
    parser.add_argument("--snapshot-dir", metavar="DIR", help="where the snapshot goes (default: snapshots/ beside a "
                        "SQLite file; for MySQL, ~/.local/state/emfix/mysql/HOST_PORT/DB/snapshots)")
    parser.add_argument("--quarantine-dir", metavar="DIR",
                        help="where what it removes or rewrites is kept (default: quarantine/ beside a SQLite file; "
                             "for MySQL, ~/.local/state/emfix/mysql/HOST_PORT/DB/quarantine)")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--force", action="store_true", help=force_help)


# -- from arguments to an address ---------------------------------------------------------------------

PASSWORD_WARNING = ("warning: --password puts the password where other users can read it (the process list, shell "
                    "history); use --password-file FILE, EMFIX_MYSQL_PASSWORD or ~/.my.cnf instead\n")


def password_flag(args):
    password = getattr(args, "password", None)
    if password is not None and not getattr(args, "_password_warned", False):
        args._password_warned = True
        sys.stderr.write(PASSWORD_WARNING)
    return password


def known(address):
    """An address the command was given, its password registered so that no message, report or traceback
    file shows it (address.hide_secrets): every address a command parses passes through here."""
    if address is not None:
        remember_secret(address.password)
    return address


def address_from_text(text, password_file=None, defaults_file=None, password=None):
    """parse_address for what the user typed, the password registered (known)."""
    return known(parse_address(text, password_file, defaults_file, password=password))


def address_from_flags(database, host=None, port=None, user=None, password_file=None, defaults_file=None,
                       password=None):
    """mysql_address_from_flags (`--mysql -d NAME --host ...`), the password registered (known)."""
    return known(mysql_address_from_flags(database, host, port, user, password_file, defaults_file,
                                          password=password))


def resolve_address(args):
    db = getattr(args, "db", None) or getattr(args, "database_after_ids", None)
    flag = getattr(args, "database", None)
    if db and flag and db != flag:
        raise UsageError("two databases given (%s and -d %s)" % (db, flag), hint="give DB or -d, not both")
    target = db or flag
    password = password_flag(args)
    if getattr(args, "mysql", False) and getattr(args, "sqlite", False):
        raise UsageError("--sqlite and --mysql together", hint="give one: the database is one or the other")
    if getattr(args, "mysql", False):
        return address_from_flags(target, args.host, args.port, args.user, args.password_file, args.defaults_file,
                                  password=password)
    if target is None:
        raise UsageError("no database given", hint="pass a SQLite file path or mysql://user@host:port/dbname")
    if args.host or args.port or args.user:
        if not str(target).startswith(("mysql:", "mariadb:")):
            raise UsageError("--host/--port/--user need --mysql", hint="add --mysql, or use a mysql:// URL")
        raise UsageError("--host/--port/--user given beside a mysql:// URL", hint="put them in the URL, or use --mysql "
                         "-d NAME with the flags; not both")
    return address_from_text(target, args.password_file, args.defaults_file, password=password)


def address_of(text, args):
    """A positional SRC or DST (migrate) with the password options that apply to both."""
    return address_from_text(text, args.password_file, password=password_flag(args))


def retry_policy(args):
    from ..retry import RetryPolicy
    return RetryPolicy(deadline=max(0.0, getattr(args, "lock_timeout", 30.0)))


def refuse_replica(args, address, restoring=False):
    """The write gate (emfix.writegate), before a command that writes takes a snapshot or opens a quarantine:
    a MySQL replica is refused unless --force, a server that refuses this user's writes always; a database a
    restore left partly restored unless --force, or `restoring` (a restore finishes it)."""
    from ..writegate import check_before_writing
    check_before_writing(address, bool(getattr(args, "force", False)), retry_policy(args), restoring,
                         can_force=hasattr(args, "force"))


def writing_address(args):
    """The database a writing command works on, past the write gate (refuse_replica) unless --dry-run,
    which writes nothing."""
    address = resolve_address(args)
    if not args.dry_run:
        refuse_replica(args, address)
    return address


def ask_first(args, question, describe=None):
    """The confirm() a writing command hands its library call: none with --yes or --dry-run."""
    return None if args.yes or args.dry_run else confirm(question, describe)


RECREATE_PARENTS_HELP = "create missing RESULTS/EPOCH rows under existing runs instead of removing their links"


def add_reset_unfixable(parser, what="values"):
    parser.add_argument("--reset-unfixable", action="store_true",
                        help="set %s that cannot be repaired to {} (the originals are kept in the quarantine)" % what)


def open_from_args(args, readonly=False, create=False):
    from ..backends import open_database
    return open_database(resolve_address(args), readonly=readonly, create=create, retry_policy=retry_policy(args))


# -- output ---------------------------------------------------------------------------------------------

def write_stdout(text):
    """Write to stdout; once the reader has gone (`| head`), the rest is dropped quietly and the
    command still returns its own exit code (a closed pipe never turns a FAIL into 0)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()
    except OSError as exc:  # `> /dev/full`
        from ..fileutil import stdout_error
        silence_stdout()  # (or Python's flush at exit fails again, and says so)
        raise stdout_error(exc) from None


def silence_stdout():
    devnull = os.open(os.devnull, os.O_WRONLY)  # keep Python from complaining while flushing at exit
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def emit_json(value):
    write_stdout(json.dumps(to_jsonable(value), indent=2, allow_nan=False, default=str) + "\n")


class Output:
    """Where a handler writes: text for people unless --json or -q says otherwise."""

    def __init__(self, args):
        self.json = getattr(args, "json", False)
        self.quiet = getattr(args, "quiet", False)

    def text(self, line=""):
        if not self.json and not self.quiet:
            write_stdout(line + "\n")

    def lines(self, lines):
        for line in lines:
            self.text(line)

    def result(self, value, render, *render_args):
        """A command's result: as JSON with --json, else the lines render(value, *render_args) gives."""
        if self.json:
            emit_json(value)
        else:
            self.lines(render(value, *render_args))


def make_progress(label, args, out):
    """On a terminal unless --json or -q; --progress forces it on (whole lines) for logs; -q always wins."""
    from ..progress import Progress
    if out.quiet:
        return Progress(label, enabled=False)
    if getattr(args, "progress", False):
        return Progress(label, enabled=True)
    return Progress(label, enabled=None if not out.json else False)


def protected_paths(address):
    return [address.path] if address is not None and address.is_sqlite else []


# -- questions and Ctrl-C ---------------------------------------------------------------------------------

class StopFlag:
    """First Ctrl-C (or SIGTERM) asks the running repair to stop between batches; a second one aborts."""

    def __init__(self):
        self.raised = False

    def __call__(self):
        return self.raised

    def install(self):
        from ..retry import STOP_WAITING
        STOP_WAITING.clear()

        def handler(signum, _frame):
            if self.raised:  # the second: at once, as SIGTERM (143) or Ctrl-C (130) says
                stop = Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
                stop.after_stop = True  # the batches before it are committed: the message says so
                raise stop
            self.raised = True
            STOP_WAITING.set()  # a wait for a lock stops now, not at --lock-timeout
            sys.stderr.write("\nstopping after this batch (%s again to abort now)\n" % (
                "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"))  # (round 48: a SIGTERM was told "Ctrl-C")
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
        return self


def confirm(question, describe=None, without_terminal="run with --dry-run to see the plan, then with --yes"):
    """A yes/no question on the terminal (shown after `describe(plan)`'s lines); never without one."""
    def ask(plan):
        if not sys.stdin.isatty():
            raise UsageError("this changes the database and stdin is not a terminal", hint=without_terminal)
        for line in describe(plan) if describe else ():
            sys.stderr.write(line + "\n")
        sys.stderr.write("%s [y/N] " % question(plan))
        sys.stderr.flush()
        return sys.stdin.readline().strip().lower() in ("y", "yes")
    return ask


def invocation():
    """How to run emfix again the way it was started now: the .pyz by its path, the installed `emfix`, or
    `python3 -m emfix` (with PYTHONPATH when the package is only importable from here)."""
    import shlex
    started = sys.argv[0] if sys.argv else ""
    if started.endswith(".pyz") or (os.path.isfile(started) and not started.endswith(".py")
                                    and os.path.basename(started) != "emfix"):
        return "python3 %s" % shlex.quote(os.path.abspath(started))
    if os.path.basename(started) == "emfix":
        return "emfix"
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if "site-packages" in package_root or "dist-packages" in package_root:  # installed: importable anywhere
        return "python3 -m emfix"
    return "PYTHONPATH=%s python3 -m emfix" % shlex.quote(package_root)


def example_keys(rows):
    """`id 13, 16, 17` for a one-column key; `(trial_run_id=13, artifact_id=57), ...` for a longer one."""
    if not rows:
        return ""
    if len(rows[0]) == 1:
        column = next(iter(rows[0]))
        return "%s %s" % (column, ", ".join(str(r[column]) for r in rows))
    return ", ".join("(%s)" % ", ".join("%s=%s" % kv for kv in r.items()) for r in rows)


def n(value):
    """A count for people: 1,234,567."""
    return "{:,}".format(value)


# -- report files ---------------------------------------------------------------------------------------

def write_report(path, text, protect=(), exclusive=False, force=False, replaceable=None):
    """A report or plan file through the output guard (never over a database, snapshot or quarantine; an
    existing file only with `force` or when `replaceable` says emfix wrote it), written whole or not at
    all. exclusive: an existing file is left alone whatever `force` says (an error says so)."""
    from ..errors import NotWritableError
    from ..fileutil import durable_output
    from ..outputguard import check_output_path
    if exclusive and os.path.lexists(path):
        raise UsageError("%s already exists; it was left as it is" % path, hint="give -o another file name")
    real, in_place = check_output_path(path, protect, force=force, replaceable=replaceable)
    try:
        with durable_output(real, in_place=in_place) as handle:
            handle.write(text)
    except OSError as exc:
        raise NotWritableError("cannot write %s: %s" % (path, exc.strerror or exc),
                               hint="check that the directory exists and is writable") from None
    return path


def open_report(path, out):
    """--open-html: a browser where there is one; on a server without, say where the file is, nothing else."""
    from ..report_html import open_in_browser
    if open_in_browser(path):
        out.text("opened %s in a browser" % path)
    else:
        sys.stderr.write("no browser to open here (no display); the report is %s\n" % os.path.abspath(path))


def staying_lines(unkeyed, held, left_behind=None):
    """The doomed rows a cleanup or repair leaves where they are, and why: {table: rows} each."""
    def total(counts):
        return n(sum(counts.values()))

    def each(counts):
        return ", ".join("%s %s" % (t, n(c)) for t, c in counts.items())
    lines = []
    if left_behind:
        lines.append("warning: --tables leaves %s doomed rows in other tables (%s): add those tables to --tables, or "
                     "drop --tables" % (total(left_behind), each(left_behind)))
    if unkeyed:
        lines.append("warning: %s orphaned rows stay in tables without a primary key (%s): emfix cannot remove them "
                     "row by row on MySQL; add a primary key, or remove them by hand" % (total(unkeyed), each(unkeyed)))
    if held:
        lines.append("kept: %s doomed rows that those rows point at (%s): removing them would break their keys" % (
            total(held), each(held)))
    return lines
