"""The rows of an SQL snapshot's INSERTs, checked from the file's text alone (verify), not from the row
counts the server gave when it was written: a page the server cut off has its last value cut too.

The snapshot writer (sqltext.py) writes each row as `(v,v,...)`, every value one of: a QUOTE()d
string (`'...'`, a quote or backslash in it escaped by a backslash), `X'hex'`, `NULL`, a number.
`last_row_problem` reads an INSERT's last row backwards (a few kB per statement: every verify);
`count_insert_rows` reads every row (strings taken out by one regular expression, in C; verify --full).
"""

import re

IDENTIFIER = rb"`((?:[^`]|``)+)`"
HEAD = re.compile(rb"INSERT INTO " + IDENTIFIER + rb" \(((?:`(?:[^`]|``)+`(?:, )?)+)\) VALUES (?=\()")
COLUMN = re.compile(IDENTIFIER)
STRING = re.compile(rb"'[^'\\]*(?:(?:\\.|'')[^'\\]*)*'", re.S)
NUMBER = rb"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
VALUE = rb"(?:X?''|NULL|" + NUMBER + rb")"
BARE = re.compile(rb"NULL|" + NUMBER)  # a value that is not quoted
BARE_BYTES = frozenset(b"-+0123456789.eENUL")
QUOTE, BACKSLASH, COMMA, OPEN, CLOSE, HEX = b"'\\,()X"
TAIL_BYTES = 64 << 10  # what verify reads of an INSERT's end to see its last row whole
_ROWS = {}


def _head(statement):
    """(table, number of columns) of an INSERT as the snapshot writes them; ValueError when it is not one."""
    head = HEAD.match(statement)
    if not head:
        raise ValueError("an INSERT does not start as the snapshot writes them")
    return head, head.group(1).replace(b"``", b"`").decode("utf-8", "replace"), len(COLUMN.findall(head.group(2)))


def rows_pattern(width):
    """The rows of an INSERT of `width` columns once its strings are emptied: `(v,v),(v,v)`."""
    if width not in _ROWS:
        row = rb"\(" + VALUE + (rb"(?:," + VALUE + rb"){%d}" % (width - 1) if width > 1 else b"") + rb"\)"
        _ROWS[width] = re.compile(row + rb"(?:," + row + rb")*")
    return _ROWS[width]


def count_insert_rows(statement):
    """(table, number of rows) of one whole INSERT (bytes, without its `;`); ValueError saying what is
    wrong when it is not whole rows of literals."""
    head, table, width = _head(statement)
    skeleton = STRING.sub(b"''", memoryview(statement)[head.end():])
    if not rows_pattern(width).fullmatch(skeleton):
        raise ValueError("an INSERT into %s holds a row that is cut off or not %d values" % (table, width))
    return table, skeleton.count(b"),(") + 1


def _escaped(text, at):
    """Is the quote at `at` escaped (an odd number of backslashes before it)? None: the text starts first."""
    start = at
    while at > 0 and text[at - 1] == BACKSLASH:
        at -= 1
    return None if at == 0 else bool((start - at) % 2)


def last_row_problem(head, tail=None):
    """'' when `tail` (the last bytes of an INSERT, without its `;`) ends with one whole row of as many
    values as `head` (its first bytes) names columns; None when that row starts before `tail` does (read
    more); else what is wrong. Without `tail`, `head` is the whole statement."""
    try:
        _, table, width = _head(head)
    except ValueError as exc:
        return str(exc)
    cut = "the last row of an INSERT into %s is cut off" % table
    if tail is not None:
        return _last_row(tail, width, cut)
    problem = _last_row(head, width, cut)
    return cut if problem is None else problem  # None: the statement holds no row where it should


def _last_row(tail, width, cut):
    at, values = len(tail) - 1, 0
    if at < 0 or tail[at] != CLOSE:
        return cut
    at -= 1
    while at > 0:
        if tail[at] == QUOTE:  # a string (or X'hex'): back to the quote that opens it
            escaped = _escaped(tail, at)
            if escaped is not False:
                return None if escaped is None else cut
            opening = tail.rfind(b"'", 0, at)
            while opening > 0 and _escaped(tail, opening):
                opening = tail.rfind(b"'", 0, opening)
            if opening <= 0 or _escaped(tail, opening) is None:
                return None
            at = opening - 1
            if tail[at] == HEX:
                at -= 1
        else:
            end = at
            while at >= 0 and tail[at] in BARE_BYTES:
                at -= 1
            if at < 0:
                return None
            if not BARE.fullmatch(tail, at + 1, end + 1):
                return cut
        values += 1
        if at <= 0:
            return None
        if tail[at] == COMMA:
            at -= 1
        elif tail[at] == OPEN and values == width:
            return "" if tail[at - 1:at] in (b",", b" ") else cut
        else:
            return cut
    return None


def last_row_problem_at(handle, start, size):
    """`last_row_problem` of the statement of `size` bytes (its `;\n` included) at `start` in a file: its
    first and last TAIL_BYTES read, all of it only when its last row is longer. '' for other statements."""
    handle.seek(start)
    head = handle.read(min(size, TAIL_BYTES))
    if not head.startswith(b"INSERT"):
        return ""
    if size > 2 * TAIL_BYTES:
        handle.seek(start + size - TAIL_BYTES)
        problem = last_row_problem(head, handle.read(TAIL_BYTES)[:-2])
        if problem is not None:
            return problem
    if len(head) < size:
        handle.seek(start)
        head = handle.read(size)
    return last_row_problem(head[:-2]) if head.endswith(b";\n") else ""
