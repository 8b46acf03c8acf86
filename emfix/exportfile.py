"""An export file read back for import: every line checked, every value measured.

The file is read whole before anything is written: its header, each row's shape (a known table, as many values
as its columns, each value of a kind `emfix export` writes), its trailer's counts and SHA-256. While it is read,
each column's values are tallied (ValueTally), so that a MySQL database's columns can be held against them before
the first row goes in: a value the column would store changed, or refuse part way through the import, is refused
with nothing written (import_refusals).
"""

import base64
import binascii
import datetime
import decimal
import hashlib
import json
import math
import os
import re
import struct

from .errors import DamagedInputError, NotFoundError, UsageError
from .idshift import AUTO_ID_TABLES
from .values import DECIMAL_DIGITS, EXPORT_FORMAT, NOT_LATIN1, decode_value

# Where each tally of a column keeps what (ValueTally.columns[table][position] is a list of these)
LOW, HIGH = 0, 1  # the lowest and highest whole number
NOT_WHOLE = 2  # values that are not a whole number: text, bytes, a fraction, inf, nan
CHARACTERS, OCTETS = 3, 4  # the longest value: in characters, in UTF-8 bytes (numbers by their digits)
FOURS, SPACED, NOT_LATIN1_TEXT = 5, 6, 7  # text holding a 4-byte character, ending in a space, latin1 lacks
TEXTS, BLOBS, NUMBERS = 8, 9, 10  # values of each kind
MAGNITUDE, SCALE = 11, 12  # the largest absolute value of a number that is not whole (a whole one: LOW, HIGH), the
#                            most digits after the point
NOT_FINITE, NANS = 13, 14  # inf, -inf and nan; nan alone
DATETIMES, DATES = 15, 16  # text that is a valid 'YYYY-MM-DD HH:MM:SS[.ffffff]' ('T' between them too), 'YYYY-MM-DD'
NEGATIVES = 17  # numbers below 0 that are not whole (a whole one: LOW)
FRACTIONS = 18  # the most digits of a second (trailing zeros aside) in DATETIMES text
TINIEST = 19  # the smallest absolute value of a number that is not whole and not 0 (None: none)
NULLS = 20  # NULLs
NOT_UTF8 = 21  # bytes that are not UTF-8 text
SINGLE = 22  # numbers a single-precision FLOAT (the application's METRIC.total_val on MySQL) keeps otherwise
FLOATS = 23  # numbers written with a point or an exponent (JSON's floats: 76.0, 0.25, 1e+19), not DECIMAL digits
NEW_TALLY = (None, None, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, None, 0, 0, 0, 0)
SINGLE_EXACT = 1 << 24  # whole numbers up to this a FLOAT keeps

LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # JSON's "\ud800" alone: text no database stores as UTF-8
DATETIME_TEXT = re.compile(r"(\d{4})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])(?:[ T]([01]\d|2[0-3]):([0-5]\d):([0-5]\d)"
                           r"(?:\.(\d{1,6}))?)?\Z")


class OddValue(ValueError):
    """A value no `emfix export` writes (the file was edited): said with its line by check_file."""


class ValueTally:
    """{table: [per column position, a NEW_TALLY list]} and {table: the widest row in bytes} of a file's rows;
    `text_too` False: text counted, not measured (tally_values). `links` (exportlinks.LinkCheck), `choices`
    (importrefusals.ChoiceCheck) and `junctions` (exportjunctions.JunctionRowsTwice), when given, are shown the
    header (begin) and every row (add)."""

    def __init__(self, text_too=True, links=None, choices=None, junctions=None):
        self.columns, self.widest_row, self.text_too, self.links = {}, {}, text_too, links
        self.choices, self.junctions = choices, junctions

    @property
    def watchers(self):
        return [w for w in (self.links, self.choices, self.junctions) if w is not None]


