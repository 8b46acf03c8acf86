"""What a SQLite DST's column would store other than SRC holds it, or refuse, found by migrate before its first
batch (rounds 45, 46): ids held as text in SRC ('10' in a TEXT link column, a MariaDB VARCHAR or ENUM) became
integers in DST's INT column, a REAL 3.0 (a MariaDB FLOAT) an INTEGER, an INT a REAL in DST's REAL column, a REAL
text of 15 digits in a TEXT column; the copy was written, and then the verify said DIFFERS, or said nothing; a
STRICT table of DST refused a value part way (exit 70).

SQLite converts a value on INSERT by the column's affinity (https://www.sqlite.org/datatype3.html): INTEGER and
NUMERIC make text that reads as a number, and a REAL without a fraction, a number; REAL makes integers and such text
REALs; TEXT makes numbers text (an integer's digits are kept: see CONVERTS). Which of a SQLite SRC's values a column
converts is asked of SQLite itself: they are inserted beside their original into a scratch table whose column has
DST's affinity, and compared by storage class. A STRICT table keeps only values of its column's own storage class
(ANY: every one), converting or refusing the others: every other value is refused here.
"""

import sqlite3

from .backends.mysqlcatalog import BINARY_KINDS
from .backends.mysqlvalues import TEMPORAL_TYPES
from .catalog import sqlite_affinity
from .columnfit import TEXT_KINDS, values_of
from .errors import DamagedInputError
from .schema import EM_TABLES, column_type, table_named
from .values import INTEGER_BITS

# DST's affinity: the storage classes of SRC's values it may store as another. Not an integer into TEXT: its digits
# are the same id to the database's comparisons, and the verify reads it as the column keeps it (round 40); a REAL
# it keeps to 15 digits.
CONVERTS = {"INTEGER": ("text", "real"), "NUMERIC": ("text", "real"), "REAL": ("text", "integer"), "TEXT": ("real",)}
STRICT_CLASS = {"INT": "integer", "INTEGER": "integer", "REAL": "real", "TEXT": "text", "BLOB": "blob"}  # ANY: all
PROBE = "emfix_tmp_affinity"
CHUNK = 10000  # values of a MySQL SRC tested at a time (in a private in-memory database)
# The storage class a MySQL SRC's value of each DATA_TYPE is bound to SQLite as (values.portable)
MYSQL_CLASS = dict([(k, "integer") for k in tuple(INTEGER_BITS) + ("bit", "year")] +
                   [(k, "real") for k in ("float", "double", "real")] +
                   [(k, "text") for k in TEXT_KINDS + tuple(TEMPORAL_TYPES) + ("enum", "set", "json", "decimal",
                                                                              "numeric")] +
                   [(k, "blob") for k in BINARY_KINDS])
KIND_NAMES = {"text": "text", "integer": "an integer", "real": "a REAL", "blob": "a BLOB"}
KINDS_NAMES = {"text": "text", "integer": "integers", "real": "REALs", "blob": "BLOBs"}


def dst_declared_types(target, table, existing):
    """{column (lower case): declared type} of DST's `table` (SQLite), or as --init is about to make it (an
    Experiment Manager table DST lacks); {} for another table DST lacks (made from SRC's own DDL, or refused)."""
    here = table_named(table, existing)
    if here is not None:
        return {d.name.lower(): d.type for d in target.column_details(here)}
    made = next((t for t in EM_TABLES if t.name == table), None)
    return {c.name.lower(): "INTEGER" if c.auto else column_type("sqlite", c) for c in (made.columns if made else ())}


def _strict(target, table, existing):
    """DST's `table` is STRICT, as SQLite itself says it (PRAGMA table_list, SQLite 3.37: older ones have no STRICT
    tables, and no such pragma); its SQL read by a pattern took a comment holding ')' for the end (round 47)."""
    here = table_named(table, existing)
    if here is None:
        return False
    rows = target.query("PRAGMA main.table_list(%s)" % target.quote(here))
    return any(len(row) > 5 and row[5] for row in rows)


def refuse_values_dst_affinity_changes(source, target, graph, tree, tables, existing):
    """SQLite DST: refuse the subtree's values a column of DST would store as another storage class, or (a STRICT
    table) refuse (see above)."""
    if target.dialect != "sqlite":
        return
    for table in tables:
        declared = dst_declared_types(target, table, existing)
        strict = _strict(target, table, existing)
        if source.dialect == "sqlite":
            had = {d.name.lower(): sqlite_affinity(d.type) for d in source.column_details(table)}
        else:
            kinds = source.column_types(table)
        for column in graph.columns[table]:
            if column.lower() not in declared:
                continue
            wanted = sqlite_affinity(declared[column.lower()])
            keeps = STRICT_CLASS.get(declared[column.lower()].strip().upper(), "any") if strict else None
            if source.dialect == "sqlite":
                found = _in_sqlite(source, graph, tree, table, column, wanted, keeps, had.get(column.lower()))
            else:
                found = _from_mysql(source, graph, tree, table, column, wanted, keeps, kinds.get(column.lower()))
            if found and found[0]:
                _refuse(target, table, column, declared[column.lower()], wanted, keeps, *found)


