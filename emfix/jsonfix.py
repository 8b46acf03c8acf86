"""emfix fix-json: rewrite the metric values the database's JSON check rejects, keeping each original.

The scan selects only what the database doubts (not text, not valid JSON, a JSON string that may
hold the object), pages through it by key, repairs each value with jsonrepair.repair, writes the
originals to a quarantine file and commits it, then updates the batch in one short transaction.
Unrepairable values are reported and left alone unless --reset-unfixable asks for {}.
"""

import collections
import dataclasses
import time
from typing import Dict, List, Optional

from . import quarantine as q
from .backends import open_database
from .backends.sqlite import UndecodableText
from .errors import Cancelled, OperationInterrupted, UsageError
from .jsonrepair import repair
from .progress import NoProgress
from .schema import discover_graph, require_experiment_manager

COMMAND = "fix-json"
EXAMPLES = 10


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
    quarantine: Optional[str] = None
    snapshot_id: Optional[str] = None
    seconds: float = 0.0


def _target(graph, column):
    table, _, name = column.partition(".")
    tables = {t.lower(): t for t in graph.tables}
    if not name or table.lower() not in tables:
        raise UsageError("no column %s" % column, hint="write it as TABLE.COLUMN, e.g. METRIC.per_label_val")
    table = tables[table.lower()]
    columns = {c.lower(): c for c in graph.columns[table]}
    if name.lower() not in columns:
        raise UsageError("%s has no column %s" % (table, name))
    key = graph.primary_keys.get(table) or ()
    if len(key) != 1:
        raise UsageError("fix-json needs a one-column primary key on %s" % table)
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
    return "SELECT %s, %s FROM %s WHERE %s IS NOT NULL AND %s AND %s > ? ORDER BY %s LIMIT %d" % (
        k, v, db.quote(table), v, doubtful, k, k, size)


def _kind(value):
    if isinstance(value, UndecodableText):
        return "text-bytes"  # TEXT whose bytes are not UTF-8: restored as TEXT, byte for byte
    if isinstance(value, (bytes, bytearray)):
        return "blob"
    return "text" if isinstance(value, str) else "value"


def fix_json(address, *, column="METRIC.per_label_val", dry_run=False, reset_unfixable=False, batch_size=500,
             snapshot=True, snapshot_dir=None, quarantine_dir=None, retry_policy=None, progress=None, confirm=None,
             interrupted=None, force=False):
    progress = progress or NoProgress()
    interrupted = interrupted or (lambda: False)
    started = time.perf_counter()
    quarantine_dir = quarantine_dir or q.default_quarantine_dir(address)
    with open_database(address, readonly=dry_run and address.is_sqlite, retry_policy=retry_policy) as db:
        graph = discover_graph(db)
        require_experiment_manager(graph, address, force)
        table, col, key = _target(graph, column)
        result = FixJsonResult(table, col, dry_run)
        if not dry_run:
            progress.done()
            if confirm is not None and not confirm(address):
                raise Cancelled("cancelled; nothing was changed")
            q.writable_dir(quarantine_dir)
        opened = []

        def quarantine():
            """The snapshot and the quarantine, made when the first value is about to change (never for nothing)."""
            if not opened:
                if snapshot:
                    from .snapshot import create_snapshot, default_snapshot_dir
                    progress.update("snapshot before fix-json", force=True)
                    result.snapshot_id = create_snapshot(
                        address, snapshot_dir or default_snapshot_dir(address), description="before %s" % COMMAND,
                        verify=True,
                        retry_policy=retry_policy).id
                opened.append(_open_fix_quarantine(address, quarantine_dir, result, table, col, key))
            return opened[0]
        try:
            _run_pages(db, table, col, key, batch_size, reset_unfixable, None if dry_run else quarantine, result,
                       progress, interrupted)
            if opened:
                q.write_meta(opened[0], status="done", repaired=result.repaired, reset=result.reset)
        finally:
            if opened:
                opened[0].close()
    progress.done()
    result.seconds = time.perf_counter() - started
    return result


def _open_fix_quarantine(address, quarantine_dir, result, table, col, key):
    result.quarantine = (q.find_unfinished(quarantine_dir, COMMAND, address)
                         or q.quarantine_path(quarantine_dir, COMMAND))
    qcon = q.open_quarantine(result.quarantine, create=True)
    q.start(qcon, COMMAND, address, "metric values rewritten by fix-json")
    q.write_meta(qcon, table=table, column=col, key=key, tables=[table])
    qcon.execute("CREATE TABLE IF NOT EXISTS %s (%s, %s, %s)" % (q.qi(table), q.qi(key), q.qi(col),
                                                                 q.qi(q.TYPE_COLUMN)))
    qcon.execute("CREATE UNIQUE INDEX IF NOT EXISTS %s ON %s (%s)" % (q.qi("_emfix_key_" + table), q.qi(table),
                                                                      q.qi(key)))
    return qcon


def _scan_range(db, table, col, key, batch_size, low, high):
    """Pages of (key, value) the database doubts, in key order, within [low, high).

    (Two connections splitting the range were tried: SQLite's JSON functions scale badly across
    threads here, two halves took as long as the whole.)"""
    page = _page_sql(db, table, col, key, batch_size).replace(
        " ORDER BY", " AND %s < ? ORDER BY" % db.quote(key), 1)
    last = low - 1
    while True:
        rows = db.query(page, (last, high))
        if rows:
            yield rows
        if len(rows) < batch_size:
            return
        last = rows[-1][0]


def _run_pages(db, table, col, key, batch_size, reset_unfixable, quarantine, result, progress, interrupted):
    changes = collections.Counter()
    for rows in _scan_range(db, table, col, key, batch_size, -(1 << 62), 1 << 62):
        if interrupted():
            raise OperationInterrupted("interrupted after %d values; every original is in the quarantine"
                                       % (result.repaired + result.reset), hint="run the same command again to finish")
        updates = []
        for ident, raw in rows:
            outcome = repair(raw)
            if outcome.category == "valid":
                continue
            result.candidates += 1
            if outcome.fixed:
                result.repaired += 1
                changes.update(outcome.changes)
                updates.append((ident, raw, outcome.value))
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
                updates.append((ident, raw, "{}"))
        progress.update("%s.%s: %d repaired, %d unrepairable" % (table, col, result.repaired, result.unrepairable))
        if quarantine is None or not updates:
            continue
        q.keep_values(quarantine(), table, [(ident, bytes(raw) if isinstance(raw, bytes) else raw, _kind(raw))
                                            for ident, raw, _new in updates], result.quarantine)
        def write(updates=updates):
            for ident, _raw, new in updates:
                db.execute("UPDATE %s SET %s = ? WHERE %s = ?" % (db.quote(table), db.quote(col), db.quote(key)),
                           (new, ident))
        db.write_batch(write)
    result.changes = dict(changes.most_common())


def _show(raw):
    if isinstance(raw, (bytes, bytearray)):
        return bytes(raw).decode("utf-8", "backslashreplace")
    return raw if isinstance(raw, str) else repr(raw)
