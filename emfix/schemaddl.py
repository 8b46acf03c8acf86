"""The DDL that makes B like A, written from a list of `schemadiff.Difference`s: one renderer of a schema diff.

Statements are written for B's engine from the two catalogs' own definitions (so a caller may pass an A
that keeps some of B's column types, as `schema upgrade` does for a type change that would change stored
values). On SQLite a change ALTER TABLE cannot make is written as SQLite's own rebuild procedure (create
the new table, copy, drop, rename), which `schema upgrade` runs inside one transaction. Lines starting
with `-- ` are advice: what B has beyond A is left for a person to decide.
"""

import dataclasses
import re

from .catalog import comparable_type, sqlite_affinity
from .schema import EM_TABLE_BY_NAME, Dialect, column_type
from .sqldefault import default_sql, normal_default, on_update_clock

REBUILD_PREFIX = "emfix_rebuild_"
# changes SQLite's ALTER TABLE cannot make: the table is rebuilt (a new column only when it needs a value)
REBUILT_KINDS = ("column_type", "column_null", "column_default", "column_auto", "primary_key", "table_rowid",
                 "missing_foreign_key")
ADVICE_KINDS = ("extra_index", "extra_column", "extra_unique", "extra_foreign_key")


def key(columns):
    """A column list compared without regard to case."""
    return tuple(c.lower() for c in columns)


def _text(name):
    return "'%s'" % name.replace("'", "''")


def application_type(table, column, a_dialect, b_dialect):
    """The type the application gives its own column in B's engine, where A's column is the application's (its
    type as the application makes it in A's engine); else None."""
    em_table = EM_TABLE_BY_NAME.get(table.upper())
    em_column = next((c for c in em_table.columns if c.name == column.name), None) if em_table else None
    if em_column and comparable_type(column_type(a_dialect, em_column), False) == comparable_type(column.type, False):
        return column_type(b_dialect, em_column, "text" if column.type == "LONGTEXT" else "json")
    return None


def translate_type(table, column, a_dialect, b_dialect):
    """A's column type as B's engine spells it: the application's own mapping for its columns."""
    if a_dialect == b_dialect:
        return column.type
    application = application_type(table, column, a_dialect, b_dialect)
    if application:
        return application
    if b_dialect == "mysql":
        return {"REAL": "DOUBLE", "TEXT": "TEXT"}.get(column.type, column.type or "TEXT")
    kind = comparable_type(column.type, False)
    if re.match(r"(ENUM|SET)\b", kind):  # values in quotes, which a SQLite type name cannot hold (round 30)
        return "TEXT"
    return kind if SQLITE_TYPE_NAME.match(kind) else sqlite_affinity(kind)


SQLITE_TYPE_NAME = re.compile(r"[A-Z_][A-Z0-9_ ]*(\(\s*[+-]?\d+\s*(,\s*[+-]?\d+\s*)?\))?$")


def column_sql(d, table, column, a_dialect, primary_key, kept=None):
    """A's `column` as B's (`d`) DDL writes it; `kept`: B's column of that name, whose default stays where A's is an
    expression of the other engine, left out (round 43: MODIFY COLUMN without it dropped B's own default)."""
    if column.auto and tuple(primary_key) == (column.name,):
        return "%s %s" % (d.quote(column.name), "INT PRIMARY KEY AUTO_INCREMENT" if d.dialect == "mysql"
                          else "INTEGER PRIMARY KEY AUTOINCREMENT")
    text = "%s %s" % (d.quote(column.name), translate_type(table, column, a_dialect, d.dialect))
    if column.not_null:
        text += " NOT NULL"
    default = normal_default(column.default, a_dialect)
    if default is not None and a_dialect != d.dialect and default.startswith("("):  # (cross_engine_advice)
        default = normal_default(kept.default, d.dialect) if kept is not None else None
    if default is not None:
        text += " DEFAULT %s" % default_sql(default, d.dialect)
    return text


