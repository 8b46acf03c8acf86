"""A MySQL restore under way, marked in the database itself.

A restore into MySQL empties tables, then loads them. A restore stopped in between by something that lets it
say so (an error, Ctrl-C, SIGTERM) says the database is partly restored; one killed outright (SIGKILL, the
OOM killer, a power cut) could not, and the half-loaded database looked like any other: `doctor` said OK,
and a cleanup would have taken the rows whose parents were not loaded yet for orphans.

So a restore first takes the database's restore lock (GET_LOCK, on a connection it keeps to its end: a second
restore into the same database is refused meanwhile, and a killed one's lock goes with its connection), then
writes a row into a table of its own, `_emfix_restore`, before it empties anything. Once every table is loaded
and counted it deletes the rows, its own and those of restores killed before it (the database now holds a whole
snapshot), and the table. A restore refused before it changed anything deletes its own row. While a row is
there, `doctor` fails with what to do, `validate` warns, and the commands that change the database refuse it
(unless --force) until a restore finishes. Snapshots leave the table out: restoring one never brings a row back.
"""

import contextlib
import logging
import os
import shlex

from ..backends import open_database
from ..backends.base import server_lock_name
from ..backends.mysqlcatalog import text_of
from ..errors import (
    ConflictError,
    ConnectError,
    DatabaseLockedError,
    EmfixError,
    PrivilegeError,
    SchemaError,
    TooManyConnectionsError,
)
from ..progress import utc_now
from ..schema import without_tables

log = logging.getLogger(__name__)

MARK_TABLE = "_emfix_restore"
COLUMNS = ("run_id", "snapshot_id", "safety_snapshot_id", "snapshot_dir", "started_at")
LOCK_IDLE_SECONDS = 31536000  # the lock's connection: a year idle (the server's longest wait_timeout)


def lock_name(database):
    """The server-wide name of a database's restore lock (at most 64 characters)."""
    return server_lock_name("restore", database)


