"""Orphans, planned and removed: the two halves of cleanup-orphans, for any repair to run inside its
own guarded change (cleanup-orphans alone, or `repair` with the metric values under the same undo).

The plan is validate's sweep: a row is doomed when a parent is missing or doomed, computed parents
first over the whole relation graph, so one pass reaches the fixpoint. Every doomed row is copied
into the change's quarantine and committed there before anything is deleted; then children go before
parents in short batches by rowid or primary key (the pt-archiver way), each batch its own
transaction, each delete a compare-and-swap on the row as it was kept.
"""

import dataclasses
import json
import logging
import sqlite3
from typing import Dict, Optional

from . import quarantine as q
from .errors import UsageError
from .fileutil import sqlite_name
from .fksweep import TMP, UNREFERENCED_TABLES, TablePlan, sweep_foreign_keys
from .guarded import kill_point
from .hierarchy import ancestor_chain
from .orphandelete import delete_batches, settle_marks
from .orphanrescue import ChildrenSince, RescueLook, newest_rowids
from .orphanstay import Staying, doomed_count, held_table, hold_what_stays_points_at, unkeyed_doomed_count
from .values import portable, sqlite_storable

log = logging.getLogger(__name__)

RECREATABLE_PARENTS = ("RESULTS", "EPOCH")  # the old API linked to these without writing them
TIME_SOURCES = ("start_time", "time")


@dataclasses.dataclass
class CleanupPlan:
    remove: Dict[str, int]  # table -> rows, in delete order (children first)
    recreate: Dict[str, int]  # parent table -> rows --recreate-parents creates
    keepable: Dict[str, int]  # link rows whose missing parent could be recreated instead
    examples: Dict[str, list]  # table -> a few rows to be removed, each {key column: value}
    left_behind: Dict[str, int] = dataclasses.field(default_factory=dict)  # doomed rows outside --tables
    unkeyed: Dict[str, int] = dataclasses.field(default_factory=dict)  # MySQL tables without a key: rows stay
    held: Dict[str, int] = dataclasses.field(default_factory=dict)  # doomed rows kept: rows that stay point at them

    @property
    def total(self):
        return sum(self.remove.values())


# -- planning ------------------------------------------------------------------------------------

def _doom_table(plan):
    return "%sdoom_%d" % (TMP, plan.number)


def _recreatable(graph, relation):
    """(grandparent, child cols, grandparent cols) when a missing parent of this link may be created."""
    if relation.parent not in RECREATABLE_PARENTS:
        return None
    chain = ancestor_chain(graph, relation)
    return chain[0] if chain else None


def _parent_rows_to_create(db, graph, plans):
    """Distinct missing RESULTS/EPOCH rows whose trial run exists.

    Returns {parent table: {key tuple (parent key columns, sorted by name): (grandparent,
    {grandparent column: value})}}, one entry per row however many links point at it; integer keys only (the
    links of other keys are removed as orphans).
    """
    wanted = {}
    for plan in plans:
        for rel_no, relation in enumerate(plan.relations):
            found = _recreatable(graph, relation)
            if not found:
                continue
            grand, child_cols, grand_cols = found
            on = " AND ".join("g.%s = h.%s" % (db.quote(g), plan.value_name(c)) for c, g in zip(child_cols, grand_cols))
            names = list(relation.child_columns) + [c for c in child_cols if c not in relation.child_columns]
            rows = db.query("SELECT DISTINCT %s FROM %s h WHERE h.rel = ? AND h.kind = 'd' AND EXISTS "
                            "(SELECT 1 FROM %s g WHERE %s)" % (
                                ", ".join("h.%s" % plan.value_name(c) for c in names), db.quote(plan.rows_table),
                                db.quote(grand), on), (rel_no,))
            to_parent = dict(zip(relation.child_columns, relation.parent_columns))
            order = sorted(relation.parent_columns)
            bucket = wanted.setdefault(relation.parent, {})
            for row in rows:
                values = dict(zip(names, row))
                key = tuple(values[c] for c in sorted(relation.child_columns, key=lambda c: to_parent[c]))
                if not all(isinstance(v, int) for v in key):  # text, bytes, a REAL in an INT key: not what the old
                    continue  # API left parentless, and no row to create (round 20: sorting them was exit 70)
                bucket.setdefault((tuple(order), key), (grand, {g: values[c] for c, g in zip(child_cols, grand_cols)}))
    return {parent: rows for parent, rows in wanted.items() if rows}


