"""What import refuses before its first row: values the database's columns would store changed, or refuse part way
through the import (each found by outside testers: a REAL 3.5 imported into an INT as 4 with exit 0, a DECIMAL
rounded, a date given a time, inf crashing the batch, a row past max_allowed_packet).

The file has no database to ask, so its values were measured while it was read (exportfile.ValueTally); here each
column of the database is held against its tally. Into SQLite, of the values, only NaN is refused (SQLite stores it
as NULL); into any database, columns it lacks, ids import cannot move and links to rows the file does not hold.
"""

import logging
import sys

from .columnfit import (
    FLOAT_MOST,
    FLOAT_ZERO,
    NUMBER_KINDS,
    TEXT_KINDS,
    column_limits,
    digits_kept,
    integer_ranges,
    mariadb_json_valid,
    refuse_characters_the_charset_lacks,
    refuse_longer_than_the_column,
    refuse_padding_into_binary,
    refuse_trailing_spaces_into_char,
    spelled_as_declared,
)
from .errors import DamagedInputError, SchemaError
from .exportfile import (
    BLOBS,
    CHARACTERS,
    DATES,
    DATETIMES,
    FLOATS,
    FOURS,
    FRACTIONS,
    HIGH,
    LOW,
    MAGNITUDE,
    NANS,
    NEGATIVES,
    NOT_FINITE,
    NOT_LATIN1_TEXT,
    NOT_UTF8,
    NOT_WHOLE,
    NULLS,
    NUMBERS,
    OCTETS,
    SCALE,
    SINGLE,
    SPACED,
    TEXTS,
    TINIEST,
    records,
)
from .idshift import id_owner
from .schema import table_named
from .values import decode_value

log = logging.getLogger(__name__)

DATE_KINDS = {"datetime": DATETIMES, "timestamp": DATETIMES, "date": DATES}


def refuse_what_the_database_cannot_take(db, graph, header, trailer, tally, skip, path):
    """Before the first row: columns the database's tables lack, ids import would not move, links to rows the file
    does not hold, then every value against its column."""
    refuse_missing_columns(db, graph, header, skip, path)
    refuse_nulls_the_database_refuses(db, graph, header, tally, skip, path)
    refuse_ids_import_cannot_move(graph, header, trailer, tally, skip, path)
    refuse_values_the_columns_cannot_hold(db, graph, header, tally, skip, path)
    refuse_values_outside_enum_set_or_json(db, header, tally, skip, path)
    refuse_padding_into_binary_columns(db, header, tally, skip)


def values_a_float_keeps_otherwise(db, header, tally, skip):
    """{"TABLE.column": how many of the file's numbers a single-precision FLOAT column of the database keeps
    otherwise}: stored as MySQL's FLOAT keeps them (the application's own METRIC.total_val), and said (migrate says
    the same in its note)."""
    if db.dialect != "mysql":
        return {}
    kept = {}
    for table in header["tables"]:
        if table in skip or table not in tally.columns or db.stored(table) is None:
            continue
        declared = db.declared_columns(db.stored(table))
        for column, stats in zip(header["columns"][table], tally.columns[table]):
            if getattr(declared.get(column.lower()), "kind", None) == "float" and stats[SINGLE]:
                kept["%s.%s" % (table, column)] = stats[SINGLE]
    return kept


