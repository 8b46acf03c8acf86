"""The old tool's snapshots: <id>.db beside <id>_metadata.json, no checksum, no word of whose they are.
emfix lists them for every database, verifies them as far as it can (checks.py), restores them by
their id into SQLite only, and never prunes them."""

import datetime
import json
import os
import re

from .manifest import SnapshotManifest

LEGACY_ID = re.compile(r"^snapshot_\d{8}_\d{6}$")
LEGACY_KIND = "legacy"


def legacy_manifest(directory, snapshot_id):
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
    return SnapshotManifest(id=snapshot_id, created_at=created, description=str(meta.get("description") or ""),
                            source={"backend": "unknown"}, source_dialect="sqlite", emfix_version="",
                            schema_generation=0, tables={}, size=size, sha256="", file=os.path.basename(path),
                            format=LEGACY_KIND, kind=LEGACY_KIND)
