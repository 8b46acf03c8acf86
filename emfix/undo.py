"""emfix undo: put back what a repair removed or rewrote, from its quarantine file.

Rows cleanup-orphans removed go back parents first, by their columns (never by rowid: SQLite may
have given that rowid to another row since); the parents --recreate-parents created are removed.
Values fix-json, transform-metrics or repair rewrote get their originals back byte for byte, with their
storage class, where the row still holds what the repair wrote. A quarantine may hold both (repair's):
rows go back first, then values. Running it twice changes nothing more; a row whose key now holds a
different row, or a value written since, is reported, not forced.
"""

import dataclasses
import json
import logging
import os
from typing import Dict, List

from . import quarantine as q
from .backends import open_database
from .backends.sqlite import placeholder
from .copyrefusals import sqlite_not_json, target_requires_json
from .errors import DamagedInputError, OperationInterrupted, UsageError
from .fileutil import sqlite_name
from .guarded import check_integrity, kill_point
from .orphans import children_of
from .schema import discover_graph, remember_spellings
from .undotwins import TwinCounter
from .undovalues import UNDO_BATCH, put_values_back
from .values import canonical, numbers_back

log = logging.getLogger(__name__)

VALUE_COMMANDS = ("fix-json", "transform-metrics")  # repairs that rewrote values in place


@dataclasses.dataclass
class UndoResult:
    quarantine: str
    restored: Dict[str, int]
    removed_created: int
    database: str
    # rows that could not go back: their key now holds a different row (written since the repair)
    not_restored: Dict[str, int] = dataclasses.field(default_factory=dict)
    conflicts: List[dict] = dataclasses.field(default_factory=list)
    # copies emfix may not have removed (a kill between a batch and its mark), left in the quarantine as their key
    # holds a row: an undo once the key is free puts them back
    waiting: Dict[str, int] = dataclasses.field(default_factory=dict)
    # copies of a table without a primary key not put back as the table holds as many rows like them already: the
    # application's, or this undo's own from a run killed between its two commits (WAL mode); emfix cannot tell
    alike_there: Dict[str, int] = dataclasses.field(default_factory=dict)
    # the change was stopped before it finished (killed, interrupted): what it had kept so far is what went back
    unfinished: bool = False


def _owner(meta, address, force, quarantine_path):
    """The database the quarantine came from, by its identity (a SQLite file by its real path, never
    resolved against the current directory); `address`, if given, must be that database."""
    key = q.owner_key(meta)
    if address is None:
        address = q.owner_address(meta)
        if address is None:
            raise UsageError("%s does not say which database it came from" % quarantine_path,
                             hint="name the database with -d DB")
    if key and address.key() != key and not force:
        raise UsageError("%s came from %s, not %s; nothing was changed" % (
            quarantine_path, key.replace("sqlite:", "", 1), address.display()),
            hint="leave out -d to undo into the database it came from, or add --force to put its rows into "
                 "this one (a moved or copied database)")
    return address


def find_quarantine(name, address=None):
    """The quarantine file named by its path, or by its id (the file name, with or without
    .quarantine.db) in the database's quarantine folder (-d DB) or ./quarantine."""
    if os.path.isfile(name) or os.sep in name:
        return name
    folders = ([q.default_quarantine_dir(address)] if address is not None else []) + [os.path.abspath("quarantine")]
    for folder in folders:
        for candidate in (name, name + ".quarantine.db"):
            if os.path.isfile(os.path.join(folder, candidate)):
                return os.path.join(folder, candidate)
    return name  # open_quarantine says it is not there


