"""The foreign-key sweep's merge anti-join (SQLite): a relation whose child and parent both have an index
in the same key order is checked by walking the two indexes side by side, not by probing the parent
once per child row.

`SELECT child keys EXCEPT SELECT parent keys ORDER BY keys` is a merge in SQLite when each side can be
read in that order from an index: BATCH_METRIC -> BATCH (3 million rows) takes 0.35 s of CPU instead
of 1.3-1.8 s. Only the distinct missing keys come out; the offending rows are then looked up through
the child's index by those keys (and by the parent's doomed keys, for rows orphaned through a parent),
so each row is judged exactly as the probing sweep judges it: 'n' when a key column is NULL, 'd' when
no parent row has the key, 'c' when the parent row is itself doomed.
"""

from .catalog import is_without_rowid

INTEGER_AFFINITY = "INT"  # SQLite's rule: a declared type containing INT has INTEGER affinity
MAX_ROWID = (1 << 63) - 1
MAX_PARTITIONS = 64  # merges of one relation, each a few statements: beyond that, the probing sweep
DOOMED_KEYS_A_STATEMENT = 1000  # doomed parent keys whose children one short statement reads


def merge_order(db, relation, indexes_of):
    """(partition column or None, child key columns, parent key columns) in the order of an index on each
    side, or None.

    The child's index may lead with one more column (BATCH's (idx, epoch_idx, trial_run_id) for BATCH ->
    EPOCH(idx, trial_run_id)): under each of its values the keys follow the parent's order, so the merge
    runs once per value. That is taken only while those values are few enough that reading the parent's
    index once per value costs less than the child's rows (each merge step is far cheaper than a probe).

    Only where every key column has INTEGER affinity on both sides: there `=` (the probing sweep) and
    the distinctness EXCEPT uses (the merge) compare values alike (numbers by value, other values as
    stored, binary), so both find the same rows. Not where either table or one of its indexes names a
    collation: EXCEPT compares text by the child column's, the probe (and SQLite's own check) by the parent's
    (an outside tester: under a NOCASE child column, 'ABC' with only a parent 'abc' went unfound)."""
    if db.dialect != "sqlite" or relation.parent == relation.child:
        return None
    if not integer_keys(db, relation.child, relation.child_columns) or \
            not integer_keys(db, relation.parent, relation.parent_columns):
        return None
    if names_a_collation(db, relation.child) or names_a_collation(db, relation.parent):
        return None
    width = len(relation.child_columns)
    pairs = dict(zip(relation.child_columns, relation.parent_columns))
    parent_orders = {tuple(i.columns[:width]) for i in indexes_of(db, relation.parent)}
    partitioned = []
    for index in indexes_of(db, relation.child):
        for skip in (0, 1):
            lead = tuple(index.columns[skip:skip + width])
            if len(lead) < width or set(lead) != set(relation.child_columns) or \
                    tuple(pairs[c] for c in lead) not in parent_orders:
                continue
            if not skip:
                return None, list(lead), [pairs[c] for c in lead]
            if index.columns[0] not in relation.child_columns:
                partitioned.append((index.columns[0], list(lead), [pairs[c] for c in lead]))
    for column, lead, parent_lead in partitioned:
        if _few_values(db, relation, column):
            return column, lead, parent_lead
    return None


def _few_values(db, relation, column):
    q = db.quote
    budget = min(MAX_PARTITIONS, 2 * int(db.scalar("SELECT count(*) FROM %s" % q(relation.child)) or 0) // max(
        1, int(db.scalar("SELECT count(*) FROM %s" % q(relation.parent)) or 0)))
    return len(partition_values(db, relation.child, column, budget + 1)) <= budget


