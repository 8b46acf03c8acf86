"""How migrate reads an experiment's subtree: pages of rows, pages of SQL text, or INSERT ... SELECT batches.

Every reader goes in key order after a last key (keyset), so a copy killed at any moment resumes
exactly where its journal says. Which one a copy uses:

- rows (`row_pages`): any pair of databases, a page of Python rows at a time (OFFSET on request);
- SQL text (`literal_pages`): SQLite into MySQL; SQLite's quote() and group_concat turn a page into
  the body of one multi-row INSERT, which MySQL parses as it parses the mysql client's;
- in-engine batches (`engine_batches`): SQLite into SQLite; DST is attached to SRC's connection and
  each batch is one INSERT ... SELECT, while a second read lock on SRC (`pin_moment`) keeps its moment.
"""

import queue
import sys
import threading

from .errors import DamagedInputError
from .pool import put_unless_stopped
from .progress import BASE_MB, DEFAULT_BATCH
from .subtreelinks import ROWID
from .values import portable

MAX_BATCH = 100000
PAGE_BYTES = 512 << 10  # a page of SQL text into MySQL, when --batch-size does not say
ENGINE_BATCH = 20000  # rows per transaction of an in-engine copy (no row passes through Python)
ENGINE_DST = "emfix_dst"
ENGINE_GROUP = 100000  # rows of in-engine batches committed together (each commit of DST costs its fsyncs)
GROUP_CACHE_KB = 16384  # DST's page cache while they are: a cache that spills syncs the journal each time


def row_pages(db, graph, tree, table, batch_size, paging, last):
    """Rows of one table in key order, a page at a time, starting after `last` (a key) or at an offset."""
    columns = graph.columns[table]
    source, keys, names = tree.source(db, graph, table)
    cols = db.exact_columns(table, columns, "t.")
    order = ", ".join(keys)
    index = [columns.index(c) for c in names]
    glue = " AND " if " WHERE " in source else " WHERE "
    if paging == "offset":
        offset = last or 0
        while True:
            rows = db.query("SELECT %s FROM %s ORDER BY %s LIMIT %d OFFSET %d" % (
                cols, source, order, batch_size, offset))
            if not rows:
                return
            offset += len(rows)
            yield rows, offset
            if len(rows) < batch_size:
                return
    if not graph.primary_keys.get(table) and table in tree.held:
        yield from _pages_by_links(db, graph, tree, table, cols, batch_size, last)
        return
    while True:
        after, params = "", ()
        if last is not None:
            _check_position(table, last, keys)
            after, params = db.key_bound(keys, ">", last)
            after = glue + after
        rows = db.query("SELECT %s FROM %s%s ORDER BY %s LIMIT %d" % (cols, source, after, order, batch_size),
                        params)
        if not rows:
            return
        last = [rows[-1][i] for i in index]
        yield rows, [portable(v) for v in last]
        if len(rows) < batch_size:
            return


def _check_position(table, last, keys):
    if not isinstance(last, list) or len(last) != len(keys):  # a journal from another schema or hand
        raise DamagedInputError("the position saved for %s (%r) is not a key of %d columns" % (
            table, last, len(keys)), hint="run without --resume after removing what was copied")


