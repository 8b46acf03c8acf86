"""Files written the careful way: temporary name, fsync, rename, then fsync the directory.

Every file emfix writes goes through `durable_output` (or `atomic_write_text`), so there is one
temporary-name scheme (`.NAME.emfix-PID.tmp`) and one sweep (`clear_stale_temps`) that knows it.
Which paths may be written at all (a user's `-o`, the history) is outputguard.py's. Deletes go through
`remove_own_file`: only a file named as emfix names its own (a snapshot id, its temporary marker) is ever deleted,
and never the database.
"""

import contextlib
import errno
import logging
import os
import re
import sqlite3
import stat
import time

from .errors import NoSpaceError, NotWritableError, OperationInterrupted, Terminated, UsageError
from .retry import STOP_WAITING, TERMINATE

log = logging.getLogger(__name__)

DATA_FILE_MODE = 0o600  # reports, exports, snapshots, quarantines: they hold the database's data
SQLITE_HEADER = b"SQLite format 3\x00"
SQL_SNAPSHOT_HEADER = b"-- emfix-sql-snapshot-"  # the first bytes of a MySQL snapshot's SQL text
TEMP_NAME = re.compile(r"^\..+\.emfix-(\d+)\.tmp$")
# A snapshot's id (snapshot.new_snapshot_id: UTC time to the microsecond, 6 random hex digits) with the
# extension of its data file or manifest: the only names `snapshot prune` ever deletes.
SNAPSHOT_ID = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{6}$")
SNAPSHOT_FILE = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{6}\.(?:db|sql|json)$")
# Temporary names older emfix versions used in a snapshot folder (only for a snapshot's own files).
LEGACY_TEMP_NAMES = (re.compile(r"^\.\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{6}\.(?:db|sql|json)\.tmp-(\d+)$"),
                     re.compile(r"^\..+\.emfix-restore-(\d+)\.tmp$"))
FULL_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def fsync_directory(path):
    try:
        fd = os.open(path or ".", os.O_RDONLY)
    except OSError:
        return  # some platforms cannot open a directory; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


NAME_MAX = 255  # bytes in one file name, on the file systems emfix meets


def temp_path(path):
    """The temporary name emfix writes `path` under: same folder, hidden, marked with our pid. A name so long
    that the marks would pass the file system's limit keeps only its start (found by an outside tester: a
    250-byte `-o` name was "File name too long"); two such names of one process never share a temporary, as
    one file is written at a time."""
    directory, name = os.path.split(os.path.abspath(path))
    marks = ".emfix-%d.tmp" % os.getpid()
    room = NAME_MAX - 1 - len(marks.encode())
    encoded = os.fsencode(name)
    if len(encoded) > room:
        name = os.fsdecode(encoded[:room])  # (a character cut in two is bytes the file system takes as they are)
    return os.path.join(directory, ".%s%s" % (name, marks))


def create_private(path, mode=DATA_FILE_MODE):
    """Create an empty file that nobody else may read (before SQLite or anyone opens it)."""
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode))
    os.chmod(path, mode)  # O_CREAT honours the umask: make sure of the exact mode
    return path


STALE_TEMP_SECONDS = 600  # a sibling's temporary this long untouched, its process gone, was left by a kill


def new_temp(path, mode=DATA_FILE_MODE):
    """Create (exclusively) the temporary file for `path`, removing a stale one of ours first, and those
    earlier runs killed while writing `path` left beside it."""
    temp = temp_path(path)
    remove_own_file(temp)  # our pid's: left by a run killed before this one got its pid
    # Those of runs killed while they wrote the same name (a cron job's report under the OOM killer), untouched
    # for STALE_TEMP_SECONDS: a pid of another container or host sharing the folder looks gone here, but the
    # run it belongs to keeps its file fresh.
    directory, name = os.path.split(temp)
    clear_stale_temps(directory, prefix=name[:name.rindex(".emfix-") + len(".emfix-")], older_than=STALE_TEMP_SECONDS)
    return create_private(temp, mode)


