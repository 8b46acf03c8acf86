"""SQLite through the standard library's sqlite3.

Read-only commands open the file with `mode=ro`, so a mistyped path can never create an empty
database. Writers wait on a busy timeout and take the write lock up front (BEGIN IMMEDIATE).
"""

import os
import sqlite3
import stat

from ..errors import ConnectError, DamagedInputError, DatabaseLockedError, NoSpaceError, SchemaError
from ..fileutil import create_private, is_disk_full, read_only_uri
from ..foreignkey import ForeignKey
from ..retry import LOCK_TURN, RetriesExhausted, call_with_retry, lock_wait_policy
from .base import Backend, ColumnDetail, Index, StorageLimit, is_duplicate_key

DAMAGE_MESSAGES = ("file is not a database", "malformed", "file is encrypted", "not a database")


def processes_with_open(path):
    """(pid, command) of other processes with the file open, where /proc shows it (Linux, same user or root)."""
    found, me = [], os.getpid()
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit() and int(p) != me]
    except OSError:
        return found
    path = os.path.abspath(path)
    wanted = {path, path + "-wal", path + "-journal", path + "-shm"}
    for pid in pids:
        try:
            fds = os.listdir("/proc/%s/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink("/proc/%s/fd/%s" % (pid, fd)) in wanted:
                    with open("/proc/%s/comm" % pid) as handle:
                        found.append((int(pid), handle.read().strip()))
                    break
            except OSError:
                continue
    return found


def lock_holders_text(path):
    holders = processes_with_open(path)
    return ", ".join("pid %d (%s)" % h for h in holders) or "a process this user cannot see"


def check_summary(rows, pragma="quick_check"):
    """'' for ok, else one line: how many problems and the first (SQLite returns them as multi-line text)."""
    found = [line.strip() for r in rows for line in str(r[0]).splitlines()
             if line.strip() and not line.startswith("***")]
    if found == ["ok"]:
        return ""
    return "%s found %d problem%s, first: %s" % (pragma, len(found), "" if len(found) == 1 else "s",
                                                  found[0] if found else "?")


def refuse_what_is_no_file(path):
    """A folder, pipe, socket or device where a SQLite database file is wanted: said before anything else is looked
    for or opened (a restore into a folder looked for its snapshots first, round 32; a restore or an import into a
    FIFO waited forever to open it, round 33). A path that does not exist passes (it may be created)."""
    if os.path.isdir(path):
        raise ConnectError("%s is a directory, not a SQLite database file" % path,
                           hint="pass the database file inside it, e.g. %s" % os.path.join(path, "experiment.db"))
    if os.path.exists(path) and not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would hang the first read
        raise ConnectError("%s is not a regular file (a pipe, socket or device), not a SQLite database file" % path,
                           hint="pass the database file itself")


class UndecodableText(bytes):
    """TEXT whose bytes are not UTF-8: kept as bytes so nothing is lost or mangled."""


def text_or_bytes(raw):
    """A text_factory: TEXT as str, or as UndecodableText where its bytes are not UTF-8 (Python's own refuses
    to read the row: a quarantine holding such a value made the end of a cleanup and every undo of it fail)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return UndecodableText(raw)


def placeholder(value):
    """The SQL that binds `value` with its storage class: `?`, or for UndecodableText (bytes to Python, which
    binds bytes as a BLOB) `CAST(? AS TEXT)`, which keeps its bytes as TEXT."""
    return "CAST(? AS TEXT)" if isinstance(value, UndecodableText) else "?"


class SQLiteBackend(Backend):
    dialect = "sqlite"
    quote_char = '"'

    def __init__(self, address, readonly=False, retry_policy=None, create=False):
        super().__init__(address, readonly, retry_policy)
        self.path = address.path
        self._conn = None
        self._check_path(create)
        if create and self.path != ":memory:" and not os.path.exists(self.path):
            try:
                create_private(self.path)  # a new database holds data: readable by its owner only
            except OSError as exc:  # a read-only folder, /proc, a full disk
                raise ConnectError("cannot create %s: %s" % (self.path, exc.strerror or exc),
                                   hint="choose a folder you can write to") from None
        # SQLite waits for a lock itself, up to --lock-timeout, except while the file is opened (_open_in_turns).
        busy = self._busy = max(0.05, self.retry_policy.deadline)
        try:
            if readonly:
                uri = read_only_uri(self.path)
                self._conn = sqlite3.connect(uri, uri=True, timeout=busy, isolation_level=None,
                                             check_same_thread=False)
            else:
                self._conn = sqlite3.connect(self.path, timeout=busy, isolation_level=None,
                                             check_same_thread=False)
        except sqlite3.Error as exc:
            raise ConnectError("cannot open SQLite database %s: %s" % (self.path, exc)) from None
        self._conn.text_factory = text_or_bytes
        try:
            try:
                self._open_in_turns()
            except ConnectError:
                if not (readonly and self._roll_back_hot_journal(busy)):
                    raise
                self._open_in_turns()
        except BaseException:
            self._conn.close()
            raise

    def _roll_back_hot_journal(self, busy):
        """A writer died mid-transaction: its journal must be rolled back before anyone can read, and a
        read-only connection cannot. Let SQLite do its own recovery through a brief normal connection."""
        if not os.path.exists(self.path + "-journal") or not os.access(self.path, os.W_OK):
            return False
        if processes_with_open(self.path):
            return False  # a live writer's journal, not a dead one's: the lock is simply held
        recovery = sqlite3.connect(self.path, timeout=busy, isolation_level=None)
        try:
            recovery.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:
            return False  # still locked: the caller reports who holds it
        finally:
            recovery.close()
        return True

    def _check_path(self, create):
        path = self.path
        if path == ":memory:":
            return
        refuse_what_is_no_file(path)
        if not os.path.exists(path):
            if create:
                parent = os.path.dirname(os.path.abspath(path))
                if not os.path.isdir(parent):
                    raise ConnectError("cannot create %s: directory %s does not exist" % (path, parent))
                return
            raise ConnectError("database file not found: %s" % path,
                               hint="check the path; `emfix demo` writes a sample database to try")
        if not os.access(path, os.R_OK):
            raise ConnectError("no permission to read %s" % path)
        if not self.readonly and not os.access(path, os.W_OK):
            raise ConnectError("no permission to write %s (this command changes the database)" % path,
                               hint="run as the database owner, or work on a copy")

    # -- running with retry and error translation --------------------------------------------
    def _run(self, func, what):
        try:
            if self._in_transaction:
                return func()
            return call_with_retry(func, self.retry_policy, what=what)
        except RetriesExhausted as exc:
            raise self.locked_error("gave up after %.1fs" % exc.elapsed) from None
        except sqlite3.DatabaseError as exc:
            raise self._translate(exc) from None

    def _open_in_turns(self):
        """The first read, which waits if another process holds the file: in turns of LOCK_TURN inside SQLite with
        short pauses of this process between them, up to --lock-timeout, so Ctrl-C and SIGTERM get through (inside
        SQLite's own wait nothing does) and a batch command's stop ends the wait (retry.STOP_WAITING). Only here: a
        statement waits inside SQLite, whose frequent tries get in beside an application that commits in a tight
        loop, where pauses of this process's own let it starve (found by an outside tester: exit 3 beside one)."""
        self._conn.execute("PRAGMA busy_timeout = %d" % int(min(LOCK_TURN, self._busy) * 1000))
        try:
            call_with_retry(lambda: self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone(),
                            lock_wait_policy(self.retry_policy), what="open %s" % self.path)
        except RetriesExhausted as exc:
            raise self.locked_error("gave up after %.1fs" % exc.elapsed) from None
        except sqlite3.DatabaseError as exc:
            raise self._translate(exc) from None
        finally:
            self._conn.execute("PRAGMA busy_timeout = %d" % int(self._busy * 1000))

    def locked_error(self, how):
        """The error for this file found locked (`how`: how long emfix waited), naming who holds it."""
        return DatabaseLockedError("database %s is locked by another process (%s): held by %s" % (
            self.path, how, lock_holders_text(self.path)),
            hint="wait for the other process to finish, or raise --lock-timeout (now %gs)" % self.retry_policy.deadline)

    def _translate(self, exc):
        message = str(exc)
        if "database is locked" in message or "database table is locked" in message or "busy" in message.lower():
            return self.locked_error("waited %gs" % self.retry_policy.deadline)
        if any(text in message.lower() for text in DAMAGE_MESSAGES):
            return DamagedInputError("%s is not a usable SQLite database: %s" % (self.path, message),
                                     hint="check the path; if it is damaged, restore a snapshot")
        if "readonly" in message.lower().replace(" ", "") or "read-only" in message.lower():
            return ConnectError("cannot write %s: %s" % (self.path, message))
        if "unable to open database file" in message and self._conn is not None:  # open already: another file
            return ConnectError("SQLite cannot open a file it needs beside %s: %s" % (self.path, message),
                                hint="SQLite writes its temporary files to SQLITE_TMPDIR or TMPDIR (else /var/tmp, "
                                     "/tmp): point it at a folder you may write")
        if isinstance(exc, sqlite3.IntegrityError) and not is_duplicate_key(exc):  # (a duplicate: the caller's to say)
            return self._refused(message)
        if is_disk_full(exc) or "too large" in message or "disk I/O error" in message:
            what = ("SQLite's temporary files while reading %s" if self.readonly else "%s") % self.path
            return NoSpaceError("cannot write %s: %s (the disk is full, a file-size limit was reached, or the disk "
                                "failed); the transaction was rolled back" % (what, message),
                                hint="free some space (SQLite also needs room for temporary files)")
        return exc

    @staticmethod
    def _refused(message):
        """A write the database refused (round 58: an IntegrityError, exit 70): a CHECK constraint's refusal is
        a value's (exit 4), a trigger's RAISE, a NOT NULL column or a foreign key the row's (exit 1), as MySQL's."""
        if message.startswith("CHECK constraint failed"):
            return DamagedInputError("SQLite refused a value: %s" % message,
                                     hint="a CHECK constraint of the table written refused it: correct the value "
                                          "where it comes from, or change the constraint")
        return SchemaError("SQLite refused a row: %s" % message,
                           hint="a trigger, a NOT NULL column or a foreign key of the table written refused it: "
                                "change that, or the row where it comes from, then run the same command again "
                                "(a migrate or an import with --resume)")

    def commits_attached_atomically(self):
        """A transaction over this database and an attached one commits in both or in neither: SQLite's
        super-journal, which it writes only where the main database rolls back with a journal file (DELETE,
        TRUNCATE, PERSIST). In WAL mode (or with journal_mode OFF or MEMORY) each file commits on its own, so a
        kill between the two leaves one changed and not the other (an outside tester: a delete kept, its mark
        in the attached quarantine lost)."""
        mode = self.scalar("PRAGMA main.journal_mode")
        return str(mode or "").lower() in ("delete", "truncate", "persist")

    def quick_check(self):
        """'' when PRAGMA quick_check passes (O(N): one read of the file), else one line of what is wrong."""
        return check_summary(self.query("PRAGMA quick_check"))

    def retry_while_locked(self, func, what):
        """Any call on the connection (the backup API, say), retried while the database is locked, up to
        --lock-timeout; its other errors are the caller's to explain (they may be about another file)."""
        try:
            return call_with_retry(func, self.retry_policy, what=what)
        except RetriesExhausted as exc:
            raise self.locked_error("gave up after %.1fs" % exc.elapsed) from None

    def mark(self, value):
        """placeholder(value): a key that is text not UTF-8 (UndecodableText) bound as a BLOB compared above
        every text, and a page ending on one left the rest of its table out (round 57)."""
        return placeholder(value)

    def execute(self, sql, params=()):
        return self._run(lambda: self._conn.execute(sql, params).rowcount, "statement")

    def query(self, sql, params=()):
        return self._run(lambda: self._conn.execute(sql, params).fetchall(), "query")

    def query_raw(self, sql, params=()):
        """Rows with TEXT as its stored bytes, not decoded: for text that goes straight into a statement."""
        def run():
            self._conn.text_factory = bytes
            try:
                return self._conn.execute(sql, params).fetchall()
            finally:
                self._conn.text_factory = text_or_bytes
        return self._run(run, "query")

    def iter_rows(self, sql, params=(), arraysize=1000):
        cursor = self._run(lambda: self._conn.execute(sql, params), "query")
        try:
            while True:
                try:
                    rows = cursor.fetchmany(arraysize)
                except sqlite3.DatabaseError as exc:
                    raise self._translate(exc) from None
                if not rows:
                    return
                yield from rows
        finally:
            cursor.close()

    def _executemany(self, sql, batch):
        return self._run(lambda: self._conn.executemany(sql, batch).rowcount, "executemany")

    def _begin(self):
        self._run(lambda: self._conn.execute("BEGIN" if self.readonly else "BEGIN IMMEDIATE"), "begin")

    def _commit(self):
        self._run(lambda: self._conn.execute("COMMIT"), "commit")  # SQLite allows a busy COMMIT to be retried

    def _rollback(self):
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def connection(self):
        """The underlying sqlite3 connection, for the backup API and ATTACH."""
        return self._conn

    # -- introspection ------------------------------------------------------------------------
    def tables(self):
        rows = self.query("SELECT name FROM sqlite_master WHERE type = 'table' "
                          "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")
        return [r[0] for r in rows]

    def _table_info(self, table):
        return self.query("PRAGMA table_info(%s)" % self.quote(table))

    def columns(self, table):
        return [r[1] for r in self._table_info(table)]

    def generated_columns(self, table):
        """Names (lower case) of `table`'s generated columns, which table_info (and so `columns`) leaves out and
        an INSERT may not name: table_xinfo's hidden 2 (VIRTUAL) and 3 (STORED)."""
        return {str(r[1]).lower() for r in self.query("PRAGMA table_xinfo(%s)" % self.quote(table)) if r[6] in (2, 3)}

    def required_columns(self, table):
        """As Backend's, but a rowid alias (one INTEGER PRIMARY KEY) takes a rowid when none is given."""
        keys = [r for r in self._table_info(table) if r[5]]
        alias = keys[0][1].lower() if len(keys) == 1 and keys[0][2].upper() == "INTEGER" else None
        return [c for c in super().required_columns(table) if c.lower() != alias]

    def table_sql(self, table):
        """The CREATE TABLE statement of `table` ("" when there is none), found whatever the letter case of its name
        (SQLite's own rule; the catalog names the application's tables as it does: schema.discover_graph)."""
        return str(self.scalar("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ? COLLATE NOCASE",
                               (table,)) or "")

    def storage_limits(self, table):
        """A column of TEXT affinity keeps a whole number given to it as its digits (its declared type has CHAR,
        CLOB or TEXT and no INT: https://www.sqlite.org/datatype3.html)."""
        return {r[1]: StorageLimit("text", 0, False) for r in self._table_info(table)
                if "INT" not in str(r[2]).upper() and any(w in str(r[2]).upper() for w in ("CHAR", "CLOB", "TEXT"))}

    def column_details(self, table):
        info = self._table_info(table)
        sql = self.table_sql(table)
        keys = [r for r in info if r[5]]
        rowid = len(keys) == 1 and keys[0][2].upper() == "INTEGER"  # an alias of the rowid
        auto = rowid and "AUTOINCREMENT" in sql.upper()
        return [ColumnDetail(r[1], r[2], bool(r[3]), r[4], bool(auto and r[5])) for r in info]

    def primary_key(self, table):
        return tuple(r[1] for r in sorted((r for r in self._table_info(table) if r[5]), key=lambda r: r[5]))

    def foreign_keys(self, table):
        groups = {}
        for fk_id, _seq, ref_table, column, ref_column, *_rest in self.query(
                "PRAGMA foreign_key_list(%s)" % self.quote(table)):
            groups.setdefault(fk_id, []).append((_seq, ref_table, column, ref_column))
        keys = []
        for fk_id in sorted(groups):
            parts = sorted(groups[fk_id])
            parent = parts[0][1]
            parent_columns = tuple(p[3] for p in parts)
            if any(c is None for c in parent_columns):  # REFERENCES T without columns: T's key
                parent_columns = tuple(self.primary_key(parent))
            keys.append(ForeignKey(table, tuple(p[2] for p in parts), parent, parent_columns,
                                   "fk_%s_%d" % (table, fk_id)))
        return keys

    @property
    def max_parameters(self):
        """How many ? one statement may hold: 999 before SQLite 3.32 (Ubuntu 20.04's 3.31: a cleanup's batches of
        1,000 rowids stopped at "too many SQL variables", exit 70), 32,766 since, unless built otherwise."""
        getlimit = getattr(self._conn, "getlimit", None)  # Python 3.11+
        if getlimit is not None:
            return getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        return 999 if sqlite3.sqlite_version_info < (3, 32) else 32766

    def data_version(self):
        """PRAGMA data_version: it changes when another connection commits to the file (this connection's own
        writes leave it), so an unchanged one means no other process wrote meanwhile."""
        return self.scalar("PRAGMA data_version")

    def indexes(self, table):
        result = []
        for row in self.query("PRAGMA index_list(%s)" % self.quote(table)):
            name, unique = row[1], bool(row[2])
            cols = tuple(r[2] for r in self.query("PRAGMA index_info(%s)" % self.quote(name)))
            result.append(Index(table, name, cols, unique))
        return result

    def server_version(self):
        return sqlite3.sqlite_version
