"""The Experiment Manager schema and the relation graph every capability walks.

The graph is discovered from the foreign keys a database declares (composite keys included).
A known table that declares none gets the built-in Experiment Manager relations, so a database
created without foreign keys is still checked completely. Unknown extra tables are kept.
"""

import dataclasses
import hashlib
from typing import Dict, List, Tuple

from .errors import NotExperimentManagerError, SchemaError


@dataclasses.dataclass(frozen=True)
class Relation:
    """child(child_columns) references parent(parent_columns)."""

    child: str
    child_columns: Tuple[str, ...]
    parent: str
    parent_columns: Tuple[str, ...]
    source: str = "declared"  # or "builtin"

    def describe(self):
        return "%s(%s) -> %s(%s)" % (self.child, ", ".join(self.child_columns),
                                     self.parent, ", ".join(self.parent_columns))


@dataclasses.dataclass(frozen=True)
class TableDef:
    name: str
    columns: Tuple[Tuple[str, str], ...]  # (name, neutral type)
    primary_key: Tuple[str, ...]
    foreign_keys: Tuple[Tuple[Tuple[str, ...], str, Tuple[str, ...]], ...] = ()
    generation: int = 1  # 2: only in databases with the BATCH tables


def _junction(name, left_cols, left_table, left_ref, right_col, right_table, generation=1):
    cols = tuple((c, "int") for c in left_cols) + ((right_col, "int"),)
    return TableDef(name, cols, tuple(left_cols) + (right_col,),
                    ((tuple(left_cols), left_table, tuple(left_ref)), ((right_col,), right_table, ("id",))),
                    generation)


EM_TABLES = (
    TableDef("SCHEMA_VERSION", (("id", "autoid"), ("version", "str50"), ("migration_name", "str255"),
                                ("description", "text"), ("applied_at", "datetime"), ("rollback_script", "text")),
             ("id",)),
    TableDef("EXPERIMENT", (("id", "autoid"), ("title", "str255"), ("desc", "text"),
                            ("start_time", "datetime"), ("update_time", "datetime")), ("id",)),
    TableDef("TRIAL", (("id", "autoid"), ("name", "str255"), ("experiment_id", "int"),
                       ("start_time", "datetime"), ("update_time", "datetime")), ("id",),
             ((("experiment_id",), "EXPERIMENT", ("id",)),)),
    TableDef("TRIAL_RUN", (("id", "autoid"), ("trial_id", "int"), ("status", "str50"),
                           ("start_time", "datetime"), ("update_time", "datetime")), ("id",),
             ((("trial_id",), "TRIAL", ("id",)),)),
    TableDef("RESULTS", (("trial_run_id", "intkey"), ("time", "datetime")), ("trial_run_id",),
             ((("trial_run_id",), "TRIAL_RUN", ("id",)),)),
    TableDef("EPOCH", (("idx", "intkey"), ("trial_run_id", "intkey"), ("time", "datetime")),
             ("idx", "trial_run_id"), ((("trial_run_id",), "TRIAL_RUN", ("id",)),)),
    TableDef("BATCH", (("idx", "intkey"), ("epoch_idx", "intkey"), ("trial_run_id", "intkey"), ("time", "datetime")),
             ("idx", "epoch_idx", "trial_run_id"),
             ((("epoch_idx", "trial_run_id"), "EPOCH", ("idx", "trial_run_id")),), generation=2),
    TableDef("METRIC", (("id", "autoid"), ("type", "str255"), ("total_val", "float"), ("per_label_val", "json")),
             ("id",)),
    TableDef("ARTIFACT", (("id", "autoid"), ("type", "str255"), ("loc", "str1024")), ("id",)),
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
EM_TABLE_NAMES = tuple(t.name for t in EM_TABLES)
GENERATION_2_TABLES = tuple(t.name for t in EM_TABLES if t.generation == 2)

BUILTIN_RELATIONS = tuple(
    Relation(t.name, cols, parent, ref, "builtin") for t in EM_TABLES for cols, parent, ref in t.foreign_keys)


@dataclasses.dataclass
class SchemaGraph:
    tables: List[str]
    relations: List[Relation]
    primary_keys: Dict[str, Tuple[str, ...]]
    columns: Dict[str, List[str]]
    missing_tables: List[str]  # Experiment Manager tables this database lacks
    unresolved: List[Relation]  # declared keys whose parent table does not exist

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
                "relations": [dataclasses.asdict(r) for r in self.relations],
                "unresolved": [dataclasses.asdict(r) for r in self.unresolved]}


def _canonical(name, existing):
    """The table as the database spells it (MySQL may lower-case names)."""
    lowered = {t.lower(): t for t in existing}
    return lowered.get(name.lower())


CORE_TABLES = ("EXPERIMENT", "TRIAL", "TRIAL_RUN")


