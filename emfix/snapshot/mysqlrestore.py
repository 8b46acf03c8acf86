"""Restoring a snapshot into MySQL: the check made before anything is emptied, the loaders of SQL text
(the default) and of a SQLite-file snapshot (`--format sqlite`), and what a restore that stops part
way says.

A restore empties every table, then loads it; a table whose columns changed since the snapshot
(a column added NOT NULL without a default, one dropped, one narrowed) refuses the rows only after
that, so the check is made first, from the snapshot's own CREATE TABLE text (SHOW CREATE TABLE as
it was) against information_schema. A restore that stops part way anyway says so, and names the
safety snapshot that holds the content from before.
"""

import contextlib
import logging
import queue
import re
import shlex
import sqlite3
import threading

from ..backends import open_database
from ..backends.mysqlcatalog import text_of
from ..errors import EmfixError, OperationInterrupted, PrivilegeError, SchemaError, Terminated
from ..fileutil import read_only_uri
from ..killpoints import kill_point
from ..pool import ConnectionPool, put_unless_stopped, run_parallel
from ..schema import remember_spellings
from ..values import numbers_back
from .manifest import META_TABLE
from .restorefit import generated_columns, insert_triggers, restore_problems, snapshot_columns, split_type
from .sqlreader import SnapshotReader, tail_counts
from .sqltext import LOAD_SQL_MODE
from .store import newest_safety_before

log = logging.getLogger(__name__)

CREATE = re.compile(rb"CREATE TABLE IF NOT EXISTS `((?:[^`]|``)+)`")
TRUNCATE = re.compile(rb"TRUNCATE TABLE `((?:[^`]|``)+)`")
NEXT_ID = re.compile(r"\)[^()`]* AUTO_INCREMENT=([0-9]+)[^()`]*$")  # in the table options after the last column


def _name(match):
    """The table a CREATE or TRUNCATE regex matched."""
    return match.group(1).replace(b"``", b"`").decode("utf-8")


def snapshot_tables(path):
    """{table: SHOW CREATE TABLE text} of a snapshot of a MySQL database (SQL text or a SQLite file)."""
    if not path.endswith(".sql"):
        con = _open_file(path)
        try:
            return dict(con.execute("SELECT name, ddl FROM %s" % META_TABLE).fetchall())
        finally:
            con.close()
    tables = {}
    with open(path, "rb") as handle:
        for statement in SnapshotReader(path).frames(handle):
            if statement.startswith((b"TRUNCATE", b"INSERT")):
                break
            match = CREATE.match(statement)
            if match:
                tables[_name(match)] = statement.decode("utf-8")
    return tables


def check_restorable(address, path, snapshot_id, retry_policy=None):
    """Refuse (SchemaError: nothing changed yet) a restore whose rows the live tables would not take."""
    with open_database(address, readonly=True, retry_policy=retry_policy) as db:
        remember_spellings(db)  # a SQLite-format file names the tables as the application does: loaded as held
        db.warn_without_transactions(db.tables())  # emptied and loaded with no transaction to take back (round 25)
        tables = snapshot_tables(path)
        problems = restore_problems(db, tables)
        for said in [] if problems else insert_triggers(db, tables):
            log.warning(said)
    if problems:
        raise SchemaError("snapshot %s does not fit the tables of %s as they are now: %s%s; nothing was changed" % (
            snapshot_id, address.display(), "; ".join(problems[:4]),
            " (and %d more)" % (len(problems) - 4) if len(problems) > 4 else ""),
            hint="make those tables and columns as they were (a column added since: give it a default; a table "
                 "spelled otherwise: RENAME TABLE, or restore into another database; a unique key, CHECK or trigger: "
                 "drop it, restore, then make it again) and restore again; `emfix schema diff` shows how the tables "
                 "differ")


