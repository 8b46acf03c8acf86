"""migrate's proof: the subtree counted and checksummed on both sides, ids mapped, table by table.

Checksums are order-independent (XOR of each row's SHA-256), taken by emfix row by row, or inside
the server when both ends are MySQL with the same column types; DST's narrower columns (a FLOAT
total_val, a DATETIME without fraction) make SRC's values count as DST stores them.
"""

import dataclasses
import hashlib
import json
from typing import Dict

from .errors import OperationInterrupted
from .hierarchy import ROOT, count_subtree, reach_subtree
from .idshift import column_shifts, id_owner
from .schema import discover_graph
from .values import as_stored, canonical


@dataclasses.dataclass
class TableCheck:
    table: str
    source_rows: int
    target_rows: int
    source_checksum: str = ""
    target_checksum: str = ""
    narrowed: Dict[str, int] = dataclasses.field(default_factory=dict)  # column: values DST keeps less of

    @property
    def ok(self):
        return self.source_rows == self.target_rows and self.source_checksum == self.target_checksum


def checksum(db, graph, table, where, moves, limits=None, columns=None):
    """Order-independent: XOR of each row's SHA-256 (ids already moved), with the row count; of `columns`
    (by default all the table's).

    `limits` (DST's columns that keep less than SRC holds, such as the application's FLOAT total_val on
    MySQL) make SRC's values count as DST stores them; how many that changed is returned per column."""
    columns = columns or graph.columns[table]
    lowered = {k.lower(): v for k, v in (limits or {}).items()}
    narrow = [(i, lowered[c.lower()]) for i, c in enumerate(columns) if c.lower() in lowered]
    as_text = [(i, limit) for i, limit in narrow if limit.kind == "text"]  # (after the ids moved: a link's digits)
    narrow = [(i, limit) for i, limit in narrow if limit.kind != "text"]
    narrowed = dict.fromkeys((columns[i] for i, _ in narrow + as_text), 0)
    acc, count = 0, 0
    for row in db.iter_rows("SELECT %s FROM %s t WHERE %s" % (db.exact_columns(table, columns, "t."),
                                                               db.quote(table), where), arraysize=2000):
        if narrow:
            row = list(row)
            for i, limit in narrow:
                kept = as_stored(row[i], limit)
                if canonical(kept) != canonical(row[i]):
                    narrowed[columns[i]] += 1
                    row[i] = kept
        row = [canonical(v) for v in row]
        for i, move in moves:
            if isinstance(row[i], int):
                row[i] += move
        for i, limit in as_text:
            kept = as_stored(row[i], limit)
            if kept != row[i]:
                narrowed[columns[i]] += 1
                row[i] = kept
        acc ^= int.from_bytes(hashlib.sha256(json.dumps(row, default=str).encode()).digest()[:16], "big")
        count += 1
    return count, "%032x" % acc, {c: n for c, n in narrowed.items() if n}


def same_types(source, target, table):
    """Both MySQL tables' columns declared alike, character sets included: each side's server hashes the bytes its
    column holds (round 35: text copied into a latin1 column was the same text in other bytes, and said DIFFERS)."""
    def declared(db):
        return {name: (c.declared, c.charset) for name, c in db.declared_columns(table).items()}
    return declared(source) == declared(target)


def server_checksum(db, table, columns, where, moves):
    """Both ends MySQL with the same column types: each side hashes its rows in the server (SHA-256 of
    every column's exact value, NULL marked, ids moved), XORed over the rows, so nothing but two numbers
    crosses the wire. A changed bit or microsecond changes the sum; the two sides read alike only
    because their columns are the same types."""
    shift = dict(moves)
    parts = []
    for i, column in enumerate(columns):
        value = db.exact_column(table, column, "t.")
        if shift.get(i):
            value = "(%s + %d)" % (value, int(shift[i]))
        parts.append("IFNULL(CONCAT('v', HEX(CONCAT(%s))), 'N')" % value)  # CONCAT: a number's shortest exact text
    digest = "SHA2(CONCAT_WS(',', %s), 256)" % ", ".join(parts)
    halves = ", ".join("BIT_XOR(CAST(CONV(SUBSTRING(%s, %d, 16), 16, 10) AS UNSIGNED))" % (digest, start)
                       for start in (1, 17))
    count, high, low = db.query("SELECT COUNT(*), %s FROM %s t WHERE %s" % (halves, db.quote(table), where))[0]
    return int(count or 0), "%016x%016x" % (int(high or 0), int(low or 0))


