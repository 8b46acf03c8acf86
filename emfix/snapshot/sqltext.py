"""Snapshots of MySQL databases as SQL text, written at the speed of the MySQL tools and read back (the
loader, also as fast, is mysqlrestore.py's).

mysqldump is fast because the server sends text and the client only escapes it; but the text of
a FLOAT keeps six digits, so a dump loses METRIC.total_val. Here the server formats every row as
an exact SQL literal (`MySQLBackend.literal_row`: FLOAT through DOUBLE, binary as X'hex') and
aggregates a page of rows into one value, so Python handles a few thousand strings of ~512 kB
instead of millions of rows. Each row's literal ends in a NUL (QUOTE escapes NULs in values): a page
is written only with one NUL per row it counted, as GROUP_CONCAT stops at its limit without an error.
Tables are split into key ranges that several connections from the pool read at once, all inside
one moment (FLUSH TABLES WITH READ LOCK held only while each connection starts its consistent
snapshot; one connection when the user may not take that lock).

The file is plain SQL that `mysql DB < file` loads. Each statement is preceded by a comment with
its length in bytes (`-- 1234`), so emfix reads it back without parsing SQL; the last line names
every table's row count, so a cut-off file is recognised even without its manifest. Verify reads
each INSERT's last row (with --full: every row) from the text (sqlrows.py).
"""

import hashlib
import json
import logging
import os
import queue
import re
import threading

from ..backends import open_database
from ..backends.mysqlvalues import FLOAT_KINDS, WIDE_END
from ..errors import DatabaseLockedError, EmfixError, PrivilegeError
from ..pool import run_parallel
from .sqlreader import END, MAGIC, ddl_column_names

log = logging.getLogger(__name__)

ROW_END = b"\0"  # after each row's literal in a page as the server sends it; `),(` between them in the file
# Strict (a value the column would cut is an error), an id 0 kept as 0, zero dates taken as they were stored.
LOAD_SQL_MODE = "NO_AUTO_VALUE_ON_ZERO,STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION"
SESSION = [
    "/*!40101 SET NAMES utf8mb4 */",
    "SET time_zone = '+00:00'",
    "SET foreign_key_checks = 0",
    "SET unique_checks = 0",
    "SET sql_mode = '%s'" % LOAD_SQL_MODE,
]
PAGE_BYTES = 512 << 10  # one INSERT, as mysqldump writes them; a page is read again smaller past twice this
FIRST_PAGE_ROWS = 2000
# Readers of a MySQL snapshot by default, as mydumper's threads: a page waits on the server's disk as much as on its
# CPU (10M rows, buffer pool smaller than the data, 2 cores: 1 reader 10.4 s, 2 6.95 s, 3 5.8 s, 4 5.45 s).
READERS = 4
MAX_READERS = 32  # more asks the server for its every connection (its max_connections) and waits to open them
FLUSH_LOCK_WAIT = 1  # seconds FLUSH TABLES WITH READ LOCK may wait (every write on the server waits meanwhile)
MAX_PAGE_ROWS = 100000  # the most rows a page asks for by number (LIMIT, OFFSET)
CHUNK_ROWS = 30000  # a key range one connection reads: small enough that the readers finish together
INTEGER_TYPES = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint"}
SYNC_BYTES = 32 << 20  # written bytes pushed to disk in the background: the fsync before the rename has little left


# -- writing -----------------------------------------------------------------------------------