def undo(quarantine_path, address=None, *, retry_policy=None, force=False, batch_size=None, interrupted=None):
    """Put every quarantined row back (parents first), remove the parents a repair created, and put
    every rewritten value back.

    Idempotent: rows already present are left alone, so running it twice changes nothing more. A
    row whose key is now taken by a different row is not forced in: it is counted in not_restored.
    `interrupted()` true (a first Ctrl-C or SIGTERM) stops it between batches: OperationInterrupted, and
    the same undo run again finishes it.
    """
    quarantine_path = find_quarantine(quarantine_path, address)
    qcon = q.open_quarantine(quarantine_path)
    held = None
    try:
        held = q.hold(quarantine_path, "undo")
        meta = q.read_meta(qcon)
        if not meta:
            raise UsageError("%s is not an emfix quarantine file" % quarantine_path)
        _require_whole(qcon, meta, quarantine_path)
        address = _owner(meta, address, force, quarantine_path)
        # Forced into another database (a moved or copied one): the quarantine keeps its marks and its status
        # for its own (an outside tester undid into a copy that held the rows already; that spent every mark,
        # and the undo into the database they came from put none of them back).
        own = q.owner_key(meta) in (None, address.key())
        result = UndoResult(quarantine_path, {}, 0, address.display(), unfinished=meta.get("status") == "in progress")
        batch_size = batch_size or UNDO_BATCH
        stop = _stopper(interrupted, result)
        with open_database(address, retry_policy=retry_policy) as db:
            remember_spellings(db)  # values go back into METRIC as the database holds it (round 25: `metric`)
            check_integrity(db)
            db.warn_without_transactions(db.tables())
            kept_values = [dict(meta, kept_as=meta["table"])] if meta.get("command") in VALUE_COMMANDS else \
                meta.get("values") or []
            _require_value_columns(db, qcon, kept_values)
            _require_json_takers(db, qcon, kept_values)
            if meta.get("command") in VALUE_COMMANDS:  # a quarantine of values alone, named after their table
                put_values_back(db, qcon, dict(meta, kept_as=meta["table"]), result, batch_size, stop)
            else:
                # Rows first, then values: a value a repair rewrote in a row it later removed is kept
                # (in the row's copy) as the repair wrote it; the row goes back first, then its value.
                _put_rows_back(db, qcon, result, batch_size, marking=own, stop=stop)
                for values in meta.get("values") or ():
                    put_values_back(db, qcon, values, result, batch_size, stop)
        if own:
            q.write_meta(qcon, status="undone" if not result.not_restored else "undone, some rows or values not put "
                                                                                 "back")
        return result
    finally:
        qcon.close()
        q.release(held)  # (after the connection: see quarantine.hold)


