"""Reading an emfix SQL snapshot back: its statements in order, each whole (sqltext.py writes them), and the row
counts of its last line; `check` says what is wrong with a file, without changing anything."""

import json
import os
import re

from ..errors import DamagedInputError
from ..fileutil import SQL_SNAPSHOT_HEADER
from .sqlrows import count_insert_rows, last_row_problem_at

# One column's line of SHOW CREATE TABLE: its name (backticks doubled inside) and type
COLUMN_LINE = re.compile(r"^  `((?:[^`]|``)+)` ([a-z]+(?:\((?:[^()']|'(?:[^'\\]|\\.|'')*')*\))?(?: unsigned)?)",
                         re.M | re.I)


def ddl_column_names(ddl):
    """The columns of one SHOW CREATE TABLE text, in order."""
    return [m.group(1).replace("``", "`") for m in COLUMN_LINE.finditer(ddl)]

MAGIC = SQL_SNAPSHOT_HEADER + b"1"
END = b"-- emfix: complete "
FRAME = re.compile(rb"^-- (\d+)\n$")


class SnapshotReader:
    """The statements of a snapshot file, in order; `counts` (from its last line) once they are all read."""

    def __init__(self, path):
        self.path = path
        self.counts = None

    def damaged(self, what):
        return DamagedInputError("%s is not a whole emfix SQL snapshot: %s" % (self.path, what),
                                 hint="nothing was changed; `emfix snapshot list` shows the others")

    def frames(self, handle, read_bodies=True):
        """Each statement without its `;\n`; without `read_bodies`, only its last two bytes (and an INSERT's
        last row checked, see `_skim`)."""
        end = os.fstat(handle.fileno()).st_size
        if not handle.readline().startswith(MAGIC):
            raise self.damaged("it does not start with the emfix-sql-snapshot-1 line")
        while True:
            line = handle.readline()
            if line.startswith(END):
                if not line.endswith(b"\n") or handle.read(1):
                    raise self.damaged("its last line is cut off or followed by more bytes")
                try:
                    self.counts = json.loads(line[len(END):].decode("ascii"))["tables"]
                except (ValueError, KeyError, TypeError):
                    raise self.damaged("its last line is unreadable") from None
                return
            match = FRAME.match(line)
            if not match:
                raise self.damaged("it ends early or a statement's length line is broken")
            size = int(match.group(1))
            if size < 2 or size > os.fstat(handle.fileno()).st_size - handle.tell():  # 19 digits, or a seek back
                raise self.damaged("a statement is cut off (its length line says %d bytes)" % size)
            if read_bodies:
                body = handle.read(size)
            elif handle.tell() + size > end:
                raise self.damaged("a statement is cut off")
            else:
                body = self._skim(handle, size)
            if not body.endswith(b";\n") or read_bodies and len(body) != size:
                raise self.damaged("a statement is cut off")
            yield body[:-2]

    def statements_where(self, handle, keep, head=512):
        """The statements whose first `head` bytes `keep(first bytes)` accepts, in file order, each without its
        `;\n`; the others skipped unread (each loader of a restore reads the file for its own tables). The file
        is checked whole by `frames` beside it: this ends at the first line that is not a statement's length."""
        if not handle.readline().startswith(MAGIC):
            raise self.damaged("it does not start with the emfix-sql-snapshot-1 line")
        while True:
            match = FRAME.match(handle.readline())
            if not match:
                return
            size, start = int(match.group(1)), handle.tell()
            first = handle.read(min(size, head))
            if not keep(first):
                handle.seek(start + size)
                continue
            body = first + handle.read(size - len(first))
            if len(body) != size or not body.endswith(b";\n"):
                raise self.damaged("a statement is cut off")
            yield body[:-2]

    def _skim(self, handle, size):
        """The last two bytes of a statement of `size` bytes, the rest skipped (an INSERT's last row read)."""
        start = handle.tell()
        problem = last_row_problem_at(handle, start, size)
        if problem:
            raise self.damaged(problem)
        handle.seek(start + size - 2)
        return handle.read(2)

    def check(self, full=False):
        """'' when every statement is whole and the last line is there; else what is wrong. With `full`,
        every row of every INSERT is read and counted against the last line's counts."""
        found = {}
        try:
            with open(self.path, "rb") as handle:
                for statement in self.frames(handle, read_bodies=full):
                    if full and statement.startswith(b"INSERT"):
                        try:
                            table, rows = count_insert_rows(statement)
                        except ValueError as exc:
                            raise self.damaged(str(exc)) from None
                        found[table] = found.get(table, 0) + rows
        except DamagedInputError as exc:
            return exc.message.split(": ", 1)[-1]
        wrong = sorted(t for t in set(found) | set(self.counts) if full and found.get(t, 0) != self.counts.get(t))
        if wrong:
            return "its INSERTs hold other row counts than its last line names: %s" % ", ".join(
                "%s %d, not %s" % (t, found.get(t, 0), self.counts.get(t)) for t in wrong[:4])
        return ""


def tail_counts(path, reach=1 << 20):
    """The row counts the file's last line names, read from its end alone (a restore shares its tables among its
    loaders by them before reading the rest); None where that line is not there or not whole."""
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - reach))
            tail = handle.read()
        line = tail[tail.rindex(b"\n" + END) + 1:]
        counts = json.loads(line[len(END):].decode("ascii"))["tables"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    whole = isinstance(counts, dict) and all(isinstance(n, int) and not isinstance(n, bool) for n in counts.values())
    return counts if whole else None