def require_experiment_manager(graph, address, force=False):
    """Refuse (unless `force`) to check or repair a database that lacks the Experiment Manager's core
    tables: a shop's `orders -> users` are not ours to delete or index."""
    present = {t.lower() for t in graph.tables}
    missing = [t for t in CORE_TABLES if t.lower() not in present]
    if missing and not force:
        raise NotExperimentManagerError(
            "%s is not an Experiment Manager database (no %s table); nothing was changed" % (
                address.display(), ", ".join(missing)),
            hint="check the path or URL; to work on it anyway, add --force")


def discover_graph(backend):
    tables = backend.tables()
    if not tables:
        raise NotExperimentManagerError("%s has no tables: it is not an Experiment Manager database"
                                        % backend.address.display(),
                          hint="check the path, or create the schema with `emfix init`")
    columns = {t: backend.columns(t) for t in tables}
    primary_keys = {t: backend.primary_key(t) for t in tables}
    relations, unresolved = [], []
    declaring = set()
    for table in tables:
        for fk in backend.foreign_keys(table):
            parent = _canonical(fk.ref_table, tables)
            rel = Relation(table, tuple(fk.columns), parent or fk.ref_table, tuple(fk.ref_columns), "declared")
            declaring.add(table)
            (relations if parent else unresolved).append(rel)
    for rel in BUILTIN_RELATIONS:
        child, parent = _canonical(rel.child, tables), _canonical(rel.parent, tables)
        if not child or child in declaring:
            continue
        if not parent:
            unresolved.append(Relation(child, rel.child_columns, rel.parent, rel.parent_columns, "builtin"))
            continue
        if set(rel.child_columns) <= set(columns[child]) and set(rel.parent_columns) <= set(columns[parent]):
            relations.append(Relation(child, rel.child_columns, parent, rel.parent_columns, "builtin"))
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

SQLITE_TYPES = {"autoid": "INTEGER PRIMARY KEY AUTOINCREMENT", "int": "INTEGER", "intkey": "INTEGER",
                "str50": "VARCHAR(50)", "str255": "VARCHAR(255)", "str1024": "VARCHAR(1024)", "text": "TEXT",
                "datetime": "DATETIME", "float": "FLOAT", "json": "TEXT"}
MYSQL_TYPES = {"autoid": "INT NOT NULL AUTO_INCREMENT", "int": "INT", "intkey": "INT NOT NULL",
               "str50": "VARCHAR(50)", "str255": "VARCHAR(255)", "str1024": "VARCHAR(1024)", "text": "TEXT",
               "datetime": "DATETIME(6)", "float": "DOUBLE", "json": "JSON"}
JSON_TYPES = ("json", "text")


def table_ddl(backend, table, json_type="json"):
    """CREATE TABLE IF NOT EXISTS for one Experiment Manager table in the backend's dialect."""
    q = backend.quote
    mysql = backend.dialect == "mysql"
    types = dict(MYSQL_TYPES if mysql else SQLITE_TYPES)
    if mysql and json_type == "text":
        types["json"] = "LONGTEXT"
    parts = []
    for name, kind in table.columns:
        if mysql and name in table.primary_key and kind == "int":
            kind = "intkey"
        parts.append("%s %s" % (q(name), types[kind]))
    autoid = any(kind == "autoid" for _, kind in table.columns)
    if mysql or not autoid:
        parts.append("PRIMARY KEY (%s)" % backend.quote_columns(table.primary_key))
    for cols, parent, ref in table.foreign_keys:
        parts.append("FOREIGN KEY (%s) REFERENCES %s (%s)" % (
            backend.quote_columns(cols), q(parent), backend.quote_columns(ref)))
    suffix = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4" if mysql else ""
    return "CREATE TABLE IF NOT EXISTS %s (\n  %s\n)%s" % (q(table.name), ",\n  ".join(parts), suffix)


def create_schema(backend, generation=2, json_type="json"):
    """Create the Experiment Manager tables that do not exist yet; return the names created."""
    if generation not in (1, 2):
        raise SchemaError("unknown schema generation %r (1: without BATCH tables, 2: with)" % generation)
    if json_type not in JSON_TYPES:
        raise SchemaError("unknown JSON column type %r (json or text)" % json_type)
    existing = {t.lower() for t in backend.tables()}
    created = []
    with backend.transaction():
        for table in EM_TABLES:
            if table.generation > generation or table.name.lower() in existing:
                continue
            backend.execute(table_ddl(backend, table, json_type))
            created.append(table.name)
    # Outside the CREATE's transaction on purpose: MySQL commits each CREATE by itself, so a run killed
    # between the CREATE and the INSERT left an empty SCHEMA_VERSION; the row is written whenever missing.
    if "schema_version" in existing | {t.lower() for t in created} and not backend.scalar(
            "SELECT count(*) FROM %s" % backend.quote("SCHEMA_VERSION")):
        with backend.transaction():
            backend.execute("INSERT INTO %s (%s, %s, %s) VALUES (?, ?, ?)" % (
                backend.quote("SCHEMA_VERSION"), backend.quote("version"), backend.quote("migration_name"),
                backend.quote("description")),
                ("%d.0" % generation, "emfix_init", "created by emfix init (generation %d)" % generation))
    return created
