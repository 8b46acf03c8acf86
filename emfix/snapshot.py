"""emfix snapshot: consistent, checksummed, verified snapshots and a restore that cannot make things worse.

A snapshot is a SQLite file (whatever the source: one format to verify, list and open anywhere)
plus a JSON manifest beside it. The file is written under a temporary name, fsynced and renamed
into place; the manifest is written the same way only after that, so a snapshot that is listed
is complete. SQLite sources are copied with the online backup API, MySQL sources inside one
consistent read (START TRANSACTION WITH CONSISTENT SNAPSHOT), streamed table by table.
"""

import dataclasses
import datetime
import errno
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import sqlite3
from typing import Dict, List, Optional

from . import __version__
from .address import key_of_source
from .backends import open_database
from .backends.sqlite import check_summary
from .errors import (
    ConnectError,
    DamagedInputError,
    DatabaseLockedError,
    EmfixError,
    NoSpaceError,
    NotFoundError,
    NotWritableError,
    UsageError,
)
from .fileutil import (
    SNAPSHOT_ID,
    SQLITE_HEADER,
    atomic_write_text,
    clear_stale_temps,
    durable_file,
    fsync_directory,
    is_own_file,
    read_only_uri,
    remove_own_file,
    server_state_dir,
)
from .mysqlrestore import META_TABLE, check_restorable, load_sqlite_snapshot, partly_restored
from .pool import ConnectionPool, run_parallel
from .progress import NoProgress, format_mb, utc_now
from .schema import discover_graph
from .sqliterestore import restore_by_content
from .sqlsnapshot import SnapshotReader, load_sql_snapshot, open_reader, write_sql_snapshot
from .values import portable

log = logging.getLogger(__name__)

PLAIN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
FORMAT = "emfix-snapshot-1"
BATCH_ROWS = 5000


@dataclasses.dataclass
class SnapshotManifest:
    id: str
    created_at: str
    description: str
    source: dict  # the database address, password masked
    source_dialect: str
    emfix_version: str
    schema_generation: int
    tables: Dict[str, int]
    size: int
    sha256: str
    file: str
    format: str = FORMAT
    verified_at: Optional[str] = None
    damage: Optional[str] = None  # what the last verify found wrong
    kind: str = "snapshot"  # or "safety" (taken by restore before it overwrote) or "raw" (bytes of a damaged file)
    source_key: Optional[str] = None  # DatabaseAddress.key() of the source: whose snapshot this is
    position: Optional[dict] = None  # MySQL: the data's moment in the binlog (gtid, binlog_file, binlog_position)

    @property
    def row_total(self):
        return sum(self.tables.values())

    @property
    def owner(self):
        return self.source_key or key_of_source(self.source)

    @property
    def is_safety_copy(self):
        return self.kind in ("safety", "raw") or str(self.description).startswith("safety copy before restoring")

    def to_dict(self):
        data = dataclasses.asdict(self)
        data["row_total"] = self.row_total
        return data

    @classmethod
    def from_dict(cls, data):
        fields = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(data, dict):
            raise ValueError("not an emfix snapshot manifest (a JSON %s, not an object)" % type(data).__name__)
        missing = {"id", "created_at", "size", "sha256", "file", "tables"} - set(data)
        if missing or data.get("format") != FORMAT:
            raise ValueError("not an emfix snapshot manifest (%s)" % (
                "missing " + ", ".join(sorted(missing)) if missing else "format %r" % data.get("format")))
        try:
            manifest = cls(**{k: v for k, v in data.items() if k in fields})
        except TypeError as exc:  # a field it must have is missing
            raise ValueError("not an emfix snapshot manifest (%s)" % exc) from None
        wrong = [name for name, kinds in _FIELD_TYPES.items() if not isinstance(getattr(manifest, name), kinds)
                 or isinstance(getattr(manifest, name), bool)]
        if wrong or not all(isinstance(n, int) for n in manifest.tables.values()):
            raise ValueError("manifest field %s has the wrong type" % ", ".join(wrong or ["tables"]))
        return manifest