class _Output:
    """The snapshot file, written by several threads a whole statement at a time."""

    def __init__(self, handle):
        self._handle = handle
        self._lock = threading.Lock()
        self.counts = {}
        self.failed = threading.Event()  # one reader failed: the others stop at their next range
        self.sha256 = hashlib.sha256()  # of every byte as it is written: no second pass over the file
        self._unsynced, self._syncing = 0, None

    def write(self, data):
        self._handle.write(data)
        self.sha256.update(data)
        self._unsynced += len(data)
        if self._unsynced >= SYNC_BYTES and (self._syncing is None or not self._syncing.is_alive()):
            # The disk takes what is written so far while the readers go on (10M rows: 0.6 s of fsync at the end
            # otherwise); durable_file's fsync still makes the whole file durable before it is renamed.
            self._handle.flush()
            self._unsynced = 0
            self._syncing = threading.Thread(target=_sync_quietly, args=(self._handle.fileno(),),
                                             name="emfix-sync", daemon=True)
            self._syncing.start()

    def synced(self):
        """Wait for the background sync (before the file is closed: its descriptor must stay open until then)."""
        if self._syncing is not None:
            self._syncing.join()

    def statement(self, *parts, table=None, rows=0):
        """One statement from its parts (str or bytes), written as they are: a page is never copied whole."""
        parts = [p.encode("utf-8") if isinstance(p, str) else p for p in parts] + [b";\n"]
        with self._lock:
            self.write(b"-- %d\n" % sum(len(p) for p in parts))
            for part in parts:
                self.write(part)
            if table is not None:
                self.counts[table] = self.counts.get(table, 0) + rows


class _TablePlan:
    def __init__(self, db, table, keys, columns, estimate):
        generated = db.generated_columns(table)  # computed by the server, which refuses a value for one
        columns = [c for c in columns if c.lower() not in generated]
        self.table, self.keys, self.columns = table, tuple(keys), tuple(columns)
        types = db.column_types(table)
        # The row, then ROW_END; wide where a float's text may outgrow its declared width (mysqlvalues.WIDE_END: such
        # a row was cut, read as too long for a page, and the snapshot failed: an outside tester)
        wide = any((types.get(c.lower()) or "").split(" ")[0] in FLOAT_KINDS for c in columns)
        self.row_sql = "CONCAT(%s, %s)" % (db.literal_row(table, columns), WIDE_END if wide else "'\\0'")
        self.insert = ("INSERT INTO %s (%s) VALUES (" % (db.quote(table), db.quote_columns(columns))).encode("utf-8")
        self.integer_key = bool(keys) and types.get(keys[0].lower()) in INTEGER_TYPES
        self.integer_second = len(keys) > 1 and types.get(keys[1].lower()) in INTEGER_TYPES
        self.estimate = estimate
        self.density = 1.0  # rows per value of the first key column


def write_sql_snapshot(pool, lead, graph, temp, *, progress=None, workers=READERS, in_moment=None):
    """Write every table of `graph` into `temp` inside one moment of the database; return the row counts,
    the SHA-256 of what was written, that moment's place in the binary log (None without one), and the tables
    without transactions read outside it ({table: engine}, _one_moment).

    `lead` (from `pool`, opened by `open_reader`) plans; it and up to `workers - 1` more connections read, as
    many as the server allows this user. `in_moment(lead)` is called once the moment has begun."""
    connections = pool.acquire_up_to(workers, first=[lead])
    stopped, holding = False, False
    try:
        readers, position, holding, outside = _one_moment(connections, graph.tables)
        if in_moment is not None:
            in_moment(lead)
        with open(temp, "wb") as handle:
            out = _Output(handle)
            try:
                plans = _write_head(lead, graph, out)
                chunks = queue.Queue()
                for chunk in sorted(_chunks(lead, plans), key=lambda c: -c[0].estimate):
                    chunks.put(chunk)
                out.counts.update({p.table: 0 for p in plans})
                run_parallel([lambda db=db: _drain(db, chunks, out, progress) for db in readers], out.failed)
                out.write(END + json.dumps({"tables": out.counts}, sort_keys=True).encode("ascii") + b"\n")
                handle.flush()
            finally:
                out.synced()
        return out.counts, out.sha256.hexdigest(), position, outside
    except BaseException as exc:
        stopped = not isinstance(exc, Exception)  # Ctrl-C, SIGTERM: readers may be mid-page on their connections
        raise
    finally:
        if holding and not stopped:
            lead.execute("UNLOCK TABLES")
        for db in connections:
            if stopped:  # a COMMIT beside a reader's unfinished result waited for ever (an outside tester)
                db.abandon()
            else:
                _end_read(db)
        for db in connections[1:]:
            pool.release(db)


def _sync_quietly(fd):
    try:
        getattr(os, "fdatasync", os.fsync)(fd)  # macOS has no fdatasync
    except OSError:  # the fsync before the rename says it (and fails the snapshot)
        pass


