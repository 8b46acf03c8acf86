"""The small interface every capability talks to, whatever the database behind it."""

import collections
import contextlib
import hashlib
import logging
import sqlite3

from ..errors import ConflictError, EmfixError
from ..retry import RetriesExhausted, RetryPolicy, call_with_retry

log = logging.getLogger(__name__)


def server_lock_name(purpose, database):
    """The server-wide name of a MySQL named lock (GET_LOCK) for `purpose` in `database`: at most 64 characters."""
    name = "emfix_%s:%s" % (purpose, database)
    if len(name) > 64:
        name = "emfix_%s:%s" % (purpose, hashlib.sha256(database.encode("utf-8")).hexdigest()[:40])
    return name


@contextlib.contextmanager
def server_lock(db, purpose, key, wait):
    """A MySQL named lock (GET_LOCK) held for the block, asked for for at most `wait` seconds. Yields True (held),
    False (another session holds it) or None (not MySQL, or a server without named locks: the callers' other
    safeguards stand alone then). Released at the end, whatever happens in the block."""
    if db.dialect != "mysql":
        yield None
        return
    name = server_lock_name(purpose, key)
    try:
        held = bool(db.scalar("SELECT GET_LOCK(?, ?)", (name, wait)))
    except EmfixError as exc:
        log.info("no named lock %s: %s", name, exc)
        yield None
        return
    try:
        yield held
    finally:
        if held:
            with contextlib.suppress(EmfixError):
                db.scalar("SELECT RELEASE_LOCK(?)", (name,))


Index = collections.namedtuple("Index", "table name columns unique", defaults=(False,))
# `type` as declared (SQLite) or as the server reports it (MySQL COLUMN_TYPE); `default` as SQL text or None.
ColumnDetail = collections.namedtuple("ColumnDetail", "name type not_null default auto")



def is_duplicate_key(exc):
    """A UNIQUE / PRIMARY KEY refusal: SQLite's IntegrityError, MySQL's 1062 (raw, or as the refused statement
    of a batch sent as text)."""
    if getattr(exc, "errno", None) == 1062:
        return True
    text = str(exc)
    if isinstance(exc, sqlite3.IntegrityError):
        return "UNIQUE constraint failed" in text or "PRIMARY KEY must be unique" in text
    return getattr(exc, "kind", None) == "refused_statement" and "Duplicate entry" in text

class StorageLimit(collections.namedtuple("StorageLimit", "kind digits rounds")):
    """A column that keeps less than it is given, or keeps it otherwise: a single-precision FLOAT, a DATETIME/TIME
    with `digits` (< 6) fractional digits that the server rounds or (`rounds` False) truncates, or (kind "bytes") a
    binary column, which keeps text as its bytes and, a BINARY(`digits`), pads them with zero bytes, or (kind
    "decimal") a DECIMAL with `digits` after the point, which keeps a number as its digits to that scale, or (kind
    "text") a text column, which keeps a whole number as its digits (a link column declared VARCHAR)."""


STORED_NAMES = {}  # address.key() -> {a table as the application spells it: as the database holds it}


