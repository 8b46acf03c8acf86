"""emfix schema upgrade: bring a database to the Experiment Manager's current schema.

The plan is `schemadiff.diff_catalogs(the schema emfix init makes, the database)`, leaving alone what
the database has beyond it (extra tables, columns, indexes) and any type change that would round or
cut stored values (DOUBLE -> FLOAT, DATETIME(6) -> DATETIME, a shorter VARCHAR): those are reported,
not made. A verified snapshot comes first. On SQLite every statement, table rebuilds included, runs
in one transaction with row counts and a foreign_key_check before COMMIT, so a process killed
at any moment leaves the database as it was or upgraded. MySQL commits each DDL statement by itself:
a killed run leaves some statements done, and running it again finishes the rest.
"""

import collections
import dataclasses
import re
import time
from typing import List, Optional

from .backends import open_database
from .catalog import expected_catalog, normal_type, read_catalog
from .errors import DamagedInputError, SchemaError
from .schema import discover_graph, record_schema_version, require_experiment_manager
from .schemadiff import REBUILD_PREFIX, diff_catalogs

CURRENT_GENERATION = 2
LEFT_ALONE = ("extra_table", "extra_column", "extra_index", "extra_unique", "extra_foreign_key")


@dataclasses.dataclass
class UpgradeResult:
    database: str
    dry_run: bool
    generation_before: int
    generation_after: int
    changes: List[str]  # what differs from the current schema, one line each
    statements: List[str]  # the DDL, in the order it runs
    kept: List[str] = dataclasses.field(default_factory=list)  # differences left alone, and why
    snapshot_id: Optional[str] = None
    seconds: float = 0.0

    @property
    def up_to_date(self):
        return not self.statements


def _width(kind):
    """(family, size) for a type, to tell a change that loses nothing from one that narrows."""
    kind = normal_type(kind)
    match = re.match(r"(VARCHAR|CHAR)\((\d+)\)", kind)
    if match:
        return "text", int(match.group(2))
    sizes = {"TINYTEXT": 255, "TEXT": 65535, "JSON": 1 << 32, "MEDIUMTEXT": 1 << 24, "LONGTEXT": 1 << 32,
             "FLOAT": 4, "DOUBLE": 8, "REAL": 8, "DATETIME": 0, "INT": 4, "BIGINT": 8}
    match = re.match(r"DATETIME\((\d)\)", kind)
    if match:
        return "datetime", int(match.group(1))
    family = {"FLOAT": "float", "DOUBLE": "float", "REAL": "float", "DATETIME": "datetime", "INT": "int",
              "BIGINT": "int"}.get(kind, "text")
    return family, sizes.get(kind, 1 << 32)


def narrows(db, table, column, old, new):
    """Would changing the column's type change a value it holds?"""
    if db.dialect != "sqlite":
        (fa, sa), (fb, sb) = _width(old), _width(new)
        return fa != fb or sb < sa
    # A declared type is only an affinity on SQLite: the copy converts a value only when the affinity
    # changes and the value's storage class is one the new affinity converts.
    target = _affinity(new)
    if target == _affinity(old) or target == "BLOB":
        return False
    convertible = ("integer", "real") if target == "TEXT" else ("text",)
    return bool(db.scalar("SELECT count(*) FROM %s WHERE typeof(%s) IN (%s)" % (
        db.quote(table), db.quote(column), ", ".join("'%s'" % c for c in convertible))))


def _affinity(kind):
    """SQLite's rules (https://www.sqlite.org/datatype3.html#determination_of_column_affinity)."""
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


def _json_type(catalog):
    metric = catalog.table("METRIC")
    column = metric.column("per_label_val") if metric else None
    return "text" if column is not None and column.type in ("LONGTEXT", "TEXT", "MEDIUMTEXT") else "json"


def plan_upgrade(db):
    catalog = read_catalog(db, counts=False)
    target = expected_catalog(db.dialect, CURRENT_GENERATION, _json_type(catalog))
    diff = diff_catalogs(target, catalog)
    kept, blocking = [], set()
    for d in diff.differences:
        if d.kind in LEFT_ALONE:
            kept.append("%s (left as it is)" % d.what)
        elif d.kind == "column_type":
            column = d.column
            old = catalog.table(d.table).column(column).type
            new = target.table(d.table).column(column).type
            if narrows(db, d.table, column, old, new):
                kept.append("%s (left as it is: changing it would change stored values)" % d.what)
                blocking.add((d.table.lower(), column.lower()))
    for name, table in target.tables.items():  # keep the types that would narrow in the target
        for column in table.columns:
            if (name.lower(), column.name.lower()) in blocking:
                column.type = catalog.table(name).column(column.name).type
    if blocking:
        diff = diff_catalogs(target, catalog)
    changes = ["%s  [%s: %s]" % (d.what, d.rating, d.reason) for d in diff.differences if d.kind not in LEFT_ALONE]
    statements = [s for s in diff.statements if not s.startswith("--")]
    _refuse_nulls_in_required_columns(db, diff, target)
    return catalog, diff, changes, statements, kept


