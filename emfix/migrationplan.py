"""A migration script from a rated schema diff: the DDL itself (not a template), ordered and wrapped
by a strategy, each step headed by the change it makes and its rating.

- safe: a verified snapshot first (the command to take it is the first step), then one statement
  per step, so a failure stops at a known point;
- fast: every statement in one transaction (on MySQL each DDL statement commits by itself: said so);
- minimal-downtime: what can run while the application writes (new tables, new indexes, nullable
  new columns) first, then what rewrites or locks a table, each on its own.
"""

import datetime

from . import __version__, schemaddl

STRATEGIES = ("safe", "fast", "minimal-downtime")
ONLINE_PREFIXES = ("CREATE TABLE", "CREATE INDEX", "CREATE UNIQUE INDEX")


def is_online(statement):
    """Runs beside writers without rewriting a table: a new table or index, or a column that may be NULL."""
    text = statement.upper()
    if text.startswith(ONLINE_PREFIXES) and "EMFIX_REBUILD_" not in text:
        return True
    return " ADD COLUMN " in text and " NOT NULL" not in text


def _steps(diff):
    """(statement, the change it belongs to or None) in the diff's order."""
    owner = {}
    for d in diff.differences:
        for statement in d.fix:
            owner.setdefault(statement, d)
    return [(s, owner.get(s)) for s in diff.statements if not s.startswith("--")]


def _rebuilds_whole(steps):
    """The steps, one per group, except a SQLite table rebuild (from CREATE TABLE emfix_rebuild_T to its
    RENAME), which is one group: run as one transaction, a copy that fails leaves no emfix_rebuild_T behind
    (found by an outside tester: a rerun of the plan then stopped at it)."""
    groups, open_group = [], None
    for statement, d in steps:
        text = statement.upper()
        if open_group is None and text.startswith("CREATE TABLE") and schemaddl.REBUILD_PREFIX.upper() in text:
            open_group = [(statement, d)]
            continue
        if open_group is not None:
            open_group.append((statement, d))
            if text.startswith("ALTER TABLE") and " RENAME TO " in text and schemaddl.REBUILD_PREFIX.upper() in text:
                groups.append(open_group)
                open_group = None
            continue
        groups.append([(statement, d)])
    if open_group is not None:
        groups.append(open_group)
    return groups


def _head(d):
    return "-- %s: %s (%s)" % (d.rating, d.what, d.reason) if d else "-- part of rebuilding a table"


def render_plan(diff, strategy, source="", target="", database=""):
    if strategy not in STRATEGIES:
        raise ValueError(strategy)
    mysql = diff.dialect == "mysql"
    lines = ["-- Migration plan written by emfix %s on %s" % (__version__, datetime.datetime.now().isoformat(
        timespec="seconds")),
             "-- From %s to %s (%s); strategy: %s" % (source or diff.b, target or diff.a, diff.dialect, strategy),
             "-- Overall rating: %s (%d changes: %s)" % (diff.overall_rating, len(diff.differences), ", ".join(
                 "%d %s" % (n, r) for r, n in diff.rating_counts().items() if n) or "none"), ""]
    for d in diff.differences:
        lines.append("--   %-8s %s (%s)" % (d.rating, d.what, d.reason))
    if not mysql:  # the sqlite3 shell goes on after a failed statement unless told not to (the mysql client stops)
        lines += ["", "-- for the sqlite3 shell (sqlite3 DB < this file): it stops at the first statement that fails",
                  schemaddl.SQLITE_BAIL]
    steps = _steps(diff)
    advice = [s for s in diff.statements if s.startswith("--")]
    rebuilds = not mysql and any(d.rebuild for d in diff.differences)
    if rebuilds:  # SQLite's own procedure for a table rebuild: views and other tables' triggers keep their text
        lines += ["", "-- SQLite rebuilds tables: foreign keys off and legacy_alter_table on while it does. Triggers",
                  "-- ON a rebuilt table go with the old table; on a live database `emfix schema upgrade` keeps them.",
                  "PRAGMA foreign_keys = OFF;", "PRAGMA legacy_alter_table = ON;"]
    if not steps:
        lines += ["", "-- Nothing to run: the schemas are the same%s." % (" apart from what is left to decide below"
                                                                           if advice else "")]
    elif strategy == "safe":
        lines += ["", "-- Step 1: a verified snapshot, so every step below can be undone:",
                  "--   emfix snapshot create %s" % (database or "DB")]
        for n, group in enumerate(_rebuilds_whole(steps), 2):
            lines += ["", "-- Step %d" % n]
            if len(group) > 1:  # a SQLite table rebuild: all of it or none (a failed copy leaves nothing behind)
                lines += ["BEGIN TRANSACTION;"] + [x for statement, d in group for x in (_head(d), statement + ";")] \
                    + ["COMMIT;"]
            else:
                lines += [_head(group[0][1]), group[0][0] + ";"]
    elif strategy == "fast":
        lines += ["", "-- One transaction%s." % (": MySQL commits each DDL statement by itself, so a failure "
                                                 "part way leaves the steps before it applied" if mysql else "")]
        lines.append("START TRANSACTION;" if mysql else "BEGIN TRANSACTION;")
        for statement, d in steps:
            lines += [_head(d), statement + ";"]
        lines.append("COMMIT;")
    else:
        online = [(s, d) for s, d in steps if is_online(s)]
        offline = [(s, d) for s, d in steps if not is_online(s)]
        lines += ["", "-- Phase 1: runs while the application keeps writing (%d statements)" % len(online)]
        for statement, d in online:
            lines += [_head(d), statement + ";"]
        lines += ["", "-- Phase 2: rewrites or locks tables; stop the writers first (%d statements)" % len(offline)]
        if offline and not mysql:
            lines.append("BEGIN TRANSACTION;")
        for statement, d in offline:
            lines += [_head(d), statement + ";"]
        if offline and not mysql:
            lines.append("COMMIT;")
    if advice:
        lines += ["", "-- Left for a person to decide (A is the target, B the source):"]
        for d in diff.differences:
            if any(s.startswith("--") for s in d.fix):
                lines += [_head(d)] + [s for s in d.fix if s.startswith("--")]
    if rebuilds:
        lines += ["", "PRAGMA legacy_alter_table = OFF;", "PRAGMA foreign_keys = ON;"]
    lines += ["", "-- Rollback: emfix snapshot restore %s (the snapshot taken before)" % (database or "DB"), ""]
    return "\n".join(lines)
