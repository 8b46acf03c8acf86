"""The Experiment Manager schema and the relation graph every capability walks.

The graph is discovered from the foreign keys a database declares (composite keys included).
A known table that declares none gets the built-in Experiment Manager relations, so a database
created without foreign keys is still checked completely. Unknown extra tables are kept.
"""

import dataclasses
import datetime
import hashlib
from typing import Dict, List, Tuple

from .errors import NotExperimentManagerError, SchemaError
from .foreignkey import ForeignKey


@dataclasses.dataclass(frozen=True)
class Column:
    """One column as the Experiment Manager declares it on MySQL (the SQLite text is derived)."""

    name: str
    type: str  # INT, VARCHAR(n), TEXT, DATETIME, FLOAT, JSON
    not_null: bool = False
    auto: bool = False  # INT PRIMARY KEY AUTO_INCREMENT
    unique: bool = False


@dataclasses.dataclass(frozen=True)
class TableDef:
    name: str
    columns: Tuple[Column, ...]
    primary_key: Tuple[str, ...]
    foreign_keys: Tuple[ForeignKey, ...] = ()  # source "builtin"
    generation: int = 1  # 2: only in databases with the BATCH tables

    @property
    def column_names(self):
        return tuple(c.name for c in self.columns)

    @property
    def auto_id(self):
        return any(c.auto for c in self.columns)


def _auto():
    return Column("id", "INT", auto=True)


def _int(name):
    return Column(name, "INT")


def _req(name, kind):
    return Column(name, kind, not_null=True)


def _fk(child, columns, parent, parent_columns=("id",)):
    return ForeignKey(child, tuple(columns), parent, tuple(parent_columns), source="builtin")


def _junction(name, left_cols, left_table, left_ref, right_col, right_table, generation=1):
    cols = tuple(_int(c) for c in left_cols) + (_int(right_col),)
    return TableDef(name, cols, tuple(left_cols) + (right_col,),
                    (_fk(name, left_cols, left_table, left_ref), _fk(name, (right_col,), right_table)), generation)


# ../shared/docs/experiment-manager-schema.md, "Columns": what the application itself creates.
EM_TABLES = (
    TableDef("SCHEMA_VERSION", (_auto(), Column("version", "VARCHAR(20)", not_null=True, unique=True),
                                _req("migration_name", "VARCHAR(255)"), Column("description", "TEXT"),
                                _req("applied_at", "DATETIME"), Column("rollback_script", "TEXT")), ("id",)),
    TableDef("EXPERIMENT", (_auto(), _req("title", "VARCHAR(255)"), Column("desc", "TEXT"),
                            _req("start_time", "DATETIME"), _req("update_time", "DATETIME")), ("id",)),
    TableDef("TRIAL", (_auto(), _req("name", "VARCHAR(255)"), _req("experiment_id", "INT"),
                       _req("start_time", "DATETIME"), _req("update_time", "DATETIME")), ("id",),
             (_fk("TRIAL", ("experiment_id",), "EXPERIMENT"),)),
    TableDef("TRIAL_RUN", (_auto(), _req("trial_id", "INT"), _req("status", "VARCHAR(50)"),
                           _req("start_time", "DATETIME"), _req("update_time", "DATETIME")), ("id",),
             (_fk("TRIAL_RUN", ("trial_id",), "TRIAL"),)),
    TableDef("RESULTS", (_int("trial_run_id"), _req("time", "DATETIME")), ("trial_run_id",),
             (_fk("RESULTS", ("trial_run_id",), "TRIAL_RUN"),)),
    TableDef("EPOCH", (_int("idx"), _int("trial_run_id"), _req("time", "DATETIME")),
             ("idx", "trial_run_id"), (_fk("EPOCH", ("trial_run_id",), "TRIAL_RUN"),)),
    TableDef("BATCH", (_int("idx"), _int("epoch_idx"), _int("trial_run_id"), _req("time", "DATETIME")),
             ("idx", "epoch_idx", "trial_run_id"),
             (_fk("BATCH", ("epoch_idx", "trial_run_id"), "EPOCH", ("idx", "trial_run_id")),), generation=2),
    TableDef("METRIC", (_auto(), _req("type", "VARCHAR(50)"), _req("total_val", "FLOAT"),
                        Column("per_label_val", "JSON")), ("id",)),
    TableDef("ARTIFACT", (_auto(), _req("type", "VARCHAR(50)"), _req("loc", "VARCHAR(255)")), ("id",)),
    _junction("EXPERIMENT_ARTIFACT", ("experiment_id",), "EXPERIMENT", ("id",), "artifact_id", "ARTIFACT"),
    _junction("TRIAL_ARTIFACT", ("trial_id",), "TRIAL", ("id",), "artifact_id", "ARTIFACT"),
    _junction("TRIAL_RUN_ARTIFACT", ("trial_run_id",), "TRIAL_RUN", ("id",), "artifact_id", "ARTIFACT"),
    _junction("RESULTS_METRIC", ("results_id",), "RESULTS", ("trial_run_id",), "metric_id", "METRIC"),
    _junction("RESULTS_ARTIFACT", ("results_id",), "RESULTS", ("trial_run_id",), "artifact_id", "ARTIFACT"),
    _junction("EPOCH_METRIC", ("epoch_idx", "epoch_trial_run_id"), "EPOCH", ("idx", "trial_run_id"),
              "metric_id", "METRIC"),
    _junction("EPOCH_ARTIFACT", ("epoch_idx", "epoch_trial_run_id"), "EPOCH", ("idx", "trial_run_id"),
              "artifact_id", "ARTIFACT"),
    _junction("BATCH_METRIC", ("batch_idx", "epoch_idx", "trial_run_id"), "BATCH", ("idx", "epoch_idx", "trial_run_id"),
              "metric_id", "METRIC", generation=2),
    _junction("BATCH_ARTIFACT", ("batch_idx", "epoch_idx", "trial_run_id"), "BATCH",
              ("idx", "epoch_idx", "trial_run_id"), "artifact_id", "ARTIFACT", generation=2),
)
EM_TABLE_BY_NAME = {t.name: t for t in EM_TABLES}
EM_TABLE_NAMES = tuple(t.name for t in EM_TABLES)
GENERATION_2_TABLES = tuple(t.name for t in EM_TABLES if t.generation == 2)

