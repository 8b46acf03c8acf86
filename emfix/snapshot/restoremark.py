"""A MySQL restore under way, marked in the database itself.

A restore into MySQL empties tables, then loads them. A restore stopped in between by something that lets it
say so (an error, Ctrl-C, SIGTERM) says the database is partly restored; one killed outright (SIGKILL, the
OOM killer, a power cut) could not, and the half-loaded database looked like any other: `doctor` said OK,
and a cleanup would have taken the rows whose parents were not loaded yet for orphans.

So the restore writes one row into a table of its own, `_emfix_restore`, before it empties anything, and drops
the table once every table is loaded and counted. While it is there, `doctor` fails with what to do, and the
commands that change the database refuse it (unless --force) until a restore finishes. Snapshots leave the
table out: restoring one never brings the mark back.
"""

from ..progress import utc_now
from ..schema import without_tables

MARK_TABLE = "_emfix_restore"


def mark_restore(db, snapshot_id, safety_id):
    """Say in the database that a restore of `snapshot_id` begins (before the first table is emptied)."""
    q = db.quote(MARK_TABLE)
    db.execute("CREATE TABLE IF NOT EXISTS %s (snapshot_id VARCHAR(100) NOT NULL, safety_snapshot_id VARCHAR(100), "
               "started_at VARCHAR(40) NOT NULL)" % q)
    with db.transaction():
        db.execute("DELETE FROM %s" % q)
        db.execute("INSERT INTO %s (snapshot_id, safety_snapshot_id, started_at) VALUES (?, ?, ?)" % q,
                   (snapshot_id, safety_id, utc_now()))


def unmark_restore(db):
    """The restore finished: every table loaded and counted."""
    db.execute("DROP TABLE IF EXISTS %s" % db.quote(MARK_TABLE))


def unfinished_restore(db):
    """{snapshot_id, safety_snapshot_id, started_at} of a restore into this MySQL database that did not finish
    (the values None where the table holds no row), or None."""
    if db.dialect != "mysql":
        return None
    name = next((t for t in db.tables() if t.lower() == MARK_TABLE), None)
    if name is None:
        return None
    rows = db.query("SELECT snapshot_id, safety_snapshot_id, started_at FROM %s" % db.quote(name))
    keys = ("snapshot_id", "safety_snapshot_id", "started_at")
    return dict(zip(keys, (str(v) if v is not None else None for v in rows[0]))) if rows else dict.fromkeys(keys)


def describe(found, target):
    """(message, hint) of an unfinished restore, for doctor and the refusals."""
    snapshot = found.get("snapshot_id")
    message = "a restore%s%s did not finish: the database is partly restored (tables emptied, not all loaded)" % (
        " of snapshot %s" % snapshot if snapshot else "", " started %s" % found["started_at"]
        if found.get("started_at") else "")
    hint = "restore it again: emfix snapshot restore %s%s" % (target, " --snapshot-id %s" % snapshot if snapshot
                                                                   else "")
    if found.get("safety_snapshot_id"):
        hint += " (safety snapshot %s holds what was there before it)" % found["safety_snapshot_id"]
    return message, hint


def snapshot_graph(graph):
    """The tables a snapshot holds: all but the mark."""
    return without_tables(graph, lambda t: t.lower() == MARK_TABLE)
