"""What a MySQL/MariaDB database declares, read from information_schema: tables, columns and their kinds,
keys, foreign keys, indexes, and what a column keeps less of than SQLite would (FLOAT, fractions of a
second). A part of MySQLBackend (as replication.py is), kept apart so that each file stays readable.
"""

import collections
import contextlib
import dataclasses
import logging
import re
import time

from ..errors import ConflictError, NotFoundError, PrivilegeError
from ..foreignkey import ForeignKey
from .base import ColumnDetail, Index, StorageLimit


def text_of(value):
    """A value information_schema gave as bytes (some servers and drivers do), as text."""
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8")
    return value


def _whole(value):
    """A length or a count of digits information_schema gave (a number, text or NULL), as an int or None."""
    return None if value is None else int(value)


DeclaredColumn = collections.namedtuple(
    "DeclaredColumn", "name kind nullable declared chars octets charset fraction_digits")
DeclaredColumn.__doc__ = """A column as information_schema.COLUMNS declares it: its name as stored, DATA_TYPE (lower
case) and COLUMN_TYPE (as declared: an ENUM's values keep their letter case), whether it takes NULL, its most
characters and bytes, its character set (lower case) and its fractional digits of a second (None where they do not
apply)."""


log = logging.getLogger(__name__)

CATALOG_READS = 20  # reads of one catalog query before a database whose tables keep changing is given up on


BINARY_KINDS = ("binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob")