def _require_whole(qcon, meta, path):
    """Refuse, before anything is changed, a quarantine that lacks what its own record says it holds: a table of
    removed rows it lists (an outside tester dropped one: undo put back the rest, the runs' epochs and batches
    without their runs, and said it was done), or a record of the wrong shape."""
    tables, values = meta.get("tables", []), meta.get("values") or []
    if meta.get("command") in VALUE_COMMANDS:
        values = [meta]  # a quarantine of values alone: the record names their column itself
    shaped = isinstance(values, list) and all(isinstance(v, dict) and all(
        isinstance(v.get(k), str) for k in ("table", "column", "key")) for v in values)
    if not (shaped and isinstance(tables, list) and all(isinstance(t, str) for t in tables)):
        raise DamagedInputError("the quarantine %s is damaged: its record of what it holds is not as emfix wrote it"
                                % path, hint=q.EDITED_HINT)
    held = {r[0] for r in qcon.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    lacking = [t for t in tables if t not in held]
    if lacking:
        raise DamagedInputError("the quarantine %s is damaged: it lists removed rows of %s but holds no table of "
                                "them; nothing was put back" % (path, ", ".join(lacking)), hint=q.EDITED_HINT)
    recorded = meta.get("digests") if meta.get("status") != "in progress" else None
    if recorded is None and meta.get("status") == "done":  # written with "done" since 2026-12-06 (round 60)
        log.warning("the quarantine %s records no checksum of its copies (an older emfix wrote it, or it was edited): "
                    "they go back unchecked", path)
    if isinstance(recorded, dict):  # (a change of an older emfix recorded none)
        now = q.content_digests(qcon)
        changed = sorted(t for t in set(recorded) | set(now) if recorded.get(t) != now.get(t))
        if changed:
            raise DamagedInputError("the quarantine %s is damaged: the copies in %s are not the ones the change kept; "
                                    "nothing was put back" % (path, ", ".join(changed)), hint=q.EDITED_HINT)
    removed = meta.get("removed") if meta.get("status") != "in progress" else None
    for table, count in (removed.items() if isinstance(removed, dict) else ()):
        if table not in held or not isinstance(count, int):
            continue
        if q.DELETED not in {r[1] for r in qcon.execute("PRAGMA table_info(%s)" % q.qi(table))}:
            continue  # an older emfix kept only what it removed, unmarked
        kept = qcon.execute("SELECT count(*) FROM %s WHERE %s IN (1, %d, %d)" % (
            q.qi(table), q.qi(q.DELETED), PUT_BACK, PUTTING_BACK)).fetchone()[0]
        if kept < count:  # (an interrupted run and its rerun: more copies than the rerun's count, never fewer)
            raise DamagedInputError("the quarantine %s is damaged: it holds %d of the %d rows of %s the change "
                                    "removed; nothing was put back" % (path, kept, count, table), hint=q.EDITED_HINT)


def _stopper(interrupted, result):
    """A check between batches: OperationInterrupted once `interrupted()` says so, naming what is back so far."""
    def stop():
        if interrupted is not None and interrupted():
            raise OperationInterrupted("interrupted after putting back %s rows or values; they are committed" % (
                "{:,}".format(sum(result.restored.values()))), hint="run the same undo again to finish")
    return stop


def _put_rows_back(db, qcon, result, batch_size, marking=True, stop=None):
    """Every row the repair removed back (parents first), then the parents it created removed. Only rows
    marked removed go back, then the copies still marked pending (a kill came between a batch and its mark,
    where the two are two commits: MySQL, SQLite in WAL mode) where their key is free: one whose key holds a row
    is counted as waiting, not as a conflict (emfix may not have removed it)."""
    graph = discover_graph(db)
    db.foreign_key_checks(False)
    names = [r[0] for r in qcon.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND "
                                       "name NOT LIKE '\\_emfix\\_%' ESCAPE '\\'")]
    _require_columns(qcon, graph, [t for t in graph.parent_first() if t in names], db.address.display())
    attached = db.dialect == "sqlite"
    if attached:  # undo's own marks commit with its inserts
        db.execute("ATTACH DATABASE ? AS %s" % ATTACHED, (sqlite_name(qcon_path(qcon)),))
    try:
        for table in [t for t in graph.parent_first() if t in names]:
            present = [r[1] for r in qcon.execute("PRAGMA table_info(%s)" % q.qi(table))]
            columns = [c for c in present if c not in (q.ROWID, q.DELETED)]
            if q.DELETED not in present:  # an older emfix kept only what it removed
                _reinsert(db, qcon, graph, table, columns, result, batch_size, stop=stop)
                continue
            _reinsert(db, qcon, graph, table, columns, result, batch_size,
                      where="%s IN (1, %d)" % (q.qi(q.DELETED), PUTTING_BACK), mark=marking, stop=stop)
            # Copies emfix may or may not have removed (a kill between a batch and its mark, where the two are two
            # commits): after the certain ones, and only where the key is free (round 15: such a copy marked
            # removed put back a stale row over the application's edit of it).
            _reinsert(db, qcon, graph, table, columns, result, batch_size, where="%s = 0" % q.qi(q.DELETED),
                      report=False, mark=marking, stop=stop)
    except BaseException:
        if attached:  # stopped (Ctrl-C, SIGTERM, an error) with a statement still open on it: the error it
            try:      # was is what the user must see; closing the connection detaches it anyway
                db.execute("DETACH DATABASE %s" % ATTACHED)
            except Exception:  # noqa: BLE001 - "database emfix_q is locked" was exit 70 over the real stop
                pass
        raise
    if attached:
        db.execute("DETACH DATABASE %s" % ATTACHED)
    _remove_created(db, qcon, graph, result)


def _require_value_columns(db, qcon, kept_values):
    """Before anything goes back: the columns a record of kept values names are in the quarantine's table of them
    and in the database's table (round 60: a record naming another column put the rows back, then stopped at the
    values, exit 70)."""
    tables = {t.lower(): t for t in db.tables()}
    for values in kept_values:
        kept = values.get("kept_as") or values["table"]
        present = {r[1] for r in qcon.execute("PRAGMA table_info(%s)" % q.qi(kept))}
        if not present:
            continue  # the change stopped before it kept any value
        if not {values["key"], values["column"], q.TYPE_COLUMN} <= present:
            raise DamagedInputError("the quarantine's record of kept values of %s names columns its copies do not "
                                    "hold; nothing was put back" % values["table"], hint=q.EDITED_HINT)
        stored = tables.get(values["table"].lower())
        have = {c.lower() for c in db.columns(stored)} if stored else set()
        lacking = [c for c in (values["key"], values["column"]) if c.lower() not in have]
        if lacking:
            raise DamagedInputError("the quarantine kept values of %s.%s, and %s %s has no column %s; nothing was put "
                                    "back" % (values["table"], values["column"], db.address.display(),
                                              values["table"], ", ".join(lacking)),
                                    hint="if the table lost the column since, add it back for the undo; if the "
                                         "quarantine was edited, " + q.EDITED_HINT.split("; ", 1)[1])


