"""emfix schema upgrade: bring a database to the Experiment Manager's current schema.

The plan is `schemadiff.compare_catalogs(the schema emfix init makes, the database)`, leaving alone what
the database has beyond it (extra tables, columns, indexes) and any type change that would round or
cut stored values (DOUBLE -> FLOAT, DATETIME(6) -> DATETIME, a shorter VARCHAR): those are reported,
not made. The plan is a value: it is shown, confirmed, and exactly it is executed, on the connection
that made it, after checking under the write lock that the schema it was made from is still the
database's (and that no row has since come to need a change the plan did not count on).

A verified snapshot comes first. On SQLite every statement, table rebuilds (emfix.rebuild: extra
columns, indexes, triggers and the AUTOINCREMENT counter kept) and the SCHEMA_VERSION row included,
runs in one transaction with checks before COMMIT, so a process killed at any moment leaves the
database as it was or upgraded and recorded. MySQL commits each DDL statement by itself: a journal
row in `_emfix_upgrade` is written before the first one and removed with the SCHEMA_VERSION row's
INSERT, so a run killed anywhere is finished by running it again, the row included.
"""

import collections
import dataclasses
import functools
import hashlib
import json
import re
import time
from typing import List, Optional, Tuple

from . import rebuild
from .backends import open_database
from .catalog import expected_catalog, normal_type, read_catalog, sqlite_affinity
from .errors import Cancelled, DamagedInputError, EmfixError, SchemaError
from .schema import discover_graph, record_schema_version, remember_spellings, require_experiment_manager
from .schemadiff import compare_catalogs, describe, render

CURRENT_GENERATION = 2
LEFT_ALONE = ("extra_table", "extra_column", "extra_index", "extra_unique", "extra_foreign_key")
JOURNAL = "_emfix_upgrade"  # MySQL only: an upgrade begun whose SCHEMA_VERSION row is not written yet
CHANGED_SINCE = ("%s changed since the plan was made (%s); nothing was changed",
                 "run the upgrade again to see the plan for the database as it is now")


@dataclasses.dataclass
class UpgradeResult:
    """The plan (what `--dry-run` prints and the prompt shows), then, once executed, the result."""
    database: str
    dry_run: bool
    generation_before: int
    generation_after: int
    changes: List[str]  # what differs from the current schema, one line each
    statements: List[str]  # the DDL, in the order it runs
    kept: List[str] = dataclasses.field(default_factory=list)  # differences left alone, and why
    snapshot_id: Optional[str] = None
    seconds: float = 0.0
    pending_version: Optional[Tuple[str, str]] = None  # MySQL: an interrupted run's SCHEMA_VERSION row
    fingerprint: str = ""  # the schema the plan was made from
    checks: List[Tuple[str, str]] = dataclasses.field(default_factory=list)  # (what, count query): still 0?
    rebuilt: List[str] = dataclasses.field(default_factory=list)  # SQLite tables the plan rebuilds

    @property
    def up_to_date(self):
        return not self.statements and not self.pending_version

    def to_dict(self):
        internal = ("fingerprint", "checks", "rebuilt", "pending_version")
        data = {k: v for k, v in dataclasses.asdict(self).items() if k not in internal}
        data["up_to_date"] = self.up_to_date
        return data


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


def _narrowing_query(db, table, column, old, new):
    """SQLite: the count of values the copy into the new type would convert (None: it converts none)."""
    # A declared type is only an affinity on SQLite: the copy converts a value only when the affinity
    # changes and the value's storage class is one the new affinity converts.
    target = sqlite_affinity(new)
    if target == sqlite_affinity(old) or target == "BLOB":
        return None
    convertible = ("integer", "real") if target == "TEXT" else ("text",)
    return "SELECT count(*) FROM %s WHERE typeof(%s) IN (%s)" % (
        db.quote(table), db.quote(column), ", ".join("'%s'" % c for c in convertible))


def narrows(db, table, column, old, new):
    """Would changing the column's type change a value it holds?"""
    if db.dialect != "sqlite":
        (fa, sa), (fb, sb) = _width(old), _width(new)
        return fa != fb or sb < sa
    query = _narrowing_query(db, table, column, old, new)
    return bool(query and db.scalar(query))


def _json_type(catalog):
    metric = catalog.table("METRIC")
    column = metric.column("per_label_val") if metric else None
    return "text" if column is not None and column.type in ("LONGTEXT", "TEXT", "MEDIUMTEXT") else "json"


