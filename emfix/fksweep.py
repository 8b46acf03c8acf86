"""The foreign-key sweep: every relation checked in the database, parents first, by set-based anti-joins.

Each relation is one NULL-aware anti-join that writes only the offending rows into a temporary table,
so counts are SQL counts and only capped examples reach Python. Tables are swept parents first: a
doomed parent's keys are known before its children are scanned, which is how rows "orphaned through
a parent" are counted in the same pass. validate reports what it finds; cleanup-orphans removes it;
optimize times it.
"""

import dataclasses
import sqlite3
import time
from typing import Dict, List

from .fkmerge import (
    exact_bound,
    in_rowid_range,
    merge_order,
    rowid_ranges,
    sweep_by_merge,
    unreferenced_by_merge,
    without_rowid,
)
from .foreignkey import ForeignKey
from .progress import NoProgress

TMP = "emfix_tmp_"  # prefix of this run's temporary tables; they vanish with the connection
KINDS = {"d": "missing_parent", "c": "orphaned_parent", "n": "null_key"}
UNREFERENCED_TABLES = ("METRIC", "ARTIFACT")


@dataclasses.dataclass
class Violation:
    """One offending row: which key, which values, which parent it misses, and the row's own key."""

    table: str
    kind: str  # missing_parent | orphaned_parent | null_key
    columns: List[str]
    values: list
    parent_table: str
    parent_columns: List[str]
    key: Dict[str, object]
    parent_recreatable: bool = False  # the missing parent's own parent exists (old-API links: real data)

    def to_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass
class RelationCheck:
    relation: ForeignKey
    violations: int = 0  # every key column set, parent row missing
    recreatable: int = 0  # of those, the parent row could be recreated under an existing grandparent
    cascade: int = 0  # the parent row exists but is itself doomed
    null_keys: int = 0  # a key column is NULL: allowed, reported as a warning
    examples: List[Violation] = dataclasses.field(default_factory=list)
    cascade_examples: List[Violation] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self):
        r = self.relation
        return {"table": r.child, "columns": list(r.child_columns), "parent_table": r.parent,
                "parent_columns": list(r.parent_columns), "source": r.source, "violations": self.violations,
                "parent_recreatable": self.recreatable, "orphaned_through_parent": self.cascade,
                "null_keys": self.null_keys, "seconds": round(self.seconds, 4)}


@dataclasses.dataclass
class TableCheck:
    """Distinct rows per table: a row that breaks two relations counts once."""

    table: str
    violating_rows: int = 0
    cascade_rows: int = 0  # no broken key of its own, but under a doomed parent
    null_key_rows: int = 0


@dataclasses.dataclass
class Unreferenced:
    table: str
    count: int
    examples: list


# -- planning --------------------------------------------------------------------------------------

@dataclasses.dataclass
class TablePlan:
    table: str
    number: int
    identity: List[str]  # SQL expressions naming a row: rowid, or the primary key, or every kept column
    identity_names: List[str]
    columns: List[str]  # kept for each offending row: primary key, foreign keys, keys children use
    relations: List[ForeignKey]
    key_sets: List[tuple]  # column tuples children reference (each gets a doomed-keys table)

    @property
    def rows_table(self):
        return "%srows_%d" % (TMP, self.number)

    def doomed_table(self, key_columns):
        return "%sdoomed_%d_%d" % (TMP, self.number, self.key_sets.index(tuple(key_columns)))

    def value_name(self, column):
        return "v%d" % self.columns.index(column)

    @property
    def identity_list(self):
        """The identity's columns in the scratch tables: "i0, i1, ..."."""
        return ", ".join("i%d" % n for n in range(len(self.identity)))

    def same_identity(self, alias, other):
        """SQL: the scratch rows `alias` and `other` name the same row."""
        return " AND ".join("%s.i%d = %s.i%d" % (alias, n, other, n) for n in range(len(self.identity)))