def _refuse(target, table, column, declared, wanted, keeps, count, example):
    # (one example names the kind of one value only: round 48 was told "3 values are REALs" of 1.0, '1' and ' 1')
    named = KIND_NAMES.get(_class_of(example), "a value")
    kind, example = (named, _shown(example)) if count == 1 else ("of another storage class", "%s, %s" % (
        _shown(example), named))
    if keeps is not None:
        raise DamagedInputError(
            "%s %s (e.g. %s), which %s's STRICT table refuses or changes in that column (%s: %s only); nothing was "
            "copied" % (values_of(count, table, column), kind, example, target.address.display(), declared,
                        KINDS_NAMES[keeps]),
            hint="make them %s in SRC, or give DST's column the type ANY, then run again" % KINDS_NAMES[keeps])
    raise DamagedInputError(
        "%s %s (e.g. %s), which %s's column (%s: SQLite's %s affinity) stores as another kind, never the same value "
        "to the verify; nothing was copied" % (
            values_of(count, table, column), kind, example, target.address.display(),
            declared or "without a type", wanted),
        hint="give that column of DST the type SRC's has (or none: SQLite then keeps every value as it is), or change "
             "those values in SRC, then run again")


def _class_of(value):
    return {str: "text", int: "integer", float: "real", bytes: "blob"}.get(type(value))


def _in_sqlite(source, graph, tree, table, column, wanted, keeps, had):
    """(how many, one of them) of the subtree's values of a SQLite SRC's `column` that `wanted` affinity converts,
    or (`keeps`: a STRICT column's storage class) that are not of that class; None: none can be."""
    q = source.quote
    if keeps == "any" or (keeps is None and (wanted not in CONVERTS or had == wanted)):
        return None  # (stored under the same affinity: nothing left to convert)
    if keeps is not None:
        return tuple(source.query("SELECT count(*), min(t.%s) FROM %s" % (q(column), tree.rows(
            source, graph, table, "typeof(t.%s) NOT IN ('null', '%s')" % (q(column), keeps))))[0])
    source.execute("DROP TABLE IF EXISTS temp.%s" % q(PROBE))
    source.execute("CREATE TEMP TABLE %s (o, v %s)" % (q(PROBE), wanted))
    try:
        source.execute("INSERT INTO temp.%s SELECT t.%s, t.%s FROM %s" % (q(PROBE), q(column), q(column), tree.rows(
            source, graph, table, "typeof(t.%s) IN (%s)" % (q(column), ", ".join(
                "'%s'" % kind for kind in CONVERTS[wanted])))))
        return tuple(source.query("SELECT count(*), min(o) FROM temp.%s WHERE typeof(o) <> typeof(v)" % q(PROBE))[0])
    finally:
        source.execute("DROP TABLE IF EXISTS temp.%s" % q(PROBE))


def _from_mysql(source, graph, tree, table, column, wanted, keeps, kind):
    """The same for a MySQL SRC, by the storage class its column's values are bound as (MYSQL_CLASS): to a STRICT
    column of another class, every value; text to an INTEGER, NUMERIC or REAL affinity, those that read as a number
    (each tried in a private in-memory SQLite table); an integer to REAL, every value; a FLOAT or DOUBLE to INTEGER or
    NUMERIC, those without a fraction that fit 64 bits. (Numbers to TEXT, DECIMALs: copyrefusals' refusals.)"""
    q, bound = source.quote, MYSQL_CLASS.get(kind)
    if bound is None or keeps in ("any", bound):
        return None
    rows = tree.rows(source, graph, table)
    if keeps is not None:
        test = "t.%s IS NOT NULL" % q(column)
    elif bound == "text" and kind not in ("decimal", "numeric") and wanted in ("INTEGER", "NUMERIC", "REAL"):
        return _text_read_as_numbers(source, column, tree.rows(source, graph, table, "t.%s REGEXP '[0-9]'" % q(
            column)), wanted)
    elif bound == "integer" and wanted == "REAL":
        test = "t.%s IS NOT NULL" % q(column)
    elif bound == "real" and wanted in ("INTEGER", "NUMERIC"):
        test = "t.%s = TRUNCATE(t.%s, 0) AND t.%s >= -9223372036854775808e0 AND t.%s < 9223372036854775808e0" % (
            q(column), q(column), q(column), q(column))  # (SQLite makes an INTEGER of any whole REAL in 64 bits)
    else:
        return None
    count, example = source.query("SELECT SUM(%s), MIN(CASE WHEN %s THEN t.%s END) FROM %s" % (
        test, test, q(column), rows))[0]
    return int(count or 0), example


def _text_read_as_numbers(source, column, rows, wanted):
    q = source.quote
    probe = sqlite3.connect(":memory:")
    try:
        probe.execute("CREATE TABLE p (o, v %s)" % wanted)
        changed, example, chunk = 0, None, []
        for (value,) in source.iter_rows("SELECT t.%s FROM %s" % (q(column), rows)):
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
