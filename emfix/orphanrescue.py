"""Which doomed rows are doomed still: the look inside each delete batch's own transaction.

A cleanup plans from one read of the database; while it deletes, the application may insert a missing
parent, or point an orphan at a parent that exists. The rows of a batch are checked again in the batch's
transaction, up their chain of doomed ancestors only: a row stays doomed while it still holds the key it was
doomed by and that key's parent is still missing, or still doomed itself (outside testers: a repair removed a
trial whose experiment had been re-created meanwhile, and everything under it; then, with the look before each
table and then before each batch, the batch in flight when the parent came).

On SQLite the transaction holds the write lock from its start (BEGIN IMMEDIATE), so nothing commits between the
look and the delete. On MySQL the look's reads are locking reads (INSERT ... SELECT under REPEATABLE READ takes
shared next-key locks on what it reads): a parent inserted meanwhile waits for the batch's commit, and the next
batch sees it.
"""

from .fksweep import TMP, UNREFERENCED_TABLES


def still_doomed(db, graph, plans, table, keys):
    """The `keys` (identities of `table`'s doomed rows) that are doomed still, in their order."""
    by_table = {p.table: p for p in plans}
    plan = by_table.get(table)
    if keys and table in UNREFERENCED_TABLES and (plan is None or not plan.relations):
        return _unreferenced_still(db, graph, table, keys)
    if plan is None or not plan.relations or not keys:
        return list(keys)
    candidates = _ancestors(db, graph, by_table, plan, keys)
    alive = _alive(db, graph, by_table, candidates)
    ids = ["i%d" % n for n in range(len(plan.identity))]
    found = {tuple(r) for r in db.query("SELECT %s FROM %s" % (", ".join(ids), db.quote(alive[table])))}
    return [k for k in keys if tuple(k) in found]


def _unreferenced_still(db, graph, table, keys):
    """--include-unreferenced: the METRIC/ARTIFACT rows of `keys` no link row points at now (round 15: links the
    application saved with their run still pointed at metrics the cleanup then removed). By then every doomed link
    is gone (children first), so a link there now is one that stays. Each link table is read once, joined to the
    batch's keys (it needs no index of its own); on MySQL without locks (a scan of each would lock all of it): a
    link written during the batch itself is not seen."""
    quoted, key = db.quote, (graph.primary_keys.get(table) or ("id",))[0]
    identity = "rowid" if db.dialect == "sqlite" else quoted(key)
    wanted = "%swanted_%s" % (TMP, table.lower())
    db.create_temp_table(wanted, "SELECT %s AS i, %s AS k FROM %s WHERE %s IN (%s)" % (
        identity, quoted(key), quoted(table), identity, ", ".join("?" * len(keys))), tuple(k[0] for k in keys),
        indexes=[["k"]])
    first = "CROSS JOIN" if db.dialect == "sqlite" else "STRAIGHT_JOIN"  # the link table outside, read once
    doomed = {r[0] for r in db.query("SELECT i FROM %s" % quoted(wanted))}
    for relation in graph.children_of(table):
        if len(relation.child_columns) == 1:
            column = quoted(relation.child_columns[0])
            doomed -= {r[0] for r in db.query("SELECT DISTINCT w.i FROM %s c %s %s w ON w.k = c.%s" % (
                quoted(relation.child), first, quoted(wanted), column))}
    return [k for k in keys if k[0] in doomed]