class ChoiceCheck:
    """The values of a MySQL database's ENUM, SET and JSON columns, checked while the file is read (check_file shows
    it the header and every row): an ENUM or SET column keeps only its own values as declared ('DONE' became 'done',
    'b,a' 'a,b': round 36), MariaDB's JSON column (a CHECK json_valid) refuses text that is not JSON part way through
    the import. The first value each column would not take is kept for refuse_values_outside_enum_set_or_json (the
    file was read a second time for them: 1 s of 346k rows). A BINARY(n) column pads a shorter value with zero bytes
    (imported with exit 0, each value changed): those are counted (`short`) for refuse_padding_into_binary_columns."""

    def __init__(self, db):
        self.db, self.watch, self.failures, self.short = db, {}, {}, {}

    def begin(self, header):
        db = self.db
        existing = db.tables()
        for table in header["tables"]:
            stored = table_named(table, existing)
            if stored is None:
                continue
            declared = db.declared_columns(stored)
            kinds = {name: column.declared.lower() for name, column in declared.items()}
            if any(column.kind == "longtext" for column in declared.values()):  # MariaDB's JSON: LONGTEXT, a CHECK
                kinds.update((c.name.lower(), c.type.lower()) for c in db.column_details(stored))
            for position, column in enumerate(header["columns"][table]):
                kind = kinds.get(column.lower(), "")
                if kind.startswith(("enum", "set")) or kind == "json":
                    self.watch.setdefault(table, []).append((position, column, kind,
                                                             declared[column.lower()].declared))
                elif kind.startswith("binary") and declared[column.lower()].octets:
                    self.watch.setdefault(table, []).append((position, column, "binary",
                                                             declared[column.lower()].octets))

    def add(self, table, row):
        for position, column, kind, declared in self.watch.get(table, ()):
            value = row[position]
            if kind == "binary":
                if value is not None and _stored_octets(decode_value(value)) < declared:
                    self.short[(table, column)] = self.short.get((table, column), 0) + 1
                continue
            if value is None or (table, column) in self.failures:
                continue
            value = decode_value(value)
            if kind != "json" and not isinstance(value, str):  # (a number or bytes: its tally refuses it)
                continue
            if not (mariadb_json_valid(value) if kind == "json" else spelled_as_declared(value, declared)):
                self.failures[(table, column)] = value


def refuse_values_outside_enum_set_or_json(db, header, tally, skip, path):
    """What ChoiceCheck found while the file was read (a number or bytes into an ENUM or SET column, from its
    tally: it would go in as a position); the first table and column in the file's order."""
    choices = tally.choices
    if db.dialect != "mysql" or choices is None:
        return
    for table in header["tables"]:
        if table in skip or table not in tally.columns:
            continue
        for position, column, kind, declared in choices.watch.get(table, ()):
            if kind == "binary":  # (its bytes and text are both values it holds: refuse_padding_into_binary_columns)
                continue
            stats = tally.columns[table][position]
            if kind != "json" and stats[NUMBERS] + stats[BLOBS]:
                _refuse(db, table, column, path, stats[NUMBERS] + stats[BLOBS], "not text, which its %s column would "
                        "store as another value" % kind.split("(")[0].upper(), _widen(db, table, column))
            if (table, column) not in choices.failures:
                continue
            value = choices.failures[(table, column)]
            if kind == "json":
                _refuse(db, table, column, path, None, "not valid JSON, which its JSON column refuses",
                        "repair the source's metric JSON first (emfix fix-json), export again, or import into a "
                        "LONGTEXT column (emfix init DB --json-type text)")
            _refuse(db, table, column, path, None, "%r, not one of the values its column (%s) holds as written" % (
                value, declared if len(declared) < 80 else kind.split("(")[0].upper()), _widen(db, table, column))


def _stored_octets(value):
    """The bytes a MySQL BINARY column is given for a value of the file: bytes as they are, text in UTF-8, a number
    as its digits."""
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass"))
    return len(repr(value) if isinstance(value, float) else str(value))


def refuse_padding_into_binary_columns(db, header, tally, skip):
    """What ChoiceCheck counted: values shorter than a BINARY(n) column, which pads them (migrate refuses them too)."""
    choices = tally.choices
    if db.dialect != "mysql" or choices is None:
        return
    for table in header["tables"]:
        for _position, column, kind, octets in choices.watch.get(table, ()):
            if kind == "binary" and table not in skip and choices.short.get((table, column)):
                refuse_padding_into_binary(db, table, column, choices.short[(table, column)], octets, "imported")


