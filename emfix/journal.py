"""The journals import and migrate keep in the database they write (`_emfix_import`,
`_emfix_migration`), read back for --resume and checked: a row edited by hand or left by another
schema is one DamagedInputError naming it, never an exception further on."""

import json

from .errors import DamagedInputError
from .values import decode_value, encode_value

IMPORT_JOURNAL = "_emfix_import"  # (migrate's is copyjournal.JOURNAL)
SCALARS = (int, float, str, type(None))


def is_count(value):
    return isinstance(value, int) and not isinstance(value, bool)


def is_table_numbers(value):
    """{table: whole number}: offsets, counts, rows copied."""
    return isinstance(value, dict) and all(isinstance(k, str) and is_count(v) for k, v in value.items())


def position_problem(position):
    """What is wrong with migrate's per-table positions ("done", an offset, or the last key copied), or ''."""
    if not isinstance(position, dict):
        return "position is not an object"
    for table, last in position.items():
        if not (last == "done" or (is_count(last) and last >= 0) or (isinstance(last, list) and all(
                isinstance(v, SCALARS + (bytes,)) and not isinstance(v, bool) for v in last))):
            return "the position of %s is not a key" % table
    return ""


def position_text(position):
    """migrate's per-table positions as JSON: a key's BLOB, text that is not UTF-8 or infinite REAL as values.py
    writes them in an export ({"$bytes": ...}; json.dumps of a BLOB key at a page's end was exit 70: round 57)."""
    return json.dumps({table: [encode_value(v) for v in last] if isinstance(last, list) else last
                       for table, last in position.items()})


def position_values(position):
    """position_text read back: each key's values as they were (anything else as it is, for position_problem)."""
    if not isinstance(position, dict):
        return position
    return {table: [decode_value(v) for v in last] if isinstance(last, list) else last
            for table, last in position.items()}


def decode_fields(row, names):
    """The row's JSON fields decoded: {name: value}; ValueError/TypeError when one is not JSON."""
    return {name: json.loads(text) for name, text in zip(names, row)}


def damaged(what, database, table, key, problem, hint):
    return DamagedInputError("the %s journal in %s (table %s, run %s) is damaged: %s" % (
        what, database, table, key, problem), hint=hint)