def partly_restored(error, address, safety_id, directory, earlier=None):
    """The error of a restore that stopped after it emptied a table: what stopped it, that the database
    is partly restored, and the safety snapshot that holds the content from before. `earlier`: what the mark
    says of restores killed before this one ({}: none; None: not known, the restore was not marked)."""
    message = "%s; the restore stopped part way: %s is partly restored (tables emptied, not all loaded)" % (
        error.message, address.display())
    first = (earlier or {}).get("safety_snapshot_id")
    if first:  # this restore began on the half an earlier one left: its own safety snapshot holds that half
        hint = ("safety snapshot %s holds what was there before the first restore that did not finish: emfix snapshot "
                "restore %s --snapshot-dir %s --snapshot-id %s%s" % (
                    first, address.target(), shlex.quote(directory), first,
                    " (this restore's, %s, holds the half it began on)" % safety_id if safety_id else ""))
    elif safety_id:
        hint = ("safety snapshot %s holds the content from before: emfix snapshot restore %s --snapshot-dir %s "
                "--snapshot-id %s" % (safety_id, address.target(), shlex.quote(directory), safety_id))
        older = newest_safety_before(directory, address, safety_id) if earlier is None else None  # unmarked
        if older:  # a restore stopped twice: this safety snapshot may hold the first one's half (an outside tester)
            hint += ("; if an earlier restore of it stopped part way too, safety snapshot %s, taken before that one, "
                     "holds what was there before it" % older)
    else:
        hint = "no safety snapshot was taken (--no-safety-snapshot): fix what stopped it and restore again"
    failure = type(error)(message, hint=hint)
    failure.__dict__.update({k: v for k, v in error.__dict__.items()
                             if k not in ("message", "hint", "kind", "facts", "args")})
    return failure


def interruption(exc):
    """Ctrl-C or SIGTERM (a KeyboardInterrupt) once the restore changed tables: an error that says so, for
    `partial` to tell that the database is partly restored and which snapshot holds what was there."""
    what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted (Ctrl-C)"
    return OperationInterrupted("the restore was %s" % what)


def load_sql_snapshot(address, path, *, retry_policy=None, progress=None, workers=3, partial=None, guard=None):
    """Run the snapshot's statements against the database: its session settings on every connection,
    the tables' DDL and TRUNCATEs on one, the INSERTs over up to `workers` pooled connections at once (as
    many as the server allows this user), each loading its own tables (loader_shares: 1M demo, 0.94 of the
    wall time of two sharing every table). Return the row count of every table it filled, counted afterwards,
    and the number of connections that loaded them; an error once a table was emptied is raised as
    `partial(error)`. `guard(db)`, when given, is asked before each write on `db` (RestoreMark.still_held)."""
    emptied, locked = False, frozenset()
    reader = SnapshotReader(path)
    with ConnectionPool(lambda: open_database(address, retry_policy=retry_policy), size=workers) as pool:
        try:
            connections = pool.acquire_up_to(workers)
        except BaseException as exc:  # stopped (or refused) while its connections open: nothing emptied, the mark goes
            exc.nothing_changed = True
            raise
        failed = threading.Event()
        created = []  # tables the database lacked, made by their CREATE TABLE (a failure before emptying says so)
        try:
            existing = {connections[0].table_key(t) for t in connections[0].tables()}
            session, inserts, threads, shares = [], queue.Queue(maxsize=workers), [], [None]
            errors, tables, widened = [], {}, {}
            with open(path, "rb") as handle:
                for statement in reader.frames(handle):
                    if failed.is_set():
                        break
                    if not statement.startswith(b"INSERT"):
                        if statement.startswith((b"SET ", b"/*!")):
                            session.append(statement)
                        match = CREATE.match(statement)
                        created_name = _name(match) if match else None
                        if match:
                            tables[created_name] = statement.decode("utf-8")
                        if statement.startswith(b"TRUNCATE"):
                            locked = hold_for_emptying(connections[0], statement, tables, locked, emptied)
                            if guard is not None and not emptied:
                                guard(connections[0])  # (under the LOCK TABLES: no other restore empties meanwhile)
                        before, emptied = emptied, emptied or statement.startswith(b"TRUNCATE")  # (it may end mid-way)
                        try:
                            connections[0].execute_raw(statement)
                        except PrivilegeError:  # refused before it began (TRUNCATE needs DROP): it emptied nothing
                            emptied = before
                            raise
                        if statement.startswith(b"TRUNCATE"):
                            keep_next_id(connections[0], statement, tables)
                            kill_point("emptied")  # tests: a restore killed outright, tables emptied
                        elif created_name and connections[0].table_key(created_name) not in existing:
                            created.append(created_name)
                        continue
                    if not threads:
                        if locked:  # every table is emptied: the loaders write beside the application again
                            connections[0].execute("UNLOCK TABLES")
                            locked = frozenset()
                        widened = widened_floats(connections[0], tables)
                        shares = loader_shares(_weights(reader, tail_counts(path)), len(connections), widened)
                        threads = [_start_loader(db, session, _from_queue(inserts, failed) if share is None else
                                                 _from_file(reader, share), failed, errors, guard)
                                   for db, share in zip(connections, shares)]
                    if widened and _inserted_table(statement) in widened:
                        continue  # loaded afterwards, through FLOAT (load_through_floats)
                    if shares[0] is None:
                        put_unless_stopped(inserts, statement, failed)
                    if progress is not None:
                        progress.update("loading %s" % path)
            if locked:  # a snapshot without a row: nothing unlocked them for the loaders (the count waited on them)
                connections[0].execute("UNLOCK TABLES")
                locked = frozenset()
            for _ in (threads if shares[0] is None else ()):
                put_unless_stopped(inserts, None, failed)
            for thread in threads:
                thread.join()
            if errors:
                raise errors[0]
            lead = connections[0]
            if widened:
                load_through_floats(lead, reader, path, widened)
            counts = count_tables(connections, reader.counts or {}, failed)
        except EmfixError as exc:
            failed.set()  # the loaders reading the file themselves stop after their statement, before this is said
            for thread in threads:
                thread.join()
            if emptied and partial is not None:
                raise partial(exc) from None
            exc.nothing_changed = not emptied  # the restore's mark goes (restoremark.py)
            if not emptied and partial is not None:
                exc.message += stopped_before("emptied", created)
            raise
        except KeyboardInterrupt as exc:
            failed.set()  # the loaders stop after the statement they are running
            if emptied and partial is not None:
                raise partial(interruption(exc)) from None
            exc.nothing_changed = not emptied
            raise
        finally:
            for db in connections:
                pool.release(db)
    if reader.counts is None:
        raise reader.damaged("its last line is missing")
    return counts, len(connections)