def plan_tables(db, graph):
    plans = []
    for number, table in enumerate(graph.parent_first()):
        relations = graph.relations_of(table)
        key_sets = list(dict.fromkeys(tuple(r.parent_columns) for r in graph.children_of(table)))
        if not relations and not key_sets:
            continue
        pk = list(graph.primary_keys.get(table) or ())
        columns = list(dict.fromkeys(pk + [c for r in relations for c in r.child_columns]
                                     + [c for keys in key_sets for c in keys]))
        if not without_rowid(db, table):
            identity, names = ["rowid"], ["rowid"]
        else:
            names = pk or columns
            identity = [db.quote(c) for c in names]
        plans.append(TablePlan(table, number, identity, names, columns, relations, key_sets))
    return plans


def _index_hint(db, plan, relation, indexes):
    """Scan the child in the parent's key order when an index allows it.

    Probing the parent in its own key order turns random page reads into sequential ones (on
    InnoDB, BATCH_METRIC -> METRIC drops from 26 s to 2.7 s). On SQLite, for a relation the child's
    indexes do not follow, NOT INDEXED keeps the scan in table order (insertion order, which tracks
    the parents' order) instead of a covering index that does not.
    """
    width = len(relation.child_columns)
    if db.dialect == "mysql":
        for index in indexes:
            if set(index.columns[:width]) == set(relation.child_columns):
                return " FORCE INDEX (%s)" % db.quote(index.name)
        return ""
    needed = set(plan.columns) | ({"rowid"} if plan.identity == ["rowid"] else set(plan.identity_names))
    for index in indexes:
        lead = index.columns[:width]
        if set(lead) != set(relation.child_columns) or not needed <= set(index.columns) | {"rowid"}:
            continue
        pairs = dict(zip(relation.child_columns, relation.parent_columns))
        parent_order = tuple(pairs[c] for c in lead)
        parent_keys = [i.columns[:width] for i in indexes_of(db, relation.parent)]
        if width == 1 or parent_order in parent_keys:
            return " INDEXED BY %s" % db.quote(index.name)
    return " NOT INDEXED"


def indexes_of(db, table):
    return db.indexes_cached(table)


def ancestor_of(graph, relation):
    """(grandparent, child columns, grandparent columns) when the missing parent could be recreated.

    RESULTS_METRIC.results_id -> RESULTS.trial_run_id -> TRIAL_RUN.id: if the run exists, the link is
    real data whose RESULTS row was never written (the old API did that), not garbage.
    """
    pairs = dict(zip(relation.parent_columns, relation.child_columns))
    for up in graph.relations_of(relation.parent):
        if up.parent != relation.parent and set(up.child_columns) <= set(pairs):
            return up.parent, [pairs[c] for c in up.child_columns], list(up.parent_columns)
    return None


# -- the foreign-key sweep --------------------------------------------------------------------------

def _select_list(db, plan):
    ids = ["c.%s AS i%d" % (expr, n) for n, expr in enumerate(plan.identity)]
    vals = ["c.%s AS v%d" % (db.quote(col), n) for n, col in enumerate(plan.columns)]
    return ids + vals


def _parent_key_is_unique(db, graph, relation):
    """A LEFT JOIN finds a missing parent with less work than NOT EXISTS, but only a unique parent
    key guarantees it cannot multiply child rows."""
    wanted = set(relation.parent_columns)
    if wanted == set(graph.primary_keys.get(relation.parent) or ()):
        return True
    return any(i.unique and set(i.columns) == wanted for i in indexes_of(db, relation.parent))