def partition_values(db, table, column, limit=None):
    """The distinct values of `table`'s leading index column, NULL first, each found by one index seek."""
    q = db.quote
    found = [None] if db.query("SELECT 1 FROM %s WHERE %s IS NULL LIMIT 1" % (q(table), q(column))) else []
    last = db.query("SELECT min(%s) FROM %s" % (q(column), q(table)))[0][0]
    while last is not None and (limit is None or len(found) < limit):
        found.append(last)
        last = db.query("SELECT %s FROM %s WHERE %s > ? ORDER BY %s LIMIT 1" % (
            q(column), q(table), q(column), q(column)), (last,))
        last = last[0][0] if last else None
    return found


def names_a_collation(db, table):
    """Does the DDL of `table` or of one of its indexes say COLLATE (SQLite)? (The word in a name or a default
    value counts too: the probing sweep, right whatever the collations, then does the work.)"""
    return bool(db.scalar("SELECT count(*) FROM sqlite_master WHERE tbl_name = ? COLLATE NOCASE AND upper(sql) LIKE "
                          "'%COLLATE%'", (table,)))


def integer_keys(db, table, columns):
    """Every one of `columns` has INTEGER affinity in `table` (SQLite)."""
    types = {d.name: d.type for d in db.column_details(table)}
    return all(INTEGER_AFFINITY in str(types.get(c, "")).upper() for c in columns)


def unreferenced_by_merge(db, table, key, links):
    """SELECT of `table`'s keys that no link column holds, as merges (SQLite, INTEGER keys everywhere): the
    table read in key order, each link table's values sorted once, instead of a probe of the links' values per
    row. None where the merge would not compare as NOT IN does.

    `keys EXCEPT links1 EXCEPT links2 ...`, the largest link table first: each EXCEPT sorts its own arm and
    the next ones filter only what is left (10M demo, METRIC: 1.1 s of CPU, against 1.6 s for one EXCEPT of
    the links' UNION ALL, which SQLite first copies into a table of its own to sort)."""
    if db.dialect != "sqlite" or not integer_keys(db, table, [key]) or not all(
            integer_keys(db, r.child, r.child_columns) for r in links):
        return None
    if names_a_collation(db, table) or any(names_a_collation(db, r.child) for r in links):
        return None  # (see merge_order)
    q = db.quote
    arms = ["SELECT %s FROM %s WHERE %s IS NOT NULL" % (q(r.child_columns[0]), q(r.child), q(r.child_columns[0]))
            for r in sorted(links, key=lambda r: -_size_hint(db, r.child))]
    return "SELECT %s AS k FROM %s WHERE %s IS NOT NULL EXCEPT %s ORDER BY 1" % (
        q(key), q(table), q(key), " EXCEPT ".join(arms))


def _size_hint(db, table):
    """About how many rows `table` holds, for an order of work only: its largest rowid (one seek), or 0 for
    a WITHOUT ROWID table."""
    if without_rowid(db, table):
        return 0
    return db.scalar("SELECT max(rowid) FROM %s" % db.quote(table)) or 0


def without_rowid(db, table):
    """`table` is a WITHOUT ROWID table (always so on MySQL: no rowid there)."""
    if db.dialect != "sqlite":
        return True
    return is_without_rowid(db.table_sql(table))  # (not only at the end: `WITHOUT ROWID, STRICT` crashed validate)


