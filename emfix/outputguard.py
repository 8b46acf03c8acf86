"""The one guard for every path emfix writes where it is told (`-o`, `--template`, EMFIX_HISTORY): a report, an
export or a template never replaces a database or its -wal/-shm/-journal, a snapshot or its manifest, a quarantine
file, emfix's history, a device or a FIFO, nor a file of the user's without --force; the history is appended only to
a file that is one. What is written then goes through fileutil's durable files."""

import os
import sqlite3
import stat

from .errors import NotWritableError, UsageError
from .fileutil import SQL_SNAPSHOT_HEADER, durable_output, is_sqlite_file, read_only_uri, same_file
from .retry import LOCK_TURN, RetriesExhausted, RetryPolicy, call_with_retry, lock_wait_policy

ANOTHER_NAME = "give another file name"  # the hint when the guard refuses a path
HISTORY_FIRST_BYTES = b'{"when": '  # how every entry of emfix's history begins (history.record's first key)

MANIFEST_BYTES = 64 << 20  # a manifest names every table: read whole, however many there are


def _is_snapshot_manifest(path):
    """The whole file is read (an outside tester's manifest of 120 extra tables put the format past the first
    4 kB, and repair then wrote into that snapshot)."""
    if not path.endswith(".json"):
        return False
    try:
        with open(path, "rb") as handle:
            text = handle.read(MANIFEST_BYTES)
    except OSError:
        return False
    return b'"emfix-snapshot-' in text or b'"snapshot_id"' in text and b'"file_path"' in text


EMFIX_TABLES = {"_emfix_meta": "a quarantine file", "_emfix_snapshot": "a snapshot (of a MySQL database)"}


