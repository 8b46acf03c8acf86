"""One experiment's subtree (the cookbook's check-hierarchy): rows per level and every break in it.

The walk goes down the relation graph from the experiment, one set-based query per table into a
temporary table of the rows reached. A row also belongs to the experiment when its parent row is
missing but an ancestor is reached (an EPOCH_METRIC row of a run of this experiment whose EPOCH
row was deleted): those rows are the breaks, counted per relation.

Each temporary key table is indexed on the keys its children look up, membership is a row-value
`IN (SELECT ...)` the planner can drive from the small side, and the METRIC/ARTIFACT ids the
reached link rows point at get a key table too, so export and migrate read any table of the
subtree through its key table (Subtree.source) at the cost of the rows wanted, not of the table.
An application's tables whose rows hang off those METRIC/ARTIFACT rows (and tables hanging off
them) are held last: they go where the rows they point at go.
"""

import dataclasses
import math
from typing import List, Optional

from .backends import open_database
from .catalog import is_without_rowid, key_has_its_own_index, sqlite_affinity
from .errors import UsageError
from .pool import run_parallel
from .schema import remember_spellings
from .subtree import Subtree, holds_every_column
from .subtreelinks import (
    ROWID,
    attached_columns,
    attached_tables,
    close_over_self_links,
    member,
    same_keys,
    self_links,
)

TMP = "emfix_tmp_h_"
ROOT = "EXPERIMENT"


@dataclasses.dataclass
class HierarchyLevel:
    table: str
    rows: int


@dataclasses.dataclass
class HierarchyBreak:
    table: str
    columns: List[str]
    parent_table: str
    count: int
    examples: list

    @property
    def message(self):
        return "%d %s %s no %s row (%s)" % (self.count, self.table, "row has" if self.count == 1 else "rows have",
                                           self.parent_table, ", ".join(self.columns))


@dataclasses.dataclass
class HierarchyReport:
    experiment_id: int
    exists: bool
    levels: List[HierarchyLevel]
    breaks: List[HierarchyBreak]
    title: Optional[str] = None

    def to_dict(self):
        return {"experiment_id": self.experiment_id, "exists": self.exists, "title": self.title,
                "levels": {lv.table: lv.rows for lv in self.levels},
                "breaks": [dict(dataclasses.asdict(b), message=b.message) for b in self.breaks]}


def ancestor_chain(graph, relation):
    """[(ancestor, child columns, ancestor columns), ...] reachable through the parent's own keys."""
    chain, current, seen = [], relation, set()
    while current.parent not in seen:
        seen.add(current.parent)
        pairs = dict(zip(current.parent_columns, current.child_columns))
        step = None
        for up in graph.relations_of(current.parent):
            if up.parent != current.parent and set(up.child_columns) <= set(pairs):
                step = (up.parent, [pairs[c] for c in up.child_columns], list(up.parent_columns))
                break
        if step is None:
            break
        chain.append(step)
        current = dataclasses.replace(relation, child_columns=tuple(step[1]), parent=step[0],
                                      parent_columns=tuple(step[2]))
    return chain


def _tests_for(graph, relation, held):
    """The membership tests for a child through `relation`: its parent, and each ancestor reached through
    the parent's own key columns (a row whose parent was deleted still belongs to the experiment).

    When every table between the child and the top-most held ancestor has that one parent in the
    subtree, a row the lower tests admit is one the top-most test admits too (each of those tables
    was itself admitted through it), so that single test is enough: one lookup per row instead of
    one per level (BATCH_METRIC of the 10M-row sample: 4.8 s -> under 1 s)."""
    chain = [(relation.parent, relation.child_columns, relation.parent_columns)] + ancestor_chain(graph, relation)
    chain = [step for step in chain if step[0] in held]
    if len(chain) > 1 and all(len([r for r in graph.relations_of(step[0]) if r.parent in held and r.parent != step[0]])
                              == 1 for step in chain[:-1]):
        return chain[-1:]
    return chain


