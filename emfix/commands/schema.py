"""emfix schema: the relation graph (`schema DB`), the whole schema (`show`), two compared (`diff`), and
the upgrade to the current Experiment Manager schema (`upgrade`)."""

import json
import os
import sys

from ..errors import EXIT_OK, EXIT_PROBLEMS, UsageError
from . import common

ACTIONS = ("graph", "show", "diff", "upgrade")


def rewrite_argv(argv):
    """`emfix schema DB` (the first wave's spelling) is `emfix schema graph DB`."""
    if argv[:1] == ["schema"] and (len(argv) == 1 or argv[1] not in ACTIONS + ("-h", "--help")):
        return ["schema", "graph"] + argv[1:]
    return argv


def register(sub):
    p = common.command(sub, "schema", "the schema: relation graph, every table in full, two compared, or upgraded",
                       "emfix schema show experiment.db   |   emfix schema diff experiment.db mysql://root@db/em")
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=common.Parser)
    actions.required = True

    g = common.command(actions, "graph", "the relation graph emfix discovered (parents before children); "
                       "`emfix schema DB` is this", "emfix schema graph experiment.db --json")
    common.add_database_options(g)
    common.finish(g, run_graph)

    s = common.command(actions, "show", "every table: columns (type, NULL-ability, default), keys, unique "
                       "constraints, indexes, foreign keys, row counts; the generation and SCHEMA_VERSION rows",
                       "emfix schema show experiment.db --json > schema.json")
    common.add_database_options(s)
    s.add_argument("--no-counts", action="store_true", help="skip the row counts (a count(*) per table)")
    common.finish(s, run_show)

    d = common.command(actions, "diff", "compare two schemas (live databases of either engine, or files from "
                       "`schema show --json`) through the SQLite <-> MySQL type mapping; print the DDL that makes B "
                       "like A. Exit 0: the same, 1: different",
                       "emfix schema diff experiment.db mysql://root@127.0.0.1/em")
    d.add_argument("a", metavar="A", help="database or schema file: the reference")
    d.add_argument("b", metavar="B", help="database or schema file: the one the DDL is written for")
    d.add_argument("--password-file", metavar="FILE", help="MySQL password for A and B (or %s)" % common.PASSWORD_ENV)
    d.add_argument("--format", choices=("text", "json", "html", "ddl"), default=None,
                   help="text (default), json (as --json), html (one self-contained page: each change with its "
                        "rating and DDL) or ddl (the statements alone)")
    d.add_argument("-o", "--output", metavar="FILE", help="write it to FILE instead of stdout")
    d.add_argument("--open-html", action="store_true",
                   help="open the HTML page in a browser (on a machine without one: says where the file is)")
    common.finish(d, run_diff)

    u = common.command(actions, "upgrade", "bring a database to the current Experiment Manager schema (missing "
                       "tables, columns, constraints); the plan is printed as DDL first; a verified snapshot before, "
                       "a SCHEMA_VERSION row after", "emfix schema upgrade experiment.db --dry-run")
    common.add_database_options(u)
    u.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    u.add_argument("--no-snapshot", action="store_true", help="skip the verified snapshot taken first")
    u.add_argument("--snapshot-dir", metavar="DIR", help="where the snapshot goes")
    u.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    u.add_argument("--force", action="store_true", help=common.WRITE_FORCE_HELP)
    common.finish(u, run_upgrade)


def run_graph(args, out):
    from .. import schema
    with common.open_from_args(args, readonly=True) as db:
        graph = schema.users_graph(schema.discover_graph(db))
    out.result(graph, graph_lines)
    return EXIT_OK


def graph_lines(graph):
    yield "schema generation %d, %d tables, %d relations" % (graph.generation, len(graph.tables), len(graph.relations))
    if graph.missing_tables:
        yield "missing Experiment Manager tables: %s" % ", ".join(graph.missing_tables)
    yield "parent -> child order: %s" % ", ".join(graph.parent_first())
    for rel in graph.relations:
        yield "  %s%s" % (rel.describe(), "  (built-in: not declared)" if rel.source == "builtin" else "")
    for rel in graph.unresolved:
        yield "  %s  (parent table missing)" % rel.describe()


def run_show(args, out):
    from .. import catalog
    with common.open_from_args(args, readonly=True) as db:
        declared = catalog.read_catalog(db, counts=not args.no_counts)
    out.result(declared, show_lines)
    return EXIT_OK


