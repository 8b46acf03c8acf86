"""Writing a snapshot: the file under a temporary name, checked, fsynced and renamed into place, and only
then its manifest, so a snapshot that is listed is complete. SQLite sources are copied with the online
backup API; MySQL sources inside one consistent read, as SQL text (sqltext.py) or as a SQLite file."""

import logging
import os
import shutil
import sqlite3

from .. import __version__
from ..backends import open_database
from ..errors import DamagedInputError, NoSpaceError, NotExperimentManagerError, NotWritableError, UsageError
from ..fileutil import clear_stale_temps, durable_file, is_disk_full, remove_own_file
from ..heap import keep_freed_memory
from ..idshift import claiming_alone
from ..pool import ConnectionPool, run_parallel
from ..progress import NoProgress, format_mb, utc_now
from ..schema import discover_graph
from ..values import portable, sqlite_storable
from .checks import count_rows, sha256_of, sqlite_check
from .manifest import META_TABLE, PARTIAL_KIND, SnapshotManifest, new_snapshot_id, snapshot_files, write_manifest
from .restoremark import describe as describe_restore
from .restoremark import marked_in_moment, snapshot_graph
from .sqlreader import SnapshotReader
from .sqltext import MAX_READERS, READERS, open_reader, write_sql_snapshot
from .store import default_snapshot_dir

log = logging.getLogger(__name__)

BATCH_ROWS = 5000


def _check_space(directory, expected):
    free = shutil.disk_usage(directory).free
    if free < expected:
        raise NoSpaceError("not enough free space in %s: the snapshot needs about %s, %s free" % (
            directory, format_mb(expected), format_mb(free)), hint="free some space, prune old snapshots "
                                                      "(`emfix snapshot prune`), or use --snapshot-dir")


def _copy_sqlite(db, temp):
    """The online backup API in one step: one consistent read of the live database."""
    dst = sqlite3.connect(temp, isolation_level=None)
    try:
        # The temporary file is thrown away if anything fails and fsynced by us before the rename,
        # so its own journal and syncs would only double the writes (they cost 2x here).
        dst.execute("PRAGMA journal_mode = OFF")
        dst.execute("PRAGMA synchronous = OFF")
        # A writer committing at that moment makes the one-step backup fail with "locked": wait and
        # try again until --lock-timeout, then say who holds it.
        db.retry_while_locked(lambda: db.connection.backup(dst), "back up %s" % db.address.display())
        dst.execute("PRAGMA journal_mode = DELETE")  # a WAL source must not make a WAL snapshot
    finally:
        dst.close()


def _copy_mysql(db, graph, temp, progress, in_moment):
    """Every table inside one consistent read, streamed in batches into the snapshot file; the read's place
    in the binary log (where the consistent snapshot starts) and the tables without transactions, which no
    consistent read covers ({table: engine}). `in_moment(db)` is called once the read has begun."""
    folded = {}
    for table in graph.tables:  # SQLite's table names are one whatever their letter case; MySQL's may not be
        if table.lower() in folded:
            raise UsageError("%s has tables %s and %s, whose names differ only in letter case: a SQLite-file "
                             "snapshot cannot hold both; nothing was written" % (
                                 db.address.display(), folded[table.lower()], table),
                             hint="take it as SQL text: --format sql")
        folded[table.lower()] = table
    dst = sqlite3.connect(temp, isolation_level=None)
    try:
        dst.execute("CREATE TABLE %s (ordinal INTEGER, name TEXT PRIMARY KEY, ddl TEXT)" % META_TABLE)
        outside = db.warn_without_transactions(graph.tables, reading=True)
        with db.consistent_read():
            position = db.stream_position(locked=False)
            in_moment(db)
            for ordinal, table in enumerate(graph.parent_first()):
                columns = graph.columns[table]
                ddl = db.query("SHOW CREATE TABLE %s" % db.quote(table))[0][1]
                dst.execute("BEGIN")
                dst.execute("INSERT INTO %s VALUES (?, ?, ?)" % META_TABLE, (ordinal, table, ddl))
                dst.execute('CREATE TABLE "%s" (%s)' % (table.replace('"', '""'), ", ".join(
                    '"%s"' % c.replace('"', '""') for c in columns)))
                insert = 'INSERT INTO "%s" VALUES (%s)' % (table.replace('"', '""'), ", ".join("?" * len(columns)))
                batch, copied = [], 0
                order = graph.primary_keys.get(table) or ()
                sql = "SELECT %s FROM %s%s" % (db.exact_columns(table, columns), db.quote(table),
                                               " ORDER BY " + db.quote_columns(order) if order else "")
                for row in db.iter_rows(sql, arraysize=BATCH_ROWS):
                    batch.append(tuple(sqlite_storable(portable(v)) for v in row))
                    if len(batch) >= BATCH_ROWS:
                        dst.executemany(insert, batch)
                        copied += len(batch)
                        batch = []
                        progress.update("%s: %d rows" % (table, copied))
                if batch:
                    dst.executemany(insert, batch)
                dst.execute("COMMIT")
    finally:
        dst.close()
    return position, outside


