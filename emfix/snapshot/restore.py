"""Restoring a snapshot: resolved and verified, refused when it is another database's or of another kind,
a safety snapshot of the content it replaces taken first, then the restore that fits: into a SQLite file
by content under one write lock (sqliterestore.py), with the backup API, or as a copy renamed over it;
into MySQL from SQL text or a SQLite file (mysqlrestore.py)."""

import dataclasses
import logging
import os
import shutil
import sqlite3
from typing import Dict, Optional

from ..backends.sqlite import refuse_what_is_no_file
from ..errors import ConnectError, DamagedInputError, DatabaseLockedError, EmfixError, NoSpaceError, UsageError
from ..fileutil import durable_file
from ..progress import NoProgress
from . import create
from .checks import count_rows, open_snapshot_file, sqlite_check
from .legacy import LEGACY_KIND
from .manifest import read_manifest, snapshot_files, source_text
from .mysqlrestore import check_restorable, load_sql_snapshot, load_sqlite_snapshot, partly_restored
from .restoremark import RestoreMark
from .sqliterestore import restore_by_content
from .store import default_snapshot_dir, require_snapshot, verified_snapshot

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RestoreResult:
    snapshot_id: str
    safety_snapshot_id: Optional[str]
    tables: Dict[str, int]
    method: str
    # this restore replaced the half a restore that did not finish left: the safety snapshot taken before that one
    # (the safety snapshot of this one holds the half; round 29: only that one was named)
    before_unfinished: Optional[str] = None


def restore_snapshot(address, directory=None, snapshot_id="latest-valid", *, safety_snapshot=True, retry_policy=None,
                     progress=None, allow_other_database=False, starting=None):
    """Replace the database's content with a verified snapshot of it; the old content is kept first.

    A snapshot of another database is refused unless `allow_other_database`. `starting(snapshot id)` is called once
    nothing refuses it, before the safety snapshot (the command says then what it restores: a refusal is its
    error alone, round 30)."""
    progress = progress or NoProgress()
    if address.is_sqlite:
        refuse_what_is_no_file(address.path)
    directory = directory or default_snapshot_dir(address)
    if snapshot_id not in ("latest-valid", "latest"):  # said before the check, which records its time (round 54)
        try:
            named = read_manifest(directory, require_snapshot(directory, snapshot_id))
        except (ValueError, OSError):
            named = None  # the check says what is wrong with it
        if named is not None:
            _refuse_as_source(address, snapshot_id, named, allow_other_database)
    snapshot_id, status = verified_snapshot(directory, snapshot_id, address)
    if status.status != "verified":
        raise DamagedInputError("snapshot %s cannot be restored: %s" % (snapshot_id, status.problem),
                                hint="nothing was changed; `emfix snapshot list` shows the others")
    manifest = status.manifest
    _refuse_as_source(address, snapshot_id, manifest, allow_other_database)
    path, _ = snapshot_files(directory, snapshot_id)
    if not address.is_sqlite:  # before anything is emptied: will the tables as they are take its rows?
        check_restorable(address, path, snapshot_id, retry_policy)
    if starting is not None:
        starting(snapshot_id)
    # MySQL: the restore lock, held to the end, and the mark written before anything is emptied (restoremark.py)
    mark = RestoreMark(address, retry_policy) if not address.is_sqlite else None
    try:
        safety_id, counts, method = _restore(address, directory, snapshot_id, path, manifest, safety_snapshot,
                                             retry_policy, progress, mark)
    except BaseException as exc:
        if mark is not None:
            _leave(mark, exc)
        raise
    if mark is not None:
        mark.finish()
    earlier = (mark.earlier or {}).get("safety_snapshot_id") if mark is not None else None
    return RestoreResult(snapshot_id, safety_id, counts, method, earlier)


