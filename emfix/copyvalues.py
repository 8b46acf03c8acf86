"""migrate's one scan of SRC's values against DST's MySQL columns, before the first batch: per table, one query of
aggregates (the longest value in bytes and characters, characters a character set lacks, trailing spaces for a CHAR,
numbers a FLOAT, DOUBLE or DECIMAL would refuse or round, BLOBs in text columns), and the distinct values of an ENUM
or SET column. A value DST would refuse part way through the copy, or store changed, is refused with nothing
written (each found by outside testers).
"""

import re

from .affinityfit import refuse_values_dst_affinity_changes
from .backends.mysqlcatalog import DeclaredColumn
from .columnfit import (
    BYTES_KINDS,
    FLOAT_MOST,
    FLOAT_ZERO,
    NUMBER_KINDS,
    TEXT_KINDS,
    column_limits,
    digits_kept,
    refuse_characters_the_charset_lacks,
    refuse_longer_than_the_column,
    refuse_padding_into_binary,
    refuse_past_the_packet,
    refuse_trailing_spaces_into_char,
    spelled_as_declared,
    values_of,
)
from .copyrefusals import (
    refuse_blobs_in_text,
    refuse_numbers_past_dst_columns,
    refuse_numbers_sqlite_cannot_hold,
)
from .errors import DamagedInputError
from .schema import EM_TABLES, table_named
from .values import INTEGER_BITS, LATIN1_CHARACTERS


def refuse_oversized_values(source, target, graph, tree, tables, existing=(), thorough=False):
    """A value longer than DST's max_allowed_packet makes MySQL drop the connection mid-batch, and every
    --resume after it fail the same way; one longer than DST's column (a VARCHAR(255) TRIAL.name, also as --init is
    about to make it) is refused at its batch, after other tables' batches committed (round 29): find both before
    the first batch. The same scan reads what DST's columns would store otherwise or refuse (characters their
    character set lacks, a CHAR's trailing spaces, numbers past a FLOAT's or a DECIMAL's range or scale, text into a
    number column, an ENUM or SET value not as declared) and counts BLOBs in the Experiment Manager's text columns
    of a SQLite SRC (refuse_blobs_in_text), after the sizes, in every strategy. `existing`: DST's tables now;
    `thorough` (a strategy that validates): every part of a SQLite DATETIME text checked, not its shape alone."""
    if target.dialect != "mysql":
        refuse_numbers_sqlite_cannot_hold(source, target, graph, tree, tables, existing)
        refuse_values_dst_affinity_changes(source, target, graph, tree, tables, existing)
        return
    refuse_numbers_past_dst_columns(source, target, graph, tree, tables, existing)
    packet = int(target.scalar("SELECT @@max_allowed_packet") or 0)
    text_columns = {t.name: [c.name for c in t.columns if c.type in ("TEXT", "JSON") or c.type.startswith("VARCHAR")]
                    for t in EM_TABLES}
    em_columns = {t.name: {c.name.lower() for c in t.columns} for t in EM_TABLES}
    blobs = {}  # (table, column): BLOBs found
    for table in tables:
        # an application's table: its text columns, and any column the application does not have (round 35)
        columns = [c for c in graph.columns[table] if c in text_columns.get(table, graph.columns[table]) or
                   c.lower() not in em_columns.get(table, ())]
        dst_name = table_named(table, existing)
        declared = target.declared_columns(dst_name) if dst_name is not None else _as_init_makes(table)
        refuse_values_outside_enum_or_set(source, target, graph, tree, table, declared)
        numbers = [c for c in graph.columns[table] if getattr(declared.get(c.lower()), "kind", None) in NUMBER_KINDS]
        source_kinds = {} if source.dialect == "sqlite" else source.column_types(table)
        moments = [c for c in graph.columns[table] if getattr(declared.get(c.lower()), "kind", None) in (
            "datetime", "timestamp") and source_kinds.get(c.lower()) not in ("datetime", "timestamp")]
        # (and bytes: a REAL 0.5 was stored as '0.5', then DIFFERS; 9e999 stopped the copy part way: round 59)
        texts = [c for c in graph.columns[table] if getattr(declared.get(c.lower()), "kind", None) in
                 TEXT_KINDS + BYTES_KINDS] if source.dialect == "sqlite" else []
        temporal = _temporal_probes(source, table, graph.columns[table], declared, source_kinds)
        if not columns and not numbers and not moments and not texts and not temporal:
            continue
        limits = column_limits(target, table, existing)
        # a MySQL text column gives back text, never the BLOB: such a copy could never be the same value
        held_as_text = list(text_columns.get(table, ())) if source.dialect == "sqlite" else []
        probes = _value_probes(source, columns, limits, declared, held_as_text)
        probes += _number_probes(source, table, numbers, declared)
        probes += [("not_a_datetime", c, "sum(%s)" % _not_datetime_text(source, c, source_kinds, thorough), ())
                   for c in moments]
        probes += [("real_text", c, "sum(typeof(t.%s) = 'real')" % source.quote(c), ()) for c in texts]
        probes += temporal
        row = source.query("SELECT %s FROM %s" % (", ".join(sql for _what, _c, sql, _p in probes),
                                                  tree.rows(source, graph, table)),
                           tuple(p for _what, _c, _sql, params in probes for p in params))[0]
        found = {(what, column): int(value or 0) for (what, column, _sql, _p), value in zip(probes, row)}
        for (what, column), count in list(found.items()):
            if what == "nul_text" and count:
                most, spaced = _texts_holding_a_nul(source, graph, tree, table, column)
                found[("characters", column)] = max(found[("characters", column)], most)
                if ("spaced", column) in found:
                    found[("spaced", column)] += spaced
        for column in held_as_text:
            if found[("blobs", column)]:
                blobs[(table, column)] = found[("blobs", column)]
        refuse_past_the_packet(target, table, max([found[("bytes", c)] for c in columns], default=0), packet,
                               "copied")
        for (what, column), count in sorted(found.items()):
            if what in NUMBER_CHANGES and count:
                _refuse_a_changed_number(target, table, column, what, count, declared[column.lower()].declared)
            elif what == "charset" and count:
                refuse_characters_the_charset_lacks(target, table, column, count, limits[column.lower()][2], "copied")
            elif what == "spaced" and count:
                refuse_trailing_spaces_into_char(target, table, column, count, "copied")
            elif what == "padded" and count:
                refuse_padding_into_binary(target, table, column, count, declared[column.lower()].octets, "copied")
            elif what == "characters":
                refuse_longer_than_the_column(target, table, column, limits[column.lower()], count,
                                              found[("bytes", column)], "copied")
    if blobs:
        refuse_blobs_in_text(source, target, graph, tree, blobs)