def children_of(db, graph, table, values):
    """{relation: rows pointing at the row `values` of `table`} (its key columns among `values`)."""
    counts = {}
    for rel in graph.relations:
        if rel.parent != table or not all(c in values for c in rel.parent_columns):
            continue
        where = " AND ".join("%s = ?" % db.quote(c) for c in rel.child_columns)
        counts["%s(%s)" % (rel.child, ",".join(rel.child_columns))] = int(db.scalar(
            "SELECT count(*) FROM %s WHERE %s" % (db.quote(rel.child), where),
            tuple(values[c] for c in rel.parent_columns)) or 0)
    return counts


def create_parents(db, graph, wanted, record):
    """Insert the missing parent rows; their time comes from the trial run. Returns rows per table."""
    created = {}
    for parent, rows in wanted.items():
        extra = [c for c in graph.columns[parent] if c == "time"]
        for (columns, key), (grand, grand_key) in sorted(rows.items()):
            values = dict(zip(columns, key))
            source = next((c for c in TIME_SOURCES if c in graph.columns[grand]), None)
            if extra and source:
                where = " AND ".join("%s = ?" % db.quote(c) for c in grand_key)
                values["time"] = db.scalar("SELECT %s FROM %s WHERE %s" % (db.quote(source), db.quote(grand), where),
                                           tuple(grand_key.values()))
            record(parent, dict(values))  # the whole row: undo removes it only while it still holds this
            names = list(values)
            db.execute("INSERT INTO %s (%s) VALUES (%s)" % (db.quote(parent), db.quote_columns(names),
                                                           ", ".join("?" * len(names))),
                       tuple(portable(values[n]) for n in names))
            created[parent] = created.get(parent, 0) + 1
    return created


def _build_doom(db, graph, plans, tables_filter, include_unreferenced):
    """One temporary table of row identities per table to remove; returns ({table: (plan, count)}, Staying)."""
    doom, staying = {}, Staying()
    for plan in plans:
        if tables_filter and plan.table not in tables_filter:
            staying.left_behind[plan.table] = doomed_count(db, plan)
            continue
        if db.dialect == "mysql" and plan.identity_names == plan.columns and not graph.primary_keys.get(plan.table):
            staying.unkeyed[plan.table] = unkeyed_doomed_count(db, plan)  # no key to delete its rows one by one
            continue
        if db.dialect == "sqlite" and plan.identity != ["rowid"]:  # (round 20: "no such column: t.rowid", blamed on
            count = doomed_count(db, plan)  # the quarantine folder, after the dry run had promised to remove them)
            if count:
                raise UsageError("%s is a WITHOUT ROWID table: emfix keeps the rows it removes by their rowid and "
                                 "cannot remove its %d orphans; nothing was changed" % (plan.table, count),
                                 hint="`emfix validate` lists them; remove them by hand, or rebuild the table with a "
                                      "rowid, then run it again")
    staying.held = hold_what_stays_points_at(db, plans, staying)
    for plan in plans:
        if plan.table in staying.left_behind or plan.table in staying.unkeyed:
            continue
        ids = plan.identity_list
        held = "" if plan.table not in staying.held else " AND NOT EXISTS (SELECT 1 FROM %s h WHERE %s)" % (
            db.quote(held_table(plan)), plan.same_identity("h", db.quote(plan.rows_table)))
        # Indexed: the batches page through it by key, the unreferenced rows' plan probes it (without, each batch
        # sorted all of it, and the plan read it once per link row).
        db.create_temp_table(_doom_table(plan), "SELECT DISTINCT %s FROM %s WHERE kind IN ('d', 'c')%s" % (
            ids, db.quote(plan.rows_table), held), indexes=[ids.split(", ")])
        count = int(db.scalar("SELECT count(*) FROM %s" % db.quote(_doom_table(plan))) or 0)
        if count:
            doom[plan.table] = (plan, count)
    if include_unreferenced:
        for table in UNREFERENCED_TABLES:
            if table in graph.tables and (not tables_filter or table in tables_filter):
                being_removed = {t: plan for t, (plan, _count) in doom.items()}
                found = _unreferenced_after(db, graph, table, being_removed)
                if found and db.dialect == "mysql" and not graph.primary_keys.get(table):
                    staying.unkeyed[table] = found[1]  # its rows are named by an id that may repeat (round 23: two
                elif found:  # rows under one id were copied twice each, one was lost, undo put back the other twice)
                    doom[table] = found
    staying.drop_empty()
    return doom, staying