def _restore(address, directory, snapshot_id, path, manifest, safety_snapshot, retry_policy, progress, mark):
    """The safety snapshot, then the restore that fits; (safety snapshot id, row counts, method)."""
    def take_safety():
        return create.safety_snapshot(address, directory, "restoring %s" % snapshot_id, retry_policy=retry_policy,
                                      before_restore=True) if safety_snapshot else None
    done, counted = False, None
    if address.is_sqlite and os.path.exists(address.path) and not sqlite_check(address.path):
        progress.update("restoring %s" % snapshot_id, force=True)
        safety_id, done, counted = restore_by_content(address.path, path, take_safety,
                                                      retry_policy.deadline if retry_policy else 30.0)
    if not done:
        safety_id = take_safety()
    progress.update("restoring %s" % snapshot_id, force=True)
    partial = lambda error: partly_restored(error, address, safety_id, directory,  # noqa: E731
                                            mark.earlier if mark is not None and mark.run_id else None)
    if mark is not None:
        mark.mark(snapshot_id, safety_id, directory)
        mark.loading = True  # from here a failure keeps the mark, unless the loader says nothing was changed
    guard = mark.still_held if mark is not None else None
    if address.is_sqlite:
        method = ("by content under one write lock (the safety snapshot taken inside it)" if done else
                  _restore_sqlite(address, path, retry_policy))
        counts = counted if done else count_rows(address.path)
    elif path.endswith(".sql"):
        counts, loaders = load_sql_snapshot(address, path, retry_policy=retry_policy, progress=progress,
                                            partial=partial, guard=guard)
        method = "SQL text: tables emptied, then loaded over %d connection%s" % (loaders, "" if loaders == 1 else "s")
    else:
        counts = load_sqlite_snapshot(address, path, retry_policy, progress, partial, guard)
        method = "per-table transactions"
    progress.done()
    if counts != manifest.tables:
        more = {t: n - manifest.tables.get(t, 0) for t, n in counts.items() if n != manifest.tables.get(t, 0)}
        if (mark is not None or not done and address.is_sqlite) and all(n > 0 for n in more.values()) and \
                set(manifest.tables) <= set(counts):  # (SQLite: the whole file restored, counted after its lock)
            # Every table loaded, and more rows than the snapshot's: the application inserted while it loaded (an
            # outside tester: the mark stayed, and doctor said "tables emptied, not all loaded"). Not a half.
            error = DamagedInputError(  # (round 56: rows an INSERT trigger made were said to be another program's)
                "restored snapshot %s, but more rows are there than it holds: %s (another program inserted them while "
                "it loaded, or an INSERT trigger of a restored table did, said before it began)" % (
                    snapshot_id, ", ".join("%s %+d" % (t, n) for t, n in sorted(more.items()))),
                hint="every row of the snapshot is loaded; for the snapshot alone, stop that program (a trigger's "
                     "rows come back with each restore) and restore again")
            error.every_row_loaded = True  # the mark goes (_leave)
            raise error
        raise DamagedInputError(  # loaded, but not as the snapshot says: the mark stays (_leave)
            "after restoring %s the row counts differ from the snapshot" % snapshot_id,
            hint="the safety snapshot %s holds the content from before" % safety_id if safety_id
            else "no safety snapshot was taken (--no-safety-snapshot); another program "
                 "writing meanwhile also changes the counts: stop it and restore again")
    return safety_id, counts, method


def _leave(mark, exc):
    """A MySQL restore that did not finish: its mark goes where every row was loaded (`every_row_loaded`: only more
    came) or nothing was changed for certain (before the loading began, or a loader that says it emptied nothing:
    `nothing_changed`), and stays in every other case
    (an outside tester: a second Ctrl-C inside the handling of the first deleted it, the database half-loaded)."""
    try:
        if getattr(exc, "every_row_loaded", False):
            mark.finish()
        elif not mark.loading or getattr(exc, "nothing_changed", False):
            mark.nothing_changed()
        else:
            mark.close()
    except Exception as failure:  # noqa: BLE001 - the restore's own error is the one to tell
        log.warning("could not end the restore's mark: %s", failure)


def _restore_sqlite(address, snapshot_path, retry_policy):
    """Into the live file with the backup API (SQLite's own journal makes it all-or-nothing),
    or, when the file is missing or unreadable, a copy beside it renamed over it."""
    target = address.path
    if os.path.exists(target) and not sqlite_check(target):
        src = open_snapshot_file(snapshot_path)
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


def _refuse_as_source(address, snapshot_id, manifest, allow_other_database):
    """A snapshot of another kind of database, the old tool's into MySQL, or another database's (unless allowed)."""
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
            snapshot_id, source_text(manifest), address.display()),
            hint="to put that content into this database anyway, add --from-other-database")
