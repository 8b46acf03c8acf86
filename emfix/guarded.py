"""The guarded-change engine: how every repair changes a database without losing anything.

A repair describes what to change (its plan, and the rows or values it would write); this module
owns, once, the protocol around it:

- preflight: the Experiment Manager's schema recognised and a SQLite file's integrity checked before
  anything is read to act on (a damaged file makes a wrong plan), whatever --no-snapshot says;
- a finished change is not applied again over the same scope without --force;
- the verified safety snapshot, then the quarantine, opened when the first change is about to
  happen (never for nothing), filed under the database's identity so `undo` finds the right one;
- compare-and-swap writes: a value is rewritten only where the row still holds what emfix read,
  NULL-safe and byte for byte; what another process changed meanwhile is left alone and reported;
- the quarantine keeps each value before and the value emfix wrote, committed before the write,
  so undo puts back only what still holds emfix's value.
"""

import contextlib
import dataclasses
import os
import re
import threading
from typing import List, Optional

from . import quarantine as q
from .backends import open_database
from .errors import AlreadyDoneError, Cancelled, DamagedInputError, OperationInterrupted
from .fkmerge import rowid_ranges
from .killpoints import kill_point
from .progress import NoProgress
from .schema import discover_graph, require_experiment_manager

AFTER = "_emfix_after"  # the value emfix wrote in place of the original
STATE = "_emfix_state"  # 'kept' before the write; 'left alone' when another process changed the row first
LEFT_ALONE = "left alone"


@dataclasses.dataclass(frozen=True)
class Safeguards:
    """What a repair's caller decides about its safety net (the engine does the rest)."""

    snapshot: bool = True
    snapshot_dir: Optional[str] = None
    quarantine_dir: Optional[str] = None
    retry_policy: object = None
    force: bool = False


# -- preflight ------------------------------------------------------------------------------------

def check_integrity(db):
    """Refuse a SQLite file that PRAGMA quick_check finds damaged: a plan made from a damaged file
    deletes rows whose parents are only unreadable (one read of the file: ~1 s on ten million rows)."""
    if db.dialect != "sqlite":
        return
    _refuse_damage(db, db.quick_check())


def _refuse_damage(db, damage):
    if damage:
        error = DamagedInputError("%s is damaged (%s); nothing was read or changed" % (db.address.display(), damage),
                                  hint="`emfix snapshot restore %s` puts back the last verified snapshot; "
                                       "`sqlite3 FILE .recover` salvages what is readable" % db.address.target())
        error.quick_check = True  # the file itself, not something read from it
        raise error


class IntegrityCheck:
    """check_integrity on a second connection of the same file, in a thread, while the caller reads on
    its own (SQLite releases the GIL while it steps): the whole quick_check still runs, and `wait()`
    refuses a damaged file before the caller writes anything. `checker` is the connection to check on;
    `done(checker)` is called once the check is over (to hand a pooled connection back)."""

    def __init__(self, db, checker, done=None):
        self.db, self.checker, self.done = db, checker, done
        self.damage, self.error, self.thread = "", None, None
        # Set by the check's own thread once its answer is in: `wait()` trusts nothing else. A join the main
        # thread's Ctrl-C interrupts marks the thread stopped while it still runs (Python 3.11, bpo-45274), and
        # another thread's join then returned at once: a lane of migrate committed a page of a damaged SRC
        # (found by an outside tester).
        self.over = threading.Event()
        if db.dialect == "sqlite":
            # Not a daemon: a command that stops early still waits for it at exit (Python 3.8 could crash
            # finalising while a daemon thread was inside SQLite).
            self.thread = threading.Thread(target=self._run, name="emfix-quick-check")
            self.thread.start()
        else:
            self.over.set()
            if done is not None:
                done(checker)

    def _run(self):
        try:
            self.damage = self.checker.quick_check()
        except BaseException as exc:  # raised by wait(), in the caller's thread
            self.error = exc
        finally:
            try:
                if self.done is not None:
                    self.done(self.checker)
            finally:
                self.over.set()

    def wait(self, stop=None):
        """Once the check is over: its error, or the damage it found, raised (each time asked, by any thread).
        `stop` (an Event): set meanwhile, the wait ends with OperationInterrupted (the caller is stopping)."""
        while not self.over.wait(None if stop is None else 0.05):
            if stop.is_set():
                raise OperationInterrupted("stopped while waiting for the check of %s" % self.db.address.display())
        if self.error is not None:
            raise self.error
        _refuse_damage(self.db, self.damage)

    @property
    def finished(self):
        return self.over.is_set()

    def __enter__(self):
        return self

    def __exit__(self, kind, error, trace):
        """On leaving the block: waited for, unless `deferred` (the caller waits later, before it commits)."""
        if kind is None and getattr(self, "deferred", False):
            return False
        if kind is None or issubclass(kind, Exception):
            self.wait()  # a damaged file is said as such, whatever else failed on it
        else:
            self.cancel()
        return False

    def cancel(self):
        """Stop it early (the caller failed): interrupt the statement, wait for its answer (an error, then)."""
        if not self.over.is_set():
            try:
                self.checker.connection.interrupt()
            except Exception:  # noqa: BLE001 - already closed or done: nothing to stop
                pass
            self.over.wait()


