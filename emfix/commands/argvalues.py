"""Option values checked where the parser reads them (numbers in range, ids, seconds, table lists), and the
actions of options read their own way: said once, or ids followed by a database."""

import argparse

from ..errors import UsageError

MAX_ROW_ID = (1 << 63) - 1  # the largest key SQLite and MySQL BIGINT hold
MAX_COUNT = 1 << 31


def whole_number(text, low, high, what):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a whole number" % text) from None
    if value < low:
        raise argparse.ArgumentTypeError("%s must be %d or more" % (what, low))
    if value > high:
        raise argparse.ArgumentTypeError("%s must be at most %d" % (what, high))
    return value


def utf8_text(value):
    """Text stored as it is given (a title): bytes of the command line that are not UTF-8 reach Python as lone
    surrogates, which no database stores (round 60: exit 70, a half-begun import left behind)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError("%r holds bytes that are not UTF-8 text" % value) from None
    return value


class Once(argparse._StoreAction):  # noqa: SLF001 (argparse's own store, said once)
    """An option a command takes one value of: given twice (`export -e 1 -e 2`), it is refused, not the last
    kept without a word (round 54)."""

    def __call__(self, parser, namespace, values, option_string=None):
        given = "_given_" + self.dest
        if getattr(namespace, given, False):
            raise argparse.ArgumentError(self, "given more than once; this command takes one")
        setattr(namespace, given, True)
        super().__call__(parser, namespace, values, option_string)


class IdsThenDatabase(argparse.Action):
    """`-e ID [ID ...]` that leaves a database given after the ids to DB (`-e 1 2 experiment.db`), instead of
    reading the path as one more id."""

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ARG002 (argparse.Action)
        values = list(values)
        if len(values) > 1 and not _is_whole_number(values[-1]):
            namespace.database_after_ids = values.pop()
        try:
            setattr(namespace, self.dest, [row_id(v) for v in values])
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentError(self, str(exc)) from None


def _is_whole_number(text):
    try:
        int(text)
    except ValueError:
        return False
    return True


def positive_int(text):
    return whole_number(text, 1, MAX_COUNT, "it")


def non_negative_int(text):
    return whole_number(text, 0, MAX_COUNT, "it")


def row_id(text):
    return whole_number(text, -MAX_ROW_ID, MAX_ROW_ID, "an id")


def port(text):
    return whole_number(text, 1, 65535, "a port")


def number(text, low, high, what):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number" % text) from None
    if not low <= value <= high:  # also refuses nan and inf
        raise argparse.ArgumentTypeError("%s must be between %g and %g" % (what, low, high))
    return value


def seconds(text):
    return number(text, 0, 7 * 86400, "seconds")


def table_list(text, option=None):
    """The names of a comma-separated option; with `option` (one that narrows what a change touches), given but
    naming no table is an error: `--tables "$T"` with an empty $T planned a cleanup of every table (round 23)."""
    names = [t.strip() for t in text.split(",") if t.strip()] if text else None
    if option and text is not None and not names:
        raise UsageError("%s names no table; nothing was changed" % option,
                         hint="name the tables (%s T1,T2), or leave the option out for every table" % option)
    return names
