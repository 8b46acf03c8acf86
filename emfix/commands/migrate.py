"""emfix migrate (also `migrate-experiment`): copy experiments between databases, resumable, verified."""

from .. import history
from ..backends import open_database
from ..errors import EXIT_OK, DamagedInputError, UsageError
from ..migrate import STRATEGIES, migrate_experiment
from . import common
from .common import n


def register(sub):
    p = common.command(sub, "migrate", "copy experiments between databases (SQLite, MySQL), resumable, verified",
                "emfix migrate experiment.db mysql://em@db1/experiments -e 12 --init\n"
                "  emfix migrate experiment.db mysql://em@db1/experiments -e 12 --resume",
                aliases=["migrate-experiment"])
    p.add_argument("source", metavar="SRC", help="the database to copy from")
    p.add_argument("target", metavar="DST", help="the database to copy into")
    p.add_argument("-e", "--experiment", type=common.row_id, action="append", metavar="ID",
                   help="an experiment (repeatable)")
    p.add_argument("--all", action="store_true", help="every experiment of SRC")
    p.add_argument("--strategy", choices=sorted(STRATEGIES), default="balanced",
                   help="; ".join("%s: %s" % kv for kv in sorted(STRATEGIES.items())) + " (default balanced)")
    p.add_argument("--batch-size", type=common.positive_int, metavar="N", help="rows per transaction (default 2000)")
    p.add_argument("--max-memory", type=common.positive_int, metavar="MB",
                   help="size each table's batches from this memory budget (with --batch-size: the smaller)")
    p.add_argument("--paging", choices=("keyset", "offset"), default="keyset",
                   help="keyset (WHERE key > last; default) or offset (LIMIT/OFFSET, slower on big tables)")
    p.add_argument("--resume", action="store_true", help="continue a migration that was interrupted")
    p.add_argument("--force", action="store_true", help="copy an experiment again that was already migrated")
    p.add_argument("--init", action="store_true", help="create the schema in DST if it has none")
    p.add_argument("--no-verify", action="store_true", help="skip the comparison at the end")
    p.add_argument("--skip-tables", metavar="T,...", help=common.SKIP_TABLES_HELP)
    p.add_argument("--password-file", metavar="FILE", help="MySQL password for both ends")
    p.add_argument("--password", metavar="TEXT", help=common.PASSWORD_HELP)
    common.add_lock_timeout(p)
    p.add_argument("--snapshot-dir", metavar="DIR", help="where DST's snapshot goes")
    common.finish(p, run)


def run(args, out):
    source, target = common.address_of(args.source, args), common.address_of(args.target, args)
    ids = list(args.experiment or [])
    if args.all:
        with open_database(source, readonly=source.is_sqlite, retry_policy=common.retry_policy(args)) as db:
            ids = [r[0] for r in db.query("SELECT %s FROM %s ORDER BY %s" % (db.quote("id"), db.quote("EXPERIMENT"),
                                                                             db.quote("id")))]
    if not ids:
        raise UsageError("which experiments? give -e ID (repeatable) or --all")
    stop = common.StopFlag().install()
    results = []
    for experiment_id in ids:
        result = migrate_experiment(
            source, target, experiment_id, strategy=args.strategy, batch_size=args.batch_size, paging=args.paging,
            resume=args.resume, force=args.force, init=args.init, verify=not args.no_verify,
            retry_policy=common.retry_policy(args), progress=common.make_progress("migrate", args, out),
            interrupted=stop,
            snapshot_dir=args.snapshot_dir, max_memory=args.max_memory, skip_tables=common.table_list(args.skip_tables))
        results.append(result)
        history.record(target, "migrate", "done" if result.verified else "DIFFERS", summary="experiment %d -> %s" % (
            result.experiment_id, "%s rows" % n(sum(result.copied.values()))))
        out.text("experiment %d -> %d in %s: %s rows in %.1f s%s" % (
            result.experiment_id, result.new_experiment_id, target.display(), n(sum(result.copied.values())),
            result.seconds, " (resumed)" if result.resumed else ""))
        out.lines(migrate_check_lines(result.verify))
    if out.json:
        common.emit_json(results)
    if not all(r.verified for r in results):
        raise DamagedInputError("the copy differs from the source (see the table above)",
                                hint="the snapshot of DST taken first holds its content from before")
    return EXIT_OK


def migrate_check_lines(checks):
    """SRC and DST side by side: rows, and the content checksum (ids mapped) where one was taken."""
    if not checks:
        return
    summed = any(c.source_checksum for c in checks)
    yield "  %-20s %12s %12s%s" % ("table", "SRC rows", "DST rows", "  checksum SRC / DST" if summed else "")
    for c in checks:
        sums = ""
        if summed:
            sums = "  %s / %s" % (c.source_checksum[:12], c.target_checksum[:12])
        yield "  %-20s %12s %12s%s  %s" % (c.table, n(c.source_rows), n(c.target_rows), sums,
                                          "ok" if c.ok else "DIFFERS")
