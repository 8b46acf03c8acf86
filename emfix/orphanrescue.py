"""Which doomed rows are doomed still: the look inside each delete batch's own transaction.

A cleanup plans from one read of the database; while it deletes, the application may insert a missing
parent, or point an orphan at a parent that exists. The rows of a batch are checked again in the batch's
transaction, up their chain of doomed ancestors only: a row stays doomed while it still holds the key it was
doomed by and that key's parent is still missing, or still doomed itself (outside testers: a repair removed a
trial whose experiment had been re-created meanwhile, and everything under it; then, with the look before each
table and then before each batch, the batch in flight when the parent came).

On SQLite the transaction holds the write lock from its start (BEGIN IMMEDIATE), so nothing commits between the
look and the delete. On MySQL the look's reads are locking reads (LOCK IN SHARE MODE takes shared next-key locks on
what it reads, the gap where a missing parent would go included): a parent inserted meanwhile waits for the batch's
commit, and the next batch sees it.
"""

from .backends.sqlite import placeholder
from .fkmerge import without_rowid
from .fksweep import TMP, UNREFERENCED_TABLES


class RescueLook:
    """The look of one cleanup. Each table's doomed rows' reasons are copied once into a scratch table keyed by
    identity and by each key its children use; a batch's look is then one read per table up its chain, each a
    join of batch-sized sets (the first version built about 16 temporary tables a batch: on MySQL ~50 ms a look,
    and as the look counts in a batch's lock time the batches shrank to a few rows: a cleanup of 6,682 rows took
    634 batches and 52 s, against 3.5 s without the look)."""

    def __init__(self, db, graph, plans):
        self.db, self.graph = db, graph
        self.by_table = {p.table: p for p in plans}
        self._why = {}  # table -> its reasons table
        for plan in plans:  # now, outside any batch: inside one, SQLite's writers would wait while they are made
            self._why_table(plan)

    def still(self, table, keys):
        """The `keys` (identities of `table`'s doomed rows) that are doomed still, in their order."""
        db, plan = self.db, self.by_table.get(table)
        if keys and table in UNREFERENCED_TABLES and (plan is None or not plan.relations):
            return _unreferenced_still(db, self.graph, table, keys)
        if plan is None or not plan.relations or not keys:
            return list(keys)
        reasons = self._read_chain(plan, keys)
        alive_keys, alive = {}, set()
        for name in self.graph.parent_first():
            if name in reasons:
                alive = _alive(self.by_table[name], reasons[name], alive_keys)
            if name == table:
                break
        return [k for k in keys if tuple(k) in alive]

    def _read_chain(self, plan, keys):
        """{table: [reason]}: the batch's rows, then (children first) the doomed parents each one was doomed
        through, up the chain, each reason read with the live row's state."""
        by_table, reasons = self.by_table, {}
        wanted = {plan.table: {tuple("i%d" % n for n in range(len(plan.identity))): {tuple(k) for k in keys}}}
        order = self.graph.child_first()
        for table in order[order.index(plan.table):]:
            child = by_table.get(table)
            if table not in wanted or child is None:
                continue
            found = {}
            for columns, values in wanted.pop(table).items():
                for reason in self._read_reasons(child, columns, sorted(values, key=repr)):
                    found[reason.identity, reason.rel] = reason
            reasons[table] = list(found.values())
            for reason in reasons[table]:
                relation = child.relations[reason.rel]
                parent = by_table.get(relation.parent)
                if reason.kind != "c" or parent is None or relation.parent == table:
                    continue
                columns = tuple(parent.value_name(c) for c in relation.parent_columns)
                wanted.setdefault(parent.table, {}).setdefault(columns, set()).add(
                    reason.values_of(relation.child_columns))
        return reasons

    def _read_reasons(self, plan, columns, wanted):
        """The reasons of the plan's doomed rows whose `columns` (of its reasons table) are among `wanted`, each
        with whether the live row still holds the values it was doomed by and whether that parent is missing
        now: one statement, a locking read on MySQL (see the module's docstring)."""
        db, quoted = self.db, self.db.quote
        same_value = "IS" if db.dialect == "sqlite" else "<=>"
        width = len(plan.identity)
        holds, missing, joins = [], [], []
        for rel_no, relation in enumerate(plan.relations):
            values = [plan.value_name(c) for c in relation.child_columns]
            holds.append("WHEN %d THEN %s" % (rel_no, " AND ".join(
                "t.%s %s h.%s" % (quoted(c), same_value, v) for c, v in zip(relation.child_columns, values))))
            alias = "p%d" % rel_no
            joins.append(" LEFT JOIN %s %s ON h.rel = %d AND %s" % (
                quoted(relation.parent), alias, rel_no, " AND ".join(
                    "%s.%s = h.%s" % (alias, quoted(p), v) for p, v in zip(relation.parent_columns, values))))
            missing.append("WHEN %d THEN %s.%s IS NULL" % (rel_no, alias, quoted(relation.parent_columns[0])))
        # Each value bound with its storage class: a key of TEXT that is not UTF-8 bound as a BLOB found no reason,
        # and its rows were left alone beside a writer (round 20).
        keys = ", ".join("(%s)" % ", ".join(placeholder(v) for v in k) for k in wanted)
        rows = db.query("SELECT %s, t.%s IS NOT NULL AND CASE h.rel %s END, CASE h.rel %s END FROM %s h "
                        "LEFT JOIN %s t ON %s%s WHERE (%s) IN (%s)%s" % (
                            ", ".join(["h.i%d" % n for n in range(width)] + ["h.rel", "h.kind"] + [
                                "h.v%d" % n for n in range(len(plan.columns))]), plan.identity[0], " ".join(holds),
                            " ".join(missing), quoted(self._why_table(plan)), quoted(plan.table), " AND ".join(
                                "t.%s = h.i%d" % (expr, n) for n, expr in enumerate(plan.identity)), "".join(joins),
                            ", ".join("h." + c for c in columns), keys,
                            "" if db.dialect == "sqlite" else " LOCK IN SHARE MODE"),
                        tuple(v for k in wanted for v in k))
        return [_Reason(plan, row) for row in rows]

    def _why_table(self, plan):
        """The plan's doomed rows' reasons (rel, kind, identity, values), indexed by identity and by each key set."""
        name = self._why.get(plan.table)
        if name is None:
            ids = ["i%d" % n for n in range(len(plan.identity))]
            values = ["v%d" % n for n in range(len(plan.columns))]
            name = self._why[plan.table] = "%swhy_%d" % (TMP, plan.number)
            self.db.create_temp_table(name, "SELECT %s FROM %s WHERE kind IN ('d', 'c')" % (
                ", ".join(ids + ["rel", "kind"] + values), self.db.quote(plan.rows_table)), indexes=[ids] + [
                    [plan.value_name(c) for c in keys] for keys in plan.key_sets])
        return name