def _kind_expression(db, relation, doomed, joined):
    q = db.quote
    nulls = " OR ".join("c.%s IS NULL" % q(c) for c in relation.child_columns)
    match = " AND ".join("p.%s = c.%s" % (q(p), q(c)) for c, p in zip(relation.child_columns,
                                                                       relation.parent_columns))
    missing = "p.%s IS NULL" % q(relation.parent_columns[0]) if joined else \
        "NOT EXISTS (SELECT 1 FROM %s p WHERE %s)" % (q(relation.parent), match)
    parts = ["WHEN %s THEN 'n'" % nulls, "WHEN %s THEN 'd'" % missing]
    if doomed and doomed[1] is None:
        on = " AND ".join("d.k%d = c.%s" % (n, q(c)) for n, c in enumerate(relation.child_columns))
        parts.append("WHEN EXISTS (SELECT 1 FROM %s d WHERE %s) THEN 'c'" % (q(doomed[0]), on))
    elif doomed:
        name, bounds = doomed
        # Doomed keys are few and clustered (one trial, one run): a range test skips the probe for
        # nearly every row.
        within = " AND ".join("c.%s BETWEEN %s AND %s" % (q(c), _literal(lo), _literal(hi))
                              for c, (lo, hi) in zip(relation.child_columns, bounds))
        on = " AND ".join("d.k%d = c.%s" % (n, q(c)) for n, c in enumerate(relation.child_columns))
        parts.append("WHEN %s AND EXISTS (SELECT 1 FROM %s d WHERE %s) THEN 'c'" % (within, q(name), on))
    return "CASE %s END" % " ".join(parts)


def _literal(value):
    """Key bounds go into the SQL text (one statement per relation); only numbers are inlined."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("not a number")
    return repr(value)


def _doomed_bounds(db, name, width):
    """Per key column (min, max) when every key is numeric, else None (no range test). Each bound is a row's
    own value (Backend.first_in_order): MySQL's MIN() of a BIT column comes back as digits the driver reads as
    the value's bytes (round 32: a BIT(64) key of 70000 as 237031665712, the range then skipped every doomed
    key; past 2^32 the driver's unpack raised)."""
    bounds = [tuple(db.first_in_order(db.quote(name), "k%d" % n, "k%d IS NOT NULL" % n, last=last)
                    for last in (False, True)) for n in range(width)]
    if all(isinstance(v, int) and not isinstance(v, bool) for pair in bounds for v in pair):
        return bounds
    return None


def _sweep_relation(db, graph, plan, rel_no, relation, doomed, chunk_rows=None):
    q = db.quote
    chunked = chunk_rows and db.dialect == "sqlite" and plan.identity == ["rowid"]
    names = ["rel", "kind"] + ["i%d" % n for n in range(len(plan.identity))] + [
        "v%d" % n for n in range(len(plan.columns))]
    order = merge_order(db, relation, indexes_of)
    if order:  # both sides indexed in one key order: a merge of the two indexes, no probe per row
        sweep_by_merge(db, order, relation, plan.table, plan.rows_table, rel_no, names, _select_list(db, plan),
                       doomed[0] if doomed else None, "%smerge_%d_%d" % (TMP, plan.number, rel_no),
                       chunk_rows if chunked else None)
        return
    hint = " NOT INDEXED" if chunked else _index_hint(db, plan, relation, indexes_of(db, plan.table))
    joined = _parent_key_is_unique(db, graph, relation) and relation.parent != relation.child
    kind = _kind_expression(db, relation, doomed, joined)
    join = ""
    if joined:
        join = " LEFT JOIN %s p ON %s" % (q(relation.parent), " AND ".join(
            "p.%s = c.%s" % (q(p), q(c)) for c, p in zip(relation.child_columns, relation.parent_columns)))
    select = "SELECT %d AS rel, %s AS emfix_kind, %s FROM %s c%s%s" % (
        rel_no, kind, ", ".join(_select_list(db, plan)), q(plan.table), hint, join)
    filter_clause = "HAVING" if db.dialect == "mysql" else "WHERE"
    statement = "INSERT INTO %s (%s) %s %s emfix_kind IS NOT NULL" % (
        q(plan.rows_table), ", ".join(names), select, filter_clause)
    if not chunked:
        if db.dialect == "mysql" and db.reading_one_moment:  # no shared locks held to the end of the read
            db.insert_select(plan.rows_table, "%s %s emfix_kind IS NOT NULL" % (select, filter_clause))
        else:
            db.execute_scratch(statement)
        return
    # Short statements: between them a waiting writer gets the lock (in rollback-journal mode a
    # reader holding its lock longer would block every commit).
    index = _index_hint(db, plan, relation, indexes_of(db, plan.table))
    if index.startswith(" INDEXED BY") and sqlite3.sqlite_version_info >= (3, 15):
        _chunk_by_index(db, plan, statement.replace(" NOT INDEXED", index, 1), index, chunk_rows)
        return
    for start, end in rowid_ranges(db, plan.table, chunk_rows):
        db.execute(statement + " AND " + in_rowid_range("c", start, end))