_FIELD_TYPES = {"id": str, "created_at": str, "size": int, "sha256": str, "file": str, "tables": dict,
                "description": str, "source": dict, "kind": str}


@dataclasses.dataclass
class SnapshotStatus:
    id: str
    status: str  # verified | unverified | damaged | missing | incomplete
    problem: str = ""
    manifest: Optional[SnapshotManifest] = None

    def to_dict(self):
        data = {"id": self.id, "status": self.status, "problem": self.problem}
        if self.manifest is not None:
            m = self.manifest
            data.update(created_at=m.created_at, description=m.description, size=m.size, row_total=m.row_total,
                        sha256=m.sha256, source=m.source, verified_at=m.verified_at, kind=m.kind,
                        position=m.position)
        return data


@dataclasses.dataclass
class RestoreResult:
    snapshot_id: str
    safety_snapshot_id: Optional[str]
    tables: Dict[str, int]
    method: str


@dataclasses.dataclass
class PruneResult:
    deleted: List[str]
    kept: List[str]
    dry_run: bool
    protected: List[str] = dataclasses.field(default_factory=list)  # kept past --keep/--older-than: newest verified


# -- where snapshots live ----------------------------------------------------------------------

def default_snapshot_dir(address):
    """Beside a SQLite file; for MySQL one folder per server and database under emfix's state home
    (the same from any working directory), or ./snapshots where an older emfix kept this database's."""
    if address.is_sqlite:
        return os.path.join(os.path.dirname(os.path.abspath(address.path)), "snapshots")
    home = server_state_dir(address, "snapshots")
    legacy = os.path.abspath("snapshots")
    if not os.path.isdir(home) and os.path.isdir(legacy) and list_snapshots(legacy, address):
        return legacy
    return home


def new_snapshot_id(now=None):
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S.%fZ") + "-" + secrets.token_hex(3)


def check_id(snapshot_id):
    if not PLAIN_ID.match(snapshot_id or "") or ".." in snapshot_id:
        raise UsageError("%r is not a snapshot id" % snapshot_id,
                         hint="use an id from `emfix snapshot list` (letters, digits, . _ -)")
    return snapshot_id


def _paths(directory, snapshot_id):
    """The snapshot's data file (SQL text for MySQL since #16, else a SQLite file) and its manifest."""
    check_id(snapshot_id)
    sql = os.path.join(directory, snapshot_id + ".sql")
    data = sql if os.path.exists(sql) else os.path.join(directory, snapshot_id + ".db")
    return data, os.path.join(directory, snapshot_id + ".json")


def require_snapshot(directory, snapshot_id):
    """The id, when a snapshot by it is in `directory` (whole or not); NotFoundError (exit 3, as a
    missing database file) when there is none."""
    path, manifest_path = _paths(directory, snapshot_id)
    if not (os.path.exists(manifest_path) or os.path.exists(path)):
        raise NotFoundError("no snapshot %s in %s" % (snapshot_id, directory),
                            hint="`emfix snapshot list` shows the snapshots there")
    return snapshot_id


def read_manifest(directory, snapshot_id):
    _, manifest_path = _paths(directory, snapshot_id)
    with open(manifest_path, encoding="utf-8") as handle:
        return SnapshotManifest.from_dict(json.load(handle))


def write_manifest(directory, manifest):
    """Written (or rewritten by verify) only under emfix's own name for it: never over a user's file."""
    _, manifest_path = _paths(directory, manifest.id)
    if not is_own_file(manifest_path):
        raise UsageError("refusing to write %s: not a name emfix gives its snapshot manifests" % manifest_path,
                         hint="snapshot ids are written by `emfix snapshot create`")
    atomic_write_text(manifest_path, json.dumps(manifest.to_dict(), indent=2) + "\n", mode=0o600)


# -- checking a file ---------------------------------------------------------------------------

def sha256_of(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            block = handle.read(chunk)
            if not block:
                return digest.hexdigest()
            digest.update(block)


def _open_snapshot_file(path):
    uri = read_only_uri(path)
    return sqlite3.connect(uri, uri=True)


def count_rows(path):
    con = _open_snapshot_file(path)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND "
                                           "name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")]
        return {n: con.execute('SELECT count(*) FROM "%s"' % n.replace('"', '""')).fetchone()[0]
                for n in names if n != META_TABLE}
    finally:
        con.close()


