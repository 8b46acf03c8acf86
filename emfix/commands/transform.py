"""emfix transform-metrics (and the old `create-transformation-template`): per-label rules over metric
values, every original kept for `emfix undo`."""

import sys

from .. import history
from ..errors import EXIT_OK, EXIT_PROBLEMS, UsageError
from . import common
from .common import n

TEMPLATE_FILE = "transformation_rules_template.json"


def register(sub):
    p = common.command(sub, "transform-metrics", "apply per-label rules (normalize, round, scale, rename, drop) to "
                       "every metric's per_label_val, keeping each original in a quarantine file for `emfix undo`",
                       "emfix transform-metrics experiment.db --rules rules.json --dry-run\n"
                       "  emfix transform-metrics --template rules.json")
    common.add_database_options(p)
    p.add_argument("--rules", metavar="FILE", help="the rules: a JSON object label -> rule (see --template)")
    p.add_argument("--transformation-file", metavar="FILE",
                   help="the old tool's spelling of --rules: runs without asking, as the old tool did (the verified "
                        "snapshot and the quarantine make it undoable)")
    p.add_argument("-e", "--experiment", dest="experiments", action=common.IdsThenDatabase, nargs="+", metavar="ID",
                   help="only the metrics of these experiments (default: every metric)")
    p.add_argument("--experiment-ids", metavar="1,2,3", help="the old tool's spelling of -e: ids separated by commas")
    p.add_argument("--template", metavar="FILE", help="write a commented starting rules file (- for stdout) and stop; "
                   "an existing FILE is replaced only with --force")
    common.add_repair_options(p, 10000, "values per transaction (default 10,000)", force_help=common.FORCE_HELP
                              + "; with --template, replace an existing FILE")
    common.finish(p, run)

    t = common.command(sub, "create-transformation-template", "the old tool's name for `transform-metrics "
                       "--template`", "emfix create-transformation-template -o rules.json")
    t.add_argument("-o", "--output", default=TEMPLATE_FILE, metavar="FILE",
                   help="where to write it (default: ./%s, as the old tool; - for stdout); an existing file is "
                        "never overwritten (unless it is the template unedited) without --force" % TEMPLATE_FILE)
    t.add_argument("--force", action="store_true", help="replace FILE if it exists (an edited rules file is kept "
                   "without it)")
    common.finish(t, run_template)


def _experiment_ids(args):
    ids = list(args.experiments or [])
    for part in (args.experiment_ids or "").split(","):
        if part.strip():
            ids.append(common.row_id(part.strip()))
    return list(dict.fromkeys(ids))


def run_template(args, out):
    from .. import transform
    path = args.output if hasattr(args, "output") else args.template
    text = transform.write_template(path, force=args.force)  # an edited rules file is kept without --force
    if text is not None:
        common.write_stdout(text)
    elif not out.quiet:
        sys.stderr.write("wrote %s: edit it, then run emfix transform-metrics DB --rules %s --dry-run\n" % (path, path))
    return EXIT_OK


def run(args, out):
    from .. import transform
    if args.template:
        return run_template(args, out)
    if args.rules and args.transformation_file:
        raise UsageError("--rules and --transformation-file together", hint="give one: they are the same option")
    if not (args.rules or args.transformation_file):
        raise UsageError("no rules given", hint="add --rules FILE (emfix transform-metrics --template FILE writes one)")
    rules = transform.load_rules(args.rules or args.transformation_file)
    address = common.writing_address(args)
    old_spelling = bool(args.transformation_file)  # the old tool's scripts never answered a question
    ask = None if args.yes or args.dry_run or old_spelling else common.confirm(
        lambda _a: "transform the metric values of %s (originals kept in a quarantine file)?" % address.display())
    result = transform.transform_metrics(address, rules, experiment_ids=_experiment_ids(args), dry_run=args.dry_run,
                               batch_size=args.batch_size, snapshot=not args.no_snapshot,
                               snapshot_dir=args.snapshot_dir, quarantine_dir=args.quarantine_dir,
                               retry_policy=common.retry_policy(args), confirm=ask,
                               progress=common.make_progress("transform-metrics", args, out),
                               interrupted=common.StopFlag().install(), force=args.force)
    if out.json:
        common.emit_json(result)
    else:
        out.lines(transform_lines(result, address.target()))
    if not result.dry_run:
        history.record(address, "transform-metrics", "done", summary="%d values changed" % result.changed,
                       quarantine=result.quarantine)
    return EXIT_PROBLEMS if result.left_alone_count else EXIT_OK


def transform_lines(result, target):
    yield "%s %s of %s metric values in %s%s" % (
        "would change" if result.dry_run else "changed", n(result.changed), n(result.scanned), target,
        " (dry run: nothing changed)" if result.dry_run else "")
    for example in result.examples:
        yield "  METRIC %s" % example["id"]
        yield "      before: %s" % str(example["before"])[:120]
        yield "      after:  %s" % example["after"][:120]
    for count, what in ((result.already_done, "already transformed by the interrupted run"),
                        (result.malformed, "skipped: not a JSON object (run `emfix fix-json` first)"),
                        (result.not_numbers, "label values left as they are: not numbers"),
                        (result.too_large, "label values left as they are: past a double's range (METRIC %s)"
                         % ", ".join(str(i) for i in result.too_large_ids)),
                        (result.rename_conflicts, "metrics left alone: a rename would overwrite a label")):
        if count:
            yield "  %s %s" % (n(count), what)
    if result.snapshot_id:
        yield "snapshot before: %s" % result.snapshot_id
    if result.quarantine and not result.dry_run:
        yield "originals kept in: %s" % result.quarantine
        yield "undo with: emfix undo %s" % result.quarantine
    if result.left_alone_count:
        yield ("left alone: %s values another process changed after emfix read them (METRIC %s%s); they keep what "
               "that process wrote" % (n(result.left_alone_count), ", ".join(str(k) for k in result.left_alone[:5]),
                                        " ..." if result.left_alone_count > 5 else ""))