def cross_engine_advice(a, b, tables):
    """`-- ` lines for the defaults of A's `tables` that B's engine does not take as A's writes them: an expression
    (round 40: SQLite's `'a' || 'b'` is OR on MariaDB, MariaDB's concat() unknown to SQLite: every insert failed),
    MySQL's ON UPDATE clock or a clock's fraction digits into SQLite. The DDL leaves the expression out; the advice
    says what to write."""
    if a.dialect == b.dialect:
        return []
    advice = []
    for table in tables:
        for column in a.table(table).columns if a.table(table) is not None else ():
            default = normal_default(column.default, a.dialect)
            if default is None:
                continue
            if default.startswith("("):
                advice.append("-- %s.%s: A's default %s is an expression of %s; write it for %s by hand (left out "
                              "above)" % (table, column.name, default, a.dialect, b.dialect))
            fraction = re.match(r"(CURRENT_TIMESTAMP|CURRENT_TIME)\((\d+)\)", default)
            if fraction and b.dialect == "sqlite":
                advice.append("-- %s.%s: MySQL's %s keeps %s fraction digits; SQLite's %s has none (written without "
                              "them above; strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now') keeps 3)" % (
                                  table, column.name, fraction.group(0), fraction.group(2), fraction.group(1)))
            if on_update_clock(default) and b.dialect == "sqlite":
                advice.append("-- %s.%s: MySQL's ON UPDATE %s has no SQLite column clause (a trigger can do it)" % (
                    table, column.name, on_update_clock(default)))
    return advice


def create_table_sql(d, table, a_dialect, name=None, kept=None):
    """`kept`: B's table of that name, whose defaults stay where A's are expressions left out (column_sql)."""
    parts = [column_sql(d, table.name, c, a_dialect, table.primary_key, kept.column(c.name) if kept else None)
             for c in table.columns]
    if table.primary_key and not any(c.auto and tuple(table.primary_key) == (c.name,) for c in table.columns):
        parts.append("PRIMARY KEY (%s)" % d.quote_columns(table.primary_key))
    parts += ["UNIQUE (%s)" % d.quote_columns(u) for u in table.unique]
    parts += ["FOREIGN KEY (%s) REFERENCES %s (%s)" % (d.quote_columns(f.child_columns), d.quote(f.parent),
                                                      d.quote_columns(f.parent_columns)) for f in table.foreign_keys]
    suffix = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4" if d.dialect == "mysql" else (
        " WITHOUT ROWID" if table.without_rowid and table.primary_key else "")
    return "CREATE TABLE %s (\n  %s\n)%s" % (d.quote(name or table.name), ",\n  ".join(parts), suffix)


def index_sql(d, table, index, unique=False, a_dialect=None):
    """CREATE INDEX for B (`d`); an index of MySQL's A into SQLite is named after its table too: MySQL's index names
    are the table's own (a foreign key's index is named after its column: `artifact_id` in seven tables), SQLite's
    the database's (round 43: the DDL stopped at "index artifact_id already exists", twelve tables made)."""
    name = index.name if not unique else ("emfix_uq_%s_%s" % (table, "_".join(index))).lower()
    if not unique and a_dialect == "mysql" and d.dialect == "sqlite" and not name.lower().startswith(table.lower()):
        name = "%s__%s" % (table, name)  # (two underscores: `a` + `b_c` and `a_b` + `c` were one, round 44)
    columns = index.columns if not unique else index
    return "CREATE %sINDEX %s ON %s (%s)" % ("UNIQUE " if unique else "", d.quote(name), d.quote(table),
                                            d.quote_columns(columns))


def rebuild_sql(d, ta, tb, a_dialect, _found=()):
    """SQLite's procedure for a change ALTER TABLE cannot make (https://www.sqlite.org/lang_altertable.html),
    as far as two catalogs tell it: B's extra columns, UNIQUE and FOREIGN KEY constraints and indexes go with
    the table. On a live database `schema upgrade` writes it from the table's own SQL (emfix.rebuild)."""
    temp = REBUILD_PREFIX + tb.name
    keys = {key(f.child_columns + (f.parent,) + f.parent_columns) for f in ta.foreign_keys}
    merged = dataclasses.replace(
        ta, columns=list(ta.columns) + [c for c in tb.columns if not ta.column(c.name)],
        unique=list(ta.unique) + [u for u in tb.unique if key(u) not in {key(x) for x in ta.unique}],
        foreign_keys=list(ta.foreign_keys) + [f for f in tb.foreign_keys
                                              if key(f.child_columns + (f.parent,) + f.parent_columns) not in keys])
    common = [c.name for c in merged.columns if tb.column(c.name)]
    statements = [create_table_sql(d, merged, a_dialect, temp, kept=tb),
                  "INSERT INTO %s (%s) SELECT %s FROM %s" % (d.quote(temp), d.quote_columns(common),
                                                              d.quote_columns([tb.column(c).name for c in common]),
                                                              d.quote(tb.name))]
    if any(c.auto for c in merged.columns):  # the AUTOINCREMENT counter goes with the table (as emfix.rebuild's):
        statements += [  # ids once handed out, then deleted, are not handed out again (an outside tester's find)
            "DELETE FROM sqlite_sequence WHERE name = %s" % _text(temp),
            "INSERT INTO sqlite_sequence (name, seq) SELECT %s, seq FROM sqlite_sequence WHERE name = %s" % (
                _text(temp), _text(tb.name))]
    statements += ["DROP TABLE %s" % d.quote(tb.name), "ALTER TABLE %s RENAME TO %s" % (d.quote(temp),
                                                                                      d.quote(tb.name))]
    indexes = list(tb.indexes) + [i for i in ta.indexes if key(i.columns) not in {key(x.columns) for x in tb.indexes}]
    statements += [index_sql(d, tb.name, i, a_dialect=a_dialect) for i in indexes]
    return statements