def open_reader(address, retry_policy):
    """A read-only MySQL session for snapshots: UTC times, GROUP_CONCAT as long as a packet allows."""
    db = open_database(address, readonly=True, retry_policy=retry_policy)
    try:
        limit, modes = db.query("SELECT @@max_allowed_packet, @@sql_mode")[0]
        if "NO_BACKSLASH_ESCAPES" in str(modes).upper():  # '\0' (ROW_END) must be a NUL
            db.execute("SET SESSION sql_mode = ''")
        limit = int(limit)
        db.page_limit = max(1 << 20, limit - 1024)  # the longest value the server may send
        db.concat_limit = min(db.page_limit, 4 * PAGE_BYTES)  # raised only for a row that needs it
        db.execute("SET SESSION group_concat_max_len = %d" % db.concat_limit)
        db.execute("SET SESSION time_zone = '+00:00'")
    except BaseException:
        db.close()
        raise
    return db


def _one_moment(connections, tables):
    """Start a consistent snapshot on each connection at the same moment, or on the first one alone; with
    it, the moment's GTID and binlog position, read while the lock holds (or where the snapshot starts), whether
    the lock is to be held to the end of the reads (the caller lets it go), and the tables without transactions
    that no lock holds ({table: engine}: read outside the moment).

    FLUSH TABLES WITH READ LOCK waits for every running statement, and every write waits for it: a statement
    running (MariaDB: for 0.1 s; MySQL: for a second) means one connection, and the lock is asked for once, for at
    most FLUSH_LOCK_WAIT seconds (retried, a long UPDATE held the application's writes for 30 s: an outside tester).
    Tables whose engine keeps no transactions (MyISAM: the schema's notes name it as a source of orphans) are in no
    consistent snapshot: the lock is asked for whatever runs, and held until every table is read, as mysqldump's
    --lock-all-tables does (every write on the server waits meanwhile); without it the snapshot says it is one
    moment only if nothing writes to them."""
    lead = connections[0]
    locked, bare = False, lead.without_transactions(tables)
    if len(connections) > 1 and not bare:
        running = lead.scalar(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND = 'Query' AND ID <> CONNECTION_ID() "
            "AND %s" % ("TIME_MS >= 100" if lead.is_mariadb() else "TIME >= 1"))
        if running:
            log.info("reading with one connection: %d statement(s) of other sessions running would hold FLUSH "
                     "TABLES WITH READ LOCK, and every write with it", running)
            connections = connections[:1]
    if len(connections) > 1 or bare:
        try:
            lead.execute("SET SESSION lock_wait_timeout = %d" % FLUSH_LOCK_WAIT)
            lead.execute_once("FLUSH TABLES WITH READ LOCK")
            locked = True
        except (PrivilegeError, DatabaseLockedError) as exc:
            why = str(exc) if isinstance(exc, PrivilegeError) else "FLUSH TABLES WITH READ LOCK waited %d s for " \
                "another session's statement" % FLUSH_LOCK_WAIT
            log.info("reading with one connection: %s", why)
            connections = connections[:1]
            if bare:
                log.warning("%s: no transactions (%s): this snapshot holds %s at one moment only if nothing writes to "
                            "%s while it reads (%s)", ", ".join(bare), ", ".join(sorted(set(bare.values()))),
                            "it" if len(bare) == 1 else "them", "it" if len(bare) == 1 else "them", why)
        # The reads wait for table locks as usual. Not after anything else: Ctrl-C or SIGTERM in the wait leaves the
        # connection mid-statement, and an error of this statement would hide the signal's exit code.
        lead.execute("SET SESSION lock_wait_timeout = %d" % lead.lock_wait)
    stopped = False
    try:
        for db in connections:
            db.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            _hold_every_table(db, tables)
        position = lead.stream_position(locked)
    except BaseException as exc:
        stopped = not isinstance(exc, Exception)  # Ctrl-C, SIGTERM: the caller cuts the connections (which unlocks)
        raise
    finally:
        if locked and not stopped and not bare:
            lead.execute("UNLOCK TABLES")
    return connections, position, locked and bool(bare), {} if locked else bare