def _require_json_takers(db, qcon, kept_values):
    """Before anything goes back: original metric values that are not JSON, where the column takes JSON only (a
    MySQL JSON column, MariaDB's CHECK (json_valid(...))). They were there because the check was off when they were
    written; undo put the rows back, then stopped at the values (an outside tester, exit 4 with half undone)."""
    for values in kept_values:
        if (values.get("table"), values.get("column")) != ("METRIC", "per_label_val") or not target_requires_json(db):
            continue
        kept, column = values.get("kept_as") or values["table"], q.qi(values["column"])
        if not qcon.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (kept,)).fetchone():
            continue
        refused = qcon.execute("SELECT count(*) FROM %s WHERE %s IS NOT NULL AND %s" % (
            q.qi(kept), column, sqlite_not_json(column))).fetchone()[0]
        if refused:
            raise DamagedInputError(
                "%s of the original metric values are not valid JSON, and METRIC.per_label_val of %s takes JSON only; "
                "nothing was put back" % ("{:,}".format(refused), db.address.display()), kind="refused_value",
                hint="to have them back as they were, drop the column's JSON check for the undo and add it again "
                     "after; or keep the repaired values (the removed rows can go back with the values: not one "
                     "without the other)")


def _require_columns(qcon, graph, tables, where):
    """Before anything goes back: every column the quarantine kept a table's rows with is one the table has (an
    outside tester added one to a quarantine table: exit 70 halfway; a column the table lost since is the same).
    A column the table gained since is left to its default."""
    for table in tables:
        kept = [r[1] for r in qcon.execute("PRAGMA table_info(%s)" % q.qi(table)) if r[1] not in (q.ROWID, q.DELETED)]
        unknown = [c for c in kept if c.lower() not in {n.lower() for n in graph.columns[table]}]
        lacking = [c for c in graph.primary_keys.get(table) or () if c.lower() not in {k.lower() for k in kept}]
        if lacking:  # (round 14: rows went back with a NULL or 0 key where the quarantine had lost the column)
            raise DamagedInputError("the quarantine's copies of %s lack its key column(s) %s; nothing was put back" % (
                table, ", ".join(lacking)), hint=q.EDITED_HINT)
        if unknown:
            raise DamagedInputError("the quarantine's copies of %s hold column(s) %s, which %s %s has not; nothing "
                                    "was put back" % (table, ", ".join(unknown), where, table),
                                    hint="if the table lost the column since, add it back for the undo; if the "
                                         "quarantine was edited, a copy of the file from a backup, or the snapshot "
                                         "taken before the change (emfix snapshot list), has the originals")


def qcon_path(con):
    """The file a quarantine connection has open."""
    return next(r[2] for r in con.execute("PRAGMA database_list") if r[1] == "main")


def _json_object(text):
    """A JSON object read from the quarantine, or None (absent, or not an object of plain values)."""
    try:
        value = json.loads(text) if text else None
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) and all(isinstance(v, (str, int, float, type(None)))
                                                    for v in value.values()) else None


def _remove_created(db, qcon, graph, result):
    """The parents --recreate-parents created, removed only while they hold what it wrote and no row the
    application added since points at them (such a one is named and left). One transaction, run again
    whole after a conflict."""
    op = "IS" if db.dialect == "sqlite" else "<=>"
    columns = {r[1] for r in qcon.execute("PRAGMA table_info(%s)" % q.CREATED)}
    children = ", children_json" if "children_json" in columns else ", NULL"
    created = []
    for table, key_json, kids in qcon.execute("SELECT table_name, key_json%s FROM %s ORDER BY ordinal DESC"
                                              % (children, q.CREATED)).fetchall():
        row, kids = _json_object(key_json), _json_object(kids)
        if table not in graph.tables or not row or not all(c in graph.columns[table] for c in row):
            raise DamagedInputError("the quarantine's record of a created %s row is damaged: %r" % (table, key_json),
                                    hint="nothing of the created rows was removed; the rows put back stay")
        created.append((table, row, kids))

    def remove():
        removed, changed = 0, []
        for table, row, kids in created:
            if kids is not None and any(now > (kids.get(rel) if isinstance(kids.get(rel), int) else 0) for rel, now in
                                        children_of(db, graph, table, row).items()):
                changed.append((table, row, "rows the application added since point at it"))
                continue
            same = " AND ".join("%s %s ?" % (db.quote(c), op) for c in row)
            gone = db.execute("DELETE FROM %s WHERE %s" % (db.quote(table), same), tuple(row.values()))
            removed += gone
            if gone:
                continue
            key = [c for c in (graph.primary_keys.get(table) or ()) if c in row] or [c for c in row if c != "time"]
            where = " AND ".join("%s = ?" % db.quote(c) for c in key)
            if db.query("SELECT 1 FROM %s WHERE %s" % (db.quote(table), where), tuple(row[c] for c in key)):
                changed.append((table, row, "changed since the repair"))
        return removed, changed
    removed, changed = db.write_batch(remove)
    result.removed_created += removed
    for table, row, why in changed:
        result.not_restored[table] = result.not_restored.get(table, 0) + 1
        if len(result.conflicts) < 20:
            result.conflicts.append({"table": table, "created": row, "now": why})