def sqlite_check(path, full=False):
    """'' when PRAGMA quick_check (integrity_check with full) passes, else what it says."""
    try:
        with open(path, "rb") as handle:
            if handle.read(16) != SQLITE_HEADER:
                return "not a SQLite file (bad header)"
        con = _open_snapshot_file(path)
        try:
            rows = con.execute("PRAGMA %s" % ("integrity_check" if full else "quick_check")).fetchall()
        finally:
            con.close()
    except (sqlite3.DatabaseError, OSError) as exc:
        return "cannot be read as SQLite: %s" % exc
    return check_summary(rows, "integrity_check" if full else "quick_check")


def verify_snapshot(directory, snapshot_id, *, full=False, record=True, address=None):
    """Check one snapshot against its manifest; never raises for damage, returns it.

    With `address`, a snapshot of another database is refused (UsageError), not checked."""
    check_id(snapshot_id)
    path, manifest_path = _paths(directory, snapshot_id)
    if LEGACY_ID.match(snapshot_id) and not os.path.exists(manifest_path):
        return _verify_legacy(directory, snapshot_id)
    if not os.path.exists(manifest_path):
        if os.path.exists(path):
            return SnapshotStatus(snapshot_id, "incomplete", "no manifest beside %s (interrupted create?)" % path)
        return SnapshotStatus(snapshot_id, "missing", "no snapshot %s in %s" % (snapshot_id, directory))
    try:
        manifest = read_manifest(directory, snapshot_id)
    except (ValueError, OSError) as exc:
        return SnapshotStatus(snapshot_id, "damaged", "manifest unreadable: %s" % exc)
    if address is not None and manifest.owner != address.key():
        raise UsageError("snapshot %s is of another database (%s), not of %s" % (
            snapshot_id, _source_text(manifest), address.display()),
            hint="`emfix snapshot list %s` shows this database's snapshots" % address.target())
    problem = _find_damage(snapshot_id, manifest, path, full)
    if record:
        manifest.damage = problem or None
        if not problem:
            manifest.verified_at = utc_now()
        try:
            write_manifest(directory, manifest)
        except (OSError, UsageError) as exc:  # a read-only folder, a hand-made id: the verdict still stands
            log.info("could not record the verification in the manifest: %s", exc)
    if problem:
        return SnapshotStatus(snapshot_id, "missing" if problem.startswith("file missing") else "damaged",
                              problem, manifest)
    return SnapshotStatus(snapshot_id, "verified", "", manifest)


def _find_damage(snapshot_id, manifest, path, full):
    if manifest.id != snapshot_id or manifest.file != os.path.basename(path):
        return "manifest describes %s, not %s" % (manifest.file, os.path.basename(path))
    if not os.path.exists(path):
        return "file missing: %s" % path
    size = os.path.getsize(path)
    if size != manifest.size:
        return "size %d bytes, manifest says %d (truncated or appended)" % (size, manifest.size)
    if path.endswith(".sql"):
        reader = SnapshotReader(path)
        digest, problem = run_parallel([lambda: sha256_of(path), lambda: reader.check(full)])
        counts = reader.counts
    else:
        digest, problem = run_parallel([lambda: sha256_of(path), lambda: sqlite_check(path, full)])
    if digest != manifest.sha256:
        return "SHA-256 differs from the manifest (the file changed after it was written)"
    if problem:
        return problem
    try:
        counts = counts if path.endswith(".sql") else count_rows(path)
    except sqlite3.DatabaseError as exc:
        return "cannot count rows: %s" % exc
    if counts != manifest.tables:
        wrong = sorted(set(counts.items()) ^ set(manifest.tables.items()))
        return "row counts differ from the manifest: %s" % ", ".join("%s=%s" % kv for kv in wrong[:4])
    return ""


