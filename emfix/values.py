"""How a value read from one database is written to another, or to a file, and compared.

One codec for snapshot, export, import, migrate, the quarantine and every checksum.

`portable` turns what a driver returns into what sqlite3 and mysql-connector both bind without
loss; `canonical` is the form two readings of the same stored value share, for checksums and
for telling whether a row already holds a quarantined value.
"""

import base64
import datetime
import decimal
import math
import re
import struct

from .backends.sqlite import UndecodableText

EXPORT_FORMAT = "emfix-export-1"  # the jsonl export's header says which codec wrote it
WIDE_DECIMALS = decimal.Context(prec=400, Emax=999999, Emin=-999999)  # room for any double to 30 places


def portable(value):
    if isinstance(value, decimal.Decimal):
        return str(value)  # exact; MySQL reads it back as the same DECIMAL
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat(" ") if isinstance(value, datetime.datetime) else value.isoformat()
    if isinstance(value, datetime.timedelta):
        return time_text(value)
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, set):
        return ",".join(sorted(value))
    return value


def sqlite_storable(value):
    """A value as a SQLite file keeps it: an integer past SQLite's 64 bits (MySQL's BIGINT UNSIGNED, BIT(64)) as
    its digits, which a column without a type keeps as text (numbers_back reads them again). Snapshots (round 27)
    and quarantines (round 29) crashed on one: exit 70."""
    if isinstance(value, int) and not -(1 << 63) <= value < (1 << 63):
        return str(value)
    return value


def numbers_back(kinds, columns, rows):
    """`rows` (of `columns`) with the digits sqlite_storable kept of an integer or BIT column's value bound as the
    number again: as text MySQL takes a BIT value's characters' bytes (round 28), and a number compares as one.
    `kinds`: {column (lower case): MySQL DATA_TYPE}."""
    wide = [n for n, c in enumerate(columns) if kinds.get(c.lower()) in ("bit", "bigint")]
    for row in rows:
        if wide and any(isinstance(row[n], str) for n in wide):
            row = tuple(int(v) if n in wide and isinstance(v, str) and v.isascii() and v.isdigit() else v
                        for n, v in enumerate(row))
        yield row


def time_text(value):
    """A MySQL TIME (the driver's timedelta) as MySQL reads it back, to the microsecond: `-838:59:59.000001`,
    `100:00:00` (str() writes `-35 days, 1:00:01`, which MySQL refuses)."""
    micros = (value.days * 86400 + value.seconds) * 1000000 + value.microseconds
    seconds, fraction = divmod(abs(micros), 1000000)
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    return "%s%02d:%02d:%02d%s" % ("-" if micros < 0 else "", hours, minute, second,
                                   ".%06d" % fraction if fraction else "")


def canonical(value):
    value = portable(value)
    if isinstance(value, str) and len(value) >= 19 and value[4:5] == "-" and value[10:11] in (" ", "T"):
        try:
            return datetime.datetime.fromisoformat(value.replace(" ", "T")).isoformat()
        except ValueError:  # a zero date or month, a day the month lacks: MySQL keeps it as its text (round 43:
            return _moment_text(value)  # '0000-00-00T00:00:00.000000' was said to differ from itself)
    if isinstance(value, float) and value.is_integer():  # (to 2^64: a SQLite REAL 1e19 copied into a BIGINT UNSIGNED
        return int(value) if abs(value) < 2.0 ** 64 else value  # as 10000000000000000000 is the same number)
    return value


def _moment_text(value):
    """DATETIME text that is no calendar moment, written one way: 'T' between date and time, no zero fraction."""
    found = re.match(r"(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?\Z", value)
    if found is None:
        return value
    fraction = (found.group(3) or "").rstrip("0")
    return "%sT%s%s" % (found.group(1), found.group(2), "." + fraction if fraction else "")


# -- in a JSON file (export, import): what JSON cannot hold as it is ------------------------------

def encode_value(value):
    if isinstance(value, UndecodableText):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii"), "$text": True}
    if isinstance(value, (bytes, bytearray)):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, decimal.Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": repr(value)}
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat(" ") if isinstance(value, datetime.datetime) else value.isoformat()
    if isinstance(value, datetime.timedelta):
        return time_text(value)
    if isinstance(value, set):  # a MySQL SET the driver made a set of (exact_column reads it as its text)
        return portable(value)
    return value


DECIMAL_DIGITS = 65  # the most digits a MySQL DECIMAL holds (an int of 1E999999999 would take minutes to make)


