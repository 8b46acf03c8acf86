"""emfix export (also `export-experiment`): one experiment's whole subtree, streamed to a file."""

import sys

from ..errors import EXIT_OK
from . import common
from .common import n


def register(sub):
    p = common.command(sub, "export", "write one experiment's complete subtree to a file, streamed",
                "emfix export experiment.db -e 12 -o exp12.jsonl\n"
                "  emfix export experiment.db -e 12 -o - --format json | gzip > exp12.json.gz",
                aliases=["export-experiment"])
    common.add_database_options(p)
    p.add_argument("-e", "--experiment", type=common.row_id, required=True, metavar="ID", action=common.Once,
                   help="the experiment to export")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="where to write ('-' for stdout)")
    p.add_argument("--format", choices=("jsonl", "json"), default=None,
                   help="jsonl: one record per line with a checksummed trailer; json: the old single-document "
                        "layout (default: from the file name, .json -> json, else jsonl)")
    p.add_argument("--force", action="store_true", help="replace FILE if it exists (refused without: it may be "
                   "the only copy of an experiment)")
    p.add_argument("--include-metrics", action="store_true", default=True,
                   help="include the METRIC rows the subtree links (always on; kept for the cookbook)")
    p.add_argument("--include-artifacts", action="store_true", default=True,
                   help="include the ARTIFACT rows the subtree links (always on; kept for the cookbook)")
    common.finish(p, run)


def run(args, out):
    from .. import export
    address = common.resolve_address(args)
    fmt = args.format or ("json" if args.output.lower().endswith(".json") else "jsonl")
    result = export.export_experiment(address, args.experiment, args.output, fmt=fmt,
                               retry_policy=common.retry_policy(args), force=args.force,
                               progress=common.make_progress("export", args, out))
    if result.dangling:  # on stderr: stdout may be the export itself (-o -)
        sys.stderr.write("warning: %s link rows of this experiment point at rows that do not exist (%s); import "
                         "refuses them unless --allow-dangling\n" % (n(sum(result.dangling.values())), ", ".join(
                             "%s %d" % kv for kv in sorted(result.dangling.items()))))
    if args.output == "-":
        return EXIT_OK
    if out.json:
        common.emit_json(result)
    else:
        out.text("exported experiment %d to %s: %s rows in %d tables, %.1f s" % (
            result.experiment_id, result.path, n(sum(result.counts.values())), len(result.counts), result.seconds))
    return EXIT_OK