def belongs_to(status, address):
    """Is this snapshot one of `address`'s? (None: every snapshot in the folder counts.)"""
    if address is None:
        return True
    if status.manifest is None:
        return False  # no manifest: nobody can tell whose it is, so it is never restored or pruned as ours
    if status.manifest.kind == LEGACY_KIND:
        return True  # the old tool's: it never said whose; shown to all, restored only by its id
    return status.manifest.owner == address.key()


# -- the old tool's snapshots: <id>.db beside <id>_metadata.json, no checksum ---------------------

LEGACY_ID = re.compile(r"^snapshot_\d{8}_\d{6}$")
LEGACY_KIND = "legacy"


def _legacy_manifest(directory, snapshot_id):
    """A manifest for a snapshot the Experiment Manager's own tool wrote, from its metadata file.
    It says nothing of its source, so it is every database's to see and restore by its id."""
    path = os.path.join(directory, snapshot_id + ".db")
    meta_path = os.path.join(directory, snapshot_id + "_metadata.json")
    meta = {}
    try:
        with open(meta_path, encoding="utf-8") as handle:
            meta = json.load(handle)
    except (OSError, ValueError):
        pass
    meta = meta if isinstance(meta, dict) else {}
    created = str(meta.get("created_at") or "")
    try:  # str(datetime) in local time, as the old tool wrote it
        created = datetime.datetime.fromisoformat(created).astimezone(datetime.timezone.utc).isoformat()
    except ValueError:
        stamp = datetime.datetime.strptime(snapshot_id, "snapshot_%Y%m%d_%H%M%S")
        created = stamp.astimezone(datetime.timezone.utc).isoformat()
    size = os.path.getsize(path) if os.path.exists(path) else 0
    return SnapshotManifest(snapshot_id, created, str(meta.get("description") or ""), {"backend": "unknown"},
                            "sqlite", "", 0, {}, size, "", os.path.basename(path), format=LEGACY_KIND,
                            kind=LEGACY_KIND)


def _verify_legacy(directory, snapshot_id):
    """What can be checked without a checksum: a readable SQLite file, integrity_check, the tables."""
    manifest = _legacy_manifest(directory, snapshot_id)
    path = os.path.join(directory, manifest.file)
    if not os.path.exists(path):
        return SnapshotStatus(snapshot_id, "missing", "file missing: %s" % path, manifest)
    problem = sqlite_check(path, full=True)
    if not problem:
        try:
            manifest.tables = count_rows(path)
        except sqlite3.DatabaseError as exc:
            problem = "cannot count rows: %s" % exc
    if not problem and "EXPERIMENT" not in manifest.tables:
        problem = "no EXPERIMENT table: not a snapshot of an Experiment Manager database"
    if problem:
        return SnapshotStatus(snapshot_id, "damaged", problem, manifest)
    return SnapshotStatus(snapshot_id, "verified", "the old tool's snapshot: integrity_check and tables checked "
                          "(it has no checksum)", manifest)


def list_snapshots(directory, address=None):
    """The snapshots of `address` in a directory (every one when None), newest first, with a cheap
    status (manifest + size). Snapshots of other databases sharing the folder are never included."""
    if not os.path.isdir(directory):
        return []
    ids, legacy = set(), set()
    for name in os.listdir(directory):
        stem, ext = os.path.splitext(name)
        if LEGACY_ID.match(stem.replace("_metadata", "")) and ext in (".db", ".json"):
            legacy.add(stem.replace("_metadata", ""))
        elif ext in (".db", ".sql", ".json") and SNAPSHOT_ID.match(stem):  # emfix's ids only: never a user's file
            ids.add(stem)
    found = [SnapshotStatus(i, LEGACY_KIND, "the old tool's snapshot (no checksum)", _legacy_manifest(directory, i))
             for i in legacy if os.path.exists(os.path.join(directory, i + ".db"))]
    for snapshot_id in ids:
        path, manifest_path = _paths(directory, snapshot_id)
        if not os.path.exists(manifest_path):
            found.append(SnapshotStatus(snapshot_id, "incomplete", "no manifest (interrupted create?)"))
            continue
        try:
            manifest = read_manifest(directory, snapshot_id)
        except (ValueError, OSError) as exc:
            found.append(SnapshotStatus(snapshot_id, "damaged", "manifest unreadable: %s" % exc))
            continue
        if not os.path.exists(path):
            status = SnapshotStatus(snapshot_id, "missing", "file missing", manifest)
        elif os.path.getsize(path) != manifest.size:
            status = SnapshotStatus(snapshot_id, "damaged", "size differs from the manifest", manifest)
        elif manifest.damage:
            status = SnapshotStatus(snapshot_id, "damaged", manifest.damage, manifest)
        elif manifest.verified_at:
            status = SnapshotStatus(snapshot_id, "verified", "", manifest)
        else:
            status = SnapshotStatus(snapshot_id, "unverified", "", manifest)
        found.append(status)
    found = [s for s in found if belongs_to(s, address)]
    found.sort(key=lambda s: (s.manifest.created_at if s.manifest else "", s.id), reverse=True)
    return found