def _fingerprint(db, catalog):
    """What the plan depends on: every table's columns, keys and indexes, and on SQLite every object's SQL."""
    tables = {n: t for n, t in catalog.to_dict()["tables"].items() if n.lower() != JOURNAL}
    if db.dialect == "sqlite":
        tables["sqlite_master"] = db.query("SELECT type, name, tbl_name, sql FROM sqlite_master "
                                           "WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type, name")
    return hashlib.sha256(json.dumps(tables, sort_keys=True, default=str).encode()).hexdigest()


def plan_upgrade(db):
    """The plan, as data: the statements, what they change, what is left alone, and the preconditions.

    One comparison (`schemadiff.compare_catalogs`); a type change that would change stored values is
    taken out of it and the target keeps the database's type for that column, so no statement (a
    MODIFY COLUMN for another change, a rebuild) writes the narrower type either."""
    remember_spellings(db)
    catalog = read_catalog(db, counts=False)
    target = _as_held(db, expected_catalog(db.dialect, CURRENT_GENERATION, _json_type(catalog)))
    differences = compare_catalogs(target, catalog)
    kept, blocking, checks = [], set(), []
    for d in differences:
        if d.kind in LEFT_ALONE:
            kept.append("%s (left as it is)" % describe(d, target.dialect, catalog.dialect))
        elif d.kind == "column_type":
            if narrows(db, d.table, d.column, d.b.type, d.a.type):
                kept.append("%s (left as it is: changing it would change stored values)"
                            % describe(d, target.dialect, catalog.dialect))
                blocking.add((d.table.lower(), d.column.lower()))
            elif db.dialect == "sqlite" and _narrowing_query(db, d.table, d.column, d.b.type, d.a.type):
                checks.append(("a value of %s.%s the new type would convert" % (d.table, d.column),
                               _narrowing_query(db, d.table, d.column, d.b.type, d.a.type)))
    target = _keeping_types(target, catalog, blocking)
    differences = [d for d in differences
                   if not (d.kind == "column_type" and (d.table.lower(), d.column.lower()) in blocking)]
    rebuilt = []

    def rebuild_live(d, ta, tb, a_dialect, _found):
        rebuilt.append(tb.name)
        return rebuild.rebuild_statements(db, d, ta, tb, a_dialect)

    diff = render(differences, target, catalog,
                  rebuild_live if db.dialect == "sqlite" else functools.partial(_no_rebuild, db.dialect))
    changes = ["%s  [%s: %s]" % (c.what, c.rating, c.reason) for c in diff.differences if c.kind not in LEFT_ALONE]
    statements = [s for s in diff.statements if not s.startswith("--")]
    if db.dialect == "mysql":
        statements = [_keep_column_attributes(db, s) for s in statements]
    checks += _refuse_nulls_in_required_columns(db, differences, target)
    return UpgradeResult(db.address.display(), True, catalog.generation, catalog.generation, changes, statements,
                         kept, fingerprint=_fingerprint(db, catalog), checks=checks, rebuilt=rebuilt)


def _as_held(db, target):
    """The expected catalog with each table named as the database holds it (or, for one still to make, as it
    holds the others: `batch` beside `epoch`), so the statements name it so (round 25: a generation-1 database held
    in lower case got CREATE TABLE BATCH ... REFERENCES `EPOCH`, refused)."""
    tables = {}
    for name, table in target.tables.items():
        held = db.stored(name)
        tables[held] = dataclasses.replace(table, name=held, foreign_keys=[
            dataclasses.replace(fk, child=held, parent=db.stored(fk.parent)) for fk in table.foreign_keys])
    return dataclasses.replace(target, tables=tables)


def _keeping_types(target, catalog, columns):
    """The target with the database's own type for `columns` ({(table, column)} in lower case): a copy."""
    tables = {}
    for name, table in target.tables.items():
        tables[name] = dataclasses.replace(table, columns=[
            dataclasses.replace(c, type=catalog.table(name).column(c.name).type)
            if (name.lower(), c.name.lower()) in columns else c for c in table.columns])
    return dataclasses.replace(target, tables=tables)


MODIFY = re.compile(r"ALTER TABLE `((?:[^`]|``)+)` MODIFY COLUMN `((?:[^`]|``)+)` "
                    r"(.+?)((?: NOT NULL)?(?: DEFAULT .*)?)$", re.S)


