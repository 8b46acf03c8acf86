"""Diagnose a metric value the database's JSON check rejected: what is wrong, and can it be fixed.

Only values the database already rejected reach this module, so its cost does not grow with the
size of the METRIC table. Nothing here evaluates code; large values skip the Python-literal probe.
"""

import ast
import dataclasses
import json
import math
import re

from .jsonrepair import MAX_DEPTH, NonFiniteConstant, deeper_than, repair, strict_loads

MAX_LITERAL_PROBE = 1 << 20  # ast.literal_eval uses ~60x the input in memory; do not feed it huge values

NUMPY_CALL = re.compile(r"\b(?:np|numpy)\.\w+\(|\barray\(")
PYTHONISH = re.compile(r"'|\b(?:True|False|None|nan|inf)\b")  # worth asking whether it is a Python repr


@dataclasses.dataclass(frozen=True)
class JsonDiagnosis:
    category: str  # e.g. python_repr, trailing_comma, truncated, valid
    message: str
    fixable: bool
    position: int = -1

    @property
    def valid(self):
        return self.category == "valid"


def is_label_number_object(value):
    return isinstance(value, dict) and all(
        v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in value.values())


def diagnose(raw):
    """Classify one stored per_label_val (str, bytes or number); NULL is never passed in.

    Whether it can be fixed is what fix-json's own repair says, so validate and fix-json never
    disagree (the reason shown for an unrepairable value is the repair's)."""
    found = _classify(raw)
    if found.category in ("valid", "structure"):
        return found
    outcome = repair(raw)
    if outcome.fixed:
        return found if found.fixable else dataclasses.replace(found, fixable=True)
    reason = outcome.reason or found.message
    if reason.startswith("larger than"):  # fix-json does not read it: keep what is wrong, say why it stays
        return dataclasses.replace(found, fixable=False, message="%s; %s, so fix-json leaves it alone" % (
            found.message, reason.split(":")[0]))
    category = next((c for prefix, c in UNREPAIRABLE_CATEGORIES if reason.startswith(prefix)), "invalid")
    at = outcome.position if outcome.position is not None else -1
    return JsonDiagnosis(category, reason + (" (char %d)" % at if at >= 0 and "(char" not in reason else ""),
                         False, at)


UNREPAIRABLE_CATEGORIES = (("truncated", "truncated"), ("text after the value", "trailing_garbage"),
                           ("bytes that are not UTF-8", "not_utf8"), ("larger than", "too_large"),
                           ("nested", "too_deep"))


def _classify(raw):
    if isinstance(raw, (bytes, bytearray)):
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            return JsonDiagnosis("not_utf8", "bytes that are not UTF-8 text (byte %d)" % exc.start, False, exc.start)
        inner = _classify(text)
        if inner.valid:
            return JsonDiagnosis("not_text", "stored as a BLOB, not text", True)
        return inner
    if isinstance(raw, (int, float)):
        return JsonDiagnosis("structure", "a bare number, not an object of label -> number", False)
    text = raw
    if not text.strip() or text.strip() == "\ufeff":
        return JsonDiagnosis("empty", "empty value", True)
    stripped = text.lstrip("\ufeff").strip()
    try:
        value = strict_loads(stripped)
    except NonFiniteConstant as exc:
        return JsonDiagnosis("nan_infinity", "%s is not JSON (MySQL rejects it)" % exc, True)
    except json.JSONDecodeError as exc:
        return _diagnose_decode_error(stripped, exc)
    except ValueError as exc:  # a number past a double's range: MySQL refuses it, nothing can say what it meant
        return JsonDiagnosis("out_of_range", str(exc), False)
    except RecursionError:
        return JsonDiagnosis("too_deep", "nested too deeply to parse", False)
    if stripped.count("[") + stripped.count("{") > MAX_DEPTH and deeper_than(value, MAX_DEPTH):
        return JsonDiagnosis("too_deep", "nested more than %d levels deep" % MAX_DEPTH, False)
    if text.lstrip().startswith("\ufeff"):
        return JsonDiagnosis("byte_order_mark", "valid JSON after a byte-order mark", True)
    return _diagnose_structure(value)


