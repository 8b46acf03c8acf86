"""A column's DEFAULT as each engine reports it, read into one form that compares across engines and is written
back as each engine's DDL.

SQLite reports the default's SQL text as it was declared ('it''s', "dq", X'0101', TRUE, datetime('now')); MariaDB
a MySQL literal (backslashes escaped: 'x\\\\y'), a number bare, an expression as text (current_timestamp(6),
b'101', concat('a','b')). Schema diff compared them with their quotes stripped and wrote every one back as quoted
text: CURRENT_TIMESTAMP(6) became the text 'current_timestamp(6)', b'101' the text "b'101'", 'it''s' "it''s", and a
second diff after the DDL never came out the same (round 37).

The one form (`normal_default`) is the value's SQL-standard literal: 'text' (quotes doubled, no backslash escape),
a number in its fewest digits (a quoted one too: both engines convert it), X'HEX', CURRENT_TIMESTAMP[(n)],
CURRENT_DATE, CURRENT_TIME, or (an expression) as the engine gave it.
"""

import ast
import decimal
import operator
import re

NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z")
CLOCK = re.compile(r"(current_timestamp|now|localtimestamp|localtime|current_date|curdate|current_time|curtime)"
                   r"(?:\(\s*(\d*)\s*\))?\Z", re.IGNORECASE)
CLOCK_NAMES = {"current_timestamp": "CURRENT_TIMESTAMP", "now": "CURRENT_TIMESTAMP",
               "localtimestamp": "CURRENT_TIMESTAMP", "localtime": "CURRENT_TIMESTAMP",
               "current_date": "CURRENT_DATE", "curdate": "CURRENT_DATE",
               "current_time": "CURRENT_TIME", "curtime": "CURRENT_TIME"}
MYSQL_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a", "%": "\\%", "_": "\\_"}


ON_UPDATE = re.compile(r"\s+ON UPDATE\s+(\S+)\Z", re.IGNORECASE)
# The one form's clause: a text default ends in a quote, an expression in ")" after its own, so text that only
# reads " ON UPDATE x" (CI: the default ' ON UPDATE ') is never taken for it.
NORMAL_ON_UPDATE = re.compile(r" ON UPDATE (CURRENT_TIMESTAMP(?:\(\d+\))?)\Z")


def normal_default(text, dialect):
    """The default `text` (as `dialect`'s catalog reports it; None: none) in the one form, or None for no default
    or NULL. MySQL's ON UPDATE clock follows it (mysqlcatalog writes it there): "<default> ON UPDATE <clock>"."""
    if text is None:
        return None
    updated = ON_UPDATE.search(str(text)) if dialect == "mysql" else None
    if updated and CLOCK.match(updated.group(1)):
        clock = normal_default(updated.group(1), dialect)
        return "%s ON UPDATE %s" % (normal_default(str(text)[:updated.start()], dialect) or "NULL", clock)
    value = str(text).strip()
    if value.upper() in ("NULL", ""):
        return None
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"" and _one_literal(value, dialect):
        return _text_or_number(_unquoted(value, dialect))
    if NUMBER.match(value):
        return _number(value)
    if value.upper() in ("TRUE", "FALSE"):
        return "1" if value.upper() == "TRUE" else "0"
    bits = re.match(r"(?:[bB]'([01]*)'|0b([01]+))\Z", value)
    if bits:
        return str(int(bits.group(1) or bits.group(2) or "0", 2))
    number = _sqlite_hex_integer(value, dialect)
    if number is not None:
        return number
    hexed = re.match(r"(?:[xX]'([0-9a-fA-F]*)'|0x([0-9a-fA-F]+))\Z", value)
    if hexed:
        return "X'%s'" % (hexed.group(1) or hexed.group(2) or "").upper()
    clock = CLOCK.match(value)
    if clock:
        digits = int(clock.group(2) or 0)
        return CLOCK_NAMES[clock.group(1).lower()] + ("(%d)" % digits if digits else "")
    while value.startswith("(") and value.endswith(")") and _wraps(value):
        value = value[1:-1].strip()
    number = _sqlite_hex_integer(value, dialect)
    if number is not None:
        return number
    number = _arithmetic(value)
    if number is not None:  # (round 41: MySQL's (1 + 2) and SQLite's (1+2) are the number both engines set: 3)
        return _number(str(number))
    return "(%s)" % re.sub(r"\s+", " ", value)


