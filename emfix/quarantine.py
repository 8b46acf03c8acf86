"""The quarantine file: every row a repair removes, kept exactly, so `emfix undo` can put it back.

A SQLite file with one table per source table (same column names, no declared types, so every
value keeps its storage class; SQLite sources also keep the rowid), a table of the parent rows a
repair created, and a small meta table saying which command, when, on which database and why.

It is written in place, not through fileutil.durable_file (a whole file written, then renamed): each
batch of rows is committed to it (synchronous=FULL) before the repair deletes them from the database,
so it must be durable while it grows, not only once complete. A full disk is NoSpaceError
(fileutil.is_disk_full), and the batch it stopped is not changed.
"""

import datetime
import errno
import hashlib
import json
import os
import sqlite3

try:
    import fcntl
except ImportError:  # Windows: no advisory file locks (one process at a time is then the user's to keep)
    fcntl = None

from . import __version__
from .backends.sqlite import UndecodableText, text_or_bytes
from .errors import DamagedInputError, DatabaseLockedError, NoSpaceError, NotFoundError, NotWritableError, UsageError
from .fileutil import DATA_FILE_MODE, create_private, is_disk_full, read_only_uri, server_state_dir
from .killpoints import kill_point

META = "_emfix_meta"
CREATED = "_emfix_created"
ROWID = "_emfix_rowid"
DELETED = "_emfix_deleted"  # cleanup: 1 once the row was removed from the database (undo puts back only those)
TYPE_COLUMN = "_emfix_type"  # fix-json: how the original value was stored (text, text-bytes, blob)


def qi(name):
    return '"%s"' % str(name).replace('"', '""')


def sql_text(value):
    """A string as an SQL literal (for the quarantine's own constants)."""
    return "'%s'" % str(value).replace("'", "''")


def quarantine_path(directory, command):
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    return os.path.join(directory, "%s-%s.quarantine.db" % (command, stamp))


def hold(path, doing):
    """The quarantine at `path` for this process alone, for as long as it writes or undoes it: an exclusive
    advisory lock (flock) on the file, which the kernel lets go when the process ends, however it ends. Another
    process holding it (`doing` says what this one was about to do) is DatabaseLockedError: a second repair took a
    running repair's quarantine for an interrupted one, resumed into it, and took out of it rows the first had
    removed (an outside tester). Returns what `release` lets go (None where there is no such lock).

    flock, not fcntl's byte-range locks (SQLite's own, on the same file, which closing any descriptor of the file
    would drop): release only once this process's SQLite connections to the file are closed or idle."""
    folder, fd = os.path.dirname(os.path.realpath(path)), None
    try:
        fd = os.open(path, os.O_RDWR) if fcntl is not None else None
        if not os.access(folder, os.W_OK):  # SQLite writes its journal beside the file
            raise PermissionError(errno.EACCES, "its folder %s cannot be written" % folder)
    except OSError as exc:  # (round 32: exit 70 for a read-only quarantine, the database blamed for its folder)
        if fd is not None:
            os.close(fd)
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        raise NotWritableError(
            "the quarantine %s cannot be written (%s); this %s changed nothing" % (path, exc.strerror, doing),
            hint="emfix keeps in the quarantine what it has done so far: run it as the quarantine's owner, or copy "
                 "the quarantine into a folder you can write and run it on the copy") from None
    if fd is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise DatabaseLockedError(
                "another emfix process (a change or an undo that has not ended) is working with the quarantine %s "
                "now; this %s changed nothing" % (path, doing),
                hint="let it finish, then run this again (a run that was interrupted is finished by running it "
                     "again)") from None
        return None  # a file system without flock: as before
    return fd


def release(held):
    """Let go of what `hold` took."""
    if held is not None:
        os.close(held)


