"""emfix cleanup-orphans (also `cleanup`): remove orphans and what hangs under them, every row kept."""

from .. import history
from ..errors import EXIT_OK, EXIT_PROBLEMS
from . import common
from .common import n


def register(sub):
    p = common.command(sub, "cleanup-orphans", "remove orphaned rows and every row orphaned through them, in short "
                "batches, keeping each removed row in a quarantine file for `emfix undo`",
                "emfix cleanup-orphans experiment.db --dry-run\n  emfix cleanup-orphans experiment.db --yes",
                aliases=["cleanup"])
    common.add_database_options(p)
    common.add_repair_options(p, 5000, "most rows per delete transaction (default 5000)")
    p.add_argument("--sleep", type=common.seconds, default=0.0, metavar="S", help="pause between batches (seconds)")
    p.add_argument("--max-lock-ms", type=common.positive_int, default=200, metavar="M",
                   help="shrink batches so each write transaction stays under M milliseconds, if a batch of "
                        "one row can (default 200; batches aim at 40%% of it)")
    p.add_argument("--tables", metavar="T,...", help="only remove rows from these tables")
    p.add_argument("--include-unreferenced", action="store_true",
                   help="also remove METRIC and ARTIFACT rows nothing references")
    p.add_argument("--recreate-parents", action="store_true", help=common.RECREATE_PARENTS_HELP)
    common.finish(p, run)


def run(args, out):
    from .. import cleanup
    address = common.writing_address(args)
    ask = common.ask_first(args, lambda plan: "remove %s rows from %s (each kept in a quarantine file)?" % (
        n(plan.total), address.display()), cleanup_plan_lines)
    result = cleanup.cleanup_orphans(
        address, dry_run=args.dry_run, batch_size=args.batch_size, sleep=args.sleep, max_lock_ms=args.max_lock_ms,
        tables=common.table_list(args.tables, "--tables"), include_unreferenced=args.include_unreferenced,
        recreate_parents=args.recreate_parents, snapshot=not args.no_snapshot, snapshot_dir=args.snapshot_dir,
        quarantine_dir=args.quarantine_dir, retry_policy=common.retry_policy(args),
        progress=common.make_progress("cleanup", args, out), confirm=ask, interrupted=common.StopFlag().install(),
        force=args.force)
    out.result(result, cleanup_lines, address.target())
    if not result.dry_run:
        history.record(address, "cleanup-orphans", "done", summary="removed %s rows" % n(
            sum(result.removed.values())), quarantine=result.quarantine)
    if result.final and result.final.get("total_foreign_key_violations") or result.left_alone:
        return EXIT_PROBLEMS
    return EXIT_OK


def cleanup_plan_lines(plan, created=None, removed=None):
    """What a cleanup removes, table by table (`removed`: what it did remove, rows left alone not counted), and
    what the user should know before saying yes."""
    lines = []
    for table, count in plan.remove.items():
        done = count if removed is None else removed.get(table, 0)
        lines.append("  %-20s %10s   %se.g. %s" % (  # the examples are the plan's (round 33: more keys than rows)
            table, n(done), "of %s planned, " % n(count) if done != count else "",
            common.example_keys(plan.examples.get(table, []))))
    if created:
        lines.append("created missing parents: %s" % ", ".join("%s %s" % (t, n(count)) for t, count in created.items()))
    elif plan.recreate:
        lines.append("creates missing parents first: %s" % ", ".join(
            "%s %s" % (t, n(count)) for t, count in plan.recreate.items()))
    elif plan.keepable:
        lines.append("note: %s links point at RESULTS/EPOCH rows that were never written while their run exists "
                     "(old API; real data). --recreate-parents keeps them by creating those rows." % ", ".join(
                         "%s %s" % (t, n(count)) for t, count in plan.keepable.items()))
    lines += common.staying_lines(plan.unkeyed, plan.held, plan.left_behind)
    return lines


def cleanup_lines(result, target):
    plan = result.plan
    lines = []
    if result.dry_run:
        lines.append("plan: remove %s rows from %s (dry run: nothing changed)" % (n(plan.total), target))
    else:
        lines.append("removed %s rows from %s%s in %s batches (longest write %.0f ms), %.1f s" % (
            n(sum(result.removed.values())), target, " (with the interrupted run before this one)" if result.resumed
            else "", n(result.batches), result.max_batch_ms, result.seconds))
        if result.one_row_over_ms:
            lines.append("note: --max-lock-ms is below what one row's batch takes here (up to %.0f ms): batches "
                         "stayed at a row or two, and the run took that much longer; a larger limit (the default "
                         "is 200) lets them grow" % result.one_row_over_ms)
    lines += cleanup_plan_lines(plan, result.created, None if result.dry_run else result.removed)
    if result.snapshot_id:
        lines.append("snapshot before: %s" % result.snapshot_id)
    if result.quarantine:
        lines.append("removed rows kept in: %s" % result.quarantine)
        lines.append("undo with: emfix undo %s" % result.quarantine)
    if result.left_alone:
        lines.append("left alone: %s rows another process changed (or gave back a missing parent) after they were "
                     "planned (%s); run the same command again to check them anew" % (
                         n(sum(result.left_alone.values())),
                         ", ".join("%s %s" % (t, n(c)) for t, c in sorted(result.left_alone.items()))))
    if result.final:
        lines.append("validate afterwards: %s foreign-key violations, %s rows orphaned through a parent" % (
            n(result.final["total_foreign_key_violations"]), n(result.final["rows_orphaned_through_parent"])))
    return lines


