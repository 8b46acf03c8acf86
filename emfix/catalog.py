"""What a database declares: tables, columns, keys, indexes, row counts, schema versions.

The same description is read from a live database (either engine) or from the JSON file
`emfix schema show --json` writes, so `schema diff` compares any two of them. Types are kept as the
engine spells them (normalized: upper case, no integer display width); `comparable_type` maps them
through the Experiment Manager's own SQLite <-> MySQL mapping when the engines differ.
"""

import dataclasses
import json
import re
from typing import Dict, List, Optional, Tuple

from .errors import DamagedInputError, SchemaError, UsageError
from .foreignkey import ForeignKey
from .inputfile import read_input_text
from .schema import EM_TABLES, column_type, is_own_table

CATALOG_FORMAT = "emfix-schema-1"


@dataclasses.dataclass
class ColumnInfo:
    name: str
    type: str
    not_null: bool = False
    default: Optional[str] = None
    auto: bool = False


@dataclasses.dataclass
class IndexInfo:
    name: str
    columns: Tuple[str, ...]
    unique: bool = False


@dataclasses.dataclass
class TableInfo:
    name: str
    columns: List[ColumnInfo]
    primary_key: Tuple[str, ...] = ()
    unique: List[Tuple[str, ...]] = dataclasses.field(default_factory=list)
    indexes: List[IndexInfo] = dataclasses.field(default_factory=list)  # non-unique, explicit
    foreign_keys: List[ForeignKey] = dataclasses.field(default_factory=list)  # child: this table
    rows: Optional[int] = None
    without_rowid: bool = False  # SQLite's WITHOUT ROWID table (no rowid; NULL in its key refused)

    def to_dict(self):
        """The schema file's form: a foreign key is {"columns", "table" (the parent), "ref_columns"}."""
        data = dataclasses.asdict(dataclasses.replace(self, foreign_keys=[]))
        data["foreign_keys"] = [{"columns": fk.child_columns, "table": fk.parent, "ref_columns": fk.parent_columns}
                                for fk in self.foreign_keys]
        return data

    def column(self, name):
        return next((c for c in self.columns if c.name.lower() == name.lower()), None)


@dataclasses.dataclass
class Catalog:
    dialect: str
    database: str
    tables: Dict[str, TableInfo]
    schema_versions: List[Dict[str, object]] = dataclasses.field(default_factory=list)

    @property
    def generation(self):
        return 2 if self.table("BATCH") else 1

    def table(self, name):
        return self.tables.get(name) or next((t for n, t in self.tables.items() if n.lower() == name.lower()), None)

    def to_dict(self):
        return {"format": CATALOG_FORMAT, "dialect": self.dialect, "database": self.database,
                "generation": self.generation, "schema_versions": self.schema_versions,
                "tables": {name: t.to_dict() for name, t in sorted(self.tables.items())}}


def normal_type(text):
    """INT(11) -> INT, INTEGER -> INT, varchar(50) -> VARCHAR(50): the spelling differences that mean nothing."""
    parts = re.split(r"('(?:[^'\\]|\\.|'')*')", str(text or "").strip())  # ENUM/SET values keep their case
    kind = "".join(part if n % 2 else re.sub(r"\s+", " ", part.upper()) for n, part in enumerate(parts))
    kind = re.sub(r"^(TINYINT|SMALLINT|MEDIUMINT|INT|INTEGER|BIGINT)\(\d+\)", r"\1", kind)
    return "INT" + kind[7:] if kind.startswith("INTEGER") else kind


