"""Rows of an experiment's subtree that no copy could keep as they are, refused before migrate or export writes
anything: rows with NULL in their primary key, rows whose links reach out of the experiment, and (migrate's
`--skip-tables`) tables left out that other copied rows need.

Each reads the walk's key tables (hierarchy.reach_subtree), not the tables themselves.
"""

from .errors import DamagedInputError, UsageError
from .schema import EM_TABLE_NAMES, table_named
from .subtreelinks import same_keys


def refuse_rows_no_copy_keeps(db, graph, tree, done, tables=None):
    """What migrate's copy and export's file could not keep as it is, refused before anything is written (`done`:
    "copied", "exported") in `tables` (default: every table of the subtree)."""
    tables = tree.tables(graph) if tables is None else tables
    refuse_rows_without_a_key(db, graph, tree, done, tables)
    refuse_links_out_of_the_subtree(db, graph, tree, done, tables)


def _elsewhere(db, relation, parent_columns):
    """` AND` the row x's parent through `relation` is a row of its table (of another experiment, not missing)."""
    return " AND EXISTS (SELECT 1 FROM %s o WHERE %s)" % (db.quote(relation.parent), same_keys(
        db, "o", parent_columns, "x", relation.child_columns))


def refuse_links_out_of_the_subtree(db, graph, tree, done, tables):
    """Rows of a table with two or more links into the hierarchy (an application's NOTES(trial_id, run_id)) whose
    other link points at a row the experiment does not hold (a run of another experiment, or none): the walk takes
    such a row through one link, and the copy moves every id by its offset, so the other link came to point at a row
    that was never copied, or at another one (round 50: exit 0, verify "ok"; --all copied the row once for each
    experiment). A table of the Experiment Manager has one such link; its others go to METRIC or ARTIFACT, whose
    rows the copy takes along. A table's links to itself are checked whatever else it has: a row pointing at a row
    of another experiment is refused (round 52: exit 0, DST's link broken); at a row that is nowhere, it dangles in
    DST as in SRC."""
    q = db.quote
    for table in tables:
        if table not in tree.held:
            continue
        if table in tree.order:  # walked: its links into the hierarchy
            inward = [(r, tree.held[r.parent], r.parent_columns) for r in graph.relations_of(table)
                      if r.parent in tree.held and r.parent != table]
        else:  # hanging off METRIC/ARTIFACT rows (_attached): its links to them and to tables hanging off them
            # (METRIC_PAIR(a, b), one of them another experiment's)
            inward = [(r, tree.linked[r.parent][0], r.parent_columns) for r in graph.relations_of(table)
                      if r.parent in tree.linked and list(r.parent_columns) == [tree.linked[r.parent][1]]] + [
                (r, tree.held[r.parent], r.parent_columns) for r in graph.relations_of(table)
                if r.parent in tree.held and r.parent not in tree.order and r.parent != table]
        selves = [r for r in graph.relations_of(table)
                  if r.parent == table and set(r.parent_columns) <= set(tree.columns[table])]
        # (a row reached through a link to itself has its other links checked too, against rows that are elsewhere)
        checks = [(r, keys, columns, "" if len(inward) >= 2 else _elsewhere(db, r, r.parent_columns))
                  for r, keys, columns in inward] if len(inward) >= 2 or selves else []
        for n, relation in enumerate(selves):  # its links to itself: a note answering another experiment's
            # (a copy of the parents held: MySQL reads a temporary table once a statement)
            db.create_temp_table("%s_p%d" % (tree.held[table], n), "SELECT %s FROM %s" % (", ".join(
                q(c) for c in relation.parent_columns), q(tree.held[table])))
            checks.append((relation, "%s_p%d" % (tree.held[table], n), relation.parent_columns,
                           _elsewhere(db, relation, relation.parent_columns)))
        for relation, parent_keys, parent_columns, existing in checks:
            outside = " AND ".join(["x.%s IS NOT NULL" % q(c) for c in relation.child_columns] + [
                "NOT EXISTS (SELECT 1 FROM %s p WHERE %s)" % (q(parent_keys), same_keys(
                    db, "p", parent_columns, "x", relation.child_columns))]) + existing
            found = int(db.scalar("SELECT count(*) FROM %s x WHERE %s" % (q(tree.held[table]), outside)) or 0)
            if found:
                raise DamagedInputError(
                    "%s row%s of %s in experiment %d link%s through %s to %s rows outside it (another experiment's, "
                    "or missing): a copy of one experiment moves every id it copies, so %s would point at a row "
                    "that is not there, or another one; nothing was %s" % (
                        "{:,}".format(found), "" if found == 1 else "s", table, tree.experiment_id,
                        "s" if found == 1 else "", ", ".join(relation.child_columns), relation.parent,
                        "that link" if found == 1 else "those links", done),
                    hint="point %s at rows of experiment %d, or set %s NULL, or leave %s out (--skip-tables, "
                         "migrate), then run again" % (
                             ", ".join(relation.child_columns), tree.experiment_id,
                             ", ".join(relation.child_columns), table))