BUILTIN_RELATIONS = tuple(fk for t in EM_TABLES for fk in t.foreign_keys)


@dataclasses.dataclass
class SchemaGraph:
    tables: List[str]
    relations: List[ForeignKey]  # resolved: the parent as this database spells it
    primary_keys: Dict[str, Tuple[str, ...]]
    columns: Dict[str, List[str]]
    missing_tables: List[str]  # Experiment Manager tables this database lacks
    unresolved: List[ForeignKey]  # declared keys whose parent table does not exist

    @property
    def generation(self):
        return 2 if "BATCH" in self.tables else 1

    def relations_of(self, child):
        return [r for r in self.relations if r.child == child]

    def children_of(self, parent):
        return [r for r in self.relations if r.parent == parent and r.child != parent]

    def parent_first(self):
        """Tables ordered so every parent comes before its children (insert order)."""
        rank = {name: i for i, name in enumerate(EM_TABLE_NAMES)}
        pending = sorted(self.tables, key=lambda t: (rank.get(t, len(rank)), t))
        parents = {t: {r.parent for r in self.relations_of(t) if r.parent != t} for t in pending}
        order, placed = [], set()
        while pending:
            ready = [t for t in pending if parents[t] <= placed]
            if not ready:  # a cycle: place the rest in canonical order
                ready = pending[:1]
            for table in ready:
                order.append(table)
                placed.add(table)
            pending = [t for t in pending if t not in placed]
        return order

    def child_first(self):
        """The reverse: the order to delete in."""
        return list(reversed(self.parent_first()))

    def to_dict(self):
        return {"generation": self.generation, "tables": self.tables, "missing_tables": self.missing_tables,
                "relations": [r.to_dict() for r in self.relations],
                "unresolved": [r.to_dict() for r in self.unresolved]}


def table_named(name, existing):
    """The table of `existing` that `name` means: itself, else (MySQL may fold names to lower case) the one spelled
    otherwise; None when there is none. Itself first: on a case-sensitive server `metric` beside `METRIC` is another
    table (an outside tester: validate checked the links to METRIC against `metric`, and crashed)."""
    if name in existing:
        return name
    return next((t for t in existing if t.lower() == name.lower()), None)


