"""emfix snapshot: consistent, checksummed, verified snapshots and a restore that cannot make things worse.

A snapshot is a data file (SQL text for MySQL, else a SQLite file) plus a JSON manifest beside it
(manifest.py). The file is written under a temporary name, fsynced and renamed into place; the manifest
is written the same way only after that, so a snapshot that is listed is complete (create.py, with
`safety_snapshot`, the verified one taken before every change). One file per job: store.py (where they
live, whose, prune), checks.py (verify), restore.py, legacy.py (the old tool's), sqltext.py with
sqlreader.py and sqlrows.py (MySQL as SQL text), mysqlrestore.py with restorefit.py and restoremark.py, and
sqliterestore.py.
"""

from .checks import count_rows, sha256_of, sqlite_check, verify_snapshot
from .create import create_snapshot, safety_snapshot
from .legacy import LEGACY_ID, LEGACY_KIND
from .manifest import FORMAT, SnapshotManifest, SnapshotStatus, check_id, new_snapshot_id, read_manifest, write_manifest
from .restore import RestoreResult, restore_snapshot
from .store import (
    PruneResult,
    belongs_to,
    default_snapshot_dir,
    list_snapshots,
    parse_age,
    prune_snapshots,
    require_snapshot,
    resolve_snapshot_id,
)

__all__ = ["FORMAT", "LEGACY_ID", "LEGACY_KIND", "PruneResult", "RestoreResult", "SnapshotManifest", "SnapshotStatus",
           "belongs_to", "check_id", "count_rows", "create_snapshot", "default_snapshot_dir", "list_snapshots",
           "new_snapshot_id", "parse_age", "prune_snapshots", "read_manifest", "require_snapshot",
           "resolve_snapshot_id", "restore_snapshot", "safety_snapshot", "sha256_of", "sqlite_check", "verify_snapshot",
           "write_manifest"]
