"""Every link of an export file points at a row the file holds, key by key, checked while the file is read.

The trailer's lowest and highest ids bound where a link may point (importrefusals); a file edited and sealed again
could still lack a row inside that range, and its links would be imported pointing at nothing (outside testers:
three METRIC rows taken out; a BATCH, an EPOCH or a RESULTS row; a negative id; ids spread wide: validate found
the orphans after the import). Here, for each of the Experiment Manager's relations among the file's tables, the
keys the parent's rows hold are kept, and each key a child's row points at is looked up as it comes.

Kept in memory as bits: a key of one whole number in pages of 64 Ki numbers (METRIC.id); a composite key as a mask
of its first column's values (small, as EPOCH's and BATCH's idx) under the rest of it (BATCH: per trial run and
epoch). Export writes parents before children, so a link is found at once; one that is not yet waits (pending),
and is looked up again at the end. Anything else (a value that is not a whole number, a first column past
MASK_BITS, more pages or masks than the bounds, more links waiting than MAX_PENDING) goes to a private temporary
SQLite database on disk (sqlite3's "" file, deleted when closed): exact either way, and flat in memory.
"""

import operator
import sqlite3

from .schema import BUILTIN_RELATIONS
from .values import decode_value, whole

PAGE_BITS = 16  # numbers a page of bits covers: 2^16 (8 KiB)
LOW_BITS = (1 << PAGE_BITS) - 1
MAX_PAGES = 1024  # pages in all (8 MiB)
MASK_BITS = 4096  # a composite key's first column as a bit of its mask: 0 to 4095
MAX_MASKS = 65536  # masks in all (about 8 MiB)
MAX_PENDING = 10000  # links waiting for their parent's row, in memory
FLUSH_ROWS = 5000  # keys written to the temporary database at a time


class _Held:
    """The keys of one parent table's columns (`table`, `columns`)."""

    def __init__(self, name, table, columns):
        self.name, self.table, self.columns, self.width = name, table, columns, len(columns)
        self.pages, self.masks, self.odd = {}, {}, False

    def holds(self, key):
        """True, False, or None: only the store can tell."""
        if self.width == 1:
            value = key[0]
            if type(value) is not int:
                return None if self.odd else False
            page = self.pages.get(value >> PAGE_BITS)
            return page is not None and bool(page[(value & LOW_BITS) >> 3] & (1 << (value & 7)))
        first = key[0]
        if type(first) is not int or not 0 <= first < MASK_BITS or not all(type(v) is int for v in key[1:]):
            return None if self.odd else False
        return bool((self.masks.get(_rest(key), 0) >> first) & 1)


