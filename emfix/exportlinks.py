"""Every link of an export file points at a row the file holds, id by id, checked while the file is read.

The trailer's lowest and highest ids bound where a link may point (importrefusals); a file edited and sealed again
could still lack a row inside that range, and its links would be imported pointing at nothing (an outside tester:
three METRIC rows taken out, validate found the orphans after the import). Here each auto-increment table's ids are
bits, and each column holding one of its ids (through the Experiment Manager's relations) has bits beside them; a
bit set in a column's but not in its table's is a link to a row the file lacks. Bits in pages of 64 Ki ids, made
as ids arrive, in any order: memory follows the ids' spread, not the file's size (MAX_PAGES bounds it; past that,
the range check alone).
"""

from .idshift import id_owner
from .schema import BUILTIN_RELATIONS, EM_TABLE_BY_NAME, SchemaGraph
from .values import decode_value, whole

PAGE_BITS = 16  # ids a page of bits covers: 2^16 (8 KiB)
LOW_BITS = (1 << PAGE_BITS) - 1
MAX_PAGES = 2048  # pages in all (16 MiB): a file whose ids are spread wider is checked by their range alone


class _Bits:
    def __init__(self):
        self.pages = {}

    def first_missing_from(self, held):
        """The smallest id set here and not in `held`, or None."""
        for number in sorted(self.pages):
            page = int.from_bytes(self.pages[number], "little")
            other = held.pages.get(number)
            lacking = page & ~int.from_bytes(other, "little") if other is not None else page
            if lacking:
                return (number << PAGE_BITS) + ((lacking & -lacking).bit_length() - 1)
        return None


class LinkCheck:
    """Fed the header (begin) and each row (add) by exportfile.check_file; `missing()` names the first link to an id
    of an auto-increment table the file does not hold, for each column that has one. Tables the trailer says dangle
    are left out by the caller."""

    def __init__(self):
        self.ids, self.links, self.positions, self.pages = {}, {}, {}, 0

    def begin(self, header):
        tables, columns = header["tables"], header["columns"]
        graph = _graph_of(tables, columns)
        for table in tables:
            for position, column in enumerate(columns[table]):
                owner = id_owner(graph, table, column)
                if owner is None:
                    continue
                key = "id" if (table, column) == (owner, "id") else (table, column)
                bits = self.ids.setdefault(owner, _Bits()) if key == "id" else self.links.setdefault(
                    (table, column, owner), _Bits())
                self.positions.setdefault(table, []).append((position, bits))

    def add(self, table, row):
        for position, bits in self.positions.get(table, ()):
            value = row[position]
            if type(value) is not int:
                value = whole(decode_value(value))
                if type(value) is not int:  # (what is not a whole id is refused by its tally)
                    continue
            if value < 0:
                continue
            page = bits.pages.get(value >> PAGE_BITS)
            if page is None:
                page = self._new_page(bits, value)
                if page is None:
                    return
            page[(value & LOW_BITS) >> 3] |= 1 << (value & 7)

    def _new_page(self, bits, value):
        self.pages += 1
        if self.pages > MAX_PAGES:  # ids spread too wide: the range check alone
            self.positions, self.ids, self.links = {}, {}, {}
            return None
        page = bits.pages[value >> PAGE_BITS] = bytearray(1 << (PAGE_BITS - 3))
        return page

    def missing(self):
        """[(table, column, owner, the first id it holds that `owner`'s rows in the file lack)]."""
        found = []
        for (table, column, owner), bits in sorted(self.links.items()):
            held = self.ids.get(owner)
            if held is None:  # no rows of the owner in the file: importrefusals' range check says so
                continue
            first = bits.first_missing_from(held)
            if first is not None:
                found.append((table, column, owner, first))
        return found


def _graph_of(tables, columns):
    """The Experiment Manager's relations among the file's tables (spelled as the application spells them; a file
    spelling them otherwise is left to the range check)."""
    relations = [rel for rel in BUILTIN_RELATIONS if rel.child in columns and rel.parent in columns
                 and set(rel.child_columns) <= set(columns[rel.child])]
    keys = {t: EM_TABLE_BY_NAME[t].primary_key for t in tables if t in EM_TABLE_BY_NAME}
    return SchemaGraph(list(tables), relations, keys, {t: list(c) for t, c in columns.items()}, [], [])