def open_quarantine(path, create=False):
    if not create and not os.path.isfile(path):
        raise NotFoundError("%s is a directory, not a quarantine file" % path if os.path.isdir(path) else
                            "%s is not a regular file (a pipe, socket or device), not a quarantine file" % path
                            if os.path.exists(path) else "no quarantine file %s" % path,
                            hint="pass the path (or the id) the repair printed")
    try:
        if create and not os.path.exists(path):
            create_private(path, DATA_FILE_MODE)  # every removed row is in here: readable by the owner only
        con = sqlite3.connect(path, isolation_level=None)
        con.text_factory = text_or_bytes
        con.execute("PRAGMA synchronous = FULL")  # rows are committed to disk before they are deleted
        if create and _tables(con) and "children_json" not in {
                r[1] for r in con.execute("PRAGMA table_info(%s)" % CREATED)}:
            con.execute("ALTER TABLE %s ADD COLUMN children_json TEXT" % CREATED)  # an older file
    except sqlite3.DatabaseError as exc:
        if not create and not isinstance(exc, sqlite3.OperationalError):  # not SQLite, or cut short
            raise DamagedInputError("%s is not a readable quarantine file (%s)" % (path, exc),
                                    hint="pass the file the repair printed; a damaged copy cannot be undone "
                                         "from") from None
        if is_disk_full(exc):
            raise NoSpaceError("cannot write the quarantine %s: the disk is full; nothing was changed" % path,
                               hint="free some space or use --quarantine-dir on a larger disk") from None
        raise NotWritableError("cannot write the quarantine %s: %s; nothing was changed" % (path, exc),
                               hint="use --quarantine-dir with a folder you can write to") from None
    except OSError as exc:
        if is_disk_full(exc):
            raise NoSpaceError("cannot write the quarantine %s: the disk is full; nothing was changed" % path,
                               hint="free some space or use --quarantine-dir on a larger disk") from None
        raise NotWritableError("cannot write the quarantine %s: %s; nothing was changed" % (path, exc),
                         hint="use --quarantine-dir with a folder you can write to") from None
    return con


def write_meta(con, **values):
    con.execute("BEGIN")
    for key, value in values.items():
        con.execute("INSERT OR REPLACE INTO %s VALUES (?, ?)" % META, (key, json.dumps(value)))
    con.execute("COMMIT")


def content_digests(con):
    """{table: SHA-256 of its copies} for every table of kept rows or values: each row in the quarantine's own
    order, its values exactly (repr: a float to the last bit, text, bytes and integers told apart), the marks undo
    sets left out. Written when a change finishes; undo refuses a quarantine that no longer matches (an outside
    tester edited a kept row, invented one, and undo put them into the database)."""
    digests = {}
    for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT IN (?, ?) AND "
                                "name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name", (META, CREATED)).fetchall():
        columns = [r[1] for r in con.execute("PRAGMA table_info(%s)" % qi(table)) if r[1] != DELETED]
        digest = hashlib.sha256()
        cursor = con.execute("SELECT %s FROM %s ORDER BY rowid" % (", ".join(qi(c) for c in columns), qi(table)))
        while True:
            rows = cursor.fetchmany(5000)
            if not rows:
                break
            digest.update("".join(repr(tuple(_told_apart(v) for v in r)) for r in rows).encode(
                "utf-8", "surrogatepass"))
        digests[table] = digest.hexdigest()
    return digests


def _told_apart(value):
    """TEXT that is not UTF-8 (read as bytes) apart from a BLOB of the same bytes; every other value as it is (the
    digests of files written before stay the same)."""
    return ("text", bytes(value)) if isinstance(value, UndecodableText) else value


EDITED_HINT = ("it was changed after emfix wrote it; a copy of the file from a backup, or the snapshot taken before "
               "the change (emfix snapshot list), has the originals")


def read_meta(con):
    try:
        rows = con.execute("SELECT key, value FROM %s" % META).fetchall()
    except sqlite3.OperationalError as exc:  # a SQLite file without our table
        if not _tables(con):
            raise UsageError("the quarantine file is empty: a run stopped as it began left it, and nothing was "
                             "kept in it", hint="nothing to undo from it; it can be deleted") from None
        raise UsageError("not an emfix quarantine file: %s" % exc) from None
    except sqlite3.DatabaseError as exc:  # not SQLite at all, or cut short
        raise DamagedInputError("not a readable quarantine file: %s" % exc,
                                hint="pass the file the repair printed") from None
    meta = {}
    for key, value in rows:
        try:
            meta[key] = json.loads(value)
        except (TypeError, ValueError, RecursionError):  # edited by hand, or written by something else
            raise DamagedInputError("the quarantine's record %r is not JSON (%.60r)" % (key, value),
                                    hint=EDITED_HINT) from None
    return meta


