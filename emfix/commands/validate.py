"""emfix validate: every relation, the cascade a cleanup would follow, every metric's JSON (read-only)."""

from .. import history
from ..errors import EXIT_OK, EXIT_PROBLEMS, UsageError
from ..outputguard import check_output_path, starts_with
from . import common
from .common import n

EXAMPLES_SHOWN = 3  # the text's lists, unless --limit says otherwise
JSON_ISSUES_SHOWN = 6
KEPT_LIMIT = 100  # examples kept per relation for --json and -o, unless --limit says otherwise


def register(sub):
    p = common.command(sub, "validate", "check every foreign key, the cascade a cleanup would follow, and every "
                "metric's JSON (read-only; exit 0 PASS, 1 FAIL)",
                "emfix validate experiment.db -o violation_report.json\n"
                "  emfix validate --mysql --host db1 --user em -d experiments --experiment 12")
    common.add_database_options(p)
    p.add_argument("-o", "--output", metavar="REPORT", help="write the full report: REPORT.json in the cookbook's "
                   "format, REPORT.html as one page to look at and attach to a ticket")
    p.add_argument("--format", choices=("text", "json", "html"), default=None,
                   help="what is printed (or, with -o, written): text (default), json (as --json), html")
    p.add_argument("--open-html", action="store_true",
                   help="open the HTML report in a browser (on a machine without one: says where the file is)")
    p.add_argument("--limit", type=common.non_negative_int, metavar="N",
                   help="examples listed per relation, and metric JSON issues listed (default: %d and %d in the "
                        "text, %d in --json and -o; 0: none); counts are always complete"
                        % (EXAMPLES_SHOWN, JSON_ISSUES_SHOWN, KEPT_LIMIT))
    p.add_argument("-e", "--experiment", type=common.row_id, metavar="ID", action=common.Once,
                   help="walk this experiment's hierarchy; the exit code then answers for it alone")
    p.add_argument("--deep-json", action="store_true",
                   help="SQLite: also check every value inside each metric object is a number (about 2x the "
                        "JSON scan time; MySQL always does)")
    p.add_argument("--no-quick-check", action="store_true",
                   help="SQLite: skip PRAGMA quick_check (it proves the file is undamaged; about 1 s per 10M rows)")
    p.add_argument("--jobs", type=int, choices=(1, 2), default=2,
                   help="database connections working at once (default 2)")
    p.add_argument("--force", action="store_true", help=common.FORCE_HELP + "; also replace an existing -o file "
                   "that is not an earlier report")
    common.finish(p, run)


def _html_wanted(args):
    if args.format == "html" or args.open_html:
        return True
    return bool(args.output and args.output.lower().endswith((".html", ".htm")) and args.format != "json")


def run(args, out):
    from .. import validate, validatereport
    address = common.resolve_address(args)
    if args.format == "json":
        out.json = True
    html_report = _html_wanted(args)
    if html_report and out.json and not args.output:
        raise UsageError("--json and --format html both print to stdout", hint="write the page with -o report.html")
    options = dict(limit=KEPT_LIMIT if args.limit is None else args.limit, experiment=args.experiment,
                   retry_policy=common.retry_policy(args),
                   progress=common.make_progress("validate", args, out), parallel=args.jobs > 1,
                   deep_json=args.deep_json, force=args.force, quick_check=not args.no_quick_check)
    if html_report:
        from .. import report_html  # only for a page (see snapshot/__init__.py: part of 10 ms a start)
        output = args.output or ("validation_report.html" if args.open_html else None)
        if output:  # a wrong -o is said before the work, not after it
            check_output_path(output, common.protected_paths(address), force=args.force,
                              replaceable=starts_with(report_html.PAGE_HEAD.encode()))
        report = validate.validate(address, **options)
        page = report_html.validation_html(report.to_dict(), address.target(), next_steps(report, address.target()))
        if output:
            common.write_report(output, page, common.protected_paths(address), force=args.force,
                                replaceable=starts_with(report_html.PAGE_HEAD.encode()))
        else:
            common.write_stdout(page)
    elif args.output:  # a wrong -o is said before the work, not after it
        real, in_place = check_output_path(args.output, common.protected_paths(address), force=args.force,
                                           replaceable=starts_with(validatereport.REPORT_HEAD.encode()))
        report = validatereport.write_validation_report(
            real, lambda violation, json_issue: validate.validate(
                address, every_violation=violation, every_json_issue=json_issue, **options),
            in_place=in_place, shown=args.output)
    else:
        report = validate.validate(address, **options)
    history.record(address, "validate", report.status, violations=report.total_violations,
                   json_issues=report.json.issue_count)
    if out.json:
        common.emit_json(report.to_dict())
    elif html_report and not (args.output or args.open_html):
        pass  # the page went to stdout
    else:
        shown = (EXAMPLES_SHOWN, JSON_ISSUES_SHOWN) if args.limit is None else (args.limit, args.limit)
        out.lines(validation_lines(report, address.target(), *shown))
        if args.output and html_report:
            out.text("page written to %s (the counts are complete; examples stop at --limit)" % args.output)
        elif args.output:
            out.text("report written to %s (every violation and JSON issue; the lists above show at most %d "
                     "per relation)" % (args.output, shown[0]))
    if args.open_html:
        common.open_report(args.output or "validation_report.html", out)
    if args.experiment is not None:  # "is experiment 12 intact?": answered for that experiment alone
        return EXIT_OK if report.hierarchy.exists and not report.hierarchy.breaks else EXIT_PROBLEMS
    return EXIT_OK if report.passed else EXIT_PROBLEMS