def _value_probes(source, columns, limits, declared, held_as_text):
    """[(what, column, SQL, parameters)] of SRC's aggregates refuse_oversized_values reads in one scan of a table:
    each column's longest value in bytes, and where DST's column limits them, in characters; values holding a
    character DST's column's character set lacks; values ending in a space for a CHAR (which drops it: such a copy
    never verifies); values shorter than a BINARY(n) (which pads them with zero bytes); BLOBs in the Experiment
    Manager's text columns of a SQLite SRC."""
    quote, sqlite = source.quote, source.dialect == "sqlite"
    # bytes, not characters: SQLite's length() of TEXT counts characters, and only up to a NUL
    probes = [("bytes", c, ("max(length(CAST(t.%s AS BLOB)))" if sqlite else "max(LENGTH(t.%s))") % quote(c), ())
              for c in columns]
    for column in columns:
        limit = limits.get(column.lower())
        if not limit:
            continue
        probes.append(("characters", column, ("max(length(t.%s))" if sqlite else "max(CHAR_LENGTH(t.%s))") % quote(
            column), ()))
        if sqlite:  # (length() and LIKE read up to a NUL: such values are read whole by _texts_holding_a_nul)
            probes.append(("nul_text", column, "sum(instr(t.%s, char(0)) > 0)" % quote(column), ()))
        lacking = _lacking_characters(source, column, limit[2])
        if lacking is not None:
            probes.append(("charset", column, "sum(%s)" % lacking[0], lacking[1]))
    probes += [("spaced", c, "sum(t.%s LIKE '%% ')" % quote(c), ()) for c in columns
               if getattr(declared.get(c.lower()), "kind", None) == "char"]
    probes += [("padded", c, ("sum(length(CAST(t.%s AS BLOB)) < %d)" if sqlite else "sum(LENGTH(t.%s) < %d)") % (
        quote(c), declared[c.lower()].octets), ()) for c in columns
        if getattr(declared.get(c.lower()), "kind", None) == "binary" and declared[c.lower()].octets]
    probes += [("blobs", c, "sum(typeof(t.%s) = 'blob')" % quote(c), ()) for c in held_as_text]
    return probes


