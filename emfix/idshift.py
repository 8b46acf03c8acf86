"""Ids that move only where they would collide: the offsets import and migrate give auto-increment ids.

An experiment copied into a database keeps its ids when none of them is taken there (a whole database
moved to MySQL keeps the ids notebooks refer to); otherwise every id of that table moves past the
largest one already there, and every column that refers to it (through the relation graph,
composite keys included) moves with it.
"""

import contextlib
import decimal
import math
from contextlib import nullcontext

from .backends.base import server_lock
from .errors import DamagedInputError, DatabaseLockedError, EmfixError
from .schema import EM_TABLES, discover_graph
from .values import INTEGER_BITS, whole, whole_number_range

AUTO_ID_TABLES = tuple(t.name for t in EM_TABLES if t.auto_id)


class IdsTakenError(EmfixError):
    """The ids a resumed copy would give the rows SRC gained are taken in DST."""


def id_owner(graph, table, column, seen=None):
    """The auto-increment table whose id this column holds (following foreign keys), or None."""
    seen = seen or set()
    if (table, column) in seen:
        return None
    seen.add((table, column))
    if table in AUTO_ID_TABLES and column == "id" and tuple(graph.primary_keys.get(table) or ()) == ("id",):
        return table
    for rel in graph.relations_of(table):
        if column in rel.child_columns:
            parent_column = rel.parent_columns[rel.child_columns.index(column)]
            owner = id_owner(graph, rel.parent, parent_column, seen)
            if owner:
                return owner
    return None


def id_offset(db, table, low, high=None, held=None, referrers=()):
    """0 when no id in low..high is taken in `db` (high unknown: when every id there is below low);
    else the shift that puts low just past the largest id there. `held`: the highest id other unfinished copies
    reserved in this table (their rows may not be there yet): every id up to it counts as taken. `referrers`
    (referring_columns): an id a row of another table holds is taken too, its row there or not (an orphan given
    a copied row's id became that row's child: a copied experiment adopted a deleted one's trials)."""
    q = db.quote
    if high is not None and (held is None or int(held) < int(low)):
        taken = db.scalar("SELECT count(*) FROM %s WHERE %s BETWEEN ? AND ?" % (q(table), q("id")), (low, high))
        if not taken and not _referred_within(db, referrers, low, high):
            return 0
    top = _top(_larger(db.scalar("SELECT max(%s) FROM %s" % (q("id"), q(table))),
                       _largest_referred(db, referrers)), held)
    if top is None or (high is None and int(top) < int(low)):
        return 0
    return int(top) + 1 - int(low)


def referring_columns(graph):
    """{auto-increment table: [(table, column)]}: every column of `graph` but the table's own id that holds one of
    its ids (id_owner), composite keys included: where an orphan keeps the id of the parent it lost."""
    found = {}
    for table in graph.tables:
        for column in graph.columns.get(table, ()):
            owner = id_owner(graph, table, column)
            if owner and (table, column) != (owner, "id"):
                found.setdefault(owner, []).append((table, column))
    return found


def _referred_within(db, referrers, low, high):
    """Does a row of another table hold an id in low..high?"""
    return any(db.scalar("SELECT 1 FROM %s WHERE %s BETWEEN ? AND ? LIMIT 1" % (
        db.quote(table), _as_number(db, table, column)), (low, high)) for table, column in referrers)


def _largest_referred(db, referrers, ceiling=None):
    """The largest id rows of other tables hold (at most `ceiling`), or None: one scan a table."""
    q, largest, by_table = db.quote, None, {}
    for table, column in referrers:
        by_table.setdefault(table, []).append(column)
    for table, columns in by_table.items():
        values = [_as_number(db, table, c) for c in columns]
        row = db.query("SELECT %s FROM %s" % (", ".join(
            "max(%s)" % v if ceiling is None else "max(CASE WHEN %s <= ? THEN %s END)" % (v, v) for v in values),
            q(table)), () if ceiling is None else (ceiling,) * len(columns))[0]
        for value in row:
            largest = _larger(largest, _as_id(value))
    return largest


def _as_number(db, table, column):
    """`column` as the number the database compares it with an id as (round 39: text that reads as a number, '10.0',
    ' 11', '1.2e1', MySQL's '13abc' too, was no id to emfix, and the copy's new row of that id adopted its orphan;
    SQLite sorts text above every number, so a text value also hid the largest id)."""
    value = db.quote(column)
    if db.dialect == "sqlite":
        return "(CASE WHEN typeof(%s) IN ('integer', 'real') THEN %s WHEN typeof(%s) = 'text' THEN CAST(%s AS REAL) " \
               "END)" % (value, value, value, value)
    declared = db.declared_columns(db.stored(table)).get(column.lower())
    return value if declared is None or declared.kind in INTEGER_BITS else "CAST(%s AS DOUBLE)" % value