def _subtree_tables(graph):
    reached, order = {ROOT}, []
    for table in graph.parent_first():
        if table == ROOT:
            continue
        if any(r.parent in reached for r in graph.relations_of(table)):
            reached.add(table)
            order.append(table)
    return order


def _link_keys(db, graph, held, number):
    """Temporary tables of the METRIC/ARTIFACT ids the reached link rows point at, indexed."""
    linked = {}
    for root in ("METRIC", "ARTIFACT"):
        links = [r for r in graph.children_of(root) if r.child in held and len(r.child_columns) == 1]
        if root not in graph.tables or not links:
            continue
        column = links[0].parent_columns[0]
        union = " UNION ".join("SELECT %s AS k FROM %s" % (db.quote(r.child_columns[0]), db.quote(held[r.child]))
                               for r in links)
        name = "%s%d" % (TMP, number + len(linked))
        db.create_temp_table(name, "SELECT k AS %s FROM (%s) u WHERE k IS NOT NULL" % (db.quote(column), union),
                             indexes=[[column]])
        linked[root] = (name, column)
    return linked


def _walk_steps(graph):
    """(table, the columns its key table keeps, its membership tests as (ancestor, child columns, ancestor
    columns)) for every table of the subtree, parents first: the plan reach_subtree and count_subtree share."""
    held, steps = {ROOT}, []
    for table in _subtree_tables(graph):
        relations = graph.relations_of(table)
        columns = list(dict.fromkeys(list(graph.primary_keys.get(table) or ()) +
                                     [c for r in relations for c in r.child_columns] +
                                     [c for r in graph.children_of(table) for c in r.parent_columns] +
                                     [c for r in relations if r.parent == table for c in r.parent_columns]))
        tests, used = [], set()
        for rel in relations:
            if rel.parent not in held:
                continue
            for test in _tests_for(graph, rel, held):
                if test[0] not in used:
                    used.add(test[0])
                    tests.append(test)
        held.add(table)
        steps.append((table, columns, tests))
    return steps


def _members(db, table, tests, held):
    return " OR ".join(_bounds(db, table, child_cols, held[ancestor], anc_cols) +
                       member(db, "c", child_cols, held[ancestor], anc_cols)
                       for ancestor, child_cols, anc_cols in tests) or "1 = 0"


def _bounds(db, table, columns, held_table, held_columns):
    """SQLite: `c.a BETWEEN lo AND hi AND ` for each of `columns` of numeric affinity, lo and hi the least and
    greatest of the held values (numbers alone), so that the rows a scan of `table` meets outside them skip the
    probe of the held table (BATCH and BATCH_METRIC of the 10M demo, experiment 1: 0.17 s -> 0.12 s each). It
    leaves out no row `IN` would take: that column compares numerically with them, as BETWEEN does; held text
    or BLOBs (they sort above every number) mean no bound. MySQL: none (its foreign-key columns are indexed)."""
    if db.dialect != "sqlite":
        return ""
    kinds = {d.name.lower(): sqlite_affinity(d.type) for d in db.column_details(table)}
    found = []
    for mine, theirs in zip(columns, held_columns):
        if kinds.get(mine.lower()) not in ("INTEGER", "REAL", "NUMERIC"):
            continue
        low, high = db.query("SELECT min(x.%s), max(x.%s) FROM %s x" % (
            db.quote(theirs), db.quote(theirs), db.quote(held_table)))[0]
        if all(type(v) is int or (type(v) is float and math.isfinite(v)) for v in (low, high)):  # (no SQL for inf)
            found.append("c.%s BETWEEN %r AND %r AND " % (db.quote(mine), low, high))
    return "".join(found)