def _chunk_by_index(db, plan, statement, hint, chunk_rows):
    """Keyset ranges along the index the scan follows, so the parent is still probed in order."""
    name = hint.split("INDEXED BY", 1)[1].strip()
    columns = next(i.columns for i in indexes_of(db, plan.table) if db.quote(i.name) == name)
    cols = ", ".join("c.%s" % db.quote(c) for c in columns)
    marks = ", ".join("?" * len(columns))
    # Rows with a NULL in the index are swept apart below, never in these ranges, nor as a bound (NULLs sort
    # first: a bound with a NULL part compared with nothing, and every row after it was never swept).
    whole = ["c.%s IS NOT NULL" % db.quote(c) for c in columns]
    low = None
    while True:
        after = " AND (%s) > (%s)" % (cols, marks) if low else ""
        high = db.query("SELECT %s FROM %s c%s WHERE %s%s ORDER BY %s LIMIT 1 OFFSET %d" % (
            cols, db.quote(plan.table), hint, " AND ".join(whole), after, cols, chunk_rows - 1), low or ())
        bounds, params = list(whole), []  # (a table smaller than one chunk had its NULL rows counted twice)
        if low:
            bounds.append("(%s) > (%s)" % (cols, marks))
            params.extend(low)
        if high and not all(exact_bound(v) for v in high[0]):
            high = None  # a value that would not be bound as it is stored: the rest in this one range
        if high:
            bounds.append("(%s) <= (%s)" % (cols, marks))
            params.extend(high[0])
        db.execute(statement + "".join(" AND " + b for b in bounds), tuple(params))
        if not high:
            break
        low = tuple(high[0])
    # Row values never compare with NULL: rows with a NULL in the index are swept apart, by rowid.
    nulls = " OR ".join("c.%s IS NULL" % db.quote(c) for c in columns)
    plain = statement.replace(hint, " NOT INDEXED", 1).replace(" WHERE emfix_kind",
                                                               " WHERE (%s) AND emfix_kind" % nulls)
    for start, end in rowid_ranges(db, plan.table, chunk_rows * 4):
        db.execute(plain + " AND " + in_rowid_range("c", start, end))


def _fetch_examples(db, graph, plan, rel_no, relation, kind, limit):
    if limit <= 0:
        return []
    return list(_violations(db, graph, plan, rel_no, relation, kind, limit, db.query))


def iter_violations(db, graph, plans):
    """Every row whose parent is missing, (table, Violation) one at a time, from the sweep's temporary
    tables (so on the connection that swept): what a complete report file holds, never all in memory."""
    for plan in plans:
        for rel_no, relation in enumerate(plan.relations):
            for violation in _violations(db, graph, plan, rel_no, relation, "d", None, db.iter_rows):
                yield plan.table, violation