def _texts_holding_a_nul(source, graph, tree, table, column):
    """(the most characters, how many more end in a space than LIKE counted) of the SQLite TEXT values of the subtree
    holding a NUL, read whole: length() and LIKE read only up to the NUL (a VARCHAR(255) took 'a' + NUL + 300
    characters as one, which the server refused at its batch, the batches before it committed; a CHAR would drop
    the space of 'a' + NUL + ' '). Read here, a row at a time: such values are rare."""
    encoding = {"utf-16le": "utf-16-le", "utf-16be": "utf-16-be"}.get(
        str(source.scalar("PRAGMA encoding")).lower(), "utf-8")
    most, spaced = 0, 0
    held = "t.%s" % source.quote(column)
    for (value,) in source.iter_rows("SELECT CAST(%s AS BLOB) FROM %s" % (held, tree.rows(
            source, graph, table, "typeof(%s) = 'text' AND instr(%s, char(0)) > 0" % (held, held)))):
        text = bytes(value).decode(encoding, "replace")
        most = max(most, len(text))
        spaced += text.endswith(" ") - text.split("\0")[0].endswith(" ")  # LIKE's count of it, made right
    return most, spaced


NUMBER_CHANGES = {  # what: (its verb for one value, for several, what they are, the hint's way out)
    "float_range": ("is", "are", "past what a FLOAT holds (%g)" % FLOAT_MOST, "make the column DOUBLE in DST"),
    "float_zero": ("is", "are", "too small for a FLOAT (it would be stored as 0)", "make the column DOUBLE in DST"),
    "not_finite": ("is", "are", "infinite (SQLite's 9e999 or -9e999), which no MySQL number holds",
                   "change those values in SRC"),
    "number_text": ("is", "are", "text or bytes, which DST's number column would store changed or refuse",
                    "make them numbers in SRC (typeof() tells which), or make the column in DST a text one"),
    "decimal_scale": ("has", "have", "more digits after the point than DST's %s keeps (it would round them)",
                      "widen the column in DST"),
    "decimal_range": ("is", "are", "past what DST's %s holds", "widen the column in DST"),
    "negative": ("is", "are", "negative, which DST's %s refuses", "make the column signed in DST"),
    "real_text": ("is a REAL", "are REALs", "(floating-point numbers), which DST's %s column would store as MySQL's "
                  "text of them (76.0 as '76.0', 1e19 as '1e19'): never the same value to the verify",
                  "make the column DOUBLE in DST"),
    "not_a_date": ("is", "are", "not 'YYYY-MM-DD' text of a day there is, which DST's %s column would store changed (a "
                   "time of day dropped) or refuse", "write them so in SRC, or make the column in DST DATETIME(6)"),
    "not_a_time": ("is", "are", "not 'HH:MM:SS' text (up to 6 digits of a second), which DST's %s column would store "
                   "changed or refuse", "write them so in SRC, or make the column in DST a text one"),
    "timestamp_range": ("is", "are", "outside what DST's %s holds (1970 to 2038; a day from either end is refused "
                        "too, whatever the session's time zone)", "make the column DATETIME in DST"),
    "seconds_cut": ("has", "have", "more digits of a second than DST's %s keeps (it would cut or round them)",
                     "widen the column in DST (DATETIME(6), TIME(6))"),
    "not_a_datetime": ("is", "are", "not 'YYYY-MM-DD HH:MM:SS' text (up to 6 digits of a second), which DST's %s would "
                       "store changed (a date alone, a number, other separators, more digits) or refuse",
                       "write them so in SRC, or make the column in DST a text one"),
}
# A SQLite value MySQL's DATETIME would store other than as written (round 37: '2025-01-01' copied as '2025-01-01
# 00:00:00', exit 0; '2025/01/01', '...00.1234567', a number too): not text, or not of its shape (from a MySQL SRC,
# _not_datetime_text). One of its shape with an invalid hour (24:00) the server refuses at its batch: a check for
# every part costs ~0.7 us a row; a zero month or day it takes (without NO_ZERO_IN_DATE) and keeps as written.
# GLOB and length() read text only up to a NUL: one after the shape passed them, and the server refused the value
# at its batch, the batches before it committed (instr() reads the whole text).
NOT_DATETIME_TEXT = ("({v} IS NOT NULL AND NOT (typeof({v}) = 'text' AND ({v} GLOB '????-??-??[ T]??:??:??' OR "
                     "({v} GLOB '????-??-??[ T]??:??:??.?*' AND length({v}) <= 26)) AND (substr({v}, 9, 2) <= '28' OR "
                     "date(julianday({v})) = substr({v}, 1, 10)) AND instr({v}, char(0)) = 0{parts}))")
