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

from .backends import open_database
from .backends.sqlite import UndecodableText
from .errors import OperationInterrupted, UsageError
from .guarded import GuardedChange, Rewrite, Safeguards, ValueRewrites, key_pages, preflight
from .jsonrepair import repair
from .progress import NoProgress

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
    # values another process changed after emfix read them: left as that process wrote them
    left_alone: List[object] = dataclasses.field(default_factory=list)
    left_alone_count: int = 0
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
    # (Two connections splitting the key range were tried: SQLite's JSON functions scale badly across
    # threads here, two halves took as long as the whole.)
    return "SELECT %s, %s FROM %s WHERE %s IS NOT NULL AND %s AND %s {after} ORDER BY %s LIMIT %d" % (
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
    safeguards = Safeguards(snapshot, snapshot_dir, quarantine_dir, retry_policy, force)
    with open_database(address, readonly=dry_run and address.is_sqlite, retry_policy=retry_policy) as db:
        graph = preflight(db, address, force)
        table, col, key = _target(graph, column)
        result = FixJsonResult(table, col, dry_run)
        with GuardedChange(address, COMMAND, "metric values rewritten by fix-json", safeguards, progress) as change:
            rewrites = None
            if not dry_run:
                change.confirm(confirm, address)
                change.prepare(table=table, column=col, key=key, tables=[table])
                rewrites = ValueRewrites(change, table, key, col)
            _run_pages(db, table, col, key, batch_size, reset_unfixable, rewrites, result, progress, interrupted)
            change.finish(repaired=result.repaired, reset=result.reset, left_alone=result.left_alone_count)
            result.snapshot_id, result.quarantine = change.snapshot_id, change.kept_in
    progress.done()
    result.seconds = time.perf_counter() - started
    return result


def _run_pages(db, table, col, key, batch_size, reset_unfixable, rewrites, result, progress, interrupted):
    changes = collections.Counter()
    for rows in key_pages(db, _page_sql(db, table, col, key, batch_size), batch_size):
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
        left = set(rewrites.apply(db, [Rewrite(u[0], u[1], _kind(u[1]), u[2]) for u in updates]))
        _count_left_alone(result, [u for u in updates if u[0] in left])
    result.changes = dict(changes.most_common())


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