def refuse_rows_without_a_key(db, graph, tree, done, tables):
    """Rows of the subtree with NULL in a column of their primary key (SQLite keeps such a row; a BATCH_METRIC row
    of no metric): every copy reads a table's rows by key, through its key table, and a NULL matches none, so they
    were left out of migrate's copy and export's file, exit 0, verify "ok" (round 48: 3 rows of 74). Refused before
    anything is written (`done`: "copied", "exported"). (MySQL keeps no NULL in a primary key.)"""
    if db.dialect != "sqlite":
        return
    for table in tables:
        key = graph.primary_keys.get(table)
        if table not in tree.held or not key:
            continue
        unkeyed = " OR ".join("%s IS NULL" % db.quote(c) for c in key)
        found = int(db.scalar("SELECT count(*) FROM %s WHERE %s" % (db.quote(tree.held[table]), unkeyed)) or 0)
        if found:
            raise DamagedInputError(
                "%s row%s of %s in experiment %d %s NULL in %s primary key (%s), by which every copy reads a row: "
                "%s would be left out; nothing was %s" % (
                    "{:,}".format(found), "" if found == 1 else "s", table, tree.experiment_id,
                    "has" if found == 1 else "have", "its" if found == 1 else "their", ", ".join(key),
                    "it" if found == 1 else "they", done),
                hint="give those rows their key in the source, or delete them if they mean nothing (SELECT * FROM %s "
                     "WHERE %s finds them), then run again" % (db.quote(table), unkeyed))


def refuse_skipped_parents(db, graph, tree, tables, skipped):
    """`--skip-tables T` while a table the copy takes links to T: its rows were written without theirs (round 52:
    80 rows, then validate FAIL, the verify saying 0 arrived). Refused before anything is written, as import
    refuses skipping a table the database has."""
    for parent in (t for t in tree.tables(graph) if t in skipped):
        children = sorted({r.child for r in graph.children_of(parent) if r.child in tables and r.child != parent})
        rows = {c: tree.count(db, graph, c) for c in children}
        linked = [c for c in children if rows[c]]
        if linked:
            raise UsageError("--skip-tables %s: %s link%s to it (%s of this experiment), and would be copied without "
                             "the rows they point at; nothing was copied" % (
                                 parent, ", ".join(linked), "s" if len(linked) == 1 else "",
                                 ", ".join("%s %s rows" % (c, "{:,}".format(rows[c])) for c in linked)),
                             hint="leave them out too: --skip-tables %s" % ",".join([parent] + linked))


def skipped_tables(db, graph, tree, names):
    """migrate's `--skip-tables` as SRC spells its tables (SQLite and MySQL names are matched in any letter case, as
    import matches them: `answer` skipped nothing), refused when it names no table of SRC (a typo left the table
    in) or an Experiment Manager table holding rows of the experiment: the METRIC rows a skipped RESULTS_METRIC links
    were copied all the same, and the verify, which finds them through it, said DIFFERS for ever (round 53)."""
    found = {}
    for name in names or ():
        table = table_named(name, graph.tables)
        if table is None:
            raise UsageError("--skip-tables %s: %s has no table %s" % (",".join(names), db.address.display(), name),
                             hint="name tables as SRC has them (`emfix schema show SRC` lists them)")
        found[table] = name
    copied = set(tree.tables(graph))
    ours = [t for t in found if t in EM_TABLE_NAMES and t in copied and tree.count(db, graph, t)]
    if ours:
        raise UsageError("--skip-tables %s: %s %s the Experiment Manager's, which a copy of an experiment takes whole; "
                         "nothing was copied" % (",".join(names), ", ".join(ours), "is" if len(ours) == 1 else "are"),
                         hint="leave out only an application's own tables (--init creates the Experiment Manager's "
                              "tables DST lacks)")
    return set(found)
