"""Two schemas compared: the list of changes that makes B like A, as data.

A and B are `catalog.Catalog`s (live databases or `schema show --json` files, either engine). Types
are compared through the Experiment Manager's SQLite <-> MySQL mapping when the engines differ, so
the same schema on both shows no difference. InnoDB keeps an index on every foreign key by itself,
so those indexes follow from the foreign keys (which are compared) and are not listed.

`compare_catalogs` writes neither words nor SQL: each `Difference` says what kind of change, where,
what A and B hold there and how it rates. The renderers read that list: `describe` (one line of
text), `schemaddl` (the DDL for B's engine), `SchemaDiff.to_dict` (JSON), report_html (HTML),
migrationplan (a script) and oldformat (the old tool's diff file).
"""

import dataclasses
from typing import List

from . import schemaddl
from .catalog import comparable_type
from .schema import EM_TABLE_BY_NAME
from .schemaddl import key
from .sqldefault import default_sql, normal_default, same_default

# The application's JSON column as legacy installs made it on MySQL (experiment-manager-schema.md, "Columns")
LEGACY_TYPES = {"JSON": ("JSON", "LONGTEXT", "TEXT")}


@dataclasses.dataclass(frozen=True)
class Difference:
    """One change that makes B like A."""
    kind: str  # missing_table, extra_table, missing_column, extra_column, column_type, column_null, column_auto,
    #            column_default, primary_key, table_rowid, missing_unique, extra_unique, missing_index, extra_index,
    #            missing_foreign_key, extra_foreign_key
    table: str
    column: str = ""  # for the column kinds
    a: object = None  # what A holds there (a ColumnInfo, IndexInfo, ForeignKeyInfo, column tuple), None: nothing
    b: object = None  # what B holds there
    rating: str = ""  # COSMETIC, MINOR, MAJOR or BREAKING (the old tool's scale)
    reason: str = ""  # why it rates so, in a few words


@dataclasses.dataclass(frozen=True)
class Change:
    """A difference as the reports show it: its words, its statements, and whether a rebuild makes it."""
    difference: Difference
    what: str
    fix: List[str]
    rebuild: bool

    kind = property(lambda self: self.difference.kind)
    table = property(lambda self: self.difference.table)
    column = property(lambda self: self.difference.column)
    rating = property(lambda self: self.difference.rating)
    reason = property(lambda self: self.difference.reason)


@dataclasses.dataclass
class SchemaDiff:
    """Two schemas' differences rendered for a report: the changes with their words and DDL, and every
    statement in the order it runs."""
    a: str
    b: str
    dialect: str  # B's: the DDL is written for it
    differences: List[Change]
    statements: List[str]

    @property
    def script(self):
        """The statements as a script to run by hand (schemaddl.as_script): what the DDL outputs print."""
        return schemaddl.as_script(self.statements, self.dialect, any(c.rebuild for c in self.differences))

    @property
    def same(self):
        return not self.differences

    @property
    def overall_rating(self):
        """The worst rating of any change (COSMETIC when there is none: the old tool's answer)."""
        return max((d.rating for d in self.differences), key=RATINGS.index, default=RATINGS[0])

    def rating_counts(self):
        return {r: sum(1 for d in self.differences if d.rating == r) for r in RATINGS}

    def to_dict(self):
        return {"a": self.a, "b": self.b, "same": self.same, "dialect": self.dialect,
                "overall_rating": self.overall_rating, "ratings": self.rating_counts(),
                "differences": [_change_dict(c) for c in self.differences], "ddl": self.statements}


RATINGS = ("COSMETIC", "MINOR", "MAJOR", "BREAKING")  # the old tool's scale, mildest first
ROW_DEPENDENT = ("extra_table", "extra_column", "missing_column", "column_type", "column_null")


