"""emfix fix-json: repair malformed metric JSON exactly, never guessing, every original kept."""

from .. import history
from ..errors import EXIT_OK, EXIT_PROBLEMS
from . import common
from .common import n


def register(sub):
    p = common.command(sub, "fix-json", "repair malformed metric JSON exactly (never guessing), keeping every "
                "original in a quarantine file for `emfix undo`",
                "emfix fix-json experiment.db --dry-run\n  emfix fix-json experiment.db --yes")
    common.add_database_options(p)
    common.add_repair_options(p, 500, "values per transaction (default 500)")
    common.add_reset_unfixable(p)
    p.add_argument("--column", default="METRIC.per_label_val", metavar="TABLE.COLUMN",
                   help="the column to repair (default METRIC.per_label_val)")
    common.finish(p, run)


def run(args, out):
    from .. import jsonfix
    address = common.writing_address(args)
    ask = common.ask_first(
        args, lambda _a: "rewrite the malformed values of %s in %s (originals kept in a quarantine file)?" % (
            args.column, address.display()))
    result = jsonfix.fix_json(address, column=args.column, dry_run=args.dry_run, reset_unfixable=args.reset_unfixable,
                      batch_size=args.batch_size, snapshot=not args.no_snapshot, snapshot_dir=args.snapshot_dir,
                      quarantine_dir=args.quarantine_dir, retry_policy=common.retry_policy(args),
                      progress=common.make_progress("fix-json", args, out), confirm=ask,
                      interrupted=common.StopFlag().install(), force=args.force)
    out.result(result, fix_json_lines, address.target())
    if result.dry_run:
        return EXIT_OK  # a plan is not a failure (as cleanup --dry-run)
    history.record(address, "fix-json", "done", summary="%d repaired, %d unrepairable" % (
        result.repaired, result.unrepairable), quarantine=result.quarantine)
    return EXIT_PROBLEMS if result.unrepairable > result.reset or result.left_alone_count else EXIT_OK


EXAMPLES_SHOWN = 5  # repairs shown before/after in the text


def fix_json_lines(result, target):
    lines = []
    verb = "would repair" if result.dry_run else "repaired"
    lines.append("%s %s of %s malformed values in %s.%s of %s%s" % (
        verb, n(result.repaired), n(result.candidates), result.table, result.column, target,
        " (dry run: nothing changed)" if result.dry_run else ""))
    if result.changes:
        lines.append("  changes: " + ", ".join("%s %s" % (c, n(count)) for c, count in result.changes.items()))
    shown = result.examples[:EXAMPLES_SHOWN]
    for example in shown:
        lines.append("  %s %s" % (result.column, example["id"]))
        lines.append("      before: %s" % example["before"][:120])
        lines.append("      after:  %s" % example["after"][:120])
    if result.repaired > len(shown):
        lines.append("  ... and %s more" % n(result.repaired - len(shown)))
    if result.nulled:
        lines.append("  NaN/Infinity became null in %s: %s" % (result.column, ", ".join(
            str(i) for i in result.nulled[:20]) + (" ..." if len(result.nulled) > 20 else "")))
    if result.unrepairable:
        lines.append("%s values cannot be repaired without guessing%s:" % (
            n(result.unrepairable), " (reset to {})" if result.reset else " (left unchanged)"))
        for problem in result.problems[:10]:
            lines.append("  - %s %s: %s (char %s)" % (result.column, problem["id"], problem["reason"],
                                                      problem["position"]))
        if not result.reset:
            lines.append("  --reset-unfixable sets them to {} after keeping the originals")
    if result.snapshot_id:
        lines.append("snapshot before: %s" % result.snapshot_id)
    if result.quarantine and not result.dry_run:
        lines.append("originals kept in: %s" % result.quarantine)
        lines.append("undo with: emfix undo %s" % result.quarantine)
    if result.left_alone_count:
        lines.append("left alone: %s values another process changed after emfix read them (%s%s); run the same "
                     "command again to check them anew" % (n(result.left_alone_count), result.column, " " + ", ".join(
                         str(k) for k in result.left_alone[:5]) + (" ..." if result.left_alone_count > 5 else "")))
    return lines