def _hold_every_table(db, tables):
    """Every reader holds every table (its metadata lock, to the end of its read) from the start, under FLUSH TABLES
    WITH READ LOCK while no DDL can begin (with one reader and no such lock, a table altered between the moment's
    start and this is "Table definition has changed": exit 3). Else an ALTER TABLE (another migrate reserving its
    ids) waited for the table one reader held, and every other reader asking for that table queued behind the
    ALTER: a cycle across sessions that the server cannot see, which stalled both to --lock-timeout (an outside
    tester)."""
    db.hold_tables(tables)


def _end_read(db):
    try:
        db.execute("COMMIT")
    except Exception:  # the connection is gone: its read went with it
        pass


def _write_head(db, graph, out):
    out.write(MAGIC + (" of %s; load it with `emfix snapshot restore` or `mysql DB < this file` (it empties "
                       "the tables it fills)\n" % db.address.display().replace("\n", " ")).encode("utf-8"))
    for sql in SESSION:
        out.statement(sql)
    estimates = {name: int(rows or 0) for name, rows in db.query(
        "SELECT TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()")}
    ddls = []
    for table in graph.parent_first():
        ddl = db.query("SHOW CREATE TABLE %s" % db.quote(table))[0][1]
        out.statement(re.sub(r"^CREATE TABLE", "CREATE TABLE IF NOT EXISTS", ddl))
        ddls.append((table, ddl))
    # The rows are read by the columns of this moment's DDL, and by their kinds read now (every table is held since
    # the moment began: no ALTER comes between): a column added since the tables were listed crashed the snapshot
    # (an outside tester: KeyError from the kinds read at another moment).
    db.forget_catalog()
    # Each table under the name the database holds it by, as its CREATE TABLE says (a server that folds names holds
    # METRIC as `metric`): the file is one spelling throughout, which `mysql DB < file` loads anywhere. Every table
    # is held since the moment began: each catalog query is read once.
    with db.reading_held_tables():
        plans = [_TablePlan(db, db.stored(table), graph.primary_keys.get(table) or (), ddl_column_names(ddl),
                            estimates.get(db.stored(table), estimates.get(table, 0))) for table, ddl in ddls]
    for plan in plans:
        out.statement("TRUNCATE TABLE %s" % db.quote(plan.table))
    return plans