class RestoreMark:
    """One MySQL restore's lock and mark (see the module's docstring)."""

    def __init__(self, address, retry_policy=None):
        self.address, self.retry_policy = address, retry_policy
        self.run_id = None
        self.earlier = None  # marked: what the rows of restores killed before this one say ({} for none), else unknown
        self.loading = False  # set by the restore once it begins to load: a failure then keeps the mark
        self.db = None
        self.lock_session = None  # CONNECTION_ID() of the connection holding the restore lock
        try:
            self.db = open_database(address, retry_policy=retry_policy)
            open_database(address, retry_policy=retry_policy).close()  # the restore itself needs one more
            self._lock()
        except TooManyConnectionsError as exc:  # a user allowed one connection: marked, but not kept apart
            log.warning("restoring without the restore lock (%s): another restore into this database would not be "
                        "refused meanwhile", exc.message)
            self.close()
            self.db = None
        except BaseException:
            self.close()
            raise

    @contextlib.contextmanager
    def _connection(self):
        """The lock's connection, or (without one) a connection of its own for this one statement."""
        if self.db is not None:
            yield self.db
            return
        with open_database(self.address, retry_policy=self.retry_policy) as db:
            yield db

    def _lock(self):
        try:
            got = self.db.scalar("SELECT GET_LOCK(?, 0)", (lock_name(self.address.database),))
        except EmfixError as exc:  # a server without named locks: restores are not kept apart there
            log.info("restoring without the restore lock: %s", exc)
            return
        if not got:
            raise DatabaseLockedError("another restore into %s is running now; nothing was changed" %
                                      self.address.display(), hint="wait for it to finish, then run this again")
        self.lock_session = self.db.scalar("SELECT CONNECTION_ID()")
        # The lock's connection idles while others load: the server's wait_timeout must not close it (and free the
        # lock for a second restore) however long the loading takes. An administrator's KILL still can: see still_held.
        self.db.execute("SET SESSION wait_timeout = %d" % LOCK_IDLE_SECONDS)

    def still_held(self, db):
        """On a connection of this restore, inside the transaction that is about to write (or under its LOCK TABLES):
        stop when the restore lock is no longer this restore's. Its connection was killed, and a second restore may
        be loading the same tables (an outside tester: both ran, one "restored", the other stopped at a duplicate
        key). Asked before each write, in its transaction: a second restore empties a table only once that
        transaction has ended (its LOCK TABLES waits), and this one's next write stops here."""
        if self.lock_session is None:  # no lock to lose (a user allowed one connection, a server without GET_LOCK)
            return
        holder = db.scalar("SELECT IS_USED_LOCK(?)", (lock_name(self.address.database),))
        if holder != self.lock_session:
            raise DatabaseLockedError(
                "this restore lost the restore lock of %s (its connection was closed, by an administrator's KILL or "
                "the server): another restore may be loading the database now, so this one stopped" %
                self.address.display(), hint="run `emfix doctor`; once no restore is running, run this restore again")

    def mark(self, snapshot_id, safety_id, directory):
        """Before the first table is emptied: the row that says this restore is under way."""
        if self.db is not None:
            try:
                self.db.scalar("SELECT 1")
            except ConnectError:  # killed while the safety snapshot was taken (an outside tester: said only "lost")
                raise DatabaseLockedError(
                    "this restore lost the restore lock of %s before it changed anything (its connection was closed, "
                    "by an administrator's KILL or the server); nothing was changed" % self.address.display(),
                    hint="run `emfix doctor`; once no restore is running, run this restore again") from None
        with self._connection() as db:
            q = db.quote(MARK_TABLE)
            try:
                db.execute("CREATE TABLE IF NOT EXISTS %s (run_id VARCHAR(64) NOT NULL PRIMARY KEY, snapshot_id "
                           "VARCHAR(100) NOT NULL, safety_snapshot_id VARCHAR(100), snapshot_dir TEXT, "
                           "started_at VARCHAR(40) NOT NULL)" % q)
            except PrivilegeError as exc:  # a user without CREATE restores as before, unmarked: said, not refused
                log.warning("this restore is not marked in the database (%s): if it is killed before it ends, only "
                            "running it again tells", exc.message)
                return
            if _mark_table(db) is None:
                raise SchemaError("%s holds a table or view %s that emfix did not make (other columns): a restore "
                                  "marks itself there; nothing was changed" % (self.address.display(), MARK_TABLE),
                                  hint="rename that table (RENAME TABLE %s TO ...), then run this again" % q)
            self.earlier = unfinished_restore(db) or {}
            # Its id first, and the row in a transaction: stopped while the INSERT waits (another session holds the
            # table), the row is never committed, or it is this run's to take back (an outside tester's mark on
            # an unchanged database).
            self.run_id = "%s-%d-%s" % (utc_now(), os.getpid(), os.urandom(4).hex())
            with db.transaction():
                db.execute("INSERT INTO %s (%s) VALUES (?, ?, ?, ?, ?)" % (q, ", ".join(COLUMNS)),
                           (self.run_id, snapshot_id, safety_id, os.path.abspath(directory), utc_now()))

    def finish(self):
        """Every table loaded and counted: no row is left, this restore's nor a killed one's, and the table goes
        (the database as the snapshot has it; under the lock no other restore is marking). A user who may delete
        but not drop leaves it, empty."""
        try:
            self._on_a_live_connection(lambda: self._clear(locked=self.db is not None))
        finally:
            self.close()

    def _on_a_live_connection(self, work):
        """work() on the lock's connection, or again on one of its own when that one was lost meanwhile (killed,
        wait_timeout, cut by Ctrl-C or SIGTERM mid-statement): the lock is gone with it then."""
        try:
            work()
        except ConnectError:
            self.close()
            self.db = None
            work()

    def _clear(self, locked):
        """Under the lock every row goes (no other restore is marking); without it (lost, or never had: a user
        allowed one connection) this restore's own row, and the table once none is left."""
        with self._connection() as db:
            name = _mark_table(db)
            if name is None:
                return
            q = db.quote(name)
            if locked or self.run_id is None:  # unmarked itself (no CREATE): the rows of killed ones go
                db.execute("DELETE FROM %s" % q)
            else:
                db.execute("DELETE FROM %s WHERE run_id = ?" % q, (self.run_id,))
            if not db.scalar("SELECT COUNT(*) FROM %s" % q):
                with contextlib.suppress(PrivilegeError):
                    db.execute("DROP TABLE IF EXISTS %s" % q)

    def nothing_changed(self):
        """Refused before it emptied anything: its own row goes (a killed restore's stays), and the table with it
        when no row is left (as after a restore that finished)."""
        try:
            if self.run_id is not None:
                self._on_a_live_connection(self._take_back)
        finally:
            self.close()

    def _take_back(self):
        with self._connection() as db:
            q = db.quote(MARK_TABLE)
            db.execute("DELETE FROM %s WHERE run_id = ?" % q, (self.run_id,))
            if self.db is not None and not db.scalar("SELECT COUNT(*) FROM %s" % q):  # under the lock
                with contextlib.suppress(PrivilegeError):
                    db.execute("DROP TABLE IF EXISTS %s" % q)

    def close(self):
        """The lock goes with the connection; the row stays (the restore did not finish)."""
        if self.db is not None:
            self.db.close()


