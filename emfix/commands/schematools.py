"""The old schema tool's command lines (`schema_diff_cli`), unchanged: extract-schema, compare-schemas,
compare-live-schemas, analyze-schema, generate-migration-plan. Each takes the old options and writes
the old files where the old tool wrote them; the work is emfix's (catalog, schemadiff, schemacheck,
migrationplan), so the diffs are rated and the migration plan is real DDL, not TODO comments."""

import datetime
import json
import os
import sys

from ..errors import EXIT_OK, NotFoundError, UsageError
from . import common

OLD = "the old schema tool's `%s`"
REPORT_FORMATS = ("json", "html", "text", "ddl")


def register(sub):
    p = common.command(sub, "extract-schema", OLD % "extract-schema" + ": every table's columns, indexes, foreign keys "
                       "and row counts as JSON, in its layout (default file schema_<db>.json)",
                       "emfix extract-schema -d experiment.db   |   emfix extract-schema -d em --mysql --host db1 "
                       "--user admin -o schema_prod.json")
    common.add_database_options(p, positional=False)
    p.add_argument("-o", "--output", metavar="FILE", help="where it goes (default: schema_<db name>.json here)")
    p.add_argument("--include-stats", action="store_true", default=True,
                   help="row counts per table (the default, as in the old tool)")
    p.add_argument("--no-stats", dest="include_stats", action="store_false", help="skip the row counts")
    p.add_argument("--format", choices=("json",), default="json", help="json (the only one, as before)")
    common.finish(p, run_extract)

    c = common.command(sub, "compare-schemas", OLD % "compare-schemas" + ": compare two schema files (its "
                       "extract-schema files or emfix's `schema show --json`); writes schema_diff.json and "
                       "schema_diff_report.html into a folder, each change rated; exit 0 once written",
                       "emfix compare-schemas -s v1.json -t v2.json -o reports/ --format html")
    c.add_argument("-s", "--source", required=True, metavar="FILE", help="the schema as it is (old)")
    c.add_argument("-t", "--target", required=True, metavar="FILE", help="the schema wanted (new)")
    _report_options(c, "schema_diff_reports", ("json", "html"))
    common.finish(c, run_compare)

    live = common.command(sub, "compare-live-schemas", OLD % "compare-live-schemas" + ": the same for two live "
                          "databases (either engine); also writes source_schema.json and target_schema.json",
                          "emfix compare-live-schemas --source-db old.db --target-db newdb --target-mysql "
                          "--target-host db1 --format json")
    for side in ("source", "target"):
        group = live.add_argument_group(side)
        group.add_argument("--%s-db" % side, required=True, metavar="DB", help="%s database: path, URL or (with "
                           "--%s-mysql) a MySQL database name" % (side, side))
        group.add_argument("--%s-mysql" % side, action="store_true", help="the %s is a MySQL database" % side)
        group.add_argument("--%s-host" % side, help="MySQL host")
        group.add_argument("--%s-port" % side, type=common.port, help="MySQL port")
        group.add_argument("--%s-user" % side, help="MySQL user")
        group.add_argument("--%s-password" % side, metavar="TEXT", help=common.PASSWORD_HELP)
        group.add_argument("--%s-password-file" % side, metavar="FILE", help="read the password from FILE")
    _report_options(live, "live_schema_diff", ("html",))
    common.add_lock_timeout(live)
    common.finish(live, run_compare_live)

    a = common.command(sub, "analyze-schema", OLD % "analyze-schema" + ": complexity, foreign keys without an "
                       "index, tables without a primary key (the checks `emfix doctor` shows); report in its layout",
                       "emfix analyze-schema -s schema_experiment.json -o analysis.json")
    a.add_argument("-s", "--schema-file", required=True, metavar="FILE", help="schema file (or a database)")
    a.add_argument("-o", "--output", metavar="FILE", help="the report (default: schema_analysis.json here)")
    common.finish(a, run_analyze)

    g = common.command(sub, "generate-migration-plan", OLD % "generate-migration-plan" + ": the SQL that takes the "
                       "source schema of a diff file to its target: real DDL, ordered by --strategy",
                       "emfix generate-migration-plan -d schema_diff_reports/schema_diff.json --strategy safe")
    g.add_argument("-d", "--diff-file", required=True, metavar="DIFF.json",
                   help="a diff file from compare-schemas / compare-live-schemas (the old tool's too)")
    g.add_argument("-o", "--output", metavar="FILE", help="the script (default: migration_plan.sql here)")
    g.add_argument("--strategy", choices=("safe", "fast", "minimal-downtime"), default="safe",
                   help="safe: snapshot first, one statement per step (default); fast: one transaction; "
                        "minimal-downtime: what runs beside writers first")
    common.finish(g, run_plan)