def refuse_missing_columns(db, graph, header, skip, path):
    """Columns of the file that the database's table lacks (round 36: an INSERT naming one crashed, exit 70)."""
    missing = ["%s.%s" % (table, column) for table in header["tables"] if table not in skip and table in graph.columns
               for column in header["columns"][table]
               if column.lower() not in {c.lower() for c in graph.columns[table]}]
    if missing:
        raise SchemaError("%s lacks column%s %s that rows in %s have; nothing was imported" % (
            db.address.display(), "s" if len(missing) > 1 else "", ", ".join(missing), path),
            hint="add %s to the database first (`emfix schema diff` prints the ALTER TABLE), or add --skip-tables "
                 "to leave those tables' rows out" % ("it" if len(missing) == 1 else "them"))


def refuse_nulls_the_database_refuses(db, graph, header, tally, skip, path):
    """A column the database's table requires (NOT NULL, no default) that the file lacks, or a NULL in a NOT NULL
    column (round 39: a TRIAL_RUN.trial_id of null, a header without TRIAL.experiment_id stopped the import at its
    batch, exit 70, and --resume there for ever)."""
    for table in header["tables"]:
        if table in skip or table not in graph.tables:
            continue
        named = {c.lower(): i for i, c in enumerate(header["columns"][table])}
        lacking = [c for c in db.required_columns(db.stored(table)) if c.lower() not in named]
        if lacking:
            raise SchemaError("%s's %s requires column%s %s, which %s lacks; nothing was imported" % (
                db.address.display(), table, "s" if len(lacking) > 1 else "", ", ".join(lacking), path),
                hint="export the experiment again (the file was edited), or give the column a default in the "
                     "database")
        stats = tally.columns.get(table)
        for column in db.column_details(db.stored(table)) if stats else ():
            position = named.get(column.name.lower())
            if column.not_null and not column.auto and position is not None and stats[position][NULLS]:
                _refuse(db, table, header["columns"][table][position], path, stats[position][NULLS],
                        "NULL, which its NOT NULL column refuses", "export the experiment again (the file was "
                        "edited)")


def refuse_ids_import_cannot_move(graph, header, trailer, tally, skip, path):
    """Every id import moves must be a whole number (round 36: a TRIAL.experiment_id of 900.5 was stored as 901,
    another experiment's; "1" as text was not moved), and every link must point at a row of the file unless the
    trailer says it dangles (round 36: without METRIC's rows, the links pointed at another experiment's metrics)."""
    dangling = trailer.get("dangling") or {}
    ranges = {}
    for table in header["tables"]:
        if "id" in header["columns"][table] and table in tally.columns:
            stats = tally.columns[table][header["columns"][table].index("id")]
            ranges[table] = (stats[LOW], stats[HIGH])
    for table in header["tables"]:
        if table in skip or table not in tally.columns:
            continue
        for column, stats in zip(header["columns"][table], tally.columns[table]):
            owner = id_owner(graph, table, column)
            if owner is None:
                continue
            if stats[NOT_WHOLE]:
                raise DamagedInputError(
                    "%s of %s.%s in %s %s not a whole number: an id import cannot move; nothing was imported" % (
                        "{:,} values".format(stats[NOT_WHOLE]) if stats[NOT_WHOLE] > 1 else "a value", table,
                        column, path, "are" if stats[NOT_WHOLE] > 1 else "is"),
                    hint="the source holds such ids (a TEXT link column keeps '10' as text), or the file was "
                         "edited: in the source, give %s.%s an integer type and whole numbers, then export again" % (
                             table, column))
            if stats[LOW] is not None and (stats[LOW] < -(1 << 63) or stats[HIGH] >= 1 << 63):
                raise DamagedInputError(  # (round 39: 2^63 crashed the import, exit 70: OverflowError)
                    "%s.%s in %s holds %d, past what any id column holds (64 bits); nothing was imported" % (
                        table, column, path, stats[HIGH] if stats[HIGH] >= 1 << 63 else stats[LOW]),
                    hint="export the experiment again (the file was edited or its source is damaged)")
            low, high = ranges.get(owner, (None, None))
            if owner != table and stats[LOW] is not None and not dangling.get(table) and (
                    low is None or stats[LOW] < low or stats[HIGH] > high):
                _refuse_a_link(path, "%s.%s" % (table, column), owner, "rows", table)
    if tally.links is None:
        return
    links = tally.links
    with links:  # (rounds 37-39: rows or tables taken out, the file sealed again: links to nothing)
        for rel, table, lacking, what in links.lacking_columns:
            if rel.child in skip:
                continue
            raise DamagedInputError("%s in %s lacks column%s %s of %s; nothing was imported" % (
                table, path, "s" if len(lacking) > 1 else "", ", ".join(lacking), what),
                hint="export the experiment again (the file was edited)")
        found = links.missing()
        twice = dict(links.twice)
        if tally.junctions is not None:  # (round 40: a junction's row twice stopped the import at its batch)
            twice.update(tally.junctions.twice(lambda: records(path)))
        skipped = {t.lower() for t in skip}
        for (table, columns), key in sorted(twice.items()):
            if table.lower() not in skipped:  # (round 39: a line repeated stopped the import at its batch, exit 70)
                raise DamagedInputError("%s holds %s %s twice; nothing was imported" % (
                    path, table, ", ".join("%s=%r" % pair for pair in zip(columns, key))),
                    hint="export the experiment again (the file was edited)")
        for rel, first in found:
            if rel.child not in skip and not dangling.get(rel.child):
                _refuse_a_link(path, "%s.%s" % (rel.child, ", ".join(rel.child_columns)) if len(first) > 1 else
                               "%s.%s" % (rel.child, rel.child_columns[0]), rel.parent, "%s, a row" % ", ".join(
                                   "%s=%r" % pair for pair in zip(rel.parent_columns, first)), rel.child)