def remember_spellings(backend):
    """Learn (Backend.stored) the names the database holds the application's tables under, for a command that
    writes to them before or without reading the whole catalog (init, upgrade, undo): on a server that tells
    letter cases apart and holds `metric`, each wrote to a METRIC that is not there, or made one beside it."""
    _spelled_as_the_application_does(backend, backend.tables(), {}, {}, {})


def _spelled_as_the_application_does(backend, tables, columns, primary_keys, foreign_keys):
    """The catalog with the Experiment Manager's tables named as the application names them (METRIC), where the
    database holds them otherwise: a MySQL server with lower_case_table_names 1 (Windows' default) stores METRIC as
    `metric` (and a dump of it loaded on Linux keeps `metric`), and validate said "metric JSON not checked: no METRIC
    table" (nor were the rest of the checks that name a table made). The backend remembers the name each is held
    under, and quotes it so (Backend.stored). A table the database holds in both spellings (a server that tells
    letter cases apart) keeps its own names: `metric` beside METRIC is another table."""
    ours = {name.lower(): name for name in EM_TABLE_NAMES}
    taken = set(tables)
    apart = backend.table_key("A") == "A"  # a server that tells `metric` from `METRIC`: each is its own table
    if apart and not all(c.lower() in taken for c in CORE_TABLES):
        backend.remember_stored_names({})  # (read anew each time: a table renamed since is held by its new name)
        return tables, columns, primary_keys, foreign_keys  # not the application's set held in lower case: a `metric`
        # or `trial` is the user's own (round 26: and a user's `Metric` beside the application's `metric` stays so)

    def spelled(name):
        wanted = ours.get(name.lower())
        if apart and name != name.lower():
            return name
        return wanted if wanted and wanted not in taken else name

    if all(spelled(t) == t for t in tables):
        backend.remember_stored_names({})
        return tables, columns, primary_keys, foreign_keys
    held = {spelled(t): t for t in tables if spelled(t) != t}
    if all(stored == name.lower() for name, stored in held.items()):  # the ones still to make, made the same way
        held.update({n: n.lower() for n in EM_TABLE_NAMES if n not in held and n not in taken})  # (init, upgrade)
    backend.remember_stored_names(held)  # what `quote` writes

    def with_names(fk, child):
        return dataclasses.replace(fk, child=child, parent=spelled(fk.parent))
    return ([spelled(t) for t in tables], {spelled(t): c for t, c in columns.items()},
            {spelled(t): k for t, k in primary_keys.items()},
            {spelled(t): [with_names(fk, spelled(t)) for fk in fks] for t, fks in foreign_keys.items()})


CORE_TABLES = ("EXPERIMENT", "TRIAL", "TRIAL_RUN")


def require_experiment_manager(graph, address, force=False, hint="check the path or URL; to work on it anyway, "
                                                                 "add --force"):
    """Refuse (unless `force`) to check or repair a database that lacks the Experiment Manager's core
    tables: a shop's `orders -> users` are not ours to delete or index."""
    present = {t.lower() for t in graph.tables}
    missing = [t for t in CORE_TABLES if t.lower() not in present]
    if missing and not force:
        raise NotExperimentManagerError(
            "%s is not an Experiment Manager database (no %s table); nothing was changed" % (
                address.display(), ", ".join(missing)), hint=hint)


OWN_TABLE_PREFIX = "_emfix"  # emfix's journals (_emfix_migration, _emfix_import): not the user's schema


def is_own_table(name):
    return name.lower().startswith(OWN_TABLE_PREFIX)


def users_graph(graph):
    """The graph without emfix's own journal tables: the schema as the user made it (what `schema` shows)."""
    return without_tables(graph, is_own_table)


def without_tables(graph, left_out):
    """The graph without the tables `left_out(name)` is true of, and their relations."""
    return dataclasses.replace(
        graph, tables=[t for t in graph.tables if not left_out(t)],
        relations=[r for r in graph.relations if not (left_out(r.child) or left_out(r.parent))],
        primary_keys={t: k for t, k in graph.primary_keys.items() if not left_out(t)},
        columns={t: c for t, c in graph.columns.items() if not left_out(t)})