def _report_options(parser, default_dir, default_formats):
    parser.add_argument("-o", "--output", metavar="DIR", help="folder for the reports (default: %s/)" % default_dir)
    parser.add_argument("--format", dest="formats", action="append", choices=REPORT_FORMATS, metavar="FORMAT",
                        help="json, html, text or ddl; repeat for several (default: %s)" % " ".join(default_formats))
    parser.add_argument("--open-html", action="store_true",
                        help="open the HTML report in a browser (without one: says where the file is); emfix "
                             "opens it only when asked")
    parser.set_defaults(default_dir=default_dir, default_formats=default_formats)


# -- extract-schema --------------------------------------------------------------------------------------

def run_extract(args, out):
    from .. import catalog, oldformat
    from ..backends import open_database
    address = common.resolve_address(args)
    if address.is_sqlite:
        name = os.path.splitext(os.path.basename(address.path))[0]
    else:
        name = address.database or "mysql"
    output = args.output or "schema_%s.json" % name
    if address.is_sqlite and not os.path.exists(address.path):
        raise NotFoundError("%s does not exist" % address.path, hint="give the database file (-d PATH)")
    with open_database(address, readonly=True, retry_policy=common.retry_policy(args)) as db:
        declared = catalog.read_catalog(db, counts=args.include_stats)
    data = oldformat.catalog_to_old(declared, stats=args.include_stats)
    common.write_report(output, json.dumps(data, indent=2, allow_nan=False, default=str) + "\n",
                        common.protected_paths(address))
    if out.json:
        common.emit_json({"output": output, "database": declared.database, "tables": len(declared.tables),
                          "rows": sum(t.rows or 0 for t in declared.tables.values()) if args.include_stats else None,
                          "schema_version": data["schema_version"]})
        return EXIT_OK
    out.text("Schema extracted: %s" % output)  # the old tool's lines, without its emoji
    out.text("Output: %s" % output)
    out.text("Database: %s (%s)" % (declared.database, declared.dialect))
    out.text("Tables: %d" % len(declared.tables))
    if args.include_stats:
        out.text("Total rows: %s" % common.n(sum(t.rows or 0 for t in declared.tables.values())))
    out.text("Schema version: %s" % (data["schema_version"] or "Not versioned"))
    out.text("Extracted at: %s" % data["extracted_at"])
    return EXIT_OK


# -- compare-schemas and compare-live-schemas ----------------------------------------------------------------

def _live_address(args, side):
    text = getattr(args, side + "_db")
    password = getattr(args, side + "_password")
    password_file = getattr(args, side + "_password_file")
    if password is not None:
        sys.stderr.write(common.PASSWORD_WARNING)
    if getattr(args, side + "_mysql"):
        return common.address_from_flags(text, getattr(args, side + "_host"), getattr(args, side + "_port"),
                                         getattr(args, side + "_user"), password_file, password=password)
    if getattr(args, side + "_host") or getattr(args, side + "_user") or getattr(args, side + "_port"):
        raise UsageError("--%s-host/--%s-user/--%s-port need --%s-mysql" % ((side,) * 4))
    address = common.address_from_text(text, password_file, password=password)
    if address.is_sqlite and not os.path.exists(address.path):
        raise NotFoundError("%s database %s does not exist" % (side, address.path))
    return address


def run_compare(args, out):
    from .. import schemafiles
    for path in (args.source, args.target):
        if not os.path.exists(path):
            raise NotFoundError("schema file not found: %s" % path)
    source = schemafiles.catalog_of(args.source, counts=True, parse=common.address_from_text)
    target = schemafiles.catalog_of(args.target, parse=common.address_from_text)
    return _write_reports(args, out, source, target, [])


def run_compare_live(args, out):
    from .. import catalog, oldformat
    from ..backends import open_database
    catalogs = []
    for side in ("source", "target"):
        address = _live_address(args, side)
        with open_database(address, readonly=True, retry_policy=common.retry_policy(args)) as db:
            catalogs.append(catalog.read_catalog(db, counts=True))
    source, target = catalogs
    stamp = datetime.datetime.now().isoformat()
    extra = [("source_schema.json", json.dumps(oldformat.catalog_to_old(source, stamp), indent=2, default=str)),
             ("target_schema.json", json.dumps(oldformat.catalog_to_old(target, stamp), indent=2, default=str))]
    return _write_reports(args, out, source, target, extra)