def _root_table(db, graph, experiment_id):
    """(whether the experiment exists, {ROOT: its one-row key table}, its key column)."""
    q = db.quote
    root_key = (graph.primary_keys.get(ROOT) or ("id",))[0]
    exists = bool(db.scalar("SELECT count(*) FROM %s WHERE %s = ?" % (q(ROOT), q(root_key)), (experiment_id,)))
    # (SQLite: the key column of INTEGER affinity, as the experiment's: a link column of TEXT affinity holding '3'
    # is then 3 to IN, as to the database's own comparison with EXPERIMENT.id; `?` alone has none, and met nothing)
    cast = "CAST(? AS SIGNED)" if db.dialect == "mysql" else "CAST(? AS INTEGER)"
    db.create_temp_table(TMP + "0", "SELECT %s AS %s" % (cast, q(root_key)), (experiment_id,))
    return exists, {ROOT: TMP + "0"}, root_key


def _make_key_table(db, graph, table, name, columns, where, rowid=None):
    key = tuple(graph.primary_keys.get(table) or ())
    probes = [key + (ROWID,) if key and rowid else key or tuple(columns if _indexable(db, table, columns) else ())] + [
        tuple(r.parent_columns) for r in graph.children_of(table)]  # (no key: Subtree.where's IS/<=> probes it)
    db.create_temp_table(name, "SELECT %s FROM %s c WHERE %s" % (
        ", ".join(["c.%s" % db.quote(c) for c in columns] + (["c.%s AS %s" % (rowid, ROWID)] if rowid else [])),
        db.quote(table), where), indexes=list(dict.fromkeys(
            k for k in probes if k and set(k) <= set(columns) | ({ROWID} if rowid else set()))))


def _rowid_name(db, graph, table):
    """SQLite, a table without a primary key (it always has a rowid): the name its rowid reads by, unless a column
    took each of them; else None."""
    if db.dialect != "sqlite" or graph.primary_keys.get(table):
        return None
    return _free_rowid_name(db, table)


def _free_rowid_name(db, table):
    """The first of SQLite's names for the rowid no column of `table` took (and none took ROWID's), or None."""
    taken = {c.lower() for c in db.columns(table)}
    return None if ROWID in taken else next((n for n in ("rowid", "_rowid_", "oid") if n not in taken), None)


def _seek_name(db, graph, table, columns):
    """reach_subtree(seek_rowids=True): the name a SQLite table's rowid reads by, where its primary key is an index
    of its own (a lookup by key is two seeks: the key's index, then the table), its key table does not hold every
    column (else the copy reads the key table alone), and a name is free; else None. The rowid names the same row
    only within the walk's one moment: the readers keep the key's equality beside it, so a row never passes for
    another."""
    if db.dialect != "sqlite" or not graph.primary_keys.get(table) or holds_every_column(graph, table, columns):
        return None
    if is_without_rowid(db.table_sql(table)) or not key_has_its_own_index(db, table):
        return None  # (no rowid; or the key is the rowid's alias, one seek already)
    return _free_rowid_name(db, table)


def _indexable(db, table, columns):
    """Whether an index can hold `columns` of `table` whole: on SQLite any; on MySQL no TEXT or BLOB (a link
    column is rarely one: InnoDB declares no foreign key on it)."""
    if db.dialect == "sqlite":
        return True
    kinds = {d.name.lower(): d.type.lower() for d in db.column_details(table)}
    return not any(word in kinds.get(c.lower(), "text") for c in columns for word in ("text", "blob", "json"))


