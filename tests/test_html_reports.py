"""The HTML pages (validate -o report.html, schema diff --format html) opened in a real browser:
Debian's chromium, headless. The DOM it builds holds the figures `--json` prints and the hierarchy
picture; a value from the database that looks like a tag stays text; a screenshot is kept under
the test's temporary folder. Without chromium these tests skip and say so."""

import html.parser
import json
import os
import re
import shutil
import subprocess

import pytest
from conftest import make_demo, run_cli, url_of

from emfix.address import PASSWORD_ENV, DatabaseAddress
from emfix.backends import open_database

SCRIPT_TYPE = "<script>document.title='owned'</script>"  # fits METRIC.type's VARCHAR(50)
SCRIPT_DEFAULT = "<script>alert(1)</script>"


@pytest.fixture
def chromium(tmp_path):
    """Run chromium headless on a file: ("dom", path) gives the DOM after loading, ("png", path) a screenshot."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        pytest.skip("no chromium on this machine (apt-get install -y chromium): the HTML pages are not opened "
                    "in a browser here")
    profile = tmp_path / "chromium-profile"
    profile.mkdir()

    def run(kind, page, png=None):
        args = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--user-data-dir=%s" % profile]
        if kind == "dom":
            args += ["--dump-dom"]
        elif kind == "pdf":
            args += ["--no-pdf-header-footer", "--print-to-pdf=%s" % png]
        else:
            args += ["--screenshot=%s" % png, "--window-size=1200,1600"]
        done = subprocess.run(args + ["file://%s" % os.path.abspath(str(page))], capture_output=True, text=True,
                              timeout=120, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout
    return run


class Figures(html.parser.HTMLParser):
    """data-count="NAME" -> its text; the elements and attributes a test looks for."""

    def __init__(self):
        super().__init__()
        self.counts, self.open, self.tags, self.title, self.attrs = {}, [], [], "", []
        self.in_title = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        self.attrs.append((tag, attrs))
        self.in_title = tag == "title"
        if "data-count" in attrs:
            self.open.append([attrs["data-count"], ""])

    def handle_endtag(self, tag):
        if tag == "title":
            self.in_title = False
        if self.open and tag in ("b", "span", "td"):
            name, text = self.open.pop()
            self.counts[name] = text.strip()

    def handle_data(self, data):
        if self.in_title:
            self.title += data
        for item in self.open:
            item[1] += data


def figures(dom):
    parser = Figures()
    parser.feed(dom)
    return parser


def number(text):
    return int(text.replace(",", ""))


def env_of(address):
    return {PASSWORD_ENV: address.password} if address.password else {}


def add_script_values(address):
    """A metric type that is a script tag, and its value broken JSON with a tag in it."""
    with open_database(address) as db:
        metric = db.scalar("SELECT min(id) FROM METRIC")
        db.execute("UPDATE METRIC SET type = ?, per_label_val = ? WHERE id = ?",
                   (SCRIPT_TYPE, '{"a": <b>bold</b>', metric))


def test_validate_page_in_chromium_holds_the_json_figures_and_the_hierarchy(address, tmp_path, chromium):
    make_demo(address)
    add_script_values(address)
    page = tmp_path / "report.html"
    result = run_cli("validate", url_of(address), "-o", str(page), env=env_of(address))
    assert result.returncode == 1 and "page written to" in result.stdout, result.stderr
    as_json = run_cli("validate", url_of(address), "--json", env=env_of(address))
    data = json.loads(as_json.stdout)
    source = page.read_text()
    assert "<script" not in source and "&lt;script&gt;document.title" in source
    assert "http://" not in source.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in source

    dom = chromium("dom", page)
    found = figures(dom)
    assert found.title.startswith("emfix validate FAIL")  # the metric type stayed text: no script ran
    assert "script" not in found.tags and SCRIPT_TYPE in html_text(dom)
    summary = data["summary"]
    assert found.counts["overall_status"] == summary["overall_status"] == "FAIL"
    for name in ("total_foreign_key_violations", "rows_orphaned_through_parent", "total_json_metric_issues",
                 "fixable_json_issues"):
        assert number(found.counts[name]) == summary[name], name
    damaged = [t for t, c in data["tables"].items() if c["violating_rows"] or c["orphaned_through_parent"]]
    assert number(found.counts["damaged_tables"]) == len(damaged)
    for rel in data["relations"]:
        key = "%s-%s" % (rel["table"], rel["parent_table"])
        assert number(found.counts["violations:" + key]) == rel["violations"]
        assert number(found.counts["orphaned:" + key]) == rel["orphaned_through_parent"]
        assert number(found.counts["null_keys:" + key]) == rel["null_keys"]
    for kind, count in data["json"]["categories"].items():
        assert number(found.counts["json:" + kind]) == count

    # the picture: every table of the hierarchy, each relation marked by its damage
    svg = [a for t, a in found.attrs if t == "svg" and a.get("data-picture") == "hierarchy"]
    assert svg
    boxes = {a["data-table"] for t, a in found.attrs if t == "g" and "data-table" in a}
    assert {"EXPERIMENT", "TRIAL", "TRIAL_RUN", "EPOCH", "BATCH", "METRIC", "ARTIFACT", "BATCH_METRIC"} <= boxes
    lines = {a["data-relation"]: a["data-damage"] for t, a in found.attrs if t == "line"}
    by_key = {"%s-%s" % (r["table"], r["parent_table"]): r for r in data["relations"]}
    assert lines["TRIAL-EXPERIMENT"] == "violations" and by_key["TRIAL-EXPERIMENT"]["violations"] == 1
    assert lines["BATCH_METRIC-BATCH"] == "orphaned"
    assert lines["TRIAL_RUN_ARTIFACT-TRIAL_RUN"] == "violations"
    assert lines["EXPERIMENT_ARTIFACT-EXPERIMENT"] == "ok"
    assert "1 missing parent" in html_text(dom)
    assert "emfix cleanup-orphans %s --dry-run" % url_of(address) in html_text(dom)

    png = tmp_path / "validate-report.png"
    chromium("png", page, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20000
    assert printed_pages(chromium, page, tmp_path / "validate-report.pdf") <= 2


def printed_pages(chromium, page, pdf):
    chromium("pdf", page, pdf)
    return len(re.findall(rb"/Type\s*/Page[^s]", pdf.read_bytes()))


def html_text(dom):
    """The page's text as a reader sees it (tags dropped, entities decoded)."""
    parts = []

    class Text(html.parser.HTMLParser):
        def handle_data(self, data):
            parts.append(data)
    Text().feed(dom)
    return "".join(parts)