def _as_id(value):
    """The id a referring value points at, or None (text that is no number): a fraction as the id above it, so that
    the copy's ids go past it whichever way the database rounds."""
    value = whole(value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else value)
    if isinstance(value, float) and math.isfinite(value):
        return math.ceil(value)
    if isinstance(value, decimal.Decimal) and value.is_finite():
        return int(value.to_integral_value(rounding=decimal.ROUND_CEILING))
    return value if type(value) is int else None


def _larger(a, b):
    """The larger of two ids, either None (none there)."""
    if a is None or b is None:
        return b if a is None else a
    return max(int(a), int(b))


def _top(largest, held):
    """The larger of a table's largest id (None: no row) and what other copies hold (None: nothing)."""
    if held is None:
        return largest
    return int(held) if largest is None else max(int(largest), int(held))


def column_shifts(graph, table, columns, offsets, unmoved_too=False):
    """[(column index, shift)] for the columns of `table` that hold a moved id (`unmoved_too`: every id column, a
    shift of 0 for those that stay)."""
    owners = [(i, id_owner(graph, table, c)) for i, c in enumerate(columns)]
    shifts = [(i, offsets.get(owner, 0)) for i, owner in owners if owner]
    return [(i, shift) for i, shift in shifts if shift or unmoved_too]


def reserve_ids(db, table, top):
    """Make `db` hand out ids above `top` from now on, so an application inserting while an import or copy
    writes its rows cannot take one of theirs: SQLite's AUTOINCREMENT sequence, MySQL's AUTO_INCREMENT.
    (A SQLite table without AUTOINCREMENT takes max(rowid) + 1, which the copy's own rows move past.)"""
    if top is None:
        return
    if db.dialect == "sqlite":
        sql = db.table_sql(table)
        if "AUTOINCREMENT" not in sql.upper():
            return
        with db.transaction():
            if not db.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = ? AND seq < ?", (top, table, top)):
                if db.scalar("SELECT count(*) FROM sqlite_sequence WHERE name = ?", (table,)) == 0:
                    db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, top))
        return
    current = db.scalar("SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND "
                        "TABLE_NAME = ?", (table,))
    if current is not None and int(current) <= int(top):
        db.execute("ALTER TABLE %s AUTO_INCREMENT = %d" % (db.quote(table), int(top) + 1))


def handed_out(db, table):
    """The highest id SQLite's AUTOINCREMENT sequence of `table` has handed out, or None: every id up to it counts
    as taken, though its row was deleted. AUTOINCREMENT's promise is that a deleted id is never given again (an
    outside tester, round 42: a copy took the ids of the experiment the application had just deleted, and would sit
    under its old id wherever the application kept that one). The sequence is reserved in the transaction that
    writes the copy's journal row, so a copy killed before it leaves no reservation behind. MySQL's AUTO_INCREMENT
    is not: an ALTER TABLE commits alone, a copy killed after its reservation left the counter up, and the copy
    run again would take other ids than one run; there a deleted id is free (README, "ids")."""
    if db.dialect != "sqlite" or "AUTOINCREMENT" not in db.table_sql(table).upper():
        return None
    handed = db.scalar("SELECT seq FROM sqlite_sequence WHERE name = ? COLLATE NOCASE", (db.stored(table),))
    return int(handed) if handed is not None and int(handed) >= 1 else None  # (nothing handed out: 0 is free)


@contextlib.contextmanager
def claiming_alone(db):
    """Copies into one MySQL database choose their ids one at a time (a named lock, held until the caller has
    written its journal row), each seeing the reservations of those before it (copyjournal.held_by_other_copies).
    On SQLite the caller's write transaction (BEGIN IMMEDIATE) does it."""
    with server_lock(db, "claim", db.address.database, getattr(db, "lock_wait", 0)) as held:
        if held is False:
            raise DatabaseLockedError("another copy into %s has been choosing its ids for longer than --lock-timeout "
                                      "allows; nothing was copied" % db.address.display(),
                                      hint="run this again when it has begun copying")
        yield


SLACK = 1000  # room for the application's inserts while MySQL's reservation (an ALTER TABLE) is made