def tables_to_count(differences, b):
    """B's tables whose rating waits on a row count (an empty table loses nothing): count only these."""
    return sorted({d.table for d in differences if d.kind in ROW_DEPENDENT and b.table(d.table) is not None
                   and b.table(d.table).rows is None})


def rated(differences, b):
    """The differences rated again with B's row counts (a catalog read again with `counts=`)."""
    return [_rated(d, None if d.kind == "missing_table" else b.table(d.table)) for d in differences]


def _rated(d, tb):
    """`d` with its rating, for table `tb` of B (None: B lacks it)."""
    column = d.a if d.column and d.kind != "extra_column" else None
    rating, reason = rate(d.kind, tb.rows if tb is not None else None, not_null=bool(column and column.not_null),
                          has_default=bool(column and normal_default(column.default, None) is not None),
                          losing_not_null=bool(column and not column.not_null))
    return dataclasses.replace(d, rating=rating, reason=reason)


def _holds(rows):
    return "rows unknown: it may hold data" if rows is None else "%d row%s" % (rows, "" if rows == 1 else "s")


def rate(kind, rows=None, not_null=False, has_default=False, losing_not_null=False):
    """(rating, reason) of one change made to B, whose table holds `rows` (None: not counted).

    What loses data or makes writes that work today fail is BREAKING; what rewrites a table or can
    fail on the data already there is MAJOR; what adds without touching existing rows is MINOR; what
    changes only how fast queries run is COSMETIC."""
    empty = rows == 0
    if kind in ("missing_index", "extra_index"):
        return "COSMETIC", "an index changes only how fast lookups run"
    if kind == "missing_table":
        return "MINOR", "a new table; no existing row changes"
    if kind in ("extra_table", "extra_column"):
        what = "table" if kind == "extra_table" else "column"
        if empty:
            return "MINOR", "dropping the %s loses nothing: the table is empty" % what
        return "BREAKING", "dropping the %s loses its data (%s)" % (what, _holds(rows))
    if kind == "missing_column":
        if not_null and not has_default and not empty:
            return "BREAKING", "NOT NULL without a default: existing rows have no value for it"
        return "MINOR", "a new column; existing rows keep theirs"
    if kind == "column_type":
        return ("MINOR", "the table is empty") if empty else ("MAJOR", "values are converted (%s)" % _holds(rows))
    if kind == "column_null":
        if losing_not_null:
            return "MINOR", "NULL becomes allowed; no value changes"
        return ("MINOR", "the table is empty") if empty else (
            "BREAKING", "NOT NULL: writes without it fail, and NULLs already there block the change")
    if kind == "column_default":
        return "MINOR", "only rows written later get the new default"
    if kind == "column_auto":
        return "MINOR", "only how rows written without an id get one"
    if kind == "primary_key":
        return "BREAKING", "rows are identified differently; duplicates block the change"
    if kind == "table_rowid":
        return "MAJOR", "the table is rebuilt: rowids are not kept, and a NULL in the key blocks WITHOUT ROWID"
    if kind == "missing_unique":
        return "MAJOR", "duplicates already there block it; duplicate writes then fail"
    if kind == "missing_foreign_key":
        return "MAJOR", "rows without a parent block it; writes without one then fail"
    if kind in ("extra_unique", "extra_foreign_key"):
        return "MINOR", "a constraint dropped: writes it refused are allowed"
    return "MINOR", ""


def _change_dict(change):
    """A change in the JSON report (the layout `schema diff --json` has always written)."""
    d = change.difference
    return {"kind": d.kind, "table": d.table, "what": change.what, "fix": list(change.fix),
            "rebuild": change.rebuild, "column": d.column, "rating": d.rating, "reason": d.reason}


def _fk_indexed(table, index_columns):
    return any(key(f.child_columns) == key(index_columns) for f in table.foreign_keys)