def _pages_by_links(db, graph, tree, table, cols, batch_size, last):
    """A table without a primary key, in pages of whole groups of rows that share their link columns (the columns
    its key table holds): a page's bound is the link key `batch_size` rows on in the key table, and the page takes
    every row up to it. Paged by all its columns, a page ending inside a group of identical rows made the next
    page's `>` skip the rest of the group, and one ending on a NULL skipped every row after it (written, then
    DIFFERS: round 49). Link keys are the engine's own values, read back from the key table, so they bind exactly;
    a group larger than a batch makes a larger page. On SQLite the key table kept each row's rowid: a page is a
    range of the key table's index and a seek per row (read by condition, each page scanned the table: 98,820 rows
    of a 197,640-row table took 2.4 s)."""
    name, key = tree.keys(graph, table)
    held = ["x.%s" % db.quote(c) for c in key]
    if table in tree.rowids:
        rows_from, member, mine = "%s x JOIN %s t ON t.%s = x.%s" % (
            db.quote(name), db.quote(table), tree.rowids[table], ROWID), [], held
    else:
        rows_from, member, mine = "%s t" % db.quote(table), [tree.where(db, graph, table, "t")], [
            "t.%s" % db.quote(c) for c in key]
    while True:
        kept, after, params = [], "", ()
        if last is not None:
            _check_position(table, last, key)
            after, params = db.null_safe_bound(held, ">", last)
            kept = [db.null_safe_bound(mine, ">", last)[0]]
            after = " WHERE " + after
        bound = db.query("SELECT %s FROM %s x%s ORDER BY %s LIMIT 1 OFFSET %d" % (
            ", ".join(held), db.quote(name), after, ", ".join(held), batch_size - 1), params)
        if not bound:  # the last page: up to the greatest link key left (NULL sorts last going down)
            bound = db.query("SELECT %s FROM %s x%s ORDER BY %s LIMIT 1" % (
                ", ".join(held), db.quote(name), after, ", ".join(h + " DESC" for h in held)), params)
            if not bound:
                return
        upto, upto_params = db.null_safe_bound(mine, "<=", bound[0])
        rows = db.query("SELECT %s FROM %s WHERE %s ORDER BY %s" % (
            cols, rows_from, " AND ".join(member + kept + [upto]), ", ".join(mine)), params + upto_params)
        last = [portable(v) for v in bound[0]]
        if rows:
            yield rows, last


class LiteralPage:
    """A page of rows as the body of a multi-row INSERT (`1,'a'),(2,'b'`), made by SQLite's quote()."""

    def __init__(self, count, text):
        self.count, self.text = count, text

    def __len__(self):
        return self.count


