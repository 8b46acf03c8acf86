"""HTML renderers: one self-contained page per report, to look at and attach to a ticket.

They take the plain data the other renderers take (`ValidationReport.to_dict()`, a `SchemaDiff`), so
the figures on the page are the figures `--json` prints. No script, no network, no external file:
inline CSS and an inline SVG picture; every value from a database goes through `html.escape`.
Each figure a reader (or a test) looks for carries `data-count="NAME"`.
"""

import html

from . import schemaddl

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;margin:24px auto;
max-width:1100px;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:22px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:3px}
.meta{color:#57606a;font-size:12px}.status{display:inline-block;font-weight:700;padding:2px 10px;border-radius:4px;
color:#fff}.PASS{background:#1a7f37}.FAIL{background:#cf222e}
table{border-collapse:collapse;width:100%;margin:6px 0}th,td{border:1px solid #d0d7de;padding:3px 7px;text-align:left;
vertical-align:top;font-size:13px}th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;flex-wrap:wrap;gap:10px}.card{border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;
min-width:150px}.card b{display:block;font-size:22px}.card span{color:#57606a;font-size:12px}
pre,code{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}pre{background:#f6f8fa;padding:8px;
white-space:pre-wrap;word-break:break-word;border-radius:6px;margin:4px 0}
.rating{font-weight:700;padding:1px 6px;border-radius:3px;font-size:12px;color:#fff}.COSMETIC{background:#8c959f}
.card .rating{color:#fff;font-size:18px}.MINOR{background:#0969da}.MAJOR{background:#bc4c00}
.BREAKING{background:#cf222e}
.legend span{margin-right:14px;font-size:12px}.sw{display:inline-block;width:22px;height:4px;vertical-align:middle;
margin-right:4px}svg{width:100%;height:auto;border:1px solid #d0d7de;border-radius:6px;background:#fff}
@media print{body{margin:0;max-width:none;font-size:10px}h1{font-size:16px}h2{font-size:13px;margin:10px 0 4px;
break-after:avoid}tr,.card,svg{break-inside:avoid}tr.clean,.more,.excerpt{display:none}
th,td{font-size:9px;padding:1px 4px}
.card{padding:3px 8px;min-width:0}.card b{font-size:15px}pre{padding:3px;font-size:9px}svg{max-height:105mm}
.cards{gap:5px}.print-only{display:block}}.print-only{display:none}
"""

EXAMPLES_PER_TABLE = 3  # the page is for reading and printing: every example is in the JSON report
EXAMPLES_PER_KIND = 2
DAMAGE_COLOURS = {"violations": "#cf222e", "orphaned": "#bc4c00", "null": "#9a6700", "ok": "#1a7f37"}


def esc(value):
    return html.escape("" if value is None else str(value), quote=True)


def count(name, value):
    return '<b data-count="%s">%s</b>' % (esc(name), esc("{:,}".format(value) if isinstance(value, int) else value))


PAGE_HEAD = '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><meta name="generator" content="emfix">'


def is_page(path):
    """An earlier page emfix wrote (it may be replaced without --force)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(len(PAGE_HEAD)) == PAGE_HEAD.encode()
    except OSError:
        return False


def page(title, body):
    return (PAGE_HEAD + '<meta name="viewport" content="width=device-width,initial-scale=1">'
            "<title>%s</title><style>%s</style></head><body>\n%s\n</body></html>\n" % (esc(title), STYLE, body))


def card(name, value, label):
    return '<div class="card">%s<span>%s</span></div>' % (count(name, value), esc(label))


# -- validate ----------------------------------------------------------------------------------------

# Where each Experiment Manager table sits in the picture: (x, y); the hierarchy runs down the left.
BOX_W, BOX_H = 190, 40
POSITIONS = {
    "EXPERIMENT": (120, 20), "TRIAL": (120, 130), "TRIAL_RUN": (120, 240), "EPOCH": (120, 420), "BATCH": (120, 560),
    "RESULTS": (350, 280),
    "EXPERIMENT_ARTIFACT": (580, 20), "TRIAL_ARTIFACT": (580, 85), "TRIAL_RUN_ARTIFACT": (580, 150),
    "RESULTS_METRIC": (580, 225), "RESULTS_ARTIFACT": (580, 320), "EPOCH_METRIC": (580, 385),
    "EPOCH_ARTIFACT": (580, 450), "BATCH_METRIC": (580, 515), "BATCH_ARTIFACT": (580, 580),
    "METRIC": (860, 300), "ARTIFACT": (860, 400),
}
SVG_W, SVG_H = 1070, 630


def _damage(rel):
    if rel.get("violations"):
        return "violations"
    if rel.get("orphaned_through_parent"):
        return "orphaned"
    if rel.get("null_keys"):
        return "null"
    return "ok"


def _edge_label(rel):
    parts = []
    if rel.get("violations"):
        parts.append("%s missing parent" % "{:,}".format(rel["violations"]))
    if rel.get("orphaned_through_parent"):
        parts.append("%s orphaned" % "{:,}".format(rel["orphaned_through_parent"]))
    if rel.get("null_keys"):
        parts.append("%s NULL" % "{:,}".format(rel["null_keys"]))
    return ", ".join(parts)


def _anchor(table, toward):
    x, y = POSITIONS[table]
    tx = POSITIONS[toward][0]
    if tx > x + BOX_W:
        return x + BOX_W, y + BOX_H / 2
    if tx + BOX_W < x:
        return x, y + BOX_H / 2
    return x + BOX_W / 2, (y + BOX_H if POSITIONS[toward][1] > y else y)


def hierarchy_svg(report):
    """The experiment hierarchy and its metric and artifact links, each relation marked by its damage."""
    tables = report.get("tables", {})
    present = set(report.get("schema", {}).get("tables") or tables)
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" role="img" '
             'aria-label="experiment hierarchy" data-picture="hierarchy">' % (SVG_W, SVG_H),
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="10" markerHeight="10" '
             'markerUnits="userSpaceOnUse" orient="auto-start-reverse">'
             '<path d="M0,0 L10,5 L0,10 z" fill="#57606a"/></marker></defs>']
    labels = []
    for rel in report.get("relations", []):
        child, parent = rel.get("table"), rel.get("parent_table")
        if child not in POSITIONS or parent not in POSITIONS or child == parent:
            continue
        damage = _damage(rel)
        (x1, y1), (x2, y2) = _anchor(child, parent), _anchor(parent, child)
        width = 1.5 if damage == "ok" else 3.5
        parts.append('<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="%s" stroke-width="%s"%s '
                     'marker-end="url(#arrow)" data-relation="%s-%s" data-damage="%s"/>' % (
                         x1, y1, x2, y2, DAMAGE_COLOURS[damage], width,
                         ' stroke-dasharray="6 4"' if damage == "null" else "", esc(child), esc(parent), damage))
        label = _edge_label(rel)
        if label:  # beside the child's end of the line: two lines from one box go to opposite sides
            if abs(x1 - x2) < 1:
                lx, ly, anchor = x1 - 8, (y1 + y2) / 2 + 4, "end"
            elif x2 > x1:
                lx, ly, anchor = x1 + 6, y1 - 6, "start"
            else:
                lx, ly, anchor = x1 - 6, y1 - 6, "end"
            labels.append('<text x="%.0f" y="%.0f" text-anchor="%s" font-size="12" font-weight="700" '
                          'fill="%s" stroke="#fff" stroke-width="3" paint-order="stroke" data-edge-label="%s-%s">'
                          '%s</text>' % (lx, ly, anchor, DAMAGE_COLOURS[damage], esc(child), esc(parent), esc(label)))
    for table, (x, y) in POSITIONS.items():
        info = tables.get(table, {})
        missing = table not in present
        bad = info.get("violating_rows", 0)
        orphaned = info.get("orphaned_through_parent", 0)
        colour = "#cf222e" if bad else "#bc4c00" if orphaned else "#8c959f" if missing else "#1a7f37"
        fill = "#fff5f5" if bad else "#fff8f0" if orphaned else "#f6f8fa" if missing else "#f0fff4"
        note = "not in this database" if missing else ", ".join(
            p for p in ("%s bad" % "{:,}".format(bad) if bad else "",
                        "%s orphaned" % "{:,}".format(orphaned) if orphaned else "") if p) or "intact"
        parts.append('<g data-table="%s"><rect x="%d" y="%d" width="%d" height="%d" rx="6" fill="%s" stroke="%s" '
                     'stroke-width="2"%s/><text x="%d" y="%d" font-size="13" font-weight="700" fill="#1f2328">%s'
                     '</text><text x="%d" y="%d" font-size="11" fill="%s">%s</text></g>' % (
                         esc(table), x, y, BOX_W, BOX_H, fill, colour, ' stroke-dasharray="4 3"' if missing else "",
                         x + 8, y + 16, esc(table), x + 8, y + 32, colour, esc(note)))
    parts += labels
    parts.append("</svg>")
    legend = ('<p class="legend">' + "".join(
        '<span><i class="sw" style="background:%s"></i>%s</span>' % (DAMAGE_COLOURS[k], esc(text)) for k, text in (
            ("violations", "rows whose parent row is missing"), ("orphaned", "orphaned through a missing parent"),
            ("null", "NULL keys (allowed)"), ("ok", "intact"))) + "<span>arrows point from child to parent</span></p>")
    return "\n".join(parts) + legend


def validation_html(report, target, steps=(), before=""):
    """`report`: ValidationReport.to_dict(); `steps`: the commands that repair what it found; `before`: an
    HTML section shown first (a repair's before -> after)."""
    summary = report.get("summary", {})
    status = summary.get("overall_status", "FAIL")
    damaged = [(t, c) for t, c in report.get("tables", {}).items()
               if c.get("violating_rows") or c.get("orphaned_through_parent")]
    body = ['<h1>emfix validate <span class="status %s" data-count="overall_status">%s</span></h1>' % (
        esc(status), esc(status)),
        '<p class="meta">%s &middot; generated %s &middot; emfix %s</p>' % (
            esc(target), esc(report.get("generated_at")), esc(report.get("emfix_version")))] + (
        [before] if before else [])
    body.append('<div class="cards">%s%s%s%s%s</div>' % (
        card("total_foreign_key_violations", summary.get("total_foreign_key_violations", 0),
             "foreign-key violations (rows whose parent is missing)"),
        card("rows_orphaned_through_parent", summary.get("rows_orphaned_through_parent", 0),
             "rows orphaned through a parent"),
        card("total_json_metric_issues", summary.get("total_json_metric_issues", 0), "metric JSON issues"),
        card("fixable_json_issues", summary.get("fixable_json_issues", 0), "of them fixable by fix-json"),
        card("damaged_tables", len(damaged), "tables with damage")))
    if damaged:
        body.append("<p>Tables with damage: %s</p>" % ", ".join("<code>%s</code>" % esc(t) for t, _ in damaged))
    body.append("<h2>The experiment hierarchy</h2>")
    body.append(hierarchy_svg(report))
    body.append("<h2>Relations</h2>")
    rows = []
    for rel in report.get("relations", []):
        key = "%s-%s" % (rel.get("table"), rel.get("parent_table"))
        clean = not (rel.get("violations") or rel.get("orphaned_through_parent") or rel.get("null_keys"))
        rows.append('<tr data-relation="%s"%s><td><code>%s(%s)</code> &rarr; <code>%s(%s)</code></td>'
                    '<td class="n" data-count="violations:%s">%s</td><td class="n" data-count="orphaned:%s">%s</td>'
                    '<td class="n" data-count="null_keys:%s">%s</td></tr>' % (
                        esc(key), ' class="clean"' if clean else "", esc(rel.get("table")),
                        esc(", ".join(rel.get("columns", []))),
                        esc(rel.get("parent_table")), esc(", ".join(rel.get("parent_columns", []))), esc(key),
                        esc(rel.get("violations", 0)), esc(key), esc(rel.get("orphaned_through_parent", 0)), esc(key),
                        esc(rel.get("null_keys", 0))))
    body.append("<table><tr><th>relation (child &rarr; parent)</th><th>missing parent</th><th>orphaned through a "
                "parent</th><th>NULL keys</th></tr>%s</table>" % "".join(rows))
    if any('class="clean"' in r for r in rows):
        body.append('<p class="meta print-only">printed: only the relations with damage, and one example of each '
                    "kind</p>")
    examples = report.get("foreign_key_violation_records") or report.get("foreign_key_violations") or {}
    shown = [(t, items) for t, items in examples.items() if items]
    if shown:
        body.append("<h2>Examples of violations</h2><table><tr><th>table</th><th>row</th><th>missing</th></tr>")
        for table, items in shown:
            for n, v in enumerate(items[:EXAMPLES_PER_TABLE]):
                if isinstance(v, dict):
                    row = ", ".join("%s=%s" % kv for kv in (v.get("key") or {}).items())
                    what = "%s (%s)" % (v.get("parent_table"), ", ".join(
                        "%s=%s" % kv for kv in zip(v.get("parent_columns") or [], v.get("values") or [])))
                else:
                    row, what = "", v
                body.append("<tr%s><td><code>%s</code></td><td><code>%s</code></td><td>%s</td></tr>" % (
                    ' class="more"' if n else "", esc(table), esc(row), esc(what)))
        body.append("</table>")
    body.append(_experiment_section(report.get("hierarchy")))
    body.append(_json_section(report))
    warnings = report.get("warnings") or []
    if warnings:
        body.append("<h2>Warnings</h2><ul>%s</ul>" % "".join("<li>%s</li>" % esc(w.get("message")) for w in warnings))
    if steps:
        body.append("<h2>What to run</h2><pre>%s</pre>" % esc("\n".join(steps)))
    return page("emfix validate %s: %s" % (status, target), "\n".join(body))


def _experiment_section(h):
    """validate --experiment ID: that experiment's levels and breaks."""
    if not h:
        return ""
    head = "Experiment %s" % h.get("experiment_id")
    if not h.get("exists"):
        return "<h2>%s</h2><p>Not found.</p>" % esc(head)
    rows = "".join('<tr><td><code>%s</code></td><td class="n">%s</td></tr>' % (esc(t), esc("{:,}".format(n)))
                   for t, n in (h.get("levels") or {}).items())
    breaks = h.get("breaks") or []
    return ('<h2>%s: <span data-field="experiment_title">%s</span></h2><table><tr><th>table</th><th>rows under it'
            '</th></tr>%s</table>%s' % (esc(head), esc(h.get("title")), rows,
                                        "<ul>%s</ul>" % "".join("<li>%s</li>" % esc(b.get("message")) for b in breaks)
                                        if breaks else "<p>No breaks: every row under it has its parent.</p>"))


def _json_section(report):
    info = report.get("json") or {}
    categories = info.get("categories") or {}
    if not categories:
        return "<h2>Metric JSON</h2><p>Every metric's JSON is valid.</p>"
    issues = report.get("json_metric_issues") or []
    out = ["<h2>Metric JSON</h2><table><tr><th>kind</th><th>metrics</th><th>examples</th></tr>"]
    for kind, number in sorted(categories.items(), key=lambda kv: -kv[1]):
        examples = [i for i in issues if i.get("category") == kind][:EXAMPLES_PER_KIND]
        out.append('<tr><td>%s</td><td class="n" data-count="json:%s">%s</td><td>%s</td></tr>' % (
            esc(kind), esc(kind), esc(number), "".join(
                '<div%s>METRIC %s (%s): %s<pre class="excerpt">%s</pre></div>' % (
                    ' class="more"' if n else "", esc(i.get("metric_id")), esc(i.get("metric_type")),
                    esc(i.get("error")), esc(i.get("data")))
                for n, i in enumerate(examples))))
    out.append("</table>")
    return "".join(out)


# -- schema diff ---------------------------------------------------------------------------------------

def schema_diff_html(diff):
    """`diff`: a schemadiff.SchemaDiff (its changes already rated)."""
    counts = diff.rating_counts()
    body = ["<h1>emfix schema diff</h1>",
            '<p class="meta">A (the reference): <code>%s</code> &middot; B (the DDL is for it, %s): <code>%s</code></p>'
            % (esc(diff.a), esc(diff.dialect), esc(diff.b))]
    body.append('<div class="cards">%s<div class="card"><b><span class="rating %s" data-count="overall_rating">%s'
                "</span></b><span>overall rating</span></div>%s</div>" % (
                    card("differences", len(diff.differences), "changes"), esc(diff.overall_rating),
                    esc(diff.overall_rating), "".join(card(r, c, r.lower()) for r, c in counts.items())))
    if diff.same:
        body.append("<p>The two schemas are the same.</p>")
    else:
        body.append("<h2>Changes</h2><table><tr><th>rating</th><th>table</th><th>change</th><th>why it rates so</th>"
                    "<th>DDL</th></tr>")
        for d in diff.differences:
            body.append('<tr data-kind="%s"><td><span class="rating %s">%s</span></td><td><code>%s</code></td>'
                        "<td>%s</td><td>%s</td><td><pre>%s</pre></td></tr>" % (
                            esc(d.kind), esc(d.rating), esc(d.rating), esc(d.table), esc(d.what), esc(d.reason),
                            esc("\n".join(d.fix) or "(made by the table's rebuild below)" if d.rebuild else
                                "\n".join(d.fix))))
        body.append("</table><h2>DDL that makes B like A</h2><p class=\"meta\">lines starting with -- are left for "
                    "a person to decide</p><pre>%s</pre>" % esc("\n".join(
                        schemaddl.script_lines(diff.script))))
    return page("emfix schema diff: %s vs %s" % (diff.a, diff.b), "\n".join(body))


def open_in_browser(path):
    """True when a browser was started on `path`. Where there is no display (a server, a CI job), no
    browser is looked for: a text browser must not take over the terminal."""
    import os
    import sys
    import webbrowser
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        webbrowser.get()
        return bool(webbrowser.open("file://" + os.path.abspath(path)))
    except webbrowser.Error:
        return False


def _figures_text(figures):
    if figures is None:
        return "(not checked: a dry run)"
    parts = [("%s missing parent" % figures.get("violations", 0)) if figures.get("violations") else "",
             ("%s orphaned" % figures.get("orphaned_through_parent", 0)) if figures.get("orphaned_through_parent")
             else "", ("%s JSON issues" % figures.get("json_issues", 0)) if figures.get("json_issues") else ""]
    return ", ".join(p for p in parts if p) or "clean"


def repair_section(result):
    """A repair's before -> after per table, what is left and why, and the one command that undoes it all
    (`result`: RepairResult.to_dict())."""
    verdict = "CLEAN" if result.get("clean") else "PLAN" if result.get("dry_run") else "LEFT"
    rows = "".join("<tr><td><code>%s</code></td><td>%s</td><td>%s</td></tr>" % (
        esc(r["table"]), esc(_figures_text(r["before"])), esc(_figures_text(r["after"])))
        for r in result.get("per_table", []))
    left = "".join("<li>%s</li>" % esc(line) for line in result.get("remaining") or [])
    undo = result.get("undo")
    return ('<h2>Repair <span class="status %s" data-count="repair_status">%s</span></h2>'
            '<div class="cards">%s%s</div>'
            '<table><tr><th>table</th><th>before</th><th>after</th></tr>%s</table>%s%s' % (
                "PASS" if verdict == "CLEAN" else "FAIL", esc(verdict),
                card("rows_removed", sum((result.get("removed") or {}).values()), "rows removed"),
                card("values_repaired", result.get("repaired", 0) + result.get("reset", 0), "metric values rewritten"),
                rows, "<h3>Left, and why</h3><ul>%s</ul>" % left if left else "",
                "<p>Undo all of it: <code>%s</code></p>" % esc(undo) if undo else ""))