def unfinished_restore(db):
    """What the rows of restores into this MySQL database that did not finish say, or None: the latest one's
    snapshot and folder (to run it again), the first one's safety snapshot (what was there before them all), how
    many there are, and whether a restore holds the lock now (one is running)."""
    if db.dialect != "mysql":
        return None
    name = _mark_table(db)
    if name is None:
        return None
    try:
        rows = db.query("SELECT snapshot_id, safety_snapshot_id, snapshot_dir, started_at FROM %s ORDER BY started_at"
                        % db.quote(name))
    except Exception:  # noqa: BLE001 - a restore that finished meanwhile dropped it (exit 70: an outside tester)
        if _mark_table(db) is None:
            return None
        raise
    if not rows:
        return None
    first, last = rows[0], rows[-1]
    running = db.scalar("SELECT IS_USED_LOCK(?)", (lock_name(db.address.database),)) is not None
    return {"snapshot_id": text_of(last[0]), "snapshot_dir": text_of(last[2]), "started_at": text_of(last[3]),
            "safety_snapshot_id": text_of(first[1]), "restores": len(rows), "running": running}


def marked_in_moment(db):
    """unfinished_restore read inside a consistent read that has begun: the restore marked before this moment, whose
    emptied tables the read sees (snapshot create keeps what it reads as partial then), or None: a mark table made
    after the moment began is none of this read's (its tables, emptied after, fail the read instead)."""
    try:
        return unfinished_restore(db)
    except ConflictError:  # "Table definition has changed": made after the moment began
        return None


def _mark_table(db, graph=None):
    """The mark's table as the server names it (lower_case_table_names), or None; None too for a table of that name
    that emfix did not make (other columns: an outside tester's crashed doctor, validate and restore, exit 70).
    `graph`: the database's tables and columns as already read (else they are read here)."""
    tables = graph.tables if graph is not None else db.tables()
    # The name itself: on a case-sensitive server `_EMFIX_RESTORE` is another table (an outside tester: doctor read
    # one or the other); one of another case only where the server folds names (lower_case_table_names 1 or 2).
    name = MARK_TABLE if MARK_TABLE in tables else None
    if name is None and any(t.lower() == MARK_TABLE for t in tables) and db.scalar("SELECT @@lower_case_table_names"):
        name = next(t for t in tables if t.lower() == MARK_TABLE)
    columns = (graph.columns.get(name, []) if graph is not None else db.columns(name)) if name else []
    if name is None or sorted(c.lower() for c in columns) != sorted(COLUMNS):  # not one of more columns
        return None
    return name


def describe(found, target):
    """(message, hint) of a restore under way or one that did not finish, for doctor and the refusals."""
    snapshot = found.get("snapshot_id")
    if found.get("running"):
        return ("a restore of snapshot %s into this database is running now (started %s): the database is partly "
                "restored until it ends" % (snapshot, found.get("started_at")), "wait for it to finish")
    message = "a restore of snapshot %s (started %s) did not finish: the database is partly restored (tables " \
              "emptied, not all loaded)" % (snapshot, found.get("started_at"))
    if found.get("restores", 1) > 1:
        message += "; %d restores did not finish" % found["restores"]
    folder = " --snapshot-dir %s" % shlex.quote(found["snapshot_dir"]) if found.get("snapshot_dir") else ""
    hint = "restore it again: emfix snapshot restore %s%s --snapshot-id %s" % (target, folder, snapshot)
    if found.get("safety_snapshot_id"):
        hint += " (safety snapshot %s holds what was there before%s)" % (
            found["safety_snapshot_id"], " the first of them" if found.get("restores", 1) > 1 else " it")
    return message, hint


def snapshot_graph(graph, db):
    """The tables a snapshot holds: all but the mark. A table of the mark's name that emfix did not make (other
    columns, or another letter case on a case-sensitive server) is the user's, and held (an outside tester: every
    snapshot left such tables out, without a word)."""
    mark = _mark_table(db, graph) if db.dialect == "mysql" else None  # from the tables and columns just read
    return graph if mark is None else without_tables(graph, lambda t: t == mark)
