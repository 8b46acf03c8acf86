"""A junction table's row twice in an export file, found while the file is read, before anything is imported.

A parent's row twice is found by exportlinks (its keys are held anyway); a junction table's rows (BATCH_METRIC,
EPOCH_ARTIFACT, ...) are nobody's parent, and one written twice stopped the import at its batch with the rows before
it committed (round 40). Each junction row's key is its link to the hierarchy (the "left" columns) and the METRIC or
ARTIFACT id it links. Kept per linked id, in pages of 4 Ki ids: a 32-bit hash of the left columns. A second row for
the same id with the same hash is a suspect; an id legitimately linked from several rows keeps the hashes it met in a
small dict. Suspects (and any table past the bounds) are settled exactly by a second read of the file: the suspects'
rows compared whole in memory, a table past the bounds by GROUP BY in a private temporary SQLite database. A file
without such a row, the common case, is read once.
"""

import array
import operator
import sqlite3

from .schema import EM_TABLES
from .values import decode_value, whole

PAGE_BITS = 12  # ids a page covers: 2^12 (16 KiB of 32-bit hashes)
LOW_BITS = (1 << PAGE_BITS) - 1
MAX_PAGES = 1024  # pages in all (16 MiB)
MAX_SHARED = 100000  # hashes kept for ids linked from several rows, in all
FLUSH_ROWS = 5000

JUNCTIONS = {t.name.lower(): t for t in EM_TABLES if len(t.foreign_keys) == 2 and t.primary_key == t.column_names}


class _Junction:
    def __init__(self, table, columns, left, right):
        self.table, self.columns, self.left, self.right = table, columns, left, right
        self.pages, self.shared, self.suspects, self.past_bounds = {}, {}, set(), False
        self.get_left = None  # row -> its left columns' values, a tuple


class JunctionRowsTwice:
    """Fed the header (begin) and each row (add) by exportfile.check_file; `twice(path)` gives {(table, its key
    columns): the first key a row holds twice}, reading the file again only when a suspect needs it."""

    def __init__(self):
        self.watch, self.pages, self.shared = {}, 0, 0

    def begin(self, header):
        for table, columns in header["columns"].items():
            junction = JUNCTIONS.get(table.lower())
            if junction is None:
                continue
            at = {c.lower(): i for i, c in enumerate(columns)}
            if not all(c.lower() in at for c in junction.primary_key):  # (exportlinks refuses it)
                continue
            left = [at[c.lower()] for c in junction.primary_key[:-1]]
            watched = self.watch[table] = _Junction(table, junction.primary_key, left,
                                                    at[junction.primary_key[-1].lower()])
            watched.get_left = operator.itemgetter(*left) if len(left) > 1 else (lambda row, i=left[0]: (row[i],))

    def add(self, table, row):
        junction = self.watch.get(table)
        if junction is None or junction.past_bounds:
            return
        linked = row[junction.right]
        if type(linked) is not int:
            linked = whole(decode_value(linked))
            if type(linked) is not int:  # (NULL or no id: exportlinks and the value checks refuse it)
                return
        left = junction.get_left(row)
        for value in left:
            if type(value) is not int:
                left = tuple(_exact(v) for v in left)
                break
        mark = (hash(left) & 0xFFFFFFFF) or 1
        page = junction.pages.get(linked >> PAGE_BITS)
        if page is None:
            if self.pages >= MAX_PAGES:
                junction.past_bounds = True
                return
            self.pages += 1
            page = junction.pages[linked >> PAGE_BITS] = array.array("I", bytes(4 << PAGE_BITS))
        slot = linked & LOW_BITS
        first = page[slot]
        if not first:
            page[slot] = mark
            return
        marks = junction.shared.get(linked)
        if marks is None:
            if first == mark:
                junction.suspects.add(linked)
                return
            if self.shared >= MAX_SHARED:
                junction.past_bounds = True
                return
            junction.shared[linked] = {first, mark}
            self.shared += 2
        elif mark in marks:
            junction.suspects.add(linked)
        elif self.shared >= MAX_SHARED:
            junction.past_bounds = True
        else:
            marks.add(mark)
            self.shared += 1

    def twice(self, records):
        """{(table, key columns): the first key its rows hold twice, in the file's order}; `records` (called
        only when needed) gives the file's (number, line, record) again."""
        unsure = {t: j for t, j in self.watch.items() if j.suspects or j.past_bounds}
        if not unsure:
            return {}
        found, seen, store = {}, {t: set() for t in unsure}, None
        try:
            for _number, _line, record in records():
                table = record.get("table") if type(record) is dict else None
                junction = unsure.get(table)
                if junction is None or (junction.table, junction.columns) in found:
                    continue
                row = record["row"]
                key = tuple(_exact(row[i]) for i in junction.left + [junction.right])
                if junction.past_bounds:
                    store = store or _Store()
                    store.put(table, key)
                elif key[-1] in junction.suspects:
                    if key in seen[table]:
                        found[(junction.table, junction.columns)] = key
                    seen[table].add(key)
            for table, junction in unsure.items():
                if junction.past_bounds and (junction.table, junction.columns) not in found:
                    key = store.first_twice(table) if store else None
                    if key is not None:
                        found[(junction.table, junction.columns)] = key
        finally:
            if store is not None:
                store.close()
        return found


def _exact(value):
    """A key's value as the database compares it: a whole number as an int (2.0 is 2), anything else as read."""
    value = decode_value(value)
    number = whole(value)
    return number if type(number) is int else repr(value)


class _Store:
    """A private temporary SQLite database on disk (sqlite3's "" file, deleted when closed) for a table's keys."""

    def __init__(self):
        self.db, self.made, self.waiting = sqlite3.connect(""), {}, {}
        self.db.execute("PRAGMA journal_mode = OFF")
        self.db.execute("PRAGMA synchronous = OFF")

    def put(self, table, key):
        waiting = self.waiting.setdefault(table, [])
        waiting.append(tuple(v if type(v) is int and -(1 << 63) <= v < (1 << 63) else repr(v) for v in key))
        if len(waiting) >= FLUSH_ROWS:
            self._flush(table)

    def _flush(self, table):
        waiting = self.waiting.pop(table, None)
        if not waiting:
            return
        if table not in self.made:
            self.made[table] = "t%d" % len(self.made)
            self.db.execute("CREATE TABLE %s (n INTEGER PRIMARY KEY, %s)" % (
                self.made[table], ", ".join("c%d" % i for i in range(len(waiting[0])))))
        self.db.executemany("INSERT INTO %s VALUES (NULL, %s)" % (self.made[table], ", ".join("?" * len(waiting[0]))),
                            waiting)

    def first_twice(self, table):
        self._flush(table)
        if table not in self.made:
            return None
        name = self.made[table]
        width = len(self.db.execute("SELECT * FROM %s LIMIT 0" % name).description) - 1
        columns = ", ".join("c%d" % i for i in range(width))
        self.db.execute("CREATE INDEX %s_keys ON %s (%s, n)" % (name, name, columns))
        row = self.db.execute(  # the first row, in the file's order, whose key a row before it holds
            "SELECT %s FROM %s a WHERE EXISTS (SELECT 1 FROM %s b WHERE %s AND b.n < a.n) ORDER BY a.n LIMIT 1" % (
                ", ".join("a.c%d" % i for i in range(width)), name, name,
                " AND ".join("b.c%d = a.c%d" % (i, i) for i in range(width)))).fetchone()
        return None if row is None else tuple(row)

    def close(self):
        self.db.close()