def is_sqlite_file(path):
    if not os.path.isfile(path):  # a FIFO's open() waits for a writer (round 33)
        return False
    try:
        with open(path, "rb") as handle:
            return handle.read(16) == SQLITE_HEADER
    except OSError:
        return False


def is_disk_full(exc):
    """Whether an error means the disk is full: an OSError with ENOSPC, EFBIG (a file-size limit) or EDQUOT
    (a quota), or SQLite's "database or disk is full". Every mapping to NoSpaceError asks here."""
    if isinstance(exc, OSError):
        return exc.errno in FULL_ERRNOS
    return isinstance(exc, sqlite3.Error) and "disk is full" in str(exc).lower()


def no_space(exc, what):
    """A disk-full error as the one clear error (nothing half-written is kept), else None."""
    if is_disk_full(exc):
        return NoSpaceError("no space left writing %s: %s; nothing was kept" % (what, exc.strerror),
                            hint="free some space or write elsewhere")
    return None


def stdout_error(exc):
    """The clear error for a stdout that cannot take what is written (`> /dev/full`): exit 3, as for `-o` (round 54:
    exit 70)."""
    if is_disk_full(exc):
        return NoSpaceError("cannot write to stdout: %s" % (exc.strerror or exc),
                            hint="free some space, or write the output to a file with -o")
    return NotWritableError("cannot write to stdout: %s" % (exc.strerror or exc),
                            hint="write the output to a file with -o")


@contextlib.contextmanager
def durable_file(path, mode=DATA_FILE_MODE):
    """Yield a temporary path beside `path` to write (by any means: a handle, SQLite, a copy); when the
    block ends without error the file is fsynced and renamed onto `path`, then the folder is fsynced.
    On any error the temporary file is removed, and a full disk becomes NoSpaceError."""
    try:
        temp = new_temp(path, mode)
    except OSError as exc:
        raise no_space(exc, path) or NotWritableError("cannot write in %s: %s" % (
            os.path.dirname(os.path.abspath(path)), exc.strerror or exc), hint="choose a folder you can write to") \
            from None
    try:
        yield temp
        fsync_file(temp)
        os.replace(temp, path)
    except BaseException as exc:
        for leftover in (temp, temp + "-journal"):
            if os.path.exists(leftover):
                os.remove(leftover)
        full = no_space(exc, path)
        if full is not None:
            raise full from None
        raise
    fsync_directory(os.path.dirname(os.path.abspath(path)))


FIFO_WAIT = 0.05  # seconds between looks for a FIFO's reader


def _open_in_place(path, flags, encoding):
    """A device, FIFO or socket the user named, opened for writing. A FIFO without a reader is waited for a look at a
    time, so that Ctrl-C or SIGTERM ends the wait (round 46: open() waited in the kernel, and a SIGTERM was held
    until a reader came)."""
    try:
        fifo = stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        fifo = False
    if not fifo:
        return open(path, flags, encoding=encoding)
    waited = False
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # (no reader yet)
                raise
        if TERMINATE.is_set():
            raise Terminated()
        if STOP_WAITING.is_set():
            raise OperationInterrupted("stopped while waiting for a reader of %s" % path)
        if not waited:
            log.warning("waiting for a reader of %s (Ctrl-C to stop)", path)
        waited = True
        time.sleep(FIFO_WAIT)
    os.set_blocking(fd, True)
    return os.fdopen(fd, flags, encoding=encoding)


@contextlib.contextmanager
def durable_output(path, mode=DATA_FILE_MODE, binary=False, in_place=False):
    """A handle whose content replaces `path` only once it is complete and on disk (durable_file);
    `in_place` writes straight through (a device or FIFO the user named)."""
    flags, encoding = ("wb", None) if binary else ("w", "utf-8")
    if in_place:
        try:
            handle = _open_in_place(path, flags, encoding)
        except OSError as exc:  # a socket (ENXIO), a device that says no (round 34: exit 70)
            raise no_space(exc, path) or NotWritableError("cannot write %s: %s" % (path, exc.strerror)) from None
        try:
            with handle:
                yield handle
        except BrokenPipeError:  # a FIFO's reader that left early (round 46: exit 70)
            raise UsageError("cannot write %s: its reader went away" % path) from None
        except OSError as exc:  # /dev/full takes the open and refuses the write at the last flush (round 45: exit 70)
            full = no_space(exc, path)
            if full is not None:
                raise full from None
            raise
        return
    with durable_file(path, mode) as temp:
        with open(temp, flags, encoding=encoding) as handle:
            yield handle


