"""The command line: parse arguments, call the library, render the result, map errors to exit codes."""

import dataclasses
import json
import logging
import os
import signal
import sys

from . import history
from .address import hide_secrets, mysql_address_from_flags, parse_address, remember_secret
from .backends import open_database
from .cliargs import SNAPSHOT_ACTIONS, SNAPSHOT_ALIASES, build_parser
from .errors import EXIT_DAMAGED, EXIT_OK, EXIT_PROBLEMS, DamagedInputError, EmfixError, UsageError
from .retry import RetryPolicy

# -- shared plumbing for command handlers -------------------------------------------------------

def resolve_address(args):
    db = getattr(args, "db", None)
    flag = getattr(args, "database", None)
    if db and flag and db != flag:
        raise UsageError("two databases given (%s and -d %s)" % (db, flag), hint="give DB or -d, not both")
    target = db or flag
    password = _password_flag(args)
    if getattr(args, "mysql", False):
        return mysql_address_from_flags(target, args.host, args.port, args.user,
                                        args.password_file, args.defaults_file, password=password)
    if target is None:
        raise UsageError("no database given", hint="pass a SQLite file path or mysql://user@host:port/dbname")
    if args.host or args.port or args.user:
        if not str(target).startswith(("mysql:", "mariadb:")):
            raise UsageError("--host/--port/--user need --mysql", hint="add --mysql, or use a mysql:// URL")
    if str(target).startswith(("mysql:", "mariadb:")) and (args.host or args.port or args.user):
        raise UsageError("--host/--port/--user given beside a mysql:// URL", hint="put them in the URL, or use --mysql "
                         "-d NAME with the flags; not both")
    return parse_address(target, args.password_file, args.defaults_file, password=password)


PASSWORD_WARNING = ("warning: --password puts the password where other users can read it (the process list, shell "
                    "history); use --password-file FILE, EMFIX_MYSQL_PASSWORD or ~/.my.cnf instead\n")


def _password_flag(args):
    password = getattr(args, "password", None)
    if password is not None and not getattr(args, "_password_warned", False):
        args._password_warned = True
        sys.stderr.write(PASSWORD_WARNING)
    return password


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