def sweep_by_merge(db, order, relation, table, rows_table, rel_no, names, select_list, doomed, scratch,
                   chunk_rows=None):
    """Write the relation's offending rows into `rows_table` (columns `names`; `select_list` names the
    child row's identity and values, alias c) by the merge anti-join. `doomed` is the parent's doomed-keys
    table (k0.. in relation.parent_columns order) or None; `scratch` a free temporary table name.

    With `chunk_rows` (beside an application: in rollback-journal mode a statement holding the read lock for long
    blocks every commit) the merge runs over spans of at most about that many child rows along the child's index
    (`_spans`), each against the same span of the parent's keys; the rows under doomed parents are read
    DOOMED_KEYS_A_STATEMENT doomed keys at a time. The probing sweep in chunks took twice as long (10M demo)."""
    q = db.quote
    partition, child_keys, parent_keys = order
    keys = ", ".join("k%d" % n for n in range(len(child_keys)))
    insert = "INSERT INTO %s (%s) " % (q(rows_table), ", ".join(names))
    selected = ", ".join(select_list)
    nulls = " OR ".join("c.%s IS NULL" % q(c) for c in child_keys)
    within = " AND c.%s IS ?" % q(partition) if partition else ""
    index = " INDEXED BY %s" % q(_child_index(db, table, ([partition] if partition else []) + list(child_keys)))

    def merge(head, span=None):
        """The missing keys among the child's rows of the partition `head` (and `span`), then the rows holding them."""
        child, parent, params = span.conditions(q, child_keys, parent_keys) if span else ([], [], ())
        if span and span.kind == "null":  # a key part is NULL: no parent can match
            db.execute(insert + "SELECT %d, 'n', %s FROM %s c%s WHERE %s%s" % (
                rel_no, selected, q(table), index, " AND ".join("c." + w for w in child), within), params + head)
            return
        children = "SELECT %s FROM %s%s WHERE %s" % (
            ", ".join("%s AS k%d" % (q(c), n) for n, c in enumerate(child_keys)), q(table), index if span else "",
            " AND ".join(child + ["%s IS ?" % q(partition)] if partition else child) or "1")
        parents = "SELECT %s FROM %s WHERE %s" % (", ".join(q(c) for c in parent_keys), q(relation.parent),
                                                  " AND ".join(parent + ["%s IS NOT NULL" % q(c) for c in parent_keys]))
        db.create_temp_table(scratch, "SELECT %s FROM (%s EXCEPT %s ORDER BY %s)" % (keys, children, parents, keys),
                             params + head + params)
        db.execute(insert + "SELECT %d, CASE WHEN %s THEN 'n' ELSE 'd' END, %s FROM %s m CROSS JOIN %s c ON %s%s" % (
            rel_no, nulls, selected, q(scratch), q(table),
            " AND ".join("c.%s IS m.k%d" % (q(c), n) for n, c in enumerate(child_keys)), within), head)
        db.execute("DROP TABLE temp.%s" % q(scratch))

    on_doomed = " AND ".join("c.%s = d.k%d" % (q(c), n) for n, c in enumerate(relation.child_columns))
    for value in partition_values(db, table, partition) if partition else [None]:
        head = (value,) if partition else ()
        if not chunk_rows:
            merge(head)
            if doomed:
                db.execute(insert + "SELECT %d, 'c', %s FROM %s d CROSS JOIN %s c ON %s%s" % (
                    rel_no, selected, q(doomed), q(table), on_doomed, within), head)
            continue
        for span in _spans(db, table, index, child_keys, "c.%s IS ?" % q(partition) if partition else None, head,
                           chunk_rows):
            merge(head, span)
        for start, end in rowid_ranges(db, doomed, DOOMED_KEYS_A_STATEMENT, temp=True) if doomed else ():
            db.execute(insert + "SELECT %d, 'c', %s FROM %s d CROSS JOIN %s c ON %s%s WHERE %s" % (
                rel_no, selected, q(doomed), q(table), on_doomed, within, in_rowid_range("d", start, end)), head)


def _child_index(db, table, columns):
    """The name of an index of `table` that leads with `columns` (merge_order found one)."""
    return next(i.name for i in db.indexes_cached(table) if list(i.columns[:len(columns)]) == list(columns))


class _Span:
    """Child rows whose first key parts equal `prefix` and whose next part is NULL ("null"), equals `low`
    ("equal"), lies in [low, high) ("range"; `high` None: from `low` on), or is over `low` ("after"; `low` None:
    not NULL)."""

    def __init__(self, prefix, kind, low=None, high=None):
        self.prefix, self.kind, self.low, self.high = prefix, kind, low, high

    def conditions(self, quote, child_keys, parent_keys):
        """(child conditions, parent conditions, parameters of either): plain comparisons an index seeks."""
        def side(columns):
            where = ["%s = ?" % quote(c) for c in columns[:len(self.prefix)]]
            column = quote(columns[len(self.prefix)])
            if self.kind == "null":
                return where + ["%s IS NULL" % column]
            if self.kind == "after":
                return where + (["%s > ?" % column] if self.low is not None else ["%s IS NOT NULL" % column])
            if self.kind == "equal":
                return where + ["%s = ?" % column]
            return where + ["%s >= ?" % column] + (["%s < ?" % column] if self.high is not None else [])
        bounds = {"null": (), "equal": (self.low,), "after": () if self.low is None else (self.low,)}.get(
            self.kind, (self.low,) + (() if self.high is None else (self.high,)))
        return side(child_keys), side(parent_keys), self.prefix + bounds