# -- create ------------------------------------------------------------------------------------

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


def _copy_mysql(db, graph, temp, progress):
    """Every table inside one consistent read, streamed in batches into the snapshot file; the read's place
    in the binary log (where the consistent snapshot starts)."""
    dst = sqlite3.connect(temp, isolation_level=None)
    try:
        dst.execute("CREATE TABLE %s (ordinal INTEGER, name TEXT PRIMARY KEY, ddl TEXT)" % META_TABLE)
        with db.consistent_read():
            position = db.stream_position(locked=False)
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
                    batch.append(tuple(portable(v) for v in row))
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
    return position


def _write_error(exc, directory):
    """Disk full, file too large, quota: one clear line; anything else stays a bug with a traceback."""
    text = str(exc)
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        text = exc.strerror
    elif not ("full" in text or "too large" in text or "disk" in text.lower()):
        return exc
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
                    label="snapshot", kind="snapshot", file_format=None, workers=2):
    """Write a snapshot of the database; return its manifest (verified when `verify`).

    A MySQL database is written as SQL text (`file_format="sql"`, the default) or as a SQLite file
    ("sqlite": slower, but it opens anywhere); a SQLite database is always a SQLite file."""
    progress = progress or NoProgress()
    directory = directory or default_snapshot_dir(address)
    snapshot_id = new_snapshot_id()
    as_sql = not address.is_sqlite and (file_format or "sql") == "sql"
    path = os.path.join(directory, snapshot_id + (".sql" if as_sql else ".db"))
    def opener():
        if as_sql:
            return open_reader(address, retry_policy)
        return open_database(address, readonly=True, retry_policy=retry_policy)

    with ConnectionPool(opener, size=workers if as_sql else 1) as pool, pool.connection() as db:
        pool.prepare(workers - 1 if as_sql else 0)  # the other readers connect while this one plans
        graph = discover_graph(db)
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise NotWritableError("cannot create snapshot directory %s: %s" % (directory, exc.strerror),
                             hint="choose another with --snapshot-dir") from None
        clear_stale_temps(directory, [address.path] if address.is_sqlite else [])
        _check_space(directory, int(_expected_size(db) * 1.05) + (1 << 20))
        try:
            with durable_file(path) as temp:
                progress.update("copying %s" % address.display(), force=True)
                position = None
                if as_sql:
                    written, digest, position = write_sql_snapshot(pool, db, graph, temp, progress=progress,
                                                                   workers=workers)
                    counts, problem = written, _check_sql_copy(temp, written, digest if verify else None)
                else:
                    if db.dialect == "sqlite":
                        _copy_sqlite(db, temp)
                    else:
                        position = _copy_mysql(db, graph, temp, progress)
                    digest, counts, problem = _check_sqlite_copy(temp, verify, address, progress)
                if problem:
                    raise DamagedInputError("the snapshot failed verification right after writing: %s" % problem,
                                            hint="the disk or the source may be damaged; nothing was kept")
                manifest = SnapshotManifest(
                    snapshot_id, utc_now(), description, address.to_dict(), db.dialect, __version__,
                    graph.generation, counts, os.path.getsize(temp), digest, os.path.basename(path),
                    verified_at=utc_now() if verify else None, kind=kind, source_key=address.key(), position=position)
        except (OSError, sqlite3.OperationalError) as exc:
            raise _write_error(exc, directory) from None
    try:
        write_manifest(directory, manifest)
    except OSError as exc:
        remove_own_file(path)
        raise NoSpaceError("cannot write the snapshot manifest: %s" % exc.strerror) from None
    progress.done()
    log.info("%s %s written (%d rows, %s)", label, snapshot_id, manifest.row_total, format_mb(manifest.size))
    return manifest


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