def literal_pages(db, graph, tree, table, batch_size, last, moves, limit, adaptive=False):
    """SQLite SRC into MySQL: each page is one group_concat of quote()d values, so no row passes through
    Python (quote() writes a REAL with 20 digits, exact; MySQL reads a backslash as an escape, so it is
    doubled, once over the whole page, by Python: only quoted strings hold one; a replace() per value cost a
    fifth of SQLite's work, SQLite's replace() of the page 0.056 s of BATCH's 0.42 s, 10M demo). Pages hold
    batch_size rows, fewer when that would pass `limit` bytes; `adaptive` (no --batch-size) pages grow or
    shrink to about PAGE_BYTES, as the mysql client's statements do."""
    target = min(PAGE_BYTES, limit // 2)
    source, alias = tree.copy_source(db, graph, table)
    introducer = text_introducer(db)
    values = [exact_quote(v, introducer) for v in moved_values(db, graph.columns[table], moves, alias)]
    select = "SELECT count(*), group_concat(%s, '),(') FROM %s%s" % (
        " || ',' || ".join(values), source, " AND " if " WHERE " in source else " WHERE ")
    size = batch_size
    while last != "done":
        found = key_range(db, graph, tree, table, size, last)
        if found is None:
            return
        where, params, after = found
        count, text = db.query_raw(select + where, params)[0]
        if text:  # (UTF-8: no byte of a multi-byte character is a backslash)
            text = text.replace(b"\\", b"\\\\")
        if len(text or b"") > limit and size > 1:
            size = max(1, size // 4)
            continue
        if adaptive:
            size = max(1, min(MAX_BATCH, int(size * target / max(1, len(text or b""))) or 1))
        last = after
        if count:
            yield LiteralPage(count, text), last
        elif last == "done":
            return


INTRODUCERS = {"utf-8": "_utf8mb4", "utf-16le": "_utf16le", "utf-16be": "_utf16"}


def text_introducer(db):
    """MySQL's name for the character set SQLite stores TEXT in (PRAGMA encoding)."""
    return INTRODUCERS.get(str(db.scalar("PRAGMA encoding")).lower(), "_utf8mb4")


def exact_quote(value, introducer="_utf8mb4"):
    """SQLite's quote() of `value` as a MySQL literal of the same value. quote() ends TEXT at its first NUL
    ('a' || char(0) || 'b' gives 'a'), so TEXT holding one goes as its exact bytes in hex with their character
    set (_utf8mb4 X'610062': MySQL stores those characters, the NUL too). Ordinary values pay a typeof(),
    TEXT an instr() besides (about a quarter more of SQLite's work on a page; MySQL's is the same)."""
    return ("CASE WHEN typeof({v}) = 'text' AND instr({v}, char(0)) > 0 "
            "THEN '{i} X''' || hex({v}) || '''' ELSE quote({v}) END").format(v=value, i=introducer)


def moved_values(db, columns, moves, alias="t"):
    """SQLite expressions for a row's columns (of table `alias`), the ids in `moves` shifted in the engine."""
    shift = dict(moves)
    values = []
    for i, column in enumerate(columns):
        value = "%s.%s" % (alias, db.quote(column))
        if shift.get(i):
            value = "CASE WHEN typeof(%s) = 'integer' THEN %s + %d ELSE %s END" % (value, value, shift[i], value)
        values.append(value)
    return values


class EngineBatch:
    """SQLite into SQLite: one batch as an INSERT ... SELECT that SQLite runs from SRC into the attached DST."""

    def __init__(self, sql, params, expected):
        self.sql, self.params, self.expected = sql, params, expected  # expected: rows it must write, or None


def copies_in_engine(source, target, paging):
    """SQLite into another SQLite file, keyset pages, SRC in rollback-journal mode: there a read lock held
    on SRC (the pin) keeps every writer out, so batches read in separate transactions all see one moment.
    (In WAL mode a writer could commit between two batches: rows go through Python, inside one read.)"""
    if source.dialect != "sqlite" or target.dialect != "sqlite" or paging != "keyset":
        return False
    if ":memory:" in (source.address.path, target.address.path):
        return False
    return str(source.scalar("PRAGMA journal_mode")).lower() != "wal"


def pin_moment(readers):
    pin = readers.acquire()
    pin.execute("BEGIN")
    pin.scalar("SELECT count(*) FROM sqlite_master")  # the read that takes SRC's shared lock
    return pin


class CommitGroup:
    """In-engine batches share one transaction on SRC's connection until about `rows` rows are written: each
    batch still writes its journal row with its rows, so a kill leaves DST at the last commit, journal and rows
    alike, and --resume goes on from there. Fewer commits, fewer fsyncs of DST and its journal."""

    def __init__(self, db, rows=ENGINE_GROUP, gate=None):
        """`gate`: SRC's IntegrityCheck still running; nothing is committed before it passed (the group
        just grows until then), and the last commit waits for it: a damaged SRC leaves DST as it was."""
        self.db, self.rows, self.pending, self.open, self.gate = db, rows, 0, None, gate

    def begin(self):
        if self.open is None:
            self.open = self.db.transaction()
            self.open.__enter__()

    def wrote(self, count):
        self.pending += count
        if self.pending >= self.rows and (self.gate is None or self.gate.finished):
            self.commit()

    def commit(self):
        if self.gate is not None:
            self.gate.wait()  # raises the damage: the caller rolls the group back
            self.gate = None
        if self.open is not None:
            self.open, done = None, self.open
            self.pending = 0
            done.__exit__(None, None, None)

    def rollback(self, error):
        if self.open is not None:
            self.open, failed = None, self.open
            try:
                failed.__exit__(type(error), error, error.__traceback__)
            except BaseException:  # noqa: BLE001 - the rollback re-raises `error`: the caller raises it
                pass


def quick_commits(db, schema):
    """An attached DST in rollback-journal mode keeps its journal file between commits (TRUNCATE) instead of
    creating and deleting it, and the directory's fsync with it, each time; the mode of a WAL file is left
    alone. Returns what to run to put the mode back (DELETE also removes the emptied journal file)."""
    db.execute("PRAGMA %s.cache_size = -%d" % (schema, GROUP_CACHE_KB))  # a group's pages, not spilled in between
    mode = str(db.scalar("PRAGMA %s.journal_mode" % schema)).lower()
    if mode != "delete":
        return None
    db.scalar("PRAGMA %s.journal_mode = TRUNCATE" % schema)
    return "PRAGMA %s.journal_mode = DELETE" % schema


def engine_batches(db, graph, tree, table, batch_size, last, moves, check):
    """Batches of at most `batch_size` rows in key order, each an INSERT ... SELECT through the key table.
    A batch's bounds are found in the key table alone (no lookup into the table per row); `check`
    (conservative) also counts what each batch should write."""
    columns = graph.columns[table]
    source, alias = tree.copy_source(db, graph, table)
    insert = "INSERT INTO %s.%s (%s) SELECT %s FROM %s" % (ENGINE_DST, db.quote(table), db.quote_columns(columns),
                                                          ", ".join(moved_values(db, columns, moves, alias)), source)
    while last != "done":
        found = key_range(db, graph, tree, table, batch_size, last)
        if found is None:
            return
        where, params, last = found
        expected = int(db.scalar("SELECT count(*) FROM %s WHERE %s" % (source, where), params)) if check else None
        yield EngineBatch("%s%s%s" % (insert, " AND " if " WHERE " in source else " WHERE ", where), params,
                          expected), last


def key_range(db, graph, tree, table, size, last):
    """(condition on the key columns, its parameters, its last key or "done" at the end) for the next
    `size` keys after `last`, found by probing the table's key table (never the table itself); None
    when no key is left."""
    name, key = tree.keys(graph, table)
    keys = ["x.%s" % db.quote(c) for c in key]
    order = ", ".join(keys)
    after, params = ([], ())
    if last is not None:
        after, params = db.key_bound(keys, ">", last)
        after = [after]
    where = " WHERE " + " AND ".join(after) if after else ""
    bound = db.query("SELECT %s FROM %s x%s ORDER BY %s LIMIT 1 OFFSET %d" % (order, db.quote(name), where, order,
                                                                             size - 1), params)
    if bound:
        upto, upto_params = db.key_bound(keys, "<=", bound[0])
        return " AND ".join(after + [upto]), params + upto_params, [portable(v) for v in bound[0]]
    if db.query("SELECT 1 FROM %s x%s LIMIT 1" % (db.quote(name), where), params):
        return " AND ".join(after) or "1 = 1", params, "done"
    return None


def prefetched(items, depth=2):
    """Yield from `items` while a thread already produces the next ones (at most `depth` ahead)."""
    ready, stop = queue.Queue(maxsize=depth), threading.Event()

    def produce():
        try:
            for item in items:
                put_unless_stopped(ready, ("item", item), stop)
                if stop.is_set():
                    return
            put_unless_stopped(ready, ("end", None), stop)
        except BaseException as exc:  # handed to the consumer, raised there
            put_unless_stopped(ready, ("error", exc), stop)

    worker = threading.Thread(target=produce, name="emfix-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = ready.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        while worker.is_alive():
            try:
                ready.get(timeout=0.05)
            except queue.Empty:
                pass
        worker.join()


def batch_for_memory(db, graph, table, where, max_memory_mb):
    """Rows per batch so a batch (held about 4 times over: driver rows, mapped rows, the driver's
    statement, the checksum pass) fits in what --max-memory leaves after BASE_MB."""
    room = (max_memory_mb - BASE_MB) * 1024 * 1024
    cols = ", ".join("t." + db.quote(c) for c in graph.columns[table])
    sample = db.query("SELECT %s FROM %s t WHERE %s LIMIT 200" % (cols, db.quote(table), where))
    if not sample:
        return DEFAULT_BATCH
    per_row = sum(sys.getsizeof(row) + sum(sys.getsizeof(v) for v in row) for row in sample) / len(sample)
    return max(10, min(MAX_BATCH, int(room / (4 * per_row))))


def literal_limit(source, target):
    """Bytes a page of SQL text may take into MySQL (its max_allowed_packet, less room for the statement),
    when SRC is a SQLite whose quote() writes a REAL exactly (older builds wrote 15 digits); else 0."""
    if source.dialect != "sqlite" or target.dialect != "mysql":
        return 0
    if source.scalar("SELECT quote(0.1 + 0.2) = '3.00000000000000044408e-01'") != 1:
        return 0
    return max(1 << 16, min(16 << 20, int(target.scalar("SELECT @@max_allowed_packet") or 0) - (64 << 10)))
