"""The old schema tool's files: the schema file its `extract-schema` wrote and the diff file its
`compare-schemas --format json` wrote (the input of `generate-migration-plan -d`).

Both are read into emfix's own values (`catalog.Catalog`, `schemadiff.SchemaDiff`) and written from
them, so scripts that read the old layout keep working; emfix's own records travel beside the old
keys under `emfix`. Whatever a file holds, reading it gives a Catalog or a DamagedInputError.
"""

import dataclasses
import datetime
import json

from . import __version__
from .catalog import Catalog, ColumnInfo, IndexInfo, TableInfo, comparable_type, normal_type
from .errors import DamagedInputError
from .foreignkey import ForeignKey

OLD_SCHEMA_VERSION = "1.0"


def is_old_schema(data):
    """The old `extract-schema` layout: tables as a list of objects, no emfix `format`."""
    return isinstance(data, dict) and "format" not in data and isinstance(data.get("tables"), list)


def is_old_diff(data):
    return isinstance(data, dict) and ("table_diffs" in data or "source_schema" in data)


def _text(value, what):
    if not isinstance(value, str) or not value:
        raise DamagedInputError("%s is not a non-empty string" % what)
    return value


def _list(value, what):
    if value is None:
        return []
    if not isinstance(value, list):
        raise DamagedInputError("%s is not a list" % what)
    return value


def _object(value, what):
    if not isinstance(value, dict):
        raise DamagedInputError("%s is not an object" % what)
    return value


def _default(value):
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)
    raise DamagedInputError("a default value is neither text nor a number")


def _table_from_old(raw, n):
    t = _object(raw, "tables[%d]" % n)
    name = _text(t.get("name"), "tables[%d].name" % n)
    where = "table %s" % name
    columns, flagged = [], []
    for i, raw_column in enumerate(_list(t.get("columns"), where + " columns")):
        c = _object(raw_column, "%s column %d" % (where, i))
        column = _text(c.get("name"), "%s column %d name" % (where, i))
        kind = c.get("data_type") or c.get("normalized_type") or ""
        if not isinstance(kind, str):
            raise DamagedInputError("%s.%s data_type is not a string" % (name, column))
        nullable = c.get("is_nullable", True)
        columns.append(ColumnInfo(column, normal_type(kind), not bool(nullable), _default(c.get("default_value")),
                                  bool(c.get("is_auto_increment"))))
        if c.get("is_primary_key"):
            flagged.append(column)
    primary, unique, indexes = (), [], []
    for i, raw_index in enumerate(_list(t.get("indexes"), where + " indexes")):
        x = _object(raw_index, "%s index %d" % (where, i))
        cols = tuple(_text(col, "%s index %d column" % (where, i)) for col in _list(x.get("columns"), where))
        if not cols:
            continue
        if x.get("is_primary") or x.get("name") == "PRIMARY":
            primary = cols
        elif x.get("is_unique"):
            unique.append(cols)
        else:
            index_name = x.get("name")
            indexes.append(IndexInfo(index_name if isinstance(index_name, str) and index_name else
                                     "idx_%s_%s" % (name, "_".join(cols)), cols))
    foreign, by_name = [], {}
    for i, raw_fk in enumerate(_list(t.get("foreign_keys"), where + " foreign_keys")):
        f = _object(raw_fk, "%s foreign key %d" % (where, i))
        column = _text(f.get("column_name"), "%s foreign key %d column_name" % (where, i))
        parent = _text(f.get("referenced_table"), "%s foreign key %d referenced_table" % (where, i))
        ref = _text(f.get("referenced_column"), "%s foreign key %d referenced_column" % (where, i))
        key = f.get("name") if isinstance(f.get("name"), str) and f.get("name") else "#%d" % i
        if key in by_name and foreign[by_name[key]].parent == parent:  # a composite key: one entry per column
            fk = foreign[by_name[key]]
            foreign[by_name[key]] = dataclasses.replace(fk, child_columns=fk.child_columns + (column,),
                                                        parent_columns=fk.parent_columns + (ref,))
        else:
            by_name[key] = len(foreign)
            foreign.append(ForeignKey(name, (column,), parent, (ref,)))
    rows = t.get("row_count")
    rows = rows if isinstance(rows, int) and not isinstance(rows, bool) and rows >= 0 else None
    return TableInfo(name, columns, primary or tuple(flagged), sorted(unique),
                     sorted(indexes, key=lambda x: x.columns), foreign, rows)


