"""Text a person reads in a terminal, computed from the result data classes (no database access)."""

EXAMPLES_SHOWN = 3


def _n(value):
    return "{:,}".format(value)


def _plural(count, word):
    return "%s %s%s" % (_n(count), word, "" if count == 1 else "s")


def _pairs(columns, values):
    return ", ".join("%s=%s" % (c, v) for c, v in zip(columns, values))


def _key(key):
    shown = {k: v for k, v in key.items() if k != "rowid"} or key
    return ", ".join("%s=%s" % kv for kv in shown.items())


def validation_lines(report, target, program="emfix", commands=()):
    """The short summary of a ValidationReport; `commands` are the CLI commands that exist."""
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
                                          _n(report.json.fixable_count)))
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
                note = "  (%s: parent row can be recreated, its own parent exists)" % _n(check.recreatable)
            lines.append("  %-20s %8s  %s -> %s%s" % (rel.child, _n(check.violations), ", ".join(rel.child_columns),
                                                     rel.parent, note))
            for v in check.examples[:EXAMPLES_SHOWN]:
                lines.append("      row %s: no %s with %s" % (
                    _key(v.key), rel.parent, _pairs(v.parent_columns, v.values)))
            if check.violations > EXAMPLES_SHOWN:
                lines.append("      ... and %s more" % _n(check.violations - min(EXAMPLES_SHOWN, len(check.examples))))
    cascade = [(t, c.cascade_rows) for t, c in report.tables.items() if c.cascade_rows]
    if cascade:
        lines.append("")
        lines.append("Orphaned through a parent (a cleanup removes these too):")
        lines.append("  " + ", ".join("%s %s" % (t, _n(n)) for t, n in cascade))
    if report.json.issue_count:
        lines.append("")
        lines.append("Metric JSON (%s):" % ", ".join("%s %s" % (c, _n(n)) for c, n in
                                                     sorted(report.json.categories.items(), key=lambda x: -x[1])))
        # The ones fix-json cannot repair come first: they are the ones that need a person.
        shown = sorted(report.json.issues, key=lambda i: bool(i.fixable))[:EXAMPLES_SHOWN * 2]
        for issue in shown:
            lines.append("  METRIC %s (%s): %s%s" % (issue.metric_id, issue.metric_type, issue.error,
                                                    "" if issue.fixable else "  [needs a person]"))
        if report.json.issue_count > len(shown):
            lines.append("  ... and %s more" % _n(report.json.issue_count - len(shown)))
    warnings = report.warnings()
    if warnings:
        lines.append("")
        lines.append("Warnings:")
        for warning in warnings:
            lines.append("  - " + warning["message"])
    if report.hierarchy is not None:
        lines.append("")
        lines.extend(hierarchy_lines(report.hierarchy))
    steps = next_steps(report, program, target, commands)
    if steps:
        lines.append("")
        lines.append("Next:")
        lines.extend("  " + s for s in steps)
    lines.append("")
    lines.append("checked %s relations and %s metrics' JSON in %.1f s" % (
        _n(len(report.relations)), "all" if not report.json.skipped else "no", report.timings.get("total", 0)))
    return lines


def next_steps(report, program, target, commands):
    steps = []
    if report.passed:
        return steps
    if report.total_violations and "cleanup-orphans" in commands:
        steps.append("%s cleanup-orphans %s --dry-run  # what a cleanup would remove" % (program, target))
    if report.json.fixable_count and "fix-json" in commands:
        steps.append("%s fix-json %s --dry-run     # how the metric JSON would be repaired" % (program, target))
    steps.append("%s validate %s -o report.json  # every count and example in a file" % (program, target))
    return steps


def hierarchy_lines(h):
    lines = ["Experiment %s%s:" % (h.experiment_id, "" if h.exists else " (NOT FOUND)")]
    for level in h.levels:
        lines.append("  %-20s %10s" % (level.table, _n(level.rows)))
    if h.breaks:
        lines.append("  breaks:")
        for b in h.breaks:
            lines.append("    - %s" % b.message)
    elif h.exists:
        lines.append("  no breaks: every row under it has its parent")
    return lines


def snapshot_lines(found, directory):
    if not found:
        return ["no snapshots in %s" % directory]
    lines = ["%-34s %-10s %-19s %10s %12s  %s" % ("ID", "STATUS", "CREATED (UTC)", "SIZE", "ROWS", "DESCRIPTION")]
    for s in found:
        m = s.manifest
        if m is None:
            lines.append("%-34s %-10s %s" % (s.id, s.status, s.problem))
            continue
        lines.append("%-34s %-10s %-19s %8.1f MB %12s  %s%s" % (
            s.id, s.status, m.created_at[:19].replace("T", " "), m.size / 1e6, _n(m.row_total), m.description,
            "  (%s)" % s.problem if s.problem else ""))
    lines.append("in %s" % directory)
    return lines