def _unreferenced_after(db, graph, table, by_table):
    """METRIC/ARTIFACT rows no surviving link row points at (links being removed do not count)."""
    links = [r for r in graph.children_of(table) if len(r.child_columns) == 1]
    key = (graph.primary_keys.get(table) or ("id",))
    if not links or len(key) != 1:
        return None
    quoted = db.quote
    survivors = []
    for rel in links:
        col = quoted(rel.child_columns[0])
        sql = "SELECT x.%s AS k FROM %s x WHERE x.%s IS NOT NULL" % (col, quoted(rel.child), col)
        plan = by_table.get(rel.child)
        if plan is not None:
            ident = ["x.rowid"] if plan.identity == ["rowid"] else ["x." + quoted(c) for c in plan.identity_names]
            sql += " AND NOT EXISTS (SELECT 1 FROM %s d WHERE %s)" % (quoted(_doom_table(plan)), " AND ".join(
                "d.i%d = %s" % (n, expr) for n, expr in enumerate(ident)))
        survivors.append(sql)
    plan = TablePlan(table, 1000 + UNREFERENCED_TABLES.index(table), ["rowid"] if db.dialect == "sqlite" else
                      [quoted(key[0])], ["rowid"] if db.dialect == "sqlite" else [key[0]], list(key), [], [])
    ident = "t.rowid" if db.dialect == "sqlite" else "t.%s" % quoted(key[0])
    if db.dialect == "sqlite":  # NOT IN builds one temporary index of the union: a merge
        db.create_temp_table(_doom_table(plan), "SELECT %s AS i0 FROM %s t WHERE t.%s NOT IN (%s)" % (
            ident, quoted(table), quoted(key[0]), " UNION ALL ".join(survivors)), indexes=[["i0"]])
    else:  # MariaDB runs a NOT IN over a UNION again for each row (17k metrics: 10 s): the links kept, indexed
        linked = "%slinked_%s" % (TMP, table.lower())
        db.create_temp_table(linked, " UNION ".join(survivors), indexes=[["k"]])
        db.create_temp_table(_doom_table(plan), "SELECT %s AS i0 FROM %s t WHERE NOT EXISTS (SELECT 1 FROM %s l "
                             "WHERE l.k = t.%s)" % (ident, quoted(table), quoted(linked), quoted(key[0])),
                             indexes=[["i0"]])
    count = int(db.scalar("SELECT count(*) FROM %s" % quoted(_doom_table(plan))) or 0)
    return (plan, count) if count else None


def _examples(db, graph, plan, limit=3):
    """A few doomed rows, each {column: value} of its key: the primary key (or the columns kept for the
    row), never SQLite's rowid, which a user cannot look up."""
    if plan.identity != ["rowid"]:
        names = plan.identity_names
        rows = db.query("SELECT %s FROM %s ORDER BY %s LIMIT %d" % (
            plan.identity_list, db.quote(_doom_table(plan)), plan.identity_list, limit))
    else:
        names = list(graph.primary_keys.get(plan.table) or plan.columns)
        rows = db.query("SELECT %s FROM %s d JOIN main.%s t ON t.rowid = d.i0 ORDER BY d.i0 LIMIT %d" % (
            ", ".join("t.%s" % db.quote(c) for c in names), db.quote(_doom_table(plan)), db.quote(plan.table), limit))
    return [dict(zip(names, r)) for r in rows]


CHUNK_ROWS = 100000  # rows per planning statement: each takes well under 250 ms


def _summarize(db, graph, doomed, recreate_counts, keepable):
    doom, staying = doomed
    order = [t for t in graph.child_first() if t in doom]
    return CleanupPlan({t: doom[t][1] for t in order}, recreate_counts, keepable,
                       {t: _examples(db, graph, doom[t][0]) for t in order}, staying.left_behind, staying.unkeyed,
                       staying.held)