def test_validate_format_html_prints_the_page_and_writes_nothing_else(tmp_path):
    db = tmp_path / "experiment.db"
    make_demo(DatabaseAddress("sqlite", path=str(db)))
    result = run_cli("validate", str(db), "--format", "html", cwd=str(tmp_path))
    assert result.returncode == 1 and result.stdout.startswith("<!DOCTYPE html>") and result.stderr == ""
    opened = run_cli("validate", str(db), "--open-html", cwd=str(tmp_path), env={"DISPLAY": "", "WAYLAND_DISPLAY": ""})
    assert "no browser to open here (no display); the report is %s" % (tmp_path / "validation_report.html") \
        in opened.stderr
    assert (tmp_path / "validation_report.html").exists()
    refused = run_cli("validate", str(db), "-o", str(db), "--format", "html", cwd=str(tmp_path))
    assert refused.returncode == 2 and "refusing to write over" in refused.stderr


def test_schema_diff_page_in_chromium_holds_the_json_figures(address, tmp_path, chromium):
    reference = tmp_path / "reference.db"
    make_demo(DatabaseAddress("sqlite", path=str(reference)))
    with open_database(DatabaseAddress("sqlite", path=str(reference))) as db:
        db.execute("ALTER TABLE TRIAL ADD COLUMN note VARCHAR(60) DEFAULT '%s'" % SCRIPT_DEFAULT)
    make_demo(address)
    with open_database(address) as db:
        for statement in ("CREATE TABLE scratch (a INT)", "INSERT INTO scratch VALUES (1)",
                          "CREATE INDEX ix_type ON METRIC (type)"):
            db.execute(statement)
    page = tmp_path / "diff.html"
    result = run_cli("schema", "diff", str(reference), url_of(address), "--format", "html", "-o", str(page),
                     env=env_of(address))
    assert result.returncode == 1 and result.stdout == "", result.stderr
    data = json.loads(run_cli("schema", "diff", str(reference), url_of(address), "--json", env=env_of(address)).stdout)
    assert "<script" not in page.read_text()
    dom = chromium("dom", page)
    found = figures(dom)
    assert "script" not in found.tags and found.title.startswith("emfix schema diff")
    assert number(found.counts["differences"]) == len(data["differences"]) == 3
    assert found.counts["overall_rating"] == data["overall_rating"] == "BREAKING"
    for rating, count in data["ratings"].items():
        assert number(found.counts[rating]) == count
    kinds = [a["data-kind"] for t, a in found.attrs if t == "tr" and "data-kind" in a]
    assert sorted(kinds) == sorted(d["kind"] for d in data["differences"])
    text = html_text(dom)
    assert SCRIPT_DEFAULT in text  # the column's default, shown as text
    assert "dropping the table loses its data (1 row)" in text
    png = tmp_path / "schema-diff.png"
    chromium("png", page, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert printed_pages(chromium, page, tmp_path / "schema-diff.pdf") == 1


def test_an_experiment_title_that_is_a_script_tag_shows_as_text(tmp_path, chromium):
    db = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(db)
    with open_database(db) as con:
        con.execute("UPDATE EXPERIMENT SET title = ? WHERE id = 1", (SCRIPT_TYPE,))
    page = tmp_path / "experiment-1.html"
    result = run_cli("validate", db.path, "--experiment", "1", "--format", "html", "-o", str(page))
    assert result.returncode == 0, result.stderr  # experiment 1 is whole
    assert "<script" not in page.read_text()
    dom = chromium("dom", page)
    found = figures(dom)
    assert "script" not in found.tags and not found.title.startswith("owned")
    assert "Experiment 1: %s" % SCRIPT_TYPE in html_text(dom)
    assert json.loads(run_cli("validate", db.path, "--experiment", "1", "--json").stdout)["hierarchy"]["title"] \
        == SCRIPT_TYPE


def test_repair_page_in_chromium_holds_the_json_figures_and_the_undo(tmp_path, chromium):
    """`repair -o repair.html`: validate's page of the result, the repair's before -> after first, the undo."""
    from emfix.address import DatabaseAddress
    db = DatabaseAddress("sqlite", path=str(tmp_path / "experiment.db"))
    make_demo(db)
    page = tmp_path / "repair.html"
    done = run_cli("repair", db.path, "--yes", "--json", "-o", str(page))
    assert done.returncode == 1, done.stderr  # two values are left: the demo's unfixable ones
    data = json.loads(done.stdout)
    found = figures(chromium("dom", page))
    assert found.counts["repair_status"] == "LEFT"
    assert number(found.counts["rows_removed"]) == sum(data["removed"].values())
    assert number(found.counts["values_repaired"]) == data["repaired"] + data["reset"]
    assert number(found.counts["total_json_metric_issues"]) == data["after"]["json_metric_issues"]
    dom = chromium("dom", page)
    assert data["undo"] in html.unescape(dom)
    chromium("png", page, tmp_path / "repair.png")