def _violations(db, graph, plan, rel_no, relation, kind, limit, read):
    q = db.quote
    ids = ", ".join("h.i%d" % n for n in range(len(plan.identity)))
    vals = ", ".join("h.v%d" % n for n in range(len(plan.columns)))
    recreatable = "0"
    ancestor = ancestor_of(graph, relation) if kind == "d" else None
    if ancestor:
        grand, child_cols, grand_cols = ancestor
        on = " AND ".join("g.%s = h.%s" % (q(g), plan.value_name(c)) for c, g in zip(child_cols, grand_cols))
        recreatable = "CASE WHEN %sEXISTS (SELECT 1 FROM %s g WHERE %s) THEN 1 ELSE 0 END" % (
            _integer_keys(db, plan, relation), q(grand), on)
    sql = "SELECT %s, %s, %s FROM %s h WHERE h.rel = ? AND h.kind = ? ORDER BY %s%s" % (
        ids, vals, recreatable, q(plan.rows_table), ids, "" if limit is None else " LIMIT %d" % int(limit))
    width = len(plan.identity)
    for row in read(sql, (rel_no, kind)):
        values = dict(zip(plan.columns, row[width:width + len(plan.columns)]))
        key = dict(zip(plan.identity_names, row[:width]))
        for col in graph.primary_keys.get(plan.table) or ():
            key.setdefault(col, values.get(col))
        yield Violation(plan.table, KINDS[kind], list(relation.child_columns),
                        [values[c] for c in relation.child_columns], relation.parent,
                        list(relation.parent_columns), key, bool(row[-1]))


def _count_recreatable(db, graph, plan, rel_no, relation):
    ancestor = ancestor_of(graph, relation)
    if not ancestor:
        return 0
    q = db.quote
    grand, child_cols, grand_cols = ancestor
    on = " AND ".join("g.%s = h.%s" % (q(g), plan.value_name(c)) for c, g in zip(child_cols, grand_cols))
    return db.scalar("SELECT count(*) FROM %s h WHERE h.rel = ? AND h.kind = 'd' AND %sEXISTS "
                     "(SELECT 1 FROM %s g WHERE %s)" % (q(plan.rows_table), _integer_keys(db, plan, relation), q(grand),
                                                        on), (rel_no,)) or 0


def _integer_keys(db, plan, relation):
    """SQL (and a trailing AND): the missing parent's key is all integers, the only parents --recreate-parents
    creates (text in a SQLite INTEGER column is not an old-API link; MySQL's key columns are integers)."""
    if db.dialect != "sqlite":
        return ""
    return "".join("typeof(h.%s) = 'integer' AND " % plan.value_name(c) for c in relation.child_columns)


def _table_counts(db, plan):
    ids = ", ".join("i%d" % n for n in range(len(plan.identity)))
    flags = ", ".join("max(CASE WHEN kind = '%s' THEN 1 ELSE 0 END) AS %s" % (k, k) for k in "dcn")
    row = db.query(
        "SELECT coalesce(sum(d), 0), coalesce(sum(CASE WHEN c = 1 AND d = 0 THEN 1 ELSE 0 END), 0), "
        "coalesce(sum(CASE WHEN n = 1 AND d = 0 AND c = 0 THEN 1 ELSE 0 END), 0) "
        "FROM (SELECT %s FROM %s GROUP BY %s) x" % (flags, db.quote(plan.rows_table), ids))[0]
    return TableCheck(plan.table, int(row[0]), int(row[1]), int(row[2]))