def _ancestors(db, graph, by_table, plan, keys):
    """{table: temporary table of the identities to look at}: the batch's rows, then (children first) the
    doomed parents each one was doomed through, up the chain."""
    quoted = db.quote
    ids = ["i%d" % n for n in range(len(plan.identity))]
    first = "%scand_%d" % (TMP, plan.number)
    one = "(%s)" % ", ".join("?" * len(ids))
    db.create_temp_table(first, "SELECT %s FROM %s WHERE (%s) IN (%s)" % (
        ", ".join(ids), quoted(plan.rows_table), ", ".join(ids), ", ".join([one] * len(keys))),
        tuple(v for k in keys for v in k), indexes=[ids])
    candidates = {plan.table: first}
    order = graph.child_first()
    for table in order[order.index(plan.table):]:
        child = by_table.get(table)
        if table not in candidates or child is None:
            continue
        child_ids = ["i%d" % n for n in range(len(child.identity))]
        for rel_no, relation in enumerate(child.relations):
            parent = by_table.get(relation.parent)
            if parent is None or relation.parent == table:
                continue
            parent_ids = ["i%d" % n for n in range(len(parent.identity))]
            name = candidates.get(parent.table) or "%scand_%d" % (TMP, parent.number)
            select = "SELECT DISTINCT %s FROM %s hp JOIN %s hx ON %s WHERE hx.rel = %d AND hx.kind = 'c' AND EXISTS (" \
                     "SELECT 1 FROM %s c WHERE %s)" % (
                         ", ".join("hp." + i for i in parent_ids), quoted(parent.rows_table), quoted(child.rows_table),
                         " AND ".join("hp.%s = hx.%s" % (parent.value_name(p), child.value_name(c))
                                      for p, c in zip(relation.parent_columns, relation.child_columns)),
                         rel_no, quoted(candidates[table]), " AND ".join("c.%s = hx.%s" % (i, i) for i in child_ids))
            if parent.table in candidates:
                db.execute("INSERT INTO %s %s" % (quoted(name), select))
            else:
                db.create_temp_table(name, select, indexes=[parent_ids])
                candidates[parent.table] = name
    return candidates


def _alive(db, graph, by_table, candidates):
    """{table: temporary table of its candidates doomed still}, parents first."""
    quoted, same_value = db.quote, "IS" if db.dialect == "sqlite" else "<=>"
    still, alive = {}, {}  # (table, key columns) -> temporary table of the keys of its rows doomed still
    for table in graph.parent_first():
        plan = by_table.get(table)
        if table not in candidates or plan is None or not plan.relations:
            continue
        ids = ["i%d" % n for n in range(len(plan.identity))]
        alive[table] = name = "%salive_%d" % (TMP, plan.number)
        db.create_temp_table(name, "SELECT %s FROM %s WHERE 1 = 0" % (", ".join(ids), quoted(plan.rows_table)),
                             indexes=[ids])
        live = " AND ".join("t.%s = h.i%d" % (expr, n) for n, expr in enumerate(plan.identity))
        looked_at = "EXISTS (SELECT 1 FROM %s o WHERE %s)" % (
            quoted(candidates[table]), " AND ".join("o.%s = h.%s" % (i, i) for i in ids))
        for rel_no, relation in enumerate(plan.relations):  # one statement per reason (MySQL: a temporary
            values = [plan.value_name(c) for c in relation.child_columns]  # table once per statement)
            holds = "EXISTS (SELECT 1 FROM %s t WHERE %s AND %s)" % (quoted(table), live, " AND ".join(
                "t.%s %s h.%s" % (quoted(c), same_value, v) for c, v in zip(relation.child_columns, values)))
            missing = " AND ".join("p.%s = h.%s" % (quoted(p), v) for p, v in zip(relation.parent_columns, values))
            reasons = ["h.kind = 'd' AND NOT EXISTS (SELECT 1 FROM %s p WHERE %s)" % (quoted(relation.parent),
                                                                                     missing)]
            keys = still.get((relation.parent, tuple(relation.parent_columns)))
            if keys:
                reasons.append("h.kind = 'c' AND EXISTS (SELECT 1 FROM %s k WHERE %s)" % (quoted(keys), " AND ".join(
                    "k.k%d = h.%s" % (n, v) for n, v in enumerate(values))))
            for reason in reasons:
                db.execute("INSERT INTO %s SELECT %s FROM %s h WHERE h.rel = %d AND %s AND %s AND %s" % (
                    quoted(name), ", ".join("h." + i for i in ids), quoted(plan.rows_table), rel_no, looked_at,
                    reason, holds))
        same = " AND ".join("a.%s = h.%s" % (i, i) for i in ids)
        for n, keys in enumerate(plan.key_sets):
            kept = "%sstill_%d_%d" % (TMP, plan.number, n)
            db.create_temp_table(kept, "SELECT DISTINCT %s FROM %s h WHERE EXISTS (SELECT 1 FROM %s a WHERE %s)" % (
                ", ".join("h.%s AS k%d" % (plan.value_name(c), m) for m, c in enumerate(keys)),
                quoted(plan.rows_table), quoted(name), same), indexes=[["k%d" % m for m in range(len(keys))]])
            still[(table, tuple(keys))] = kept
    return alive
