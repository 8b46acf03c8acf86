"""emfix migrate: copy experiments between any two databases, resumable, and prove nothing was lost.

The source subtree is found with hierarchy.reach_subtree and read table by table (parents first)
in keyset pages (`WHERE key > last ORDER BY key LIMIT n`; OFFSET paging on request). Every batch
is inserted into DST in one transaction together with the journal row that records the last key
copied per table, so after a crash `--resume` continues exactly there: no duplicate, no gap. Ids
are shifted as import shifts them (importer.id_owner), with the offsets kept in the journal.
"""

import dataclasses
import datetime
import hashlib
import json
import time
from typing import Dict, List, Optional

from .backends import open_database
from .errors import DamagedInputError, EmfixError, OperationInterrupted, SchemaError, UsageError
from .hierarchy import ROOT, reach_subtree
from .importer import id_owner
from .progress import NoProgress
from .schema import create_schema, discover_graph
from .snapshot import _portable

JOURNAL = "_emfix_migration"
STRATEGIES = {
    "conservative": "snapshot DST first; validate the source subtree and stop on any break; check every batch's "
                    "row count as it is written; verify counts and checksums at the end",
    "balanced": "snapshot DST first; validate the source subtree and stop on any break; verify counts and "
                "checksums at the end",
    "aggressive": "no snapshot, no validation; verify row counts only at the end",
}


@dataclasses.dataclass
class TableCheck:
    table: str
    source_rows: int
    target_rows: int
    source_checksum: str = ""
    target_checksum: str = ""

    @property
    def ok(self):
        return self.source_rows == self.target_rows and self.source_checksum == self.target_checksum


@dataclasses.dataclass
class MigrationResult:
    experiment_id: int
    new_experiment_id: int
    copied: Dict[str, int]
    offsets: Dict[str, int]
    resumed: bool
    seconds: float
    verify: List[TableCheck] = dataclasses.field(default_factory=list)
    snapshot_id: Optional[str] = None

    @property
    def verified(self):
        return all(check.ok for check in self.verify)


def _journal_key(src, experiment_id):
    return "%s#%d" % (src.display(), experiment_id)


def _ensure_journal(db):
    text = "VARCHAR(700)" if db.dialect == "mysql" else "TEXT"
    db.execute("CREATE TABLE IF NOT EXISTS %s (run_key %s PRIMARY KEY, state VARCHAR(20), offsets TEXT, position "
               "TEXT, copied TEXT, started_at VARCHAR(40), finished_at VARCHAR(40))" % (db.quote(JOURNAL), text))


def _journal(db, key):
    rows = db.query("SELECT state, offsets, position, copied FROM %s WHERE run_key = ?" % db.quote(JOURNAL), (key,))
    if not rows:
        return None
    state, offsets, position, copied = rows[0]
    return {"state": state, "offsets": json.loads(offsets), "position": json.loads(position),
            "copied": json.loads(copied)}


def _key_columns(graph, table):
    return list(graph.primary_keys.get(table) or graph.columns[table])


def _pages(db, graph, tree, table, where, batch_size, paging, last):
    """Rows of one table in key order, a page at a time, starting after `last` (a key) or at an offset."""
    q = db.quote
    columns = graph.columns[table]
    key = _key_columns(graph, table)
    cols = ", ".join("t." + q(c) for c in columns)
    order = ", ".join("t." + q(c) for c in key)
    index = [columns.index(c) for c in key]
    if paging == "offset":
        offset = last or 0
        while True:
            rows = db.query("SELECT %s FROM %s t WHERE %s ORDER BY %s LIMIT %d OFFSET %d" % (
                cols, q(table), where, order, batch_size, offset))
            if not rows:
                return
            offset += len(rows)
            yield rows, offset
            if len(rows) < batch_size:
                return
    while True:
        after, params = "", ()
        if last is not None:
            after = " AND (%s) > (%s)" % (order, ", ".join("?" * len(key)))
            params = tuple(last)
        rows = db.query("SELECT %s FROM %s t WHERE %s%s ORDER BY %s LIMIT %d" % (
            cols, q(table), where, after, order, batch_size), params)
        if not rows:
            return
        last = [rows[-1][i] for i in index]
        yield rows, [_portable(v) for v in last]
        if len(rows) < batch_size:
            return


def _where(db, graph, tree, table):
    if table in tree.held:
        return tree.rows_where(db, graph, table)
    return tree.referenced_where(db, graph, table) or "1 = 0"


