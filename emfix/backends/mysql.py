"""MySQL and MariaDB through mysql-connector-python (the optional extra `emfix[mysql]`).

The driver is imported only when a MySQL address is opened. Large results stream through an
unbuffered cursor; `?` placeholders are translated to the driver's `%s`.
"""

import contextlib
import dataclasses
import math
import re
import time

from ..errors import (
    ConnectError,
    DamagedInputError,
    EmfixError,
    MissingDependencyError,
    PrivilegeError,
    SchemaError,
    TooManyConnectionsError,
)
from ..retry import RetriesExhausted, call_with_retry, is_transient
from .base import Backend
from .mysqlcatalog import MySQLCatalogMixin, text_of
from .mysqlerrors import translate_error
from .mysqlload import LocalLoadMixin
from .mysqlmodes import lenient_modes, set_session_modes
from .mysqlvalues import FLOAT_KINDS, WIDE_END, exact_dates_converter, literal_of
from .replication import ReplicationMixin

LOST_CONNECTION = (2006, 2013, 2055)  # server gone away, lost during a query, lost (broken pipe)
UNKNOWN_COLUMN = 1054  # in a page of SQL text: only an unquoted word, SQLite's Inf


def load_driver():
    try:
        import mysql.connector  # noqa: F401 (optional dependency, loaded on demand)
    except ImportError:
        raise MissingDependencyError(
            "MySQL support needs mysql-connector-python, which is not installed",
            hint="pip install 'emfix[mysql]'  (or: pip install mysql-connector-python)") from None
    return mysql.connector


CLOSE_GRACE = 0.5  # seconds a connection refused for too many connections is asked for again (MySQLBackend._open)


def translate_placeholders(sql):
    """`?` outside quotes becomes `%s` (the driver substitutes `%s` only, so `%` stays as it is)."""
    out = []
    quote = None
    for char in sql:
        if quote:
            if char == quote:
                quote = None
            out.append(char)
        elif char in "'\"`":
            quote = char
            out.append(char)
        else:
            out.append("%s" if char == "?" else char)
    return "".join(out)


