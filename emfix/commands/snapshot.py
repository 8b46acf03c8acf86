"""emfix snapshot create|list|verify|restore|prune, and the cookbook's create-snapshot, list-snapshots,
verify-snapshot and restore-snapshot."""

import argparse
import os
import sys

from ..errors import EXIT_DAMAGED, EXIT_OK, Cancelled, NotFoundError, UsageError
from . import common
from .common import n

ACTIONS = {
    "create": ("write a consistent, checksummed snapshot (SQLite: online backup; MySQL: exact SQL text read in one "
               "moment over --connections)",
               "emfix snapshot create experiment.db --description 'before cleanup' --verify"),
    "list": ("list snapshots with their status (verified, unverified, damaged, missing, incomplete)",
             "emfix snapshot list experiment.db"),
    "verify": ("check snapshots against their manifests: size, SHA-256, quick_check, row counts (exit 4 if damaged)",
               "emfix snapshot verify experiment.db --all"),
    "restore": ("verify a snapshot, keep a safety snapshot of the current content, then restore it (SQLite: at once; "
                "MySQL: table by table, refused first if its rows would not fit)",
                "emfix snapshot restore experiment.db --snapshot-id latest-valid"),
    "prune": ("delete old snapshots; the newest verified one is always kept",
              "emfix snapshot prune experiment.db --keep 10 --older-than 30d"),
}
COOKBOOK_NAMES = {"create-snapshot": "create", "list-snapshots": "list", "verify-snapshot": "verify",
                  "restore-snapshot": "restore"}


def register(sub):
    group = common.command(sub, "snapshot", "create, list, verify, restore and prune snapshots",
                    "emfix snapshot create experiment.db --verify && emfix snapshot list experiment.db")
    actions = group.add_subparsers(dest="action", metavar="ACTION", parser_class=type(group))
    for action, (help_text, example) in ACTIONS.items():
        _add_options(common.command(actions, action, help_text, example), action)
    group.set_defaults(func=run)
    for name, action in COOKBOOK_NAMES.items():
        help_text, example = ACTIONS[action]
        p = common.command(sub, name, "the cookbook's name for `snapshot %s`: %s" % (action, help_text),
                    example.replace("snapshot " + action, name))
        _add_options(p, action)
        p.set_defaults(func=run, action=action)


def _add_options(parser, action):
    common.add_database_options(parser)
    parser.add_argument("--snapshot-dir", metavar="DIR",
                        help="where snapshots live (default: snapshots/ beside a SQLite file; for MySQL, "
                             "~/.local/state/emfix/mysql/HOST_PORT/DB/snapshots)")
    if action == "create":
        parser.add_argument("--description", default="", type=common.utf8_text, help="a note stored in the manifest")
        parser.add_argument("--verify", action="store_true", help="verify the snapshot right after writing it")
        parser.add_argument("--format", choices=("sql", "sqlite"), default=None, dest="file_format",
                            help="MySQL only: SQL text that `mysql DB < file` also loads (default, fast), or a "
                                 "SQLite file that opens anywhere (slower)")
        parser.add_argument("--connections", type=readers, default=None, metavar="N",
                            help="MySQL: read this many key ranges at once, in one moment (default 4, at most 32; "
                                 "fewer where the server allows this user fewer connections)")
    elif action == "verify":
        parser.add_argument("snapshot_id", nargs="?", metavar="ID", help="the snapshot to check (or --all)")
        parser.add_argument("--all", action="store_true", help="check every snapshot")
        parser.add_argument("--full", action="store_true", help="PRAGMA integrity_check instead of quick_check; "
                            "a MySQL SQL snapshot: every row read and counted, not only each INSERT's last")
    elif action == "restore":
        parser.add_argument("--snapshot-id", dest="snapshot_id", type=snapshot_id, default=None, metavar="ID",
                            help="the snapshot to restore, or latest-valid (default)")
        parser.add_argument("--no-safety-snapshot", action="store_true",
                            help="do not snapshot the current content first")
        parser.add_argument("--from-other-database", action="store_true",
                            help="restore a snapshot taken of another database (refused without this)")
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation (needed without a "
                            "terminal)")
        parser.add_argument("--force", action="store_true", help=common.REPLICA_FORCE_HELP)
    elif action == "prune":
        parser.add_argument("--keep", type=common.non_negative_int, metavar="N", help="keep the N newest snapshots")
        parser.add_argument("--older-than", metavar="AGE", help="delete snapshots older than AGE (30d, 12h, 90m)")
        parser.add_argument("--dry-run", action="store_true", help="show what would be deleted")
    common.add_output_options(parser)