# -- doing it ------------------------------------------------------------------------------------

def _stage_table(plan):
    return "%sstage_%d" % (TMP, plan.number)


def _quarantine_rows(db, graph, doom, qcon, qpath, progress):
    """Copy every doomed row into the quarantine file and commit it (fsync) before any delete.

    Rows are kept by content, never by rowid alone: SQLite hands a freed rowid to the next insert,
    so a rerun may meet a new row under an old rowid, and it must be kept as well."""
    attached = db.dialect == "sqlite"
    for table in doom:
        q.ensure_table(qcon, table, graph.columns[table], with_rowid=attached)
    for table in doom:
        qcon.execute("DROP INDEX IF EXISTS %s" % q.qi("_emfix_key_" + table))  # older files: unique by rowid
        qcon.execute("CREATE INDEX IF NOT EXISTS %s ON %s (%s)" % (
            q.qi("_emfix_content_" + table), q.qi(table), ", ".join(q.qi(c) for c in _content_key(graph, table))))
    _copy_doomed(db, graph, doom, qcon, progress)
    kill_point("staged")
    if attached:
        # The rows were staged in temp tables by short reads of main; the commit (and its fsync)
        # of the quarantine then happens without holding any lock on the database.
        db.execute("ATTACH DATABASE ? AS emfix_q", (sqlite_name(qpath),))
        try:
            db.execute("PRAGMA emfix_q.synchronous = FULL")
            db.execute("BEGIN")  # deferred: it writes the quarantine only, so main stays unlocked
            try:
                for table, (plan, _count) in doom.items():
                    db.execute(_keep_new_rows_sql(graph, table, "emfix_q.%s" % q.qi(table),
                                                  "temp.%s" % q.qi(_stage_table(plan)), with_rowid=True))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        finally:
            db.execute("DETACH DATABASE emfix_q")
    meta = q.read_meta(qcon)
    q.write_meta(qcon, tables=sorted(set(meta.get("tables", [])) | set(doom)))
    kill_point("kept")
    log.info("quarantined %d rows in %s", sum(c for _, c in doom.values()), qpath)


def _content_key(graph, table):
    return list(graph.primary_keys.get(table) or ()) or list(graph.columns[table])


def _keep_new_rows_sql(graph, table, kept, staged, with_rowid):
    """INSERT the staged rows the quarantine does not already hold with the same content (NULL-safe). In a SQLite
    table without a primary key identical rows are told apart by their rowid too: a rerun after a kill took the twin
    of a row already kept for kept, removed it, and it was lost (round 21)."""
    columns = list(graph.columns[table])
    names = ([q.ROWID] if with_rowid else []) + columns
    same = " AND ".join("k.%s IS s.%s" % (q.qi(c), q.qi(c)) for c in (
        [q.ROWID] if with_rowid and not graph.primary_keys.get(table) else []) + columns)
    return "INSERT INTO %s (%s) SELECT %s FROM %s s WHERE NOT EXISTS (SELECT 1 FROM %s k WHERE %s)" % (
        kept, ", ".join(q.qi(n) for n in names), ", ".join("s." + q.qi(n) for n in names), staged, kept, same)