def hold_for_emptying(db, truncate, tables, locked, emptied):
    """The snapshot's tables ({name: DDL}) locked (LOCK TABLES ... WRITE) before the first TRUNCATE: a wait behind
    an application's open transaction then ends, at --lock-timeout, with nothing emptied, not with some tables
    emptied and the next one waiting. The tables locked now; none where this user may not lock tables (each
    TRUNCATE then waits on its own, as before) or a TRUNCATE names a table not locked (unlocked first)."""
    match = TRUNCATE.match(truncate)
    name = _name(match) if match else None
    if locked and name not in locked:
        db.execute("UNLOCK TABLES")
        return frozenset()
    if emptied or locked or name not in tables:
        return locked
    try:
        db.execute("LOCK TABLES %s" % ", ".join("%s WRITE" % db.quote(t) for t in tables))
    except PrivilegeError:
        return frozenset()
    return frozenset(tables)


def keep_next_id(db, truncate, tables):
    """The emptied table's next AUTO_INCREMENT id as the snapshot's DDL has it (TRUNCATE starts it at 1 again): a row
    the application inserts while the restore loads gets an id after the snapshot's rows, not one of theirs, whose
    INSERT then failed on a duplicate key (the restore stopped part way)."""
    match = TRUNCATE.match(truncate)
    ddl = tables.get(_name(match)) if match else None
    found = NEXT_ID.search(ddl or "")
    if found:
        with contextlib.suppress(PrivilegeError):  # a user without ALTER: as before
            db.execute("ALTER TABLE %s AUTO_INCREMENT = %d" % (db.quote(_name(match)), int(found.group(1))))


def count_tables(connections, expected, failed):
    """{table: its row count now} for every table of `expected` ({table: rows}), counted over all `connections`
    at once, the largest first (10M rows, a buffer pool smaller than the tables: 3.2 s over one, 1.6 over two)."""
    tables = queue.Queue()
    for table in sorted(expected, key=lambda t: -expected[t]):
        tables.put(table)
    counts = {}

    def count_on(db):
        while not failed.is_set():
            try:
                table = tables.get_nowait()
            except queue.Empty:
                return
            counts[table] = int(db.scalar("SELECT count(*) FROM %s" % db.quote(table)))
    run_parallel([lambda db=db: count_on(db) for db in connections], failed)
    return counts


INSERT_INTO = re.compile(rb"INSERT INTO `((?:[^`]|``)+)` \(")
STAGE = "emfix_restore_stage"


def _inserted_table(statement):
    found = INSERT_INTO.match(statement)
    return _name(found) if found else None