def catalog_from_old(data, origin="the file"):
    """A Catalog from the old `extract-schema` file (a dict parsed from its JSON)."""
    try:
        data = _object(data, origin)
        kind = data.get("database_type", "sqlite")
        dialect = "mysql" if isinstance(kind, str) and kind.lower() in ("mysql", "mariadb") else "sqlite"
        tables = {}
        for n, raw in enumerate(_list(data.get("tables"), "tables")):
            table = _table_from_old(raw, n)
            tables[table.name] = table
        name = data.get("database_name")
        catalog = Catalog(dialect, name if isinstance(name, str) and name else origin, tables)
        version = data.get("schema_version")
        if isinstance(version, (str, int)) and not isinstance(version, bool):
            catalog.schema_versions = [{"version": str(version)}]
        return catalog
    except DamagedInputError as exc:
        raise DamagedInputError("%s is not a readable schema file of the old tool: %s" % (origin, exc.message)) \
            from None
    except RecursionError:
        raise DamagedInputError("%s is nested too deeply to be a schema file" % origin) from None


def _type_name(kind):
    kind = kind or "TEXT"
    return comparable_type(kind, False).split("(")[0]


def catalog_to_old(catalog, extracted_at=None, stats=True):
    """The old `extract-schema` layout, with emfix's own description beside it under `emfix`."""
    tables = []
    for name, t in sorted(catalog.tables.items()):
        columns = [{"name": c.name, "data_type": c.type, "normalized_type": _type_name(c.type),
                    "is_nullable": not c.not_null, "default_value": c.default,
                    "is_primary_key": c.name in t.primary_key, "is_auto_increment": c.auto,
                    "character_maximum_length": None, "numeric_precision": None, "numeric_scale": None,
                    "collation_name": None, "comment": None} for c in t.columns]
        indexes = []
        if t.primary_key:
            indexes.append({"name": "PRIMARY", "table_name": name, "columns": list(t.primary_key), "is_unique": True,
                            "is_primary": True, "comment": None})
        indexes += [{"name": "uq_%s_%s" % (name, "_".join(u)), "table_name": name, "columns": list(u),
                     "is_unique": True, "is_primary": False, "comment": None} for u in t.unique]
        indexes += [{"name": i.name, "table_name": name, "columns": list(i.columns), "is_unique": False,
                     "is_primary": False, "comment": None} for i in t.indexes]
        foreign = [{"name": "fk_%s_%d" % (name, n), "table_name": name, "column_name": column,
                    "referenced_table": f.parent, "referenced_column": ref, "on_update": None, "on_delete": None}
                   for n, f in enumerate(t.foreign_keys) for column, ref in zip(f.child_columns, f.parent_columns)]
        tables.append({"name": name, "columns": columns, "indexes": indexes, "foreign_keys": foreign,
                       "check_constraints": [], "engine": "InnoDB" if catalog.dialect == "mysql" else None,
                       "charset": None, "collation": None, "comment": None,
                       "row_count": t.rows if stats else None, "data_size_bytes": None})
    versions = [str(v.get("version")) for v in catalog.schema_versions if v.get("version") is not None]
    return {"database_name": catalog.database, "database_type": catalog.dialect, "version": OLD_SCHEMA_VERSION,
            "schema_version": versions[-1] if versions else None,
            "extracted_at": extracted_at or datetime.datetime.now().isoformat(),
            "metadata": {"written_by": "emfix %s" % __version__, "generation": catalog.generation},
            "tables": tables, "emfix": catalog.to_dict()}


# -- the diff file ---------------------------------------------------------------------------------

_TABLE_KINDS = {"missing_table": "ADDED", "extra_table": "REMOVED"}