def _copy_doomed(db, graph, doom, qcon, progress):
    for table in graph.child_first():
        if table not in doom:
            continue
        plan, count = doom[table]
        columns = graph.columns[table]
        progress.update("quarantining %s (%d rows)" % (table, count), force=True)
        quoted = db.quote
        if db.dialect == "sqlite":  # SQL to SQL through ATTACH: every value keeps its exact storage class
            staged = _stage_table(plan)
            values = ", ".join("t." + quoted(c) for c in columns)
            db.create_temp_table(staged, "SELECT t.rowid AS %s, %s FROM main.%s t WHERE t.rowid IN "
                                 "(SELECT i0 FROM temp.%s)" % (q.qi(q.ROWID), values, quoted(table),
                                                                quoted(_doom_table(plan))))
            db.create_temp_index(staged, [q.ROWID])
            continue
        on = " AND ".join("d.i%d = t.%s" % (n, quoted(c)) for n, c in enumerate(plan.identity_names))
        # The doomed rows as read now, in a scratch table on the server: what the quarantine keeps is
        # what the delete compares with, so a row changed after this read is not deleted.
        db.create_temp_table(_stage_table(plan), "SELECT t.* FROM %s t JOIN %s d ON %s" % (
            quoted(table), quoted(_doom_table(plan)), on), indexes=[plan.identity_names])
        select = "SELECT %s FROM %s t" % (db.exact_columns(table, columns, "t."), quoted(_stage_table(plan)))
        staged = "temp.%s" % q.qi(_stage_table(plan))
        qcon.execute("DROP TABLE IF EXISTS %s" % staged)
        qcon.execute("CREATE TEMP TABLE %s (%s)" % (q.qi(_stage_table(plan)), ", ".join(q.qi(c) for c in columns)))
        insert = "INSERT INTO %s VALUES (%s)" % (staged, ", ".join("?" * len(columns)))
        qcon.execute("BEGIN")
        batch = []
        for row in db.iter_rows(select, arraysize=2000):
            batch.append(tuple(sqlite_storable(portable(v)) for v in row))
            if len(batch) >= 2000:
                qcon.executemany(insert, batch)
                batch = []
        if batch:
            qcon.executemany(insert, batch)
        qcon.execute(_keep_new_rows_sql(graph, table, q.qi(table), staged, with_rowid=False))
        qcon.execute("COMMIT")
        qcon.execute("DROP TABLE %s" % staged)


# -- the two halves, as a repair calls them ----------------------------------------------------------

@dataclasses.dataclass
class OrphanWork:
    """What plan_orphans found: the sweep's figures, the doomed rows (temp tables on `db`'s connection)
    and the plan shown to the user; remove_orphans executes exactly this."""

    checks: list  # the sweep's RelationCheck per relation (validate's figures, before)
    tables: dict  # the sweep's TableCheck per table
    wanted: dict  # missing parents --recreate-parents creates
    keepable: Dict[str, int]
    doom: dict
    left: "Staying"  # doomed rows that stay where they are
    plan: Optional[CleanupPlan]  # None when parents are created first: the real plan is made then
    preview: Optional[CleanupPlan] = None  # the plan once the parents exist (what a question shows)
    tables_filter: Optional[list] = None
    include_unreferenced: bool = False
    recreate_parents: bool = False
    plans: Optional[list] = None  # the sweep's TablePlans (their rows tables): what orphanrescue looks at again
    seen: Optional[int] = None  # SQLite's data_version once the sweep was read (see remove_orphans)
    tops: Optional[dict] = None  # SQLite: each table's newest rowid before the sweep (orphanrescue.ChildrenSince)

    @property
    def shown(self):
        return self.plan if self.plan is not None else self.preview

    @property
    def anything(self):
        return bool(self.recreate_parents and self.wanted) or bool(self.plan is not None and self.plan.total)


@dataclasses.dataclass
class OrphanOutcome:
    plan: CleanupPlan
    removed: Dict[str, int]
    created: Dict[str, int]
    left_alone: Dict[str, int]
    left_alone_examples: Dict[str, list]
    batches: int
    max_batch_ms: float
    one_row_over_ms: float = 0.0