def needs_rebuild(difference, a, dialect):
    """Does B's engine make this change by rebuilding the table (SQLite only)?"""
    if dialect == "mysql":
        return False
    if difference.kind == "missing_column":
        return not _simple_new_column(a.table(difference.table).column(difference.column), a.dialect)
    return difference.kind in REBUILT_KINDS


def _simple_new_column(column, a_dialect):
    """SQLite's ALTER TABLE ADD COLUMN can add it: it may be NULL, or it has a default for the rows already there,
    and that default is a constant (CURRENT_TIMESTAMP or an expression: "Cannot add a column with non-constant
    default" on a table with rows)."""
    default = normal_default(column.default, a_dialect)
    if default is not None and default.startswith(("CURRENT_", "(")):
        return False
    return not column.not_null or default is not None


def fix_of(difference, a, b):
    """The statements (or `-- ` advice) that make this one change to B, for B's engine; [] when only a
    rebuild of the table makes it."""
    d = Dialect(b.dialect)
    q, mysql, kind = d.quote, d.dialect == "mysql", difference.kind
    if kind == "missing_table":
        ta = a.table(difference.table)
        return [create_table_sql(d, ta, a.dialect)] + [index_sql(d, ta.name, i, a_dialect=a.dialect)
                                                         for i in ta.indexes]
    if kind == "extra_table":
        return ["-- DROP TABLE %s" % q(difference.table)]
    ta, tb = a.table(difference.table), b.table(difference.table)
    if difference.column and kind != "extra_column":
        column = ta.column(difference.column)
        definition = column_sql(d, ta.name, column, a.dialect, ta.primary_key, tb.column(difference.column))
        if kind == "missing_column":
            return ["ALTER TABLE %s ADD COLUMN %s" % (q(tb.name), definition)] if (
                mysql or _simple_new_column(column, a.dialect)) else []
        if kind == "column_auto" and mysql:  # (the key is there: a MODIFY naming PRIMARY KEY again is refused)
            return ["ALTER TABLE %s MODIFY COLUMN %s %s NOT NULL%s" % (
                q(tb.name), q(column.name), translate_type(ta.name, column, a.dialect, d.dialect),
                " AUTO_INCREMENT" if column.auto else "")]
        return ["ALTER TABLE %s MODIFY COLUMN %s" % (q(tb.name), definition)] if mysql else []
    if kind == "extra_column":
        return ["-- ALTER TABLE %s DROP COLUMN %s" % (q(tb.name), q(difference.column))]
    if kind == "primary_key":
        return ["ALTER TABLE %s %sADD PRIMARY KEY (%s)" % (q(tb.name), "DROP PRIMARY KEY, " if tb.primary_key else "",
                                                           d.quote_columns(ta.primary_key))] if mysql else []
    if kind == "missing_unique":
        return [index_sql(d, tb.name, difference.a, unique=True)]
    if kind == "extra_unique":
        return ["-- drop the unique index on %s (%s) if it is not wanted" % (tb.name, ", ".join(difference.b))]
    if kind == "missing_index":
        return [index_sql(d, tb.name, difference.a, a_dialect=a.dialect)]
    if kind == "extra_index":
        return ["-- DROP INDEX %s%s" % (q(difference.b.name), " ON %s" % q(tb.name) if mysql else "")]
    if kind == "missing_foreign_key":
        fk = difference.a
        return ["ALTER TABLE %s ADD FOREIGN KEY (%s) REFERENCES %s (%s)" % (
            q(tb.name), d.quote_columns(fk.child_columns), q(fk.parent),
            d.quote_columns(fk.parent_columns))] if mysql else []
    if kind == "extra_foreign_key":
        return ["-- drop that foreign key if it is not wanted"]
    if kind == "table_rowid":
        return []  # (SQLite alone: a rebuild)
    raise ValueError("no DDL for a change of kind %r" % kind)