def _refuse_a_link(path, columns, parent, what, table):
    raise DamagedInputError("%s in %s refers to %s %s the file does not hold, and its trailer says no link of %s "
                            "dangles; nothing was imported" % (columns, path, parent, what, table),
                            hint="export the experiment again (the file was edited or cut)")


def refuse_values_the_columns_cannot_hold(db, graph, header, tally, skip, path):
    """Every column of the file's tables against its tally; the first value found is refused (DamagedInputError,
    exit 4), nothing written. Columns holding an id the import moves are left to the id ceiling (idshift)."""
    for table in header["tables"]:
        if table in skip or table not in tally.columns:
            continue
        if db.dialect != "mysql":
            for column, stats in zip(header["columns"][table], tally.columns[table]):
                huge = [v for v in (stats[LOW], stats[HIGH]) if v is not None and not -(1 << 63) <= v < 1 << 63]
                if huge:  # (round 60: 10**400 stopped the import part way, exit 70)
                    _refuse(db, table, column, path, None, "%s, past what SQLite holds as an integer (64 bits)" %
                            _number_text(huge[0]), "change those values in the source and export again")
                if stats[NANS]:
                    _refuse(db, table, column, path, stats[NANS], "NaN, which SQLite stores as NULL",
                            "change those values in the source and export again")
            continue
        _refuse_a_row_past_the_packet(db, table, tally.widest_row.get(table, 0), path)
        wanted = integer_ranges(db, db.stored(table))
        limits = column_limits(db, table, graph.tables)
        declared = db.declared_columns(db.stored(table))
        json_columns = {c for _p, c, kind, _d in (tally.choices.watch.get(table, ()) if tally.choices else ())
                        if kind == "json"}
        for column, stats in zip(header["columns"][table], tally.columns[table]):
            kind = getattr(declared.get(column.lower()), "kind", None)
            if stats[NOT_UTF8] and kind in TEXT_KINDS and column not in json_columns and \
                    declared[column.lower()].charset not in (None, "binary"):  # (a JSON column: not valid JSON)
                _refuse(db, table, column, path, stats[NOT_UTF8], "bytes that are not UTF-8 text, which its text "
                        "column refuses", "repair them at the source first (emfix fix-json --reset-unfixable for "
                        "metric values), export again, or make the column a BLOB")  # (round 39: stopped part way)
            if stats[FLOATS] and kind in TEXT_KINDS:  # (as migrate refuses a SQLite REAL there)
                _refuse(db, table, column, path, stats[FLOATS], "numbers with a point or an exponent (76.0, 0.25, "
                        "1e+19), which its text column would store as MySQL's text of them, not the numbers",
                        "make the column DOUBLE there (ALTER TABLE %s MODIFY %s DOUBLE ...), then run again" % (
                            db.quote(table), db.quote(column)))
            _refuse_text(db, table, column, stats, limits.get(column.lower()), kind)
            if column.lower() in wanted and not id_owner(graph, table, column):
                _refuse_past_the_integers(db, table, column, stats, wanted[column.lower()], path)
            elif kind in NUMBER_KINDS:
                _refuse_what_numbers_lose(db, table, column, stats, declared[column.lower()].declared.lower(), path)
            elif kind in DATE_KINDS:
                others = stats[TEXTS] + stats[BLOBS] + stats[NUMBERS] + stats[NOT_FINITE] - stats[DATE_KINDS[kind]]
                if others:
                    _refuse(db, table, column, path, others, "not a valid %s as %s writes it back (%s)" % (
                        kind.upper(), db.address.display(), "YYYY-MM-DD" if kind == "date" else
                        "YYYY-MM-DD HH:MM:SS with at most 6 digits of a second, no time zone"),
                        "correct those values in the source and export again, or change the column")
                kept = declared[column.lower()].fraction_digits or 0
                if kind != "date" and stats[FRACTIONS] > kept:  # as migrate's note says it (round 36: said nowhere)
                    log.warning("%s.%s in %s holds fractions of a second to %d digit%s; %s's column keeps %d: they "
                                "are stored as it keeps them", table, column, path, stats[FRACTIONS],
                                "" if stats[FRACTIONS] == 1 else "s", db.address.display(), kept)