def reach_subtree(db, graph, experiment_id, seek_rowids=False):
    """Walk down from the experiment, one set-based statement per table (see the module docstring).
    `seek_rowids`: every read of the subtree is in the walk's one moment (migrate's SRC), so the key tables of
    tables keyed by an index of their own keep the rowid too (Subtree.seeks: BATCH's 132k rows of the 10M demo,
    experiment 1, read for a copy's pages in 0.216 s against 0.294 s)."""
    exists, held, root_key = _root_table(db, graph, experiment_id)
    columns_of, order, rowids, seeks = {ROOT: [root_key]}, [ROOT], {}, {}
    for number, (table, columns, tests) in enumerate(_walk_steps(graph), 1):
        where = _members(db, table, tests, held)
        held[table], columns_of[table] = TMP + str(number), columns
        rowid = _rowid_name(db, graph, table)
        seek = _seek_name(db, graph, table, columns) if seek_rowids and not rowid else None
        _make_key_table(db, graph, table, held[table], columns, where, rowid or seek)
        close_over_self_links(db, graph, table, held[table], columns, rowid or seek)
        if rowid:
            rowids[table] = rowid
        if seek:
            seeks[table] = seek
        order.append(table)
    linked = _link_keys(db, graph, held, len(order))
    for number, (table, links) in enumerate(attached_tables(graph, held, linked), len(order) + len(linked)):
        held[table], columns_of[table] = TMP + str(number), attached_columns(graph, table)
        rowid = _rowid_name(db, graph, table)
        _make_key_table(db, graph, table, held[table], columns_of[table], " OR ".join(member(
            db, "c", r.child_columns, *(linked[r.parent][0], [linked[r.parent][1]]) if r.parent in linked else (
                held[r.parent], r.parent_columns)) for r in links), rowid)
        close_over_self_links(db, graph, table, held[table], columns_of[table], rowid)
        if rowid:
            rowids[table] = rowid
    return Subtree(experiment_id, exists, held, columns_of, order, linked, rowids, seeks)


def count_subtree(db, graph, experiment_id, beside=None):
    """{table: rows of the experiment's subtree} for the hierarchy tables and METRIC/ARTIFACT, by the walk's
    own membership tests (a row counts exactly when reach_subtree would hold it), but a key table is made only
    for a table a later test reads (the experiment, its trials and runs): the others (EPOCH, BATCH, the link
    tables) are counted where they are, and the METRIC/ARTIFACT rows their links point at by one join of the
    links' ids. migrate's aggressive verify of DST: the rows are read, not copied into key tables. `beside`: a
    second connection to the same database, which makes the same key tables and counts METRIC/ARTIFACT meanwhile
    (METRIC's count is 0.12 s of the 0.19 s of experiment 1 of the 10M demo in MariaDB)."""
    q = db.quote
    steps = _walk_steps(graph)
    read_later = {ancestor for _table, _columns, tests in steps for ancestor, _c, _a in tests}
    conns = [db] if beside is None else [db, beside]
    exists, held, _key = _root_table(db, graph, experiment_id)
    if beside is not None:
        _root_table(beside, graph, experiment_id)
    where_of, counts, left = {}, {ROOT: int(exists)}, []  # left: tables counted where they are, after the walk
    for number, (table, columns, tests) in enumerate(steps, 1):
        where_of[table] = _members(db, table, tests, held)
        if table in read_later or self_links(graph, table, columns):
            held[table] = TMP + str(number)
            for conn in conns:
                _held_as_walked(conn, graph, table, held[table], columns, where_of[table])
            counts[table] = int(db.scalar("SELECT count(*) FROM %s" % q(held[table])) or 0)
            if self_links(graph, table, columns):  # its rows reached through those links too
                where_of[table] = _member_of_held(db, graph, table, held[table], columns)
        else:
            left.append(table)
    linked = {}
    for root in ("METRIC", "ARTIFACT"):
        links = [r for r in graph.children_of(root) if r.child in where_of and len(r.child_columns) == 1]
        if root not in graph.tables or not links:
            continue
        ids = " UNION ".join("SELECT c.%s AS k FROM %s c WHERE %s" % (q(r.child_columns[0]), q(r.child),
                                                                      where_of[r.child]) for r in links)
        linked[root] = (ids, links[0].parent_columns[0])

    def count_linked(conn):
        # a derived UNION joined by the key: MariaDB runs `IN (... UNION ...)` as a subquery per METRIC row
        # (0.7 s against 0.2 s for experiment 1 of the 10M demo)
        return {root: int(conn.scalar("SELECT count(*) FROM (%s) u JOIN %s m ON m.%s = u.k" % (
            ids, q(root), q(column))) or 0) for root, (ids, column) in linked.items()}

    def count_the_rest():
        found = {table: int(db.scalar("SELECT count(*) FROM %s c WHERE %s" % (q(table), where_of[table])) or 0)
                 for table in left}
        found.update(_count_attached(db, graph, where_of, linked, len(steps) + 1))
        return found

    if beside is None:
        counts.update(count_linked(db))
        counts.update(count_the_rest())
    else:
        rest, roots = run_parallel([count_the_rest, lambda: count_linked(beside)])
        counts.update(rest)
        counts.update(roots)
    return counts