def claim_ids(db, ranges, offsets=None, held=None, referrers=None):
    """{table: shift} for each table's ids low..high (`ranges`: {table: (low, high)}), each shifted range
    reserved in `db` (reserve_ids), so that the application's inserts from now on go above it, and past what
    other unfinished copies hold (`held`: {table: highest id}, copyjournal.held_by_other_copies), and past the ids
    rows of other tables hold (`referrers`: referring_columns of `db`'s graph, read when not given). Given offsets
    (a resumed copy's) are reserved again as they are."""
    if offsets is not None:
        for table, (_low, high) in ranges.items():
            reserve_ids(db, table, int(high) + offsets.get(table, 0))
        return offsets
    held = {table: _larger((held or {}).get(table), handed_out(db, table)) for table in ranges}
    referrers = referring_columns(discover_graph(db)) if referrers is None else referrers
    offsets = {table: id_offset(db, table, int(low), int(high), held.get(table), referrers.get(table, ()))
               for table, (low, high) in ranges.items()}
    for table, (low, high) in ranges.items():  # every table first: none reserved before one is refused (round 34)
        refuse_ids_past_the_column(db, table, int(low), int(high), offsets[table])
    return {table: _claim(db, table, int(low), int(high), held.get(table), referrers.get(table, ()),
                          offsets[table]) for table, (low, high) in ranges.items()}


def claim_gained_ids(db, ranges, offsets, reserved, copied, gained_ids, held=None):
    """A resumed copy: (offsets, reserved, gained). `ranges` are the subtree's id ranges in SRC now, `reserved`
    SRC's highest id per table whose moved range DST reserved when the copy began, `gained_ids(table, above)`
    the subtree's ids above that in SRC now (its other experiments' ids lie between). The gained ids are
    reserved, moved by the table's offset (reserved first, then checked with a locking read, as _claim does); a
    table without an offset (no rows when the copy began, none copied) gets one. When DST holds a row at a
    gained id moved (its application wrote it since), the copy cannot take that id: IdsTakenError, before
    anything more is copied. `gained`: the subtree has ids now that it had not when the copy began."""
    offsets, reserved, taken, gained, referrers = dict(offsets), dict(reserved), [], False, None
    for table, (low, high) in sorted(ranges.items()):
        if table not in offsets and not copied.get(table):
            referrers = referring_columns(discover_graph(db)) if referrers is None else referrers  # (once)
            offsets[table], reserved[table], gained = _claim(db, table, int(low), int(high), _larger(
                (held or {}).get(table), handed_out(db, table)), referrers.get(table, ())), int(high), True
            continue
        shift, top = offsets.get(table, 0), int(reserved.get(table, high))
        if int(high) <= top:
            reserve_ids(db, table, top + shift)  # again: a kill may have come before it held
            continue
        gained = True
        other = (held or {}).get(table)
        if other is not None and int(other) > top + shift:  # a copy that chose after this one: its ids lie above
            taken.append("%s from %d on, where another copy not finished may hold them: finish that one first (with "
                         "--resume), then this one" % (table, top + 1 + shift))
            continue
        reserve_ids(db, table, int(high) + shift)
        count, first = _held_among(db, table, (int(i) + shift for i in gained_ids(table, top)),
                                   top + 1 + shift, int(high) + shift)
        if count:
            taken.append("%s %s%s" % (table, ", ".join(str(i) for i in first),
                                      " and %d more" % (count - len(first)) if count > len(first) else ""))
        else:
            reserved[table] = int(high)
    if taken:
        raise IdsTakenError(
            "SRC gained rows since this copy began, and ids this copy would move them to are taken in DST (by its "
            "application, or by another copy): %s; nothing more was copied" % "; ".join(taken), kind="ids_taken")
    return offsets, reserved, gained


def _held_among(db, table, moved_ids, low, high, shown=3):
    """(how many, the first `shown`) of `moved_ids` (ascending, within low..high) that DST holds: one ordered read
    of DST's ids in low..high, merged with them as they stream (no id list in memory, no query per id). On MySQL
    a locking read, in its own short transaction, as _taken's."""
    q = db.quote
    sql = "SELECT %s FROM %s WHERE %s BETWEEN ? AND ? ORDER BY %s" % (q("id"), q(table), q("id"), q("id"))
    mysql = db.dialect == "mysql"
    count, first = 0, []
    with db.transaction() if mysql else nullcontext():
        held = (int(r[0]) for r in db.iter_rows(sql + (" LOCK IN SHARE MODE" if mysql else ""), (low, high)))
        current = next(held, None)
        for wanted in moved_ids:
            while current is not None and current < wanted:
                current = next(held, None)
            if current == wanted:
                count += 1
                first.extend([wanted][:shown - len(first)])
        for _ in held:  # read to its end: the cursor streams
            pass
    return count, first