def migrate_experiment(src, dst, experiment_id, strategy="balanced", batch_size=2000, paging="keyset",
                       resume=False, force=False, init=False, verify=True, retry_policy=None, progress=None,
                       interrupted=None, snapshot_dir=None):
    if strategy not in STRATEGIES:
        raise UsageError("unknown strategy %r" % strategy, hint="conservative, balanced or aggressive")
    progress = progress or NoProgress()
    interrupted = interrupted or (lambda: False)
    started = time.perf_counter()
    with open_database(src, readonly=src.is_sqlite, retry_policy=retry_policy) as source, \
            open_database(dst, create=init, retry_policy=retry_policy) as target:
        graph = discover_graph(source)
        if ROOT not in graph.tables:
            raise SchemaError("%s has no EXPERIMENT table" % src.display())
        if not target.tables():
            if not init:
                raise UsageError("%s has no Experiment Manager schema" % dst.display(),
                                 hint="add --init to create it, or run `emfix init %s`" % dst.display())
            create_schema(target, generation=graph.generation)
        target_graph = discover_graph(target)
        missing = [t for t in graph.tables if t not in target_graph.tables]
        key = _journal_key(src, experiment_id)
        journal_table = target.quote(JOURNAL)
        _ensure_journal(target)
        journal = _journal(target, key)
        if journal and journal["state"] == "done" and not force:
            raise UsageError("experiment %d from %s was already migrated to %s" % (experiment_id, src.display(),
                                                                                   dst.display()),
                             hint="pass --force to copy it again as a new experiment")
        if journal and journal["state"] == "running" and not resume:
            raise EmfixError("a partial migration of experiment %d into %s exists (%s rows copied)" % (
                experiment_id, dst.display(), "{:,}".format(sum(journal["copied"].values()))),
                hint="run again with --resume to finish it")
        source.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT" if source.dialect == "mysql" else "BEGIN")
        try:
            tree = reach_subtree(source, graph, experiment_id)
            if not tree.exists:
                raise UsageError("experiment %d does not exist in %s" % (experiment_id, src.display()))
            tables = [t for t in graph.parent_first() if t in tree.held or t in ("METRIC", "ARTIFACT")]
            tables = [t for t in tables if t not in missing]
            if strategy != "aggressive" and not resume:
                from .hierarchy import check_hierarchy
                report = check_hierarchy(source, graph, experiment_id)
                if report.breaks:
                    raise EmfixError("the source subtree has %d breaks (e.g. %s); nothing was copied" % (
                        len(report.breaks), report.breaks[0].message),
                        hint="repair it first (emfix cleanup-orphans), or use --strategy aggressive")
            snapshot_id = None
            if strategy != "aggressive" and not (resume and journal):
                from .snapshot import create_snapshot, default_snapshot_dir
                snapshot_id = create_snapshot(dst, snapshot_dir or default_snapshot_dir(dst),
                                              "before migrating experiment %d" % experiment_id, verify=True,
                                              retry_policy=retry_policy).id
            if resume and journal and journal["state"] == "running":
                offsets, position, copied = journal["offsets"], journal["position"], journal["copied"]
            else:
                offsets = _offsets(source, target, graph, tree, tables)
                position, copied = {}, {}
                with target.transaction():
                    target.execute("DELETE FROM %s WHERE run_key = ?" % journal_table, (key,))
                    target.execute("INSERT INTO %s VALUES (?, 'running', ?, '{}', '{}', ?, NULL)" % journal_table,
                                   (key, json.dumps(offsets), _now()))
            total = sum(int(source.scalar("SELECT count(*) FROM %s t WHERE %s" % (
                source.quote(t), _where(source, graph, tree, t))) or 0) for t in tables)
            done_rows, rate_start = sum(copied.values()), time.perf_counter()
            for table in tables:
                if position.get(table) == "done":
                    continue
                columns = graph.columns[table]
                moves = [(i, offsets.get(id_owner(graph, table, c), 0)) for i, c in enumerate(columns)]
                moves = [(i, m) for i, m in moves if m]
                insert = "INSERT INTO %s (%s) VALUES (%s)" % (target.quote(table), target.quote_columns(columns),
                                                              ", ".join("?" * len(columns)))
                for rows, last in _pages(source, graph, tree, table, _where(source, graph, tree, table), batch_size,
                                         paging, position.get(table)):
                    if interrupted():
                        raise OperationInterrupted("interrupted after %s rows; the copy so far is committed" % (
                            "{:,}".format(done_rows)), hint="run the same command with --resume to finish")
                    batch = []
                    for row in rows:
                        row = [_portable(v) for v in row]
                        for i, move in moves:
                            if isinstance(row[i], int):
                                row[i] += move
                        batch.append(tuple(row))
                    position[table] = last
                    copied[table] = copied.get(table, 0) + len(batch)
                    with target.transaction():
                        if target.dialect == "mysql":
                            target.execute("SET SESSION FOREIGN_KEY_CHECKS = 0")
                        written = target.executemany(insert, batch, batch_size=len(batch))
                        if strategy == "conservative" and written not in (len(batch), -1):
                            raise DamagedInputError("batch of %d rows into %s wrote %d" % (len(batch), table, written))
                        target.execute("UPDATE %s SET position = ?, copied = ? WHERE run_key = ?" % journal_table,
                                       (json.dumps(position), json.dumps(copied), key))
                    done_rows += len(batch)
                    _show(progress, done_rows, total, rate_start)
                position[table] = "done"
                with target.transaction():
                    target.execute("UPDATE %s SET position = ? WHERE run_key = ?" % target.quote(JOURNAL),
                                   (json.dumps(position), key))
            checks = _verify(source, target, graph, tree, tables, offsets, experiment_id, strategy) if verify else []
            with target.transaction():
                target.execute("UPDATE %s SET state = 'done', finished_at = ? WHERE run_key = ?" % journal_table,
                               (_now(), key))
        finally:
            source.execute("COMMIT")
    progress.done()
    return MigrationResult(experiment_id, experiment_id + offsets.get(ROOT, 0), copied, offsets,
                           bool(resume and journal), time.perf_counter() - started, checks, snapshot_id)


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def _show(progress, done, total, since):
    elapsed = max(time.perf_counter() - since, 1e-6)
    rate = done / elapsed
    left = (total - done) / rate if rate else 0
    progress.update("%s/%s rows (%.0f%%), %.0f rows/s, ETA %ds" % (
        "{:,}".format(done), "{:,}".format(total), 100.0 * done / max(total, 1), rate, left))


