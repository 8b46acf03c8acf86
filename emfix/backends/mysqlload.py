"""A page of migrate's SQL text loaded by LOAD DATA LOCAL INFILE: the rows its INSERT would store, for about
two thirds of the server's work (parsing an INSERT's literals costs MySQL more than reading the same fields).

The page is the body of a multi-row INSERT made by SQLite's quote() (`1,'a',NULL),(2,'it''s',0.5`), with every
backslash doubled. That text is also a file LOAD DATA reads as it is: fields end at ',', rows at '),(', a quoted
field is enclosed by ' (a doubled ' inside it is one '), the backslash escapes, the unquoted word NULL is NULL.
So the same bytes go either way and the values are read alike: numbers from the same digits, text from the
same characters (utf8mb4).

Where LOAD DATA and INSERT differ, the INSERT decides. LOCAL turns what an INSERT refuses into warnings (a
duplicate key skips the row; a value that does not fit is changed); a page that gives any warning, or writes
fewer rows than it holds, is rolled back to a savepoint taken just before it and sent as its INSERT, which
refuses it or stores it exactly as before. Some differences give no warning, so LOAD DATA is used only where
there are none: into tables whose columns are all of the types below (a BIT column would take '5' as the byte
of the character; a DECIMAL reads '3.00000000000000044408e-01' exactly where the INSERT reads a double), where
no column that may hold a REAL lands in a character or JSON column (LOAD DATA keeps quote()'s spelling, 1.0e-05,
where the INSERT stores MySQL's, 0.00001: found by an outside tester), and never for a page holding a hex
literal (a BLOB, or text holding NUL: X'..'), whose characters it would read.
Where the server or the driver does not allow LOCAL (local_infile off, a driver before 8.0.24), every page goes
as its INSERT.

The driver reads the file only from the directory given at connect time (allow_local_infile_in_path), a
private temporary directory of the command: no other file can be asked for by a server.
"""

import contextlib
import itertools
import os
import socket
import tempfile
import time

from ..fileutil import STALE_TEMP_SECONDS, clear_stale_temps, is_own_file, new_temp, remove_own_file

MIN_DRIVER = (8, 0, 24)  # allow_local_infile_in_path: LOCAL limited to one directory
LOAD_REFUSED = (1148, 3948, 4166)  # the server does not take LOCAL (MySQL 5.7, MySQL 8, MariaDB)
HEX_LITERAL = b"X'"  # a BLOB, or text holding NUL, in SQLite's quote(): LOAD DATA would read its characters
SAVEPOINT = "emfix_page"
TEXT_TYPES = frozenset(("char", "varchar", "tinytext", "text", "mediumtext", "longtext", "json"))
LOADS_ALIKE = TEXT_TYPES | frozenset((  # column types a field of quote()'s text reads into as its literal does
    "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "float", "double", "real", "date", "datetime",
    "timestamp"))
FOLDER_PREFIX = "emfix-load-"
_numbers = itertools.count()


@contextlib.contextmanager
def load_folder():
    """A private folder (mkdtemp: mode 0700) for the pages' files, removed at the end, or None where none can be
    made; the folders of runs that were killed go first, each once its files are emfix's own of a process that is
    gone, untouched for a while."""
    parent = tempfile.gettempdir()
    try:
        names = [n for n in os.listdir(parent) if n.startswith(FOLDER_PREFIX)]
    except OSError:
        names = []
    for name in names:
        folder = os.path.join(parent, name)
        try:
            if time.time() - os.lstat(folder).st_mtime > STALE_TEMP_SECONDS and os.path.isdir(folder) \
                    and not os.path.islink(folder):
                clear_stale_temps(folder, older_than=STALE_TEMP_SECONDS)
                os.rmdir(folder)  # only once nothing else is in it
        except OSError:
            pass
    try:
        folder = tempfile.mkdtemp(prefix=FOLDER_PREFIX)
    except OSError:  # no temporary folder to be had (TMPDIR full, read-only, missing): every page as its INSERT
        yield None
        return
    if not _plain(folder):  # the driver finds the name in the statement by a pattern that takes it as it is
        os.rmdir(folder)
        yield None
        return
    try:
        yield folder
    finally:  # each page's file went once loaded; one a failure left, then the folder (only if nothing else is in it)
        for path in [os.path.join(folder, name) for name in os.listdir(folder)]:
            if is_own_file(path):  # the guard's test (fileutil): an emfix temporary, nothing else
                with contextlib.suppress(OSError):
                    remove_own_file(path)
        with contextlib.suppress(OSError):
            os.rmdir(folder)