# -- restore -----------------------------------------------------------------------------------

def resolve_snapshot_id(directory, wanted, address=None):
    """An id, or `latest-valid`: the newest snapshot of `address` that passes verification, never a
    safety copy a restore took (restoring that would undo the restore)."""
    if wanted not in ("latest-valid", "latest"):
        return require_snapshot(directory, wanted)
    for status in list_snapshots(directory, address):
        if status.manifest is None or status.manifest.is_safety_copy or status.manifest.kind == LEGACY_KIND:
            continue
        if verify_snapshot(directory, status.id).status == "verified":
            return status.id
    others = len([s for s in list_snapshots(directory) if s.manifest is not None]) if address is not None else 0
    raise UsageError("no valid snapshot of %s in %s" % (address.display() if address else "this database", directory),
                     hint=("%d snapshots of other databases are there: `emfix snapshot list --snapshot-dir %s` "
                           "names them; restore one with --snapshot-id ID --from-other-database" % (others, directory))
                     if others else "create one with `emfix snapshot create`")


def restore_snapshot(address, directory=None, snapshot_id="latest-valid", *, safety_snapshot=True, retry_policy=None,
                     progress=None, allow_other_database=False):
    """Replace the database's content with a verified snapshot of it; the old content is kept first.

    A snapshot of another database is refused unless `allow_other_database`."""
    progress = progress or NoProgress()
    directory = directory or default_snapshot_dir(address)
    snapshot_id = resolve_snapshot_id(directory, snapshot_id, address)
    status = verify_snapshot(directory, snapshot_id)
    if status.status != "verified":
        raise DamagedInputError("snapshot %s cannot be restored: %s" % (snapshot_id, status.problem),
                                hint="nothing was changed; `emfix snapshot list` shows the others")
    manifest = status.manifest
    if manifest.source_dialect != ("sqlite" if address.is_sqlite else "mysql"):
        raise UsageError("snapshot %s is of a %s database; %s is %s" % (
            snapshot_id, manifest.source_dialect, address.display(), "SQLite" if address.is_sqlite else "MySQL"),
            hint="restore it into the same kind of database it was taken from")
    if manifest.kind == LEGACY_KIND and not address.is_sqlite:
        raise UsageError("snapshot %s is the old tool's (a SQLite file without its MySQL DDL); emfix restores it "
                         "into SQLite only" % snapshot_id, hint="restore it into a SQLite file, then `emfix migrate` "
                         "that into MySQL")
    if manifest.kind != LEGACY_KIND and manifest.owner != address.key() and not allow_other_database:
        raise UsageError("snapshot %s is of another database (%s), not of %s; nothing was changed" % (
            snapshot_id, _source_text(manifest), address.display()),
            hint="to put that content into this database anyway, add --from-other-database")
    path, _ = _paths(directory, snapshot_id)
    if not address.is_sqlite:  # before anything is emptied: will the tables as they are take its rows?
        check_restorable(address, path, snapshot_id, retry_policy)
    def take_safety():
        return _safety_snapshot(address, directory, snapshot_id, retry_policy) if safety_snapshot else None
    done = False
    if address.is_sqlite and os.path.exists(address.path) and not sqlite_check(address.path):
        progress.update("restoring %s" % snapshot_id, force=True)
        safety_id, done = restore_by_content(address.path, path, take_safety,
                                             retry_policy.deadline if retry_policy else 30.0)
    if not done:
        safety_id = take_safety()
    progress.update("restoring %s" % snapshot_id, force=True)
    partial = lambda error: partly_restored(error, address, safety_id, directory)  # noqa: E731
    if address.is_sqlite:
        method = ("by content under one write lock (the safety snapshot taken inside it)" if done else
                  _restore_sqlite(address, path, retry_policy))
        counts = count_rows(address.path)
    elif path.endswith(".sql"):
        counts, _ = load_sql_snapshot(address, path, retry_policy=retry_policy, progress=progress, partial=partial)
        method = "SQL text: tables emptied, then loaded over 2 connections"
    else:
        counts = load_sqlite_snapshot(address, path, retry_policy, progress, partial)
        method = "per-table transactions"
    progress.done()
    if counts != manifest.tables:
        raise DamagedInputError("after restoring %s the row counts differ from the snapshot" % snapshot_id,
                                hint="the safety snapshot %s holds the content from before" % safety_id)
    return RestoreResult(snapshot_id, safety_id, counts, method)