def whole(value):
    """An id as the int it is: a whole float (1.0) or a DECIMAL's digits ("1", "1.0", "1E0") too; anything else as
    it is (import refuses ids that are not whole numbers before this is asked: round 37, 1.0 was never moved)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):  # (round 38: "2.0", "2.000" and "2E0" are whole too: they were never moved)
        try:
            number = decimal.Decimal(value)
        except decimal.InvalidOperation:
            return value
        if number.is_finite() and number.adjusted() < DECIMAL_DIGITS and number == number.to_integral_value():
            return int(number)
    return value


def decode_value(value):
    if isinstance(value, dict):
        if "$bytes" in value:
            raw = base64.b64decode(value["$bytes"])
            return UndecodableText(raw) if value.get("$text") else raw
        if "$decimal" in value:
            return value["$decimal"]
        if "$float" in value:
            return float(value["$float"])
    return value


# -- a column that keeps less than it is given ----------------------------------------------------

def as_stored(value, limit):
    """What a column with this `backends.base.StorageLimit` keeps of `value`: a double rounded to single
    precision (as MySQL converts it), a timestamp's fraction cut to the column's digits, text in a binary column
    as its bytes, a whole number in a text column as its digits."""
    if value is None:
        return None
    if limit.kind == "text":  # a whole number as its digits; anything else as it is (its text is the engine's)
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if limit.kind == "bytes":  # a binary column: text as its UTF-8 bytes, BINARY(n) padded to n with zero bytes
        if isinstance(value, int) and not isinstance(value, bool):  # a whole number as its digits (round 59: 7 said
            value = str(value)  # to differ from the b'7' DST's VARBINARY kept)
        kept = value.encode("utf-8") if isinstance(value, str) else value
        if isinstance(kept, (bytes, bytearray)) and len(kept) < limit.digits:
            kept = bytes(kept) + b"\0" * (limit.digits - len(kept))
        return kept
    if limit.kind == "decimal":  # a DECIMAL(p, s): the number's shortest digits (MySQL's too), to s places
        if isinstance(value, (int, float, decimal.Decimal)) and not isinstance(value, bool):
            number = decimal.Decimal(repr(value) if isinstance(value, float) else value)
            return number.quantize(decimal.Decimal(1).scaleb(-limit.digits), context=WIDE_DECIMALS) \
                if number.is_finite() else value
        return value
    if limit.kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return struct.unpack("f", struct.pack("f", value))[0]
            except OverflowError:
                return value
        return value
    text = portable(value)
    if not isinstance(text, str) or "." not in text[-7:]:
        return value
    head, _, fraction = text.rpartition(".")
    if not fraction.isdigit():
        return value
    micros = int(fraction.ljust(6, "0")[:6])
    unit = 10 ** (6 - limit.digits)
    kept = (micros + unit // 2) // unit * unit if limit.rounds else micros // unit * unit
    if kept >= 10 ** 6:  # rounding up carries into the seconds
        try:
            moment = datetime.datetime.fromisoformat(head.replace(" ", "T")) + datetime.timedelta(seconds=1)
        except ValueError:
            return value
        head = moment.isoformat(" ")
        kept = 0
    if not limit.digits:
        return head
    return "%s.%s" % (head, str(kept).rjust(6, "0")[:limit.digits])


# The characters MariaDB's and MySQL's latin1 (Windows-1252, with its five unused bytes kept as U+0081 ... U+009D)
# holds, besides NUL: what a latin1 column of DST refuses is any other (read off MariaDB 10.11, every code point
# to U+2FFF).
LATIN1_CHARACTERS = ("\x01-\x7f\x81\x8d\x8f\x90\x9d\xa0-\xff\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192"
                     "\u02c6\u02dc\u2013\u2014\u2018-\u201a\u201c-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac"
                     "\u2122")
NOT_LATIN1 = re.compile("[^\x00%s]" % LATIN1_CHARACTERS)


INTEGER_BITS = {"tinyint": 8, "smallint": 16, "mediumint": 24, "int": 32, "integer": 32, "bigint": 64}


def integer_range(kind, declared=""):
    """(least, most) a MySQL integer type holds: `kind` its DATA_TYPE, `declared` its COLUMN_TYPE (UNSIGNED)."""
    bits = INTEGER_BITS[kind]
    if "unsigned" in declared.lower():
        return 0, (1 << bits) - 1
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def whole_number_range(kind, declared=""):
    """(least, most) a MySQL column of whole numbers holds, or None for any other type: the integer types, BIT(n)
    (0 to 2^n - 1) and YEAR (1901 to 2155; 5 would be stored as 2005)."""
    kind, declared = kind.lower(), declared.lower()
    if kind in INTEGER_BITS:
        return integer_range(kind, declared)
    if kind == "bit":
        found = re.search(r"\((\d+)\)", declared)
        return 0, (1 << int(found.group(1) if found else 1)) - 1
    if kind == "year":
        return 1901, 2155
    return None
