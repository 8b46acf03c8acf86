"""What a MySQL column holds, and the one-line refusals of values past it.

Shared by migrate's up-front checks (copyrefusals: SQL over SRC's rows) and import's (importrefusals: a tally of
the file's values): a column's length in characters or bytes and its character set (column_limits), an integer
column's range (integer_ranges), and what each says when a value does not fit.
"""

import json
import re

from .errors import DamagedInputError
from .schema import EM_TABLES, table_named
from .values import integer_range, whole_number_range

FLOAT_MOST = 3.4028234663852886e38  # the largest single-precision float: MySQL refuses more for a FLOAT column
FLOAT_ZERO = 2.0 ** -150  # a number not 0 at most this small becomes 0 in a FLOAT column (round 38: 1e-300, exit 0)
NUMBER_KINDS = ("decimal", "double", "float", "real")  # MySQL's number types that are not whole numbers
TEXT_KINDS = ("char", "varchar", "tinytext", "text", "mediumtext", "longtext")
BYTES_KINDS = ("binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob")  # MySQL's columns of bytes


def refuse_past_the_packet(target, table, longest, packet, done):
    """A value of `longest` bytes that DST's max_allowed_packet (`packet`) would not let through: the server drops the
    connection mid-batch, and every --resume after it fails the same way. `done`: what was not (copied, imported)."""
    if packet and longest > packet - 1024:  # the statement around the value needs room too
        raise DamagedInputError(
            "a value in %s is %s bytes, more than %s's max_allowed_packet (%s bytes); nothing was %s" % (
                table, "{:,}".format(longest), target.address.display(), "{:,}".format(packet), done),
            hint="as an administrator: SET GLOBAL max_allowed_packet = %d (and in the server's config), then "
                 "run again" % min(1 << 30, 1 << (longest + 4096).bit_length()))


def refuse_characters_the_charset_lacks(target, table, column, found, charset, done):
    """`found` values holding a character DST's column's character set lacks: a 4-byte one (an emoji) for utf8mb3
    (round 30), CJK for latin1 (round 33); each stopped a copy at its batch."""
    raise DamagedInputError(
        "%s %s, which %s's column (CHARACTER SET %s) cannot hold; nothing was %s" % (
            values_of(found, table, column, "holds", "hold"), "a 4-byte character (an emoji, say)"
            if charset == "utf8mb3" else "a character that character set lacks", target.address.display(), charset,
            done),
        hint="make the column utf8mb4 in DST (ALTER TABLE %s MODIFY %s ... CHARACTER SET utf8mb4), then run again" % (
            target.quote(table), target.quote(column)))


def refuse_longer_than_the_column(target, table, column, limit, most_characters, most_bytes, done):
    """The longest value of a column, in characters and in bytes, against DST's column_limits entry `limit`: one
    longer is refused at its batch, after other batches committed (round 29)."""
    chars, octets, _three = limit
    if (chars is not None and most_characters > chars) or (octets is not None and most_bytes > octets):
        raise DamagedInputError(
            "a value of %s.%s is %s %s, more than %s's column holds (%s); nothing was %s" % (
                table, column, "{:,}".format(most_characters if chars is not None else most_bytes),
                "characters" if chars is not None else "bytes", target.address.display(),
                "%s character%s" % ("{:,}".format(chars), "" if chars == 1 else "s") if chars is not None
                else "%s bytes" % "{:,}".format(octets), done),
            hint="widen the column in DST (ALTER TABLE %s MODIFY %s ...), or shorten the value in %s, then run "
                 "again" % (target.quote(table), target.quote(column), "SRC" if done == "copied" else "the file"))


def refuse_trailing_spaces_into_char(target, table, column, found, done):
    """`found` values ending in a space, going into a CHAR column of DST, which drops trailing spaces (round 33)."""
    raise DamagedInputError(
        "%s in a space, which %s's column (CHAR) drops; nothing was %s" % (
            values_of(found, table, column, "ends", "end"), target.address.display(), done),
        hint="make the column VARCHAR in DST (ALTER TABLE %s MODIFY %s VARCHAR(...)), then run again" % (
            target.quote(table), target.quote(column)))


def refuse_padding_into_binary(target, table, column, found, octets, done):
    """`found` values shorter than DST's BINARY(`octets`), which pads them with zero bytes: 'ab' came back as 'ab' and
    eight NULs, and the copy said it was exact (round 45)."""
    raise DamagedInputError(
        "%s shorter than %s's column (BINARY(%d)), which pads %s with zero bytes; nothing was %s" % (
            values_of(found, table, column, "is", "are"), target.address.display(), octets,
            "it" if found == 1 else "them", done),
        hint="make the column VARBINARY in DST (ALTER TABLE %s MODIFY %s VARBINARY(%d)), then run again" % (
            target.quote(table), target.quote(column), octets))


