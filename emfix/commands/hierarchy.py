"""emfix check-hierarchy: is each experiment's tree whole (the old tool's command, which never could be)."""

from ..errors import EXIT_OK, EXIT_PROBLEMS
from . import common
from .common import n


def register(sub):
    p = common.command(sub, "check-hierarchy", "walk each experiment's tree (trials, runs, epochs, batches, "
                       "links) and say where a row's parent is missing (exit 1 if any experiment is broken)",
                       "emfix check-hierarchy experiment.db   |   emfix check-hierarchy -d experiment.db -e 12")
    common.add_database_options(p)
    p.add_argument("-e", "--experiment-id", "--experiment", dest="experiment", type=common.row_id, metavar="ID",
                   action=common.Once,
                   help="only this experiment (default: every one, a line each)")
    p.add_argument("--limit", type=common.non_negative_int, default=10, metavar="N",
                   help="example rows listed per break (default 10)")
    common.finish(p, run)


def run(args, out):
    from .. import hierarchy
    reports = hierarchy.check_experiments(common.resolve_address(args), args.experiment, args.limit,
                                          retry_policy=common.retry_policy(args))
    if out.json:
        common.emit_json({"experiments": [r.to_dict() for r in reports]})
    else:
        out.lines(hierarchy_lines(reports, args.limit))
    whole = all(r.exists and not r.breaks for r in reports)
    return EXIT_OK if whole else EXIT_PROBLEMS


def hierarchy_lines(reports, limit=10):
    """Each experiment's verdict; under each break up to `limit` of its rows, then "... and N more"."""
    for report in reports:
        levels = ", ".join("%s %s" % (lv.table, n(lv.rows)) for lv in report.levels[1:])
        if not report.exists:
            yield "experiment %s: NOT FOUND%s" % (report.experiment_id, "; rows left under it: " + levels
                                                  if report.breaks else "")
        elif report.breaks:
            yield "experiment %s: %d breaks (%s)" % (report.experiment_id, len(report.breaks), levels)
        else:
            yield "experiment %s: whole (%s)" % (report.experiment_id, levels)
        for b in report.breaks:
            yield "  - %s" % b.message
            examples = b.examples[:limit]
            for row in examples:
                yield "      row %s" % ", ".join("%s=%s" % kv for kv in row.items())
            if b.count > len(examples):
                yield "      ... and %s more" % n(b.count - len(examples))