def sweep_foreign_keys(db, graph, limit, progress=None, chunk_rows=None):
    """Check every relation, parents first; return (relation checks, table checks, plans).

    The offending rows stay in each plan's temporary `rows_table` (identity i0.., kind d/c/n) on
    `db` until it closes: cleanup reads what to remove from there. With `chunk_rows` (SQLite) each
    relation is scanned in rowid ranges of that size, so no statement holds the lock for long.
    """
    progress = progress or NoProgress()
    plans = plan_tables(db, graph)
    doomed = {}  # (table, key columns) -> name of a temp table of doomed keys, when not empty
    checks, tables = [], {}
    total = sum(len(p.relations) for p in plans)
    done = 0
    for plan in plans:
        db.create_temp_table(plan.rows_table, "SELECT 0 AS rel, 'd' AS kind, %s FROM %s c WHERE 1 = 0" % (
            ", ".join(_select_list(db, plan)), db.quote(plan.table)))
        table_checks = []
        for rel_no, relation in enumerate(plan.relations):
            done += 1
            progress.update("%s (%d/%d relations)" % (relation.describe(), done, total), force=True)
            started = time.perf_counter()
            source = doomed.get((relation.parent, tuple(relation.parent_columns)))
            if relation.parent == relation.child:
                source = None
            _sweep_relation(db, graph, plan, rel_no, relation, source, chunk_rows)
            table_checks.append(RelationCheck(relation, seconds=time.perf_counter() - started))
        counts = {(r, k): n for r, k, n in db.query(
            "SELECT rel, kind, count(*) FROM %s GROUP BY rel, kind" % db.quote(plan.rows_table))}
        for rel_no, check in enumerate(table_checks):
            check.violations = counts.get((rel_no, "d"), 0)
            check.cascade = counts.get((rel_no, "c"), 0)
            check.null_keys = counts.get((rel_no, "n"), 0)
            if check.violations:
                check.recreatable = _count_recreatable(db, graph, plan, rel_no, check.relation)
                check.examples = _fetch_examples(db, graph, plan, rel_no, check.relation, "d", limit)
            if check.cascade:
                check.cascade_examples = _fetch_examples(db, graph, plan, rel_no, check.relation, "c", limit)
        checks.extend(table_checks)
        if plan.relations:
            tables[plan.table] = _table_counts(db, plan) if counts else TableCheck(plan.table)
        if any(k in ("d", "c") for _, k in counts):
            for keys in plan.key_sets:
                name = plan.doomed_table(keys)
                # The index declared with the table: on MySQL a CREATE INDEX afterwards would commit the
                # open transaction (a --dry-run's parents, validate's consistent view).
                db.create_temp_table(name, "SELECT DISTINCT %s FROM %s WHERE kind IN ('d', 'c')" % (
                    ", ".join("%s AS k%d" % (plan.value_name(c), n) for n, c in enumerate(keys)),
                    db.quote(plan.rows_table)), indexes=[["k%d" % n for n in range(len(keys))]])
                doomed[(plan.table, keys)] = (name, _doomed_bounds(db, name, len(keys)))
    return checks, tables, plans


# -- METRIC and ARTIFACT rows nothing points at --------------------------------------------------------

def find_unreferenced(db, graph, limit, table):
    """Rows of `table` (METRIC or ARTIFACT) that no link table points at; None if it cannot tell."""
    links = [r for r in graph.children_of(table) if len(r.child_columns) == 1]
    if table not in graph.tables or not links or len(graph.primary_keys.get(table) or ()) != 1:
        return None
    q = db.quote
    key = q(links[0].parent_columns[0])
    if db.dialect == "sqlite":  # NOT IN builds one temporary index: a merge, not N probes
        union = " UNION ALL ".join("SELECT %s FROM %s WHERE %s IS NOT NULL" % (
            q(r.child_columns[0]), q(r.child), q(r.child_columns[0])) for r in links)
        where = "%s NOT IN (%s)" % (key, union)
    else:  # InnoDB keeps an index on each foreign-key column: probe it
        where = " AND ".join("NOT EXISTS (SELECT 1 FROM %s x WHERE x.%s = t.%s)" % (
            q(r.child), q(r.child_columns[0]), key) for r in links)
    name = TMP + "unref_" + table.lower()
    merged = unreferenced_by_merge(db, table, links[0].parent_columns[0], links)
    db.create_temp_table(name, merged or "SELECT %s AS k FROM %s t WHERE %s" % (key, q(table), where))
    count = db.scalar("SELECT count(*) FROM %s" % q(name)) or 0
    examples = [r[0] for r in db.query("SELECT k FROM %s ORDER BY k LIMIT %d" % (q(name), int(limit)))]
    return Unreferenced(table, int(count), examples)