def snapshot_id(text):
    """--snapshot-id: not empty (an unset shell variable is not latest-valid: a restore replaces the content)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty snapshot id: give one (see `emfix snapshot list`) or latest-valid")
    return text


def readers(text):
    """--connections: 1 to MAX_READERS (more asks the server for its every connection)."""
    from ..snapshot.sqltext import MAX_READERS
    return common.whole_number(text, 1, MAX_READERS, "it")


def _where(args):
    """(snapshot folder, database address or None: a folder alone lists and verifies what is in it)."""
    from .. import snapshot
    if args.snapshot_dir and not (args.db or args.database):
        return args.snapshot_dir, None
    address = common.resolve_address(args)
    return args.snapshot_dir or snapshot.default_snapshot_dir(address), address


def run(args, out):
    action = getattr(args, "action", None)
    if action is None:
        raise UsageError("snapshot needs an action: %s" % ", ".join(ACTIONS),
                         hint="e.g. emfix snapshot create experiment.db")
    if action == "verify" and not args.snapshot_id and not args.all and args.db and (
            args.database or args.snapshot_dir) and not ("://" in args.db or os.path.isfile(args.db)):
        # `verify -d DB ID` (the old tool's form) or `verify --snapshot-dir DIR ID`: the positional is the id
        args.snapshot_id, args.db = args.db, None
    directory, address = _where(args)
    if action in ("create", "restore") and address is None:
        raise UsageError("snapshot %s needs the database" % action, hint="pass DB as well as --snapshot-dir")
    if action in ("list", "verify", "prune"):
        _refuse_a_mistyped_database(directory, address)
    return {"create": _create, "list": _list, "verify": _verify, "restore": _restore,
            "prune": _prune}[action](args, out, directory, address)


def _refuse_a_mistyped_database(directory, address):
    """A SQLite file that does not exist, with no snapshot of it beside: a typo, which `verify --all` passed (exit 0,
    "no snapshots") beside the damaged snapshots of the database meant (round 54). Its snapshots alone, the file
    gone, are listed and verified as ever: that is when a restore is wanted."""
    from .. import snapshot
    if address is None or not address.is_sqlite or os.path.exists(address.path):
        return
    if snapshot.list_snapshots(directory, address):
        return
    others = sorted({os.path.basename(s.manifest.source.get("path") or "") for s in snapshot.list_snapshots(directory)
                     if s.manifest is not None and isinstance(s.manifest.source, dict)} - {""})
    raise NotFoundError("%s does not exist, and %s holds no snapshot of it" % (address.path, directory),
                        hint="check the path%s" % ("; the snapshots there are of %s" % ", ".join(others[:5])
                                                   if others else ""))


def _create(args, out, directory, address):
    from .. import snapshot
    if args.file_format and address.is_sqlite and args.file_format != "sqlite":
        raise UsageError("--format sql is for MySQL databases; a SQLite database is snapshot as a SQLite file",
                         hint="drop --format")
    manifest = snapshot.create_snapshot(address, directory, description=args.description, verify=args.verify,
                                        retry_policy=common.retry_policy(args), file_format=args.file_format,
                                        workers=args.connections,
                                        progress=common.make_progress("snapshot", args, out))
    if out.json:
        common.emit_json(dict(manifest.to_dict(), directory=directory))
        return EXIT_OK
    out.text("snapshot %s: %s rows in %d tables, %.1f MB, sha256 %s%s" % (
        manifest.id, n(manifest.row_total), len(manifest.tables), manifest.size / 1e6, manifest.sha256[:16],
        ", verified" if manifest.verified_at else ""))
    if manifest.position:
        out.text("  binary log position: %s" % position_text(manifest.position))
    if manifest.not_in_moment:
        out.text("  not one moment: %s" % outside_text(manifest.not_in_moment))
    out.text("  in %s" % directory)
    return EXIT_OK


def _list(_args, out, directory, address):
    from .. import snapshot
    found = snapshot.list_snapshots(directory, address)
    if out.json:
        common.emit_json({"directory": directory, "snapshots": [s.to_dict() for s in found]})
    else:
        out.lines(snapshot_lines(found, directory))
    return EXIT_OK


def _verify(args, out, directory, address):
    from .. import snapshot
    if not args.all and not args.snapshot_id:
        raise UsageError("verify needs a snapshot id or --all", hint="see `emfix snapshot list`")
    ids = [s.id for s in snapshot.list_snapshots(directory, address)] if args.all else [
        snapshot.require_snapshot(directory, args.snapshot_id)]
    results = [snapshot.verify_snapshot(directory, i, full=args.full, address=address) for i in ids]
    if out.json:
        common.emit_json({"directory": directory, "snapshots": [r.to_dict() for r in results]})
    else:
        out.lines("%-34s %-10s %s" % (r.id, r.status, r.problem) for r in results)
        if not results:
            out.text("no snapshots in %s" % directory)
    return EXIT_OK if all(r.status == "verified" for r in results) else EXIT_DAMAGED


def _restore(args, out, directory, address):
    from .. import snapshot
    from ..backends.sqlite import refuse_what_is_no_file
    if address.is_sqlite:  # said first: not "no valid snapshot of DIR" (round 32)
        refuse_what_is_no_file(address.path)
    common.refuse_replica(args, address, restoring=True)  # before the safety snapshot, and before any question
    chosen = snapshot.resolve_snapshot_id(directory, args.snapshot_id or "latest-valid", address)  # (never empty)
    if not args.yes:  # it replaces the database's content: asked first, as the old tool and every repair do
        ask = common.confirm(lambda _plan: "replace the content of %s with snapshot %s (a safety snapshot of what is "
                                           "there now is taken first)?" % (address.display(), chosen),
                             without_terminal="add --yes to restore snapshot %s without a question" % chosen)
        if not ask(None):
            raise Cancelled("cancelled; nothing was changed")
    def starting(snapshot_id):  # once nothing refuses it
        if not out.quiet:
            sys.stderr.write("restoring snapshot %s into %s\n" % (snapshot_id, address.display()))
    result = snapshot.restore_snapshot(address, directory, chosen, safety_snapshot=not args.no_safety_snapshot,
                                       retry_policy=common.retry_policy(args),
                                       progress=common.make_progress("snapshot", args, out),
                                       allow_other_database=args.from_other_database, starting=starting)
    if out.json:
        common.emit_json(result)
        return EXIT_OK
    out.text("restored snapshot %s into %s (%s rows, %s)" % (
        result.snapshot_id, address.display(), n(sum(result.tables.values())), result.method))
    if result.before_unfinished:
        out.text("the content from before the restore that did not finish is in snapshot %s%s" % (
            result.before_unfinished, " (snapshot %s holds the partly restored content this one replaced)" %
            result.safety_snapshot_id if result.safety_snapshot_id else ""))
    elif result.safety_snapshot_id:
        out.text("the content from before is in snapshot %s" % result.safety_snapshot_id)
    elif not args.no_safety_snapshot:
        out.text("no safety snapshot: the database had no tables before")
    return EXIT_OK


def _prune(args, out, directory, address):
    from .. import snapshot
    older = snapshot.parse_age(args.older_than) if args.older_than else None
    result = snapshot.prune_snapshots(directory, keep=args.keep, older_than=older, dry_run=args.dry_run,
                                      address=address)
    if out.json:
        common.emit_json(result)
        return EXIT_OK
    out.text("%s %d snapshots, kept %d" % ("would delete" if result.dry_run else "deleted", len(result.deleted),
                                           len(result.kept)))
    out.lines("  - %s" % snapshot_id for snapshot_id in result.deleted)
    out.lines("kept %s as well: the newest verified snapshot of its database (or one a restore that did not finish "
              "names) is never deleted" % snapshot_id
              for snapshot_id in result.protected)
    return EXIT_OK


def outside_text(tables):
    """What a snapshot's `not_in_moment` says, in words."""
    return "%s read without transactions or a lock over them (%s): what other programs wrote meanwhile may be in it " \
        "partly" % (", ".join(tables), ", ".join(sorted(set(tables.values()))))