def emfix_file_kind(path, lock_timeout=5.0):
    """What of emfix's own a SQLite file is ("a snapshot", "a quarantine file"), or None: a database emfix is
    told to write into must be none of them (the write gate refuses them, whatever --force says). A file locked
    by another process is waited for up to `lock_timeout`, in short turns (a wait inside SQLite lets no Ctrl-C
    or SIGTERM through: found by an outside tester)."""
    real = os.path.realpath(path)
    stem = os.path.splitext(real)[0]
    if _is_snapshot_manifest(stem + ".json") or os.path.exists(stem + "_metadata.json"):
        return "a snapshot"
    if not is_sqlite_file(real):
        return None

    def table_names():
        con = sqlite3.connect(read_only_uri(real), uri=True, timeout=min(LOCK_TURN, lock_timeout))
        try:
            return {n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            con.close()
    try:
        names = call_with_retry(table_names, lock_wait_policy(RetryPolicy(deadline=lock_timeout)),
                                what="read %s" % real)
    except (sqlite3.Error, RetriesExhausted):
        return None  # what it is, the command that opens it says
    return next((kind for table, kind in EMFIX_TABLES.items() if table in names), None)


SIDECARS = ("-wal", "-shm", "-journal")


def _sidecar_of_database(real):
    """The SQLite file `real` is the -wal, -shm or -journal of (writing there corrupts it), else None."""
    for suffix in SIDECARS:
        if real.endswith(suffix) and is_sqlite_file(real[:-len(suffix)]):
            return real[:-len(suffix)]
    return None


def _names_directory(path):
    """`out/` or `out/.`, or a link (through any chain of links) whose target is written so: realpath drops
    that slash, and a file named `out` would be written where the user named a directory."""
    for _hop in range(40):  # the kernel's own limit on a chain of links
        if path.endswith(("/", os.sep)) or os.path.basename(path) in (".", ".."):  # `out/.` too
            return True
        try:
            target = os.readlink(path)
        except OSError:  # not a link (or nothing there): the name is what it says
            return False
        path = os.path.join(os.path.dirname(path), target)
    return False


def check_output_path(path, protect=(), *, force=False, replaceable=None):
    """The one guard for every file emfix writes where a user said (-o, --template): (real path, in place?).

    Refuses, whatever `force` says, to replace a database (`protect`, any SQLite file) or its -wal/-shm/
    -journal, a snapshot or its manifest, or a quarantine file. An existing file of the user's is replaced
    only with `force`, or when `replaceable(real)` says emfix wrote it as this same kind of output (an
    earlier report). A symlink is followed (its target is what gets written; a link to nothing is refused). A
    device or FIFO is written through, never replaced by a regular file.
    """
    if path == "-":  # export's `-o -` is stdout; here stdout holds the command's own output
        raise UsageError("-o - would be a file named '-' (stdout holds this command's own output)",
                         hint="use --json for the result on stdout, or name the file ./- if that is what you want")
    try:
        mode = os.stat(path).st_mode  # through links: /dev/stdout is a link to a pipe, not a file
    except OSError:
        mode = None
    if mode is not None and (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return path, True
    real = os.path.realpath(path)
    if os.path.isdir(real) or _names_directory(path):  # `out/` names a directory, never a file `out`
        raise UsageError("%s is a directory" % path if os.path.isdir(real) else "%s names a directory" % path,
                         hint="give a file name, e.g. %s" % os.path.join(path, "report.json"))
    if mode is None and os.path.islink(path):  # (round 60: written through to wherever it pointed, /nonexistent)
        raise UsageError("%s is a link to %s, which does not exist; nothing was written" % (
            path, os.readlink(path)), hint="remove the link or give another file name")
    for other in protect:
        if other and os.path.exists(real) and same_file(real, other):
            raise UsageError("refusing to write over the database %s" % other, hint=ANOTHER_NAME)
    database = _sidecar_of_database(real)
    if database is not None:
        raise UsageError("refusing to write %s: it belongs to the SQLite database %s" % (path, database),
                         hint=ANOTHER_NAME)
    if not os.path.exists(real):
        directory = os.path.dirname(real)
        if not os.path.isdir(directory):
            raise NotWritableError("cannot write %s: directory %s does not exist" % (path, directory))
        return real, False
    if mode is None:
        mode = os.stat(real).st_mode
    if stat.S_ISBLK(mode):  # (devices, FIFOs and sockets were written through above)
        raise UsageError("refusing to write to the block device %s" % path, hint="give a file name")
    if not stat.S_ISREG(mode):
        raise UsageError("%s is not a regular file" % path, hint="give a file name")
    if is_sqlite_file(real):
        raise UsageError("refusing to write over %s: it is a SQLite database (a database, snapshot or "
                         "quarantine file)" % path, hint=ANOTHER_NAME)
    with open(real, "rb") as handle:
        head = handle.read(max(len(SQL_SNAPSHOT_HEADER), len(HISTORY_FIRST_BYTES)))
    if head.startswith(SQL_SNAPSHOT_HEADER):
        raise UsageError("refusing to write over %s: it is a snapshot (SQL text)" % path, hint=ANOTHER_NAME)
    if head.startswith(HISTORY_FIRST_BYTES):  # (round 60: an export replaced it, and nothing was recorded since)
        raise UsageError("refusing to write over %s: it is emfix's history" % path, hint=ANOTHER_NAME)
    if _is_snapshot_manifest(real):
        raise UsageError("refusing to write over %s: it is a snapshot manifest" % path, hint=ANOTHER_NAME)
    if not force and not (replaceable is not None and replaceable(real)):
        raise UsageError("refusing to overwrite %s: the file exists; nothing was written" % path,
                         hint="give another file name, or add --force to replace it")
    return real, False


def write_output_text(path, text, protect=(), *, force=False, replaceable=None):
    """Write `text` where the user said, through the guard (check_output_path) and durably."""
    real, in_place = check_output_path(path, protect, force=force, replaceable=replaceable)
    with durable_output(real, in_place=in_place) as handle:
        handle.write(text)
    return real


def starts_with(prefix):
    """A `replaceable` test: the file begins with these bytes (an earlier output of the same kind)."""
    def test(real):
        try:
            with open(real, "rb") as handle:
                return handle.read(len(prefix)) == prefix
        except OSError:
            return False
    return test


def appendable(path, first_bytes):
    """The guard for a file emfix appends to (its history): nothing there yet, or a regular file that begins with
    `first_bytes` (one emfix wrote), or is empty and named as emfix names it (`.jsonl`: an empty file named as a
    database is an empty SQLite database, round 58; a GeoPackage's `.gpkg` too, round 59). Anything else (a database
    or its -journal/-wal/-shm, a snapshot, a user's file a variable named by mistake, a FIFO that would wait for a
    reader) is not written: an appended line corrupted it. A name ending as a database's -journal, -wal or -shm is
    never written, whatever is beside it (round 59: that of an empty database was, and SQLite then deleted it)."""
    real = os.path.realpath(path)
    if real.endswith(SIDECARS) or path.endswith(SIDECARS):
        return False
    try:
        mode = os.stat(path).st_mode  # (through links: their target is what would be written)
    except FileNotFoundError:
        return not os.path.islink(path)  # (a dangling link: its target would be created wherever it points)
    except OSError:
        return False
    if not stat.S_ISREG(mode):
        return False
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(first_bytes))
    except OSError:
        return False
    return head == first_bytes or (head == b"" and real.lower().endswith(".jsonl"))