def _write_error(exc, directory):
    """Disk full, file too large, quota: one clear line; anything else stays a bug with a traceback."""
    text = str(exc)
    if isinstance(exc, OSError) and is_disk_full(exc):
        text = exc.strerror
    elif not (is_disk_full(exc) or "too large" in text or "disk I/O error" in text):
        return exc  # (SQLite says "disk I/O error" when a write stops at a file-size limit: EFBIG)
    return NoSpaceError("cannot write the snapshot in %s: %s; no partial file was kept" % (directory, text),
                        hint="free some space or use --snapshot-dir on a larger disk")


def _expected_size(db):
    if db.dialect == "sqlite":
        size = os.path.getsize(db.address.path)
        wal = db.address.path + "-wal"
        return size + (os.path.getsize(wal) if os.path.exists(wal) else 0)
    return int(db.scalar("SELECT coalesce(sum(DATA_LENGTH + INDEX_LENGTH), 0) FROM information_schema.TABLES "
                         "WHERE TABLE_SCHEMA = DATABASE()") or 0)


def create_snapshot(address, directory=None, *, description="", verify=False, retry_policy=None, progress=None,
                    label="snapshot", kind="snapshot", file_format=None, workers=None):
    """Write a snapshot of the database; return its manifest (verified when `verify`).

    A MySQL database is written as SQL text (`file_format="sql"`, the default) or as a SQLite file
    ("sqlite": slower, but it opens anywhere); a SQLite database is always a SQLite file."""
    progress = progress or NoProgress()
    workers = min(workers or READERS, MAX_READERS)
    directory = directory or default_snapshot_dir(address)
    snapshot_id = new_snapshot_id()
    as_sql = not address.is_sqlite and (file_format or "sql") == "sql"
    path = os.path.join(directory, snapshot_id + (".sql" if as_sql else ".db"))
    if as_sql:
        keep_freed_memory()  # before the readers' first allocations: pages of half a megabyte, each faulted in again
    def opener():
        if as_sql:
            return open_reader(address, retry_policy)
        return open_database(address, readonly=True, retry_policy=retry_policy)

    with ConnectionPool(opener, size=workers if as_sql else 1) as pool, pool.connection() as db:
        pool.prepare(workers - 1 if as_sql else 0)  # the other readers connect while this one plans
        with claiming_alone(db):  # not while a migrate into it ALTERs a table: the catalog can leave it out (CI)
            graph = snapshot_graph(discover_graph(db), db)  # without the mark of a restore under way
        unfinished = []  # what the mark says at the moment the snapshot reads (a restore marks itself only after
        # its safety snapshot: what that one finds is an earlier restore's)

        def in_moment(reader):
            if reader.dialect == "mysql":
                unfinished.append(marked_in_moment(reader))
        made = not os.path.isdir(directory)
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise NotWritableError("cannot create snapshot directory %s: %s" % (directory, exc.strerror),
                             hint="choose another with --snapshot-dir") from None
        try:
            clear_stale_temps(directory, [address.path] if address.is_sqlite else [])
            _check_space(directory, int(_expected_size(db) * 1.05) + (1 << 20))
            with durable_file(path) as temp:
                progress.update("copying %s" % address.display(), force=True)
                position, outside = None, None
                if as_sql:
                    written, digest, position, outside = write_sql_snapshot(
                        pool, db, graph, temp, progress=progress, workers=workers, in_moment=in_moment)
                    counts, problem = written, _check_sql_copy(temp, written, digest if verify else None)
                else:
                    if db.dialect == "sqlite":
                        _copy_sqlite(db, temp)
                    else:
                        position, outside = _copy_mysql(db, graph, temp, progress, in_moment)
                    digest, counts, problem = _check_sqlite_copy(temp, verify, address, progress)
                if problem:
                    raise DamagedInputError("the snapshot failed verification right after writing: %s" % problem,
                                            hint="the disk or the source may be damaged; nothing was kept")
                if unfinished and unfinished[0] is not None and kind == "safety":  # the half an earlier restore
                    description += " (partial: a restore had not finished)"  # left, kept as it is: said (round 27)
                elif unfinished and unfinished[0] is not None:  # it holds the half: `latest-valid` never picks it
                    log.warning("%s: this snapshot holds it as it is (kept as partial: `latest-valid` does not pick "
                                "it)", describe_restore(unfinished[0], address.target())[0])
                    kind = PARTIAL_KIND
                    description = "partial (a restore had not finished)" + (": " + description if description else "")
                manifest = SnapshotManifest(
                    id=snapshot_id, created_at=utc_now(), description=description, source=address.to_dict(),
                    source_dialect=db.dialect, emfix_version=__version__, schema_generation=graph.generation,
                    tables=counts, size=os.path.getsize(temp), sha256=digest, file=os.path.basename(path),
                    verified_at=utc_now() if verify else None, kind=kind, source_key=address.key(), position=position,
                    not_in_moment=outside or None)
        except (OSError, sqlite3.OperationalError) as exc:
            _leave_no_empty_folder(made, directory)
            raise _write_error(exc, directory) from None
        except BaseException:
            _leave_no_empty_folder(made, directory)
            raise
    try:
        write_manifest(directory, manifest)
    except OSError as exc:
        remove_own_file(path)
        raise NoSpaceError("cannot write the snapshot manifest: %s" % exc.strerror) from None
    progress.done()
    log.info("%s %s written (%d rows, %s)", label, snapshot_id, manifest.row_total, format_mb(manifest.size))
    return manifest