def _chunks(db, plans):
    """Key ranges on each table's first key column (integer keys), about CHUNK_ROWS rows each; each
    plan learns how many rows a value of that column holds on average (its first page's width)."""
    keyed = [p for p in plans if p.integer_key]
    # Every table's bounds in one statement, each an index seek (a statement a table cost 18 round trips)
    bounds = db.query("SELECT %s" % ", ".join("(SELECT %s(%s) FROM %s)" % (
        end, db.quote(p.keys[0]), db.quote(p.table)) for p in keyed for end in ("MIN", "MAX")))[0] if keyed else ()
    ranges = {id(p): bounds[2 * n:2 * n + 2] for n, p in enumerate(keyed)}
    for plan in plans:
        if not plan.integer_key:
            yield plan, None, None
            continue
        low, high = ranges[id(plan)]
        if low is None:
            continue
        low, high = int(low), int(high) + 1
        plan.density = max(plan.estimate, 1) / float(high - low)
        parts = max(1, min(1024, plan.estimate // CHUNK_ROWS))
        step = max(1, (high - low) // parts + 1)
        for start in range(low, high, step):
            yield plan, start, min(high, start + step)


def _drain(db, chunks, out, progress):
    while not out.failed.is_set():
        try:
            plan, low, high = chunks.get_nowait()
        except queue.Empty:
            return
        _copy_chunk(db, plan, low, high, out)
        if progress is not None:
            progress.update("%s: %d rows" % (plan.table, out.counts.get(plan.table, 0)))


def _copy_chunk(db, plan, low, high, out):
    bounds, params = [], []
    if low is not None:
        first = db.quote(plan.keys[0])
        bounds, params = ["%s >= ? AND %s < ?" % (first, first)], [low, high]
    pages = _Pages(db, plan, out)
    if not plan.keys:
        pages.by_offset()
    elif plan.integer_key:  # ranges of the first key column's values, as wide as a page's bytes allow
        pages.by_arithmetic(bounds, params, low, high)
    else:
        pages.by_probes(bounds, params, ())


class _Pages:
    """Pages of one key range, each one aggregate (COUNT, GROUP_CONCAT of the row literals) that
    fits in group_concat_max_len; the page size follows the bytes the last page took."""

    def __init__(self, db, plan, out):
        self.db, self.plan, self.out = db, plan, out
        self.rows = FIRST_PAGE_ROWS
        # `rows` is a width in key values (by_arithmetic, _split_value), bound by the key range only: capped like a
        # row count, a table whose ids are a million apart was read a row a page, two queries a row (an outside
        # tester: 20,000 rows in 34 s); or a number of rows (by_probes, by_offset), capped at MAX_PAGE_ROWS
        self.widths = False
        self.target = min(PAGE_BYTES, db.page_limit // 4)
        self.table = db.quote(plan.table)

    def _page(self, where, params, source=None, can_split=None):
        """Write the rows matching `where` (or all of `source`); False (nothing written) when they do not fit
        in one value, or (when they `can_split`, by default: more than one row asked for) take more than
        twice a page's bytes (memory stays flat, here and in restore); else how many rows were written."""
        source = source or "%s%s" % (self.table, _where(where))
        count, text = self.db.query_raw("SELECT COUNT(*), GROUP_CONCAT(%s SEPARATOR '') FROM %s" % (
            self.plan.row_sql, source), params)[0]
        count = int(count)
        splittable = self.rows > 1 if can_split is None else can_split
        rows = text.replace(ROW_END, b"),(") if count else b""  # `1,'a'),(2,'b'),(`
        if count and (len(rows) - len(text)) // 2 != count:  # GROUP_CONCAT stopped at the limit: a row is cut off
            if splittable or self.db.concat_limit >= self.db.page_limit:
                return False
            self.db.concat_limit = self.db.page_limit  # one row longer than pages are: room for it, once more
            self.db.execute("SET SESSION group_concat_max_len = %d" % self.db.concat_limit)
            return self._page(where, params, source, can_split)
        if count and len(text) > 2 * self.target and splittable:
            return False
        if count:  # CR and LF inside a value written as \r and \n, as mysqldump does: the mysql client loading the
            # file read a CR LF in a value as a line's end and dropped the CR (an outside tester); nothing else in a
            # page is a CR or a LF
            self._write(count, rows.replace(b"\r", b"\\r").replace(b"\n", b"\\n"), len(text))
        return count

    def _write(self, count, rows, size):
        """One INSERT of `rows` (each followed by `),(`), `size` bytes as the server sent them."""
        self.out.statement(self.plan.insert, memoryview(rows)[:-2], table=self.plan.table, rows=count)
        grown = int(self.rows * self.target / max(size, 1))
        self.rows = max(1, grown if self.widths else min(MAX_PAGE_ROWS, grown))

    def by_arithmetic(self, bounds, params, low, high):
        self.rows = max(1, int(FIRST_PAGE_ROWS / max(self.plan.density, 1e-9)))  # values, not rows
        self.widths = True
        key = self.db.quote(self.plan.keys[0])
        start = low
        crowded = len(self.plan.keys) > 1 and self.plan.density > 4 * FIRST_PAGE_ROWS  # values hold many pages
        while start < high:
            stop = min(high, start + self.rows)
            written = False if crowded else self._page(
                bounds + ["%s >= ? AND %s < ?" % (key, key)], params + [start, stop],
                can_split=self.rows > 1 or len(self.plan.keys) > 1)
            if written is False and self.rows == 1 and len(self.plan.keys) > 1:
                self._split_value(bounds, params, start)  # one value of the first key column holds too much
                self.rows, start, self.widths = 1, start + 1, True
                continue
            if written is False:
                self._shrink()
                continue
            if not written:  # a gap in the ids: jump to the next one
                stop = self._next_value(key, bounds, params, stop)
                if stop is None:
                    return
            start = stop

    def _split_value(self, bounds, params, value):
        """The rows of one value of the first key column, in pages: ranges of the second key column's values
        when it is an integer (BATCH's and BATCH_METRIC's: a few values of `idx` hold every row), else probes."""
        if not self.plan.integer_second:
            self.rows = FIRST_PAGE_ROWS
            self.by_probes(bounds, params, (value,))
            return
        db, keys = self.db, self.plan.keys
        where, base = bounds + ["%s = ?" % db.quote(keys[0])], params + [value]
        column = db.quote(keys[1])
        low, high = db.query("SELECT MIN(%s), MAX(%s) FROM %s%s" % (column, column, self.table, _where(where)), base)[0]
        if low is None:
            return
        low, high = int(low), int(high) + 1
        self.rows = max(1, int(FIRST_PAGE_ROWS * (high - low) / max(self.plan.density, 1.0)))  # values per page
        self.widths = True
        start = low
        while start < high:
            stop = min(high, start + self.rows)
            written = self._page(where + ["%s >= ? AND %s < ?" % (column, column)], base + [start, stop],
                                 can_split=self.rows > 1 or len(keys) > 2)
            if written is False and self.rows == 1 and len(keys) > 2:
                self.rows = FIRST_PAGE_ROWS  # one value of the second column holds too much: probes under it
                self.by_probes(bounds, params, (value, start))
                self.rows, start, self.widths = 1, start + 1, True
                continue
            if written is False:
                self._shrink()
                continue
            if not written:  # a gap in the second column's values: jump to the next one
                stop = self._next_value(column, where, base, stop)
                if stop is None:
                    return
            start = stop

    def _next_value(self, column, where, params, at_least):
        """The smallest value of `column` from `at_least` on under `where` (past a gap), or None."""
        found = self._least(column, where + ["%s >= ?" % column], params + [at_least])
        return None if found is None else int(found)

    def by_probes(self, bounds, params, prefix):
        """Ranges of one key column (the ones before it fixed by `prefix`) found by an index probe:
        [v, the value `rows` rows further), down to the next column when one value has more rows."""
        db, keys = self.db, self.plan.keys
        column = db.quote(keys[len(prefix)])
        where = bounds + ["%s = ?" % db.quote(k) for k in keys[:len(prefix)]]
        base = params + list(prefix)
        last = len(prefix) == len(keys) - 1
        self.widths = False
        low = self._least(column, where, base)
        while low is not None:
            probe = db.query("SELECT %s FROM %s%s ORDER BY %s LIMIT 1 OFFSET %d" % (
                column, self.table, _where(where + ["%s >= ?" % column]), column, self.rows), base + [low])
            if probe and probe[0][0] == low and not last:
                self.by_probes(bounds, params, tuple(prefix) + (low,))  # one value, too many rows: split it
                low = self._least(column, where + ["%s > ?" % column], base + [low])
                continue
            if probe:
                page, values = where + ["%s >= ? AND %s < ?" % (column, column)], base + [low, probe[0][0]]
            else:
                page, values = where + ["%s >= ?" % column], base + [low]
            if self._page(page, values) is False:
                self._shrink()
                continue
            low = probe[0][0] if probe else None

    def _least(self, column, where, params):
        """The smallest value of the key column `column` under `where`, or None (Backend.first_in_order: not MIN())."""
        return self.db.first_in_order(self.table, column, " AND ".join(where), params)

    def by_offset(self):
        """A table without a primary key: OFFSET pages, stable inside the consistent snapshot."""
        offset, self.widths = 0, False
        while True:
            written = self._page((), (), "(SELECT * FROM %s LIMIT %d OFFSET %d) page" % (self.table, self.rows, offset))
            if written is False:
                self._shrink()
                continue
            if not written:
                return
            offset += written

    def _shrink(self):
        if self.rows == 1:
            raise EmfixError("a row of %s is larger than the server's max_allowed_packet (%d bytes) allows in one "
                             "value" % (self.plan.table, self.db.page_limit),
                             hint="raise max_allowed_packet on the server, or snapshot with --format sqlite")
        self.rows = max(1, self.rows // 4)


def _where(conditions):
    return " WHERE " + " AND ".join(conditions) if conditions else ""