def cleanup_plan_lines(plan, created=None):
    """What a cleanup removes, table by table, and what the user should know before saying yes."""
    lines = []
    for table, count in plan.remove.items():
        examples = ", ".join(str(e[0] if len(e) == 1 else tuple(e)) for e in plan.examples.get(table, []))
        lines.append("  %-20s %10s   e.g. %s" % (table, _n(count), examples))
    if created:
        lines.append("created missing parents: %s" % ", ".join("%s %s" % (t, _n(n)) for t, n in created.items()))
    elif plan.recreate:
        lines.append("creates missing parents first: %s" % ", ".join(
            "%s %s" % (t, _n(n)) for t, n in plan.recreate.items()))
    elif plan.keepable:
        lines.append("note: %s links point at RESULTS/EPOCH rows that were never written while their run exists "
                     "(old API; real data). --recreate-parents keeps them by creating those rows." % ", ".join(
                         "%s %s" % (t, _n(n)) for t, n in plan.keepable.items()))
    if plan.left_behind:
        lines.append("warning: --tables leaves %s doomed rows in other tables (%s); rows under removed parents become "
                     "new violations: add those tables to --tables, or drop --tables" % (
                         _n(sum(plan.left_behind.values())), ", ".join(
                             "%s %s" % (t, _n(n)) for t, n in plan.left_behind.items())))
    return lines


def cleanup_lines(result, target):
    plan = result.plan
    lines = []
    if result.dry_run:
        lines.append("plan: remove %s rows from %s (dry run: nothing changed)" % (_n(plan.total), target))
    else:
        lines.append("removed %s rows from %s in %s batches (longest write %.0f ms), %.1f s" % (
            _n(sum(result.removed.values())), target, _n(result.batches), result.max_batch_ms, result.seconds))
    lines += cleanup_plan_lines(plan, result.created)
    if result.snapshot_id:
        lines.append("snapshot before: %s" % result.snapshot_id)
    if result.quarantine:
        lines.append("removed rows kept in: %s" % result.quarantine)
        lines.append("undo with: emfix undo %s" % result.quarantine)
    if result.final:
        lines.append("validate afterwards: %s foreign-key violations, %s rows orphaned through a parent" % (
            _n(result.final["total_foreign_key_violations"]), _n(result.final["rows_orphaned_through_parent"])))
    return lines


def fix_json_lines(result, target):
    lines = []
    verb = "would repair" if result.dry_run else "repaired"
    lines.append("%s %s of %s malformed values in %s.%s of %s%s" % (
        verb, _n(result.repaired), _n(result.candidates), result.table, result.column, target,
        " (dry run: nothing changed)" if result.dry_run else ""))
    if result.changes:
        lines.append("  changes: " + ", ".join("%s %s" % (c, _n(n)) for c, n in result.changes.items()))
    for example in result.examples[:5]:
        lines.append("  %s %s" % (result.column, example["id"]))
        lines.append("      before: %s" % example["before"][:120])
        lines.append("      after:  %s" % example["after"][:120])
    if result.nulled:
        lines.append("  NaN/Infinity became null in %s: %s" % (result.column, ", ".join(
            str(i) for i in result.nulled[:20]) + (" ..." if len(result.nulled) > 20 else "")))
    if result.unrepairable:
        lines.append("%s values cannot be repaired without guessing%s:" % (
            _n(result.unrepairable), " (reset to {})" if result.reset else " (left unchanged)"))
        for problem in result.problems[:10]:
            lines.append("  - %s %s: %s (char %s)" % (result.column, problem["id"], problem["reason"],
                                                      problem["position"]))
        if not result.reset:
            lines.append("  --reset-unfixable sets them to {} after keeping the originals")
    if result.snapshot_id:
        lines.append("snapshot before: %s" % result.snapshot_id)
    if result.quarantine and not result.dry_run:
        lines.append("originals kept in: %s" % result.quarantine)
        lines.append("undo with: emfix undo %s" % result.quarantine)
    return lines


def doctor_lines(report):
    yield "emfix doctor: %s" % report.database
    for f in report.findings:
        yield "  %-4s  %-18s %s" % (f.level, f.check, f.message)
        if f.fix and f.level != "OK":
            yield "        %-18s fix: %s" % ("", f.fix)
    counts = {level: sum(1 for f in report.findings if f.level == level) for level in ("FAIL", "WARN")}
    yield "status: %s (%d FAIL, %d WARN; %.1f s)" % (report.status, counts["FAIL"], counts["WARN"], report.seconds)


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
        yield "  %-20s %12s %12s%s  %s" % (c.table, _n(c.source_rows), _n(c.target_rows), sums,
                                          "ok" if c.ok else "DIFFERS")