def start(con, command, address, reason, **extra):
    """A new quarantine's records, `extra` (the change's own: its rules, its fingerprint) in the same commit as
    "in progress": a run killed between two commits left a quarantine a rerun took for another change's
    (transform-metrics: "an interrupted transform-metrics with other rules has not finished", found by the suite
    on a loaded machine)."""
    if not _tables(con):  # a new file: its tables and records in one commit (a kill before leaves it empty)
        records = dict(command=command, database=address.target(), database_key=address.key(), reason=reason,
                       emfix_version=__version__, started_at=datetime.datetime.now(datetime.timezone.utc).isoformat(),
                       tables=[], status="in progress")
        records.update(extra)
        con.execute("BEGIN")
        con.execute("CREATE TABLE %s (key TEXT PRIMARY KEY, value TEXT)" % META)
        con.execute("CREATE TABLE %s (ordinal INTEGER PRIMARY KEY, table_name TEXT, key_json TEXT, children_json "
                    "TEXT)" % CREATED)
        con.executemany("INSERT INTO %s VALUES (?, ?)" % META, [(k, json.dumps(v)) for k, v in records.items()])
        con.execute("COMMIT")
    elif extra:
        write_meta(con, **extra)
    return read_meta(con)


def _tables(con):
    return [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]


def removed_counts(con):
    """{table: rows the change removed (marked 1)}, over every run of it: a rerun after a kill said only its own
    share (round 17: "removed 3,668 rows" where undo put back 6,682)."""
    counts, present = {}, set(_tables(con))
    for table in read_meta(con).get("tables", []):
        if table in present and DELETED in {r[1] for r in con.execute("PRAGMA table_info(%s)" % qi(table))}:
            counts[table] = con.execute("SELECT count(*) FROM %s WHERE %s = 1" % (qi(table), qi(DELETED))).fetchone()[0]
    return {t: n for t, n in counts.items() if n}


def ensure_table(con, table, columns, with_rowid):
    """The quarantine table of removed rows: the source's columns (SQLite: and the rowid), and the mark of
    the rows actually removed. A table an older emfix made has no mark: its rows count as removed."""
    names = ([ROWID] if with_rowid else []) + list(columns)
    con.execute("CREATE TABLE IF NOT EXISTS %s (%s, %s)" % (qi(table), ", ".join(qi(c) for c in names), qi(DELETED)))
    if DELETED not in {r[1] for r in con.execute("PRAGMA table_info(%s)" % qi(table))}:
        con.execute("BEGIN")
        con.execute("ALTER TABLE %s ADD COLUMN %s" % (qi(table), qi(DELETED)))
        con.execute("UPDATE %s SET %s = 1" % (qi(table), qi(DELETED)))
        con.execute("COMMIT")
    return names


def meta_of(path):
    """The meta of a quarantine file; None when it is not one. Opened read-write: a run killed while it
    wrote the file leaves a hot journal that only a writer may roll back (read-only, SQLite refuses to
    open it, and a rerun would start a second quarantine and apply its change twice)."""
    if not os.path.isfile(path):
        return None  # (opened read-write, a missing file would be created)
    try:
        con = sqlite3.connect(path, isolation_level=None)
        con.text_factory = text_or_bytes
        try:
            return read_meta(con)
        finally:
            con.close()
    except UsageError:
        return None  # a SQLite file without our meta table: not a quarantine
    except (sqlite3.DatabaseError, DamagedInputError) as exc:
        raise DamagedInputError("cannot read the quarantine %s: %s" % (path, exc),
                                hint="a repair's originals may be in it: move it out of the folder only once you "
                                     "know it is not needed, then run the command again") from None


