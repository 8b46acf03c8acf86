"""emfix repair: the cookbook's whole workflow (snapshot, orphans, metric JSON, validate) in one command,
under one question, one snapshot and one undo."""

import contextlib
import json

from .. import history
from ..errors import EXIT_OK, EXIT_PROBLEMS, EmfixError, UsageError
from ..fileutil import durable_output
from ..outputguard import check_output_path
from . import common
from .common import n


def register(sub):
    p = common.command(sub, "repair", "the cookbook's whole workflow in one command: remove orphans (or recreate "
                "their parents), repair the metric JSON, check again; one question, one snapshot, one quarantine "
                "for `emfix undo` (exit 0 clean after, 1 something left)",
                "emfix repair experiment.db --dry-run\n  emfix repair experiment.db --yes -o repair.json")
    common.add_database_options(p)
    common.add_repair_options(p, 1000, "rows or values per transaction (default 1000)")
    p.add_argument("--recreate-parents", action="store_true", help=common.RECREATE_PARENTS_HELP)
    common.add_reset_unfixable(p, "metric values")
    p.add_argument("--resume", action="store_true",
                   help="finish an interrupted repair with the options it was started with (running the same "
                        "command again finishes it too)")
    p.add_argument("-o", "--output", metavar="REPORT",
                   help="REPORT.json: the plan, the before -> after and the undo command as JSON (as --json); "
                        "REPORT.html: validate's page of the result with the before -> after and the undo command")
    common.finish(p, run)


def run(args, out):
    from .. import repair as repairing
    address = common.resolve_address(args)
    target = None
    html = bool(args.output and args.output.lower().endswith((".html", ".htm")))
    if args.output:  # a wrong -o is said before the work, not after it
        target = check_output_path(args.output, common.protected_paths(address))
    ask = common.ask_first(
        args, lambda plan: "repair %s: remove %s rows and rewrite %s metric values (everything kept in one quarantine "
                     "file for `emfix undo`)?" % (address.display(), n(plan.rows_to_remove),
                                                  n(plan.values.to_rewrite)), plan_lines)
    stop = common.StopFlag().install()
    result = None
    try:
        with contextlib.ExitStack() as later:
            # A device or FIFO -o is opened (its reader there) before any change (round 46: a FIFO without a reader
            # was repaired, then waited on for ever)
            report = None
            if target is not None and not html and target[1]:
                report = later.enter_context(_report_output(args.output, target))
            result = repairing.repair(
                address, dry_run=args.dry_run, recreate_parents=args.recreate_parents,
                reset_unfixable=args.reset_unfixable, resume=args.resume, batch_size=args.batch_size,
                snapshot=not args.no_snapshot, snapshot_dir=args.snapshot_dir, quarantine_dir=args.quarantine_dir,
                retry_policy=common.retry_policy(args), progress=common.make_progress("repair", args, out),
                confirm=ask, interrupted=stop, force=args.force)
            if target is not None and html:
                _write_page(args.output, address, result, common.retry_policy(args))
            elif report is not None:
                _write_json(report, result)
            elif target is not None:
                with _report_output(args.output, target) as handle:
                    _write_json(handle, result)
    except EmfixError as exc:  # the report lost, the repair done: said so (round 47: the one line said only the first)
        if result is not None and result.quarantine:
            exc.hint = ("the repair itself is done and kept: `emfix validate` shows the database now, `emfix undo "
                        "%s` takes it back" % result.quarantine)
        raise
    if out.json:
        common.emit_json(result)
    else:
        out.lines(repair_lines(result, address.target()))
        if target is not None:
            out.text("report written to %s" % args.output)
    if result.dry_run:
        return EXIT_OK  # a plan is not a failure
    if result.quarantine:
        history.record(address, "repair", "done", summary="removed %s rows, rewrote %s values" % (
            n(sum(result.removed.values())), n(result.repaired + result.reset)), quarantine=result.quarantine)
    return EXIT_OK if result.clean else EXIT_PROBLEMS


def _write_page(name, address, result, retry_policy):
    """The ticket page: validate's page of the database as it is now, with the repair's before -> after
    and the undo command first."""
    from .. import report_html, validate
    report = validate.validate(address, retry_policy=retry_policy, limit=20)
    section = report_html.repair_section(common.to_jsonable(result))
    page = report_html.validation_html(report.to_dict(), address.target(), before=section)
    common.write_report(name, page, common.protected_paths(address), replaceable=report_html.is_page)