def _compare_table(ta, tb, a_dialect, b_dialect):
    same_engine = a_dialect == b_dialect
    found = []

    def add(kind, column="", a=None, b=None):
        difference = Difference(kind, tb.name, column, a, b)
        found.append(_rated(difference, tb))

    for column in ta.columns:
        other = tb.column(column.name)
        if other is None:
            add("missing_column", column.name, column)
            continue
        application = schemaddl.application_type(tb.name, column, a_dialect, b_dialect) if (
            not same_engine and b_dialect == "mysql") else None  # (SQLite's types are affinities: compared as such)
        if application:  # (round 42: B's TINYTEXT for the application's TEXT was "same" across engines)
            if comparable_type(other.type, True) not in LEGACY_TYPES.get(comparable_type(application, True), (
                    comparable_type(application, True),)):
                add("column_type", column.name, column, other)
        elif comparable_type(column.type, same_engine) != comparable_type(other.type, same_engine):
            add("column_type", column.name, column, other)
        keyed = column.name.lower() in key(ta.primary_key) and (not same_engine or column.auto)
        if column.not_null != other.not_null and not keyed:
            add("column_null", column.name, column, other)
        if not same_default(column.default, a_dialect, other.default, b_dialect):
            add("column_default", column.name, column, other)
        if bool(column.auto) != bool(other.auto):  # (round 40: INT PRIMARY KEY against AUTOINCREMENT was "same")
            add("column_auto", column.name, column, other)
    for column in tb.columns:
        if not ta.column(column.name):
            add("extra_column", column.name, None, column)
    if key(ta.primary_key) != key(tb.primary_key):
        add("primary_key", a=tuple(ta.primary_key), b=tuple(tb.primary_key))
    if same_engine and ta.without_rowid != tb.without_rowid:  # (round 41: "same schema")
        add("table_rowid", a=ta.without_rowid, b=tb.without_rowid)
    b_unique, a_unique = {key(u) for u in tb.unique}, {key(u) for u in ta.unique}
    for unique in ta.unique:
        if key(unique) not in b_unique:
            add("missing_unique", a=tuple(unique))
    for unique in tb.unique:
        if key(unique) not in a_unique:
            add("extra_unique", b=tuple(unique))

    def listed(table, dialect):
        return {key(i.columns): i for i in table.indexes
                if not (_fk_indexed(table, i.columns) and (dialect == "mysql" or not same_engine))}

    a_indexes, b_indexes = listed(ta, a_dialect), listed(tb, b_dialect)
    for index_key, index in a_indexes.items():
        if index_key not in b_indexes:
            add("missing_index", a=index)
    for index_key, index in b_indexes.items():
        if index_key not in a_indexes:
            add("extra_index", b=index)

    def fk_key(f):
        return key(f.child_columns), f.parent.lower(), key(f.parent_columns)

    b_keys, a_keys = {fk_key(f) for f in tb.foreign_keys}, {fk_key(f) for f in ta.foreign_keys}
    for fk in ta.foreign_keys:
        if fk_key(fk) not in b_keys:
            add("missing_foreign_key", a=fk)
    for fk in tb.foreign_keys:
        if fk_key(fk) not in a_keys:
            add("extra_foreign_key", b=fk)
    return found


def compare_catalogs(a, b):
    """The differences that make B like A, in A's table order (the Experiment Manager's first), B's extra
    tables last."""
    differences = []
    order = {name.upper(): i for i, name in enumerate(EM_TABLE_BY_NAME)}
    for name in sorted(a.tables, key=lambda n: (order.get(n.upper(), len(order)), n)):
        ta, tb = a.tables[name], _partner(name, a, b)
        if tb is None:
            differences.append(_rated(Difference("missing_table", name, a=ta), None))
        else:
            differences += _compare_table(ta, tb, a.dialect, b.dialect)
    for name in sorted(b.tables):
        if not _partner(name, b, a) and not name.lower().startswith("_emfix"):
            differences.append(_rated(Difference("extra_table", name, b=b.tables[name]), b.tables[name]))
    return differences


