"""How the walk of an experiment's subtree (hierarchy.py) tells a row in: membership of a key table, the tables
that hang off the METRIC/ARTIFACT rows the subtree links, and the rows a table reaches through its links to itself.
"""

ROWID = "emfix_rowid"  # the column of a SQLite key table that holds its table's rowid (Subtree.rowids)


def same_keys(db, alias, columns, other, other_columns):
    """`alias.a = other.x AND alias.b = other.y`: the row `alias` and the row `other` hold the same key."""
    return " AND ".join("%s.%s = %s.%s" % (alias, db.quote(a), other, db.quote(b))
                        for a, b in zip(columns, other_columns))


def member(db, alias, columns, held_table, held_columns):
    """`(c.a, c.b) IN (SELECT x.a, x.b FROM held x)`: unlike a correlated EXISTS, the planner can drive
    this from the (small) held table through an index on c, or skip-scan one whose lead column has few values."""
    mine = ", ".join("%s.%s" % (alias, db.quote(c)) for c in columns)
    theirs = ", ".join("x.%s" % db.quote(c) for c in held_columns)
    if len(columns) > 1:
        mine, theirs = "(%s)" % mine, theirs
    return "%s IN (SELECT %s FROM %s x)" % (mine, theirs, db.quote(held_table))


def attached_tables(graph, held, linked):
    """[(table, its links to METRIC/ARTIFACT or to a table before it here)], parents first, for the tables the walk
    does not reach whose rows hang off METRIC or ARTIFACT rows (an application's METRIC_NOTE(metric_id, note), and a
    table linking to that one): they go where those rows go (round 50: left out of migrate and export without a
    word, while the rows they point at were copied; round 51: the table linking to METRIC_NOTE too)."""
    found, reached = [], set()
    for table in graph.parent_first():
        links = [r for r in graph.relations_of(table) if r.parent in reached or (
            r.parent in linked and list(r.parent_columns) == [linked[r.parent][1]])]
        if table not in held and table not in linked and table not in reached and links:
            found.append((table, links))
            reached.add(table)
    return found


def attached_columns(graph, table):
    """The columns an attached table's key table keeps: its key, its links, the keys its children look up."""
    return list(dict.fromkeys(list(graph.primary_keys.get(table) or ()) + [
        c for r in graph.relations_of(table) for c in r.child_columns] + [
        c for r in graph.children_of(table) for c in r.parent_columns] + [
        c for r in graph.relations_of(table) if r.parent == table for c in r.parent_columns]))


def self_links(graph, table, columns):
    """`table`'s links to itself whose parent columns its key table (`columns`) keeps."""
    return [r for r in graph.relations_of(table) if r.parent == table and set(r.parent_columns) <= set(columns)]


def close_over_self_links(db, graph, table, name, columns, rowid=None):
    """Add to key table `name` the rows of `table` that reach a held row only through the table's links to itself (a
    note answering a note of the experiment, its own links NULL), level by level until a level adds none (round 52:
    left out of migrate and export, exit 0). Each level is a table of its own: MySQL reads a temporary table once a
    statement."""
    q, links = db.quote, self_links(graph, table, columns)
    if not links:
        return
    # A row is told by its primary key, or its rowid (SQLite), or else by the columns its key table holds, NULL-safe
    # (MySQL without a key: rows alike in those are taken at the same level, whatever their other columns hold)
    identity = list(graph.primary_keys.get(table) or ([ROWID] if rowid else columns))
    same = "=" if graph.primary_keys.get(table) or rowid else ("IS" if db.dialect == "sqlite" else "<=>")
    mine = ["c.%s" % (rowid if c == ROWID else q(c)) for c in identity]
    select = "SELECT %s FROM %s c WHERE (%%s) AND NOT EXISTS (SELECT 1 FROM %s y WHERE %s)" % (
        ", ".join(["c.%s" % q(c) for c in columns] + (["c.%s AS %s" % (rowid, ROWID)] if rowid else [])), q(table),
        q(name), " AND ".join("y.%s %s %s" % (q(c), same, m) for c, m in zip(identity, mine)))
    level = name + "_l"
    db.create_temp_table(level, "SELECT * FROM %s" % q(name))
    while True:
        db.create_temp_table(level + "n", select % " OR ".join(
            member(db, "c", r.child_columns, level, r.parent_columns) for r in links))
        if not int(db.scalar("SELECT count(*) FROM %s" % q(level + "n")) or 0):
            break
        db.execute("INSERT INTO %s SELECT * FROM %s" % (q(name), q(level + "n")))
        db.create_temp_table(level, "SELECT * FROM %s" % q(level + "n"))
    for scratch in (level, level + "n"):
        db.drop_temp_table(scratch)