def diff_to_old(diff, source, target, generated_at=None):
    """The old diff layout for `diff` = diff_catalogs(target, source) (what makes SOURCE like TARGET),
    with emfix's rated changes and DDL under `emfix`."""
    by_table = {}
    for d in diff.differences:
        by_table.setdefault(d.table, []).append(d)
    table_diffs = []
    for name in sorted(set(source.tables) | set(target.tables)):
        changes = by_table.get(name, [])
        kinds = {d.kind for d in changes}
        change_type = next((_TABLE_KINDS[k] for k in kinds if k in _TABLE_KINDS), "MODIFIED" if changes else
                           "UNCHANGED")
        old, new = source.table(name), target.table(name)
        table_diffs.append({
            "table_name": name, "change_type": change_type,
            "old_table": catalog_to_old(Catalog(source.dialect, source.database, {name: old}))["tables"][0]
            if old else None,
            "new_table": catalog_to_old(Catalog(target.dialect, target.database, {name: new}))["tables"][0]
            if new else None,
            "column_diffs": [_change(d) for d in changes if d.column],
            "other_diffs": [_change(d) for d in changes if not d.column],
            "impact_level": max((d.rating for d in changes), key=_rank, default="COSMETIC")})

    def count(kind):
        return sum(1 for d in diff.differences if d.kind == kind)

    summary = {"added_tables": count("missing_table"), "removed_tables": count("extra_table"),
               "modified_tables": sum(1 for t in table_diffs if t["change_type"] == "MODIFIED"),
               "added_columns": count("missing_column"), "removed_columns": count("extra_column"),
               "modified_columns": count("column_type") + count("column_null") + count("column_default"),
               "added_indexes": count("missing_index") + count("missing_unique"),
               "removed_indexes": count("extra_index") + count("extra_unique"), "modified_indexes": 0,
               "breaking_changes": sum(1 for d in diff.differences if d.rating == "BREAKING"),
               "total_changes": len(diff.differences)}
    overall = diff.overall_rating
    return {"source_schema": catalog_to_old(source, generated_at),
            "target_schema": catalog_to_old(target, generated_at),
            "table_diffs": table_diffs, "overall_impact": overall, "migration_strategy": STRATEGY_ADVICE[overall],
            "risk_assessment": _risk(diff), "estimated_downtime": DOWNTIME[overall],
            "rollback_complexity": ROLLBACK[overall],
            "dependency_changes": [_change(d) for d in diff.differences if "foreign_key" in d.kind],
            "generated_at": generated_at or datetime.datetime.now().isoformat(), "summary": summary,
            "emfix": diff.to_dict()}


def _rank(rating):
    from .schemadiff import RATINGS
    return RATINGS.index(rating) if rating in RATINGS else 0


def _change(d):
    return {"kind": d.kind, "table": d.table, "column": d.column, "description": d.what, "impact_level": d.rating,
            "reason": d.reason, "ddl": d.fix}


STRATEGY_ADVICE = {"COSMETIC": "apply at any time", "MINOR": "apply at any time; no existing row changes",
                   "MAJOR": "take a snapshot first; tables are rebuilt or checked against their rows",
                   "BREAKING": "take a snapshot first and plan a window: data is dropped or writes will fail"}
DOWNTIME = {"COSMETIC": "none", "MINOR": "seconds", "MAJOR": "minutes (tables are rewritten)",
            "BREAKING": "minutes or more (tables are rewritten; writers must stop)"}
ROLLBACK = {"COSMETIC": "LOW", "MINOR": "LOW", "MAJOR": "MEDIUM (restore the snapshot)",
            "BREAKING": "HIGH (dropped data comes back only from the snapshot)"}


def _risk(diff):
    worst = [d for d in diff.differences if d.rating in ("MAJOR", "BREAKING")]
    if not worst:
        return "low: nothing dropped, nothing rewritten"
    return "; ".join("%s %s (%s)" % (d.rating, d.what, d.reason) for d in worst[:10]) + (
        "; and %d more" % (len(worst) - 10) if len(worst) > 10 else "")


def catalogs_from_old_diff(data, origin="the diff file"):
    """(source, target) Catalogs out of an old diff file: its full schemas, else its tables' old/new."""
    try:
        data = _object(data, origin)
    except DamagedInputError as exc:
        raise DamagedInputError("%s: %s" % (origin, exc.message)) from None
    if isinstance(data.get("source_schema"), dict) and isinstance(data.get("target_schema"), dict):
        return (catalog_from_old(data["source_schema"], origin + " (source_schema)"),
                catalog_from_old(data["target_schema"], origin + " (target_schema)"))
    diffs = data.get("table_diffs")
    if not isinstance(diffs, list):
        raise DamagedInputError("%s is not a schema diff file (no source_schema/target_schema, no table_diffs)"
                                % origin, hint="write one with `emfix compare-schemas -s A.json -t B.json "
                                "--format json`")
    old = [t.get("old_table") for t in diffs if isinstance(t, dict) and isinstance(t.get("old_table"), dict)]
    new = [t.get("new_table") for t in diffs if isinstance(t, dict) and isinstance(t.get("new_table"), dict)]

    def engine(tables):  # only MySQL tables name a storage engine
        return "mysql" if any(isinstance(t.get("engine"), str) and t.get("engine") for t in tables) else "sqlite"
    return (catalog_from_old({"database_name": "source", "database_type": engine(old), "tables": old},
                             origin + " (old_table)"),
            catalog_from_old({"database_name": "target", "database_type": engine(new), "tables": new},
                             origin + " (new_table)"))