class MySQLCatalogMixin:
    """information_schema, asked for a whole database in one query where it can (it is slow to ask)."""

    def quote(self, name):
        """An identifier quoted; a table the catalog names as the application does, as the database holds it (a
        server that tells letter cases apart holds `metric`, not METRIC: base.Backend.stored)."""
        return super().quote(self.stored(name))

    def table_key(self, table):
        """How the catalogs here key a table: by its name where the server tells `notes` from `NOTES`
        (lower_case_table_names = 0: an outside tester's two such tables had their columns merged, and snapshot
        create crashed), else by its name in lower case."""
        if "_names_fold" not in self.__dict__:
            self._names_fold = bool(int(self.scalar("SELECT @@lower_case_table_names") or 0))
        table = self.stored(table)
        return table.lower() if self._names_fold else table

    def catalog_query(self, sql, params=()):
        """The rows of an information_schema query, read until two reads in a row agree.

        information_schema is no consistent read: a table another session is rebuilding (ALTER TABLE
        with ALGORITHM=COPY, its rename at the end) is left out of TABLES, COLUMNS and KEY_COLUMN_USAGE for
        that moment, without a warning (one read in eleven beside such an ALTER in a loop). A table left out
        would be a table validate does not check and a snapshot does not hold. Two reads that agree catch a
        short rename only; where it matters the tables are held meanwhile (_tables_in_place), and one read is
        enough."""
        rows = self.query(sql, params)
        if self.__dict__.get("_tables_held"):  # no rename can come between: every table is held
            return rows
        for attempt in range(CATALOG_READS):
            again = self.query(sql, params)
            if again == rows or sorted(again, key=repr) == sorted(rows, key=repr):  # (ORDER BY TABLE_NAME ties
                return rows  # `EPOCH_METRIC` and `epoch_metric` under the case-blind collation: any order, each read)
            rows = again
            time.sleep(0.002 * attempt)
        raise ConflictError("%s: its tables kept changing while emfix read what they are (%d reads of "
                            "information_schema)" % (self.address.display(), CATALOG_READS + 1),
                            hint="another program is altering, creating or dropping tables: run emfix again "
                                 "when it is done")

    def column_details(self, table):
        json_checked = set() if not self._has_check_constraints() else {
            text_of(c).lower() for (c,) in self.catalog_query(
            "SELECT c.COLUMN_NAME FROM information_schema.COLUMNS c JOIN information_schema.CHECK_CONSTRAINTS k "
            "ON k.CONSTRAINT_SCHEMA = c.TABLE_SCHEMA AND k.TABLE_NAME = c.TABLE_NAME "
            "AND k.CHECK_CLAUSE = CONCAT('json_valid(`', c.COLUMN_NAME, '`)') "
            "WHERE c.TABLE_SCHEMA = DATABASE() AND c.TABLE_NAME = ?", (self.stored(table),))}
        details = []
        for name, kind, nullable, default, extra in self.catalog_query(
                "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION", (table,)):
            name, kind = text_of(name), text_of(kind)
            if name.lower() in json_checked and kind.lower() == "longtext":
                kind = "json"  # MariaDB's JSON: LONGTEXT with a json_valid check
            default = None if default is None or text_of(default) == "NULL" else text_of(default)
            updated = re.search(r"\bon update (\S+)", text_of(extra or ""), re.IGNORECASE)
            if updated:  # (round 39: a diff's DDL dropped ON UPDATE CURRENT_TIMESTAMP, and said "same schema")
                default = "%s ON UPDATE %s" % (default or "NULL", updated.group(1))
            details.append(ColumnDetail(name, kind, text_of(nullable) == "NO", default,
                                        "auto_increment" in text_of(extra or "").lower()))
        return details

    def generated_columns(self, table):
        """Names (lower case) of `table`'s generated columns (VIRTUAL, STORED, PERSISTENT): the server
        computes them and refuses a value for one, so a copy of the rows leaves them out. MySQL 8's
        DEFAULT_GENERATED (a default expression) is an ordinary column."""
        facts = self._column_facts(table).get(self.table_key(table), ())
        return {c.lower() for c, generated, _required in facts if generated}

    def required_columns(self, table):
        """Names of `table`'s columns an INSERT must give a value: NOT NULL, without a default, neither
        AUTO_INCREMENT nor generated."""
        facts = self._column_facts(table).get(self.table_key(table), ())
        return [c for c, _generated, required in facts if required]

    def _column_facts(self, table):
        """{table (table_key): [(column, generated?, needs a value?)]} of every table, read in one query per
        connection (forget_catalog reads it again; so does a table it lacks)."""
        def read():
            facts = {}
            for owner, column, nullable, default, extra in self.catalog_query(
                    "SELECT TABLE_NAME, COLUMN_NAME, IS_NULLABLE, COLUMN_DEFAULT, EXTRA FROM "
                    "information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, ORDINAL_POSITION"):
                extra = (text_of(extra) or "").upper()
                generated = re.search(r"\b(VIRTUAL|STORED|PERSISTENT)\b", extra) is not None
                required = text_of(nullable) == "NO" and default is None and not generated and \
                    "AUTO_INCREMENT" not in extra and "GENERATED" not in extra
                facts.setdefault(self.table_key(text_of(owner)), []).append((text_of(column), generated, required))
            return facts
        return self._of_every_table("_facts", read, table)

    def _of_every_table(self, name, read, table):
        """What `read()` gives for every table ({table_key(table): ...}), kept as self.<name>, and read again
        when it lacks `table`: a table created since, or one another session's ALTER was renaming into place
        at that moment (information_schema leaves it out); the second read waits until that is done."""
        cache = self.__dict__.get(name)
        if cache is None or self.table_key(table) not in cache:
            cache = read()
            if self.table_key(table) not in cache and self._in_place(table):
                cache = read()
            self.__dict__[name] = cache
        return cache

    def _in_place(self, table):
        """Whether `table` exists, once any rename of it another session is doing has finished (asking for
        its metadata lock waits for that)."""
        try:
            self.query("SELECT 1 FROM %s LIMIT 0" % self.quote(table))
            return True
        except NotFoundError as exc:
            if exc.kind == "no_such_table":
                return False
            raise

    def _has_check_constraints(self):
        return bool(self.scalar("SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
                                "'information_schema' AND TABLE_NAME = 'CHECK_CONSTRAINTS'"))

    def storage_limits(self, table):
        rounds, limits = None, {}
        for column in self.declared_columns(table).values():
            if column.kind == "float":
                limits[column.name] = StorageLimit("float", 0, False)
            elif column.kind in ("datetime", "timestamp", "time") and (column.fraction_digits or 0) < 6:
                rounds = self._rounds_fractions() if rounds is None else rounds
                limits[column.name] = StorageLimit(column.kind, column.fraction_digits or 0, rounds)
            elif column.kind == "decimal":  # a number copied in is kept as its digits to the column's scale
                found = re.match(r"decimal\(\d+,(\d+)\)", column.declared.lower())
                limits[column.name] = StorageLimit("decimal", int(found.group(1)) if found else 0, False)
            elif column.kind in ("char", "varchar", "tinytext", "text", "mediumtext", "longtext"):
                limits[column.name] = StorageLimit("text", 0, False)  # a whole number copied in: its digits
            elif column.kind in BINARY_KINDS:  # text copied in is kept as its bytes (BINARY: padded with zero bytes)
                limits[column.name] = StorageLimit("bytes", (column.octets or 0) if column.kind == "binary" else 0,
                                                   False)
        return limits

    def _rounds_fractions(self):
        """Whether this session rounds (True) or truncates a fraction of a second its column cannot hold
        (asked once per connection)."""
        if "_rounds" not in self.__dict__:
            modes = text_of(self.scalar("SELECT @@sql_mode")).upper().split(",")
            self._rounds = ("TIME_ROUND_FRACTIONAL" in modes if self.is_mariadb()
                            else "TIME_TRUNCATE_FRACTIONAL" not in modes)
        return self._rounds

    def column_types(self, table):
        """{column name (lower case): DATA_TYPE}."""
        return {name: column.kind for name, column in self.declared_columns(table).items()}

    def declared_columns(self, table):
        """{column (lower case): DeclaredColumn} of `table`: every table's, read in one query per connection (and
        again for a table created since), for the copy's refusals, its verify and the snapshot's literals (round
        35's review: migrate's preflight asked information_schema three times per table)."""
        def read():
            found = {}
            for row in self.catalog_query(
                    "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, IS_NULLABLE, COLUMN_TYPE, CHARACTER_MAXIMUM_LENGTH, "
                    "CHARACTER_OCTET_LENGTH, CHARACTER_SET_NAME, DATETIME_PRECISION FROM information_schema.COLUMNS "
                    "WHERE TABLE_SCHEMA = DATABASE()"):
                owner, name, kind, nullable, declared, chars, octets, charset, digits = (text_of(v) for v in row)
                found.setdefault(self.table_key(owner), {})[name.lower()] = DeclaredColumn(
                    name, kind.lower(), nullable == "YES", declared, _whole(chars), _whole(octets),
                    (charset or "").lower() or None, _whole(digits))
            return found
        return self._of_every_table("_kinds", read, table).get(self.table_key(table), {})

    def read_catalog(self, expected=()):
        """(tables, {table: columns}, {table: primary key}, {table: [ForeignKey]}) with no table left out by
        another session's ALTER TABLE, for the tables listed and the `expected` names (_tables_in_place)."""
        with self._tables_in_place(expected) as tables:
            return (tables,) + self.describe_tables(tables)

    def stable_tables(self, expected=()):
        """tables(), none left out by another session's ALTER TABLE (_tables_in_place)."""
        with self._tables_in_place(expected) as tables:
            return tables

    @contextlib.contextmanager
    def _tables_in_place(self, expected):
        """The tables, held meanwhile (outside a transaction).

        Two reads of information_schema that agree are not enough: a rebuilt table's rename lasts longer than a
        read (eight reads in a hundred beside such an ALTER in a loop still missed one). So the tables are held
        by a read-only transaction's metadata locks while what they are is read: an ALTER renames a table only
        when no other session holds it, and asking for the lock of one being renamed waits until its new copy is
        in place. The locks go at the end (milliseconds: an ALTER waiting for them waits no longer)."""
        if self._in_transaction or getattr(self._conn, "in_transaction", False):
            yield self.tables()  # inside a transaction, its own locks are the caller's
            return
        for _attempt in range(CATALOG_READS):
            self._begin()
            try:
                tables = self._hold_tables(expected)
                if tables is not None:
                    self._tables_held = True
                    yield tables
                    return
            finally:
                self._tables_held = False
                self._rollback()
        raise ConflictError("%s: its tables kept changing while emfix read what they are" % self.address.display(),
                            hint="another program is altering, creating or dropping tables: run emfix again "
                                 "when it is done")

    def without_transactions(self, tables):
        """{table: its engine} of the tables of `tables` whose engine keeps no transactions (MyISAM, Aria, MEMORY,
        ...): no consistent snapshot covers them, no locking read locks their rows."""
        wanted = {self.table_key(t): t for t in tables}
        rows = self.query("SELECT t.TABLE_NAME, t.ENGINE FROM information_schema.TABLES t JOIN information_schema."
                          "ENGINES e ON e.ENGINE = t.ENGINE WHERE t.TABLE_SCHEMA = DATABASE() AND e.TRANSACTIONS <> "
                          "'YES'")
        found = {self.table_key(text_of(name)): text_of(engine) for name, engine in rows}
        return {wanted[k]: engine for k, engine in sorted(found.items()) if k in wanted}

    def foreign_key_names(self):
        """{name in lower case: (name, its table)} of the database's foreign keys: InnoDB's names are the database's,
        compared whatever their letter case, so a new table's key may not take one (init, restore)."""
        return {text_of(name).lower(): (text_of(name), text_of(table)) for name, table in self.query(
            "SELECT CONSTRAINT_NAME, TABLE_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE "
            "CONSTRAINT_SCHEMA = DATABASE()")}

    def warn_without_transactions(self, tables, reading=False):
        """Said before a change: no batch there rolls back and no locking read locks a row, so the change is exact
        only while nothing else writes to those tables. `reading`: said before a read meant to be one moment (a copy,
        an export, a check), which no consistent snapshot gives there. Returns them ({table: engine})."""
        bare = self.without_transactions(tables)
        if bare:
            names = ", ".join(bare) if len(bare) <= 4 else "%d tables (%s, ...)" % (
                len(bare), ", ".join(list(bare)[:3]))
            them = "it" if len(bare) == 1 else "them"
            log.warning("%s: no transactions (%s): %s only while no other program writes to %s; stop the "
                        "application's writes first", names, ", ".join(sorted(set(bare.values()))),
                        ("what emfix reads of %s is one moment" if reading else "emfix's change to %s is exact") % them,
                        them)
        return bare

    @contextlib.contextmanager
    def reading_held_tables(self):
        """Catalog reads in a transaction that already holds every table they are about (hold_tables): one read
        each (catalog_query), as no other session's ALTER can rename one of them meanwhile."""
        held, self._tables_held = self.__dict__.get("_tables_held", False), True
        try:
            yield
        finally:
            self._tables_held = held

    def hold_tables(self, tables):
        """Ask, in one statement, for the metadata lock of every table of `tables` (held to the end of the open
        transaction; waits for a rename of one under way)."""
        self.query(" UNION ALL ".join("(SELECT 1 FROM %s LIMIT 0)" % self.quote(t) for t in tables))

    def _hold_tables(self, expected):
        """The tables, each held (a metadata lock) in the open transaction; None after a deadlock between
        metadata locks (the transaction is then rolled back, and it is tried again)."""
        held = set()
        while True:
            tables = self.tables()
            listed = {self.table_key(t) for t in tables}
            wanted = {self.table_key(t): t for t in list(expected) + tables}
            new = [name for key, name in wanted.items() if key not in held]
            if not new:
                return tables
            try:
                together = [name for name in new if self.table_key(name) in listed]
                if together:  # the listed ones in one statement (a statement each cost 40 ms more per command)
                    try:
                        self.hold_tables(together)
                        new = [name for name in new if self.table_key(name) not in listed]
                    except (NotFoundError, PrivilegeError):  # one dropped meanwhile, or not readable: one by one
                        pass
                for name in new:
                    with contextlib.suppress(PrivilegeError):  # a table this user may not read: listed, not held
                        self._in_place(name)  # held from here to the transaction's end, if it exists
            except ConflictError:
                return None
            held.update(wanted)

    def tables(self):
        rows = self.catalog_query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                                  "AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME")
        return [text_of(r[0]) for r in rows]

    def columns(self, table):
        found = self._columns_of(table).get(self.table_key(table), [])
        if not found and not self.__dict__.get("_tables_held"):  # being renamed into place (an ALTER), or none
            with self._tables_in_place((table,)):
                found = self._columns_of(table).get(self.table_key(table), [])
        return found

    def primary_key(self, table):
        return tuple(self._primary_keys_of(table).get(self.table_key(table), ()))

    def foreign_keys(self, table):
        found = self._foreign_keys_of(table).get(self.table_key(table), [])
        return [dataclasses.replace(fk, child=table) for fk in found]

    def describe_tables(self, tables):
        """Three queries for the whole database, not three per table (information_schema is slow to ask)."""
        columns, keys, foreign = self._columns_of(), self._primary_keys_of(), self._foreign_keys_of()
        key = self.table_key
        return ({t: columns.get(key(t), []) for t in tables}, {t: tuple(keys.get(key(t), ())) for t in tables},
                {t: [dataclasses.replace(fk, child=t) for fk in foreign.get(key(t), [])] for t in tables})

    def _by_table(self, sql, table, column="TABLE_NAME"):
        """{table_key(table): [the rest of each row]} of an information_schema query whose first
        column is the table (`column`), over the whole database or (`table`) one table of it."""
        found = {}
        for row in self.catalog_query(sql % ("AND %s = ?" % column if table else ""), (self.stored(table),) if table
                                      else ()):
            found.setdefault(self.table_key(text_of(row[0])), []).append(tuple(text_of(v) for v in row[1:]))
        return found

    def _columns_of(self, table=None):
        rows = self._by_table("SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = "
                              "DATABASE() %s ORDER BY TABLE_NAME, ORDINAL_POSITION", table)
        return {t: [r[0] for r in found] for t, found in rows.items()}

    def _primary_keys_of(self, table=None):
        rows = self._by_table("SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE "
                              "TABLE_SCHEMA = DATABASE() AND CONSTRAINT_NAME = 'PRIMARY' %s "
                              "ORDER BY TABLE_NAME, ORDINAL_POSITION", table)
        return {t: [r[0] for r in found] for t, found in rows.items()}

    def _foreign_keys_of(self, table=None):
        rows = self._by_table(
            "SELECT k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME "
            "FROM information_schema.KEY_COLUMN_USAGE k "
            "JOIN information_schema.REFERENTIAL_CONSTRAINTS r "
            "  ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME "
            "  AND r.TABLE_NAME = k.TABLE_NAME "
            "WHERE k.TABLE_SCHEMA = DATABASE() AND k.REFERENCED_TABLE_NAME IS NOT NULL %s "
            "ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION", table, "k.TABLE_NAME")
        keys = {}
        for owner, found in rows.items():
            groups = {}
            for name, column, ref_table, ref_column in found:
                groups.setdefault(name, []).append((column, ref_table, ref_column))
            keys[owner] = [ForeignKey(owner, tuple(p[0] for p in parts), parts[0][1], tuple(p[2] for p in parts), name)
                           for name, parts in groups.items()]
        return keys  # {table_key(table): [ForeignKey]}; callers put back the table's own spelling

    def indexes(self, table):
        rows = self.catalog_query("SELECT INDEX_NAME, COLUMN_NAME, NON_UNIQUE FROM information_schema.STATISTICS "
                                  "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY INDEX_NAME, "
                                  "SEQ_IN_INDEX", (self.stored(table),))
        groups = {}
        for name, column, non_unique in rows:
            groups.setdefault(text_of(name), ([], not int(non_unique)))[0].append(text_of(column))
        return [Index(table, name, tuple(cols), unique) for name, (cols, unique) in groups.items()]