def sqlite_affinity(kind):
    """SQLite's column affinity of a declared type (https://www.sqlite.org/datatype3.html, "Determination of
    column affinity"): a column of TEXT affinity stores a number given to it as text."""
    kind = normal_type(kind)
    if "INT" in kind:
        return "INTEGER"
    if any(word in kind for word in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if "BLOB" in kind or not kind:
        return "BLOB"
    if any(word in kind for word in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


# The application writes MySQL's DATETIME and JSON as TEXT on SQLite (the schema doc, "Columns"); a SQLite REAL is
# MySQL's DOUBLE (the DDL a diff writes for it: a diff of the two said "METRIC.r is DOUBLE, not DOUBLE" for ever), a
# SQLite BOOLEAN MySQL's TINYINT(1), a SQLite column without a type MySQL's TEXT (the DDL's choice: round 37, "bo is
# TINYINT, not BOOLEAN" and "un is TEXT, not TEXT" for ever).
_AS_SQLITE = {"DATETIME": "TEXT", "TIMESTAMP": "TEXT", "JSON": "TEXT", "LONGTEXT": "TEXT", "MEDIUMTEXT": "TEXT",
              "TINYTEXT": "TEXT", "DOUBLE": "REAL", "DOUBLE PRECISION": "REAL", "BOOLEAN": "TINYINT",
              "BOOL": "TINYINT", "": "TEXT"}


def comparable_type(kind, same_engine):
    if same_engine and str(kind).strip().upper() == "INTEGER":  # (SQLite's rowid alias: _kept_type)
        return "INTEGER"
    kind = normal_type(kind)
    if not same_engine and re.match(r"(ENUM|SET)\b", kind):  # SQLite's TEXT (a diff's DDL writes that: round 36,
        return "TEXT"  # "userTab.v is TEXT, not TEXT" for ever)
    return kind if same_engine else _AS_SQLITE.get(kind, kind)


def _kept_type(db, table, column, primary):
    """A column's type, normalized; but SQLite's one INTEGER PRIMARY KEY column (not AUTOINCREMENT: that one is
    `auto`) stays INTEGER: it is the rowid's alias, which an INT key is not (round 39: a diff's rebuild wrote it as
    INT, and a row inserted without it got NULL there, not the next id)."""
    if db.dialect == "sqlite" and not column.auto and tuple(primary) == (column.name,) and \
            str(column.type or "").strip().upper() == "INTEGER" and not key_has_its_own_index(db, table):
        return "INTEGER"
    return normal_type(column.type)


def is_without_rowid(sql):
    """Does a SQLite table's CREATE TABLE text end in the WITHOUT ROWID option (after its last parenthesis)?
    Comments are no part of it (`WITHOUT/**/ROWID` is one: round 57, exit 70), nor a parenthesis inside one."""
    sql = without_comments(str(sql or ""))
    return ")" in sql and re.search(r"\bWITHOUT\s+ROWID\b", sql[sql.rindex(")") + 1:], re.IGNORECASE) is not None


def skip_quoted(sql, i):
    """The index just past the quoted text starting at sql[i] ('…', "…", `…` or […])."""
    close = "]" if sql[i] == "[" else sql[i]
    j = i + 1
    while True:
        j = sql.find(close, j)
        if j < 0:
            raise SchemaError("cannot read the CREATE TABLE statement (unterminated %s)" % close)
        if close != "]" and sql[j + 1:j + 2] == close:
            j += 2
            continue
        return j + 1


def without_comments(sql):
    """SQL text (as SQLite keeps it: its quotes closed) with each comment (`-- ...` to the line's end, `/* ... */`)
    a space; quoted text and names kept."""
    out, i, n = [], 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"`[":
            end = skip_quoted(sql, i)
            out.append(sql[i:end])
            i = end
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            out.append(" ")
            i = n if end == -1 else end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            out.append(" ")
            i = n if end == -1 else end + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def key_has_its_own_index(db, table):
    """Is SQLite's primary key of `table` an index of its own (origin 'pk'), not the rowid? `INTEGER PRIMARY KEY
    DESC` on the column is (SQLite's documented quirk), as is every key of a WITHOUT ROWID table: no alias, a
    row inserted without it is refused (round 40: a diff called it the same as the alias)."""
    return any(row[3] == "pk" for row in db.query("PRAGMA index_list(%s)" % db.quote(table)))


def read_catalog(db, counts=True):
    """counts: True (every table's rows counted), False, or the names of the tables to count."""
    tables = {}
    for name in db.tables():
        if is_own_table(name):  # emfix's journals are not part of the user's schema
            continue
        primary = tuple(db.primary_key(name))
        foreign = [ForeignKey(name, fk.child_columns, fk.parent, fk.parent_columns) for fk in db.foreign_keys(name)]
        unique, indexes = [], []
        for index in db.indexes(name):
            mysql_key = index.name == "PRIMARY" and db.dialect == "mysql"  # (a SQLite index may bear it: round 44)
            if mysql_key or (index.unique and tuple(index.columns) == primary):
                continue
            if index.unique:
                unique.append(tuple(index.columns))
            else:
                indexes.append(IndexInfo(index.name, tuple(index.columns)))
        columns = [ColumnInfo(c.name, _kept_type(db, name, c, primary), c.not_null, c.default, c.auto)
                   for c in db.column_details(name)]
        counted = counts is True or (not isinstance(counts, bool) and name in (counts or ()))
        rows = int(db.scalar("SELECT count(*) FROM %s" % db.quote(name)) or 0) if counted else None
        tables[name] = TableInfo(name, columns, primary, sorted(unique), sorted(indexes, key=lambda i: i.columns),
                                 foreign, rows, db.dialect == "sqlite" and is_without_rowid(db.table_sql(name)))
    catalog = Catalog(db.dialect, db.address.display(), tables)
    version_table = catalog.table("SCHEMA_VERSION")
    if version_table:
        names = [c.name for c in version_table.columns]
        catalog.schema_versions = [dict(zip(names, (v if v is None or isinstance(v, (int, float)) else str(v)
                                                    for v in row)))
                                   for row in db.query("SELECT * FROM %s ORDER BY 1" % db.quote(version_table.name))]
    return catalog


class _Wrong(Exception):
    """A field of a schema file that is missing or of the wrong type (what is wrong, for the message)."""


def _of(value, kind, what):
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _Wrong(what)
    return value


def _names(value, what):
    return tuple(_of(c, str, what) for c in _of(value, list, what))


def _column(c, table):
    what = "a column of %s" % table
    _of(c, dict, what)
    default = c.get("default")
    if isinstance(default, bool) or (default is not None and not isinstance(default, (str, int, float))):
        raise _Wrong("the default of %s" % what)
    return ColumnInfo(_of(c.get("name"), str, what), _of(c.get("type"), str, what), bool(c.get("not_null")),
                      None if default is None else str(default), bool(c.get("auto")))


def _table(name, t):
    _of(t, dict, "table %s" % name)
    rows = t.get("rows")
    if rows is not None:
        _of(rows, int, "the row count of %s" % name)
    indexes = [IndexInfo(_of(i.get("name"), str, "an index of %s" % name), _names(i.get("columns"), "an index of %s"
                                                                                    % name), bool(i.get("unique")))
               for i in (_of(i, dict, "an index of %s" % name) for i in _of(t.get("indexes", []), list, name))]
    foreign = [ForeignKey(name, _names(f.get("columns"), "a foreign key of %s" % name),
                          _of(f.get("table"), str, "a foreign key of %s" % name),
                          _names(f.get("ref_columns"), "a foreign key of %s" % name))
               for f in (_of(f, dict, "a foreign key of %s" % name)
                         for f in _of(t.get("foreign_keys", []), list, name))]
    return TableInfo(name, [_column(c, name) for c in _of(t.get("columns"), list, "the columns of %s" % name)],
                     _names(t.get("primary_key", []), "the primary key of %s" % name),
                     [_names(u, "a unique key of %s" % name) for u in _of(t.get("unique", []), list, name)],
                     indexes, foreign, rows, _of(t.get("without_rowid", False), bool, "without_rowid of %s" % name))


def catalog_from_dict(data, origin="the file"):
    """A Catalog from `schema show --json`'s object; every name and field checked, so a hand-edited or
    damaged file is one DamagedInputError, never an exception further on. (The old tool's files too:
    schemafiles.schema_from_data.)"""
    if not isinstance(data, dict) or data.get("format") != CATALOG_FORMAT:
        raise DamagedInputError("%s is not a schema file written by `emfix schema show --json` (no format %r) "
                                "nor by the old tool's extract-schema" % (origin, CATALOG_FORMAT))
    try:
        if data.get("dialect") not in ("sqlite", "mysql"):
            raise _Wrong("dialect (sqlite or mysql)")
        tables = {_of(name, str, "a table name"): _table(name, t)
                  for name, t in _of(data.get("tables"), dict, "tables").items()}
        versions = [_of(v, dict, "schema_versions") for v in _of(data.get("schema_versions", []), list,
                                                                  "schema_versions")]
        return Catalog(data["dialect"], str(data.get("database", origin)), tables, versions)
    except _Wrong as exc:
        raise DamagedInputError("%s is not a complete schema file (%s missing or wrong)" % (origin, exc)) from None


def load_json_file(path, what="a schema file"):
    try:
        return json.loads(read_input_text(path, "the file"))
    except UsageError:  # not UTF-8
        raise DamagedInputError("%s is not JSON (not UTF-8 text)" % path, hint="give %s" % what) from None
    except (ValueError, RecursionError) as exc:
        raise DamagedInputError("%s is not JSON (%s)" % (path, str(exc)[:200] or "nested too deeply"),
                                hint="give %s" % what) from None


def expected_catalog(dialect, generation=2, json_type="json"):
    """The Experiment Manager's schema as `read_catalog` sees a database `emfix init` made."""
    tables = {}
    for table in EM_TABLES:
        if table.generation > generation:
            continue
        columns = []
        for c in table.columns:
            kind = "INT" if c.auto else normal_type(column_type(dialect, c, json_type))
            not_null = c.not_null or (dialect == "mysql" and c.name in table.primary_key)
            columns.append(ColumnInfo(c.name, kind, not_null, None, c.auto))
        unique = sorted((c.name,) for c in table.columns if c.unique)
        tables[table.name] = TableInfo(table.name, columns, table.primary_key, unique, [],
                                       [dataclasses.replace(fk, source="declared") for fk in table.foreign_keys])
    return Catalog(dialect, "the Experiment Manager schema (generation %d)" % generation, tables)