def _plain(path):
    """A folder name that goes into LOAD DATA's statement as it is: no quote or backslash (mysql-connector reads
    the file name back from the statement without undoing them: a TMPDIR holding one crashed every migrate,
    found by an outside tester), no control character (its pattern for the name stops at a newline: the same
    tester's second round), and UTF-8."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "'" not in path and "\\" not in path and not any(ord(c) < 32 or ord(c) == 127 for c in path)


def driver_loads_locally(driver):
    version = getattr(driver, "__version_info__", None) or ()
    try:
        return tuple(int(p) for p in version[:3]) >= MIN_DRIVER
    except (TypeError, ValueError):
        return False


class LocalLoadMixin:
    """MySQLBackend's LOAD DATA LOCAL of SQL text pages (see the module's docstring)."""

    load_directory = None  # set before connecting: LOCAL is allowed from there only
    _nodelay = False  # the connection's socket sends at once (see _after_connect)

    def _local_load_options(self):
        if self.load_directory and driver_loads_locally(self._driver):
            return {"allow_local_infile_in_path": self.load_directory}
        return {}

    def _after_connect(self, conn):
        """LOCAL sends a page's file, then an empty packet, in two writes: with Nagle's algorithm on, the second
        waits for the server's delayed acknowledgement of the first (40 ms a page, more than the load saves).
        Off here, as the mysql client has it; where the socket cannot be reached (the C extension), no LOCAL."""
        self._nodelay = False
        sock = getattr(getattr(conn, "_socket", None), "sock", None)
        if self.load_directory and isinstance(sock, socket.socket):
            try:
                if sock.family in (socket.AF_INET, socket.AF_INET6):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._nodelay = True
            except OSError:
                pass

    def _loads_alike(self, table, real_columns):
        """Every column of `table` is of a type in LOADS_ALIKE, and none of `real_columns` (those of SRC that may
        hold a REAL) is of a TEXT_TYPES one (the catalog's column types: one query per connection)."""
        kinds = self.column_types(table)
        return bool(kinds) and all(k in LOADS_ALIKE for k in kinds.values()) and not any(
            kinds.get(c.lower()) in TEXT_TYPES for c in real_columns)

    def load_text_page(self, table, columns, body, rows, real_columns=()):
        """The `rows` rows of `body` (a page of SQL text, see above) stored in `table` (`columns`, quoted) by LOAD
        DATA LOCAL, inside the open transaction; None when they were not (nothing of the page is stored then: send
        its INSERT). `real_columns`: the columns whose SRC values may be REALs (SQLite: affinity other than TEXT)."""
        if not self._in_transaction or not self._nodelay or not self._local_load_options() or HEX_LITERAL in body \
                or not self._loads_alike(table, real_columns):
            return None
        try:
            path = new_temp(os.path.join(self.load_directory, "page-%d" % next(_numbers)))
        except OSError:  # the folder is gone or full: the INSERTs need none
            self.load_directory = None
            return None
        try:
            try:
                with open(path, "wb") as handle:
                    handle.write(body)
            except OSError:
                self.load_directory = None
                return None
            statement = ("LOAD DATA LOCAL INFILE '%s' INTO TABLE %s CHARACTER SET utf8mb4 FIELDS TERMINATED BY ',' "
                         "ENCLOSED BY X'27' ESCAPED BY X'5C' LINES STARTING BY '' TERMINATED BY '),(' (%s)" % (
                             path, self.quote(table), columns))  # a plain name (load_folder)
            self.execute("SAVEPOINT %s" % SAVEPOINT)

            def load():
                try:
                    return self._conn.cmd_query(statement.encode("utf-8"))
                except self._driver.Error as exc:
                    if getattr(exc, "errno", None) in LOAD_REFUSED:  # the server's no: the connection is fine
                        return None
                    raise
            result = self._run(load, "load a page")
            if result is not None and result.get("affected_rows") == rows and result.get("warning_count") == 0:
                return rows
            self.execute("ROLLBACK TO SAVEPOINT %s" % SAVEPOINT)
            if result is None:  # not allowed here: the rest go as INSERTs
                self.load_directory = None
            return None
        finally:
            remove_own_file(path)