def _source_text(manifest):
    source = manifest.source if isinstance(manifest.source, dict) else {}
    if source.get("backend") == "sqlite" and source.get("path"):
        return source["path"]
    if source.get("url"):
        return source["url"]
    if source.get("host") or source.get("database"):
        return "%s:%s/%s" % (source.get("host") or "?", source.get("port") or "?", source.get("database") or "?")
    return "its manifest does not say which"


def _safety_snapshot(address, directory, snapshot_id, retry_policy):
    description = "safety copy before restoring %s" % snapshot_id
    try:
        return create_snapshot(address, directory, description=description, verify=True, retry_policy=retry_policy,
                               label="safety snapshot", kind="safety").id
    except DamagedInputError:
        if not address.is_sqlite or not os.path.exists(address.path):
            raise
    # The database is too damaged to snapshot: keep its raw bytes, marked as damaged.
    raw_id = new_snapshot_id()
    raw_path, _ = _paths(directory, raw_id)
    with durable_file(raw_path) as temp:
        shutil.copyfile(address.path, temp)
    write_manifest(directory, SnapshotManifest(
        raw_id, utc_now(), description + " (raw copy of a damaged database)", address.to_dict(), "sqlite", __version__,
        0, {}, os.path.getsize(raw_path), sha256_of(raw_path), os.path.basename(raw_path),
        damage="raw copy of a database that failed its integrity check", kind="raw", source_key=address.key()))
    return raw_id


def _restore_sqlite(address, snapshot_path, retry_policy):
    """Into the live file with the backup API (SQLite's own journal makes it all-or-nothing),
    or, when the file is missing or unreadable, a copy beside it renamed over it."""
    target = address.path
    if os.path.exists(target) and not sqlite_check(target):
        src = _open_snapshot_file(snapshot_path)
        try:
            timeout = retry_policy.deadline if retry_policy else 30.0
            dst = sqlite3.connect(target, timeout=timeout, isolation_level=None)
            try:
                src.backup(dst)
            finally:
                dst.close()
        except sqlite3.OperationalError as exc:
            raise _restore_error(target, exc) from None
        finally:
            src.close()
        return "backup API into the live file"
    try:
        with durable_file(target) as temp:
            shutil.copyfile(snapshot_path, temp)
            for suffix in ("-wal", "-shm", "-journal"):  # they belong to the damaged file, not to this one
                if os.path.exists(target + suffix):
                    os.remove(target + suffix)
    except OSError as exc:
        raise ConnectError("cannot restore into %s: %s; nothing was changed" % (target, exc.strerror or exc)) from None
    return "copy renamed over the file"


def _restore_error(target, exc):
    """What stopped a restore into a SQLite file, said as what it is (nothing was changed: SQLite rolled back)."""
    text = str(exc)
    if "locked" in text or "busy" in text:
        return DatabaseLockedError("cannot restore into %s: it is locked by another process; nothing was changed"
                                   % target, hint="stop the programs using it, or raise --lock-timeout")
    if "readonly" in text.replace(" ", "") or "read-only" in text:
        return ConnectError("cannot restore into %s: the file (or its folder) is read-only; nothing was changed"
                            % target, hint="restore as the database's owner, or make it writable")
    if "full" in text or "too large" in text:
        return NoSpaceError("cannot restore into %s: the disk is full; nothing was changed" % target,
                            hint="free some space (a restore needs room for SQLite's journal too)")
    return EmfixError("cannot restore into %s: %s; nothing was changed" % (target, text))


