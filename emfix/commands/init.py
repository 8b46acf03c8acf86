"""emfix init: the Experiment Manager's tables, created where they are missing."""

from ..errors import EXIT_OK
from . import common


def register(sub):
    p = common.command(sub, "init", "create the Experiment Manager schema (missing tables only)",
                "emfix init experiment.db   |   emfix init mysql://root@127.0.0.1/test")
    common.add_database_options(p)
    p.add_argument("--generation", type=int, choices=(1, 2), default=2,
                   help="1: without the BATCH tables, 2: with them (default)")
    p.add_argument("--json-type", choices=("json", "text"), default="json",
                   help="MySQL type of METRIC.per_label_val: JSON (default) or LONGTEXT as legacy installs")
    p.add_argument("--force", action="store_true", help=common.REPLICA_FORCE_HELP)
    common.finish(p, run)


def run(args, out):
    from .. import schema
    from ..guarded import check_integrity
    common.refuse_replica(args, common.resolve_address(args))
    with common.open_from_args(args, create=True) as db:
        check_integrity(db)  # a damaged file is said so (it was "has every table", exit 0), and gets no table
        created = schema.create_schema(db, generation=args.generation, json_type=args.json_type)
        if out.json:
            common.emit_json({"database": db.address.to_dict(), "created": created})
        elif created:
            out.text("created %d tables in %s: %s" % (len(created), db.address.display(), ", ".join(created)))
        else:
            out.text("%s already has every Experiment Manager table" % db.address.display())
    return EXIT_OK
