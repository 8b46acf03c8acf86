"""Where snapshots live and whose they are: the folder (beside a SQLite file; per MySQL server and database
under emfix's state home), the listing, ownership, an id or `latest-valid` resolved, and prune."""

import dataclasses
import datetime
import logging
import os
import re
from typing import List

from ..errors import EmfixError, NotFoundError, UsageError
from ..fileutil import (
    SNAPSHOT_ID,
    clear_stale_temps,
    fsync_directory,
    is_own_file,
    remove_own_file,
    server_state_dir,
)
from .checks import verify_snapshot
from .legacy import LEGACY_ID, LEGACY_KIND, legacy_manifest
from .manifest import SnapshotStatus, read_manifest, snapshot_files

log = logging.getLogger(__name__)


@dataclasses.dataclass
class PruneResult:
    deleted: List[str]
    kept: List[str]
    dry_run: bool
    protected: List[str] = dataclasses.field(default_factory=list)  # kept past --keep/--older-than: newest verified


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


def list_snapshots(directory, address=None):
    """The snapshots of `address` in a directory (every one when None), newest first, with a cheap
    status (manifest + size). Snapshots of other databases sharing the folder are never included."""
    if not os.path.isdir(directory):
        if os.path.exists(directory):  # (round 32: "no snapshots in FILE", exit 0, for list and verify --all)
            raise NotFoundError("%s is a file, not a folder of snapshots" % directory,
                                hint="pass the folder the snapshots are in (--snapshot-dir)")
        return []
    ids, legacy = set(), set()
    for name in os.listdir(directory):
        stem, ext = os.path.splitext(name)
        if LEGACY_ID.match(stem.replace("_metadata", "")) and ext in (".db", ".json"):
            legacy.add(stem.replace("_metadata", ""))
        elif ext in (".db", ".sql", ".json") and SNAPSHOT_ID.match(stem):  # emfix's ids only: never a user's file
            ids.add(stem)
    found = [SnapshotStatus(i, LEGACY_KIND, "the old tool's snapshot (no checksum)", legacy_manifest(directory, i))
             for i in legacy if os.path.exists(os.path.join(directory, i + ".db"))]
    for snapshot_id in ids:
        path, manifest_path = snapshot_files(directory, snapshot_id)
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


def newest_safety_before(directory, address, snapshot_id):
    """The newest safety snapshot of `address` in `directory` older than `snapshot_id` (ids sort by time), or None:
    after a restore stopped twice, the one that holds what was there before the first (see partly_restored)."""
    older = [s.id for s in list_snapshots(directory, address)
             if s.manifest is not None and s.manifest.kind == "safety" and s.id < snapshot_id]
    return max(older) if older else None


def belongs_to(status, address):
    """Is this snapshot one of `address`'s? (None: every snapshot in the folder counts.)"""
    if address is None:
        return True
    if status.manifest is None:
        return False  # no manifest: nobody can tell whose it is, so it is never restored or pruned as ours
    if status.manifest.kind == LEGACY_KIND:
        return True  # the old tool's: it never said whose; shown to all, restored only by its id
    return status.manifest.owner == address.key()


def require_snapshot(directory, snapshot_id):
    """The id, when a snapshot by it is in `directory` (whole or not); NotFoundError (exit 3, as a
    missing database file) when there is none."""
    path, manifest_path = snapshot_files(directory, snapshot_id)
    if not (os.path.exists(manifest_path) or os.path.exists(path)):
        raise NotFoundError("no snapshot %s in %s" % (snapshot_id, directory),
                            hint="`emfix snapshot list` shows the snapshots there")
    return snapshot_id


def resolve_snapshot_id(directory, wanted, address=None):
    """An id, or `latest-valid`: the newest snapshot of `address` that passes verification, never a
    safety copy a restore took (restoring that would undo the restore)."""
    if wanted not in ("latest-valid", "latest"):
        return require_snapshot(directory, wanted)
    return verified_snapshot(directory, wanted, address)[0]