def _refuse_a_row_past_the_packet(db, table, widest, path):
    packet = int(db.scalar("SELECT @@max_allowed_packet") or 0)
    if packet and widest > packet - 1024:  # the statement around the row needs room too
        raise DamagedInputError(
            "a row of %s in %s is %s bytes, more than %s's max_allowed_packet (%s bytes); nothing was imported" % (
                table, path, "{:,}".format(widest), db.address.display(), "{:,}".format(packet)),
            hint="as an administrator: SET GLOBAL max_allowed_packet = %d (and in the server's config), then run "
                 "again" % min(1 << 30, 1 << (widest + 4096).bit_length()))


def _refuse_text(db, table, column, stats, limit, kind):
    """Text or bytes longer than the column, a character its character set lacks, a space a CHAR drops."""
    if limit:
        lacking = {"utf8mb3": stats[FOURS], "latin1": stats[NOT_LATIN1_TEXT]}.get(limit[2])
        if lacking:
            refuse_characters_the_charset_lacks(db, table, column, lacking, limit[2], "imported")
        digits = max((len(str(v)) for v in (stats[LOW], stats[HIGH]) if v is not None), default=0)
        refuse_longer_than_the_column(db, table, column, limit, max(stats[CHARACTERS], digits),
                                      max(stats[OCTETS], digits), "imported")
    if stats[SPACED] and kind == "char":
        refuse_trailing_spaces_into_char(db, table, column, stats[SPACED], "imported")


def _refuse_past_the_integers(db, table, column, stats, wanted, path):
    """An integer (BIT, YEAR) column: a value that is not a whole number, or outside the column's range (round 34)."""
    least, most = wanted
    outside = [v for v in (stats[LOW], stats[HIGH]) if v is not None and not least <= v <= most]
    if stats[NOT_WHOLE]:
        _refuse(db, table, column, path, stats[NOT_WHOLE], "not a whole number, which its integer column would "
                "store changed or refuse", _widen(db, table, column))
    if outside:
        _refuse(db, table, column, path, None, "%s, outside %s to %s, which its integer column would refuse" % (
            outside[0], least, most), _widen(db, table, column))