def column_limits(target, table, existing):
    """{column (lower case): (most characters, most bytes, character set)} of a MySQL DST's columns that hold text or
    bytes up to a length (None where it is not counted that way), or in a character set that lacks characters (None:
    utf8mb4, which has them all; "utf8mb3" for utf8); a table DST lacks as --init makes it (the Experiment
    Manager's)."""
    name = table_named(table, existing)
    if name is None:
        made = next((t for t in EM_TABLES if t.name == table), None)
        return {c.name.lower(): _limit_of_type(c.type) for c in made.columns} if made else {}
    limits = {}
    for column, declared in target.declared_columns(name).items():
        charset = declared.charset if declared.charset not in (None, "utf8mb4", "binary") else None
        charset = "utf8mb3" if charset == "utf8" else charset
        if declared.kind in ("char", "varchar") and declared.chars is not None:
            limits[column] = (declared.chars, None, charset)
        elif declared.kind in ("binary", "varbinary", "tinytext", "text", "tinyblob", "blob") and \
                declared.octets is not None:
            # bytes: a binary column's length (round 30: six emoji, 24 bytes, were counted 6 into VARBINARY(20))
            limits[column] = (None, declared.octets, charset)
        elif charset:
            limits[column] = (None, None, charset)
    return limits


def _limit_of_type(declared):
    """(most characters, most bytes) of a column --init makes of the Experiment Manager's `declared` type."""
    found = re.match(r"VARCHAR\((\d+)\)$", declared)
    if found:
        return int(found.group(1)), None, None
    return (None, 65535, None) if declared == "TEXT" else None


def integer_ranges(db, table, existing=None):
    """{column (lower case): (least, most)} of a MySQL database's integer (and BIT) columns of `table`; where
    `existing` (the database's tables) lacks it, as --init makes it (the Experiment Manager's columns are INT)."""
    name = table if existing is None else table_named(table, existing)
    if name is None:
        made = next((t for t in EM_TABLES if t.name == table), None)
        return {c.name.lower(): integer_range("int") for c in made.columns if c.type == "INT"} if made else {}
    ranges = {}
    for column, declared in db.declared_columns(name).items():
        found = whole_number_range(declared.kind, declared.declared)  # (round 33: -128 into a BIT(8); 34: a YEAR)
        if found is not None:
            ranges[column] = found
    return ranges


def values_of(count, table, column, one="is", more="are"):
    """"1 value of T.c is" / "2 values of T.c are" (the verbs given)."""
    count = int(count)
    return "%s value%s of %s.%s %s" % ("{:,}".format(count), "" if count == 1 else "s", table, column,
                                       one if count == 1 else more)


def digits_kept(declared):
    """(digits in all, digits after the point) a DECIMAL(p, s), FLOAT(m, d) or DOUBLE(m, d) column keeps (`declared`:
    its COLUMN_TYPE), or None for a number column without them (FLOAT, DOUBLE: their own precision)."""
    found = re.match(r"(?:decimal|numeric)(?:\((\d+)(?:,\s*(\d+))?\))?|(?:float|double|real)\((\d+),\s*(\d+)\)",
                     declared.lower())
    if found is None:
        return None
    if found.group(3):
        return int(found.group(3)), int(found.group(4))
    return int(found.group(1) or 10), int(found.group(2) or 0)  # (DECIMAL alone is DECIMAL(10,0))


def spelled_as_declared(value, declared):
    """Whether an ENUM or SET column (`declared`: its COLUMN_TYPE) keeps `value` as it is: one of an ENUM's values,
    letter case and spaces as declared; a SET's values, each once, in their declared order."""
    members = [re.sub(r"''|\\(.)", lambda m: "'" if m.group(0) == "''" else m.group(1), m)  # ('' and \\ as written)
               for m in re.findall(r"'((?:[^'\\]|''|\\.)*)'", declared)]
    if not isinstance(value, str):  # (a number goes into an ENUM as its position)
        return False
    if declared.lower().startswith("enum"):
        return value in members
    parts = value.split(",") if value else []
    return all(p in members for p in parts) and parts == sorted(set(parts), key=members.index)


JSON_DEPTH = 31  # the most nested arrays and objects MariaDB's json_valid() takes (32 is refused: round 37)


def mariadb_json_valid(value):
    """Whether MariaDB's json_valid() takes `value`: RFC 8259 text (no NaN or Infinity; a number past a double's
    range it takes), nested at most JSON_DEPTH deep, no lone surrogate escape, no NUL."""
    if not isinstance(value, str) or "\0" in value:
        return False
    try:
        parsed = json.loads(value, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return False
    level = [(parsed, 1)]
    while level:
        item, depth = level.pop()
        if isinstance(item, (dict, list)):
            if depth > JSON_DEPTH:
                return False
            pairs = item.items() if isinstance(item, dict) else ((None, each) for each in item)
            for key, each in pairs:
                if key is not None and not _encodable(key):
                    return False
                level.append((each, depth + 1))
        elif isinstance(item, str) and not _encodable(item):
            return False
    return True


def _no_constant(name):
    raise ValueError("not JSON: %s" % name)


def _encodable(text):
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # (a lone surrogate escape, \ud800)
        return False
    return True
