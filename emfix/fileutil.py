"""Files written the careful way: temporary name, fsync, rename, then fsync the directory.

Every file emfix writes goes through `durable_output` (or `atomic_write_text`), so there is one
temporary-name scheme (`.NAME.emfix-PID.tmp`) and one sweep (`clear_stale_temps`) that knows it.
`check_output_path` is the guard for paths a user names with `-o`: it never lets a report or an
export replace a database, a snapshot, a quarantine file, a device or a FIFO.
"""

import contextlib
import errno
import os
import re
import stat

from .errors import NoSpaceError, NotWritableError, UsageError

DATA_FILE_MODE = 0o600  # reports, exports, snapshots, quarantines: they hold the database's data
SQLITE_HEADER = b"SQLite format 3\x00"
SQL_SNAPSHOT_HEADER = b"-- emfix-sql-snapshot-"  # the first bytes of a MySQL snapshot's SQL text
TEMP_NAME = re.compile(r"^\..+\.emfix-(\d+)\.tmp$")
LEGACY_TEMP_NAMES = (re.compile(r"^\..+\.tmp-(\d+)$"), re.compile(r"^\..+\.emfix-restore-(\d+)\.tmp$"))
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


def temp_path(path):
    """The temporary name emfix writes `path` under: same folder, hidden, marked with our pid."""
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, ".%s.emfix-%d.tmp" % (name, os.getpid()))


def create_private(path, mode=DATA_FILE_MODE):
    """Create an empty file that nobody else may read (before SQLite or anyone opens it)."""
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode))
    os.chmod(path, mode)  # O_CREAT honours the umask: make sure of the exact mode
    return path


def new_temp(path, mode=DATA_FILE_MODE):
    """Create (exclusively) the temporary file for `path`, removing a stale one of ours first."""
    temp = temp_path(path)
    if os.path.lexists(temp):
        os.remove(temp)
    return create_private(temp, mode)


def is_sqlite_file(path):
    try:
        with open(path, "rb") as handle:
            return handle.read(16) == SQLITE_HEADER
    except OSError:
        return False


def _is_snapshot_manifest(path):
    if not path.endswith(".json"):
        return False
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    return b'"emfix-snapshot-' in head or b'"snapshot_id"' in head and b'"file_path"' in head


def check_output_path(path, protect=()):
    """Where a report or export named by the user may go: (real path, write in place?).

    Refuses to replace a database (`protect`, any SQLite file), a snapshot or its manifest, or a
    quarantine file. A symlink is followed (its target is what gets written). A device or FIFO is
    written through, never replaced by a regular file.
    """
    try:
        mode = os.stat(path).st_mode  # through links: /dev/stdout is a link to a pipe, not a file
    except OSError:
        mode = None
    if mode is not None and (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return path, True
    real = os.path.realpath(path)
    if os.path.isdir(real):
        raise UsageError("%s is a directory" % path, hint="give a file name, e.g. %s" % os.path.join(
            path, "report.json"))
    for other in protect:
        if other and os.path.exists(other) and os.path.exists(real) and os.path.samefile(real, other):
            raise UsageError("refusing to write over the database %s" % other,
                             hint="give -o another file name")
    if not os.path.exists(real):
        directory = os.path.dirname(real)
        if not os.path.isdir(directory):
            raise NotWritableError("cannot write %s: directory %s does not exist" % (path, directory))
        return real, False
    if stat.S_ISBLK(mode):  # (devices, FIFOs and sockets were written through above)
        raise UsageError("refusing to write to the block device %s" % path, hint="give -o a file name")
    if not stat.S_ISREG(mode):
        raise UsageError("%s is not a regular file" % path, hint="give -o a file name")
    if is_sqlite_file(real):
        raise UsageError("refusing to write over %s: it is a SQLite database (a database, snapshot or "
                         "quarantine file)" % path, hint="give -o another file name")
    with open(real, "rb") as handle:
        if handle.read(len(SQL_SNAPSHOT_HEADER)) == SQL_SNAPSHOT_HEADER:
            raise UsageError("refusing to write over %s: it is a snapshot (SQL text)" % path,
                             hint="give -o another file name")
    if _is_snapshot_manifest(real):
        raise UsageError("refusing to write over %s: it is a snapshot manifest" % path,
                         hint="give -o another file name")
    return real, False


def no_space(exc, what):
    """A disk-full OSError as the one clear error (nothing half-written is kept), else None."""
    if isinstance(exc, OSError) and exc.errno in FULL_ERRNOS:
        return NoSpaceError("no space left writing %s: %s; nothing was kept" % (what, exc.strerror),
                            hint="free some space or write elsewhere")
    return None


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


@contextlib.contextmanager
def durable_output(path, mode=DATA_FILE_MODE, binary=False, in_place=False):
    """A handle whose content replaces `path` only once it is complete and on disk (durable_file);
    `in_place` writes straight through (a device or FIFO the user named)."""
    flags, encoding = ("wb", None) if binary else ("w", "utf-8")
    if in_place:
        with open(path, flags, encoding=encoding) as handle:
            yield handle
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


def clear_stale_temps(directory):
    """Remove the temporary files of emfix runs that were killed (their process is gone)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    removed = []
    for name in names:
        match = TEMP_NAME.match(name) or next((m for m in (p.match(name) for p in LEGACY_TEMP_NAMES) if m), None)
        if match and not _pid_alive(int(match.group(1))):
            try:
                os.remove(os.path.join(directory, name))
                removed.append(name)
            except OSError:
                pass
    return removed