KEYS_PER_QUERY = 200


PUT_BACK, PUTTING_BACK = 2, 3  # the quarantine's marks of undo's own progress (1: removed by the repair)


def _reinsert(db, qcon, graph, table, columns, result, batch_size=None, where=None, report=True, mark=True,
              stop=None):
    """Insert the quarantined rows by their columns (never by rowid: SQLite may have given that rowid
    to another row since), then check each row that did not go in is there with the same content.

    With marks (`where` given), each batch also marks its copies put back, so an undo killed and run
    again does not put back a row the application deleted in between: on SQLite in the batch's own
    transaction (the quarantine attached), on MySQL marked "putting back" first and "put back" after."""
    key = [c for c in (graph.primary_keys.get(table) or ()) if c in columns] or list(columns)
    double = key == list(columns) and not graph.primary_keys.get(table)
    # Without a primary key, identical rows are told apart by their number only: a copy goes back while the table
    # holds fewer rows like it than the quarantine holds copies (round 20: "unless one is there" put back one of
    # each pair of identical rows, and the other was lost). Pending copies count too in their own pass.
    counted = "1 = 1" if where is None else "%s IN (%s1, %d, %d)" % (q.qi(q.DELETED), "" if report else "0, ",
                                                                     PUT_BACK, PUTTING_BACK)

    def insert(row):
        """The INSERT of rows like `row`: each value bound with its storage class (placeholder); where a key tells
        rows apart, one that finds its key taken is left out (and looked at afterwards)."""
        marks = ", ".join(placeholder(v) for v in row)
        if double:  # the copies that go back are chosen first (TwinCounter)
            return "INSERT INTO %s (%s) VALUES (%s)" % (db.quote(table), db.quote_columns(columns), marks)
        return "INSERT %s INTO %s (%s) VALUES (%s)" % ("OR IGNORE" if db.dialect == "sqlite" else "IGNORE",
                                                       db.quote(table), db.quote_columns(columns), marks)

    def copies(row):
        """How many copies like `row` the quarantine holds for this pass (a table without a primary key)."""
        same = " AND ".join("%s IS %s" % (q.qi(c), placeholder(v)) for c, v in zip(columns, row))
        return qcon.execute("SELECT count(*) FROM %s WHERE %s AND %s" % (q.qi(table), same, counted),
                            row).fetchone()[0]
    key_at = [columns.index(c) for c in key]
    restored, last, mark = 0, 0, mark and where is not None
    twins = TwinCounter(db, table, columns) if double else None  # (its scratch table goes with the connection)
    kinds = db.column_types(table) if db.dialect == "mysql" else {}  # a value past SQLite's INTEGER: its digits
    while True:
        if where is None:  # an older quarantine: no marks, read it whole in pages of its own rowid
            found = qcon.execute("SELECT rowid, %s FROM %s WHERE rowid > ? ORDER BY rowid LIMIT %d" % (
                ", ".join(q.qi(c) for c in columns), q.qi(table), batch_size or UNDO_BATCH), (last,)).fetchall()
        else:
            found = qcon.execute("SELECT rowid, %s FROM %s WHERE (%s) AND rowid > ? ORDER BY rowid LIMIT %d" % (
                ", ".join(q.qi(c) for c in columns), q.qi(table), where, batch_size or UNDO_BATCH), (last,)).fetchall()
        if not found:
            break
        if stop is not None:
            stop()
        last = found[-1][0]
        ids, kept = [r[0] for r in found], [tuple(r[1:]) for r in found]  # (kept: as the quarantine holds them)
        rows = list(numbers_back(kinds, columns, kept))
        if mark and db.dialect != "sqlite":
            _mark(qcon, "main", table, ids, PUTTING_BACK)

        wanted = {}  # one count per content, not per copy
        for row, as_kept in zip(rows, kept) if double else ():
            if row not in wanted:
                wanted[row] = copies(as_kept)

        def batch(rows=rows, ids=ids, wanted=wanted):  # INSERT IGNORE / up to the copies' number: reran whole
            done = 0
            for sql, alike in _alike(twins.to_put_back(rows, wanted) if double else rows, insert).items():
                done += db.executemany(sql, alike, batch_size=len(alike))  # (one statement but where text is not UTF-8)
            if mark and db.dialect == "sqlite":
                _mark(db, ATTACHED, table, ids, PUT_BACK)
            return done
        written = db.write_batch(batch)
        if mark and db.dialect != "sqlite":
            _mark(qcon, "main", table, ids, PUT_BACK)
        kill_point("undone")
        written = max(0, written)
        restored += written
        if written == len(rows):
            continue
        if double:  # as many rows like them are there already: the application's or an earlier run's of this undo
            result.alike_there[table] = result.alike_there.get(table, 0) + len(rows) - written  # (round 21, 22)
            continue
        present, refused = _rows_by_key(db, table, columns, key_at, rows), []
        for copy, row in zip(ids, rows):
            wanted = [canonical(v) for v in row]
            found_now = present.get(tuple(wanted[i] for i in key_at), [])
            if wanted in found_now:
                continue
            refused.append(copy)
            if not report:
                result.waiting[table] = result.waiting.get(table, 0) + 1
            else:
                result.not_restored[table] = result.not_restored.get(table, 0) + 1
                if len(result.conflicts) < 20:
                    result.conflicts.append({"table": table, "row": dict(zip(columns, row)),
                                             "now": [dict(zip(columns, f)) for f in found_now[:1]]})
        if mark and refused:  # not put back: marked as before, so an undo once the key is free puts it back
            _mark(qcon, "main", table, refused, 1 if report else 0)  # (round 15: it was marked put back)
    result.restored[table] = result.restored.get(table, 0) + restored