def _count_attached(db, graph, where_of, linked, first_number):
    """count_subtree: the rows hanging off the METRIC/ARTIFACT rows it counted, as reach_subtree takes them."""
    q, counts, attached = db.quote, {}, {}  # attached: table -> condition
    for number, (table, links) in enumerate(attached_tables(graph, where_of, linked), first_number):
        attached[table] = " OR ".join(  # (the links' ids as reach_subtree holds them: a METRIC row missing too)
            "c.%s IN (SELECT u.k FROM (%s) u)" % (q(r.child_columns[0]), linked[r.parent][0]) if r.parent in linked
            else "(%s) IN (SELECT %s FROM %s c WHERE %s)" % (
                ", ".join("c.%s" % q(c) for c in r.child_columns), ", ".join("c.%s" % q(c) for c in r.parent_columns),
                q(r.parent), attached[r.parent]) for r in links)
        columns = attached_columns(graph, table)
        if self_links(graph, table, columns):
            _held_as_walked(db, graph, table, TMP + str(number), columns, attached[table])
            counts[table] = int(db.scalar("SELECT count(*) FROM %s" % q(TMP + str(number))) or 0)
            attached[table] = _member_of_held(db, graph, table, TMP + str(number), columns)
        else:
            counts[table] = int(db.scalar("SELECT count(*) FROM %s c WHERE %s" % (q(table), attached[table])) or 0)
    return counts


def _held_as_walked(db, graph, table, name, columns, where):
    """count_subtree: `table`'s key table, as reach_subtree makes it (its rows reached through its links to itself
    included)."""
    rowid = _rowid_name(db, graph, table)
    _make_key_table(db, graph, table, name, columns, where, rowid)
    close_over_self_links(db, graph, table, name, columns, rowid)


def _member_of_held(db, graph, table, name, columns):
    """count_subtree: a condition on `table` (alias c) selecting the rows its key table `name` holds."""
    rowid = _rowid_name(db, graph, table)
    if rowid:
        return "c.%s IN (SELECT x.%s FROM %s x)" % (rowid, ROWID, db.quote(name))
    key = list(graph.primary_keys.get(table) or columns)
    return member(db, "c", key, name, key)