def atomic_write_text(path, text, mode=DATA_FILE_MODE):
    with durable_output(path, mode) as handle:
        handle.write(text)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _temp_match(name):
    return TEMP_NAME.match(name) or next((m for m in (p.match(name) for p in LEGACY_TEMP_NAMES) if m), None)


def same_file(path, other):
    try:
        return os.path.samefile(path, other)
    except OSError:
        return False


def is_own_file(path, protect=()):
    """Is `path` a file emfix wrote, by its name (a snapshot or manifest named by emfix's snapshot id, or one
    of its temporary files), and none of the files in `protect` (the database a command was given, by any
    name or link)? Only such a file is ever deleted."""
    name = os.path.basename(path)
    if not (SNAPSHOT_FILE.match(name) or _temp_match(name)):
        return False
    return not any(other and same_file(path, other) for other in protect)


def remove_own_file(path, protect=()):
    """Delete a file emfix wrote (is_own_file); anything else is refused, never deleted. A file that is
    already gone is fine."""
    if not os.path.lexists(path):
        return False
    if not is_own_file(path, protect):
        raise UsageError("refusing to delete %s: emfix did not write it (or it is the database)" % path,
                         hint="emfix deletes only its own snapshots and temporary files; nothing was deleted")
    os.remove(path)
    return True


def clear_stale_temps(directory, protect=(), prefix="", older_than=0):
    """Remove the temporary files of emfix runs that were killed (their process is gone); only those whose
    name starts with `prefix` and that are `older_than` seconds untouched, when given."""
    try:
        names = [n for n in os.listdir(directory) if n.startswith(prefix)]
    except OSError:
        return []
    removed = []
    for name in names:
        match = _temp_match(name)
        path = os.path.join(directory, name)
        if match and not _pid_alive(int(match.group(1))) and is_own_file(path, protect):
            try:
                info = os.lstat(path)
                if not stat.S_ISREG(info.st_mode) or time.time() - info.st_mtime < older_than:
                    continue
                os.remove(path)
                removed.append(name)
            except OSError:
                pass
    return removed


def read_only_uri(path):
    """The URI that opens a SQLite file read-only, whatever characters its path holds (`?`, `#`, `%`), and however
    many slashes it begins with (`//tmp/x.db` after `file:` was an authority, "tmp", which SQLite refused)."""
    return "file://%s?mode=ro" % uri_path(os.path.abspath(path))


def uri_path(path):
    """`path` %-encoded for a SQLite file: URI, byte by byte: a name that is not UTF-8 (Latin-1, which Python
    holds as surrogates) crashed every command (round 54, exit 70)."""
    from urllib.parse import quote
    return quote(os.fsencode(path))


def sqlite_name(path):
    """`path` as a parameter SQLite reads as a file name (ATTACH): its bytes where it is not UTF-8 text (see
    uri_path; SQLite takes a BLOB's bytes as the name)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path)
    return path


def state_home():
    """emfix's own folder for state a cron job must find whatever its working directory:
    $XDG_STATE_HOME/emfix, by default ~/.local/state/emfix."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "emfix")


def server_state_dir(address, kind):
    """Where a MySQL database's snapshots or quarantines live by default: one folder per
    host:port/database under state_home(), the same from any working directory."""
    def part(text):
        return re.sub(r"[^A-Za-z0-9._-]", "_", str(text)) or "_"
    return os.path.join(state_home(), "mysql", "%s_%s" % (part(address.host or "localhost"), part(address.port)),
                        part(address.database or "_"), kind)
