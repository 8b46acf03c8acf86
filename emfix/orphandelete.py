"""Removing the doomed rows a cleanup quarantined, and recording in the quarantine which ones it removed.

Each batch is one short transaction: it locks the batch's rows that are still there, deletes those that
still hold the quarantined content (compare-and-swap, NULL-safe, byte for byte), and marks exactly those
as deleted in the quarantine (`_emfix_deleted`). A row another process changed meanwhile is left alone,
a row it deleted first is not ours: both leave the quarantine, so undo puts back only what emfix removed.
On SQLite with a rollback journal the quarantine is attached to the same connection, so the delete and its
mark commit together; elsewhere (MySQL, and SQLite in WAL mode, where attached files commit one by one) a batch
marks its copies pending first and removed after its commit, and a rerun settles the rows a kill left pending
(settle_marks).
"""

import logging
import time

from . import quarantine as q
from .backends.sqlite import placeholder
from .errors import OperationInterrupted, StillReferencedError
from .fileutil import sqlite_name
from .killpoints import kill_point
from .values import portable, sqlite_storable

log = logging.getLogger(__name__)

YIELD_SECONDS = 0.01  # between batches, so a writer polling for the lock finds it free
# SQLite locks the whole file, and a writer waiting for it (its default busy handler) retries after 1, 2, 5, 10, 15, 20,
# 25, 25, 25 ms, then every 50 and 100 ms. Gaps of 10 ms between batches of ~100 ms caught a retry about one time in
# ten once the retries were 100 ms apart: the application's writes waited 1-2.5 s (the 1M demo beside a writer
# committing every 10 ms). A gap of 110 ms after each quarter second of writes still let them wait 0.43 s (the 10M
# demo: the quarter second came to 0.35 s with the short gaps). A gap longer than the early retries' 25 ms after
# every batch catches one of them while they are still close together: the writer waits about one batch. Only while
# another connection has committed in the last few seconds (without a writer, no run is the slower for it).
WRITER_GAP_SECONDS, WRITER_MEMORY_SECONDS = 0.04, 5.0
ATTACHED = "emfix_q"
FIRST_BATCH = 100  # rows: 500 at once took 360 ms on MariaDB with foreign keys (scale-0.05 demo), over the 200 ms limit
TARGET_SHARE = 0.4  # of --max-lock-ms: the write time batches aim at, room for a slower one under the limit