def check_hierarchy(db, graph, experiment_id, limit=100, tree=None):
    """Levels and breaks of one experiment's subtree (`tree`: one already reached, not walked again)."""
    q = db.quote
    if ROOT not in graph.tables:
        return HierarchyReport(experiment_id, False, [], [])
    tree = tree or reach_subtree(db, graph, experiment_id)
    levels = [HierarchyLevel(ROOT, 1 if tree.exists else 0)]
    breaks = []
    for table in tree.order[1:]:
        name, columns = tree.held[table], tree.columns[table]
        levels.append(HierarchyLevel(table, int(db.scalar("SELECT count(*) FROM %s" % q(name)) or 0)))
        for rel in graph.relations_of(table):
            missing = "NOT EXISTS (SELECT 1 FROM %s p WHERE %s)" % (
                q(rel.parent), same_keys(db, "p", rel.parent_columns, "h", rel.child_columns))
            not_null = " AND ".join("h.%s IS NOT NULL" % q(c) for c in rel.child_columns)
            count = int(db.scalar("SELECT count(*) FROM %s h WHERE %s AND %s" % (q(name), not_null, missing)) or 0)
            if count:
                rows = db.query("SELECT %s FROM %s h WHERE %s AND %s LIMIT %d" % (
                    ", ".join("h.%s" % q(c) for c in columns), q(name), not_null, missing, int(limit)))
                breaks.append(HierarchyBreak(table, list(rel.child_columns), rel.parent, count,
                                             [dict(zip(columns, r)) for r in rows]))
    for root in [t for t in ("METRIC", "ARTIFACT") if t in graph.tables]:
        where = tree.referenced_where(db, graph, root, "m")
        if where:
            count = db.scalar("SELECT count(*) FROM %s m WHERE %s" % (q(root), where))
            levels.append(HierarchyLevel(root, int(count or 0)))
    title = None
    if tree.exists and "title" in graph.columns.get(ROOT, ()):
        key = (graph.primary_keys.get(ROOT) or ("id",))[0]
        value = db.scalar("SELECT %s FROM %s WHERE %s = ?" % (q("title"), q(ROOT), q(key)), (experiment_id,))
        title = None if value is None else str(value)
    return HierarchyReport(experiment_id, exists=tree.exists, levels=levels, breaks=breaks, title=title)


def check_experiments(address, experiment_id=None, limit=10, *, retry_policy=None):
    """check_hierarchy of one experiment, or of every one in id order, once the file is known sound.

    SQLite opens read-only; MariaDB refuses the walk's TEMPORARY tables in a READ ONLY session, so the
    MySQL connection is a normal one that writes only to its own temporary tables (as validate's)."""
    from .guarded import check_integrity
    from .schema import discover_graph, require_experiment_manager
    with open_database(address, readonly=address.is_sqlite, retry_policy=retry_policy) as db:
        graph = discover_graph(db)
        check_integrity(db)  # a damaged file's breaks would be the damage, not the data's
        # (round 46: a database without TRIAL_RUN was "whole" to check-hierarchy, and exported what was reached)
        require_experiment_manager(graph, db.address, hint="check the path or URL")
        ids = [experiment_id] if experiment_id is not None else _experiment_ids(db)
        reports = []
        for ident in ids:  # each experiment read in one moment (on MySQL without a row lock: create_temp_table)
            with db.consistent_read():
                reports.append(check_hierarchy(db, graph, ident, limit))
        return reports


def list_experiments(address, retry_policy=None):
    """Every experiment id of a database, in order (`migrate --all`)."""
    with open_database(address, readonly=address.is_sqlite, retry_policy=retry_policy) as db:
        return _experiment_ids(db)


def _experiment_ids(db):
    remember_spellings(db)  # EXPERIMENT as the database holds it (round 25: migrate --all of a lower-case database)
    q = db.quote
    return [r[0] for r in db.query("SELECT %s FROM %s ORDER BY %s" % (q("id"), q(ROOT), q("id")))]


def copy_names(address, experiment_id, retry_policy=None):
    """("Migrated_<title>", "Migrated from experiment N: <desc>"): the old tool's names for a copy made
    within one database (`migrate-experiment -d DB -s N`)."""
    with open_database(address, readonly=address.is_sqlite, retry_policy=retry_policy) as db:
        remember_spellings(db)
        row = db.query("SELECT %s, %s FROM %s WHERE %s = ?" % (db.quote("title"), db.quote("desc"), db.quote(ROOT),
                                                              db.quote("id")), (experiment_id,))
    if not row:
        raise UsageError("experiment %d does not exist in %s" % (experiment_id, address.display()))
    title, desc = row[0]
    return "Migrated_%s" % (title or ""), "Migrated from experiment %d: %s" % (experiment_id, desc or "")