def statements_of(differences, a, b, rebuild=rebuild_sql):
    """Every statement, in the order it runs: new tables, table rebuilds, the other changes, then the advice.

    `rebuild(dialect, table in A, table in B, A's dialect, its differences)` writes a SQLite table
    rebuild's statements (`emfix.rebuild` writes them from a live table's own SQL)."""
    d = Dialect(b.dialect)
    creates, rebuilds, actions, advice, dropped = [], [], [], [], []
    by_table = {}
    for difference in differences:
        if difference.kind == "missing_table":
            creates += fix_of(difference, a, b)
        elif difference.kind == "extra_table":
            dropped += fix_of(difference, a, b)
        else:
            by_table.setdefault(difference.table, []).append(difference)
    for table, found in by_table.items():
        statements = []
        if any(needs_rebuild(f, a, b.dialect) for f in found):
            rebuilds.append(rebuild(d, a.table(table), b.table(table), a.dialect, found))
            found = [f for f in found if f.kind in ADVICE_KINDS]  # what the rebuild does not make: what B has beyond A
        for f in found:
            statements += [s for s in fix_of(f, a, b) if s not in statements]  # (a column's type and default: one)
        actions += [s for s in statements if not s.startswith("--")]
        advice += [s for s in statements if s.startswith("--")]
    touched = [f.table for f in differences if f.kind not in ("extra_table",)]
    advice += [s for s in cross_engine_advice(a, b, list(dict.fromkeys(touched))) if s not in advice]
    return creates + [s for r in rebuilds for s in r] + actions + advice + dropped


SQLITE_BAIL = ".bail on"  # the sqlite3 shell goes on after a failed statement unless told not to
SQLITE_SCRIPT_HEAD = (
    "-- for the sqlite3 shell (sqlite3 B.db < this file): it stops at the first statement that fails (.bail on)",)
SQLITE_SCRIPT_BEFORE = (
    "-- SQLite rebuilds tables below: run this script whole, as it is (foreign keys off and legacy_alter_table on,",
    "-- so views and other tables' triggers keep their text; one transaction, rolled back if a statement fails: a",
    "-- copy that fails, such as a new NOT NULL column without a default on a table with rows, never drops the old",
    "-- table). Triggers ON a rebuilt table are not in a schema description and go with the old table: on a live",
    "-- database `emfix schema upgrade` keeps them.",
    "PRAGMA foreign_keys = OFF", "PRAGMA legacy_alter_table = ON", "BEGIN")
SQLITE_SCRIPT_AFTER = ("COMMIT", "PRAGMA legacy_alter_table = OFF", "PRAGMA foreign_keys = ON")


def as_script(statements, dialect, rebuilds):
    """The statements as a script a person runs (the sqlite3 shell, mysql < file), which stops at the first
    statement that fails (the mysql client does; the sqlite3 shell is told so: found by an outside tester, a
    rebuild whose copy failed went on to drop the old table). On SQLite, table rebuilds need the settings of
    SQLite's own procedure around them, and every statement one transaction."""
    if dialect != "sqlite":
        return list(statements)
    if not rebuilds:
        return [SQLITE_BAIL] + list(SQLITE_SCRIPT_HEAD) + list(statements)
    actions = [s for s in statements if not s.startswith("--")]
    return [SQLITE_BAIL] + list(SQLITE_SCRIPT_HEAD) + list(SQLITE_SCRIPT_BEFORE) + actions + list(
        SQLITE_SCRIPT_AFTER) + [s for s in statements if s.startswith("--")]


def script_lines(script):
    """Each line of a script as it is printed: a statement ends in `;`, advice (`-- `) and the sqlite3 shell's
    own commands (`.bail on`) do not."""
    return [s if s.startswith(("--", ".")) else s + ";" for s in script]