def preflight(db, address, force=False, writing=True, check=True):
    """The database's relation graph, once its schema is recognised, (SQLite) its file is sound and,
    when the command will write, the server is the one to write to (a replica is refused: writegate).
    `check` False: the caller checks the file itself while it plans (checked_meanwhile)."""
    if writing:
        from .writegate import refuse_own_file
        refuse_own_file(db.address, db.retry_policy)
    graph = discover_graph(db)
    require_experiment_manager(graph, address, force)
    if check:
        check_integrity(db)
    if writing:
        from .writegate import refuse_if_replica
        refuse_if_replica(db, force)
        db.warn_without_transactions(graph.tables)  # MyISAM: exact only while nothing else writes
    return graph


@contextlib.contextmanager
def checked_meanwhile(db, retry_policy=None):
    """check_integrity of a SQLite file on a second connection while the block plans on `db` (the check and the
    planning each on a core: 1 s of the 10M demo's cleanup). A damaged file is refused as the block ends, before
    anything is written, and before any error the damage may have caused inside it."""
    if db.dialect != "sqlite":
        yield
        return
    checker = open_database(db.address, readonly=True, retry_policy=retry_policy or db.retry_policy)
    with IntegrityCheck(db, checker, done=lambda connection: connection.close()):
        yield


# -- the change and its quarantine ------------------------------------------------------------------