def _plural(count, word):
    return "%s %s%s" % (n(count), word, "" if count == 1 else "s")


def _pairs(columns, values):
    return ", ".join("%s=%s" % (c, v) for c, v in zip(columns, values))


def _key(key):
    shown = {k: v for k, v in key.items() if k != "rowid"} or key
    return ", ".join("%s=%s" % kv for kv in shown.items())


def validation_lines(report, target, examples_shown=EXAMPLES_SHOWN, issues_shown=JSON_ISSUES_SHOWN):
    """The short summary of a ValidationReport: at most `examples_shown` rows per relation and
    `issues_shown` JSON issues, each list followed by "... and N more" when it holds more."""
    lines = []
    totals = report.total_violations
    head = "%s: %s" % (report.status, target)
    parts = []
    if totals:
        tables = sum(1 for t in report.tables.values() if t.violating_rows)
        parts.append("%s in %s" % (_plural(totals, "foreign-key violation"), _plural(tables, "table")))
    if report.total_cascade_rows:
        parts.append("%s orphaned through a parent" % _plural(report.total_cascade_rows, "row"))
    if report.json.issue_count:
        parts.append("%s (%s fixable)" % (_plural(report.json.issue_count, "metric JSON issue"),
                                          n(report.json.fixable_count)))
    if report.unfinished_restore is not None:
        parts.insert(0, "a restore into it has not finished (see the warning)")
    lines.append(head + (": " + ", ".join(parts) if parts else ": no violations, every metric's JSON is valid"))

    if totals:
        lines.append("")
        lines.append("Foreign keys (rows whose parent row is missing):")
        for check in report.relations:
            if not check.violations:
                continue
            rel = check.relation
            note = ""
            if check.recreatable:
                note = "  (%s: parent row can be recreated, its own parent exists)" % n(check.recreatable)
            lines.append("  %-20s %8s  %s -> %s%s" % (rel.child, n(check.violations), ", ".join(rel.child_columns),
                                                     rel.parent, note))
            examples = check.examples[:examples_shown]
            for v in examples:
                lines.append("      row %s: no %s with %s" % (
                    _key(v.key), rel.parent, _pairs(v.parent_columns, v.values)))
            if check.violations > len(examples):
                lines.append("      ... and %s more" % n(check.violations - len(examples)))
    cascade = [(t, c.cascade_rows) for t, c in report.tables.items() if c.cascade_rows]
    if cascade:
        lines.append("")
        lines.append("Orphaned through a parent (a cleanup removes these too):")
        lines.append("  " + ", ".join("%s %s" % (t, n(count)) for t, count in cascade))
    if report.json.issue_count:
        lines.append("")
        lines.append("Metric JSON (%s):" % ", ".join("%s %s" % (c, n(count)) for c, count in
                                                     sorted(report.json.categories.items(), key=lambda x: -x[1])))
        # The ones fix-json cannot repair come first: they are the ones that need a person.
        shown = sorted(report.json.issues, key=lambda i: bool(i.fixable))[:issues_shown]
        for issue in shown:
            lines.append("  METRIC %s (%s): %s%s" % (issue.metric_id, issue.metric_type, issue.error,
                                                    "" if issue.fixable else "  [needs a person]"))
        if report.json.issue_count > len(shown):
            lines.append("  ... and %s more" % n(report.json.issue_count - len(shown)))
    warnings = report.warnings()
    if warnings:
        lines.append("")
        lines.append("Warnings:")
        for warning in warnings:
            lines.append("  - " + warning["message"])
    if report.hierarchy is not None:
        lines.append("")
        lines.extend(hierarchy_lines(report.hierarchy))
    steps = next_steps(report, target)
    if steps:
        lines.append("")
        lines.append("Next:")
        lines.extend("  " + s for s in steps)
    lines.append("")
    lines.append("checked %s relations and %s metrics' JSON in %.1f s" % (
        n(len(report.relations)), "all" if not report.json.skipped else "no", report.timings.get("total", 0)))
    return lines


def next_steps(report, target):
    steps = []
    if report.passed:
        return steps
    if report.total_violations:
        steps.append("emfix cleanup-orphans %s --dry-run  # what a cleanup would remove" % target)
    if report.json.fixable_count:
        steps.append("emfix fix-json %s --dry-run     # how the metric JSON would be repaired" % target)
    steps.append("emfix validate %s -o report.json  # every count and example in a file" % target)
    return steps


def hierarchy_lines(h):
    lines = ["Experiment %s%s:" % (h.experiment_id, "" if h.exists else " (NOT FOUND)")]
    for level in h.levels:
        lines.append("  %-20s %10s" % (level.table, n(level.rows)))
    if h.breaks:
        lines.append("  breaks:")
        for b in h.breaks:
            lines.append("    - %s" % b.message)
    elif h.exists:
        lines.append("  no breaks: every row under it has its parent")
    return lines
