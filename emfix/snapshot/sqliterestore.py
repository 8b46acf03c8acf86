"""Restoring a SQLite snapshot into a live file while an application may be writing to it.

The backup API cannot start while the restoring connection holds a lock, so between the safety snapshot
and the restore a writer could commit rows that end in neither. Where the snapshot has the live file's
schema (the usual case) and no triggers, the restore is made by content instead: one connection takes
the write lock first (BEGIN IMMEDIATE), the safety snapshot is read meanwhile (readers are not
blocked), then every table is emptied and filled from the attached snapshot in the same transaction.
Nothing can be written in between; the application's writes wait and land after the restore.
"""

import os
import sqlite3

from ..fileutil import uri_path

SNAPSHOT = "emfix_snapshot"


def _schema(con, schema):
    return con.execute("SELECT type, name, tbl_name, sql FROM %s.sqlite_master WHERE name NOT LIKE "
                       "'sqlite\\_autoindex%%' ESCAPE '\\' ORDER BY type, name" % schema).fetchall()


def restore_by_content(path, snapshot_path, take_safety_snapshot, timeout):
    """(safety snapshot id, True, {table: rows}) once restored under one lock, the rows counted inside it (round 59:
    counted after it, an application's inserts since made a whole restore "differ from the snapshot", exit 4);
    (None, False, None) when the file's schema is not the snapshot's or it has triggers (the caller then restores
    the file whole)."""
    con = sqlite3.connect("file:%s" % uri_path(os.path.abspath(path)), uri=True, timeout=timeout,
                          isolation_level=None)
    try:
        con.execute("ATTACH DATABASE ? AS %s" % SNAPSHOT,
                    ("file:%s?mode=ro" % uri_path(os.path.abspath(snapshot_path)),))
        live, saved = _schema(con, "main"), _schema(con, SNAPSHOT)
        if live != saved or any(row[0] == "trigger" for row in live):
            return None, False, None
        con.execute("PRAGMA foreign_keys = OFF")  # the rows are put back as the snapshot holds them
        con.execute("BEGIN IMMEDIATE")  # from here on no other process writes until COMMIT
        try:
            safety_id = take_safety_snapshot()  # a reader: the lock does not keep it out
            tables = sorted((r[0] for r in con.execute("SELECT name FROM main.sqlite_master WHERE type = 'table'")),
                            key=lambda t: t == "sqlite_sequence")  # last: the other inserts move it
            for table in tables:
                name = '"%s"' % table.replace('"', '""')
                con.execute("DELETE FROM main.%s" % name)
                con.execute("INSERT INTO main.%s SELECT * FROM %s.%s" % (name, SNAPSHOT, name))
            counts = {t: con.execute('SELECT count(*) FROM main."%s"' % t.replace('"', '""')).fetchone()[0]
                      for t in tables if not t.startswith("sqlite_")}
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        return safety_id, True, counts
    finally:
        con.close()