class GuardedChange:
    """One repair of one database: the safety snapshot and the quarantine, made once, on first use."""

    def __init__(self, address, command, reason, safeguards=None, progress=None, fingerprint=None):
        self.address = address
        self.command = command
        self.reason = reason
        self.safeguards = safeguards or Safeguards()
        self.progress = progress or NoProgress()
        self.fingerprint = fingerprint  # what makes two runs "the same change" (rules, scope)
        self.quarantine_dir = self.safeguards.quarantine_dir or q.default_quarantine_dir(address)
        self.quarantine_path = None
        self.snapshot_id = None
        self._con = None
        self._held = None  # the quarantine's lock (quarantine.hold), from when this run takes it to close()
        self._meta = {}

    # before anything is written
    def confirm(self, ask, plan):
        """One question, on the plan that will be executed."""
        self.progress.done()  # a question must not share the line with the progress
        if ask is not None and not ask(plan):
            raise Cancelled("cancelled; nothing was changed")

    def prepare(self, **meta):
        """Check the quarantine folder can be written, pick up an unfinished run of the same change,
        and refuse a repeat of a finished one. `meta` goes into the quarantine when it is opened."""
        q.writable_dir(self.quarantine_dir)
        self._meta = meta
        unfinished = q.find_unfinished(self.quarantine_dir, self.command, self.address)
        if unfinished:  # interrupted, or still being written by a run that has not ended: that one keeps it
            self._held = q.hold(unfinished, "%s of %s" % (self.command, self.address.display()))
            self.quarantine_path = unfinished
            return
        if self.fingerprint is not None and not self.safeguards.force:
            done = q.find_finished(self.quarantine_dir, self.command, self.address, self.fingerprint)
            if done:
                raise AlreadyDoneError(
                    "%s with these rules over this scope already ran on %s (%s); nothing was changed"
                    % (self.command, self.address.display(), done),
                    hint="`emfix undo %s` first, or add --force to apply it again on top" % done)

    @property
    def resuming(self):
        return self.quarantine_path is not None and self._con is None and os.path.exists(self.quarantine_path)

    def open(self):
        """The quarantine connection; the first call takes the verified snapshot and opens the file."""
        if self._con is not None:
            return self._con
        if self.safeguards.snapshot and self.snapshot_id is None:
            from .snapshot import safety_snapshot
            self.snapshot_id = safety_snapshot(self.address, self.safeguards.snapshot_dir, self.command,
                                               retry_policy=self.safeguards.retry_policy, progress=self.progress)
        self.quarantine_path = self.quarantine_path or q.quarantine_path(self.quarantine_dir, self.command)
        con = q.open_quarantine(self.quarantine_path, create=True)
        if self._held is None:  # held before it says "in progress": no other run takes it for an interrupted one
            try:
                self._held = q.hold(self.quarantine_path, "%s of %s" % (self.command, self.address.display()))
            except BaseException:
                con.close()
                raise
        kill_point("quarantine-opened")
        extra = dict(self._meta)
        if self.fingerprint is not None:
            extra["change_fingerprint"] = self.fingerprint
        q.start(con, self.command, self.address, self.reason, **extra)
        self._con = con
        return con

    @property
    def opened(self):
        return self._con is not None

    def finish(self, **meta):
        """Mark the quarantine done (also one an interrupted run left, when this run had nothing left to do)."""
        if self._con is None and self.resuming:
            self._con = q.open_quarantine(self.quarantine_path)
        if self._con is not None:
            q.write_meta(self._con, status="done", digests=q.content_digests(self._con), **meta)

    @property
    def kept_in(self):
        """The quarantine file, once something was kept in it."""
        return self.quarantine_path if self._con is not None else None

    def close(self):
        if self._con is not None:
            self._con.close()
            self._con = None
        q.release(self._held)  # (after the connection: see quarantine.hold)
        self._held = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# -- reading what to change: pages by key ---------------------------------------------------------

SMALLEST_KEY = -(1 << 63)  # SQLite's and BIGINT's smallest: a page from here misses no integer key


def key_pages(db, sql, batch_size, first=SMALLEST_KEY):
    """Pages of rows in key order: `sql` selects the key first and holds one `{after}` where the key's
    lower bound goes (`key >= ?` on the first page, `key > ?` after). Every key from `first` on is reached,
    integers of any size and (SQLite) the text keys that sort after them."""
    last, op = first, ">="
    while True:
        rows = db.query(sql.replace("{after}", op + " ?", 1), (last,))
        if rows:
            yield rows
        if len(rows) < batch_size:
            return
        last, op = rows[-1][0], ">"


SCAN_WINDOW = 100000  # keys one statement reads beside an application (SQLite: ~40 ms of the METRIC scan)