def discover_graph(backend):
    tables, columns, primary_keys, foreign_keys = _spelled_as_the_application_does(
        backend, *backend.read_catalog(expected=EM_TABLE_NAMES))
    if not tables:
        raise NotExperimentManagerError("%s has no tables: it is not an Experiment Manager database"
                                        % backend.address.display(),
                          hint="check the path, or create the schema with `emfix init`", kind="no_tables")
    relations, unresolved = [], []
    declared = set()  # (child, its columns) of each declared foreign key
    for table in tables:
        for fk in foreign_keys[table]:
            parent = table_named(fk.parent, tables)
            rel = dataclasses.replace(fk, child=table, parent=parent or fk.parent, name="", source="declared")
            declared.add((table, frozenset(c.lower() for c in fk.child_columns)))
            (relations if parent else unresolved).append(rel)
    # The application's relations a table does not declare (all of them, or some: a parent made MyISAM, to which
    # InnoDB lets no foreign key point, lost its children's: an outside tester's orphans went unseen)
    for rel in BUILTIN_RELATIONS:
        child, parent = table_named(rel.child, tables), table_named(rel.parent, tables)
        if not child or (child, frozenset(c.lower() for c in rel.child_columns)) in declared:
            continue
        if not parent:
            unresolved.append(dataclasses.replace(rel, child=child))
            continue
        if set(rel.child_columns) <= set(columns[child]) and set(rel.parent_columns) <= set(columns[parent]):
            relations.append(dataclasses.replace(rel, child=child, parent=parent))
    present = {t.lower() for t in tables}
    generation = 2 if "batch" in present else 1
    missing = [t.name for t in EM_TABLES if t.name.lower() not in present and t.generation <= generation]
    relations = list(dict.fromkeys(relations))
    return SchemaGraph(tables, relations, primary_keys, columns, missing, unresolved)


# -- foreign keys without an index ---------------------------------------------------------------

INDEX_PREFIX = "emfix_idx_"
MYSQL_NAME_LIMIT = 64


@dataclasses.dataclass(frozen=True)
class MissingIndex:
    table: str
    columns: Tuple[str, ...]

    @property
    def name(self):
        name = INDEX_PREFIX + "_".join((self.table,) + self.columns).lower()
        if len(name) > MYSQL_NAME_LIMIT:
            digest = hashlib.sha256(name.encode()).hexdigest()[:8]
            name = name[:MYSQL_NAME_LIMIT - 9] + "_" + digest
        return name

    def describe(self):
        return "%s(%s)" % (self.table, ", ".join(self.columns))

    def to_dict(self):
        return {"table": self.table, "columns": list(self.columns), "name": self.name}


def covered(columns, index_columns):
    """An index serves lookups on `columns` when they are its leading columns, in any order."""
    return len(index_columns) >= len(columns) and set(index_columns[:len(columns)]) == set(columns)


def find_missing_indexes(db, graph):
    """Child sides of relations that no index (or primary key) leads with."""
    missing = []
    for relation in graph.relations:
        table, columns = relation.child, tuple(relation.child_columns)
        leads = [i.columns for i in db.indexes(table)] + [tuple(graph.primary_keys.get(table) or ())]
        gap = MissingIndex(table, columns)
        if not any(covered(columns, lead) for lead in leads) and gap not in missing:
            missing.append(gap)
    return missing


# -- creating the schema -------------------------------------------------------------------------

class Dialect:
    """Quoting without a connection (DDL written for a database that is only a file description)."""

    def __init__(self, dialect):
        self.dialect = dialect
        self.quote_char = "`" if dialect == "mysql" else '"'

    def quote(self, name):
        q = self.quote_char
        return q + str(name).replace(q, q + q) + q

    def quote_columns(self, columns, prefix=""):
        return ", ".join(prefix + self.quote(c) for c in columns)


SQLITE_TYPES = {"DATETIME": "TEXT", "JSON": "TEXT"}  # the application's SQLite spelling of its MySQL types


def column_type(dialect, column, json_type="json"):
    """The column's declared type on `dialect`, as the application writes it."""
    if dialect == "mysql":
        return "LONGTEXT" if column.type == "JSON" and json_type == "text" else column.type
    return SQLITE_TYPES.get(column.type, column.type)


def column_ddl(backend, column, json_type="json"):
    mysql = backend.dialect == "mysql"
    if column.auto:
        return "%s %s" % (backend.quote(column.name), "INT PRIMARY KEY AUTO_INCREMENT" if mysql
                          else "INTEGER PRIMARY KEY AUTOINCREMENT")
    text = "%s %s" % (backend.quote(column.name), column_type(backend.dialect, column, json_type))
    if column.not_null:
        text += " NOT NULL"
    if column.unique:
        text += " UNIQUE"
    return text