def delete_batches(db, graph, doom, names, qcon, qpath, batch, progress, interrupted, still=None, left=None):
    """Children before parents, a short transaction a batch. `names(plan)` gives the doom and stage tables;
    `batch` is (batch_size, sleep, max_lock_ms). `still(table, keys)`, inside each batch's transaction, gives the
    keys doomed still (orphanrescue): the others are left alone, and told to `left(table, keys)` once the batch has
    committed. Returns (removed, stats, left alone per table)."""
    batch_size, sleep, max_lock_ms = batch
    # A batch's keys go into its statements as bound values, each key of a parent up its chain as wide as that key.
    widest = max([1] + [len(r.parent_columns) for r in graph.relations] + [len(p.identity) for p, _n in doom.values()])
    batch_size = max(1, min(batch_size, (db.max_parameters - 16) // widest))
    removed, stats = {}, {"batches": 0, "max_ms": 0.0, "one_row_over_ms": 0.0, "left_alone_examples": {}}
    left_alone, gaps = {}, Gaps(db, sleep)
    size = min(batch_size, FIRST_BATCH) if max_lock_ms else batch_size  # start small, grow while batches stay quick
    attached = db.dialect == "sqlite" and db.commits_attached_atomically()
    if attached:
        db.execute("ATTACH DATABASE ? AS %s" % ATTACHED, (sqlite_name(qpath),))
        db.execute("PRAGMA %s.synchronous = FULL" % ATTACHED)
    try:
        order = graph.child_first()
        for table in order:
            if table not in doom:
                continue
            plan, count = doom[table]
            doom_table, stage = names(plan)
            ids = ", ".join("i%d" % n for n in range(len(plan.identity)))
            last, done = None, 0
            while True:
                if interrupted():
                    raise OperationInterrupted(
                        "interrupted after removing %d rows; every removed row is in the quarantine"
                        % (sum(removed.values()) + done), hint="run the same command again to finish")
                where, params = "", ()
                if last is not None:
                    where, params = db.key_bound(ids.split(", "), ">", last)
                    where = " WHERE " + where
                keys = [tuple(k) for k in db.query("SELECT %s FROM %s%s ORDER BY %s LIMIT %d" % (
                    ids, db.quote(doom_table), where, ids, size), params)]
                if not keys:
                    break
                started = time.perf_counter()
                ours, not_ours = _remove(db, graph, plan, stage, keys, None if attached else qcon,
                                         (lambda k, t=table: still(t, k)) if still is not None else None)
                if not_ours:
                    if left is not None:
                        left(table, not_ours)
                    left_alone[table] = left_alone.get(table, 0) + len(not_ours)
                    examples = stats["left_alone_examples"].setdefault(table, [])
                    examples.extend(list(k) for k in not_ours[:max(0, 3 - len(examples))])
                elapsed_ms = (time.perf_counter() - started) * 1000
                stats["batches"] += 1
                stats["max_ms"] = max(stats["max_ms"], elapsed_ms)
                if max_lock_ms and len(keys) == 1 and elapsed_ms > max_lock_ms:  # no batch can be under the limit
                    stats["one_row_over_ms"] = max(stats["one_row_over_ms"], elapsed_ms)
                if max_lock_ms:
                    size = next_batch_size(size, len(keys), batch_size, elapsed_ms, max_lock_ms)
                done += len(ours)
                last = keys[-1]
                progress.update("%s: %d/%d rows removed" % (table, done, count), force=done == len(ours))
                gaps.after()
            removed[table] = done
    finally:
        if attached:
            db.execute("DETACH DATABASE %s" % ATTACHED)
    return removed, stats, left_alone


class Gaps:
    """The pause after each batch: --sleep, and on SQLite at least YIELD_SECONDS (WRITER_GAP_SECONDS while an
    application is writing too). MySQL none: InnoDB hands a row lock to whoever waits for it at the commit, where a
    SQLite writer polls for the file's lock (10 ms a batch was a quarter of a MariaDB cleanup's time)."""

    def __init__(self, db, sleep):
        self.db, self.sleep, self.sqlite = db, sleep, db.dialect == "sqlite"
        self.writer_seen_at = None
        self.version = self.db.data_version()

    def after(self):
        pause = self.sleep
        if self.sqlite:
            pause = max(pause, YIELD_SECONDS)
            version, now = self.db.data_version(), time.monotonic()
            if version != self.version:
                self.version, self.writer_seen_at = version, now
            if self.writer_seen_at is not None and now - self.writer_seen_at < WRITER_MEMORY_SECONDS:
                pause = max(pause, WRITER_GAP_SECONDS)
        time.sleep(pause)


def next_batch_size(size, rows, most, elapsed_ms, max_lock_ms):
    """The next batch's size after one of `rows` rows (at most `size`): in proportion to how far its write time
    was from a target well under the limit (a batch has a fixed cost too: a rule that grew batches only while they
    took under a fifth of the limit never grew them again on MySQL once one was slow), halved at least past the
    limit. A short batch (a table's last) that was quick says nothing of a full one: the size stays."""
    target = max_lock_ms * TARGET_SHARE
    if elapsed_ms > max_lock_ms:
        return max(1, min(size // 2, int(rows * target / elapsed_ms)))
    if elapsed_ms > target * 1.25:
        return max(1, min(size, int(rows * target / elapsed_ms)))
    if elapsed_ms < target and rows >= size:
        return min(most, max(size + 1, int(size * min(1.5, target / max(elapsed_ms, 1.0)))))
    return size


def _remove(db, graph, plan, stage, keys, qcon, still=None):
    """One batch, in one transaction (run again whole after a conflict); a parent a left-alone child still
    references (MySQL's foreign keys refuse it) is left alone too, found by removing the batch row by row.
    With `qcon` (the quarantine is not attached: MySQL, SQLite in WAL mode) the batch's copies are marked
    pending (0) first, so a rerun after a kill knows which absent rows emfix may have removed (pending) and
    which someone else did (never pending); without, the marks are written in the batch's own transaction."""
    staged = None
    if qcon is not None:
        staged = _Staged(db, graph, plan, stage, keys)
        _mark_in_quarantine(plan, graph, qcon, staged, pending=keys)
        kill_point("pending")
    try:
        ours, not_ours = db.write_batch(lambda: _remove_in_transaction(db, graph, plan, stage, keys, qcon is None,
                                                                       still))
    except StillReferencedError:
        ours, not_ours = [], []
        for key in keys:
            try:
                one = db.write_batch(lambda key=key: _remove_in_transaction(db, graph, plan, stage, [key],
                                                                         qcon is None, still))
            except StillReferencedError:
                one = ([], [key])
            ours += one[0]
            not_ours += one[1]
    kill_point("written")
    if qcon is not None:
        _mark_in_quarantine(plan, graph, qcon, staged, ours, not_ours)
    return ours, not_ours


def _remove_in_transaction(db, graph, plan, stage, keys, mark_attached, doomed_still=None):
    present = _present(db, plan, keys, lock=db.dialect != "sqlite")
    if doomed_still is not None and present:  # orphans no more (a parent came back, one was pointed at): left alone
        present = doomed_still(present)
    deleted = _delete_keys(db, graph, plan, stage, present) if present else 0
    kept = set(_present(db, plan, present)) if deleted < len(present) else set()  # changed since: not deleted
    ours = [k for k in present if k not in kept]
    removed = set(ours)  # once: a set built for each key made a batch of 3,000 keys cost 30 ms of Python
    not_ours = [k for k in keys if k not in removed]  # changed meanwhile, or deleted by someone else first
    if mark_attached:
        _mark_attached(db, graph, plan, stage, ours, not_ours)
    return ours, not_ours


def _present(db, plan, keys, lock=False):
    """The keys whose row is there now (MySQL: locked until the batch commits)."""
    if not keys:
        return []
    names = ["rowid"] if plan.identity == ["rowid"] else [db.quote(c) for c in plan.identity_names]
    one = "(%s)" % ", ".join("?" * len(names))
    found = {tuple(r) for r in db.query("SELECT %s FROM %s WHERE (%s) IN (%s)%s" % (
        ", ".join(names), db.quote(plan.table), ", ".join(names), ", ".join([one] * len(keys)),
        " FOR UPDATE" if lock else ""), tuple(v for k in keys for v in k))}
    return [k for k in keys if k in found]


def _delete_keys(db, graph, plan, stage, keys):
    """Delete the batch's rows that still hold what was quarantined (compare-and-swap, NULL-safe, byte
    for byte): a row another process changed since (re-parented, edited, its rowid reused) is not ours
    to delete. Returns the rows deleted."""
    quoted = db.quote
    if plan.identity == ["rowid"]:
        same = " AND ".join("t.%s IS s.%s" % (quoted(c), q.qi(c)) for c in graph.columns[plan.table])
        return db.execute("DELETE FROM %s WHERE rowid IN (SELECT s.%s FROM temp.%s s JOIN main.%s t ON t.rowid = "
                          "s.%s AND %s WHERE s.%s IN (%s))" % (
                              quoted(plan.table), q.qi(q.ROWID), q.qi(stage), quoted(plan.table),
                              q.qi(q.ROWID), same, q.qi(q.ROWID), ", ".join("?" * len(keys))),
                          tuple(k[0] for k in keys))
    columns = plan.identity_names
    one = "(%s)" % ", ".join("?" * len(columns))
    on = " AND ".join("t.%s = s.%s" % (quoted(c), quoted(c)) for c in columns)
    same = " AND ".join("t.{c} <=> s.{c} AND BINARY t.{c} <=> BINARY s.{c}".format(c=quoted(c))
                        for c in graph.columns[plan.table] if c not in columns)
    return db.execute("DELETE t FROM %s t JOIN %s s ON %s%s WHERE (%s) IN (%s)" % (
        quoted(plan.table), quoted(stage), on, " AND " + same if same else "",
        ", ".join("s." + quoted(c) for c in columns), ", ".join([one] * len(keys))),
        tuple(v for k in keys for v in k))


def _mark_attached(db, graph, plan, stage, ours, not_ours):
    """SQLite: in the batch's own transaction, the quarantined copies of the rows it removed are marked
    deleted, and the copies of the rows it did not remove leave the quarantine."""
    kept = "%s.%s" % (ATTACHED, q.qi(plan.table))
    same = " AND ".join(["k.%s = s.%s" % (q.qi(q.ROWID), q.qi(q.ROWID))] + [
        "k.%s IS s.%s" % (q.qi(c), q.qi(c)) for c in graph.columns[plan.table]])
    copies = "SELECT k.rowid FROM %s k JOIN temp.%s s ON %s WHERE s.%s IN (%%s)" % (kept, q.qi(stage), same,
                                                                                    q.qi(q.ROWID))
    if ours:
        db.execute("UPDATE %s SET %s = 1 WHERE rowid IN (%s)" % (kept, q.qi(q.DELETED), copies % ", ".join(
            "?" * len(ours))), tuple(k[0] for k in ours))
    if not_ours:
        db.execute("DELETE FROM %s WHERE %s IS NULL AND rowid IN (%s)" % (kept, q.qi(q.DELETED), copies % ", ".join(
            "?" * len(not_ours))), tuple(k[0] for k in not_ours))


def _mark_in_quarantine(plan, graph, qcon, staged, ours=(), not_ours=(), pending=()):
    """The quarantine not attached (MySQL, SQLite in WAL mode): after the batch's commit, the same marks, by the
    staged content of each key (`staged`: a _Staged); before it, `pending`: the copies of the rows the batch is
    about to remove."""
    if not ours and not not_ours and not pending:
        return
    columns = ([q.ROWID] if plan.identity == ["rowid"] else []) + list(graph.columns[plan.table])

    def same(row):  # each value bound with its storage class (TEXT that is not UTF-8 too: round 19, whose copies
        return " AND ".join("%s IS %s" % (q.qi(c), placeholder(v)) for c, v in zip(columns, row))  # went unmarked)

    def each(sql, rows):
        grouped = {}
        for row in rows:
            grouped.setdefault(sql.replace("{same}", same(row)), []).append(row)
        for statement, alike in grouped.items():
            qcon.executemany(statement, alike)
    qcon.execute("BEGIN")
    if pending:
        each("UPDATE %s SET %s = 0 WHERE %s IS NULL AND {same}" % (
            q.qi(plan.table), q.qi(q.DELETED), q.qi(q.DELETED)), staged.rows(pending))
    if ours:
        each("UPDATE %s SET %s = 1 WHERE {same}" % (q.qi(plan.table), q.qi(q.DELETED)), staged.rows(ours))
    if not_ours:
        each("DELETE FROM %s WHERE (%s IS NULL OR %s = 0) AND {same}" % (q.qi(plan.table), q.qi(q.DELETED),
                                                                       q.qi(q.DELETED)), staged.rows(not_ours))
    qcon.execute("COMMIT")


class _Staged:
    """The staged rows of a batch's keys as the quarantine holds them (a SQLite row's rowid first), read once for
    the marks before and after the batch (on MySQL each read is a statement with the batch's keys)."""

    def __init__(self, db, graph, plan, stage, keys):
        self.db, self.graph, self.plan, self.stage = db, graph, plan, stage
        self.by_key = self._read(keys, with_keys=True)

    def rows(self, keys):
        found = [self.by_key[k] for k in keys if k in self.by_key]
        missing = [k for k in keys if k not in self.by_key]  # (a row gone before it was staged has none)
        return found + (self._read(missing) if missing else [])  # the database's equality decides, as ever

    def _read(self, keys, with_keys=False):
        db, plan, columns = self.db, self.plan, list(self.graph.columns[self.plan.table])
        if plan.identity == ["rowid"]:
            names = "t.%s" % q.qi(q.ROWID)
            sql = "SELECT %s, t.%s, %s FROM temp.%s t WHERE t.%s IN (%s)" % (
                names, q.qi(q.ROWID), db.exact_columns(plan.table, columns, "t."), q.qi(self.stage), q.qi(q.ROWID),
                ", ".join("?" * len(keys)))
        else:
            one = "(%s)" % ", ".join("?" * len(plan.identity_names))
            names = ", ".join("t." + db.quote(c) for c in plan.identity_names)
            sql = "SELECT %s, %s FROM %s t WHERE (%s) IN (%s)" % (
                names, db.exact_columns(plan.table, columns, "t."), db.quote(self.stage), names,
                ", ".join([one] * len(keys)))
        width = len(plan.identity)
        rows = db.query(sql, tuple(v for k in keys for v in k))
        if with_keys:
            return {tuple(row[:width]): tuple(sqlite_storable(portable(v)) for v in row[width:]) for row in rows}
        return [tuple(sqlite_storable(portable(v)) for v in row[width:]) for row in rows]


def settle_marks(db, graph, qcon):
    """Before a rerun stages anew: what an interrupted run kept but did not mark. A copy never marked
    was never removed by emfix (attached, the mark commits with the delete; elsewhere a batch marks its
    copies pending first): it leaves, and the rerun keeps the row again if it is still doomed, as it is
    now. A copy marked pending (a kill came between the batch and its marks) leaves when its key still holds
    the very row it copied, and is marked removed when its key holds no row. When the key holds another row,
    emfix may have removed the original (and the application filled the key again: round 14, where the copy
    left and the original was lost) or not (the application edited it before the batch committed: round 15,
    where the copy marked removed put the stale row back over the edit): it stays pending, which undo puts
    back only after every copy marked removed, and only where its key is free."""
    tables = [r[0] for r in qcon.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND "
                                         "name NOT LIKE '\\_emfix\\_%' ESCAPE '\\'")]
    for table in [t for t in tables if t in graph.tables]:
        present = [r[1] for r in qcon.execute("PRAGMA table_info(%s)" % q.qi(table))]
        if q.DELETED not in present:
            continue
        qcon.execute("DELETE FROM %s WHERE %s IS NULL" % (q.qi(table), q.qi(q.DELETED)))
        columns = [c for c in present if c not in (q.ROWID, q.DELETED)]
        key = db_key = list(graph.primary_keys.get(table) or ())
        if not key and q.ROWID in present and db.dialect == "sqlite":  # a table without a primary key
            key, db_key = [q.ROWID], ["rowid"]
        pending = qcon.execute("SELECT rowid, %s, %s FROM %s WHERE %s = 0" % (
            ", ".join(q.qi(c) for c in key), ", ".join(q.qi(c) for c in columns), q.qi(table),
            q.qi(q.DELETED))).fetchall() if key else []
        if not pending:
            continue
        live = set()  # (key..., the row's columns...) as the database holds them now
        for start in range(0, len(pending), 200):
            part = [tuple(r[1:1 + len(key)]) for r in pending[start:start + 200]]
            found = db.query("SELECT %s, %s FROM %s WHERE (%s) IN (%s)" % (
                db.quote_columns(db_key), db.exact_columns(table, columns), db.quote(table),
                db.quote_columns(db_key), ", ".join("(%s)" % ", ".join(placeholder(v) for v in k) for k in part)),
                tuple(v for k in part for v in k))
            live |= {tuple(sqlite_storable(portable(v)) for v in r) for r in found}  # as the quarantine keeps them
        held = {r[:len(key)] for r in live}
        qcon.execute("BEGIN")
        for row in pending:
            if tuple(row[1:]) in live:
                qcon.execute("DELETE FROM %s WHERE rowid = ?" % q.qi(table), (row[0],))
            elif tuple(row[1:1 + len(key)]) not in held:
                qcon.execute("UPDATE %s SET %s = 1 WHERE rowid = ?" % (q.qi(table), q.qi(q.DELETED)), (row[0],))
        qcon.execute("COMMIT")
        log.info("settled %d rows of %s a killed run was removing", len(pending), table)