def widened_floats(db, tables):
    """{table: [column]}: columns FLOAT in the snapshot (`tables`: {name: SHOW CREATE TABLE text}) and DOUBLE now.
    The snapshot holds a FLOAT as its short text where that reads back as the same float
    (backends.mysqlvalues.FLOAT_LITERAL); read into a DOUBLE, that text is the decimal, not the float."""
    live = {(db.table_key(text_of(t)), text_of(c).lower()): text_of(k) for t, c, k in db.catalog_query(
        "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()")}
    found = {}
    for table, ddl in tables.items():
        for key, (name, kind) in snapshot_columns(ddl).items():
            if split_type(kind)[0] == "float" and (live.get((db.table_key(table), key)) or "").lower() == "double":
                found.setdefault(table, []).append(name)
    return found


def load_through_floats(db, reader, path, widened):
    """The rows of the tables in `widened` ({table: [column]}), statement by statement: into a temporary
    table whose widened columns are FLOAT again, then from it into the table, as a FLOAT copied into a
    DOUBLE gives the float's exact value (an UPDATE afterwards would fire ON UPDATE columns and triggers,
    and round rows the application wrote meanwhile)."""
    q = db.quote
    staged = None  # (table, its statements' column list) the temporary table is made for
    with open(path, "rb") as handle:
        for statement in reader.frames(handle):
            table = _inserted_table(statement) if statement.startswith(b"INSERT") else None
            if table not in widened:
                continue
            rest = statement[INSERT_INTO.match(statement).end() - 1:]  # (`a`, `b`) VALUES (...)
            columns = rest[1:rest.index(b") VALUES (")].decode("utf-8")
            if staged != (table, columns):
                db.execute("DROP TEMPORARY TABLE IF EXISTS %s" % q(STAGE))
                db.execute("CREATE TEMPORARY TABLE %s AS SELECT %s FROM %s LIMIT 0" % (q(STAGE), columns, q(table)))
                db.execute("ALTER TABLE %s %s" % (q(STAGE), ", ".join("MODIFY %s FLOAT NULL" % q(c)
                                                                      for c in widened[table])))
                staged = (table, columns)
            db.execute_raw(b"INSERT INTO " + q(STAGE).encode("utf-8") + b" " + rest)
            db.execute("INSERT INTO %s (%s) SELECT %s FROM %s" % (q(table), columns, columns, q(STAGE)))
            db.execute("DELETE FROM %s" % q(STAGE))
    db.execute("DROP TEMPORARY TABLE IF EXISTS %s" % q(STAGE))


def loader_shares(counts, loaders, widened=()):
    """Each loader's tables ({name}), the rows shared about evenly, largest table first; [None] * loaders (every
    loader takes the next statement, whatever its table) where the file's counts are not known. Two loaders in
    one table slow each other: the 1M demo's restore took 4.8 s of the server's CPU so, 3.9 s table by table."""
    if not counts:
        return [None] * loaders
    shares = [(0, n, set()) for n in range(loaders)]
    for table, rows in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if table in widened:
            continue  # loaded afterwards, through FLOAT (load_through_floats)
        low = min(shares)
        shares[low[1]] = (low[0] + rows, low[1], low[2] | {table})
    return [share[2] for share in shares]


def _start_loader(db, session, statements, failed, errors, guard=None):
    """A thread running the session's settings, then each statement `statements()` yields (in that thread) until
    one fails or `failed` is set."""
    def run():
        try:
            for statement in session:
                db.execute_raw(statement)
            for statement in statements():
                if failed.is_set():
                    return
                if guard is None:
                    db.execute_raw(statement)
                else:
                    db.write_batch(lambda statement=statement: (guard(db), db.execute_raw(statement)), "restore")
        except BaseException as exc:
            errors.append(exc)
            failed.set()
    thread = threading.Thread(target=run, name="emfix-restore", daemon=True)
    thread.start()
    return thread


def _weights(reader, counts):
    """{table: rows} of every table the file INSERTs into (each found by its statements' heads, not only by the last
    line: a table that line left out was emptied and loaded by no loader, exit 0, round 56), rows from the last
    line's counts; None without them."""
    if counts is None:
        return None
    found = set()

    def note(first):
        match = INSERT_INTO.match(first)
        if match:
            found.add(_name(match))
        return False
    with open(reader.path, "rb") as handle:
        for _ in reader.statements_where(handle, note):
            pass
    return {table: counts.get(table, 0) for table in found}