def table_ddl(backend, table, json_type="json"):
    """CREATE TABLE IF NOT EXISTS for one Experiment Manager table, exactly as the application writes it
    (in the backend's dialect)."""
    q = backend.quote
    parts = [column_ddl(backend, c, json_type) for c in table.columns]
    if not table.auto_id:
        parts.append("PRIMARY KEY (%s)" % backend.quote_columns(table.primary_key))
    for fk in table.foreign_keys:
        parts.append("FOREIGN KEY (%s) REFERENCES %s (%s)" % (
            backend.quote_columns(fk.child_columns), q(fk.parent), backend.quote_columns(fk.parent_columns)))
    suffix = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4" if backend.dialect == "mysql" else ""
    return "CREATE TABLE IF NOT EXISTS %s (\n  %s\n)%s" % (q(table.name), ",\n  ".join(parts), suffix)


JSON_TYPES = ("json", "text")


def create_schema(backend, generation=2, json_type="json", applied_at=None):
    """Create the Experiment Manager tables that do not exist yet; return the names created."""
    if generation not in (1, 2):
        raise SchemaError("unknown schema generation %r (1: without BATCH tables, 2: with)" % generation)
    if json_type not in JSON_TYPES:
        raise SchemaError("unknown JSON column type %r (json or text)" % json_type)
    # As the database tells names apart: on a case-sensitive MySQL a user's `metric` is not METRIC (an outside
    # tester: METRIC was not made, and RESULTS_METRIC's foreign key then failed, half the schema made)
    remember_spellings(backend)  # the tables held as `metric` are the application's (not made again beside them)
    existing = {backend.table_key(t) for t in backend.tables()}
    making = [t for t in EM_TABLES if t.generation <= generation and backend.table_key(t.name) not in existing]
    refuse_taken_key_names(backend, making)
    created = []
    with backend.transaction():
        for table in making:
            backend.execute(table_ddl(backend, table, json_type))
            created.append(table.name)
    # Outside the CREATE's transaction on purpose: MySQL commits each CREATE by itself, so a run killed
    # between the CREATE and the INSERT left an empty SCHEMA_VERSION; the row is written whenever missing.
    if backend.table_key("SCHEMA_VERSION") in existing | {backend.table_key(t) for t in created} and not backend.scalar(
            "SELECT count(*) FROM %s" % backend.quote("SCHEMA_VERSION")):
        record_schema_version(backend, "%d.0" % generation, "emfix_init",
                              "created by emfix init (generation %d)" % generation, applied_at)
    return created


def refuse_taken_key_names(backend, tables):
    """Refuse, before any is made, tables whose foreign keys would get a name another table's has (MySQL: InnoDB
    names them <table>_ibfk_<n> and compares those names whatever their letter case, so a user's `trial` holds
    TRIAL's): the CREATE of the first such table failed after the ones before it were made (an outside tester)."""
    wanted = {("%s_ibfk_%d" % (t.name, n)).lower(): t.name for t in tables for n in range(1, len(t.foreign_keys) + 1)}
    held = backend.foreign_key_names() if wanted else {}
    taken = [held[key] + (ours,) for key, ours in wanted.items() if key in held]
    if taken:
        name, owner, ours = taken[0]
        raise SchemaError("%s: the foreign key %s of table %s has the name %s's would get (the server compares those "
                          "names whatever their letter case); nothing was created" % (
                              backend.address.display(), name, owner, ours), kind="key_name_taken",
                          hint="rename that foreign key (ALTER TABLE `%s` DROP FOREIGN KEY `%s`, then ADD CONSTRAINT "
                               "with another name), or use another database" % (owner, name))


def record_schema_version(backend, version, name, description, applied_at=None):
    """A SCHEMA_VERSION row, as the application's own migrations write one (applied_at in UTC)."""
    q = backend.quote
    applied = (applied_at or datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)).isoformat(
        " ", "seconds")
    with backend.transaction():
        backend.execute("INSERT INTO %s (%s, %s, %s, %s) VALUES (?, ?, ?, ?)" % (
            q("SCHEMA_VERSION"), q("version"), q("migration_name"), q("description"), q("applied_at")),
            (version, name, description, applied))