@contextlib.contextmanager
def _report_output(name, target):
    """The -o report's handle (fileutil.durable_output); a failure to open or write it is one clear error."""
    real, in_place = target
    try:
        with durable_output(real, in_place=in_place) as handle:
            yield handle
    except OSError as exc:
        raise UsageError("cannot write report %s: %s" % (name, exc.strerror or exc),
                         hint="check that the directory exists and is writable") from None


def _write_json(handle, result):
    handle.write(json.dumps(common.to_jsonable(result), indent=2, allow_nan=False, default=str) + "\n")


def plan_lines(plan):
    """Everything the repair will change, and what it leaves, before the question."""
    lines = []
    if plan.recreate:
        lines.append("create missing parents first: %s" % ", ".join(
            "%s %s" % (t, n(c)) for t, c in plan.recreate.items()))
    if plan.remove:
        lines.append("remove %s orphaned rows (children first):" % n(plan.rows_to_remove))
        for table, count in plan.remove.items():
            lines.append("  %-20s %10s   e.g. %s" % (
                table, n(count), common.example_keys(plan.examples.get(table, []))))
    elif not plan.recreate:
        lines.append("no orphaned rows to remove" if plan.unkeyed else "no orphaned rows")
    elif plan.recreate:
        lines.append("then remove the rows still orphaned (counted once the parents exist)")
    if plan.keepable and not plan.recreate:
        lines.append("  note: %s of these link to RESULTS/EPOCH rows never written while their run exists (old API); "
                     "--recreate-parents keeps them by creating those rows" % ", ".join(
                         "%s %s" % (t, n(c)) for t, c in plan.keepable.items()))
    lines += common.staying_lines(plan.unkeyed, plan.held)
    values = plan.values
    lines.append("repair %s of %s malformed values in %s%s" % (
        n(values.to_repair), n(values.doubtful), values.column, (": " + ", ".join(
            "%s %s" % (kind, n(c)) for kind, c in values.by_kind.items())) if values.by_kind else ""))
    if values.unfixable:
        lines.append("  %s cannot be repaired without guessing: %s%s" % (
            n(values.unfixable), values.unfixable_action, "" if values.unfixable_action != "left as they are" else
            " (--reset-unfixable sets them to {})"))
        for problem in values.problems[:5]:
            lines.append("    - %s: %s" % (problem["id"], problem["reason"]))
    lines.append("not touched:")
    lines.extend("  - " + what for what in plan.not_touched)
    return lines


def _figure(f):
    parts = []
    for key, word in (("violations", "missing parent"), ("orphaned_through_parent", "orphaned"),
                      ("json_issues", "bad JSON")):
        if f[key]:
            parts.append("%s %s" % (n(f[key]), word))
    return ", ".join(parts) or "clean"


def repair_lines(result, target):
    lines = []
    if result.dry_run:
        lines.append("plan for %s (dry run: nothing changed):" % target)
        lines += plan_lines(result.plan)
    elif result.quarantine:
        lines.append("repaired %s%s: removed %s rows%s, rewrote %s metric values (%s repaired, %s reset to {}), "
                     "%.1f s" % (target, " (resumed)" if result.resumed else "", n(sum(result.removed.values())),
                                 " after creating %s parents" % n(sum(result.created.values()))
                                 if result.created else "", n(result.repaired + result.reset), n(result.repaired),
                                 n(result.reset), result.seconds))
    else:
        lines.append("nothing to repair in %s" % target)
    rows = result.per_table()
    if rows:
        lines.append("")
        lines.append("per table: before%s" % ("" if result.after is None else " -> after"))
        for table, before, after in rows:
            lines.append("  %-20s %s%s" % (table, _figure(before), "" if after is None else " -> " + _figure(after)))
    if result.snapshot_id:
        lines.append("snapshot before: %s" % result.snapshot_id)
    if result.quarantine:
        lines.append("removed rows and original values kept in: %s" % result.quarantine)
        lines.append("undo with: emfix undo %s" % result.quarantine)
    if result.after is not None:
        lines.append("")
        if result.clean:
            lines.append("PASS: no foreign-key violations, every metric's JSON is valid")
        else:
            lines.append("left after the repair:")
            lines.extend("  - " + said for said in result.remaining)
    return lines