ATTACHED = "emfix_q"


def _alike(rows, statement):
    """{statement(row): the rows it binds as they are stored}, in their order: rows holding TEXT that is not UTF-8
    need CAST(? AS TEXT) where it is (placeholder); every other row shares one statement."""
    grouped = {}
    for row in rows:
        grouped.setdefault(statement(row), []).append(row)
    return grouped


def _mark(con, schema, table, ids, value):
    """Set the quarantine's mark of these copies (by their rowid in the quarantine)."""
    for start in range(0, len(ids), KEYS_PER_QUERY):
        part = ids[start:start + KEYS_PER_QUERY]
        sql = "UPDATE %s.%s SET %s = ? WHERE rowid IN (%s)" % (schema, q.qi(table), q.qi(q.DELETED),
                                                               ", ".join("?" * len(part)))
        if schema != "main":  # the database's connection, inside the batch's transaction
            con.execute(sql, (value,) + tuple(part))
        else:  # the quarantine's own connection
            con.execute("BEGIN")
            con.execute(sql, (value,) + tuple(part))
            con.execute("COMMIT")


def _rows_by_key(db, table, columns, where, rows):
    """{key: [row as stored now, canonical]} for the keys of `rows`: one query for the batch (rows whose
    key holds a NULL, which `IN` never matches, are looked up one by one, NULL-safely)."""
    keyed = [tuple(row[i] for i in where) for row in rows]
    plain = sorted({k for k in keyed if None not in k}, key=repr)
    names = db.quote_columns([columns[i] for i in where])
    select = "SELECT %s FROM %s WHERE " % (db.exact_columns(table, columns), db.quote(table))
    found = []
    for start in range(0, len(plain), KEYS_PER_QUERY):  # within old SQLite's 999 parameters
        part = plain[start:start + KEYS_PER_QUERY]
        found += db.query(select + "(%s) IN (%s)" % (names, ", ".join(
            "(%s)" % ", ".join(placeholder(v) for v in k) for k in part)), tuple(v for k in part for v in k))
    same = "IS" if db.dialect == "sqlite" else "<=>"
    for k in {k for k in keyed if None in k}:
        found += db.query(select + " AND ".join("%s %s %s" % (db.quote(columns[i]), same, placeholder(v))
                                                for i, v in zip(where, k)), k)
    present = {}
    for row in found:
        row = [canonical(v) for v in row]
        present.setdefault(tuple(row[i] for i in where), []).append(row)
    return present