def _from_queue(inserts, failed):
    """The statements the reading thread puts, up to its None."""
    def statements():
        while not failed.is_set():
            try:
                statement = inserts.get(timeout=0.5)
            except queue.Empty:
                continue
            if statement is None:
                return
            yield statement
    return statements


def _from_file(reader, share):
    """The INSERTs into the tables of `share` (as the file spells them), read from the file by the loader itself."""
    def mine(first):
        found = INSERT_INTO.match(first)
        return found is not None and _name(found) in share

    def statements():
        with open(reader.path, "rb") as handle:
            yield from reader.statements_where(handle, mine)
    return statements


def load_sqlite_snapshot(address, path, retry_policy, progress, partial, guard=None):
    """A SQLite-file snapshot of a MySQL database, table by table, parents first, each in one transaction
    with foreign-key checks off; an error once a table was replaced is raised as `partial(error)`."""
    src = _open_file(path)
    counts, committing, replaced, created = {}, False, False, []
    try:
        order = [r for r in src.execute("SELECT name, ddl FROM %s ORDER BY ordinal" % META_TABLE)]
        with open_database(address, retry_policy=retry_policy) as db:
            db.execute("SET SESSION sql_mode = '%s'" % LOAD_SQL_MODE)  # as the SQL text's loader has it
            db.foreign_key_checks(False)
            existing = {t.lower() for t in db.tables()}
            for table, ddl in order:
                if table.lower() not in existing:
                    db.execute(ddl)
                    created.append(table)
                # the server computes them and refuses a value: the table's now, and the snapshot's (dropped since)
                generated = db.generated_columns(table) | generated_columns(ddl)
                columns = [r[1] for r in src.execute('PRAGMA table_info("%s")' % table.replace('"', '""'))
                           if r[1].lower() not in generated]
                insert = "INSERT INTO %s (%s) VALUES (%s)" % (db.quote(table), db.quote_columns(columns),
                                                              ", ".join("?" * len(columns)))
                with db.transaction():
                    if guard is not None:
                        guard(db)
                    db.execute("DELETE FROM %s" % db.quote(table))
                    rows = src.execute('SELECT %s FROM "%s"' % (
                        ", ".join('"%s"' % c.replace('"', '""') for c in columns), table.replace('"', '""')))
                    db.executemany(insert, numbers_back(db.column_types(table), columns, rows), batch_size=1000)
                    committing = True  # from here its COMMIT may have happened, whatever stops it
                replaced = True
                counts[table] = int(db.scalar("SELECT count(*) FROM %s" % db.quote(table)))
                kill_point("emptied")  # tests: a restore killed outright, a table replaced
                progress.update("%s: %d rows" % (table, counts[table]))
            db.foreign_key_checks(True)
    except KeyboardInterrupt as exc:  # the table being loaded rolls back; the ones before it are replaced
        if committing:  # a commit may have happened: said partly restored, the restore's mark kept (restoremark.py)
            raise partial(interruption(exc)) from None
        exc.nothing_changed = True  # stopped inside the first table's transaction, rolled back: the mark goes
        raise
    except Exception as exc:
        error = exc if isinstance(exc, EmfixError) else _refused(address, exc)
        if error is None:  # not the server's: a bug, with its traceback (the mark stays)
            raise
        if replaced:
            raise partial(error) from None
        error.nothing_changed = True
        if "nothing was changed" not in error.message:
            error.message += stopped_before("replaced", created)
        raise error from None
    finally:
        src.close()
    return counts


def stopped_before(verb, created):
    """What a restore that stopped before it emptied (`verb`) a table leaves: nothing, or the tables it had created."""
    if not created:
        return "; the restore stopped before it %s a table: nothing was changed" % verb
    return ("; the restore stopped before it %s a table, after it created %s (empty, as in the snapshot), which "
            "stay%s: nothing else was changed" % (verb, ", ".join(created), "s" if len(created) == 1 else ""))


def _refused(address, exc):
    """A statement the server refused, as the driver raised it (executemany does not translate it)."""
    if not type(exc).__module__.startswith(("mysql.connector", "_mysql_connector")):
        return None
    return SchemaError("MySQL %s refused a statement: %s" % (address.display(), getattr(exc, "msg", None) or exc),
                       hint="its tables differ from the ones the snapshot was taken of; `emfix schema diff` shows how")


def _open_file(path):
    return sqlite3.connect(read_only_uri(path), uri=True)
