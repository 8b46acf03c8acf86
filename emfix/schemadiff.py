"""Two schemas compared, and the DDL that makes the second one like the first.

A and B are `catalog.Catalog`s (live databases or `schema show --json` files, either engine). Types
are compared through the Experiment Manager's SQLite <-> MySQL mapping when the engines differ, so
the same schema on both shows no difference. InnoDB keeps an index on every foreign key by itself,
so those indexes follow from the foreign keys (which are compared) and are not listed. On SQLite a
change ALTER TABLE cannot make is written as SQLite's own rebuild procedure (create the new table,
copy, drop, rename), which `schema upgrade` runs inside one transaction.
"""

import dataclasses
import re
from typing import List

from .catalog import comparable_type, normal_default
from .schema import EM_TABLE_BY_NAME, Dialect, column_type

REBUILD_PREFIX = "emfix_rebuild_"


@dataclasses.dataclass
class Difference:
    kind: str  # missing_table, extra_table, missing_column, extra_column, column_type, column_null,
    #            column_default, primary_key, missing_unique, extra_unique, missing_index, extra_index,
    #            missing_foreign_key, extra_foreign_key
    table: str
    what: str
    fix: List[str] = dataclasses.field(default_factory=list)  # statements for B; "-- " lines are advice
    rebuild: bool = False  # on SQLite: made by rebuilding the table
    column: str = ""  # for the column kinds
    rating: str = ""  # COSMETIC, MINOR, MAJOR or BREAKING (the old tool's scale), set by `rate`
    reason: str = ""  # why it rates so, in a few words


@dataclasses.dataclass
class SchemaDiff:
    a: str
    b: str
    dialect: str  # B's: the DDL is written for it
    differences: List[Difference]
    statements: List[str]

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
                "differences": [dataclasses.asdict(d) for d in self.differences], "ddl": self.statements}


RATINGS = ("COSMETIC", "MINOR", "MAJOR", "BREAKING")  # the old tool's scale, mildest first
ROW_DEPENDENT = ("extra_table", "extra_column", "missing_column", "column_type", "column_null")


def tables_to_count(diff, b):
    """B's tables whose rating waits on a row count (an empty table loses nothing): count only these."""
    return sorted({d.table for d in diff.differences if d.kind in ROW_DEPENDENT and b.table(d.table) is not None
                   and b.table(d.table).rows is None})


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
    if kind == "primary_key":
        return "BREAKING", "rows are identified differently; duplicates block the change"
    if kind == "missing_unique":
        return "MAJOR", "duplicates already there block it; duplicate writes then fail"
    if kind == "missing_foreign_key":
        return "MAJOR", "rows without a parent block it; writes without one then fail"
    if kind in ("extra_unique", "extra_foreign_key"):
        return "MINOR", "a constraint dropped: writes it refused are allowed"
    return "MINOR", ""


def _key(columns):
    return tuple(c.lower() for c in columns)


def _literal(value):
    if value is None:
        return "NULL"
    if value == "CURRENT_TIMESTAMP" or re.fullmatch(r"-?\d+(\.\d+)?", value):
        return value
    return "'%s'" % value.replace("'", "''")


def translate_type(table, column, a_dialect, b_dialect):
    """A's column type as B's engine spells it: the application's own mapping for its columns."""
    if a_dialect == b_dialect:
        return column.type
    em_table = EM_TABLE_BY_NAME.get(table.upper())
    em_column = next((c for c in em_table.columns if c.name == column.name), None) if em_table else None
    if em_column and comparable_type(column_type(a_dialect, em_column), False) == comparable_type(column.type, False):
        return column_type(b_dialect, em_column, "text" if column.type == "LONGTEXT" else "json")
    if b_dialect == "mysql":
        return {"REAL": "DOUBLE", "TEXT": "TEXT"}.get(column.type, column.type or "TEXT")
    return comparable_type(column.type, False)


def column_sql(d, table, column, a_dialect, primary_key):
    if column.auto and tuple(primary_key) == (column.name,):
        return "%s %s" % (d.quote(column.name), "INT PRIMARY KEY AUTO_INCREMENT" if d.dialect == "mysql"
                          else "INTEGER PRIMARY KEY AUTOINCREMENT")
    text = "%s %s" % (d.quote(column.name), translate_type(table, column, a_dialect, d.dialect))
    if column.not_null:
        text += " NOT NULL"
    if normal_default(column.default) is not None:
        text += " DEFAULT %s" % _literal(normal_default(column.default))
    return text


def create_table_sql(d, table, a_dialect, name=None):
    parts = [column_sql(d, table.name, c, a_dialect, table.primary_key) for c in table.columns]
    if table.primary_key and not any(c.auto and tuple(table.primary_key) == (c.name,) for c in table.columns):
        parts.append("PRIMARY KEY (%s)" % d.quote_columns(table.primary_key))
    parts += ["UNIQUE (%s)" % d.quote_columns(u) for u in table.unique]
    parts += ["FOREIGN KEY (%s) REFERENCES %s (%s)" % (d.quote_columns(f.child_columns), d.quote(f.parent),
                                                      d.quote_columns(f.parent_columns)) for f in table.foreign_keys]
    suffix = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4" if d.dialect == "mysql" else ""
    return "CREATE TABLE %s (\n  %s\n)%s" % (d.quote(name or table.name), ",\n  ".join(parts), suffix)