def _sqlite_hex_integer(value, dialect):
    """SQLite's 0x10 and -0x10 are the integers 16 and -16 (MySQL's 0x10 is bytes, X'10' for both): the number's
    text, or None (round 43: a diff called it X'10', and MariaDB refused that DDL)."""
    found = re.match(r"([+-]?)0x([0-9a-fA-F]{1,16})\Z", value) if dialect == "sqlite" else None
    if found is None:
        return None
    number = int(found.group(2), 16)
    number -= (1 << 64) if number >= 1 << 63 else 0  # (SQLite reads 64 bits as two's complement: 0xffff... is -1)
    return str(-number if found.group(1) == "-" else number)


ARITHMETIC = re.compile(r"[0-9.+\-*()\s]+\Z")


def _arithmetic(text):
    """The value of a constant of numbers, +, - and * (both engines compute it alike; / is not: 7/2 is 3 to SQLite),
    as a Decimal, or None."""
    if not ARITHMETIC.match(text) or len(text) > 200:
        return None
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError):
        return None
    operators = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}

    def value(node):
        if isinstance(node, ast.BinOp) and type(node.op) in operators:
            left, right = value(node.left), value(node.right)
            return None if left is None or right is None else operators[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = value(node.operand)
            return None if operand is None else (-operand if isinstance(node.op, ast.USub) else operand)
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return decimal.Decimal(repr(node.value))
        return None
    try:
        return value(tree.body)
    except (decimal.InvalidOperation, RecursionError):
        return None


def same_default(a, a_dialect, b, b_dialect):
    """Do the defaults `a` and `b` (as their engines report them) set the same value? Across engines a clock's
    fraction digits are no difference (SQLite's CURRENT_TIMESTAMP has none to give)."""
    first, second = normal_default(a, a_dialect), normal_default(b, b_dialect)
    if a_dialect != b_dialect:  # (and SQLite has no ON UPDATE)
        first, second = (_without_fraction(_without_on_update(v)) for v in (first, second))
    return first == second


def default_sql(value, dialect):
    """The DDL text of a default in the one form (normal_default) for `dialect`: MySQL's text doubles backslashes;
    SQLite's clock has no fraction digits."""
    if value is None:
        return "NULL"
    if dialect == "mysql" and value.startswith("'"):
        return value.replace("\\", "\\\\")
    if dialect == "sqlite":
        return _without_fraction(_without_on_update(value)) or "NULL"
    return value


def on_update_clock(value):
    """The clock of MySQL's ON UPDATE clause in a default in the one form, or None."""
    clause = NORMAL_ON_UPDATE.search(value) if value else None
    return clause.group(1) if clause else None


def _without_on_update(value):
    """The default without MySQL's ON UPDATE clause (None: NULL, no default)."""
    clause = NORMAL_ON_UPDATE.search(value) if value else None
    if clause is None:
        return value
    base = value[:clause.start()]
    return None if base == "NULL" else base


def _without_fraction(value):
    return re.sub(r"^(CURRENT_TIMESTAMP|CURRENT_TIME)\(\d+\)$", r"\1", value) if value else value


def _one_literal(value, dialect):
    """Is `value` (quoted at both ends) one string literal, not an expression of several ('a' || 'b': round 39, a
    diff wrote it back as the text a' || 'b)?"""
    quote, body, i = value[0], value[1:-1], 0
    while i < len(body):
        if body[i] == "\\" and dialect == "mysql":
            i += 2
            continue
        if body[i] == quote:
            if body[i + 1:i + 2] != quote:
                return False
            i += 2
            continue
        i += 1
    return True


def _unquoted(value, dialect):
    quote, body = value[0], value[1:-1]
    if dialect != "mysql":
        return body.replace(quote * 2, quote)
    out, i = [], 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            out.append(MYSQL_ESCAPES.get(body[i + 1], body[i + 1]))
            i += 2
            continue
        if char == quote and body[i + 1:i + 2] == quote:
            i += 1
        out.append(char)
        i += 1
    return "".join(out)


def _text_or_number(text):
    """A text default: its number where it is one in its fewest digits ('5', not '05' or '5.0', which only a
    number column would take as 5), else its quoted text."""
    if NUMBER.match(text) and _number(text) == text:
        return text
    return "'%s'" % text.replace("'", "''")


def _number(text):
    try:
        number = decimal.Decimal(text)
    except decimal.InvalidOperation:
        return "'%s'" % text
    if number == 0:
        return "0"
    shown = format(number.normalize(), "f")
    return shown


def _wraps(value):
    """Does the first "(" of `value` close at its last character (not `(a) + (b)`)?"""
    depth, quote = 0, None
    for i, char in enumerate(value):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i == len(value) - 1
    return False