def rowid_windows(db, table, key, size=None):
    """[start, end) ranges of `size` keys covering `key` when it is a SQLite table's rowid (INTEGER PRIMARY KEY:
    every key an integer; fkmerge.rowid_ranges: empty stretches skipped, the last end maybe None), else None. A scan
    for rare rows in one statement held the read lock, and so every commit of an application in rollback-journal
    mode, for as long as the whole table takes (an outside tester: repair's JSON scans of the 10M demo, 1.3 s
    each)."""
    if db.dialect != "sqlite":
        return None
    keys = [r for r in db.query("PRAGMA table_info(%s)" % db.quote(table)) if r[5]]
    sql = db.table_sql(table)
    if len(keys) != 1 or keys[0][1] != key or str(keys[0][2]).upper() != "INTEGER" or \
            re.search(r"\bWITHOUT\s+ROWID\b", sql, re.IGNORECASE):
        return None
    return rowid_ranges(db, table, size or SCAN_WINDOW)


def window_pages(db, sql, batch_size, key, windows):
    """key_pages within each of `windows` (rowid_windows): `sql`'s `{after}` gets the window's upper bound too,
    so no statement reads more than one window's rows, however rare the rows it looks for."""
    for start, end in windows:
        bound = "" if end is None else " AND %s < %d" % (db.quote(key), end)
        yield from key_pages(db, sql.replace("{after}", "{after}" + bound, 1), batch_size, start)


# -- values rewritten in place: kept (before and after), then compare-and-swap -----------------------

@dataclasses.dataclass
class Rewrite:
    """One value to rewrite: the row's key, the value emfix read, its storage kind, the new value."""

    key: object
    before: object
    kind: str
    after: object


class ValueRewrites:
    """The quarantine table of one column's rewritten values, and the compare-and-swap writes."""

    def __init__(self, change, table, key, column, kept_as=None):
        self.change, self.table, self.key, self.column = change, table, key, column
        self.kept_as = kept_as or table  # the quarantine table (another name when rows of `table` are kept too)
        self._ready = False

    def _table(self):
        con = self.change.open()
        if not self._ready:
            con.execute("CREATE TABLE IF NOT EXISTS %s (%s, %s, %s, %s, %s)" % (
                q.qi(self.kept_as), q.qi(self.key), q.qi(self.column), q.qi(q.TYPE_COLUMN), q.qi(AFTER), q.qi(STATE)))
            present = {r[1] for r in con.execute("PRAGMA table_info(%s)" % q.qi(self.kept_as))}
            for column in (AFTER, STATE):  # a run of an older emfix being finished
                if column not in present:
                    con.execute("ALTER TABLE %s ADD COLUMN %s" % (q.qi(self.kept_as), q.qi(column)))
            con.execute("CREATE UNIQUE INDEX IF NOT EXISTS %s ON %s (%s)" % (
                q.qi("_emfix_key_" + self.kept_as), q.qi(self.kept_as), q.qi(self.key)))
            self._ready = True
        return con

    def kept(self, low, high):
        """{key: (before, after)} already in the quarantine for keys in [low, high] (a rerun after a kill)."""
        if not self.change.opened and not self.change.resuming:
            return {}
        con = self._table()
        return {k: (b, a) for k, b, a in con.execute("SELECT %s, %s, %s FROM %s WHERE %s BETWEEN ? AND ?" % (
            q.qi(self.key), q.qi(self.column), q.qi(AFTER), q.qi(self.kept_as), q.qi(self.key)), (low, high))}

    def apply(self, db, rewrites: List[Rewrite]):
        """Keep, then write: the batch's originals and new values are committed to the quarantine, then
        each value is replaced in one short transaction only where the row still holds the original.
        Returns the keys left alone because another process changed them first."""
        if not rewrites:
            return []
        con = self._table()
        names = ", ".join(q.qi(c) for c in (self.key, self.column, q.TYPE_COLUMN, AFTER, STATE))
        upsert = ("INSERT INTO {t} ({names}) VALUES (?, ?, ?, ?, 'kept') ON CONFLICT ({k}) DO UPDATE SET "
                  "{b} = excluded.{b}, {ty} = excluded.{ty}, {a} = excluded.{a}, {s} = 'kept' "
                  "WHERE {t}.{b} IS NOT excluded.{b} AND {t}.{a} IS NOT excluded.{b}").format(
            t=q.qi(self.kept_as), names=names, k=q.qi(self.key), b=q.qi(self.column), ty=q.qi(q.TYPE_COLUMN),
            a=q.qi(AFTER), s=q.qi(STATE))
        # A row kept by an earlier run whose value has changed since (by another process) is kept anew:
        # the earlier change is no longer in the database, this one is what undo must reverse.
        q.keep_rows(con, upsert, [(r.key, _storable(r.before), r.kind, r.after) for r in rewrites],
                    self.change.quarantine_path)
        kill_point("kept")
        def write():
            written = 0
            for kind, group in _by_kind(rewrites).items():
                written += db.executemany(swap_sql(db, self.table, self.key, self.column, kind),
                                          [swap_params(db, r.after, r.key, _storable(r.before)) for r in group],
                                          batch_size=len(group))
            return written
        written = db.write_batch(write)  # a conflict (deadlock, Galera) rolls it back whole, then runs it again
        kill_point("written")
        if written >= len(rewrites):
            return []
        now = current_values(db, self.table, self.key, self.column, [r.key for r in rewrites])
        left = [r.key for r in rewrites if not same_value(now.get(r.key, _MISSING), r.after)]
        if left:
            con.execute("BEGIN")
            con.executemany("UPDATE %s SET %s = ? WHERE %s = ?" % (q.qi(self.kept_as), q.qi(STATE), q.qi(self.key)),
                            [(LEFT_ALONE, k) for k in left])
            con.execute("COMMIT")
        return left