def _partner(name, here, there):
    """The table of catalog `there` that table `name` of catalog `here` is: the one spelled so, else one spelled in
    other letters that `here` does not hold itself. On a case-sensitive MySQL a user's `trial` beside TRIAL is
    another table (an outside tester: it was compared with the other side's TRIAL, and a diff crashed)."""
    if name in there.tables:
        return there.tables[name]
    return next((table for other, table in sorted(there.tables.items())
                 if other.lower() == name.lower() and other not in here.tables), None)


def _fk_text(fk):
    return "FOREIGN KEY (%s) REFERENCES %s (%s)" % (", ".join(fk.child_columns), fk.parent,
                                                    ", ".join(fk.parent_columns))


def describe(d, a_dialect, b_dialect):
    """One line of text for a difference (A's and B's engines: a type is named as B's engine spells it)."""
    t, kind = d.table, d.kind
    if kind == "missing_table":
        return "table %s is missing" % t
    if kind == "extra_table":
        return "table %s is not in A" % t
    if kind == "missing_column":
        return "column %s.%s (%s) is missing" % (t, d.column, d.a.type)
    if kind == "extra_column":
        return "column %s.%s is not in A" % (t, d.column)
    if kind == "column_type":
        return "%s.%s is %s, not %s" % (t, d.column, d.b.type, schemaddl.translate_type(t, d.a, a_dialect, b_dialect))
    if kind == "column_null":
        return "%s.%s is %s" % (t, d.column, "NULL-able (it lost NOT NULL)" if d.a.not_null else "NOT NULL")
    if kind == "column_default":
        return "%s.%s defaults to %s, not %s" % (t, d.column, default_sql(normal_default(d.b.default, b_dialect),
                                                                         b_dialect),
                                                 default_sql(normal_default(d.a.default, a_dialect), b_dialect))
    if kind == "column_auto":
        return "%s.%s %s" % (t, d.column, "hands out no ids of its own (A's does: AUTO_INCREMENT, AUTOINCREMENT)"
                             if d.a.auto else "hands out ids of its own (AUTO_INCREMENT, AUTOINCREMENT), A's does not")
    if kind == "primary_key":
        return "%s's primary key is (%s), not (%s)" % (t, ", ".join(d.b), ", ".join(d.a))
    if kind == "table_rowid":
        return "%s is %s, A's is %s" % (t, *(("a WITHOUT ROWID table" if w else "a rowid table") for w in (d.b, d.a)))
    if kind == "missing_unique":
        return "%s lacks UNIQUE (%s)" % (t, ", ".join(d.a))
    if kind == "extra_unique":
        return "%s has UNIQUE (%s), which A lacks" % (t, ", ".join(d.b))
    if kind == "missing_index":
        return "%s lacks the index %s (%s)" % (t, d.a.name, ", ".join(d.a.columns))
    if kind == "extra_index":
        return "%s has the index %s (%s), which A lacks" % (t, d.b.name, ", ".join(d.b.columns))
    if kind == "missing_foreign_key":
        return "%s lacks %s" % (t, _fk_text(d.a))
    if kind == "extra_foreign_key":
        return "%s has %s, which A lacks" % (t, _fk_text(d.b))
    raise ValueError("no words for a change of kind %r" % kind)


def render(differences, a, b, rebuild=schemaddl.rebuild_sql):
    """The differences with their words and DDL (for B's engine, from A's and B's definitions)."""
    changes = [Change(d, describe(d, a.dialect, b.dialect), schemaddl.fix_of(d, a, b),
                      schemaddl.needs_rebuild(d, a, b.dialect)) for d in differences]
    return SchemaDiff(a.database, b.database, b.dialect, changes,
                      schemaddl.statements_of(differences, a, b, rebuild))


def diff_catalogs(a, b, rebuild=schemaddl.rebuild_sql):
    """A compared with B, rendered: `compare_catalogs` then `render`."""
    return render(compare_catalogs(a, b), a, b, rebuild)