def _alive(plan, reasons, alive_keys):
    """The identities among `reasons` (one table's) doomed still: a reason counts while the live row still holds
    the values it was doomed by, and their parent is still missing (d) or doomed still (c: in `alive_keys`, filled
    parents first). Adds the key values of those rows to `alive_keys`, for their children."""
    alive = {}
    for reason in reasons:
        relation = plan.relations[reason.rel]
        if not reason.holds:
            continue
        if reason.kind == "d" and reason.missing or (
                reason.kind == "c" and relation.parent != plan.table and reason.values_of(relation.child_columns)
                in alive_keys.get((relation.parent, tuple(relation.parent_columns)), ())):
            alive.setdefault(reason.identity, reason)
    for keys in plan.key_sets:
        alive_keys[(plan.table, tuple(keys))] = {r.values_of(keys) for r in alive.values()}
    return set(alive)


class _Reason:
    """Why one doomed row was doomed through one relation, and the live row's state as the look read it."""

    __slots__ = ("plan", "identity", "rel", "kind", "values", "holds", "missing")

    def __init__(self, plan, row):
        width, count = len(plan.identity), len(plan.columns)
        self.plan, self.identity, self.rel, self.kind = plan, tuple(row[:width]), row[width], row[width + 1]
        self.values = tuple(row[width + 2:width + 2 + count])
        self.holds, self.missing = bool(row[-2]), bool(row[-1])

    def values_of(self, columns):
        return tuple(self.values[self.plan.columns.index(c)] for c in columns)


def _unreferenced_still(db, graph, table, keys):
    """--include-unreferenced: the METRIC/ARTIFACT rows of `keys` no link row points at now (round 15: links the
    application saved with their run still pointed at metrics the cleanup then removed). By then every doomed link
    is gone (children first), so a link there now is one that stays. A link table with an index led by its link
    column is probed from the batch's rows (on MySQL a locking read: a link the application writes meanwhile waits
    for the batch); one without is read once, joined to the batch's keys, without locks on MySQL (a scan would lock
    all of it): a link written to it during that batch itself is not seen."""
    quoted, key = db.quote, (graph.primary_keys.get(table) or ("id",))[0]
    sqlite = db.dialect == "sqlite"
    identity = "rowid" if sqlite else quoted(key)
    first = "CROSS JOIN" if sqlite else "STRAIGHT_JOIN"  # the left table outside
    doomed = {k[0] for k in keys}
    marks, scanned = ", ".join("?" * len(keys)), []
    for relation in graph.children_of(table):
        if len(relation.child_columns) != 1:
            continue
        column = relation.child_columns[0]
        if not _leads_an_index(db, relation.child, column):
            scanned.append(relation)
            continue
        linked = "SELECT DISTINCT m.%s FROM %s m %s %s c ON c.%s = m.%s WHERE m.%s IN (%s)%s" % (
            identity, quoted(table), first, quoted(relation.child), quoted(column), quoted(key), identity, marks,
            "" if sqlite else " LOCK IN SHARE MODE")
        doomed -= {r[0] for r in db.query(linked, tuple(k[0] for k in keys))}
    if scanned and doomed:
        wanted = "%swanted_%s" % (TMP, table.lower())
        db.create_temp_table(wanted, "SELECT %s AS i, %s AS k FROM %s WHERE %s IN (%s)" % (
            identity, quoted(key), quoted(table), identity, marks), tuple(k[0] for k in keys), indexes=[["k"]])
        for relation in scanned:
            doomed -= {r[0] for r in db.query("SELECT DISTINCT w.i FROM %s c %s %s w ON w.k = c.%s" % (
                quoted(relation.child), first, quoted(wanted), quoted(relation.child_columns[0])))}
    return [k for k in keys if k[0] in doomed]