def plan_orphans(db, graph, *, tables=None, include_unreferenced=False, recreate_parents=False, preview=False):
    """The sweep, and the rows a cleanup removes (or, with recreate_parents, the parents it creates
    first). `preview`: also work out what the plan will be once the parents exist (create them, plan,
    roll back), for a dry run or a question."""
    seen = db.data_version()  # before the sweep, which reads in chunks: a commit meanwhile makes the next look run
    tops = newest_rowids(db, graph)
    checks, sweep_tables, plans = sweep_foreign_keys(db, graph, limit=0, chunk_rows=CHUNK_ROWS)
    wanted = _parent_rows_to_create(db, graph, plans)
    keepable = {parent: len(rows) for parent, rows in wanted.items()}
    work = OrphanWork(checks, sweep_tables, wanted, keepable, {}, Staying(), None, tables_filter=tables,
                      include_unreferenced=include_unreferenced, recreate_parents=recreate_parents, plans=plans,
                      seen=seen, tops=tops)
    if recreate_parents and wanted:
        if preview:
            db.execute("SAVEPOINT emfix_dry_run") if db.dialect == "sqlite" else db.execute("START TRANSACTION")
            try:
                create_parents(db, graph, wanted, lambda _table, _values: None)
                _checks, _tables, plans = sweep_foreign_keys(db, graph, limit=0, chunk_rows=CHUNK_ROWS)
                work.preview = _summarize(db, graph, _build_doom(db, graph, plans, tables, include_unreferenced),
                                          dict(keepable), keepable)
            finally:
                db.execute("ROLLBACK TO emfix_dry_run") if db.dialect == "sqlite" else db.execute("ROLLBACK")
                if db.dialect == "sqlite":
                    db.execute("RELEASE emfix_dry_run")
        return work
    work.doom, work.left = _build_doom(db, graph, plans, tables, include_unreferenced)
    work.plan = _summarize(db, graph, (work.doom, work.left), dict(keepable) if recreate_parents else {}, keepable)
    return work


def remove_orphans(db, graph, work, change, *, batch_size=5000, sleep=0.0, max_lock_ms=200, progress, interrupted):
    """Execute the plan inside `change` (its snapshot and quarantine are opened here): create the
    parents, keep every doomed row, then delete in short compare-and-swap batches."""
    qcon = change.open()
    qpath = change.quarantine_path
    settle_marks(db, graph, qcon)  # what a killed run kept but did not remove, or removed but did not mark
    created, doom, plan, plans, seen, tops = {}, work.doom, work.plan, work.plans, [work.seen], work.tops
    if work.recreate_parents and work.wanted:
        def record(table, values):
            # With the rows that already point at it: undo leaves a parent the application has since used.
            qcon.execute("INSERT INTO %s (table_name, key_json, children_json) VALUES (?, ?, ?)" % q.CREATED,
                         (table, json.dumps(values, default=str), json.dumps(children_of(db, graph, table, values))))
        qcon.execute("BEGIN")
        with db.transaction():
            created = create_parents(db, graph, work.wanted, record)
            qcon.execute("COMMIT")
        seen, tops = [db.data_version()], newest_rowids(db, graph)  # (before the sweep: see plan_orphans)
        _checks, _tables, plans = sweep_foreign_keys(db, graph, limit=0, chunk_rows=CHUNK_ROWS)
        doom, left = _build_doom(db, graph, plans, work.tables_filter, work.include_unreferenced)
        plan = _summarize(db, graph, (doom, left), dict(work.keepable), work.keepable)

    look = RescueLook(db, graph, plans or [])
    since = ChildrenSince(db, graph, tops, {t: _doom_table(p) for t, (p, _n) in doom.items() if p.identity == [
        "rowid"]}) if tops else None

    def still(table, keys):
        """The batch's keys doomed still, and no new child under them, looked at inside its transaction
        (orphanrescue)."""
        if seen[0] is not None and db.data_version() == seen[0]:
            return keys  # no other connection has committed to the file since the plan was read: nothing changed
        keys = look.still(table, keys)
        if since is not None and keys and doom[table][0].identity == ["rowid"]:
            taken = since.pointed_at(table, keys)
            keys = [k for k in keys if k[0] not in taken]
        return keys
    try:
        _quarantine_rows(db, graph, doom, qcon, qpath, progress)
    except (OSError, sqlite3.OperationalError) as exc:
        raise q.write_error(exc, qpath, "nothing was deleted") from None
    removed, stats, left_alone = delete_batches(
        db, graph, doom, lambda p: (_doom_table(p), _stage_table(p)), qcon, qpath, (batch_size, sleep, max_lock_ms),
        progress, interrupted, still=still, left=since.left_alone if since is not None else None)
    if any(left_alone.values()):  # the copies of rows no longer doomed (never marked removed) leave the quarantine
        settle_marks(db, graph, qcon)
    removed = q.removed_counts(qcon)  # what the whole change removed, an interrupted run's share included
    return OrphanOutcome(plan, removed, created, left_alone, stats["left_alone_examples"], stats["batches"],
                         stats["max_ms"], stats["one_row_over_ms"])