def refuse_ids_past_the_column(db, table, low, high, offset):
    """Before the ids low..high moved by `offset` are reserved: DST's id column must hold them (round 33: a DST whose
    ids already reach near an INT's 2^31 - 1 moved a copy's ids past it; the copy stopped at its first batch)."""
    most = (1 << 63) - 1
    if db.dialect == "mysql":
        column = db.declared_columns(table).get("id")
        found = whole_number_range(column.kind, column.declared) if column is not None else None
        most = found[1] if found is not None else most
    if high + offset > most:
        moved = " would be %d to %d there (its ids already reach %d)" % (low + offset, high + offset,
                                                                         low + offset - 1) if offset else ""
        raise DamagedInputError(
            "%s's ids %d to %d%s, past the largest id %s's column holds (%d); nothing was written" % (
                table, low, high, moved, db.address.display(), most),
            hint="widen the column in DST (ALTER TABLE %s MODIFY %s BIGINT ... AUTO_INCREMENT, and the columns that "
                 "refer to it), or copy into another database" % (db.quote(table), db.quote("id")))


def _claim(db, table, low, high, held=None, referrers=(), offset=None):
    """Inside a write transaction (SQLite) the application waits, and the first choice holds. MySQL's ALTER TABLE
    is no transaction: an insert meanwhile may take an id of the range. Then a ceiling with room to spare is
    reserved first, and the range put just past the largest id under it: every id the application takes from
    then on is above the ceiling, every one it took before is below the range. `held`, `referrers`: see
    id_offset (`offset`: its answer, when asked already)."""
    offset = id_offset(db, table, low, high, held, referrers) if offset is None else offset
    refuse_ids_past_the_column(db, table, low, high, offset)
    reserve_ids(db, table, high + offset)
    if not _taken(db, table, low + offset, high + offset):
        return offset
    slack, q = SLACK, db.quote
    for _ in range(6):
        largest = _top(_larger(db.scalar("SELECT max(%s) FROM %s" % (q("id"), q(table))),
                               _largest_referred(db, referrers)), held)
        ceiling = int(largest or 0) + 1 + high - low + slack
        reserve_ids(db, table, ceiling)
        below = int(_top(_larger(db.scalar("SELECT max(%s) FROM %s WHERE %s <= ?" % (q("id"), q(table), q("id")),
                                           (ceiling,)), _largest_referred(db, referrers, ceiling)), held) or 0)
        offset = below + 1 - low
        if high + offset <= ceiling:
            return offset
        slack *= 10
    return offset  # still taken: the copy stops at that id with a clear error (copybatches)


def _taken(db, table, low, high):
    """Is an id of low..high in use? On MySQL a locking read, in its own short transaction: an id the application
    took but has not committed yet is invisible to a count, so the read waits for that insert to end (found by
    an outside tester: the copy was given such an id and stopped at a duplicate key)."""
    q = db.quote
    sql = "SELECT count(*) FROM %s WHERE %s BETWEEN ? AND ?" % (q(table), q("id"))
    if db.dialect != "mysql":
        return bool(db.scalar(sql, (low, high)))
    with db.transaction():
        return bool(db.scalar(sql + " LOCK IN SHARE MODE", (low, high)))


def subtree_id_ranges(source, graph, tree, tables):
    """{table: (lowest, highest) id of the subtree} for the tables of the subtree that own an id column and
    hold one there: what the offsets move (claim_ids), and what DST reserves."""
    ranges, q = {}, source.quote
    for table in tables:
        if id_owner(graph, table, "id") != table:
            continue
        low, high = source.query("SELECT min(t.%s), max(t.%s) FROM %s" % (
            q("id"), q("id"), tree.rows(source, graph, table)))[0]
        if low is not None:
            ranges[table] = (int(low), int(high))
    return ranges


def subtree_ids_above(source, graph, tree, table, above):
    """The ids of `table` in the subtree above `above`, in order, as they stream: the rows a resumed copy's SRC
    gained."""
    q = source.quote
    return (r[0] for r in source.iter_rows("SELECT t.%s FROM %s ORDER BY t.%s" % (
        q("id"), tree.rows(source, graph, table, "t.%s > ?" % q("id")), q("id")), (above,)))
