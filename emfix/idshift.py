"""Ids that move only where they would collide: the offsets import and migrate give auto-increment ids.

An experiment copied into a database keeps its ids when none of them is taken there (a whole database
moved to MySQL keeps the ids notebooks refer to); otherwise every id of that table moves past the
largest one already there, and every column that refers to it (through the relation graph,
composite keys included) moves with it.
"""

from .schema import EM_TABLES

AUTO_ID_TABLES = tuple(t.name for t in EM_TABLES if t.auto_id)


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


def id_offset(db, table, low, high=None):
    """0 when no id in low..high is taken in `db` (high unknown: when every id there is below low);
    else the shift that puts low just past the largest id there."""
    q = db.quote
    if high is not None:
        taken = db.scalar("SELECT count(*) FROM %s WHERE %s BETWEEN ? AND ?" % (q(table), q("id")), (low, high))
        if not taken:
            return 0
    top = db.scalar("SELECT max(%s) FROM %s" % (q("id"), q(table)))
    if top is None or (high is None and int(top) < int(low)):
        return 0
    return int(top) + 1 - int(low)


def column_shifts(graph, table, columns, offsets):
    """[(column index, shift)] for the columns of `table` that hold a moved id."""
    shifts = [(i, offsets.get(id_owner(graph, table, c), 0)) for i, c in enumerate(columns)]
    return [(i, shift) for i, shift in shifts if shift]


def reserve_ids(db, table, top):
    """Make `db` hand out ids above `top` from now on, so an application inserting while an import or copy
    writes its rows cannot take one of theirs: SQLite's AUTOINCREMENT sequence, MySQL's AUTO_INCREMENT.
    (A SQLite table without AUTOINCREMENT takes max(rowid) + 1, which the copy's own rows move past.)"""
    if top is None:
        return
    if db.dialect == "sqlite":
        sql = db.scalar("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)) or ""
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
