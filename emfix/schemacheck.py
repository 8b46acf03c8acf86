"""Checks on a schema as declared (a `catalog.Catalog`: a live database or a schema file): how complex
it is, which foreign keys no index serves, which tables have no primary key.

One set of checks with two spellings: `emfix doctor` shows them beside its other findings, and the
old tool's `analyze-schema` writes them in its report layout.
"""

import dataclasses
from typing import List

from .schema import EM_TABLE_BY_NAME, covered

OK, WARN = "OK", "WARN"


@dataclasses.dataclass
class SchemaFinding:
    check: str  # complexity, indexes, primary_keys
    level: str
    message: str
    details: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class SchemaAnalysis:
    database: str
    table_count: int
    column_count: int
    index_count: int
    foreign_key_count: int
    complexity_score: float
    missing_indexes: List[str]
    without_primary_key: List[str]
    findings: List[SchemaFinding]
    tables: List[dict]


def relations_of(catalog):
    """(child, columns) of every foreign key: declared ones, and the Experiment Manager's own for its
    tables that declare none (the old tool created them without)."""
    found = []
    for name, table in sorted(catalog.tables.items()):
        keys = [tuple(f.child_columns) for f in table.foreign_keys]
        known = EM_TABLE_BY_NAME.get(name.upper())
        if not keys and known:
            keys = [f.child_columns for f in known.foreign_keys if catalog.table(f.parent)]
        found += [(name, cols) for cols in keys]
    return found


def find_unindexed_keys(catalog):
    missing = []
    for name, columns in relations_of(catalog):
        table = catalog.tables[name]
        leads = [tuple(i.columns) for i in table.indexes] + [tuple(u) for u in table.unique] + [table.primary_key]
        if not any(covered(columns, lead) for lead in leads):
            text = "%s(%s)" % (name, ", ".join(columns))
            if text not in missing:
                missing.append(text)
    return missing


def complexity(tables, columns, keys, indexes):
    """0-10: more tables, wider tables, denser relations and more indexes per column score higher."""
    per_table = columns / max(tables, 1)
    score = (min(tables / 50.0, 1.0) * 2 + min(per_table / 20.0, 1.0) * 2 + min(keys / max(tables, 1) / 5.0, 1.0) * 3
             + min(indexes / max(columns, 1) / 0.3, 1.0) * 3)
    return round(score, 1)


def analyze_catalog(catalog):
    tables = catalog.tables
    columns = sum(len(t.columns) for t in tables.values())
    indexes = sum(len(t.indexes) + len(t.unique) + (1 if t.primary_key else 0) for t in tables.values())
    keys = sum(len(t.foreign_keys) for t in tables.values())
    score = complexity(len(tables), columns, keys, indexes)
    missing = find_unindexed_keys(catalog)
    keyless = sorted(name for name, t in tables.items() if not t.primary_key)
    findings = [SchemaFinding("complexity", OK, "complexity %.1f/10: %d tables, %d columns, %d indexes, %d foreign "
                                                "keys" % (score, len(tables), columns, indexes, keys),
                              {"score": score})]
    findings.append(SchemaFinding("indexes", WARN, "%d foreign key%s no index, so lookups by parent scan the "
                                                   "table: %s" % (len(missing), " has" if len(missing) == 1
                                                                  else "s have", ", ".join(missing)),
                                  {"missing": missing}) if missing else
                    SchemaFinding("indexes", OK, "every foreign-key column has an index"))
    findings.append(SchemaFinding("primary_keys", WARN, "%d table%s no primary key (rows cannot be named "
                                                        "exactly): %s" % (len(keyless), " has" if len(keyless) == 1
                                                                          else "s have", ", ".join(keyless)),
                                  {"tables": keyless}) if keyless else
                    SchemaFinding("primary_keys", OK, "every table has a primary key"))
    per_table = [{"table": name, "columns": len(t.columns), "indexes": len(t.indexes) + len(t.unique),
                  "foreign_keys": len(t.foreign_keys), "primary_key": list(t.primary_key), "rows": t.rows}
                 for name, t in sorted(tables.items())]
    return SchemaAnalysis(catalog.database, len(tables), columns, indexes, keys, score, missing, keyless, findings,
                          per_table)


def old_report(analysis):
    """The old `analyze-schema` report's keys, with emfix's findings beside them."""
    recommendations = []
    if analysis.missing_indexes:
        recommendations.append("add indexes on the foreign-key columns: emfix optimize DB")
    if not analysis.foreign_key_count:
        recommendations.append("declare foreign keys: emfix validate checks the Experiment Manager's own either way")
    issues = ["Table '%s' has no primary key" % t for t in analysis.without_primary_key]
    issues += ["Foreign key %s has no index" % m for m in analysis.missing_indexes]
    return {"table_count": analysis.table_count, "column_count": analysis.column_count,
            "index_count": analysis.index_count, "foreign_key_count": analysis.foreign_key_count,
            "complexity_score": analysis.complexity_score, "recommendations": recommendations,
            "potential_issues": issues, "table_analysis": analysis.tables, "database": analysis.database,
            "findings": [dataclasses.asdict(f) for f in analysis.findings]}