def show_lines(declared):
    yield "%s (%s), schema generation %d, %d tables" % (declared.database, declared.dialect, declared.generation,
                                                        len(declared.tables))
    for row in declared.schema_versions:
        yield "  schema version %s: %s (%s)" % (row.get("version"), row.get("migration_name"), row.get("applied_at"))
    for name, table in sorted(declared.tables.items()):
        rows = "" if table.rows is None else ", %s rows" % common.n(table.rows)
        yield ""
        yield "%s%s" % (name, rows)
        for c in table.columns:
            flags = [c.type, "NOT NULL" if c.not_null else "NULL"]
            if c.default is not None:
                flags.append("DEFAULT %s" % c.default)
            if c.auto:
                flags.append("auto-increment")
            yield "  %-22s %s" % (c.name, " ".join(flags))
        yield "  primary key (%s)" % ", ".join(table.primary_key) if table.primary_key else "  no primary key"
        for unique in table.unique:
            yield "  unique (%s)" % ", ".join(unique)
        for index in table.indexes:
            yield "  index %s (%s)" % (index.name, ", ".join(index.columns))
        for fk in table.foreign_keys:
            yield "  foreign key (%s) -> %s (%s)" % (", ".join(fk.child_columns), fk.parent,
                                                     ", ".join(fk.parent_columns))


def run_diff(args, out):
    from .. import report_html, schemaddl, schemadiff, schemafiles
    a, b = (schemafiles.catalog_of(args.a, args.password_file, parse=common.address_from_text),
            schemafiles.catalog_of(args.b, args.password_file, parse=common.address_from_text))
    differences = schemadiff.compare_catalogs(a, b)
    count = schemadiff.tables_to_count(differences, b)
    if count:  # (a schema file keeps the counts it was written with)
        # B's row counts decide whether dropping one of its columns or tables loses data (the rating)
        b = schemafiles.catalog_of(args.b, args.password_file, counts=count, parse=common.address_from_text)
        differences = schemadiff.rated(differences, b)
    diff = schemadiff.render(differences, a, b)
    kind = "json" if out.json else (args.format or ("html" if args.open_html else "text"))
    if args.open_html and kind != "html":
        raise UsageError("--open-html goes with --format html")
    if kind == "json":
        text = json.dumps(common.to_jsonable(diff), indent=2, allow_nan=False, default=str) + "\n"
    elif kind == "html":
        text = report_html.schema_diff_html(diff)
    elif kind == "ddl":
        text = "".join(line + "\n" for line in schemaddl.script_lines(diff.script))
    else:
        text = "".join(line + "\n" for line in diff_lines(diff))
    output = args.output or ("schema_diff_report.html" if args.open_html else None)
    if output:
        common.write_report(output, text, [p for p in (args.a, args.b) if os.path.isfile(p)])
        if not out.quiet and not out.json:
            sys.stderr.write("%s written to %s\n" % (kind, output))
        if args.open_html:
            common.open_report(output, out)
    elif not out.quiet or out.json:
        common.write_stdout(text)
    return EXIT_OK if diff.same else EXIT_PROBLEMS


def diff_lines(diff):
    from .. import schemaddl
    if diff.same:
        yield "same schema: %s and %s" % (diff.a, diff.b)
        return
    yield "%d difference%s between A (%s) and B (%s), rated %s:" % (
        len(diff.differences), "" if len(diff.differences) == 1 else "s", diff.a, diff.b, diff.overall_rating)
    for d in diff.differences:
        yield "  %-8s %s  (%s)" % (d.rating, d.what, d.reason)
    yield ""
    yield "-- DDL that makes B like A (%s); lines starting with -- are left for you to decide" % diff.dialect
    yield from schemaddl.script_lines(diff.script)


def run_upgrade(args, out):
    """One plan: the one shown (and confirmed, unless --yes) is the one executed."""
    from .. import upgrade
    address = common.writing_address(args)
    ask = None if args.yes else common.confirm(lambda p: "upgrade the schema of %s?" % p.database, upgrade_lines)
    result = upgrade.upgrade_schema(
        address, dry_run=args.dry_run, confirm=ask, snapshot=not args.no_snapshot,
        snapshot_dir=args.snapshot_dir, force=args.force, retry_policy=common.retry_policy(args),
        progress=common.make_progress("schema upgrade", args, out))
    out.result(result, upgrade_lines)
    return EXIT_OK


def upgrade_lines(result):
    if result.up_to_date:
        yield "%s already has the current Experiment Manager schema (generation %d)" % (result.database,
                                                                                       result.generation_after)
    else:
        yield "%s %d change%s to %s:" % ("would make" if result.dry_run else "made", len(result.changes),
                                         "" if len(result.changes) == 1 else "s", result.database)
        for change in result.changes:
            yield "  %s" % change
        yield "DDL:"
        for statement in result.statements:
            yield "  " + statement.replace("\n", "\n  ") + ";"
    for kept in result.kept:
        yield "not changed: %s" % kept
    if result.snapshot_id:
        yield "snapshot before: %s" % result.snapshot_id
    if not result.dry_run and not result.up_to_date:
        yield "schema generation %d -> %d; a SCHEMA_VERSION row records it" % (result.generation_before,
                                                                              result.generation_after)