def _spans(db, table, index, child_keys, partition, head, chunk_rows, prefix=()):
    """Spans (_Span) that together hold each child row of the partition once, each of at most about `chunk_rows`
    rows where keys allow: runs of whole values of the next key part under `prefix`, found by an index seek
    `chunk_rows` entries on; a value with more rows than that is split by the part after it (the last part's
    value is taken whole). Plain comparisons, not row values: SQLite checks those per row, twice as slow."""
    q = db.quote
    column = q(child_keys[len(prefix)])
    where = " AND ".join(([partition] if partition else []) + ["c.%s = ?" % q(c) for c in child_keys[:len(prefix)]]
                         ) or "1"
    yield _Span(prefix, "null")
    last = len(prefix) + 1 == len(child_keys)
    low = db.scalar("SELECT min(c.%s) FROM %s c%s WHERE %s" % (column, q(table), index, where), head + prefix)
    below = None  # the last value taken whole, when `low` is the first value over it
    while low is not None:
        if not exact_bound(low):
            yield _Span(prefix, "after", below)  # the rest as one span
            return
        high = db.query("SELECT c.%s FROM %s c%s WHERE %s AND c.%s >= ? ORDER BY c.%s LIMIT 1 OFFSET %d" % (
            column, q(table), index, where, column, column, chunk_rows), head + prefix + (low,))
        if not high or not exact_bound(high[0][0]):
            yield _Span(prefix, "range", low)
            return
        if high[0][0] != low:
            yield _Span(prefix, "range", low, high[0][0])
            low = high[0][0]
            continue
        if last:
            yield _Span(prefix, "equal", low)
        else:
            yield from _spans(db, table, index, child_keys, partition, head, chunk_rows, prefix + (low,))
        below = low
        low = db.scalar("SELECT min(c.%s) FROM %s c%s WHERE %s AND c.%s > ?" % (column, q(table), index, where,
                                                                                column), head + prefix + (low,))


def exact_bound(value):
    """Does `value`, read from an index and bound again as a parameter, compare as the stored value does? A number,
    text, a BLOB do; TEXT whose bytes are not UTF-8 is read as bytes and would be bound as a BLOB, which sorts after
    every text (an outside tester: a span starting at one left that row unswept). Such a value ends the splitting."""
    return isinstance(value, (int, float, str)) or type(value) is bytes


def rowid_ranges(db, table, size, temp=False):
    """[start, end) rowid ranges `size` rowids wide covering `table`'s rows (a rowid table; `temp`: a temporary one),
    made as they are asked for, each next start the first rowid after the last range (one seek: an empty stretch is
    skipped, rowids from -2**63 to 2**63-1 made 10**14 ranges); the last end None where start + size would pass the
    largest rowid."""
    name = ("temp." if temp else "") + db.quote(table)
    start = db.scalar("SELECT min(rowid) FROM %s" % name)
    while start is not None:
        if start + size > MAX_ROWID:
            yield start, None
            return
        yield start, start + size
        start = db.scalar("SELECT min(rowid) FROM %s WHERE rowid >= ?" % name, (start + size,))


def in_rowid_range(alias, start, end):
    """The condition of rowid_ranges' range [start, end) on `alias`."""
    return "%s.rowid >= %d%s" % (alias, start, "" if end is None else " AND %s.rowid < %d" % (alias, end))
