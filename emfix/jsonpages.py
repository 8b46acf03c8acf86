"""Pages of doubtful metric values, each repaired (jsonrepair) and written through the guarded-change
engine: the work of fix-json, for any repair to run inside its own change (fix-json alone, or
`repair` with the orphans under the same undo).

The scan selects only what the database doubts (not text, not valid JSON, a JSON string that may
hold the object) and pages through it by key; without an engine's rewrites it only counts (a plan).
"""

import collections
import dataclasses
from typing import Dict, List, Optional

from .backends.sqlite import UndecodableText
from .errors import OperationInterrupted, UsageError
from .guarded import Rewrite, key_pages, rowid_windows, window_pages
from .jsonrepair import repair
from .schema import table_named

EXAMPLES = 10
KEYS_PER_QUERY = 500  # within old SQLite's 999 parameters


@dataclasses.dataclass
class FixJsonResult:
    table: str
    column: str
    dry_run: bool
    candidates: int = 0
    repaired: int = 0
    reset: int = 0
    unrepairable: int = 0
    changes: Dict[str, int] = dataclasses.field(default_factory=dict)
    examples: List[dict] = dataclasses.field(default_factory=list)  # before -> after
    problems: List[dict] = dataclasses.field(default_factory=list)  # what could not be repaired, and why
    nulled: List[object] = dataclasses.field(default_factory=list)  # keys of values whose NaN/Infinity became null
    # values another process changed after emfix read them: left as that process wrote them
    left_alone: List[object] = dataclasses.field(default_factory=list)
    left_alone_count: int = 0
    quarantine: Optional[str] = None
    snapshot_id: Optional[str] = None
    seconds: float = 0.0


def metric_target(graph, column):
    table, _, name = column.partition(".")
    table = table_named(table, graph.tables)
    if not name:
        raise UsageError("no column %s" % column, hint="write it as TABLE.COLUMN, e.g. METRIC.per_label_val")
    if table is None:
        raise UsageError("no column %s: the database has no table %s" % (column, column.partition(".")[0]),
                         hint="name a table it holds, as TABLE.COLUMN")
    columns = {c.lower(): c for c in graph.columns[table]}
    if name.lower() not in columns:
        raise UsageError("%s has no column %s" % (table, name))
    key = graph.primary_keys.get(table) or ()
    if len(key) != 1:
        raise UsageError("a repair of values needs a one-column primary key on %s" % table)
    return table, columns[name.lower()], key[0]


def _page_sql(db, table, column, key, size):
    v, k = db.quote(column), db.quote(key)
    if db.dialect == "mysql":
        doubtful = ("CASE WHEN NOT JSON_VALID({v}) THEN 1 WHEN LOCATE('\\\\', {v}) > 0 THEN 1 "
                    "WHEN JSON_TYPE({v}) = 'STRING' THEN 1 ELSE 0 END = 1").format(v=v)
    else:
        # Besides what json_valid rejects: BLOBs (they sort after all text: >= x''), and text that
        # starts with a quote (maybe a JSON string holding the object) or a blank. Comparisons on the
        # first byte cost far less than typeof() or a second JSON parse.
        doubtful = ("({v} < '!' OR ({v} >= '\"' AND {v} < '#') OR {v} >= x'' OR NOT json_valid({v}))"
                    ).format(v=v)
    # (Two connections splitting the key range were tried: SQLite's JSON functions scale badly across
    # threads here, two halves took as long as the whole.)
    return "SELECT %s, %s FROM %s WHERE %s IS NOT NULL AND %s AND %s {after} ORDER BY %s LIMIT %d" % (
        k, v, db.quote(table), v, doubtful, k, k, size)


def storage_kind(value):
    if isinstance(value, UndecodableText):
        return "text-bytes"  # TEXT whose bytes are not UTF-8: restored as TEXT, byte for byte
    if isinstance(value, (bytes, bytearray)):
        return "blob"
    return "text" if isinstance(value, str) else "value"


def repair_values(db, table, col, key, batch_size, reset_unfixable, rewrites, result, progress, interrupted,
                  keys=None, found=None):
    """Repair every doubtful value (or only `keys`, the ones a plan found), counting into `result`;
    with `rewrites` (a ValueRewrites) each page is kept, then written by compare-and-swap; without,
    nothing is written (a plan). `found`, a list, receives the key of every value that is not valid."""
    changes = collections.Counter(result.changes)
    windows = rowid_windows(db, table, key) if keys is None else None
    pages = _key_pages(db, table, col, key, keys, batch_size) if keys is not None else \
        window_pages(db, _page_sql(db, table, col, key, batch_size), batch_size, key, windows) if windows is not None \
        else key_pages(db, _page_sql(db, table, col, key, batch_size), batch_size)
    for rows in pages:
        if interrupted():
            raise OperationInterrupted("interrupted after %d values; every original is in the quarantine"
                                       % (result.repaired + result.reset), hint="run the same command again to finish")
        updates = []
        for ident, raw in rows:
            outcome = repair(raw)
            if outcome.category == "valid":
                continue
            result.candidates += 1
            if found is not None:
                found.append(ident)
            if outcome.fixed:
                result.repaired += 1
                changes.update(outcome.changes)
                updates.append((ident, raw, outcome.value, False))
                if "NaN/Infinity -> null" in outcome.changes and len(result.nulled) < 100000:
                    result.nulled.append(ident)
                if len(result.examples) < EXAMPLES:
                    result.examples.append({"id": ident, "before": _show(raw), "after": outcome.value,
                                            "changes": outcome.changes})
                continue
            result.unrepairable += 1
            if len(result.problems) < 1000:
                result.problems.append({"id": ident, "reason": outcome.reason, "position": outcome.position,
                                        "value": _show(raw)[:200]})
            if reset_unfixable:
                result.reset += 1
                updates.append((ident, raw, "{}", True))
        progress.update("%s.%s: %d repaired, %d unrepairable" % (table, col, result.repaired, result.unrepairable))
        if rewrites is None or not updates:
            continue
        left = set(rewrites.apply(db, [Rewrite(u[0], u[1], storage_kind(u[1]), u[2]) for u in updates]))
        _count_left_alone(result, [u for u in updates if u[0] in left])
    result.changes = dict(changes.most_common())


def _key_pages(db, table, col, key, keys, batch_size):
    """Pages of (key, value) for the given keys, in key order (rows gone since are skipped)."""
    size = max(1, min(batch_size, KEYS_PER_QUERY))
    for start in range(0, len(keys), size):
        part = keys[start:start + size]
        rows = db.query("SELECT %s, %s FROM %s WHERE %s IN (%s) ORDER BY %s" % (
            db.quote(key), db.quote(col), db.quote(table), db.quote(key), ", ".join("?" * len(part)), db.quote(key)),
            tuple(part))
        if rows:
            yield rows


def _count_left_alone(result, left):
    """Values another process changed between emfix's read and its write: not repaired, not counted."""
    for ident, _raw, _new, was_reset in left:
        if len(result.left_alone) < 1000:
            result.left_alone.append(ident)
        result.left_alone_count += 1
        if was_reset:
            result.reset -= 1
        else:
            result.repaired -= 1


def _show(raw):
    if isinstance(raw, (bytes, bytearray)):
        return bytes(raw).decode("utf-8", "backslashreplace")
    return raw if isinstance(raw, str) else repr(raw)