def verify_copy(source, target, graph, tree, tables, offsets, experiment_id, strategy, source_counts,
                interrupted=None, target_graph=None, beside=None):
    """Counts (and, unless aggressive, checksums) of the subtree on both sides, ids mapped; SRC's
    counts were taken before the copy, in the same read. `interrupted()` (Ctrl-C) is asked before each table.
    `target_graph`: DST's, read by the caller (migrate: while no other copy reserves its ids); `beside`: a second
    connection to DST, which counts METRIC/ARTIFACT meanwhile (aggressive)."""
    target_graph = with_source_relations(target_graph or discover_graph(target), graph, tables)
    if strategy == "aggressive":  # counts only: DST's rows counted where they are (no key table of the leaves)
        new_tree, target_counts = None, count_subtree(target, target_graph, experiment_id + offsets.get(ROOT, 0),
                                                      beside)
    else:
        new_tree, target_counts = reach_subtree(target, target_graph, experiment_id + offsets.get(ROOT, 0)), None
    checks = []
    for table in tables:
        if interrupted is not None and interrupted():
            raise OperationInterrupted("interrupted while verifying the copy (%d of %d tables checked); every row "
                                       "is copied and committed" % (len(checks), len(tables)),
                                       hint="run the same command with --resume to verify it")
        if target_counts is not None:
            checks.append(TableCheck(table, source_counts[table], target_counts.get(table, 0)))
            continue
        columns = graph.columns[table]
        moves = column_shifts(graph, table, columns, offsets)
        src_where = tree.where(source, graph, table)
        dst_where = new_tree.where(target, target_graph, table)
        if source.dialect == target.dialect == "mysql" and same_types(source, target, table):
            a, sa = server_checksum(source, table, columns, src_where, moves)
            b, sb = server_checksum(target, table, columns, dst_where, [])
            checks.append(TableCheck(table, a, b, sa, sb))
            continue
        a, sa, narrowed = checksum(source, graph, table, src_where, moves, target.storage_limits(table))
        b, sb, _ = checksum(target, target_graph, table, dst_where, [], columns=columns)  # DST's own columns aside
        checks.append(TableCheck(table, a, b, sa, sb, narrowed))
    return checks


def with_source_relations(target_graph, graph, tables):
    """DST's graph with the relations of SRC's copied tables that DST does not declare: the copy put each row under
    its parent by SRC's relations, so DST's rows are reached by the same ones (round 33: a table DST made without
    its foreign key was counted 0 rows, and a copy exact to the bit said DIFFERS, for every --resume too)."""
    known = {t.lower(): t for t in target_graph.tables}

    def shape(r):
        return r.child.lower(), tuple(c.lower() for c in r.child_columns), r.parent.lower()
    have = {shape(r) for r in target_graph.relations}
    lacking = [dataclasses.replace(r, child=known[r.child.lower()], parent=known[r.parent.lower()])
               for r in graph.relations if r.child in tables and r.child.lower() in known
               and r.parent.lower() in known and shape(r) not in have]
    return dataclasses.replace(target_graph, relations=list(target_graph.relations) + lacking) if lacking \
        else target_graph


def count_in_engine(db, graph, tree, tables, offsets, source_counts, schema):
    """SQLite into SQLite with DST attached to SRC's connection as `schema`: DST's rows of the copy counted
    through SRC's key tables (the rows the walk of SRC reached, with their keys and links), each joined to
    DST's row with the same columns, ids moved. A row missing in DST, copied twice or under another parent
    makes the counts differ, as a second walk of DST would. SRC's counts are `source_counts`, taken in
    SRC's moment. None (verify as usual) when a key table holds a NULL or a table has no primary key:
    there the join would not count one DST row per SRC row."""
    sums = []
    for table in tables:
        found = tree.keys(graph, table)
        if found is None:
            sums.append("0")
            continue
        name, key = found
        if table in tree.held and not graph.primary_keys.get(table):
            return None
        columns = list(tree.columns[table]) if table in tree.held else key
        x = ["x.%s" % db.quote(c) for c in columns]
        if db.scalar("SELECT 1 FROM %s x WHERE %s LIMIT 1" % (db.quote(name), " OR ".join(
                "%s IS NULL" % c for c in x))):
            return None
        match = []
        for column, value in zip(columns, x):
            shift = offsets.get(id_owner(graph, table, column), 0)
            if shift:
                value = "CASE WHEN typeof(%s) = 'integer' THEN %s + %d ELSE %s END" % (value, value, shift, value)
            match.append("d.%s = %s" % (db.quote(column), value))
        sums.append("(SELECT count(*) FROM %s x%s JOIN %s.%s d ON %s)" % (
            db.quote(name), _in_key_order(db, name, graph.primary_keys.get(table) or key), schema, db.quote(table),
            " AND ".join(match)))
    counts = db.query("SELECT %s" % ", ".join(sums))[0] if sums else ()
    return [TableCheck(table, source_counts[table], int(n or 0)) for table, n in zip(tables, counts)]


def _in_key_order(db, name, key):
    """` INDEXED BY` the key table's index on the table's primary key, when it has one: its rows are then read
    in key order, so DST's rows are looked up in the order of DST's own key (about 3 times fewer page misses
    than in the key table's insertion order)."""
    for _seq, index, *_rest in db.query("PRAGMA temp.index_list(%s)" % db.quote(name)):
        if [row[2] for row in db.query("PRAGMA temp.index_info(%s)" % db.quote(index))] == list(key):
            return " INDEXED BY %s" % db.quote(index)
    return ""