def _keep_column_attributes(db, statement):
    """MySQL: MODIFY COLUMN redefines the whole column; the character set, collation and comment it had are
    written into the statement, so only what the plan names changes."""
    match = MODIFY.match(statement)
    if not match:
        return statement
    table, column, kind, rest = (match.group(1).replace("``", "`"), match.group(2).replace("``", "`"),
                                 match.group(3), match.group(4))
    row = db.query("SELECT CHARACTER_SET_NAME, COLLATION_NAME, COLUMN_COMMENT FROM information_schema.COLUMNS "
                   "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ?", (table, column))
    if not row:
        return statement
    charset, collation, comment = row[0]
    if charset and collation and re.search(r"CHAR|TEXT", kind.upper()) and "JSON" not in kind.upper():
        kind += " CHARACTER SET %s COLLATE %s" % (charset, collation)
    if comment:
        rest += " COMMENT '%s'" % str(comment).replace("\\", "\\\\").replace("'", "''")
    return statement[:match.start(3)] + kind + rest


def _no_rebuild(dialect, *_args):
    raise AssertionError("no table rebuild on %s" % dialect)  # MySQL changes a table with ALTER TABLE


def _refuse_nulls_in_required_columns(db, differences, target):
    checks = []
    for d in differences:
        if d.kind != "column_null" or not target.table(d.table).column(d.column).not_null:
            continue
        column = d.column
        query = "SELECT count(*) FROM %s WHERE %s IS NULL" % (db.quote(d.table), db.quote(column))
        count = int(db.scalar(query) or 0)
        if count:
            raise DamagedInputError(
                "%s rows of %s hold NULL in %s, which the Experiment Manager's schema declares NOT NULL; nothing was "
                "changed" % ("{:,}".format(count), d.table, column),
                hint="give those rows a value (or remove them with `emfix cleanup-orphans` if they are orphans), "
                     "then run the upgrade again")
        checks.append(("a NULL in %s.%s" % (d.table, column), query))
    return checks


def _check_plan_still_holds(db, plan):
    """Under the write lock (SQLite) or just before the first DDL (MySQL): the plan is the database's."""
    if _fingerprint(db, read_catalog(db, counts=False)) != plan.fingerprint:
        raise SchemaError(CHANGED_SINCE[0] % (plan.database, "its schema"), hint=CHANGED_SINCE[1])
    for what, query in plan.checks:
        if int(db.scalar(query) or 0):
            raise SchemaError(CHANGED_SINCE[0] % (plan.database, "it now holds %s" % what), hint=CHANGED_SINCE[1])


def _pending_version(db):
    """MySQL: the SCHEMA_VERSION row an interrupted upgrade left to write (version, description), if any."""
    if db.dialect == "sqlite" or JOURNAL not in {t.lower() for t in db.tables()}:
        return None
    row = db.query("SELECT version, description FROM %s ORDER BY version DESC LIMIT 1" % db.quote(JOURNAL))
    return (str(row[0][0]), str(row[0][1])) if row else None


def upgrade_schema(address, *, dry_run=False, confirm=None, snapshot=True, snapshot_dir=None, retry_policy=None,
                   force=False, progress=None, before_commit=None):
    """Plan, show through `confirm(plan)` (False: Cancelled), then execute that plan; returns it as done.

    `before_commit()` runs after every statement and before the SCHEMA_VERSION row (for crash tests)."""
    started = time.perf_counter()
    with open_database(address, readonly=dry_run and address.is_sqlite, retry_policy=retry_policy) as db:
        require_experiment_manager(discover_graph(db), address, force)
        plan = plan_upgrade(db)
        plan.pending_version = _pending_version(db)
        if plan.pending_version:
            plan.changes.append("the SCHEMA_VERSION row (%s) of an upgrade interrupted before writing it"
                                % plan.pending_version[0])
        journal_left = db.dialect != "sqlite" and JOURNAL in {t.lower() for t in db.tables()}
        if not dry_run and journal_left and not plan.pending_version:
            db.execute("DROP TABLE %s" % db.quote(JOURNAL))  # emptied by a run killed just after its last step
        if dry_run or plan.up_to_date:
            plan.dry_run = dry_run
            plan.seconds = time.perf_counter() - started
            return plan
        if confirm is not None and not confirm(plan):
            raise Cancelled("cancelled; nothing was changed")
        plan.dry_run = False
        if snapshot:
            from .snapshot import safety_snapshot
            plan.snapshot_id = safety_snapshot(address, snapshot_dir, "schema upgrade", retry_policy=retry_policy,
                                               progress=progress)
        (_execute_sqlite if db.dialect == "sqlite" else _execute_mysql)(db, plan, address, before_commit)
    plan.seconds = time.perf_counter() - started
    return plan