# -- prune -------------------------------------------------------------------------------------

UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_age(text):
    match = re.match(r"^\s*(-?\d+)\s*([dhm])\s*$", text or "")
    if not match:
        raise UsageError("%r is not an age" % text, hint="write it like 30d, 12h or 90m")
    n, unit = int(match.group(1)), match.group(2)
    if n < 0:
        raise UsageError("an age cannot be negative (%s)" % text.strip(), hint="write it like 30d, 12h or 90m")
    try:
        return datetime.timedelta(**{UNITS[unit]: n})
    except OverflowError:
        raise UsageError("%s is too long an age" % text.strip(), hint="at most 999999999 days") from None


def prune_snapshots(directory, *, keep=None, older_than=None, dry_run=False, now=None, address=None):
    """Delete old snapshots of `address` (without one: of each database in the folder, counted apart);
    the newest verified snapshot of each database is never deleted."""
    if keep is None and older_than is None:
        raise UsageError("prune needs --keep N or --older-than AGE", hint="e.g. --keep 10 or --older-than 30d")
    now = now or datetime.datetime.now(datetime.timezone.utc)
    by_owner = {}
    for status in list_snapshots(directory, address):
        if status.manifest is not None and status.manifest.kind != LEGACY_KIND:  # the old tool's: never pruned
            by_owner.setdefault(status.manifest.owner, []).append(status)
    protect = [address.path] if address is not None and address.is_sqlite else []
    deleted, kept, spared = [], [], []
    for snapshots in by_owner.values():
        protected = next((s.id for s in snapshots if s.status == "verified" and not s.manifest.is_safety_copy),
                         None) or next((s.id for s in snapshots if s.status == "verified"), None)
        for rank, status in enumerate(snapshots):
            created = _created(status.manifest)
            too_many = keep is not None and rank >= keep
            too_old = older_than is not None and created is not None and now - created > older_than
            if status.id != protected and (too_many or too_old) and _is_own_snapshot(directory, status.id, protect):
                deleted.append(status.id)
            else:
                kept.append(status.id)
                if too_many or too_old:
                    spared.append(status.id)
    leftovers = _dead_leftovers(directory, now, protect)
    if not dry_run:
        for snapshot_id in deleted:
            path, manifest_path = _paths(directory, snapshot_id)
            remove_own_file(manifest_path, protect)  # first: a file without manifest is never listed as usable
            remove_own_file(path, protect)
        for snapshot_id in leftovers:
            remove_own_file(_paths(directory, snapshot_id)[0], protect)
        clear_stale_temps(directory, protect)
        fsync_directory(directory)
    return PruneResult(deleted + leftovers, kept, dry_run, spared)


LEFTOVER_AGE = datetime.timedelta(hours=1)


def _is_own_snapshot(directory, snapshot_id, protect):
    """Both files of the snapshot are emfix's (named by its id pattern) and neither is the database."""
    return all(is_own_file(path, protect) for path in _paths(directory, snapshot_id))


def _dead_leftovers(directory, now, protect=()):
    """Snapshot files without a manifest (a create killed between its rename and its manifest) old enough
    that no create can still be writing it: never usable, so prune takes them away. Only files named as
    emfix names a snapshot: a user's file (backup.db, mydump.sql) or the database is never one."""
    found = []
    for status in list_snapshots(directory):
        if status.status != "incomplete":
            continue
        path = _paths(directory, status.id)[0]
        if not is_own_file(path, protect):
            continue
        try:
            written = datetime.datetime.fromtimestamp(os.path.getmtime(path), datetime.timezone.utc)
        except OSError:
            continue
        if now - written > LEFTOVER_AGE:
            found.append(status.id)
    return found


def _created(manifest):
    try:
        created = datetime.datetime.fromisoformat(str(manifest.created_at).replace("Z", "+00:00"))
    except ValueError:
        return None
    return created if created.tzinfo else created.replace(tzinfo=datetime.timezone.utc)