def _write_reports(args, out, source, target, extra):
    # What makes the source like the target: the target is the reference; the source's row counts rate drops.
    from .. import oldformat, report_html, schemadiff
    diff = schemadiff.diff_catalogs(target, source)
    formats = args.formats or list(args.default_formats)
    if args.open_html and "html" not in formats:
        formats.append("html")
    folder = args.output or args.default_dir
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UsageError("%s is not a folder" % folder, hint="-o names the folder the reports go into")
    os.makedirs(folder, exist_ok=True)
    written = []
    for name, text in extra:
        written.append(common.write_report(os.path.join(folder, name), text + "\n"))
    stamp = datetime.datetime.now().isoformat()
    data = oldformat.diff_to_old(diff, source, target, stamp)
    for kind in formats:
        if kind == "json":
            text, name = json.dumps(data, indent=2, allow_nan=False, default=str) + "\n", "schema_diff.json"
        elif kind == "html":
            text, name = report_html.schema_diff_html(diff), "schema_diff_report.html"
        elif kind == "ddl":
            text = "".join(s + ("" if s.startswith("--") else ";") + "\n" for s in diff.script)
            name = "schema_diff.sql"
        else:
            text, name = "".join(line + "\n" for line in summary_lines(diff, data)), "schema_diff.txt"
        written.append(common.write_report(os.path.join(folder, name), text))
    if out.json:
        common.emit_json({"written": written, "overall_impact": diff.overall_rating, "ratings": diff.rating_counts(),
                          "differences": len(diff.differences), "diff": diff})
    else:
        for path in written:
            out.text("written: %s" % path)
        out.lines(summary_lines(diff, data))
    html_path = os.path.join(folder, "schema_diff_report.html")
    if args.open_html:
        common.open_report(html_path, out)
    return EXIT_OK


def summary_lines(diff, old):
    """The old tool's summary lines (scripts grep them), then each change with its rating."""
    counts, summary = diff.rating_counts(), old["summary"]
    yield "Summary:"
    yield "  Overall Impact: %s (%s)" % (diff.overall_rating, ", ".join(
        "%d %s" % (n, r) for r, n in counts.items() if n) or "no changes")
    for label, key in (("Migration Strategy", "migration_strategy"), ("Estimated Downtime", "estimated_downtime"),
                       ("Rollback Complexity", "rollback_complexity")):
        yield "  %s: %s" % (label, old[key])
    yield "Changes:"
    for label, key in (("Tables", "tables"), ("Columns", "columns"), ("Indexes", "indexes")):
        yield "  %s: %d added, %d removed, %d modified" % (label, summary["added_" + key], summary["removed_" + key],
                                                           summary["modified_" + key])
    for d in diff.differences:
        yield "  %-8s %s  (%s)" % (d.rating, d.what, d.reason)
    if counts["BREAKING"]:
        yield "%d breaking change%s: take a snapshot and plan a window" % (counts["BREAKING"], "" if counts[
            "BREAKING"] == 1 else "s")


# -- analyze-schema ----------------------------------------------------------------------------------------

def run_analyze(args, out):
    from .. import schemacheck, schemafiles
    if not os.path.exists(args.schema_file):
        raise NotFoundError("schema file not found: %s" % args.schema_file)
    analysis = schemacheck.analyze_catalog(schemafiles.catalog_of(args.schema_file, parse=common.address_from_text))
    report = schemacheck.old_report(analysis)
    output = args.output or "schema_analysis.json"
    common.write_report(output, json.dumps(report, indent=2, allow_nan=False, default=str) + "\n",
                        [args.schema_file])
    if out.json:
        common.emit_json(dict(report, output=output))
        return EXIT_OK
    out.text("Analysis report: %s" % output)
    out.text("Analysis Summary (%s):" % analysis.database)
    for label, value in (("Total Tables", analysis.table_count), ("Total Columns", analysis.column_count),
                         ("Total Indexes", analysis.index_count), ("Foreign Keys", analysis.foreign_key_count)):
        out.text("  %s: %d" % (label, value))
    out.text("  Complexity Score: %.1f/10" % analysis.complexity_score)
    for title, key in (("Recommendations", "recommendations"), ("Potential Issues", "potential_issues")):
        if report[key]:
            out.text("%s:" % title)
            out.lines("  - %s" % item for item in report[key])
    return EXIT_OK


# -- generate-migration-plan ----------------------------------------------------------------------------------

def run_plan(args, out):
    from .. import catalog, migrationplan, oldformat, schemadiff
    if not os.path.exists(args.diff_file):
        raise NotFoundError("diff file not found: %s" % args.diff_file)
    data = catalog.load_json_file(args.diff_file, "a diff file from compare-schemas --format json")
    source, target = oldformat.catalogs_from_old_diff(data, args.diff_file)
    diff = schemadiff.diff_catalogs(target, source)
    output = args.output or "migration_plan.sql"
    script = migrationplan.render_plan(diff, args.strategy, source.database, target.database,
                                       database=source.database)
    common.write_report(output, script, [args.diff_file])
    if out.json:
        common.emit_json({"output": output, "strategy": args.strategy, "overall_impact": diff.overall_rating,
                          "statements": [s for s in diff.statements if not s.startswith("--")]})
        return EXIT_OK
    out.text("Migration script: %s (%d statements)" % (output, sum(1 for s in diff.statements
                                                                   if not s.startswith("--"))))
    out.text("Strategy: %s" % args.strategy)
    out.text("Impact Level: %s" % diff.overall_rating)
    if diff.overall_rating in ("MAJOR", "BREAKING"):
        out.text("  take a snapshot first and try it on a copy: emfix snapshot create DB")
    return EXIT_OK
