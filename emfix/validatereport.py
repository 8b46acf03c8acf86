"""validate's report file, written as it is found: every violation and every metric JSON issue streamed
to the file (nothing held in memory), then the rest of ValidationReport.to_dict().

The layout is to_dict()'s: its first three keys (STREAMED) are the ones whose items arrive while the
validation runs, so they are written first, item by item, each as to_dict() writes it
(validate.old_violation_text, Violation.to_dict, JsonIssue.to_dict); every other key is then written
from to_dict() itself, in its order.
"""

import json
import shutil
import tempfile
import threading

from .errors import NoSpaceError, NotWritableError, UsageError
from .fileutil import durable_output, is_disk_full
from .jsonable import to_jsonable

STREAMED = ("foreign_key_violations", "foreign_key_violation_records", "json_metric_issues")
REPORT_HEAD = '{\n  "%s": {' % STREAMED[0]  # how a report begins: an earlier one is replaced without --force


def write_validation_report(path, run, in_place=False, shown=None):
    """run(every_violation, every_json_issue) -> ValidationReport, its findings streamed into the report at
    `path` (fileutil.durable_output: complete or not there; `in_place` for a device or FIFO). A failure to
    write is NotWritableError (a full disk NoSpaceError, a reader that went away UsageError), named by
    `shown` (the path as the user gave it); what the run raises passes as it is. The report returned."""
    shown = shown or path
    stage = "write"
    try:
        with durable_output(path, in_place=in_place) as handle:
            writer = ReportWriter(handle, lambda f: _Checked(f, shown, in_place))
            stage = "run"
            report = run(writer.violation, writer.json_issue)
            stage = "write"
            writer.finish(report.to_dict())
    except BrokenPipeError:
        if stage == "run":
            raise
        raise UsageError(_went_away(shown)) from None
    except OSError as exc:
        if stage == "run":
            raise
        raise _not_written(shown, exc) from None
    return report


def _went_away(shown):
    return "cannot write report %s: its reader went away" % shown


def _not_written(shown, exc):
    if is_disk_full(exc):  # (round 46: /dev/full was told to check that its directory exists)
        return NoSpaceError("cannot write report %s: %s" % (shown, exc.strerror or exc),
                            hint="free some space or write elsewhere")
    return NotWritableError("cannot write report %s: %s" % (shown, exc.strerror or exc),
                            hint="check that the directory exists and is writable")


class _Checked:
    """The report's handle (or a spool of it): an error writing it says so, as a failure to write the
    report (not a crash, nor a failure of the validation)."""

    def __init__(self, handle, shown, in_place):
        self.handle, self.shown, self.in_place = handle, shown, in_place

    def __getattr__(self, name):  # read, seek, close: as the handle does them
        return getattr(self.handle, name)

    def write(self, text):
        try:
            return self.handle.write(text)
        except BrokenPipeError:
            raise UsageError(_went_away(self.shown)) from None
        except OSError as exc:
            if is_disk_full(exc) and not self.in_place:
                raise  # durable_output says it: no space, and nothing of the report is kept
            raise _not_written(self.shown, exc) from None


class GroupedWriter:
    """A JSON object of table -> list, written as the items arrive (grouped by table, as the sweep gives
    them); tables without items are listed empty at the end."""

    def __init__(self, handle):
        self.handle, self.table, self.tables = handle, None, set()

    def add(self, table, text):
        if table != self.table:
            self.handle.write("%s\n    %s: [" % ("]," if self.table else "", json.dumps(table)))
            self.table, first = table, True
            self.tables.add(table)
        else:
            first = False
        self.handle.write(("\n      " if first else ",\n      ") + text)

    def close(self, all_tables):
        parts = ["%s: []" % json.dumps(t) for t in all_tables if t not in self.tables]
        self.handle.write(("]" if self.table else "") + ("," if self.table and parts else "")
                          + ",".join("\n    " + p for p in parts) + "\n  }")


class ReportWriter:
    """The report file, written as it is found: every violation (grouped by table, as the cookbook's
    Step 2 counts them) as the old tool's string, the same violations as emfix's records beside them,
    every JSON issue, then the rest of the report. Nothing is held in memory: the records and the JSON
    issues (which arrive from helper threads meanwhile) wait in spool files."""

    def __init__(self, handle, checked=None):
        """checked(file) -> the file whose write errors are reported as the report's own."""
        checked = checked or (lambda f: f)
        self.handle, self.lock = checked(handle), threading.Lock()
        self.records_spool = checked(tempfile.TemporaryFile("w+", encoding="utf-8"))
        self.strings, self.records = GroupedWriter(self.handle), GroupedWriter(self.records_spool)
        self.checked, self.spools = checked, {}  # part of the JSON scan -> [spool file, issues in it]
        self.handle.write(REPORT_HEAD)

    def violation(self, table, violation):
        from .validate import old_violation_text
        self.strings.add(table, _dumps(old_violation_text(violation)))
        self.records.add(table, _dumps(violation.to_dict()))

    def json_issue(self, issue, part=0):
        """One JSON issue, from the scan of part `part` (an id range): the parts are written in their order, so
        the file lists the issues as the report does, whichever connection finished first (found flaky)."""
        with self.lock:
            if part not in self.spools:
                self.spools[part] = [self.checked(tempfile.TemporaryFile("w+", encoding="utf-8")), 0]
            spool = self.spools[part]
            spool[0].write(("" if not spool[1] else ",\n    ") + _dumps(issue.to_dict()))
            spool[1] += 1

    def finish(self, data):
        """The rest of the report: `data` is ValidationReport.to_dict(), whose first keys are STREAMED."""
        if tuple(data)[:len(STREAMED)] != STREAMED:
            raise ValueError("the report's first keys are not %s" % ", ".join(STREAMED))
        tables = list(data[STREAMED[0]])
        self.strings.close(tables)
        self.handle.write(',\n  "%s": {' % STREAMED[1])
        self.records.close(tables)
        self.records_spool.seek(0)
        shutil.copyfileobj(self.records_spool, self.handle)
        self.records_spool.close()
        self.handle.write(',\n  "%s": [\n    ' % STREAMED[2])
        written = False
        for part in sorted(self.spools):
            spool, count = self.spools[part]
            if count:
                self.handle.write(",\n    " if written else "")
                spool.seek(0)
                shutil.copyfileobj(spool, self.handle)
                written = True
            spool.close()
        self.handle.write("\n  ]")
        for key, value in data.items():
            if key not in STREAMED:
                self.handle.write(",\n  %s: %s" % (json.dumps(key), _dumps(to_jsonable(value))))
        self.handle.write("\n}\n")


def _dumps(value):
    return json.dumps(value, allow_nan=False, default=str)