class Backend:
    """A connection to one database.

    Statements use `?` placeholders on every backend; the MySQL backend translates them.
    Outside `transaction()` each statement commits on its own.
    """

    dialect = ""
    quote_char = '"'

    def __init__(self, address, readonly=False, retry_policy=None):
        self.address = address
        self.readonly = readonly
        self.retry_policy = retry_policy or RetryPolicy()
        self._in_transaction = False

    # -- identifiers and SQL text -------------------------------------------------------------
    def quote(self, name):
        q = self.quote_char
        return q + str(name).replace(q, q + q) + q

    def warn_without_transactions(self, tables, reading=False):  # noqa: ARG002 (SQLite: every table has them)
        """A warning line naming the tables of `tables` whose engine keeps no transactions (MySQL: MyISAM...), before
        a change to them (or, `reading`, a read that is to be one moment); returns them ({table: engine})."""
        return {}

    def foreign_key_names(self):
        """{name in lower case: (name, its table)} of the foreign keys whose names a new table's may not take (MySQL;
        SQLite's are the table's own)."""
        return {}

    def stored(self, table):
        """The name the database holds `table` under, where the catalog names it as the application does
        (schema.discover_graph: METRIC for a `metric` of a server that dumps from Windows brought): `quote` writes
        it so on MySQL, where a server that tells letter cases apart finds no METRIC."""
        names = STORED_NAMES.get(self._names_key()) if STORED_NAMES else None
        return names.get(table, table) if names else table

    def remember_stored_names(self, names):
        """{name as the application spells it: name as the database holds it} (see stored), for every connection
        of this process to the database (a snapshot's readers, validate's helper thread), in place of what was
        known before."""
        STORED_NAMES[self._names_key()] = dict(names)

    def _names_key(self):
        key = self.__dict__.get("_key")
        if key is None:
            key = self._key = self.address.key()
        return key

    def quote_columns(self, columns, prefix=""):
        return ", ".join(prefix + self.quote(c) for c in columns)

    def exact_columns(self, table, columns, prefix=""):
        """The select list that reads each column's stored value, not a printed approximation of it.

        Every read of data that is written elsewhere (snapshot, migrate, export, quarantine, checksum)
        goes through here: MySQL's text protocol prints a FLOAT with six significant digits, so a
        FLOAT column is read as `col + 0e0`, the double that holds the stored single exactly."""
        return ", ".join(self.exact_column(table, c, prefix) for c in columns)

    def exact_column(self, table, column, prefix=""):  # noqa: ARG002 (a backend that reads by type needs it)
        return prefix + self.quote(column)

    def storage_limits(self, table):  # noqa: ARG002 (SQLite keeps what it is given)
        """{column: values.StorageLimit} for columns that keep less than a double or a microsecond:
        what a value written there comes back as (verify compares against that, and says so)."""
        return {}

    # -- statements (implemented per backend) ------------------------------------------------
    def execute(self, sql, params=()):
        """Run one statement; return its rowcount."""
        raise NotImplementedError

    def execute_scratch(self, sql, params=()):
        """A statement that writes emfix's own scratch tables from a SELECT of the database's (MySQL: without strict
        mode, whose errors for a comparison's warnings would stop it)."""
        return self.execute(sql, params)

    def query(self, sql, params=()):
        """Rows of a small result, as a list of tuples."""
        raise NotImplementedError

    def iter_rows(self, sql, params=(), arraysize=1000):
        """Rows of a result of any size, fetched in chunks, never all at once."""
        raise NotImplementedError

    def executemany(self, sql, rows, batch_size=1000):
        """Insert or update from an iterable of parameter tuples, `batch_size` at a time."""
        total = 0
        batch = []
        for row in rows:
            batch.append(row)
            if len(batch) >= batch_size:
                total += self._executemany(sql, batch)
                batch = []
        if batch:
            total += self._executemany(sql, batch)
        return total

    def _executemany(self, sql, batch):
        raise NotImplementedError

    _temp_keyword = "TEMP"
    _drop_temp = "DROP TABLE IF EXISTS temp.%s"

    def create_temp_table(self, name, select_sql, params=(), indexes=()):
        """A connection-private table filled from a query: scratch space that never touches the data.
        `indexes`: column lists to index (a table read only afterwards; MySQL builds them as it fills it)."""
        self.execute(self._drop_temp % self.quote(name))
        self.execute("CREATE %s TABLE %s AS %s" % (self._temp_keyword, self.quote(name), select_sql), params)
        for n, columns in enumerate(indexes):
            self.create_temp_index(name, columns, "k%d" % n)

    def drop_temp_table(self, name):
        """A scratch table of this connection gone before the connection is (one made per table of a long run)."""
        self.execute(self._drop_temp % self.quote(name))

    def create_temp_index(self, table, columns, suffix="k"):
        """An index on a scratch table, so probes into it are lookups, not scans."""
        temp = "temp." if self.dialect == "sqlite" else ""
        self.execute("CREATE INDEX %s%s ON %s (%s)" % (temp, self.quote("%s_%s" % (table, suffix)), self.quote(table),
                                                       self.quote_columns(columns)))

    def first_in_order(self, table, column, where="", params=(), last=False):
        """The least (`last`: the greatest) value of `column` under `where` (SQL, quoted by the caller), or None: the
        row's own value, found by ORDER BY ... LIMIT 1 (an index seek, as MIN's). Not MIN()/MAX(): of a MySQL BIT
        column they come back as digits the driver reads as the value's bytes (a wrong bound, and from 2^32 on an
        error that left the connection hanging: rounds 31, 32)."""
        found = self.query("SELECT %s FROM %s%s ORDER BY %s%s LIMIT 1" % (
            column, table, " WHERE %s" % where if where else "", column, " DESC" if last else ""), params)
        return found[0][0] if found else None

    def data_version(self):
        """SQLite's PRAGMA data_version (backends/sqlite.py): None here, where no such signal exists."""
        return None

    @property
    def max_parameters(self):
        """How many values one statement may bind (the MySQL driver writes them into the statement's text)."""
        return 1 << 20

    def mark(self, value):  # noqa: ARG002 - SQLite's looks at it
        """The SQL that binds `value` as the value it is (SQLite: text that is not UTF-8 needs more than `?`)."""
        return "?"

    def key_bound(self, columns, op, values):
        """`columns` (SQL expressions: a key, in its order) `op` (>, >=, < or <=) the key `values`, as (condition,
        parameters). SQLite seeks an index with a row value; MariaDB reads a row-value comparison from the index's
        first entry on (each page of a composite key read all the pages before it again), so there it is spelled
        out column by column, which its range optimizer seeks."""
        if len(columns) == 1:
            return "%s %s %s" % (columns[0], op, self.mark(values[0])), (values[0],)
        if self.dialect == "sqlite":
            return "(%s) %s (%s)" % (", ".join(columns), op, ", ".join(self.mark(v) for v in values)), tuple(values)
        sql, params = "%s %s ?" % (columns[-1], op), [values[-1]]
        for column, value in zip(reversed(columns[:-1]), reversed(values[:-1])):
            sql = "%s %s ? OR (%s = ? AND (%s))" % (column, op[0], column, sql)
            params = [value, value] + params
        return "(%s)" % sql, tuple(params)

    def null_safe_bound(self, columns, op, values):
        """key_bound for columns that may hold NULL (the link columns by which a table without a primary key is
        paged): NULL sorts first, as ORDER BY puts it on both engines, and a NULL among `values` is spelled IS NULL
        rather than bound (`c > NULL` holds for no row: the rows after a page that ended on one were left out)."""
        def beyond(column, value):  # `column` sorts strictly after (op >) or before (op <) `value`
            if value is None:
                return ("%s IS NOT NULL" % column, []) if op[0] == ">" else ("1 = 0", [])
            mark = self.mark(value)
            return ("%s > %s" % (column, mark) if op[0] == ">" else "(%s IS NULL OR %s < %s)" % (column, column, mark)
                    ), [value]

        def same(column, value):
            return ("%s IS NULL" % column, []) if value is None else ("%s = %s" % (column, self.mark(value)), [value])

        sql, params = beyond(columns[-1], values[-1])
        if len(op) == 2:  # >= or <=: the last column may equal its value
            equal, equal_params = same(columns[-1], values[-1])
            sql, params = "(%s OR %s)" % (sql, equal), params + equal_params
        for column, value in zip(reversed(columns[:-1]), reversed(values[:-1])):
            (over, over_params), (equal, equal_params) = beyond(column, value), same(column, value)
            sql, params = "(%s OR (%s AND %s))" % (over, equal, sql), over_params + equal_params + params
        return sql, tuple(params)

    def scalar(self, sql, params=()):
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    @contextlib.contextmanager
    def transaction(self):
        """One short write transaction: committed on success, rolled back on any error."""
        if self._in_transaction:
            yield self
            return
        self._begin()
        self._in_transaction = True
        try:
            yield self
        except BaseException:
            self._in_transaction = False
            self._rollback()
            raise
        self._in_transaction = False
        try:
            self._commit()
        except BaseException:
            # A COMMIT refused (a Galera certification conflict, SQLite still busy) leaves the connection in
            # its transaction: rolled back here, or the next BEGIN fails ("Transaction already in progress")
            # and write_batch could never run the batch again. After a lost connection this does nothing.
            self._rollback()
            raise

    def write_batch(self, func, what="batch"):
        """func() inside one write transaction, committed; its result. A transaction the server aborted
        for a conflict with another session (a deadlock, a lock wait timeout, a Galera certification
        failure: ConflictError) is rolled back whole and run again, with backoff, until --lock-timeout.
        That is safe: after the rollback nothing of the batch is written, and each write of a batch
        only changes a row that still holds what it held when the batch was planned."""
        if self._in_transaction:
            return func()

        def once():
            with self.transaction():
                return func()
        try:
            return call_with_retry(once, self.retry_policy, transient=lambda exc: isinstance(exc, ConflictError),
                                   what=what)
        except RetriesExhausted as exc:
            last = exc.last_error
            raise type(last)("%s (gave up after %d attempts in %.1fs)" % (last.message, exc.attempts, exc.elapsed),
                             hint=last.hint, kind=last.kind, facts=last.facts) from None

    @contextlib.contextmanager
    def consistent_read(self):
        """Every read inside sees one moment of the database (SQLite: a read transaction; MySQL: a
        consistent snapshot), however long it takes and whatever other sessions commit meanwhile."""
        self.execute(self._consistent_read_sql)
        self.reading_one_moment = True
        try:
            yield self
        finally:
            self.reading_one_moment = False
            try:
                self.execute("COMMIT")
            except Exception:  # the connection is gone: its read transaction went with it
                pass

    _consistent_read_sql = "BEGIN"
    reading_one_moment = False  # inside consistent_read(): what is read now must lock nothing (MySQL)

    def foreign_key_checks(self, on):
        """MySQL checks foreign keys on each write; copies and restores of damaged data must not
        (the orphans are the point). SQLite never enforces them here (PRAGMA foreign_keys is off)."""

    def _begin(self):
        raise NotImplementedError

    def _commit(self):
        raise NotImplementedError

    def _rollback(self):
        raise NotImplementedError

    def ping(self):
        """True when the connection still answers."""
        try:
            self.query("SELECT 1")
            return True
        except Exception:
            return False

    def close(self):
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- introspection ------------------------------------------------------------------------
    def tables(self):
        raise NotImplementedError

    def columns(self, table):
        """Column names in declared order."""
        raise NotImplementedError

    def primary_key(self, table):
        """Primary-key column names in key order; () when the table has none."""
        raise NotImplementedError

    def foreign_keys(self, table):
        """Declared foreign keys of a table (foreignkey.ForeignKey, child = this table)."""
        raise NotImplementedError

    def indexes_cached(self, table):
        """indexes(table), read once per connection object (the foreign-key sweep asks for each table
        many times); the cache belongs to this object, so another database never sees it."""
        cache = self.__dict__.setdefault("_indexes_cache", {})
        if table not in cache:
            cache[table] = self.indexes(table)
        return cache[table]

    def indexes(self, table):
        raise NotImplementedError

    def generated_columns(self, table):  # noqa: ARG002 - every table alike
        """Names (lower case) of `table`'s columns the database computes and refuses a value for."""
        return set()

    def required_columns(self, table):
        """Names of `table`'s columns an INSERT must give a value: NOT NULL, without a default, not filled
        by the database itself."""
        return [c.name for c in self.column_details(table) if c.not_null and c.default is None and not c.auto]

    def forget_catalog(self):
        """Read the catalog again from now on (indexes, columns' facts): tables were created since."""
        for name in ("_indexes_cache", "_facts", "_kinds"):
            self.__dict__.pop(name, None)

    def table_key(self, table):
        """A table's name as the database tells names apart (SQLite: whatever their letter case)."""
        return table.lower()

    def read_catalog(self, expected=()):  # noqa: ARG002 (a backend whose catalog can leave a table out uses it)
        """(tables, {table: columns}, {table: primary key}, {table: [ForeignKey]}) of one moment; `expected`:
        names that should be there (a backend whose catalog can leave a table out makes sure of those)."""
        tables = self.tables()
        return (tables,) + self.describe_tables(tables)

    def stable_tables(self, expected=()):  # noqa: ARG002 (a backend whose catalog can leave a table out uses it)
        """tables(); `expected`: names that should be there (see read_catalog)."""
        return self.tables()

    def describe_tables(self, tables):
        """({table: columns}, {table: primary key}, {table: [ForeignKey]}) of many tables at once."""
        return ({t: self.columns(t) for t in tables}, {t: self.primary_key(t) for t in tables},
                {t: self.foreign_keys(t) for t in tables})

    def server_version(self):
        raise NotImplementedError
