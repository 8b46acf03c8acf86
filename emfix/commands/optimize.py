"""emfix optimize: index the foreign-key columns that have none, ANALYZE, optionally compact."""

from ..errors import EXIT_OK
from . import common


def register(sub):
    p = common.command(sub, "optimize", "index foreign-key columns that have no index, ANALYZE, optionally VACUUM / "
                "OPTIMIZE TABLE; times validate's slowest check before and after",
                "emfix optimize experiment.db --dry-run   |   emfix optimize experiment.db --vacuum")
    common.add_database_options(p)
    p.add_argument("--dry-run", action="store_true", help="list the indexes it would create; change nothing")
    p.add_argument("--vacuum", action="store_true",
                   help="also compact: VACUUM (SQLite) or OPTIMIZE TABLE (MySQL), after checking free disk")
    p.add_argument("--no-timing", action="store_true", help="skip the validate timings before and after")
    p.add_argument("--force", action="store_true", help=common.WRITE_FORCE_HELP)
    common.finish(p, run)


def run(args, out):
    from .. import optimize
    address = common.writing_address(args)
    result = optimize.optimize(address, dry_run=args.dry_run, vacuum=args.vacuum, timing=not args.no_timing,
                      retry_policy=common.retry_policy(args), progress=common.make_progress("optimize", args, out),
                      force=args.force)
    out.result(result, optimize_lines, address.target())
    return EXIT_OK


def optimize_lines(result, target):
    verb = "would create" if result.dry_run else "created"
    if result.created:
        yield "%s %d index%s:" % (verb, len(result.created), "" if len(result.created) == 1 else "es")
        for gap in result.created:
            yield "  %s ON %s" % (gap.name, gap.describe())
    else:
        yield "every foreign-key column already has an index"
    done = [what for what, flag in (("ANALYZE", result.analyzed), ("WAL checkpoint", result.checkpointed),
                                    ("compacted", result.vacuumed)) if flag]
    if done:
        yield "ran: %s" % ", ".join(done)
    if result.before_seconds is not None:
        line = "validate's slowest check, %s: %.2f s" % (result.slowest_relation, result.before_seconds)
        if result.after_seconds is not None:
            line += " -> %.2f s" % result.after_seconds
        yield line
    if result.validate_before is not None:
        line = "all foreign-key checks: %.2f s" % result.validate_before
        if result.validate_after is not None:
            line += " -> %.2f s" % result.validate_after
        yield line
    if result.dry_run and result.created:
        yield "run `emfix optimize %s` to create them" % target