class MySQLBackend(MySQLCatalogMixin, ReplicationMixin, LocalLoadMixin, Backend):
    dialect = "mysql"
    quote_char = "`"
    _temp_keyword = "TEMPORARY"
    _drop_temp = "DROP TEMPORARY TABLE IF EXISTS %s"
    _consistent_read_sql = "START TRANSACTION WITH CONSISTENT SNAPSHOT"

    def foreign_key_checks(self, on):
        self.execute("SET SESSION FOREIGN_KEY_CHECKS = %d" % (1 if on else 0))

    def __init__(self, address, readonly=False, retry_policy=None, create=False, connect_timeout=10,
                 load_directory=None):
        super().__init__(address, readonly, retry_policy)
        self._driver = load_driver()
        self.load_directory = load_directory  # LOAD DATA LOCAL from there only (mysqlload)
        self._conn = None
        self._cursors, self._cursors_of = {}, None  # kept cursors, and the connection they belong to (_cursor)
        self._connect_timeout = max(1, min(connect_timeout, int(self.retry_policy.deadline) or 1))
        try:
            self._conn = self._open()
        except ConnectError as exc:
            if not (create and getattr(exc, "missing_database", False)):
                raise
            self._create_database()
            self._conn = self._open()
        if readonly:
            self.execute("SET SESSION TRANSACTION READ ONLY")

    def _create_database(self):
        """init and migrate --init: a database that does not exist yet is created (utf8mb4), when the user may."""
        statement = "CREATE DATABASE IF NOT EXISTS %s CHARACTER SET utf8mb4" % self.quote(self.address.database)
        wanted = self.address.database
        server = dataclasses.replace(self.address, database=None)  # the caller's address is left as it is
        try:
            self._conn = self._open(server)
            self.execute(statement)
        except PrivilegeError:
            raise PrivilegeError("MySQL database %r does not exist and user %r may not create it" % (
                wanted, self.address.user), hint="as an administrator: %s; then run this again" % statement) from None
        finally:
            self.close()

    def _open(self, address=None):
        """A connection (retried as the policy says); one refused for too many connections is asked for again for a
        moment: the server counts a connection closed just before (by this process, or the one before it) until its
        thread has ended (a restore's probe connection closed, then its snapshot's refused: a loaded CI machine)."""
        until = time.monotonic() + min(CLOSE_GRACE, self.retry_policy.deadline)
        while True:
            try:
                return self._run(lambda: self._connect(address), "connect to %s" % (address or self.address).display())
            except TooManyConnectionsError:
                if time.monotonic() >= until:
                    raise
                time.sleep(0.02)

    def _connect(self, address=None):
        a = address or self.address
        kwargs = dict(host=a.host, port=a.port, user=a.user, password=a.password or "",
                      database=a.database, autocommit=True, consume_results=True,
                      connection_timeout=self._connect_timeout, charset="utf8mb4",
                      get_warnings=False, converter_class=exact_dates_converter(self._driver))
        # No connection attributes: the pure-Python driver learns the OS version for them by running `lsb_release
        # -a` (a shell script and five processes: 10-20 ms a connection, at every start of a command).
        kwargs["client_flags"] = [-self._driver.constants.ClientFlag.CONNECT_ARGS]
        use_pure = a.options.get("use_pure")
        if use_pure is not None:
            kwargs["use_pure"] = use_pure.lower() in ("1", "true", "yes")
        kwargs.update(self._local_load_options())
        try:
            conn = self._driver.connect(**kwargs)
        except ImportError:
            raise MissingDependencyError(
                "use_pure=0 asks for the C extension of mysql-connector-python, which is not installed here",
                hint="drop ?use_pure=0 from the URL (the pure-Python driver works), or install the full "
                     "mysql-connector-python wheel") from None
        self.session_modes = set_session_modes(conn, strict=not self.readonly)  # (a reconnection too)
        conn.cmd_query("SET SESSION lock_wait_timeout = %d, innodb_lock_wait_timeout = %d" % (
            self.lock_wait, self.lock_wait))
        # A consistent snapshot is one moment, and a locking read locks the gaps, only here (not at READ COMMITTED).
        conn.cmd_query("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        self._after_connect(conn)
        return conn

    @property
    def lock_wait(self):
        """Seconds one statement waits for a lock on the server: --lock-timeout's, not the server's (a day for a
        table's metadata lock, so a restore behind an application's open transaction waited on and on)."""
        return max(1, min(31536000, int(math.ceil(self.retry_policy.deadline))))

    def _run(self, func, what, retry=True):
        """func() with retries of what passes (a lock wait, a deadlock; before a connection is made, a server not
        reachable yet). A connection lost once made is not retried: the driver does not reconnect, so every
        retry would fail the same way until --lock-timeout (and a new session would lack this one's settings)."""
        error_class = self._driver.Error
        connected = self._conn is not None
        try:
            # Inside a transaction (ours, a consistent read, or one begun by a raw START TRANSACTION) a statement is
            # never tried again by itself: a deadlock has rolled the whole transaction back, and the statement run
            # again would read outside it (an outside tester: a snapshot that met a restore's LOCK TABLES went on
            # reading the half the restore left, as if of its moment). The transaction's own retry, if any, decides.
            if self._in_transaction or not retry or (connected and getattr(self._conn, "in_transaction", False)):
                return func()
            return call_with_retry(func, self.retry_policy, what=what, transient=lambda exc: is_transient(exc) and not (
                connected and self._lost(exc)))
        except (KeyboardInterrupt, SystemExit):
            self.abandon()
            raise
        except RetriesExhausted as exc:
            raise self._translate(exc.last_error, exc) from None
        except error_class as exc:
            if connected and self._lost(exc):
                raise ConnectError("lost the connection to MySQL %s during %s: %s" % (
                    self.address.display(), what, getattr(exc, "msg", None) or exc),
                    hint="the server closed it (it restarted, or the connection was killed)"
                ) from None
            raise self._translate(exc) from None

    def _lost(self, exc):
        """The connection is gone: lost during a statement, or the driver's "MySQL Connection not available"."""
        errno = getattr(exc, "errno", None)
        return errno in LOST_CONNECTION or (
            isinstance(exc, (self._driver.OperationalError, self._driver.InterfaceError)) and errno in (None, -1)
            and "connection" in str(getattr(exc, "msg", None) or exc).lower())

    def _translate(self, exc, exhausted=None):
        return translate_error(self.address, exc, exhausted, self._lost(exc), self._conn is not None, self.quote)

    def abandon(self):
        """Close the socket without a word to the server. Ctrl-C or SIGTERM may land in the middle of a packet, or
        another thread may still read a result on this connection; whatever reads on from there (a cursor's close, a
        COMMIT) waits for bytes that never come (`snapshot create` hung so). The server rolls back what the session
        left open; any later call on this connection fails at once as a lost connection."""
        shutdown = getattr(self._conn, "shutdown", None)
        if shutdown is not None:
            try:
                shutdown()
            except Exception:  # noqa: BLE001 - gone already
                pass

    @contextlib.contextmanager
    def _cursor(self, **options):
        """A cursor of this connection, kept for its next statement: the driver's cursor() pings the server first,
        a round trip for every statement. After an error it is closed and not kept; after an interruption the
        connection is cut instead (abandon)."""
        if self._cursors_of is not self._conn:  # a new connection (opened again): the old one's cursors go
            self._cursors, self._cursors_of = {}, self._conn
        key = tuple(sorted(options.items()))
        cursor = self._cursors.pop(key, None)
        if cursor is None:
            cursor = self._conn.cursor(**options)
        try:
            yield cursor
        except (KeyboardInterrupt, SystemExit):
            self.abandon()
            raise
        except self._driver.Error:
            cursor.close()
            raise
        except BaseException:  # the driver failed to read a row (MIN() of a BIT(64): round 31): a close read on, hung
            self.abandon()
            raise
        self._cursors[key] = cursor

    # -- statements ---------------------------------------------------------------------------
    def _cursor_run(self, sql, params, fetch):
        def run():
            with self._cursor() as cursor:
                cursor.execute(translate_placeholders(sql) if params else sql, tuple(params) or None)
                return cursor.fetchall() if fetch else cursor.rowcount
        return self._run(run, "statement")

    def execute(self, sql, params=()):
        return self._cursor_run(sql, params, fetch=False)

    def execute_scratch(self, sql, params=()):
        """A statement writing emfix's scratch tables from a SELECT, not strict (lenient_modes: DST's '5abc'
        compared with an id stopped migrate's verify, round 40, and cleanup-orphans, round 44)."""
        self.execute("SET SESSION sql_mode = '%s'" % lenient_modes(self.session_modes))
        try:
            return self.execute(sql, params)
        finally:
            self.execute("SET SESSION sql_mode = '%s'" % self.session_modes)

    def execute_once(self, sql):
        """The statement tried once, a lock wait not retried: for one whose waiting holds others up (every write
        on the server waits behind FLUSH TABLES WITH READ LOCK while it waits)."""
        def run():
            with self._cursor() as cursor:
                cursor.execute(sql)
                return cursor.rowcount
        return self._run(run, "statement", retry=False)

    def query(self, sql, params=()):
        return [tuple(r) for r in self._cursor_run(sql, params, fetch=True)]

    def iter_rows(self, sql, params=(), arraysize=1000):
        error_class = self._driver.Error

        def start():
            cursor = self._conn.cursor(buffered=False)
            cursor.execute(translate_placeholders(sql) if params else sql, tuple(params) or None)
            return cursor
        cursor = self._run(start, "query")
        # The pure-Python cursor's fetchmany reads one row per call; the connection reads a page at once
        # (1.6x faster on 130k-row tables). Other connection classes keep the cursor's own way.
        paged = type(self._conn).__name__ == "MySQLConnection" and hasattr(self._conn, "get_rows")
        try:
            while True:
                try:
                    if paged:
                        rows, eof = self._conn.get_rows(count=arraysize)
                    else:
                        rows, eof = cursor.fetchmany(arraysize), None
                except error_class as exc:
                    raise self._translate(exc) from None
                for row in rows:
                    yield tuple(row)
                if not rows or eof:
                    return
        except (KeyboardInterrupt, SystemExit):
            self.abandon()  # mid-packet, perhaps: the close below would wait for the rest
            raise
        finally:
            try:
                cursor.close()
            except error_class:
                pass

    def _executemany(self, sql, batch):
        def run():
            with self._cursor() as cursor:
                cursor.executemany(translate_placeholders(sql), batch)
                return cursor.rowcount
        return self._run(run, "executemany")

    def _begin(self):
        self._run(lambda: self._conn.start_transaction(), "begin")

    def _commit(self):
        try:
            self._conn.commit()  # never retried: a lost COMMIT may have happened or not
        except (KeyboardInterrupt, SystemExit):
            self.abandon()
            raise
        except self._driver.Error as exc:
            raise self._translate(exc) from None
        except Exception as exc:
            if not self._driver_failure(exc):
                raise
            errno = getattr(exc, "errno", None)
            if isinstance(errno, int) and 0 < errno < 2000:
                # The server refused the COMMIT (a Galera write set too large, a certification conflict), told by
                # the C extension's own error class: the same error as from the pure-Python driver, not a lost
                # connection (which said "check that the server runs" to a batch over wsrep_max_ws_size)
                error = self._driver.errors.get_mysql_exception(
                    errno=errno, msg=getattr(exc, "msg", None) or str(exc), sqlstate=getattr(exc, "sqlstate", None))
                raise self._translate(error) from None
            raise ConnectError("lost the connection to MySQL %s during COMMIT: %s" % (self.address.display(), exc),
                               hint="check that the server runs; the batch may or may not be committed") from None

    def _driver_failure(self, exc):
        """The driver's errors, and the C extension's own, which its commit/rollback/close let escape."""
        return isinstance(exc, self._driver.Error) or type(exc).__module__ == "_mysql_connector"

    def _rollback(self):
        try:
            self._conn.rollback()
        except Exception as exc:
            if not self._driver_failure(exc):
                raise
            # the connection is gone; the server rolls back on its own

    def ping(self):
        try:
            self._conn.ping(reconnect=False)
            return True
        except Exception:
            return False

    def close(self):
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception as exc:
                if not self._driver_failure(exc):
                    raise
            self._conn = None
            self._cursors = {}

    def exact_column(self, table, column, prefix=""):
        kind = self.column_types(table).get(column.lower())
        if kind == "float":
            return "(%s%s + 0e0)" % (prefix, self.quote(column))
        if kind == "set":  # MySQL's own text, members in their declared order (the driver's Python set has none:
            return "CONCAT(%s%s)" % (prefix, self.quote(column))  # 'r,p' came back 'p,r', round 62)
        return prefix + self.quote(column)

    def create_temp_table(self, name, select_sql, params=(), indexes=()):
        """Inside a consistent read, made empty from the query, then filled by a plain SELECT (insert_select): InnoDB
        reads the rows of a CREATE/INSERT ... SELECT with shared locks (REPEATABLE READ), held to the end of the
        transaction, so the application's inserts waited for the whole walk of a migrate or validate (found by an
        outside tester: 87,730 rows locked, 35 s instead of 3). A SELECT reads the consistent snapshot without a
        lock. Elsewhere the server's CREATE ... SELECT (1.8x faster).

        Indexes declared up front are filled as the rows go in; CREATE INDEX afterwards copies the table once
        per index. MariaDB's Aria builds such a scratch table 4-6x faster than InnoDB (no undo log: it is read,
        never rolled back), and fixed-width rows without page checksums (key columns are numbers and short
        strings; a table with a TEXT column stays in PAGE rows) take it another 1.5-2x."""
        inline = ", ".join("INDEX %s (%s)" % (self.quote("k%d" % n), self.quote_columns(columns))
                           for n, columns in enumerate(indexes))
        engine = " ENGINE=Aria ROW_FORMAT=FIXED PAGE_CHECKSUM=0" if indexes and self.is_mariadb() else ""
        self.execute(self._drop_temp % self.quote(name))
        if not self.reading_one_moment:  # the server's CREATE ... SELECT (1.8x faster): outside a consistent read
            # its locks end with the statement; inside a write transaction they are the change's own. Not strict:
            # a text link compared with a number ('5abc') is the number the server compares, as in a SELECT (round
            # 40: strict mode made it an error, and migrate's verify stopped after the copy)
            self.execute_scratch("CREATE TEMPORARY TABLE %s %s%s AS %s" % (
                self.quote(name), "(%s)" % inline if inline else "", engine, select_sql), params)
            return
        self.execute("CREATE TEMPORARY TABLE %s %s%s AS SELECT * FROM (%s) AS emfix_s LIMIT 0" % (
            self.quote(name), "(%s)" % inline if inline else "", engine, select_sql), params)
        self.insert_select(name, select_sql, params)

    def insert_select(self, table, select_sql, params=()):
        """INSERT INTO `table` (a temporary table) the rows of `select_sql`, read without a lock (see
        create_temp_table): the server writes them as one INSERT's text, a page at a time when they do not fit
        in one packet (each row's literal ends in a NUL, which QUOTE escapes inside values, so a page cut off
        at group_concat_max_len is seen). Returns the rows inserted."""
        columns = [(text_of(r[0]), text_of(r[1])) for r in self.query("SHOW COLUMNS FROM %s" % self.quote(table))]
        found = self._result_columns("SELECT * FROM (%s) AS emfix_s LIMIT 0" % select_sql, params)  # by position
        kinds = [re.match(r"[a-z]+", t.lower()).group(0) for _c, t in columns]
        literal = "CONCAT('(', CONCAT_WS(',', %s), ')', %s)" % (", ".join(
            literal_of("emfix_s.%s" % self.quote(f), kind, short_floats=self.casts_to_float())
            for f, kind in zip(found, kinds)), WIDE_END if FLOAT_KINDS & set(kinds) else "'\\0'")
        names = self.quote_columns([c for c, _ in columns])
        head = ("INSERT INTO %s (%s) VALUES " % (self.quote(table), names)).encode()
        limit = self._concat_limit()
        source = "(%s) AS emfix_s" % select_sql
        count, text = self.query_raw("SELECT COUNT(*), GROUP_CONCAT(%s SEPARATOR '') FROM %s" % (literal, source),
                                     params)[0]
        count = int(count)
        if not count:
            return 0
        if text.count(b"\0") == count:  # whole: GROUP_CONCAT stops at its limit without an error
            self.execute_raw(head + text[:-1].replace(b"\0", b","))
            return count
        per_row = max(1, len(text) // max(1, text.count(b"\0")))
        page = max(1, limit // (2 * per_row))
        order = ", ".join(str(n) for n in range(1, len(columns) + 1))
        for offset in range(0, count, page):  # the same order each time, inside the same snapshot
            rows, text = self.query_raw("SELECT COUNT(*), GROUP_CONCAT(%s SEPARATOR '') FROM (SELECT * FROM %s "
                                        "ORDER BY %s LIMIT %d OFFSET %d) AS emfix_s" % (
                                            literal, source, order, page, offset), params)[0]
            if int(rows) and text.count(b"\0") != int(rows):
                raise EmfixError("a row of the scratch table %s is larger than max_allowed_packet (%d bytes)" % (
                    table, limit), hint="raise max_allowed_packet on the server")
            if int(rows):
                self.execute_raw(head + text[:-1].replace(b"\0", b","))
        return count

    def _result_columns(self, sql, params=()):
        """The names of a query's result columns."""
        def run():
            with self._cursor() as cursor:
                cursor.execute(translate_placeholders(sql) if params else sql, tuple(params) or None)
                cursor.fetchall()
                return [text_of(d[0]) for d in cursor.description]
        return self._run(run, "query")

    def _concat_limit(self):
        """group_concat_max_len as long as one packet allows (set once per connection)."""
        if "_concat" not in self.__dict__:
            self._concat = max(1 << 20, int(self.scalar("SELECT @@max_allowed_packet")) - 4096)
            self.execute("SET SESSION group_concat_max_len = %d" % self._concat)
        return self._concat

    def create_temp_index(self, table, columns, suffix="k"):
        """CREATE INDEX commits the open transaction, even on a temporary table: refused inside one
        (declare the index with the table instead: create_temp_table(..., indexes=))."""
        if self._conn is not None and self._conn.in_transaction:
            raise RuntimeError("CREATE INDEX on %s inside a transaction would commit it" % table)
        super().create_temp_index(table, columns, suffix)

    def is_mariadb(self):
        if "_mariadb" not in self.__dict__:
            self._mariadb = "mariadb" in self.server_version().lower()
        return self._mariadb

    def casts_to_float(self):
        """Does the server know CAST(... AS FLOAT) (MariaDB 10.4.5, MySQL 8.0.17)?"""
        if "_float_cast" not in self.__dict__:
            found = re.match(r"(\d+)\.(\d+)\.(\d+)", self.server_version())
            version = tuple(int(n) for n in found.groups()) if found else (0, 0, 0)
            self._float_cast = version >= ((10, 4, 5) if self.is_mariadb() else (8, 0, 17))
        return self._float_cast

    def literal_row(self, table, columns):
        """An expression the server evaluates to one row as the body of a SQL tuple (`1,'a',NULL`) that
        gives back the same bits when inserted into the same column types: FLOAT as a text that reads back
        as the same float (FLOAT_LITERAL), binary types as X'hex', strings through QUOTE, NULL as NULL."""
        declared = self.declared_columns(table)
        return "CONCAT_WS(',', %s)" % ", ".join(
            literal_of(self.quote(c), declared[c.lower()].kind, declared[c.lower()].nullable,
                       short_floats=self.casts_to_float()) for c in columns)

    def query_raw(self, sql, params=()):
        """Rows as the server sent them (bytes, not decoded): for text that goes straight into a file."""
        def run():
            conn = self._conn
            # The C extension runs a converter class over a raw cursor's rows too (mysql-connector 9.0: the
            # text came back decoded, found by CI on Python 3.8): without it for this query, the bytes stay bytes.
            converter = conn.converter if type(conn).__name__ == "CMySQLConnection" else None
            if converter is not None:
                conn.converter = None
            try:
                with self._cursor(raw=True) as cursor:
                    cursor.execute(translate_placeholders(sql) if params else sql, tuple(params) or None)
                    return cursor.fetchall()
            finally:
                if converter is not None:
                    conn.converter = converter
        return self._run(run, "query")

    def execute_raw(self, statement):
        """One statement of bytes sent as it is (no placeholder or multi-statement parsing of a
        megabyte INSERT on the client); the number of rows it changed."""
        try:
            return self._run(lambda: self._conn.cmd_query(statement), "statement").get("affected_rows", -1)
        except self._driver.Error as exc:  # what _translate leaves as it is: a statement the server refused
            msg = getattr(exc, "msg", None) or str(exc)
            if getattr(exc, "errno", None) == UNKNOWN_COLUMN and re.search(r"Unknown column '-?Inf'", msg):
                raise DamagedInputError(  # SQLite's quote() of an infinite REAL (found by an outside tester)
                    "MySQL %s has no value for an infinite number (SQLite REAL Inf or -Inf): %s" % (
                        self.address.display(), msg), kind="refused_value",
                    hint="replace it where it comes from (in SQLite: UPDATE t SET col = NULL WHERE col IN "
                         "(9e999, -9e999)), then run again") from None
            raise SchemaError("MySQL %s refused a statement: %s" % (self.address.display(), msg),
                              kind="refused_statement") from None

    def server_version(self):
        return text_of(self.scalar("SELECT VERSION()"))