def _leads_an_index(db, table, column):
    """Is `column` the first column of one of `table`'s indexes (InnoDB makes one for each foreign key)?"""
    return any(i.columns and i.columns[0].lower() == column.lower() for i in db.indexes_cached(table))


def newest_rowids(db, graph):
    """SQLite: each table's largest rowid now, before a plan is read ({table: rowid}; a table without a rowid or a
    row left out): from here on, rows past what the plan kept are rows written since (ChildrenSince)."""
    if db.dialect != "sqlite":
        return {}
    tops = {}
    for table in graph.tables:
        if graph.relations_of(table) and not without_rowid(db, table):
            tops[table] = db.scalar("SELECT max(rowid) FROM main.%s" % db.quote(table))
    return tops


class ChildrenSince:
    """SQLite: the doomed parents of a batch that a child row written since the plan points at, or a child the run
    left alone (the application changed it): such a parent is left alone too. Children go first, so by a parent's
    batch no planned child points at it; SQLite, enforcing no foreign key, deleted it under the application's new
    epoch, and the epoch became a new violation (round 23; on MySQL the foreign key refuses the delete).

    A row written since the plan has a rowid past every row the plan kept (SQLite gives the next insert the largest
    rowid + 1): the newest rowid before the plan, less the doomed rows at the end (which the cleanup removes, and
    whose rowids the next inserts take again). A child re-pointed at a doomed parent by an UPDATE is not seen."""

    def __init__(self, db, graph, tops, doom_tables):
        self.db, self.graph, self.marks = db, graph, {}
        for table, top in tops.items():
            doomed = doom_tables.get(table)
            if top is None or doomed is None:
                self.marks[table] = top if top is not None else -(2 ** 63)
                continue
            kept = db.query("SELECT rowid FROM main.%s WHERE rowid <= ? AND rowid NOT IN (SELECT i0 FROM temp.%s) "
                            "ORDER BY rowid DESC LIMIT 1" % (db.quote(table), db.quote(doomed)), (top,))
            self.marks[table] = kept[0][0] if kept else -(2 ** 63)
        self.left = "%sleft_alone" % TMP  # rowids of the rows this run left alone, table by table
        db.create_temp_table(self.left, "SELECT '' AS t, 0 AS r WHERE 1 = 0", indexes=[["t", "r"]])

    def left_alone(self, table, keys):
        self.db.executemany("INSERT INTO temp.%s (t, r) VALUES (?, ?)" % self.db.quote(self.left),
                            [(table, k[0]) for k in keys])

    def pointed_at(self, table, keys):
        """The rowids among `keys` (of `table`) that such a child row points at now."""
        db, quoted, found = self.db, self.db.quote, set()
        for relation in self.graph.children_of(table):
            mark = self.marks.get(relation.child)
            if mark is None or relation.child == table:
                continue
            on = " AND ".join("c.%s = p.%s" % (quoted(c), quoted(p)) for c, p in zip(relation.child_columns,
                                                                                  relation.parent_columns))
            # The child's new and left-alone rows outside (CROSS JOIN), each probing the parent's key: a child's
            # foreign key seldom has an index of its own, and probing the child for each parent scanned its tail again
            found |= {r[0] for r in db.query(
                "SELECT DISTINCT p.rowid FROM main.%s c CROSS JOIN main.%s p ON %s WHERE (c.rowid > ? OR c.rowid IN "
                "(SELECT r FROM temp.%s WHERE t = ?)) AND p.rowid IN (%s)" % (
                    quoted(relation.child), quoted(table), on, quoted(self.left), ", ".join("?" * len(keys))),
                (mark, relation.child) + tuple(k[0] for k in keys))}
        return found