def _offsets(source, target, graph, tree, tables):
    offsets = {}
    for table in tables:
        if id_owner(graph, table, "id") != table:
            continue
        low = source.scalar("SELECT min(t.%s) FROM %s t WHERE %s" % (
            source.quote("id"), source.quote(table), _where(source, graph, tree, table)))
        if low is None:
            continue
        top = target.scalar("SELECT max(%s) FROM %s" % (target.quote("id"), target.quote(table))) or 0
        offsets[table] = int(top) + 1 - int(low)
    return offsets


def _checksum(db, graph, table, where, moves):
    """Order-independent: XOR of each row's SHA-256 (ids already moved), with the row count."""
    columns = graph.columns[table]
    acc, count = 0, 0
    for row in db.iter_rows("SELECT %s FROM %s t WHERE %s" % (", ".join("t." + db.quote(c) for c in columns),
                                                               db.quote(table), where), arraysize=2000):
        row = [_canonical(v) for v in row]
        for i, move in moves:
            if isinstance(row[i], int):
                row[i] += move
        acc ^= int.from_bytes(hashlib.sha256(json.dumps(row, default=str).encode()).digest()[:16], "big")
        count += 1
    return count, "%032x" % acc


def _canonical(value):
    value = _portable(value)
    if isinstance(value, str) and len(value) >= 19 and value[4:5] == "-" and value[10:11] in (" ", "T"):
        try:
            return datetime.datetime.fromisoformat(value.replace(" ", "T")).isoformat()
        except ValueError:
            return value
    if isinstance(value, float) and value.is_integer():
        return int(value) if abs(value) < 1e15 else value
    return value


def _verify(source, target, graph, tree, tables, offsets, experiment_id, strategy):
    """Counts (and, unless aggressive, checksums) of the subtree on both sides, ids mapped."""
    new_tree = reach_subtree(target, discover_graph(target), experiment_id + offsets.get(ROOT, 0))
    target_graph = discover_graph(target)
    checks = []
    for table in tables:
        columns = graph.columns[table]
        moves = [(i, offsets.get(id_owner(graph, table, c), 0)) for i, c in enumerate(columns)]
        moves = [(i, m) for i, m in moves if m]
        src_where = _where(source, graph, tree, table)
        dst_where = _where(target, target_graph, new_tree, table)
        if strategy == "aggressive":
            a = int(source.scalar("SELECT count(*) FROM %s t WHERE %s" % (source.quote(table), src_where)) or 0)
            b = int(target.scalar("SELECT count(*) FROM %s t WHERE %s" % (target.quote(table), dst_where)) or 0)
            checks.append(TableCheck(table, a, b))
            continue
        a, sa = _checksum(source, graph, table, src_where, moves)
        b, sb = _checksum(target, target_graph, table, dst_where, [])
        checks.append(TableCheck(table, a, b, sa, sb))
    return checks