def position_text(position):
    """`gtid 0-1-42, bin.000003:1234` (`about ...` when read just after the data's moment, not in it)."""
    parts = []
    if position.get("gtid"):
        parts.append("gtid %s" % position["gtid"])
    if position.get("binlog_file"):
        parts.append("%s:%s" % (position["binlog_file"], position.get("binlog_position")))
    if position.get("replica_gtid"):
        parts.append("replica of its primary at gtid %s" % position["replica_gtid"])
    return ("" if position.get("exact", True) else "about ") + (", ".join(parts) or "?")


def snapshot_lines(found, directory):
    if not found:
        return ["no snapshots in %s" % directory]
    lines = ["%-34s %-10s %-19s %10s %12s  %s" % ("ID", "STATUS", "CREATED (UTC)", "SIZE", "ROWS", "DESCRIPTION")]
    for s in found:
        m = s.manifest
        if m is None:
            lines.append("%-34s %-10s %s" % (s.id, s.status, s.problem))
            continue
        lines.append("%-34s %-10s %-19s %8.1f MB %12s  %s%s%s%s" % (
            s.id, s.status, m.created_at[:19].replace("T", " "), m.size / 1e6, n(m.row_total), m.description,
            "  (%s)" % s.problem if s.problem else "", "  [at %s]" % position_text(m.position) if m.position else "",
            "  [not one moment: %s]" % ", ".join(m.not_in_moment) if m.not_in_moment else ""))
    lines.append("in %s" % directory)
    return lines
