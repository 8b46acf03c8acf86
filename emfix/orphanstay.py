"""Doomed rows a cleanup leaves where they are, and the doomed rows those point at, which must stay with them.

A row stays when it is outside `--tables`, or (MySQL) in a table without a primary key to delete it by. Every
doomed row it points at, up the chain, stays too: removing one would break the key of a row that stays (InnoDB
refuses the delete; SQLite would make a new violation).
"""

import dataclasses
from typing import Dict

from .fksweep import TMP


@dataclasses.dataclass
class Staying:
    """Doomed rows a cleanup leaves where they are, table by table, and why."""

    left_behind: Dict[str, int] = dataclasses.field(default_factory=dict)  # outside --tables
    unkeyed: Dict[str, int] = dataclasses.field(default_factory=dict)  # MySQL, no primary key to delete them by
    held: Dict[str, int] = dataclasses.field(default_factory=dict)  # rows that stay point at them

    def drop_empty(self):
        for counts in (self.left_behind, self.unkeyed, self.held):
            for table in [t for t, c in counts.items() if not c]:
                del counts[table]


def doomed_count(db, plan):
    return int(db.scalar("SELECT count(*) FROM (SELECT DISTINCT %s FROM %s WHERE kind IN ('d', 'c')) x" % (
        plan.identity_list, db.quote(plan.rows_table))) or 0)


def unkeyed_doomed_count(db, plan):
    """The rows of a MySQL table without a primary key that stay doomed: its identity is every column, so identical
    rows are one identity, but each is a row left behind (round 50: three pairs were "3 orphaned rows stay", and
    the validate after it counted 6). NULL-safe, as such a row's NULL links are; the few doomed identities joined to
    the table (its link columns are indexed for their foreign keys), not a probe of them per row of the table."""
    same = " AND ".join("t.%s <=> d.i%d" % (db.quote(c), n) for n, c in enumerate(plan.identity_names))
    return int(db.scalar("SELECT count(*) FROM (SELECT DISTINCT %s FROM %s WHERE kind IN ('d', 'c')) d JOIN %s t ON "
                         "%s" % (plan.identity_list, db.quote(plan.rows_table), db.quote(plan.table), same)) or 0)


HELD_KEYS = TMP + "held_keys"  # scratch: the keys one relation's staying doomed children point at


def held_table(plan):
    return "%sheld_%d" % (TMP, plan.number)


def hold_what_stays_points_at(db, plans, staying):
    """Keep every doomed row that a row left in place points at, up the chain (round 22: on MySQL the rows of a
    table without a key stayed, but the plan doomed the rows they point at, which InnoDB then refused to delete:
    the dry run said 3,672, the run removed 360 and blamed "another process" for the rest; on SQLite such a
    delete made new violations). Returns {table: rows held}; each table's are in its held_table."""
    by_table = {p.table: p for p in plans}
    whole = set(staying.left_behind) | set(staying.unkeyed)
    if not any(staying.left_behind.values()) and not any(staying.unkeyed.values()):
        return {}
    quoted = db.quote
    for plan in plans:
        if plan.table not in whole:
            db.create_temp_table(held_table(plan), "SELECT DISTINCT %s FROM %s WHERE 1 = 0" % (
                plan.identity_list, quoted(plan.rows_table)), indexes=[plan.identity_list.split(", ")])
    grew = True
    while grew:  # children first, so one pass reaches the top of the chain; again while a table refers to itself
        grew = False
        for child in reversed(plans):
            for relation in child.relations:
                parent = by_table.get(relation.parent)
                if parent is None or parent.table in whole:
                    continue
                staying_rows = "" if child.table in whole else " AND EXISTS (SELECT 1 FROM %s s WHERE %s)" % (
                    quoted(held_table(child)), child.same_identity("s", "x"))
                # The keys the staying doomed children point at, indexed, then each doomed parent probes them: a
                # correlated scan of the children's rows for each parent took 2.2 s of 5,010 held rows (MariaDB).
                keys = ["k%d" % n for n in range(len(relation.child_columns))]
                db.create_temp_table(HELD_KEYS, "SELECT DISTINCT %s FROM %s x WHERE x.kind IN ('d', 'c')%s" % (
                    ", ".join("x.%s AS %s" % (child.value_name(c), k) for c, k in zip(relation.child_columns, keys)),
                    quoted(child.rows_table), staying_rows), indexes=[keys])
                points_at = " AND ".join("k.%s = p.%s" % (k, parent.value_name(pc)) for k, pc in zip(
                    keys, relation.parent_columns))
                added = db.execute_scratch(  # (a text link's '5abc' meets an id here: not strict on MariaDB)
                    "INSERT INTO %s (%s) SELECT DISTINCT %s FROM %s p WHERE p.kind IN ('d', 'c') AND EXISTS (SELECT 1 "
                    "FROM %s k WHERE %s) AND NOT EXISTS (SELECT 1 FROM %s h WHERE %s)" % (
                        quoted(held_table(parent)), parent.identity_list, ", ".join(
                            "p.i%d" % n for n in range(len(parent.identity))), quoted(parent.rows_table),
                        quoted(HELD_KEYS), points_at, quoted(held_table(parent)), parent.same_identity("h", "p")))
                grew = grew or (added > 0 and relation.parent == child.table)
    return {p.table: int(db.scalar("SELECT count(*) FROM %s" % quoted(held_table(p))) or 0)
            for p in plans if p.table not in whole}