def index_sql(d, table, index, unique=False):
    name = index.name if not unique else ("emfix_uq_%s_%s" % (table, "_".join(index))).lower()
    columns = index.columns if not unique else index
    return "CREATE %sINDEX %s ON %s (%s)" % ("UNIQUE " if unique else "", d.quote(name), d.quote(table),
                                            d.quote_columns(columns))


def rebuild_sql(d, ta, tb, a_dialect, _found=()):
    """SQLite's procedure for a change ALTER TABLE cannot make (https://www.sqlite.org/lang_altertable.html),
    as far as two catalogs tell it: B's extra columns, UNIQUE and FOREIGN KEY constraints and indexes go with
    the table. On a live database `schema upgrade` writes it from the table's own SQL (emfix.rebuild)."""
    temp = REBUILD_PREFIX + tb.name
    keys = {_key(f.child_columns + (f.parent,) + f.parent_columns) for f in ta.foreign_keys}
    merged = dataclasses.replace(
        ta, columns=list(ta.columns) + [c for c in tb.columns if not ta.column(c.name)],
        unique=list(ta.unique) + [u for u in tb.unique if _key(u) not in {_key(x) for x in ta.unique}],
        foreign_keys=list(ta.foreign_keys) + [f for f in tb.foreign_keys
                                              if _key(f.child_columns + (f.parent,) + f.parent_columns) not in keys])
    common = [c.name for c in merged.columns if tb.column(c.name)]
    statements = [create_table_sql(d, merged, a_dialect, temp),
                  "INSERT INTO %s (%s) SELECT %s FROM %s" % (d.quote(temp), d.quote_columns(common),
                                                              d.quote_columns([tb.column(c).name for c in common]),
                                                              d.quote(tb.name)),
                  "DROP TABLE %s" % d.quote(tb.name),
                  "ALTER TABLE %s RENAME TO %s" % (d.quote(temp), d.quote(tb.name))]
    indexes = list(tb.indexes) + [i for i in ta.indexes if _key(i.columns) not in {_key(x.columns) for x in tb.indexes}]
    statements += [index_sql(d, tb.name, i) for i in indexes]
    return statements


def _fk_indexed(table, index_columns):
    return any(_key(f.child_columns) == _key(index_columns) for f in table.foreign_keys)