def verified_snapshot(directory, wanted, address=None):
    """(id, its verification status) of `wanted` as resolve_snapshot_id finds it: each file read once (a restore
    checks the one it takes; `latest-valid` has checked it already)."""
    if wanted not in ("latest-valid", "latest"):
        snapshot_id = require_snapshot(directory, wanted)
        return snapshot_id, verify_snapshot(directory, snapshot_id)
    for status in list_snapshots(directory, address):
        if status.manifest is None or status.manifest.is_safety_copy or status.manifest.kind == LEGACY_KIND:
            continue
        checked = verify_snapshot(directory, status.id)
        if checked.status == "verified":
            return status.id, checked
    listed = [s for s in list_snapshots(directory) if s.manifest is not None] if address is not None else []
    own = len([s for s in listed if s.manifest.owner == address.key()])
    others = len(listed) - own
    if own:  # an outside tester: damaged snapshots of this database were counted as "of other databases"
        hint = ("its %d snapshot(s) there are safety copies or fail their check: `emfix snapshot list --snapshot-dir "
                "%s` says which; restore one by --snapshot-id ID" % (own, directory))
    elif others:
        hint = ("%d snapshots of other databases are there: `emfix snapshot list --snapshot-dir %s` names them; "
                "restore one with --snapshot-id ID --from-other-database" % (others, directory))
    else:
        hint = "create one with `emfix snapshot create`"
    raise UsageError("no valid snapshot of %s in %s" % (address.display() if address else "this database", directory),
                     hint=hint)


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
    named = named_by_unfinished_restore(address)
    deleted, kept, spared = [], [], []
    for snapshots in by_owner.values():
        protected = next((s.id for s in snapshots if s.status == "verified" and not s.manifest.is_safety_copy),
                         None) or next((s.id for s in snapshots if s.status == "verified"), None)
        for rank, status in enumerate(snapshots):
            created = _created(status.manifest)
            too_many = keep is not None and rank >= keep
            too_old = older_than is not None and created is not None and now - created > older_than
            if status.id != protected and status.id not in named and (too_many or too_old) and _is_own_snapshot(
                    directory, status.id, protect):
                deleted.append(status.id)
            else:
                kept.append(status.id)
                if too_many or too_old:
                    spared.append(status.id)
    leftovers = _dead_leftovers(directory, now, protect)
    if not dry_run:
        for snapshot_id in deleted:
            path, manifest_path = snapshot_files(directory, snapshot_id)
            remove_own_file(manifest_path, protect)  # first: a file without manifest is never listed as usable
            remove_own_file(path, protect)
        for snapshot_id in leftovers:
            remove_own_file(snapshot_files(directory, snapshot_id)[0], protect)
        clear_stale_temps(directory, protect)
        fsync_directory(directory)
    return PruneResult(deleted + leftovers, kept, dry_run, spared)


def named_by_unfinished_restore(address):
    """The snapshots a MySQL restore that did not finish names (the one to run again, the safety snapshot of what was
    there before): doctor's way out, which prune once deleted (an outside tester). None named where the database
    cannot be asked (said)."""
    if address is None or address.is_sqlite:
        return set()
    from ..backends import open_database
    from .restoremark import unfinished_restore
    try:
        with open_database(address, readonly=True) as db:
            found = unfinished_restore(db)
    except EmfixError as exc:
        log.warning("could not ask %s whether a restore did not finish (%s): prune keeps by --keep and --older-than "
                    "alone", address.display(), exc.message)
        return set()
    return {found.get("snapshot_id"), found.get("safety_snapshot_id")} - {None} if found else set()


LEFTOVER_AGE = datetime.timedelta(hours=1)


def _is_own_snapshot(directory, snapshot_id, protect):
    """Both files of the snapshot are emfix's (named by its id pattern) and neither is the database."""
    return all(is_own_file(path, protect) for path in snapshot_files(directory, snapshot_id))


def _dead_leftovers(directory, now, protect=()):
    """Snapshot files without a manifest (a create killed between its rename and its manifest) old enough
    that no create can still be writing it: never usable, so prune takes them away. Only files named as
    emfix names a snapshot: a user's file (backup.db, mydump.sql) or the database is never one."""
    found = []
    for status in list_snapshots(directory):
        if status.status != "incomplete":
            continue
        path = snapshot_files(directory, status.id)[0]
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
