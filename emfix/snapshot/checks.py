"""Checking a snapshot against its manifest: the file's SHA-256, SQLite's quick_check (integrity_check with
`full`) or the SQL text's statements, and its row counts; the old tool's snapshots, which have no
checksum, as far as they can be checked."""

import hashlib
import logging
import os
import sqlite3

from ..backends.sqlite import check_summary
from ..errors import UsageError
from ..fileutil import SQLITE_HEADER, read_only_uri
from ..pool import run_parallel
from ..progress import utc_now
from .legacy import LEGACY_ID, legacy_manifest
from .manifest import META_TABLE, SnapshotStatus, check_id, read_manifest, snapshot_files, source_text, write_manifest
from .sqlreader import SnapshotReader

log = logging.getLogger(__name__)


def sha256_of(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            block = handle.read(chunk)
            if not block:
                return digest.hexdigest()
            digest.update(block)


def open_snapshot_file(path):
    uri = read_only_uri(path)
    return sqlite3.connect(uri, uri=True)


def count_rows(path):
    con = open_snapshot_file(path)
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
        con = open_snapshot_file(path)
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
    path, manifest_path = snapshot_files(directory, snapshot_id)
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
            snapshot_id, source_text(manifest), address.display()),
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
        described = os.path.join(os.path.dirname(path), manifest.file)
        if manifest.id == snapshot_id and manifest.file in (snapshot_id + ".sql", snapshot_id + ".db") and not (
                os.path.exists(path) or os.path.exists(described)):  # its .sql gone: no .db was ever meant
            return "file missing: %s" % described
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


def _verify_legacy(directory, snapshot_id):
    """What can be checked without a checksum: a readable SQLite file, integrity_check, the tables."""
    manifest = legacy_manifest(directory, snapshot_id)
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