def records(path):
    """(line number, line, parsed object) for every line; a line that is not JSON is damage. Only a regular file: the
    export is read twice (its checksum, then its rows), and a FIFO's open() waits for a writer (round 33)."""
    if os.path.exists(path) and not os.path.isfile(path) and not os.path.isdir(path):
        raise NotFoundError("%s is not a regular file (a pipe, socket or device): import reads the export twice, "
                            "its checksum first" % path, hint="write the export to a file first, then import that")
    try:
        handle = open(path, encoding="utf-8")
    except OSError as exc:
        if re.match(r"(mysql|mariadb|sqlite)://", path, re.I):  # the arguments the wrong way round
            raise UsageError("%s is a database address, not an export file" % path,
                             hint="the order is `emfix import DB FILE`, FILE written by `emfix export`") from None
        raise NotFoundError("cannot read %s: %s" % (path, exc.strerror)) from None
    with handle:
        number = 0
        try:
            for number, line in enumerate(handle, 1):
                try:
                    yield number, line, json.loads(line)
                except (ValueError, RecursionError):  # (RecursionError: a line of 100,000 '[', round 60)
                    raise DamagedInputError("%s line %d is not valid JSON (corrupted or cut off)" % (path, number),
                                            hint="export the experiment again") from None
        except UnicodeDecodeError:
            with open(path, "rb") as raw:
                sqlite = raw.read(16) == b"SQLite format 3\x00"
            if sqlite:  # the arguments the wrong way round: a usage error (round 32: exit 4)
                raise UsageError("%s is a SQLite database (or a snapshot), not an export file" % path,
                                 hint="the order is `emfix import DB FILE`, FILE written by `emfix export`") from None
            raise DamagedInputError("%s line %d is not UTF-8 text: not an emfix export" % (
                path, _line_of_bad_utf8(path)),
                                    hint="import reads files written by `emfix export --format jsonl`") from None