def quarantines(directory, command):
    """(path, meta) of this command's quarantine files in `directory`, newest first."""
    if not os.path.isdir(directory):
        return
    for name in sorted(os.listdir(directory), reverse=True):
        if name.startswith(command + "-") and name.endswith(".quarantine.db"):
            path = os.path.join(directory, name)
            meta = meta_of(path)
            if meta is not None:
                yield path, meta


def find_unfinished(directory, command, address):
    """The newest quarantine of this command on this database that did not finish (for a rerun)."""
    return next((path for path, meta in quarantines(directory, command)
                 if meta.get("status") == "in progress" and owner_key(meta) == address.key()), None)


def find_finished(directory, command, address, fingerprint):
    """The newest finished (not undone) quarantine of the same change on the same database, or None."""
    return next((path for path, meta in quarantines(directory, command)
                 if meta.get("status") == "done" and meta.get("change_fingerprint") == fingerprint
                 and owner_key(meta) == address.key()), None)


def owner_key(meta):
    """The identity of the database a quarantine belongs to (older files name it by address only)."""
    if meta.get("database_key"):
        return meta["database_key"]
    from .address import parse_address
    try:
        return parse_address(meta.get("database"), environ={}).key()
    except Exception:  # an address this emfix cannot parse is nobody's
        return None


def database_of(path):
    """The address of the database a quarantine file was taken from (a SQLite file by its real path, never
    resolved against the current directory); None when the file says none or cannot be read."""
    try:
        meta = meta_of(path)
    except DamagedInputError:
        return None  # opening it to undo says what is wrong with it
    return owner_address(meta) if meta is not None else None


def owner_address(meta):
    """The address of the database a quarantine's meta names, or None."""
    from .address import parse_address
    key = owner_key(meta)
    if key and key.startswith("sqlite:"):
        return parse_address(key[len("sqlite:"):])
    return parse_address(meta["database"]) if meta.get("database") else None


def default_quarantine_dir(address):
    if address.is_sqlite:
        return os.path.join(os.path.dirname(os.path.abspath(address.path)), "quarantine")
    return server_state_dir(address, "quarantine")


def writable_dir(directory):
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise NotWritableError("cannot create quarantine directory %s: %s" % (directory, exc.strerror),
                         hint="choose another with --quarantine-dir") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise NotWritableError("quarantine directory %s is not writable" % directory,
                         hint="choose another with --quarantine-dir; nothing was changed")


def keep_rows(con, sql, rows, path):
    """Commit rows into the quarantine (one statement, one transaction) before the batch they describe
    changes the database; a quarantine that cannot be written stops the batch, not the database."""
    try:
        con.execute("BEGIN")
        con.executemany(sql, rows)
        kill_point("keeping")  # a kill here leaves a hot journal beside the file
        con.execute("COMMIT")
    except (OSError, sqlite3.OperationalError) as exc:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise write_error(exc, path, "the last batch was not changed") from None


def write_error(exc, path, consequence):
    """What a failed quarantine write means: a full disk (ENOSPC, EFBIG, a quota: SQLite says "full")
    is NoSpaceError; anything else says what happened, never "free some space"."""
    if is_disk_full(exc):
        return NoSpaceError("cannot write the quarantine %s: the disk is full; %s" % (path, consequence),
                            hint="free some space or use --quarantine-dir on a larger disk, then run it again")
    return NotWritableError("cannot write the quarantine %s: %s; %s" % (path, exc, consequence),
                            hint="check the quarantine folder (or use --quarantine-dir), then run it again")


def contents(path):
    """{table: rows kept} of a quarantine file, and its meta: what an undo of it would put back."""
    try:
        con = sqlite3.connect(read_only_uri(path), uri=True)
        con.text_factory = text_or_bytes
        try:
            meta = read_meta(con)
            names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND "
                                               "name NOT LIKE '\\_emfix\\_%' ESCAPE '\\'")]
            counts = {name: con.execute("SELECT count(*) FROM %s" % qi(name)).fetchone()[0] for name in names}
        finally:
            con.close()
    except sqlite3.DatabaseError:
        return {}, {}
    return counts, meta
