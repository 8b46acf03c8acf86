"""emfix import: an export file back in, with ids that never collide, resumable."""

from ..errors import EXIT_OK, UsageError
from . import common
from .common import n


def register(sub):
    p = common.command(sub, "import", "read an export file (jsonl) into a database, with new ids that never collide",
                "emfix import experiment.db exp12.jsonl --experiment-title 'exp 12 (copy)'")
    common.add_database_options(p)
    p.add_argument("file", metavar="FILE", help="a file written by `emfix export --format jsonl`")
    p.add_argument("--experiment-title", metavar="T", type=common.utf8_text, help="title of the imported experiment")
    p.add_argument("--resume", action="store_true", help="finish an import that was interrupted")
    p.add_argument("--force", action="store_true", help="import the file again as another experiment; "
                   "also write to a MySQL replica (refused without)")
    p.add_argument("--skip-tables", metavar="T,...", help=common.SKIP_TABLES_HELP)
    p.add_argument("--allow-dangling", action="store_true",
                   help="import link rows whose parent row is missing in the export (refused without; counted)")
    common.finish(p, run)


def run(args, out):
    from .. import importer
    if not (args.db or args.database or args.mysql):
        raise UsageError("import needs the database and the file", hint="emfix import DB FILE")
    address = common.resolve_address(args)
    common.refuse_replica(args, address)
    result = importer.import_file(address, args.file, experiment_title=args.experiment_title,
                         retry_policy=common.retry_policy(args),
                         progress=common.make_progress("import", args, out), resume=args.resume, force=args.force,
                         interrupted=common.StopFlag().install(), skip_tables=common.table_list(args.skip_tables),
                         allow_dangling=args.allow_dangling)
    if out.json:
        common.emit_json(result)
    elif result.already_done:
        out.text("nothing to resume: %s was already imported into %s as experiment %d (%s rows); nothing was "
                 "inserted" % (result.path, address.display(), result.experiment_id, n(sum(result.counts.values()))))
    else:
        out.text("imported %s rows into %s as experiment %d (%.1f s)%s" % (
            n(sum(result.counts.values())), address.display(), result.experiment_id, result.seconds,
            " (resumed)" if result.resumed else ""))
        if result.dangling:
            out.text("including %s link rows whose parent row is missing: %s" % (
                n(sum(result.dangling.values())), ", ".join("%s %d" % kv for kv in sorted(result.dangling.items()))))
        for column, count in sorted(result.single_precision.items()):
            out.text("note: %s %s of %s %s stored as its single-precision FLOAT keeps them (as the Experiment "
                     "Manager's MySQL schema declares METRIC.total_val)" % (
                         n(count), "value" if count == 1 else "values", column, "is" if count == 1 else "are"))
    return EXIT_OK