def _refuse_what_numbers_lose(db, table, column, stats, declared, path):
    """A FLOAT, DOUBLE or DECIMAL column: text or bytes (stored as a number, or refused), inf or nan (which no
    MySQL number holds), a value past FLOAT's range, a DECIMAL's digits past its scale (rounded) or its range."""
    if stats[TEXTS] + stats[BLOBS]:
        _refuse(db, table, column, path, stats[TEXTS] + stats[BLOBS], "text or bytes, which its number column would "
                "store changed or refuse", _widen(db, table, column))
    if stats[NOT_FINITE]:
        _refuse(db, table, column, path, stats[NOT_FINITE], "inf or nan, which no MySQL number holds",
                "change those values in the source and export again")
    magnitude = max([stats[MAGNITUDE]] + [abs(v) for v in (stats[LOW], stats[HIGH]) if v is not None])
    shown = next((v for v in (stats[LOW], stats[HIGH]) if v is not None and abs(v) == magnitude),  # (its sign: 37)
                 "a number of magnitude %s" % magnitude)
    if magnitude > sys.float_info.max:  # (an int of the file: 10**400 into a DOUBLE, round 60)
        _refuse(db, table, column, path, None, "%s, past what a DOUBLE holds" % _number_text(shown),
                "change those values in the source and export again")
    if declared.startswith("float") and magnitude > FLOAT_MOST:
        _refuse(db, table, column, path, None, "%s, past what a FLOAT holds (%s)" % (shown, FLOAT_MOST),
                "make the column DOUBLE there (ALTER TABLE %s MODIFY %s DOUBLE ...), then run again" % (
                    db.quote(table), db.quote(column)))
    if declared.startswith("float") and stats[TINIEST] is not None and stats[TINIEST] <= FLOAT_ZERO:
        _refuse(db, table, column, path, None, "a number of magnitude %s, too small for a FLOAT (it would be stored as "
                "0)" % stats[TINIEST], "make the column DOUBLE there (ALTER TABLE %s MODIFY %s DOUBLE ...), then run "
                "again" % (db.quote(table), db.quote(column)))
    if "unsigned" in declared and (stats[NEGATIVES] or (stats[LOW] or 0) < 0):
        _refuse(db, table, column, path, None, "negative, which its %s column refuses" % declared.upper(),
                _widen(db, table, column))
    kept = digits_kept(declared)
    if kept:  # a DECIMAL(p, s), FLOAT(m, d), DOUBLE(m, d): its range, and the digits after the point it rounds
        precision, scale = kept
        if stats[SCALE] > scale:
            _refuse(db, table, column, path, None, "%d digits after the point, which its %s column "
                    "would round" % (stats[SCALE], declared.upper()), _widen(db, table, column))
        if magnitude >= 10 ** (precision - scale):
            _refuse(db, table, column, path, None, "%s, past what its %s column holds" % (
                shown, declared.upper()), _widen(db, table, column))


def _number_text(value):
    """A number as said in a message: a whole one of hundreds of digits by its first ones and its length."""
    text = str(value)
    return text if len(text) <= 30 else "%s... (%d digits)" % (text[:12], len(text.lstrip("-")))


def _widen(db, table, column):
    return "widen or change the column there (ALTER TABLE %s MODIFY %s ...), or import into a database whose " \
           "column holds such values" % (db.quote(table), db.quote(column))


def _refuse(db, table, column, path, count, what, hint):
    """One line: "N values of T.c in FILE are <what> (DB); nothing was imported" (count None: "a value ... is")."""
    raise DamagedInputError("%s of %s.%s in %s %s %s (%s); nothing was imported" % (
        "a value" if count is None else "%s value%s" % ("{:,}".format(count), "" if count == 1 else "s"), table,
        column, path, "are" if count and count > 1 else "is", what, db.address.display()), hint=hint)