def _generation(db):
    return 2 if any(t.lower() == "batch" for t in db.tables()) else 1


def _version_row(plan):
    """The SCHEMA_VERSION row's version and description: the plan makes the current generation."""
    return "%d.%d" % (CURRENT_GENERATION, int(time.time())), "emfix schema upgrade: %d statements" % len(
        plan.statements)


def _execute_sqlite(db, plan, address, before_commit):
    """SQLite: DDL is transactional, so the whole upgrade and its SCHEMA_VERSION row commit at once or not at all.

    A table rebuild keeps every row, column, index, trigger, view and counter (`rebuild.check_rebuilds`),
    and a foreign_key_check makes sure it broke no link that was declared before. A key the upgrade
    declares for the first time may find links that were already broken: those are counted for the
    report (repairing them is cleanup-orphans' job), not blamed on the upgrade."""
    declared = {(t.lower(), fk.parent.lower()) for t in db.tables() for fk in db.foreign_keys(t)}
    with rebuild.rebuild_session(db), db.transaction():
        _check_plan_still_holds(db, plan)
        kept = rebuild.remember(db, plan.rebuilt)
        before = _broken_links(db) if plan.rebuilt else collections.Counter()
        _run_statements(db, plan.statements, "nothing was changed")
        rebuild.check_rebuilds(db, kept)
        after = _broken_links(db) if plan.rebuilt else collections.Counter()
        for pair, count in after.items():
            if pair in declared and count > before.get(pair, 0):
                raise SchemaError("the upgrade would break %d links of %s to %s; nothing was changed" % (
                    count - before.get(pair, 0), pair[0], pair[1]), hint="run `emfix validate` to see them")
        if before_commit:
            before_commit()
        plan.generation_after = _generation(db)
        version, description = _version_row(plan)
        record_schema_version(db, version, "emfix_schema_upgrade", description)
    for (table, parent), count in sorted((p, c) for p, c in after.items() if p not in declared):
        plan.kept.append("%s rows of %s break its newly declared key to %s: they were broken before "
                         "(`emfix validate %s` lists them)" % (count, table, parent, address.target()))


def _execute_mysql(db, plan, _address, before_commit):
    """MySQL: each DDL statement commits by itself. The journal row goes first and leaves in the same
    transaction as the SCHEMA_VERSION row's INSERT, so a rerun after a kill anywhere writes the row."""
    q = db.quote
    if plan.statements:
        _check_plan_still_holds(db, plan)
    if not plan.pending_version:
        db.execute("CREATE TABLE IF NOT EXISTS %s (version VARCHAR(20) NOT NULL PRIMARY KEY, description TEXT)"
                   % q(JOURNAL))
        with db.transaction():
            db.execute("INSERT INTO %s (version, description) VALUES (?, ?)" % q(JOURNAL), _version_row(plan))
        plan.pending_version = _pending_version(db)
    _run_statements(db, plan.statements, "the statements before it are done; running the upgrade again after "
                                         "fixing the cause finishes it")
    if before_commit:
        before_commit()
    version, description = plan.pending_version
    plan.generation_after = _generation(db)
    with db.transaction():
        record_schema_version(db, version, "emfix_schema_upgrade", description)
        db.execute("DELETE FROM %s" % q(JOURNAL))
    db.execute("DROP TABLE IF EXISTS %s" % q(JOURNAL))


def _run_statements(db, statements, outcome):
    for statement in statements:
        try:
            db.execute(statement)
        except EmfixError:
            raise
        except Exception as exc:  # noqa: BLE001 (the engine's own error, whatever its class: said in one line)
            raise SchemaError("the upgrade stopped at `%s`: %s; %s" % (statement.split("\n")[0][:80], exc, outcome),
                              hint="`emfix schema upgrade --dry-run` prints every statement") from None


def _broken_links(db):
    """{(child, parent): broken links}, counted by SQLite (a damaged database can have millions)."""
    rows = db.query('SELECT "table", parent, count(*) FROM pragma_foreign_key_check GROUP BY "table", parent')
    return collections.Counter({(str(child).lower(), str(parent).lower()): int(n) for child, parent, n in rows})
