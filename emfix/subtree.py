"""One experiment's subtree as reach_subtree (hierarchy.py) holds it: temporary key tables of its rows, and how
each table's rows are read through them (by key, by the rowid the walk kept, or from the key table alone)."""

import dataclasses
from typing import List

from .subtreelinks import ROWID, member, same_keys


def holds_every_column(graph, table, columns):
    """A key table keeping `columns` of `table` holds its every column (a table whose key is all its columns)."""
    return {c.lower() for c in graph.columns[table]} <= {c.lower() for c in columns}


@dataclasses.dataclass
class Subtree:
    """One experiment's rows, held as temporary key tables on the connection that reached them."""

    experiment_id: int
    exists: bool
    held: dict  # table -> temporary table of its reached rows (key and link columns), attached tables included
    columns: dict  # table -> the columns that temporary table holds
    order: List[str]  # EXPERIMENT first, then the hierarchy tables parents first
    linked: dict = dataclasses.field(default_factory=dict)  # METRIC/ARTIFACT -> (temp table of ids, id column)
    # SQLite tables without a primary key -> the name their rowid reads by, which their key table keeps as ROWID:
    # a page of their rows is then a range of the key table and one seek per row (pages.py)
    rowids: dict = dataclasses.field(default_factory=dict)
    # SQLite tables whose primary key is an index of its own and whose key table lacks a column (BATCH) -> the name
    # their rowid reads by, kept too (reach_subtree's seek_rowids: one moment): a row is then one seek, not two
    seeks: dict = dataclasses.field(default_factory=dict)

    def keys(self, graph, table):
        """(temporary key table, its key columns) for any table of the subtree, or None."""
        if table in self.held:
            return self.held[table], list(graph.primary_keys.get(table) or self.columns[table])
        if table in self.linked:
            name, column = self.linked[table]
            return name, [column]
        return None

    def where(self, db, graph, table, alias="t"):
        """SQL condition on `table` selecting the subtree's rows: reached rows, or METRIC/ARTIFACT rows linked."""
        found = self.keys(graph, table)
        if found is None:
            return "1 = 0"
        name, key = found
        if table in self.held and not graph.primary_keys.get(table):
            # A table without a primary key is held by its link columns, and a row with NULL in one of them (a note
            # of a trial, of no run) matched no held row through IN: left out, exit 0 (round 49; from MySQL too,
            # found after it). IS and <=> are NULL-safe.
            same = "IS" if db.dialect == "sqlite" else "<=>"
            return "EXISTS (SELECT 1 FROM %s x WHERE %s)" % (db.quote(name), " AND ".join(
                "x.%s %s %s.%s" % (db.quote(c), same, alias, db.quote(c)) for c in key))
        return member(db, alias, key, name, key)

    def referenced_where(self, db, graph, root, alias="t"):
        """For METRIC/ARTIFACT: rows a reached link row points at; None when no link table was reached."""
        return self.where(db, graph, root, alias) if root in self.linked else None

    def source(self, db, graph, table, alias="t"):
        """(FROM clause, key expressions, key column names): the subtree's rows of `table` read through
        its key table, so a page in key order costs the page, not a scan of the table. A table without
        a primary key is read by condition (its key table may hold duplicates)."""
        found = self.keys(graph, table)
        if found is None or (not graph.primary_keys.get(table) and table not in self.linked):
            names = list(graph.primary_keys.get(table) or graph.columns[table])
            return ("%s %s WHERE %s" % (db.quote(table), alias, self.where(db, graph, table, alias)),
                    ["%s.%s" % (alias, db.quote(c)) for c in names], names)
        name, key = found
        seek = "%s.%s = x.%s AND " % (alias, self.seeks[table], ROWID) if table in self.seeks else ""
        return ("%s x JOIN %s %s ON %s%s" % (db.quote(name), db.quote(table), alias, seek,
                                             same_keys(db, "x", key, alias, key)),
                ["x.%s" % db.quote(c) for c in key], key)

    def copy_source(self, db, graph, table):
        """(FROM clause, alias of the row's columns) for a copy's pages of `table`: `source` (alias t), or, on SQLite,
        the key table alone (alias x) where it holds every column of a table with a primary key (BATCH_METRIC,
        EPOCH_METRIC, the link tables): the walk copied those rows at this moment, values as stored (the same
        declared affinity), so the seek into the table per row is left out (BATCH_METRIC's 132k rows of the 10M
        demo, experiment 1: 0.27 s -> 0.18 s of SQLite's work on the pages)."""
        if db.dialect == "sqlite" and graph.primary_keys.get(table) and table in self.held and \
                holds_every_column(graph, table, self.columns[table]):
            return "%s x" % db.quote(self.held[table]), "x"
        return self.source(db, graph, table)[0], "t"

    def rows(self, db, graph, table, *conditions):
        """What follows FROM to read the subtree's rows of `table` (alias t) that meet `conditions`: through its key
        table, as `source` and so the copy read them. (`T t WHERE (keys) IN (SELECT ...)` made SQLite copy the key
        table into a list of its own first: a check of BATCH's 132k rows of the 10M demo took 0.6 s, 0.36 s so.)
        `source` ends in an ON or WHERE clause: each condition is one more AND term of it."""
        return self.source(db, graph, table)[0] + "".join(" AND (%s)" % c for c in conditions)

    def count(self, db, graph, table):
        """How many rows of `table` the subtree holds, counted through its key table (the cost of the
        subtree, not of a scan of the table)."""
        if table in self.held:  # its key table was filled from the table's own rows, one row each
            return int(db.scalar("SELECT count(*) FROM %s" % db.quote(self.held[table])) or 0)
        source = self.source(db, graph, table)[0]
        return int(db.scalar("SELECT count(*) FROM %s" % source) or 0)

    def tables(self, graph):
        """Parents first: the hierarchy tables reached, METRIC and ARTIFACT where a link table reached points at
        them (round 46: without one, a copy read METRIC's pages through a key table it never had: exit 70), and the
        tables hanging off those."""
        return [t for t in graph.parent_first() if t in self.held or t in self.linked]