class LinkCheck:
    """Fed the header (begin) and each row (add) by exportfile.check_file; `missing()` gives, for each relation
    whose child points at a key the parent's rows in the file lack, the first such key. Tables the trailer says
    dangle are left out by the caller. Close it (or use it in a with block) to delete its temporary database."""

    def __init__(self):
        self.relations, self.watch, self.pages, self.masks = [], {}, 0, 0
        self.lacking_columns = []  # (relation, table, the columns of its link or its key the file lacks, which)
        self.twice = {}  # {(parent table, its key columns): the first key its rows hold twice}
        self.spilled = False  # every key in the store from then on
        self._store, self._waiting, self._made = None, {}, set()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self._store is not None:
            self._store.close()
            self._store = None

    def begin(self, header):
        """Which columns of which of the file's tables to watch (names matched in any letter case, as import matches
        them with the database's)."""
        tables = {t.lower(): t for t in header["columns"]}
        columns = {t: {c.lower(): i for i, c in enumerate(header["columns"][t])} for t in header["columns"]}
        held = {}
        for rel in BUILTIN_RELATIONS:
            child, parent = tables.get(rel.child.lower()), tables.get(rel.parent.lower())
            if child is None:
                continue
            lacking = [c for c in rel.child_columns if c.lower() not in columns[child]]
            if lacking:  # (round 39: EPOCH_METRIC without epoch_trial_run_id imported NULLs there, links lost)
                self.lacking_columns.append((rel, child, lacking, "its link to %s" % rel.parent))
                continue
            lacking = [c for c in rel.parent_columns if parent is not None and c.lower() not in columns[parent]]
            if lacking:  # (round 40: EPOCH without idx: SQLite took NULL there, and BATCH's links pointed at none)
                self.lacking_columns.append((rel, parent, lacking, "its key, which %s's links point at" % child))
                continue
            key = (rel.parent, rel.parent_columns)
            if key not in held:
                held[key] = _Held("h%d" % len(held), rel.parent, rel.parent_columns)
                if parent is not None:  # a parent table the file lacks holds no key (round 39: without EPOCH, its
                    self.watch.setdefault(parent, []).append((_getter(  # BATCH rows were imported pointing at none)
                        [columns[parent][c.lower()] for c in rel.parent_columns]), held[key], None))
            number = len(self.relations)
            self.relations.append((rel, held[key], "p%d" % number, []))
            self.watch.setdefault(child, []).append(
                (_getter([columns[child][c.lower()] for c in rel.child_columns]), held[key], number))

    def add(self, table, row):
        spilled = self.spilled
        for get, held, relation in self.watch.get(table, ()):
            if type(get) is int:  # one column: its value as a bit of a page
                value = row[get]
                if type(value) is int and not spilled:
                    page = held.pages.get(value >> PAGE_BITS)
                    if relation is None:
                        if page is None:
                            self._hold(held, (value,))
                        elif page[(value & LOW_BITS) >> 3] & (1 << (value & 7)):
                            self._twice(held, (value,))
                        else:
                            page[(value & LOW_BITS) >> 3] |= 1 << (value & 7)
                    elif page is None or not page[(value & LOW_BITS) >> 3] & (1 << (value & 7)):
                        self._pend(relation, (value,))
                    continue
                key = (value,)
            else:  # a composite key: its first column as a bit of the mask under the rest
                key = get(row)
                first = key[0]
                rest = _rest(key)
                if type(first) is int and 0 <= first < MASK_BITS and not spilled and (
                        type(rest) is int or _whole_numbers(rest)):
                    mask = held.masks.get(rest)
                    if relation is None:
                        if mask is None:
                            self._hold(held, key)
                        elif (mask >> first) & 1:
                            self._twice(held, key)
                        else:
                            held.masks[rest] = mask | (1 << first)
                    elif mask is None or not (mask >> first) & 1:
                        self._pend(relation, key)
                    continue
            if not _whole_numbers(key):
                key = tuple(whole(decode_value(v)) for v in key)
                if None in key:  # (a NULL in a foreign key's columns: no link)
                    continue
            if relation is None:
                self._hold(held, key)
            elif self.spilled or not held.holds(key):
                self._pend(relation, key)

    def _hold(self, held, key):
        if not self.spilled:
            first = key[0]
            if held.width == 1 and type(first) is int:
                page = held.pages.get(first >> PAGE_BITS)
                if page is None and self.pages < MAX_PAGES:
                    self.pages += 1
                    page = held.pages[first >> PAGE_BITS] = bytearray(1 << (PAGE_BITS - 3))
                if page is not None:
                    if page[(first & LOW_BITS) >> 3] & (1 << (first & 7)):
                        return self._twice(held, key)
                    page[(first & LOW_BITS) >> 3] |= 1 << (first & 7)
                    return
                return self._spill() or self._put(held.name, key)
            if held.width > 1 and type(first) is int and 0 <= first < MASK_BITS and _whole_numbers(key[1:]):
                rest = _rest(key)
                mask = held.masks.get(rest)
                if mask is None:
                    if self.masks >= MAX_MASKS:
                        return self._spill() or self._put(held.name, key)
                    self.masks += 1
                    mask = 0
                if (mask >> first) & 1:
                    return self._twice(held, key)
                held.masks[rest] = mask | (1 << first)
                return
            held.odd = True
        self._put(held.name, key)

    def _twice(self, held, key):
        self.twice.setdefault((held.table, held.columns), key)

    def _pend(self, number, key):
        pending = self.relations[number][3]
        if self.spilled or len(pending) >= MAX_PENDING:
            self._put(self.relations[number][2], key)
        else:
            pending.append(key)

    def _spill(self):
        """Every held key into the store, and every key from now on: the bounds are reached."""
        self.spilled = True
        for held in {id(h): h for _rel, h, _name, _pending in self.relations}.values():
            for number, page in held.pages.items():
                bits, base = int.from_bytes(page, "little"), number << PAGE_BITS
                while bits:
                    low = bits & -bits
                    self._put(held.name, (base + low.bit_length() - 1,))
                    bits ^= low
            for rest, mask in held.masks.items():
                while mask:
                    low = mask & -mask
                    self._put(held.name, (low.bit_length() - 1,) + (rest if type(rest) is tuple else (rest,)))
                    mask ^= low
            held.pages, held.masks, held.odd = {}, {}, True
        self.pages = self.masks = 0

    def _put(self, table, key):
        waiting = self._waiting.setdefault(table, [])
        waiting.append(tuple(_storable(v) for v in key))
        if len(waiting) >= FLUSH_ROWS:
            self._flush(table)

    def _flush(self, table):
        waiting = self._waiting.pop(table, None)
        if not waiting:
            return
        if self._store is None:
            self._store = sqlite3.connect("")  # a private temporary database on disk, deleted when closed
            self._store.execute("PRAGMA journal_mode = OFF")
            self._store.execute("PRAGMA synchronous = OFF")
        width = len(waiting[0])
        if table not in self._made:
            self._store.execute("CREATE TABLE %s (%s)" % (table, ", ".join("c%d" % i for i in range(width))))
            self._made.add(table)
        self._store.executemany("INSERT INTO %s VALUES (%s)" % (table, ", ".join("?" * width)), waiting)

    def missing(self):
        """[(relation, the first key (a tuple) its child points at that the parent's rows in the file lack)]."""
        for table in list(self._waiting):
            self._flush(table)
        for table in sorted(t for t in self._made if t.startswith("h")):
            width = len(self._store.execute("SELECT * FROM %s LIMIT 0" % table).description)
            self._store.execute("CREATE INDEX IF NOT EXISTS %s_keys ON %s (%s)" % (table, table, ", ".join(
                "c%d" % i for i in range(width))))
        for held in {id(h): h for _rel, h, _name, _pending in self.relations}.values():
            if held.name in self._made and (held.table, held.columns) not in self.twice:
                columns = ", ".join("c%d" % i for i in range(held.width))
                row = self._store.execute("SELECT %s FROM %s GROUP BY %s HAVING count(*) > 1 ORDER BY %s LIMIT 1" % (
                    columns, held.name, columns, columns)).fetchone()
                if row is not None:
                    self.twice[(held.table, held.columns)] = tuple(row)
        found = []
        for rel, held, name, pending in self.relations:
            lacking = [key for key in pending if not self._held(held, key)]
            if name in self._made:
                lacking += self._first_in_store(held, name, len(rel.child_columns))
            if lacking:
                found.append((rel, min(lacking, key=_in_order)))
        return found

    def _first_in_store(self, held, name, width):
        """The first key of the links waiting in table `name` that `held` lacks, as a list of none or one."""
        columns = ", ".join("c%d" % i for i in range(width))
        if self.spilled:  # every held key is in the store: one query
            if held.name not in self._made:
                row = self._store.execute("SELECT %s FROM %s ORDER BY %s LIMIT 1" % (columns, name, columns)).fetchone()
            else:
                row = self._store.execute(
                    "SELECT %s FROM %s p WHERE NOT EXISTS (SELECT 1 FROM %s h WHERE %s) ORDER BY %s LIMIT 1" % (
                        ", ".join("p.c%d" % i for i in range(width)), name, held.name,
                        " AND ".join("h.c%d = p.c%d" % (i, i) for i in range(width)),
                        ", ".join("p.c%d" % i for i in range(width)))).fetchone()
            return [] if row is None else [tuple(row)]
        for key in self._store.execute("SELECT DISTINCT %s FROM %s ORDER BY %s" % (columns, name, columns)):
            if not self._held(held, key):
                return [tuple(key)]
        return []

    def _held(self, held, key):
        known = held.holds(tuple(key))
        if known is not None and (known or not held.odd):
            return known
        if held.name not in self._made:
            return False
        where = " AND ".join("c%d = ?" % i for i in range(len(key)))
        return self._store.execute("SELECT 1 FROM %s WHERE %s LIMIT 1" % (held.name, where),
                                   [_storable(v) for v in key]).fetchone() is not None


def _getter(positions):
    """One position as it is (LinkCheck.add reads that value itself), several as a function giving their tuple."""
    return positions[0] if len(positions) == 1 else operator.itemgetter(*positions)


def _rest(key):
    """What a composite key's mask is kept under: its columns after the first (one as it is)."""
    return key[1] if len(key) == 2 else key[1:]


def _whole_numbers(values):
    """Is `values` (an int, or a tuple) whole numbers only, as ints?"""
    if type(values) is int:
        return True
    if type(values) is not tuple:
        return False
    for value in values:
        if type(value) is not int:
            return False
    return True


def _storable(value):
    """A key's value as SQLite keeps it exactly (an int past 64 bits, or anything else, as its text)."""
    if type(value) is int and -(1 << 63) <= value < (1 << 63):
        return value
    if type(value) in (str, float):
        return value
    return repr(value)


def _in_order(key):
    return tuple((0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v)) for v in key)
