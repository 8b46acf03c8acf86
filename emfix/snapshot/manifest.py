"""A snapshot as it lies in its folder: an id, a data file (SQL text for MySQL, else a SQLite file) and the
JSON manifest written after it, which makes it complete; the manifest's fields, read and written, and
SnapshotStatus, what a listing or a check says of one snapshot."""

import dataclasses
import datetime
import json
import os
import re
import secrets
from typing import Dict, Optional

from ..address import key_of_source
from ..errors import UsageError
from ..fileutil import atomic_write_text, is_own_file

PLAIN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
FORMAT = "emfix-snapshot-1"
PARTIAL_KIND = "partial"  # a snapshot of a MySQL database a restore had not finished (SnapshotManifest.kind)
META_TABLE = "_emfix_snapshot"  # only in SQLite-file snapshots of MySQL databases: source DDL per table


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
    kind: str = "snapshot"  # or "safety" (taken by restore before it overwrote), "raw" (bytes of a damaged file) or
    # "partial" (of a MySQL database a restore had not finished: what restoring the latest valid one must not bring)
    source_key: Optional[str] = None  # DatabaseAddress.key() of the source: whose snapshot this is
    position: Optional[dict] = None  # MySQL: the data's moment in the binlog (gtid, binlog_file, binlog_position)
    # MySQL: {table: engine} of the tables without transactions (MyISAM) read outside the snapshot's one moment (no
    # FLUSH TABLES WITH READ LOCK held while they were read): rows other programs wrote meanwhile may be in it partly
    not_in_moment: Optional[Dict[str, str]] = None

    @property
    def row_total(self):
        return sum(self.tables.values())

    @property
    def owner(self):
        return self.source_key or key_of_source(self.source)

    @property
    def is_safety_copy(self):
        return self.kind in ("safety", "raw", PARTIAL_KIND) or str(self.description).startswith(
            "safety copy before restoring")

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
                        position=m.position, not_in_moment=m.not_in_moment)
        return data


def new_snapshot_id(now=None):
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S.%fZ") + "-" + secrets.token_hex(3)


def check_id(snapshot_id):
    if not PLAIN_ID.match(snapshot_id or "") or ".." in snapshot_id:
        raise UsageError("%r is not a snapshot id" % snapshot_id,
                         hint="use an id from `emfix snapshot list` (letters, digits, . _ -)")
    return snapshot_id


def snapshot_files(directory, snapshot_id):
    """The snapshot's data file (SQL text for MySQL since #16, else a SQLite file) and its manifest."""
    check_id(snapshot_id)
    sql = os.path.join(directory, snapshot_id + ".sql")
    data = sql if os.path.exists(sql) else os.path.join(directory, snapshot_id + ".db")
    return data, os.path.join(directory, snapshot_id + ".json")


def read_manifest(directory, snapshot_id):
    _, manifest_path = snapshot_files(directory, snapshot_id)
    with open(manifest_path, encoding="utf-8") as handle:
        return SnapshotManifest.from_dict(json.load(handle))


def write_manifest(directory, manifest):
    """Written (or rewritten by verify) only under emfix's own name for it: never over a user's file."""
    _, manifest_path = snapshot_files(directory, manifest.id)
    if not is_own_file(manifest_path):
        raise UsageError("refusing to write %s: not a name emfix gives its snapshot manifests" % manifest_path,
                         hint="snapshot ids are written by `emfix snapshot create`")
    atomic_write_text(manifest_path, json.dumps(manifest.to_dict(), indent=2) + "\n", mode=0o600)


def source_text(manifest):
    source = manifest.source if isinstance(manifest.source, dict) else {}
    if source.get("backend") == "sqlite" and source.get("path"):
        return source["path"]
    if source.get("url"):
        return source["url"]
    if source.get("host") or source.get("database"):
        return "%s:%s/%s" % (source.get("host") or "?", source.get("port") or "?", source.get("database") or "?")
    return "its manifest does not say which"
