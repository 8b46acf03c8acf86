"""What a SQLite DST's column affinity would store other than SRC holds it, refused by migrate before its first
batch (round 45): ids held as text in SRC ('10', ' 11', '1e1' in a TEXT link column, or a MariaDB VARCHAR) became
integers in DST's INT column, a REAL 3.0 an INTEGER, a number in DST's TEXT column text; the copy was written, and
only its verify said DIFFERS (exit 4, the rows kept).

SQLite converts a value on INSERT by the column's affinity (https://www.sqlite.org/datatype3.html): INTEGER and
NUMERIC make text that reads as a number, and a REAL without a fraction, a number; REAL makes integers and such text
REALs; TEXT makes numbers text. Which values a column converts is asked of SQLite itself: they are inserted beside
their original into a scratch table whose column has DST's affinity, and compared by storage class.
"""

import sqlite3

from .catalog import sqlite_affinity
from .columnfit import TEXT_KINDS, values_of
from .errors import DamagedInputError
from .schema import EM_TABLES, column_type, table_named

# DST's affinity: the storage classes of SRC's values it may store as another
CONVERTS = {"INTEGER": ("text", "real"), "NUMERIC": ("text", "real"), "REAL": ("text", "integer"),
            "TEXT": ("integer", "real")}
PROBE = "emfix_tmp_affinity"
CHUNK = 10000  # values of a MySQL SRC tested at a time (in a private in-memory database)


def dst_declared_types(target, table, existing):
    """{column (lower case): declared type} of DST's `table` (SQLite), or as --init is about to make it (an
    Experiment Manager table DST lacks); {} for another table DST lacks (made from SRC's own DDL, or refused)."""
    here = table_named(table, existing)
    if here is not None:
        return {d.name.lower(): d.type for d in target.column_details(here)}
    made = next((t for t in EM_TABLES if t.name == table), None)
    return {c.name.lower(): "INTEGER" if c.auto else column_type("sqlite", c) for c in (made.columns if made else ())}


def refuse_values_dst_affinity_changes(source, target, graph, tree, tables, existing):
    """SQLite DST: refuse the subtree's values a column of DST would store as another storage class (see above)."""
    if target.dialect != "sqlite":
        return
    for table in tables:
        declared = dst_declared_types(target, table, existing)
        if source.dialect == "sqlite":
            had = {d.name.lower(): sqlite_affinity(d.type) for d in source.column_details(table)}
        else:
            kinds = source.column_types(table)
        for column in graph.columns[table]:
            if column.lower() not in declared:
                continue
            wanted = sqlite_affinity(declared[column.lower()])
            if wanted not in CONVERTS:
                continue
            if source.dialect == "sqlite":
                if had.get(column.lower()) == wanted:  # stored under the same affinity: nothing left to convert
                    continue
                changed, example = _converted_in_sqlite(source, graph, tree, table, column, wanted)
            elif wanted != "TEXT" and kinds.get(column.lower()) in TEXT_KINDS:  # (numbers into TEXT, DECIMALs:
                changed, example = _converted_from_mysql(source, graph, tree, table, column, wanted)  # copyrefusals)
            else:
                continue
            if changed:
                raise DamagedInputError(
                    "%s %s (e.g. %s), which %s's column (%s: SQLite's %s affinity) stores as %s, never the same value "
                    "to the verify; nothing was copied" % (
                        values_of(changed, table, column), "text" if wanted != "TEXT" else "a number",
                        _shown(example), target.address.display(), declared[column.lower()] or "without a type", wanted,
                        "a number" if wanted != "TEXT" else "text"),
                    hint="give that column of DST the type SRC's has (or none: SQLite then keeps every value as it "
                         "is), or make the values %s in SRC, then run again" % (
                             "numbers" if wanted != "TEXT" else "text"))


def _converted_in_sqlite(source, graph, tree, table, column, wanted):
    """(how many, one of them) of the subtree's values of a SQLite SRC's `column` that `wanted` affinity converts."""
    q = source.quote
    source.execute("DROP TABLE IF EXISTS temp.%s" % q(PROBE))
    source.execute("CREATE TEMP TABLE %s (o, v %s)" % (q(PROBE), wanted))
    try:
        source.execute("INSERT INTO temp.%s SELECT t.%s, t.%s FROM %s t WHERE %s AND typeof(t.%s) IN (%s)" % (
            q(PROBE), q(column), q(column), q(table), tree.where(source, graph, table), q(column),
            ", ".join("'%s'" % kind for kind in CONVERTS[wanted])))
        changed, example = source.query("SELECT count(*), min(o) FROM temp.%s WHERE typeof(o) <> typeof(v)" % q(
            PROBE))[0]
    finally:
        source.execute("DROP TABLE IF EXISTS temp.%s" % q(PROBE))
    return int(changed or 0), example


def _converted_from_mysql(source, graph, tree, table, column, wanted):
    """The same for a MySQL SRC's text column: its values that hold a digit (the others read as no number), each
    inserted beside itself into a private in-memory SQLite table whose column has `wanted` affinity."""
    q = source.quote
    probe = sqlite3.connect(":memory:")
    try:
        probe.execute("CREATE TABLE p (o, v %s)" % wanted)
        changed, example, chunk = 0, None, []
        rows = source.iter_rows("SELECT t.%s FROM %s t WHERE %s AND t.%s REGEXP '[0-9]'" % (
            q(column), q(table), tree.where(source, graph, table), q(column)))
        for (value,) in rows:
            chunk.append((value, value))
            if len(chunk) >= CHUNK:
                changed, example = _count_converted(probe, chunk, changed, example)
                chunk = []
        changed, example = _count_converted(probe, chunk, changed, example)
    finally:
        probe.close()
    return changed, example


def _count_converted(probe, chunk, changed, example):
    probe.executemany("INSERT INTO p VALUES (?, ?)", chunk)
    count, first = probe.execute("SELECT count(*), min(o) FROM p WHERE typeof(o) <> typeof(v)").fetchone()
    probe.execute("DELETE FROM p")
    return changed + int(count or 0), example if example is not None else first


def _shown(value):
    """A value for the message: its repr, cut to 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