def _compare_table(d, ta, tb, a_dialect, b_dialect):
    same_engine = a_dialect == b_dialect
    mysql = d.dialect == "mysql"
    q = d.quote
    found = []

    def add(kind, what, fix=(), rebuild=False, column=""):
        a_column = ta.column(column) if column else None
        rating, reason = rate(kind, tb.rows, not_null=bool(a_column and a_column.not_null),
                              has_default=bool(a_column and normal_default(a_column.default) is not None),
                              losing_not_null=bool(column and a_column and not a_column.not_null))
        found.append(Difference(kind, tb.name, what, list(fix), rebuild and not mysql, column, rating, reason))

    for column in ta.columns:
        other = tb.column(column.name)
        definition = column_sql(d, ta.name, column, a_dialect, ta.primary_key)
        if other is None:
            simple = not column.not_null or normal_default(column.default) is not None
            add("missing_column", "column %s.%s (%s) is missing" % (tb.name, column.name, column.type),
                ["ALTER TABLE %s ADD COLUMN %s" % (q(tb.name), definition)] if mysql or simple else [],
                rebuild=not simple, column=column.name)
            continue
        modify = ["ALTER TABLE %s MODIFY COLUMN %s" % (q(tb.name), definition)] if mysql else []
        if comparable_type(column.type, same_engine) != comparable_type(other.type, same_engine):
            add("column_type", "%s.%s is %s, not %s" % (tb.name, column.name, other.type,
                                                        translate_type(ta.name, column, a_dialect, b_dialect)),
                modify, rebuild=True, column=column.name)
        keyed = column.name.lower() in _key(ta.primary_key) and (not same_engine or column.auto)
        if column.not_null != other.not_null and not keyed:
            add("column_null", "%s.%s is %s" % (tb.name, column.name, "NULL-able (it lost NOT NULL)"
                                                if column.not_null else "NOT NULL"), modify, rebuild=True,
                column=column.name)
        if normal_default(column.default) != normal_default(other.default):
            add("column_default", "%s.%s defaults to %s, not %s" % (
                tb.name, column.name, _literal(normal_default(other.default)),
                _literal(normal_default(column.default))), modify, rebuild=True, column=column.name)
    for column in tb.columns:
        if not ta.column(column.name):
            add("extra_column", "column %s.%s is not in A" % (tb.name, column.name),
                ["-- ALTER TABLE %s DROP COLUMN %s" % (q(tb.name), q(column.name))], column=column.name)
    if _key(ta.primary_key) != _key(tb.primary_key):
        fix = ["ALTER TABLE %s %sADD PRIMARY KEY (%s)" % (q(tb.name), "DROP PRIMARY KEY, " if tb.primary_key else "",
                                                          d.quote_columns(ta.primary_key))] if mysql else []
        add("primary_key", "%s's primary key is (%s), not (%s)" % (tb.name, ", ".join(tb.primary_key),
                                                                  ", ".join(ta.primary_key)), fix, rebuild=True)
    b_unique = {_key(u) for u in tb.unique}
    for unique in ta.unique:
        if _key(unique) not in b_unique:
            add("missing_unique", "%s lacks UNIQUE (%s)" % (tb.name, ", ".join(unique)),
                [index_sql(d, tb.name, unique, unique=True)])
    a_unique = {_key(u) for u in ta.unique}
    for unique in tb.unique:
        if _key(unique) not in a_unique:
            add("extra_unique", "%s has UNIQUE (%s), which A lacks" % (tb.name, ", ".join(unique)),
                ["-- drop the unique index on %s (%s) if it is not wanted" % (tb.name, ", ".join(unique))])

    def listed(table, dialect):
        return {_key(i.columns): i for i in table.indexes
                if not (_fk_indexed(table, i.columns) and (dialect == "mysql" or not same_engine))}

    a_indexes, b_indexes = listed(ta, a_dialect), listed(tb, b_dialect)
    for key, index in a_indexes.items():
        if key not in b_indexes:
            add("missing_index", "%s lacks the index %s (%s)" % (tb.name, index.name, ", ".join(index.columns)),
                [index_sql(d, tb.name, index)])
    for key, index in b_indexes.items():
        if key not in a_indexes:
            add("extra_index", "%s has the index %s (%s), which A lacks" % (tb.name, index.name,
                                                                         ", ".join(index.columns)),
                ["-- DROP INDEX %s%s" % (q(index.name), " ON %s" % q(tb.name) if mysql else "")])

    def fk_key(f):
        return _key(f.child_columns), f.parent.lower(), _key(f.parent_columns)

    b_keys, a_keys = {fk_key(f) for f in tb.foreign_keys}, {fk_key(f) for f in ta.foreign_keys}
    for fk in ta.foreign_keys:
        if fk_key(fk) not in b_keys:
            add("missing_foreign_key", "%s lacks FOREIGN KEY (%s) REFERENCES %s (%s)" % (
                tb.name, ", ".join(fk.child_columns), fk.parent, ", ".join(fk.parent_columns)),
                ["ALTER TABLE %s ADD FOREIGN KEY (%s) REFERENCES %s (%s)" % (
                    q(tb.name), d.quote_columns(fk.child_columns), q(fk.parent), d.quote_columns(fk.parent_columns))]
                if mysql else [], rebuild=True)
    for fk in tb.foreign_keys:
        if fk_key(fk) not in a_keys:
            add("extra_foreign_key", "%s has FOREIGN KEY (%s) REFERENCES %s (%s), which A lacks" % (
                tb.name, ", ".join(fk.child_columns), fk.parent, ", ".join(fk.parent_columns)),
                ["-- drop that foreign key if it is not wanted"])
    return found


def diff_catalogs(a, b, rebuild=rebuild_sql):
    """A compared with B; `rebuild(dialect, table in A, table in B, A's dialect, its differences)` writes a
    SQLite table rebuild's statements."""
    d = Dialect(b.dialect)
    differences, statements, rebuilds = [], [], []
    order = {name.upper(): i for i, name in enumerate(EM_TABLE_BY_NAME)}
    for name in sorted(a.tables, key=lambda n: (order.get(n.upper(), len(order)), n)):
        ta, tb = a.tables[name], b.table(name)
        if tb is None:
            create = [create_table_sql(d, ta, a.dialect)] + [index_sql(d, ta.name, i) for i in ta.indexes]
            differences.append(Difference("missing_table", name, "table %s is missing" % name, create,
                                          rating=rate("missing_table")[0], reason=rate("missing_table")[1]))
            continue
        found = _compare_table(d, ta, tb, a.dialect, b.dialect)
        differences += found
        if any(f.rebuild for f in found):
            rebuilds.append(rebuild(d, ta, tb, a.dialect, found))
            for f in found:  # what the rebuild does not make: advice on what B has beyond A, which it keeps
                if f.kind in ("extra_index", "extra_column", "extra_unique", "extra_foreign_key"):
                    statements += f.fix
        else:
            for f in found:
                statements += f.fix
    for name in sorted(b.tables):
        if not a.table(name) and not name.lower().startswith("_emfix"):
            rating, reason = rate("extra_table", b.tables[name].rows)
            differences.append(Difference("extra_table", name, "table %s is not in A" % name,
                                          ["-- DROP TABLE %s" % d.quote(name)], rating=rating, reason=reason))
    creates = [s for diff in differences if diff.kind == "missing_table" for s in diff.fix]
    advice = [s for s in statements if s.startswith("--")] + [s for diff in differences if diff.kind == "extra_table"
                                                               for s in diff.fix]
    actions = [s for s in statements if not s.startswith("--")]
    return SchemaDiff(a.database, b.database, b.dialect, differences,
                      creates + [s for r in rebuilds for s in r] + actions + advice)