def _refuse_nulls_in_required_columns(db, diff, target):
    for d in diff.differences:
        if d.kind != "column_null" or not target.table(d.table).column(d.column).not_null:
            continue
        column = d.column
        count = int(db.scalar("SELECT count(*) FROM %s WHERE %s IS NULL" % (db.quote(d.table), db.quote(column))) or 0)
        if count:
            raise DamagedInputError(
                "%s rows of %s hold NULL in %s, which the Experiment Manager's schema declares NOT NULL; nothing was "
                "changed" % ("{:,}".format(count), d.table, column),
                hint="give those rows a value (or remove them with `emfix cleanup-orphans` if they are orphans), "
                     "then run the upgrade again")


def upgrade_schema(address, *, dry_run=False, snapshot=True, snapshot_dir=None, retry_policy=None, force=False,
                   progress=None):
    started = time.perf_counter()
    with open_database(address, readonly=dry_run and address.is_sqlite, retry_policy=retry_policy) as db:
        require_experiment_manager(discover_graph(db), address, force)
        catalog, _diff, changes, statements, kept = plan_upgrade(db)
        result = UpgradeResult(address.display(), dry_run, catalog.generation, catalog.generation, changes,
                               statements, kept)
        if dry_run or not statements:
            result.seconds = time.perf_counter() - started
            return result
        if snapshot:
            from .snapshot import create_snapshot, default_snapshot_dir
            if progress:
                progress.update("snapshot before schema upgrade", force=True)
            result.snapshot_id = create_snapshot(address, snapshot_dir or default_snapshot_dir(address),
                                                 description="before schema upgrade", verify=True,
                                                 retry_policy=retry_policy).id
        if db.dialect == "sqlite":
            declared = {(name.lower(), fk.table.lower()) for name, t in catalog.tables.items() for fk in t.foreign_keys}
            for (table, parent), count in sorted(_run_in_one_transaction(db, statements, declared).items()):
                result.kept.append("%s rows of %s break its newly declared key to %s: they were broken before "
                                   "(`emfix validate %s` lists them)" % (count, table, parent, address.target()))
        else:
            for statement in statements:
                db.execute(statement)
        result.generation_after = 2 if any(t.lower() == "batch" for t in db.tables()) else 1
        record_schema_version(db, "%d.%d" % (result.generation_after, int(time.time())), "emfix_schema_upgrade",
                              "emfix schema upgrade: %d statements" % len(statements))
    result.seconds = time.perf_counter() - started
    return result


def _run_in_one_transaction(db, statements, declared_before):
    """SQLite: DDL is transactional, so the whole upgrade commits at once or not at all.

    A table rebuild copies every row as it is; before COMMIT its row count and a foreign_key_check
    make sure it lost nothing and broke no link that was declared before. A key the upgrade declares
    for the first time may find links that were already broken: those are counted for the report
    (repairing them is cleanup-orphans' job), not blamed on the upgrade."""
    rebuilt = [m.group(1) for m in (re.match(r'ALTER TABLE "%s(.+)" RENAME TO' % REBUILD_PREFIX, s)
                                    for s in statements) if m]
    with db.transaction():
        rows = {t: db.scalar("SELECT count(*) FROM %s" % db.quote(t)) for t in rebuilt}
        before = _broken_links(db) if rebuilt else collections.Counter()
        for statement in statements:
            db.execute(statement)
        after = _broken_links(db) if rebuilt else collections.Counter()
        for table, count in rows.items():
            if db.scalar("SELECT count(*) FROM %s" % db.quote(table)) != count:
                raise SchemaError("rebuilding %s did not keep every row; nothing was changed" % table)
        for pair, count in after.items():
            if pair in declared_before and count > before.get(pair, 0):
                raise SchemaError("the upgrade would break %d links of %s to %s; nothing was changed" % (
                    count - before.get(pair, 0), pair[0], pair[1]), hint="run `emfix validate` to see them")
    return {pair: count for pair, count in after.items() if pair not in declared_before}


def _broken_links(db):
    """{(child, parent): broken links}, counted by SQLite (a damaged database can have millions)."""
    rows = db.query('SELECT "table", parent, count(*) FROM pragma_foreign_key_check GROUP BY "table", parent')
    return collections.Counter({(str(child).lower(), str(parent).lower()): int(n) for child, parent, n in rows})
