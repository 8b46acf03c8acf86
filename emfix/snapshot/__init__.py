"""emfix snapshot: consistent, checksummed, verified snapshots and a restore that cannot make things worse.

A snapshot is a data file (SQL text for MySQL, else a SQLite file) plus a JSON manifest beside it
(manifest.py). The file is written under a temporary name, fsynced and renamed into place; the manifest
is written the same way only after that, so a snapshot that is listed is complete (create.py, with
`safety_snapshot`, the verified one taken before every change). One file per job: store.py (where they
live, whose, prune), checks.py (verify), restore.py, legacy.py (the old tool's), sqltext.py with
sqlreader.py and sqlrows.py (MySQL as SQL text), mysqlrestore.py with restorefit.py and restoremark.py, and
sqliterestore.py.
"""

import importlib

# Each name and the module that holds it. Loaded when first asked for (PEP 562): `validate` reads one
# small module of this package (restoremark), and loading all of them slowed every start (with the HTML
# module's, 10 ms of each validate, 15 pairs).
_WHERE = {
    "checks": ("count_rows", "sha256_of", "sqlite_check", "verify_snapshot"),
    "create": ("create_snapshot", "safety_snapshot"),
    "legacy": ("LEGACY_ID", "LEGACY_KIND"),
    "manifest": ("FORMAT", "SnapshotManifest", "SnapshotStatus", "check_id", "new_snapshot_id", "read_manifest",
                 "write_manifest"),
    "restore": ("RestoreResult", "restore_snapshot"),
    "store": ("PruneResult", "belongs_to", "default_snapshot_dir", "list_snapshots", "parse_age", "prune_snapshots",
              "require_snapshot", "resolve_snapshot_id"),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}


def __getattr__(name):
    module = _MODULE_OF.get(name)
    if module is None:  # a module of the package (`snapshot.create`), as the eager imports made it an attribute
        try:
            return importlib.import_module("." + name, __name__)
        except ModuleNotFoundError as exc:
            if exc.name != "%s.%s" % (__name__, name):
                raise
            raise AttributeError("module %r has no attribute %r" % (__name__, name)) from None
    value = getattr(importlib.import_module("." + module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_MODULE_OF))


__all__ = ["FORMAT", "LEGACY_ID", "LEGACY_KIND", "PruneResult", "RestoreResult", "SnapshotManifest", "SnapshotStatus",
           "belongs_to", "check_id", "count_rows", "create_snapshot", "default_snapshot_dir", "list_snapshots",
           "new_snapshot_id", "parse_age", "prune_snapshots", "read_manifest", "require_snapshot",
           "resolve_snapshot_id", "restore_snapshot", "safety_snapshot", "sha256_of", "sqlite_check", "verify_snapshot",
           "write_manifest"]