def _line_of_bad_utf8(path):
    """The number of the first line that is not UTF-8 (the text reader fails a whole chunk ahead of it)."""
    number = 0
    with open(path, "rb") as raw:
        for number, line in enumerate(raw, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return number


def read_header(path):
    """The file's first line alone, checked as check_file checks it: import reads it before it connects (an
    unreadable file, arguments the wrong way round, a file that is no export are said first)."""
    lines = records(path)
    try:
        first = next(lines, None)
    finally:
        lines.close()
    if first is None:
        raise DamagedInputError("%s is empty" % path)
    return _header(path, first[2])


def check_file(path, tally=None):
    """Read the whole file once; return (header, trailer) or raise DamagedInputError. `tally` (a ValueTally), when
    given, gets every column's values measured (tally_values)."""
    header, trailer, counts, digest = None, None, {}, hashlib.sha256()
    tally = tally if tally is not None else ValueTally()
    for number, line, record in records(path):
        if number == 1:
            header, header_sha256 = _header(path, record), hashlib.sha256(line.encode("utf-8")).hexdigest()
            widths = {t: len(c) for t, c in header["columns"].items()}
            watchers = tally.watchers
            for watcher in watchers:
                watcher.begin(header)
            continue
        if trailer is not None:
            raise DamagedInputError("%s has lines after its trailer" % path)
        if isinstance(record, dict) and len(record) == 1 and isinstance(record.get("trailer"), dict):
            trailer = record["trailer"]
            continue
        table = record.get("table") if type(record) is dict else None
        row = record.get("row") if table is not None else None
        if type(row) is not list or header is None or type(table) is not str or widths.get(table) != len(row) or \
                len(record) != 2:  # (a table that is a list: unhashable, exit 70, round 61)
            _row_of(path, number, header, record)  # (it says what is wrong)
        digest.update(line.encode("utf-8"))
        counts[table] = counts.get(table, 0) + 1
        stats = tally.columns.get(table) or tally.columns.setdefault(table, [list(NEW_TALLY) for _ in row])
        try:
            width = tally_values(stats, row, tally.text_too)
        except OddValue as odd:
            raise DamagedInputError("%s line %d: a value of %s.%s is %s, which no emfix export holds; nothing was "
                                    "imported" % (path, number, table, header["columns"][table][odd.args[1]],
                                                  odd.args[0]),
                                    hint="export the experiment again (the file was edited)") from None
        if width > tally.widest_row.get(table, 0):
            tally.widest_row[table] = width
        for watcher in watchers:
            watcher.add(table, row)
    if header is None:
        raise DamagedInputError("%s is empty" % path)
    if trailer is None:
        raise DamagedInputError("%s ends without its trailer: the export was cut off" % path,
                                hint="export the experiment again; nothing was imported")
    if not all(isinstance(trailer.get(key, {}), dict) for key in ("counts", "min_ids", "max_ids", "dangling")):
        raise DamagedInputError("%s's trailer is not what emfix writes: it was changed or damaged" % path,
                                hint="export the experiment again")
    stated = {k: v for k, v in trailer.get("counts", {}).items() if v}
    if trailer.get("sha256") != digest.hexdigest() or stated != counts or trailer.get(
            "header_sha256", header_sha256) != header_sha256:  # (exports before round 36 have no header_sha256)
        raise DamagedInputError("%s does not match its own checksum: it was changed or damaged" % path)
    _check_ids(path, header, trailer, tally)
    return header, trailer


def _check_ids(path, header, trailer, tally):
    """The trailer's lowest and highest id of each table are the rows' own (import moves ids by them: round 36, a
    trailer without METRIC's left the links to the file's metrics pointing at another experiment's)."""
    for table in header["tables"]:
        named = [c.lower() for c in header["columns"][table]]
        if table not in AUTO_ID_TABLES or "id" not in named or table not in tally.columns:
            continue
        stats = tally.columns[table][named.index("id")]
        if stats[NOT_WHOLE] or (trailer.get("min_ids") or {}).get(table) != stats[LOW] or (
                trailer.get("max_ids") or {}).get(table) != stats[HIGH]:
            raise DamagedInputError("%s does not match its own trailer: %s's ids are not the ones it states; it was "
                                    "changed or damaged" % (path, table), hint="export the experiment again")


def _header(path, record):
    meta = record.get("header") if isinstance(record, dict) else None
    if isinstance(record, dict) and "export_metadata" in record and "experiment" in record:
        raise UsageError("%s is an export in the old single-document layout (--format json); import reads "
                         "the jsonl layout" % path,
                         hint="export the experiment again without --format json (jsonl is the default)")
    if not isinstance(meta, dict) or "tables" not in record or "columns" not in record:
        raise DamagedInputError("%s is not an emfix jsonl export (no header)" % path,
                                hint="import reads files written by `emfix export --format jsonl`")
    if meta.get("format") != EXPORT_FORMAT:
        raise UsageError("%s was written in format %r; this emfix reads %r" % (
            path, meta.get("format"), EXPORT_FORMAT), hint="use the emfix version that wrote it, or newer")
    tables, columns = record["tables"], record["columns"]
    # Columns for exactly the tables listed (round 60: a table named in columns alone had its rows read, then
    # nothing to put them in: exit 70 after every other row was committed)
    if not (isinstance(tables, list) and isinstance(columns, dict) and all(isinstance(t, str) for t in tables)
            and set(columns) == set(tables) and all(
            isinstance(columns[t], list) and all(isinstance(c, str) for c in columns[t])
            and len({c.lower() for c in columns[t]}) == len(columns[t]) for t in tables)):  # (a column twice: 36)
        raise DamagedInputError("%s line 1: its header's tables and columns are not what emfix writes" % path,
                                hint="export the experiment again (the file was edited)")
    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate in a name or the metadata (round 60)
        raise DamagedInputError("%s line 1: its header holds text that is not UTF-8 (a lone surrogate)" % path,
                                hint="export the experiment again (the file was edited)") from None
    spelled = {}
    for table in tables:  # (round 41: EPOCH_METRIC and epoch_metric, one table to import: "lacks tables", exit 1)
        if table.lower() in spelled:
            raise DamagedInputError("%s line 1: its header names one table twice, as %s and %s; nothing was "
                                    "imported" % (path, spelled[table.lower()], table),
                                    hint="export the experiment again (the file was edited)")
        spelled[table.lower()] = table
    return record


def _row_of(path, number, header, record):
    """(table, row) of a line, or DamagedInputError: a table the header names, as many values as its columns."""
    table = record.get("table") if isinstance(record, dict) else None
    row = record.get("row") if isinstance(record, dict) else None
    if header is None or not isinstance(table, str) or table not in header["columns"] or not isinstance(row, list) \
            or len(row) != len(header["columns"][table]) or set(record) != {"table", "row"}:  # (other keys: 38)
        raise DamagedInputError("%s line %d is not a row of a table its header names (its table and row alone, one "
                                "value per column)" % (path, number), hint="export the experiment again (the file was "
                                                                           "edited)")
    return table, row


def tally_values(stats, row, text_too=True):
    """Each value of `row` into its column's NEW_TALLY list; return the row's bytes (its text and bytes values), or
    raise OddValue(what it is, its position) for a value no export holds (a list, true, a bare inf). Without
    `text_too` (into SQLite, which keeps text as it is) text is only counted, not measured: half this pass's time."""
    width = 0
    for column, value in zip(stats, row):
        if value is None:
            column[NULLS] += 1
            continue
        kind = type(value)
        if kind is int:  # (most values: ids) the lowest and highest tell the rest (magnitude, sign, digits)
            column[NUMBERS] += 1
            if not -SINGLE_EXACT <= value <= SINGLE_EXACT and _single(value) != value:
                column[SINGLE] += 1
            if column[LOW] is None:
                column[LOW] = column[HIGH] = value
            elif value < column[LOW]:
                column[LOW] = value
            elif value > column[HIGH]:
                column[HIGH] = value
            continue
        if kind is str:
            column[NOT_WHOLE] += 1
            column[TEXTS] += 1
            ascii_only = value.isascii()
            if not ascii_only and LONE_SURROGATE.search(value):  # (round 60: exit 70 part-way through the import)
                raise OddValue("text holding half of a UTF-16 pair (a lone surrogate)", _position(stats, column))
            if not text_too:
                continue
            characters = len(value)
            if ascii_only:
                octets = characters
            else:
                octets = len(value.encode("utf-8", "surrogatepass"))
                column[FOURS] += max(value) > "\uffff"
                column[NOT_LATIN1_TEXT] += NOT_LATIN1.search(value) is not None
            width += octets
            column[CHARACTERS], column[OCTETS] = max(column[CHARACTERS], characters), max(column[OCTETS], octets)
            column[SPACED] += value.endswith(" ")
            if value[4:5] == "-" and 10 <= characters <= 26:
                _tally_date(column, value)
            continue
        if kind is float:
            if not math.isfinite(value):
                raise OddValue("%s written as a bare number" % value, _position(stats, column))
            column[FLOATS] += 1
            _tally_number(column, value, kind)
            continue
        if kind is dict:
            width += _tally_coded(column, value, _position(stats, column))
            continue
        raise OddValue({bool: "true or false", list: "a list"}.get(kind, kind.__name__), _position(stats, column))
    return width


def _position(stats, column):
    """The position of a column's tally in its table's list (said only with an odd value)."""
    return next(i for i, each in enumerate(stats) if each is column)


def _tally_number(column, value, kind):
    """A float (or a DECIMAL's digits) into the tally; a whole one as an int."""
    column[NUMBERS] += 1
    if kind is int or value.is_integer():
        value = int(value)
        if not -SINGLE_EXACT <= value <= SINGLE_EXACT and _single(value) != value:
            column[SINGLE] += 1
        if column[LOW] is None or value < column[LOW]:
            column[LOW] = value
        if column[HIGH] is None or value > column[HIGH]:
            column[HIGH] = value
        return
    column[NEGATIVES] += value < 0
    column[NOT_WHOLE] += 1
    column[SINGLE] += _single(value) != value
    text = repr(value)  # the shortest text that reads back as this double, as MySQL writes it too
    column[CHARACTERS], column[OCTETS] = max(column[CHARACTERS], len(text)), max(column[OCTETS], len(text))
    exponent = decimal.Decimal(text).as_tuple().exponent if "e" in text else -(len(text) - text.index(".") - 1)
    column[SCALE] = max(column[SCALE], -exponent)
    if abs(value) > column[MAGNITUDE]:
        column[MAGNITUDE] = abs(value)
    if value and (column[TINIEST] is None or abs(value) < column[TINIEST]):
        column[TINIEST] = abs(value)


def _single(number):
    """`number` as a single-precision FLOAT keeps it (past its range, a double's included: None)."""
    try:
        return struct.unpack("f", struct.pack("f", number))[0]
    except (OverflowError, struct.error):  # (struct.error: an int past a double's range, 10**400: round 60)
        return None


def _tally_coded(column, value, position):
    """A value export wrote as an object: bytes, a DECIMAL's digits, inf or nan; return its bytes."""
    if "$bytes" in value and set(value) <= {"$bytes", "$text"} and isinstance(value["$bytes"], str):
        coded = value["$bytes"]
        try:
            raw = base64.b64decode(coded, validate=True)
        except (binascii.Error, ValueError):
            raise OddValue("bytes that are not base64", position) from None
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            column[NOT_UTF8] += 1
        octets = len(coded) // 4 * 3 - len(coded) + len(coded.rstrip("="))  # '=' for each byte short of 3
        column[NOT_WHOLE] += 1
        column[BLOBS] += 1
        column[CHARACTERS], column[OCTETS] = max(column[CHARACTERS], octets), max(column[OCTETS], octets)
        return octets
    if set(value) == {"$decimal"} and isinstance(value["$decimal"], str):
        try:
            number = decimal.Decimal(value["$decimal"])
        except decimal.InvalidOperation:
            number = None
        if number is None or not number.is_finite():
            raise OddValue("a DECIMAL that is not a number", position)
        if number and (number.adjusted() >= DECIMAL_DIGITS or number.as_tuple().exponent < -DECIMAL_DIGITS):
            raise OddValue("a DECIMAL of more digits than MySQL's hold (%d)" % DECIMAL_DIGITS, position)
        if number == number.to_integral_value():
            _tally_number(column, int(number), int)
        else:
            column[NUMBERS] += 1
            column[NEGATIVES] += number < 0
            column[NOT_WHOLE] += 1
            column[SCALE] = max(column[SCALE], -number.as_tuple().exponent)
            column[MAGNITUDE] = max(column[MAGNITUDE], abs(number))
            column[TINIEST] = abs(number) if column[TINIEST] is None else min(column[TINIEST], abs(number))
        text = value["$decimal"]
        column[CHARACTERS], column[OCTETS] = max(column[CHARACTERS], len(text)), max(column[OCTETS], len(text))
        return 0
    if set(value) == {"$float"} and value["$float"] in ("inf", "-inf", "nan"):
        column[NOT_WHOLE] += 1
        column[NOT_FINITE] += 1
        column[NANS] += value["$float"] == "nan"
        return 0
    raise OddValue("an object", position)


def _tally_date(column, value):
    """Text that is a whole, valid DATETIME ('T' or ' ' between date and time) or DATE, counted as such."""
    found = DATETIME_TEXT.match(value)
    if found is None:
        return
    year, month, day = found.group(1, 2, 3)
    if year == "0000" or (day > "28" and not _is_a_day(int(year), int(month), int(day))):
        return  # (year 0, '2025-02-30')
    column[DATETIMES if found.group(4) else DATES] += 1
    digits = len((found.group(7) or "").rstrip("0"))
    if digits > column[FRACTIONS]:
        column[FRACTIONS] = digits


def _is_a_day(year, month, day):
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    return True


def imported_ids(path, table, offsets, column="id"):
    """The `column` values `table`'s rows of the file got in the database it was imported into (with the
    ImportResult's id_offsets): e.g. the metrics a copy made, for rules applied to them alone."""
    header, ids = None, []
    for number, _line, record in records(path):
        if number == 1:
            header = record
            continue
        if record.get("table") == table and column in header["columns"].get(table, ()):
            value = decode_value(record["row"][header["columns"][table].index(column)])
            if isinstance(value, int):
                ids.append(value + offsets.get(table, 0))
    return ids