def write_stdout(text):
    """Write to stdout; once the reader has gone (`| head`), the rest is dropped quietly and the
    command still returns its own exit code (a closed pipe never turns a FAIL into 0)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()


def _silence_stdout():
    devnull = os.open(os.devnull, os.O_WRONLY)  # keep Python from complaining while flushing at exit
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def emit_json(value, out=None):
    if out is not None:
        json.dump(to_jsonable(value), out, indent=2, allow_nan=False, default=str)
        out.write("\n")
        return
    write_stdout(json.dumps(to_jsonable(value), indent=2, allow_nan=False, default=str) + "\n")


class Output:
    """Where a handler writes: text for people unless --json or -q says otherwise."""

    def __init__(self, args):
        self.json = getattr(args, "json", False)
        self.quiet = getattr(args, "quiet", False)

    def text(self, line=""):
        if not self.json and not self.quiet:
            write_stdout(line + "\n")


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
    return address.target()


def write_report(path, data, address=None):
    """Write a JSON report next to its final name, then rename: a reader never sees half a file, and
    the database, a snapshot or a device is never replaced by it."""
    from .fileutil import check_output_path, durable_output
    protect = [address.path] if address is not None and address.is_sqlite else []
    real, in_place = check_output_path(path, protect)
    try:
        with durable_output(real, in_place=in_place) as handle:
            handle.write(json.dumps(to_jsonable(data), indent=2, allow_nan=False, default=str) + "\n")
    except OSError as exc:
        raise UsageError("cannot write report %s: %s" % (path, exc.strerror or exc),
                         hint="check that the directory exists and is writable") from None


def cmd_validate(args, out):
    from .render import validation_lines
    from .validate import validate
    address = resolve_address(args)
    if args.output:  # a wrong -o is said before the work, not after it
        from .fileutil import check_output_path
        check_output_path(args.output, [address.path] if address.is_sqlite else [])
    progress = make_progress("validate", args, out)
    report = validate(address, limit=args.limit, experiment=args.experiment, retry_policy=retry_policy(args),
                      progress=progress, parallel=args.jobs > 1, deep_json=args.deep_json, force=args.force)
    data = report.to_dict()
    history.record(address, "validate", report.status, violations=report.total_violations,
                   json_issues=report.json.issue_count)
    if args.output:
        write_report(args.output, data, address)
    if out.json:
        emit_json(data)
    else:
        for line in validation_lines(report, command_target(address), "emfix", HANDLERS):
            out.text(line)
        if args.output:
            out.text("report written to %s" % args.output)
    if args.experiment is not None:  # "is experiment 12 intact?": answered for that experiment alone
        return EXIT_OK if report.hierarchy.exists and not report.hierarchy.breaks else EXIT_PROBLEMS
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
    if action == "verify" and not args.snapshot_id and not args.all and args.snapshot_dir and args.db \
            and not args.database:
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
        found = snapshot.list_snapshots(directory, address)
        if out.json:
            emit_json({"directory": directory, "snapshots": [s.to_dict() for s in found]})
        else:
            for line in snapshot_lines(found, directory):
                out.text(line)
        return EXIT_OK
    if action == "verify":
        if not args.all and not args.snapshot_id:
            raise UsageError("verify needs a snapshot id or --all", hint="see `emfix snapshot list`")
        ids = [s.id for s in snapshot.list_snapshots(directory, address)] if args.all else [args.snapshot_id]
        results = [snapshot.verify_snapshot(directory, i, full=args.full, address=address) for i in ids]
        if out.json:
            emit_json({"directory": directory, "snapshots": [r.to_dict() for r in results]})
        else:
            for r in results:
                out.text("%-34s %-10s %s" % (r.id, r.status, r.problem))
            if not results:
                out.text("no snapshots in %s" % directory)
        return EXIT_OK if all(r.status == "verified" for r in results) else EXIT_DAMAGED
    if action == "restore":
        chosen = snapshot.resolve_snapshot_id(directory, args.snapshot_id or "latest-valid", address)
        if not out.quiet:
            sys.stderr.write("restoring snapshot %s into %s\n" % (chosen, address.display()))
        result = snapshot.restore_snapshot(address, directory, chosen, not args.no_safety_snapshot,
                                           retry_policy(args), progress,
                                           allow_other_database=args.from_other_database)
        if out.json:
            emit_json(result)
        else:
            out.text("restored snapshot %s into %s (%s rows, %s)" % (
                result.snapshot_id, address.display(), "{:,}".format(sum(result.tables.values())), result.method))
            if result.safety_snapshot_id:
                out.text("the content from before is in snapshot %s" % result.safety_snapshot_id)
        return EXIT_OK
    older = snapshot.parse_age(args.older_than) if args.older_than else None
    result = snapshot.prune_snapshots(directory, args.keep, older, args.dry_run, address=address)
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


def _confirm(question, describe=None):
    def ask(plan):
        if not sys.stdin.isatty():
            raise UsageError("this changes the database and stdin is not a terminal",
                             hint="run with --dry-run to see the plan, then with --yes")
        for line in describe(plan) if describe else ():
            sys.stderr.write(line + "\n")
        sys.stderr.write("%s [y/N] " % question(plan))
        sys.stderr.flush()
        return sys.stdin.readline().strip().lower() in ("y", "yes")
    return ask


def cmd_cleanup(args, out):
    from .cleanup import cleanup_orphans
    from .render import cleanup_lines, cleanup_plan_lines
    address = resolve_address(args)
    confirm = None if args.yes or args.dry_run else _confirm(
        lambda plan: "remove %s rows from %s (each kept in a quarantine file)?" % (
            "{:,}".format(plan.total), address.display()), cleanup_plan_lines)
    tables = _table_list(args.tables)
    result = cleanup_orphans(
        address, dry_run=args.dry_run, batch_size=args.batch_size, sleep=args.sleep, max_lock_ms=args.max_lock_ms,
        tables=tables, include_unreferenced=args.include_unreferenced, recreate_parents=args.recreate_parents,
        snapshot=not args.no_snapshot, snapshot_dir=args.snapshot_dir, quarantine_dir=args.quarantine_dir,
        retry_policy=retry_policy(args), progress=make_progress("cleanup", args, out),
        confirm=confirm, interrupted=_StopFlag().install(), force=args.force)
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


def _table_list(text):
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


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
                      _StopFlag().install(), force=args.force)
    if out.json:
        emit_json(result)
    else:
        for line in fix_json_lines(result, command_target(address)):
            out.text(line)
    if not result.dry_run:
        history.record(address, "fix-json", "done", summary="%d repaired, %d unrepairable" % (
            result.repaired, result.unrepairable), quarantine=result.quarantine)
    if result.dry_run:
        return EXIT_OK  # a plan is not a failure (as cleanup --dry-run)
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
                         make_progress("import", args, out), args.resume, args.force, _StopFlag().install(),
                         skip_tables=_table_list(args.skip_tables))
    if out.json:
        emit_json(result)
    else:
        out.text("imported %s rows into %s as experiment %d (%.1f s)%s" % (
            "{:,}".format(sum(result.counts.values())), address.display(), result.experiment_id, result.seconds,
            " (resumed)" if result.resumed else ""))
    return EXIT_OK


def cmd_migrate(args, out):
    from .migrate import migrate_experiment
    from .render import migrate_check_lines
    source = parse_address(args.source, args.password_file, password=_password_flag(args))
    target = parse_address(args.target, args.password_file, password=_password_flag(args))
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
            make_progress("migrate", args, out), stop, args.snapshot_dir, args.max_memory,
            skip_tables=_table_list(args.skip_tables))
        results.append(result)
        history.record(target, "migrate", "done" if result.verified else "DIFFERS", summary="experiment %d -> %s" % (
            result.experiment_id, "{:,} rows".format(sum(result.copied.values()))))
        if not out.json:
            out.text("experiment %d -> %d in %s: %s rows in %.1f s%s" % (
                result.experiment_id, result.new_experiment_id, target.display(),
                "{:,}".format(sum(result.copied.values())), result.seconds, " (resumed)" if result.resumed else ""))
            for line in migrate_check_lines(result.verify):
                out.text(line)
    if out.json:
        emit_json(results)
    if not all(r.verified for r in results):
        raise DamagedInputError("the copy differs from the source (see the table above)",
                                hint="the snapshot of DST taken first holds its content from before")
    return EXIT_OK


def cmd_undo(args, out):
    from .undo import undo
    address = resolve_address(args) if (args.database or args.mysql) else None
    result = undo(args.quarantine, address, retry_policy(args))
    if out.json:
        emit_json(result)
    else:
        out.text("put back %s rows or values into %s from %s" % ("{:,}".format(sum(result.restored.values())),
                                                      result.database, result.quarantine))
        if result.removed_created:
            out.text("removed %d parent rows the repair had created" % result.removed_created)
    if result.not_restored:
        sys.stderr.write("error: %s rows could not be put back: their key now holds a different row (%s); they stay "
                         "in %s\n" % ("{:,}".format(sum(result.not_restored.values())), ", ".join(
                             "%s %d" % kv for kv in sorted(result.not_restored.items())), result.quarantine))
        sys.stderr.write("hint: `emfix undo %s --json` lists them with the row that holds each key now\n"
                         % result.quarantine)
        return EXIT_PROBLEMS
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
        if out.quiet:  # -q prints only errors: not reaching the database is one
            failed = next((f for f in report.findings if f.level == "FAIL"), None)
            sys.stderr.write("error: %s\n" % hide_secrets(failed.message if failed else "cannot open the database"))
        return report.exit_code
    return EXIT_PROBLEMS if report.status == "FAIL" else EXIT_OK


def cmd_optimize(args, out):
    from .optimize import optimize
    from .render import optimize_lines
    address = resolve_address(args)
    result = optimize(address, args.dry_run, args.vacuum, not args.no_timing, retry_policy(args),
                      make_progress("optimize", args, out), force=args.force)
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
    sys.stderr.write("error: %s\n" % hide_secrets(exc.message))
    if exc.hint:
        sys.stderr.write("hint: %s\n" % hide_secrets(exc.hint))


VALUE_OPTIONS = ("--older-than",)


def _glue_negative_values(argv):
    """`--older-than -1d` as `--older-than=-1d`: argparse would take `-1d` for an option, and say so
    ("expected one argument") instead of what is wrong with the value."""
    out, skip = [], False
    for n, token in enumerate(argv):
        if skip:
            skip = False
            continue
        if token in VALUE_OPTIONS and n + 1 < len(argv) and argv[n + 1].startswith("-"):
            out.append("%s=%s" % (token, argv[n + 1]))
            skip = True
        else:
            out.append(token)
    return out


def _secrets_on_argv(argv):
    """Passwords given on the command line (--password X, --password=X, a URL's user:password@)."""
    found = []
    for n, token in enumerate(argv):
        name = token.split("=", 1)[0]
        if name.startswith("--pass") and "--password".startswith(name):  # not --password-file (a path)
            if "=" in token:
                found.append(token.split("=", 1)[1])
            elif n + 1 < len(argv):
                found.append(argv[n + 1])  # --password X, or a mistyped --pass X: kept out of every message
        if "://" in token and "@" in token:
            masked = hide_secrets(token)
            if masked != token:
                found.append(token[token.index(":", token.index("://") + 3) + 1:token.rindex("@")])
    return [f for f in found if f]


def hide_from_process_list(secrets):
    """Overwrite the passwords in this process's own argv (what `ps` and /proc/PID/cmdline show), as the
    mysql client does. Linux only, best effort: the bytes live between arg_start and arg_end."""
    try:
        with open("/proc/self/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end (fields 48 and 49 of stat)
        with open("/proc/self/mem", "r+b", buffering=0) as mem:
            mem.seek(start)
            raw = mem.read(end - start)
            scrubbed = raw
            for secret in secrets:
                encoded = secret.encode(sys.getfilesystemencoding(), "surrogateescape")
                scrubbed = scrubbed.replace(encoded, b"x" * len(encoded))
            if scrubbed != raw:
                mem.seek(start)
                mem.write(scrubbed)
    except (OSError, ValueError, IndexError):
        pass


def main(argv=None):
    if hasattr(signal, "SIGXFSZ"):  # over a file-size limit, let the write fail with EFBIG, not kill us
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    parser = build_parser()
    secrets = _secrets_on_argv(sys.argv[1:] if argv is None else list(argv))
    for secret in secrets:
        remember_secret(secret)
    if secrets and argv is None:
        hide_from_process_list(secrets)
    try:
        args = parser.parse_args(_glue_negative_values(sys.argv[1:] if argv is None else list(argv)))
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
        _silence_stdout()
        sys.stderr.write("error: the output was closed before everything was written\n")
        return EXIT_PROBLEMS


def run():
    """Entry point for zipapp's generated __main__ (which ignores a return value): exit with main's code."""
    sys.exit(main())