def _leave_no_empty_folder(made, directory):
    """The snapshot folder this run made, when it failed before writing anything into it (round 54: a damaged
    database's refused snapshot left an empty `snapshots/` behind). Only an empty folder goes."""
    if made:
        try:
            os.rmdir(directory)
        except OSError:
            pass


def safety_snapshot(address, directory, reason, *, retry_policy=None, progress=None, before_restore=False):
    """The verified snapshot taken before a change (described as "before <reason>"); its id. `directory`
    None: the database's own snapshot folder. `progress` shows one line while it is taken.

    `before_restore`: the one a restore takes of the content it replaces ("safety copy before <reason>",
    kind "safety": `latest-valid` never picks it, as restoring it would undo the restore); a SQLite file
    too damaged to be read is then kept as its raw bytes, marked as damaged, so the restore can go on."""
    directory = directory or default_snapshot_dir(address)
    if progress is not None:
        progress.update("snapshot before %s" % reason, force=True)
    if not before_restore:
        return create_snapshot(address, directory, description="before %s" % reason, verify=True,
                               retry_policy=retry_policy).id
    description = "safety copy before %s" % reason
    try:
        return create_snapshot(address, directory, description=description, verify=True, retry_policy=retry_policy,
                               label="safety snapshot", kind="safety").id
    except NotExperimentManagerError as exc:  # no table at all (found by an outside tester): nothing to keep
        if exc.kind != "no_tables":
            raise
        return None
    except DamagedInputError:
        if not address.is_sqlite or not os.path.exists(address.path):
            raise
    return _raw_copy(address, directory, description)


def _raw_copy(address, directory, description):
    """The database is too damaged to snapshot: keep its raw bytes, marked as damaged."""
    raw_id = new_snapshot_id()
    raw_path, _ = snapshot_files(directory, raw_id)
    with durable_file(raw_path) as temp:
        shutil.copyfile(address.path, temp)
    write_manifest(directory, SnapshotManifest(
        id=raw_id, created_at=utc_now(), description=description + " (raw copy of a damaged database)",
        source=address.to_dict(), source_dialect="sqlite", emfix_version=__version__, schema_generation=0, tables={},
        size=os.path.getsize(raw_path), sha256=sha256_of(raw_path), file=os.path.basename(raw_path),
        damage="raw copy of a database that failed its integrity check", kind="raw", source_key=address.key()))
    return raw_id


def _check_sqlite_copy(temp, verify, address, progress):
    progress.update("checking the copy", force=True)
    jobs = [lambda: sha256_of(temp), lambda: count_rows(temp)]
    if verify:
        jobs.append(lambda: sqlite_check(temp))
    try:
        results = run_parallel(jobs)
    except sqlite3.DatabaseError as exc:
        raise DamagedInputError("the copy of %s cannot be read back (%s): the database is damaged"
                                % (address.display(), exc),
                                hint="restore a snapshot (`emfix snapshot restore`)") from None
    return results[0], results[1], results[2] if verify else ""


def _check_sql_copy(temp, written, digest=None):
    """SQL text is always checked for whole statements and the counts it says it holds; with `digest`
    (--verify) it is also read back in full and hashed again."""
    reader = SnapshotReader(temp)
    jobs = [reader.check] + ([lambda: sha256_of(temp)] if digest else [])
    results = run_parallel(jobs)
    if results[0]:
        return results[0]
    if reader.counts != written:
        return "the file's row counts are not the ones written"
    if digest and results[1] != digest:
        return "the file read back differs from what was written"
    return ""