def _diagnose_structure(value):
    if isinstance(value, str):
        try:
            inner = strict_loads(value)
        except (ValueError, RecursionError):
            inner = None
        if isinstance(inner, dict):
            return JsonDiagnosis("double_encoded", "a JSON string holding the JSON object (encoded twice)", True)
    if not isinstance(value, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")
        return JsonDiagnosis("structure", "valid JSON but %s, not an object of label -> number" % kind, False)
    if not is_label_number_object(value):
        return JsonDiagnosis("structure", "valid JSON object whose values are not all numbers", False)
    return JsonDiagnosis("valid", "valid", False)


def _diagnose_decode_error(text, exc):
    message, pos = exc.msg, exc.pos
    if NUMPY_CALL.search(text):
        return JsonDiagnosis("numpy_repr", "numeric-library repr such as np.float32(...)", True)
    if len(text) <= MAX_LITERAL_PROBE and PYTHONISH.search(text):
        literal = _probe_python_literal(text)
        if literal is not None:
            return literal
    if "Extra data" in message:
        return JsonDiagnosis("trailing_garbage", "more than one value, or text after the value (char %d)" % pos,
                             False, pos)
    if "Invalid \\escape" in message or "Invalid \\uXXXX" in message:
        return JsonDiagnosis("unescaped_backslash", "backslash that is not a JSON escape (char %d)" % pos, True, pos)
    if "Unterminated string" in message or pos >= len(text) or not text.rstrip().endswith(("}", "]", '"')):
        return JsonDiagnosis("truncated", "value ends early (char %d): cut off, cannot be completed" % pos,
                             False, pos)
    before = text[:pos].rstrip()
    if (before.endswith(",") and text[pos:pos + 1] in "}]") or "trailing comma" in message.lower():  # 3.13 says so
        return JsonDiagnosis("trailing_comma", "comma before a closing bracket (char %d)" % pos, True, pos)
    if text[pos:pos + 1] == "'":
        return JsonDiagnosis("python_repr", "single-quoted strings (a Python repr) (char %d)" % pos, True, pos)
    for token in ("True", "False", "None"):
        if text.startswith(token, pos):
            return JsonDiagnosis("python_literals", "Python %s instead of JSON (char %d)" % (token, pos), True, pos)
    return JsonDiagnosis("invalid", "%s (char %d)" % (message, pos), False, pos)


def _probe_python_literal(text):
    """A Python repr of a dict (str(dict) by legacy writers)? Never evaluates code."""
    probe = re.sub(r"\b(nan|inf)\b", "None", text) if ("nan" in text or "inf" in text) else text
    try:
        value = ast.literal_eval(probe)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    if any(not isinstance(k, (str, int, float)) for k in value):
        return None
    if re.search(r"\b(True|False|None)\b", text):
        return JsonDiagnosis("python_literals", "a Python dict repr with True/False/None", True)
    has_nonfinite = any(isinstance(v, float) and not math.isfinite(v) for v in value.values())
    notes = [n for n, present in (("single quotes", "'" in text),
                                  ("nan/inf", has_nonfinite or probe is not text)) if present]
    return JsonDiagnosis("python_repr", "a Python dict repr%s" % (" (%s)" % ", ".join(notes) if notes else ""), True)


# -- scanning METRIC.per_label_val ---------------------------------------------------------------

@dataclasses.dataclass
class JsonIssue:
    metric_id: object
    metric_type: object
    error: str
    category: str
    fixable: bool
    data: str = ""  # the start of the stored value, as the old tool's report showed it

    def to_dict(self):
        return dataclasses.asdict(self)


EXCERPT_CHARS = 200


def excerpt(raw):
    """The start of a stored value as text (bytes that are not UTF-8 shown as \\x escapes)."""
    if raw is None:
        return ""
    if isinstance(raw, (bytes, bytearray)):
        raw = bytes(raw[:EXCERPT_CHARS * 4]).decode("utf-8", "backslashreplace")
    text = raw if isinstance(raw, str) else repr(raw)
    return text[:EXCERPT_CHARS] + ("..." if len(text) > EXCERPT_CHARS else "")


@dataclasses.dataclass
class JsonScan:
    """What the METRIC scan found; lists are capped examples, counts are complete."""

    issue_count: int = 0
    issues: list = dataclasses.field(default_factory=list)
    categories: dict = dataclasses.field(default_factory=dict)
    fixable_count: int = 0
    structure_count: int = 0
    structure_examples: list = dataclasses.field(default_factory=list)
    judged_by: str = "database"  # or "python" when the database has no JSON functions
    skipped: str = ""  # why the scan did not run (no METRIC table, no per_label_val column)

    def add(self, metric_id, metric_type, diagnosis, limit, raw=None, sink=None):
        if diagnosis.valid:
            return
        issue = JsonIssue(metric_id, metric_type, diagnosis.message, diagnosis.category, diagnosis.fixable,
                          excerpt(raw))
        if sink is not None and diagnosis.category != "structure":
            sink(issue)  # every one, for a complete report file; the lists below stay capped
        if diagnosis.category == "structure":
            self.structure_count += 1
            if len(self.structure_examples) < limit:
                self.structure_examples.append(issue)
            return
        self.issue_count += 1
        self.fixable_count += diagnosis.fixable
        self.categories[diagnosis.category] = self.categories.get(diagnosis.category, 0) + 1
        if len(self.issues) < limit:
            self.issues.append(issue)


    def merge(self, other, limit):
        """Fold in the scan of a later id range (ranges are merged in id order)."""
        self.issue_count += other.issue_count
        self.fixable_count += other.fixable_count
        self.structure_count += other.structure_count
        for category, n in other.categories.items():
            self.categories[category] = self.categories.get(category, 0) + n
        self.issues.extend(other.issues[:max(0, limit - len(self.issues))])
        self.structure_examples.extend(other.structure_examples[:max(0, limit - len(self.structure_examples))])
        self.judged_by = other.judged_by
        self.skipped = self.skipped or other.skipped


def _candidates_sql(backend, has_json_functions, id_range, deep=False):
    """Rows the database cannot vouch for: not text, not valid JSON, not an object, and (MySQL, or
    SQLite with `deep`) objects whose values may not all be numbers.

    On SQLite the per-value test costs as much again as the whole scan (json_each on every row),
    so it runs only when asked (`validate --deep-json`). Python decides on the candidates, so a
    false alarm costs one parse, never a wrong report.
    """
    q = backend.quote
    v = q("per_label_val")
    if backend.dialect == "mysql":
        doubtful = ("CASE WHEN NOT JSON_VALID({v}) THEN 1 WHEN JSON_TYPE({v}) <> 'OBJECT' THEN 1 "
                    "WHEN LOCATE('\\\\', {v}) > 0 THEN 1 "  # MariaDB's JSON_VALID lets invalid escapes through
                    "WHEN {v} REGEXP '\\\":[[:space:]]*[\\\"[{{tf]' THEN 1 ELSE 0 END = 1").format(v=v)
    elif has_json_functions:
        doubtful = _sqlite_doubtful(v, deep)
    else:
        doubtful = "1 = 1"
    where = doubtful if backend.dialect == "sqlite" and has_json_functions else "%s IS NOT NULL AND %s" % (
        v, doubtful)
    params = ()
    if id_range is not None:  # [start, end), end None: to the last
        where += " AND %s >= ?" % q("id") + ("" if id_range[1] is None else " AND %s < ?" % q("id"))
        params = tuple(v for v in id_range if v is not None)
    return "SELECT %s, %s, %s FROM %s WHERE %s ORDER BY %s" % (
        q("id"), q("type"), v, q("METRIC"), where, q("id")), params


def _sqlite_doubtful(v, deep):
    """SQLite's test as one CASE, so each step runs only when the one before did not decide (#28).

    Text that is valid JSON and starts with "{" is an object, so for it json_valid alone decides, and the
    rest (NULL, not text, json_type) is asked only of the rare value that does not start so: the same rows
    as "not text, or not valid, or json_type <> 'object'". "Starts with {" is a range of the value's bytes
    (no typeof, no GLOB: 12 % less CPU than asking typeof first); a BLOB sorts after all text, so it is
    never in that range, and a first character that only shares the byte is not valid JSON anyway."""
    values = "EXISTS (SELECT 1 FROM json_each({v}) e WHERE e.type NOT IN ('integer', 'real', 'null'))"
    return ("CASE WHEN {v} >= '{{' COLLATE BINARY AND {v} < '|' COLLATE BINARY THEN CASE WHEN NOT json_valid({v}) "
            "THEN 1 ELSE %s END WHEN {v} IS NULL THEN 0 WHEN typeof({v}) <> 'text' THEN 1 WHEN NOT json_valid({v}) "
            "THEN 1 ELSE json_type({v}) <> 'object'%s END" % (
                values if deep else "0", " OR " + values if deep else "")).format(v=v)


def sqlite_has_json(backend):
    try:
        backend.query("SELECT json_valid('{}')")
        return True
    except Exception:
        return False


def metric_id_ranges(backend, table_columns, pieces):
    """Split METRIC by id into about `pieces` ranges so several connections can share the scan."""
    if "METRIC" not in table_columns or pieces <= 1:
        return [None]
    # Two subqueries: SQLite answers a lone min() or max() from the key, but both in one SELECT by a scan
    # of the whole table (0.4 s of 10M rows, before validate's sweep could start).
    key, table = backend.quote("id"), backend.quote("METRIC")
    low, high = backend.query("SELECT (SELECT min(%s) FROM %s), (SELECT max(%s) FROM %s)" % (key, table, key, table))[0]
    if not isinstance(low, int) or not isinstance(high, int) or isinstance(low, bool):
        return [None]
    step = max(1, (high - low + pieces) // pieces)
    return [(start, start + step) for start in range(low, high + 1, step)]


def scan_metric_json(backend, table_columns, limit=100, id_range=None, deep=False, sink=None):
    """Judge every non-NULL METRIC.per_label_val (in one id range); parse in Python only what the
    database doubts."""
    scan = JsonScan()
    columns = {c.lower() for c in table_columns.get("METRIC", [])}
    if "METRIC" not in table_columns:
        scan.skipped = "no METRIC table"
        return scan
    if not {"id", "type", "per_label_val"} <= columns:
        scan.skipped = "METRIC has no id/type/per_label_val columns"
        return scan
    has_json = backend.dialect == "mysql" or sqlite_has_json(backend)
    scan.judged_by = "database" if has_json else "python"
    sql, params = _candidates_sql(backend, has_json, id_range, deep)
    for metric_id, metric_type, raw in backend.iter_rows(sql, params):
        scan.add(metric_id, metric_type, diagnose(raw), limit, raw, sink)
    return scan