_MISSING = object()


def _storable(value):
    return bytes(value) if isinstance(value, (bytes, bytearray)) else value


def _by_kind(rewrites):
    groups = {}
    for r in rewrites:
        groups.setdefault("text-bytes" if r.kind == "text-bytes" else "plain", []).append(r)
    return groups


def holds(db, column, kind="plain"):
    """`column` still holds the bound value, exactly: NULL-safe, byte for byte (MySQL's case- and
    space-insensitive collations would call '{"A":1} ' equal to '{"a":1}')."""
    c = db.quote(column)
    if db.dialect == "sqlite":
        return "%s IS %s" % (c, "CAST(? AS TEXT)" if kind == "text-bytes" else "?")
    return "(%s <=> ? AND BINARY %s <=> BINARY ?)" % (c, c)


def swap_sql(db, table, key, column, kind="plain", new_kind="plain"):
    """UPDATE one value where the row still holds the expected one; parameters (new, key, expected)."""
    new = "CAST(? AS TEXT)" if new_kind == "text-bytes" and db.dialect == "sqlite" else "?"
    return "UPDATE %s SET %s = %s WHERE %s = ? AND %s" % (db.quote(table), db.quote(column), new, db.quote(key),
                                                         holds(db, column, kind))


def swap_params(db, new, key, expected):
    return (new, key, expected) if db.dialect == "sqlite" else (new, key, expected, expected)


def current_values(db, table, key, column, keys, per_query=200):
    """{key: value now} for `keys` (one query per 200 keys)."""
    found = {}
    keys = list(keys)
    for start in range(0, len(keys), per_query):
        part = keys[start:start + per_query]
        found.update(db.query("SELECT %s, %s FROM %s WHERE %s IN (%s)" % (
            db.quote(key), db.quote(column), db.quote(table), db.quote(key), ", ".join("?" * len(part))),
            tuple(part)))
    return found


def same_value(now, expected):
    """Exactly the same stored value (text and bytes compared as bytes; 1 and 1.0 differ)."""
    if now is _MISSING:
        return False
    if isinstance(now, (bytes, bytearray)) or isinstance(expected, (bytes, bytearray)):
        as_bytes = [bytes(v) if isinstance(v, (bytes, bytearray)) else v.encode("utf-8") if isinstance(v, str) else v
                    for v in (now, expected)]
        return as_bytes[0] == as_bytes[1]
    return type(now) is type(expected) and now == expected

