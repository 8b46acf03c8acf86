"""emfix undo: put back what a repair removed or rewrote, from its quarantine file."""

import sys

from .. import quarantine
from ..errors import EXIT_OK, EXIT_PROBLEMS, Cancelled
from . import common
from .common import n


def register(sub):
    p = common.command(sub, "undo", "put back what a repair changed: rows repair or cleanup removed, values "
                "repair, fix-json or transform-metrics rewrote (rows first, then values)",
                "emfix undo quarantine/cleanup-orphans-20261125T101500.000000Z.quarantine.db")
    p.add_argument("quarantine", metavar="QUARANTINE",
                   help="the quarantine file the repair printed, or its id (the file name: looked for in the "
                        "quarantine folder of -d DB, then ./quarantine)")
    common.add_database_options(p, positional=False)
    p.add_argument("--batch-size", type=common.positive_int, default=1000, metavar="N",
                   help="rows or values per transaction (default 1,000; lower it for Galera's wsrep_max_ws_rows)")
    p.add_argument("--yes", action="store_true", help="do not ask on a terminal (without one it never asks)")
    p.add_argument("--force", action="store_true",
                   help="put the rows into the database named by -d although the quarantine came from another "
                        "(a moved or copied database); also " + common.REPLICA_FORCE_HELP)
    common.finish(p, run)


def run(args, out):
    from .. import undo
    address = common.resolve_address(args) if (args.database or args.mysql) else None
    if address is None:  # the database the quarantine came from, with the password options given here
        owner = quarantine.database_of(args.quarantine)
        if owner is not None and not owner.is_sqlite:
            owner = common.address_from_text(owner.target(), args.password_file, args.defaults_file,
                                             password=common.password_flag(args))
        address = owner
    if address is not None:
        common.refuse_replica(args, address)
    if not args.yes and sys.stdin.isatty():  # like every other write, it says what it will do and asks first
        counts, meta = quarantine.contents(args.quarantine)
        what = ", ".join("%s %s" % (table, n(count)) for table, count in sorted(counts.items())) or "nothing"
        sys.stderr.write("%s kept by %s: %s\n" % (args.quarantine, meta.get("command", "a repair"), what))
        if not common.confirm(lambda _p: "put them back into %s?" % (
                address.display() if address is not None else "the database it came from"))(None):
            raise Cancelled("cancelled; nothing was changed")
    result = undo.undo(args.quarantine, address, retry_policy=common.retry_policy(args), force=args.force,
                       batch_size=args.batch_size, interrupted=common.StopFlag().install())
    if out.json:
        common.emit_json(result)
    else:
        out.text("put back %s rows or values into %s from %s" % (n(sum(result.restored.values())), result.database,
                                                                result.quarantine))
        if result.unfinished:  # (round 18: "put back 0 rows" from a run killed before it kept any, without a word)
            nothing = "" if sum(result.restored.values()) else " (it had kept nothing yet)"
            out.text("the run that wrote this quarantine was stopped before it finished: what it had removed or "
                     "rewritten so far went back%s" % nothing)
        if result.removed_created:
            out.text("removed %d parent rows the repair had created" % result.removed_created)
        if result.waiting:  # (round 16: left in the quarantine without a word)
            out.text("kept in the quarantine: %s rows emfix may not have removed (a kill came between a batch and its "
                     "mark) whose key holds a row now (%s); an undo once that key is free puts them back" % (
                         n(sum(result.waiting.values())),
                         ", ".join("%s: %d" % kv for kv in sorted(result.waiting.items()))))
    if result.alike_there and not out.json:
        out.text("not put back again: %s rows of a table without a primary key, which holds as many rows like them "
                 "already (%s): the application's, or this undo's own from a run stopped between its two commits; "
                 "emfix cannot tell them apart" % (n(sum(result.alike_there.values())), ", ".join(
                     "%s: %d" % kv for kv in sorted(result.alike_there.items()))))
    if result.not_restored:
        counts = ", ".join("%s: %d" % kv for kv in sorted(result.not_restored.items()))
        sys.stderr.write("error: %s rows or values could not be put back: another process changed them after the "
                         "repair (%s); they were left as they are now and stay in %s\n" % (
                             n(sum(result.not_restored.values())), counts, result.quarantine))
        sys.stderr.write("hint: `emfix undo %s --json` lists them with what each holds now\n"
                         % result.quarantine)
        return EXIT_PROBLEMS
    return EXIT_OK