# Every part in its range, ASCII digits, a fraction of digits alone (round 44: month 13, 24:00, :60, Arabic-Indic
# digits, '.+1' were refused by the server at their batch, the rows before committed): about 0.7 us a row more, paid
# by the strategies that validate (not aggressive's).
DATETIME_PARTS = (" AND {v} GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9][ T][0-9][0-9]:[0-9][0-9]:[0-9][0-9]*'"
                  " AND NOT substr({v}, 21) GLOB '*[^0-9]*' AND substr({v}, 6, 2) <= '12' AND substr({v}, 9, 2) <= "
                  "'31' AND substr({v}, 12, 2) < '24' AND substr({v}, 15, 2) < '60' AND substr({v}, 18, 2) < '60'")
# (the last test: a day past 28 the month has, which the server refuses at its batch, with the batches before it
# committed: round 43, '2025-02-30'. julianday() counts it on into March; only days past 28 pay for it)


DATE_TEXT = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]"
TIME_TEXT = "[0-9][0-9]:[0-5][0-9]:[0-5][0-9]"
MYSQL_SHAPES = {"date": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$", "time": "^[0-9]{2}:[0-5][0-9]:[0-5][0-9]([.][0-9]{1,6})?$"}


def _temporal_probes(source, table, columns, declared, source_kinds):
    """Probes of what DST's DATE, TIME and DATETIME(n < 6) columns would store changed (round 48: a DATETIME text
    into a DATE lost its time of day, then DIFFERS; '...01.123456' into a DATETIME(3) kept '.123' with only a note):
    text not of the column's shape, and digits of a second past those it keeps, except in the Experiment Manager's
    own DATETIME as its MySQL schema declares it (said in a note, as the README says)."""
    made = next((t for t in EM_TABLES if t.name == table), None)
    own = {c.name.lower(): c.type.lower() for c in (made.columns if made else ())}
    sqlite, probes = source.dialect == "sqlite", []
    for column in columns:
        dst, had = declared.get(column.lower()), source_kinds.get(column.lower())
        if dst is None or dst.kind not in ("date", "time", "datetime", "timestamp"):
            continue
        value = "t.%s" % source.quote(column)
        if dst.kind in ("date", "time") and had != dst.kind and sqlite:
            shape = ("%s GLOB '%s' AND date(%s) IS %s" % (value, DATE_TEXT, value, value) if dst.kind == "date" else
                     "(%s GLOB '%s' OR (%s GLOB '%s.[0-9]*' AND length(%s) <= 15 AND NOT substr(%s, 10) GLOB "
                     "'*[^0-9]*'))" % (value, TIME_TEXT, value, TIME_TEXT, value, value))
            probes.append(("not_a_%s" % dst.kind, column, "sum(%s IS NOT NULL AND NOT (typeof(%s) = 'text' AND %s))" % (
                value, value, shape), ()))
        elif dst.kind in ("date", "time") and had != dst.kind:
            probes.append(("not_a_%s" % dst.kind, column, "SUM(%s IS NOT NULL AND NOT %s REGEXP '%s')" % (
                value, value, MYSQL_SHAPES[dst.kind]) if had in MYSQL_TEXT_KINDS else "SUM(%s IS NOT NULL)" % value,
                ()))
        if dst.kind == "timestamp":  # 1970 to 2038 in the session's time zone: a day either side is the margin
            probes.append(("timestamp_range", column, ("sum(typeof(%s) = 'text' AND julianday(%s) NOT BETWEEN "
                           "julianday('1970-01-02') AND julianday('2038-01-18'))" if sqlite else
                           "SUM(%s NOT BETWEEN '1970-01-02' AND '2038-01-18')") % ((value,) * (2 if sqlite else 1)),
                           ()))
        kept = dst.fraction_digits or 0
        if dst.kind == "date" or kept >= 6 or own.get(column.lower()) == dst.declared.lower():
            continue
        if sqlite:
            probes.append(("seconds_cut", column, "sum(typeof(%s) = 'text' AND instr(%s, '.') > 0 AND length(rtrim("
                           "substr(%s, instr(%s, '.') + 1), '0')) > %d)" % (value, value, value, value, kept), ()))
        elif had in ("datetime", "timestamp", "time"):
            probes.append(("seconds_cut", column, "SUM(MICROSECOND(%s) %% %d <> 0)" % (value, 10 ** (6 - kept)), ()))
    return probes


def _not_datetime_text(source, column, source_kinds, thorough):
    """SQL true for a value of SRC's `column` that DST's DATETIME would store other than as written, or refuse
    (`thorough`: every part checked); for a MySQL SRC, text not of the shape, and any value of another kind (a
    number, a DATE: midnight added)."""
    value = "t.%s" % source.quote(column)
    if source.dialect == "sqlite":
        return NOT_DATETIME_TEXT.format(v=value, parts=DATETIME_PARTS.format(v=value) if thorough else "")
    if source_kinds.get(column.lower()) in MYSQL_TEXT_KINDS:
        return "(%s IS NOT NULL AND NOT %s REGEXP '%s')" % (value, value, DATETIME_SHAPE)
    return "(%s IS NOT NULL)" % value


MYSQL_TEXT_KINDS = ("char", "varchar", "tinytext", "text", "mediumtext", "longtext")
DATETIME_SHAPE = "^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]{1,6})?$"


def _as_init_makes(table):
    """{column (lower case): DeclaredColumn} of an Experiment Manager table as --init is about to make it in MySQL,
    for the checks of its FLOAT (total_val) and DATETIME columns."""
    made = next((t for t in EM_TABLES if t.name == table), None)
    return {c.name.lower(): DeclaredColumn(c.name, c.type.lower(), True, c.type.lower(), None, None, None, None)
            for c in (made.columns if made else ()) if c.type in ("FLOAT", "DATETIME")}


def _number_probes(source, table, numbers, declared):
    """[(what, column, SQL, parameters)] of SRC's values DST's FLOAT, DOUBLE or DECIMAL column would refuse part way
    through the copy or store changed (an outside tester, round 35: a REAL 1e308 into the application's own FLOAT
    total_val stopped the copy at its batch; 0.125 into a DECIMAL(5,2) was copied as 0.13, then DIFFERS)."""
    quote, sqlite, probes = source.quote, source.dialect == "sqlite", []
    kinds = {} if sqlite else source.column_types(table)
    for column in numbers:
        value, dst = "t.%s" % quote(column), declared[column.lower()]
        kind = kinds.get(column.lower())
        number = "typeof(%s) IN ('real', 'integer')" % value if sqlite else (
            "%s IS NOT NULL" % value if kind in NUMBER_KINDS or kind in INTEGER_BITS else None)
        if sqlite or kind in TEXT_KINDS or (kind or "").endswith(("binary", "blob")):
            probes.append(("number_text", column, ("sum(typeof(%s) IN ('text', 'blob'))" if sqlite else
                                                   "sum(%s IS NOT NULL)") % value, ()))
        if number is None:
            continue
        if dst.kind == "float":
            probes.append(("float_range", column, "sum(%s AND abs(%s) BETWEEN %r AND 1.7976931348623157e308)" % (
                number, value, FLOAT_MOST * (1 + 2 ** -52)), ()))
            probes.append(("float_zero", column, "sum(%s AND %s <> 0 AND abs(%s) <= %r)" % (
                number, value, value, FLOAT_ZERO), ()))
        if sqlite:  # (a SQLite REAL may be inf: quote() writes it as 9e999; no MySQL number is)
            probes.append(("not_finite", column, "sum(typeof(%s) = 'real' AND abs(%s) > 1.7976931348623157e308)" % (
                value, value), ()))
        if "unsigned" in dst.declared.lower():
            probes.append(("negative", column, "sum(%s AND %s < 0)" % (number, value), ()))
        kept = digits_kept(dst.declared)
        if kept:  # a DECIMAL(p, s), FLOAT(m, d), DOUBLE(m, d): its range, and the digits after the point it rounds
            precision, scale = kept
            probes.append(("decimal_range", column, "sum(%s AND abs(%s) >= 1e%d)" % (
                number, value, precision - scale), ()))
            if sqlite:  # (SQLite's round() past 15 places makes digits of its own: 358049.0 was "rounded" by
                # DECIMAL(40,30), round 48; a whole number never is, and a REAL's 16th place is past its precision)
                probes.append(("decimal_scale", column, "sum(%s AND round(%s) <> %s AND round(%s, %d) <> %s)" % (
                    number, value, value, value, min(scale, 15), value), ()))
            elif kind not in INTEGER_BITS:
                probes.append(("decimal_scale", column, "sum(%s AND round(%s, %d) <> %s)" % (
                    number, value, scale, value), ()))
    return probes


def _refuse_a_changed_number(target, table, column, what, count, declared):
    """NUMBER_CHANGES's refusal of `count` values (numbers, and text DST's DATETIME would store changed)."""
    one, more, said, way_out = NUMBER_CHANGES[what]
    raise DamagedInputError("%s %s; nothing was copied" % (
        values_of(count, table, column, one, more), said % declared if "%s" in said else said),
        hint="%s (ALTER TABLE %s MODIFY %s ...), then run again" % (way_out, target.quote(table), target.quote(column))
        if way_out.endswith("DST") else way_out + ", then run again")


def refuse_values_outside_enum_or_set(source, target, graph, tree, table, declared):
    """An ENUM or SET column of DST keeps only its own values, as it spells them: another is refused at its batch,
    one in other letter cases or order is stored changed ('DONE' as 'done', 'b,a' as 'a,b', then DIFFERS: round
    35). SRC's distinct values are read (only for such columns) and held against the declared ones."""
    for column in graph.columns[table]:
        dst = declared.get(column.lower())
        if dst is None or dst.kind not in ("enum", "set"):
            continue
        members = re.findall(r"'((?:[^']|'')*)'", dst.declared)
        value = source.exact_column(table, column, "t.")  # (a MySQL SET as its text, not the driver's set: round 62)
        rows = source.query("SELECT DISTINCT %s FROM %s LIMIT %d" % (
            value, tree.rows(source, graph, table, "%s IS NOT NULL" % value), len(members) + 1 if
            dst.kind == "enum" else 10000))
        for (found,) in rows:
            if not spelled_as_declared(found, dst.declared):
                raise DamagedInputError(
                    "a value of %s.%s, %r, is not one of the values DST's column (%s) holds as written; nothing was "
                    "copied" % (table, column, found, dst.declared if len(dst.declared) < 80 else
                                dst.kind.upper()),
                    hint="make the column in DST one that holds it (ALTER TABLE %s MODIFY %s VARCHAR(...)), or "
                         "correct the value in SRC, then run again" % (target.quote(table), target.quote(column)))


def _lacking_characters(source, column, charset):
    """(SQL true for a value of SRC's `column` holding a character DST's `charset` lacks, its parameters), or None
    where that is not known (no such character set, or one a SQLite SRC cannot be asked about)."""
    value = "t.%s" % source.quote(column)
    if charset == "utf8mb3":  # no 4-byte character (round 30: an emoji)
        return FOUR_BYTES[source.dialect].format(source.quote(column)), ()
    if source.dialect == "mysql" and charset and re.fullmatch(r"[a-z0-9_]+", charset):
        return ("(BINARY CONVERT(CONVERT(%s USING %s) USING utf8mb4) <> BINARY CONVERT(%s USING utf8mb4))" % (
            value, charset, value), ())  # (what a character set lacks comes back as '?')
    if charset == "latin1":  # (round 33: CJK text into a latin1 column stopped the copy at its batch)
        return "(typeof(%s) = 'text' AND %s GLOB ?)" % (value, value), ("*[^%s]*" % LATIN1_CHARACTERS,)
    if charset == "ascii":
        return "(typeof(%s) = 'text' AND %s GLOB ?)" % (value, value), ("*[^\x01-\x7f]*",)
    return None


FOUR_BYTES = {  # a value holding a character of 4 bytes in UTF-8 (only those start with the bytes F0 to F4)
    "sqlite": "(typeof(t.{0}) = 'text' AND (instr(CAST(t.{0} AS BLOB), X'F0') + instr(CAST(t.{0} AS BLOB), X'F1') + "
              "instr(CAST(t.{0} AS BLOB), X'F2') + instr(CAST(t.{0} AS BLOB), X'F3') + "
              "instr(CAST(t.{0} AS BLOB), X'F4')) > 0)",
    "mysql": "(LENGTH(t.{0}) <> LENGTH(CONVERT(t.{0} USING utf8mb3)))",
}
