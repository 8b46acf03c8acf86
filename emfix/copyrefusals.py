"""What migrate refuses before its first batch, so that a copy never stops half-way at something it could
have seen: a copy DST's journal says is begun or done (unless --resume or --force), tables DST lacks that are not
the Experiment Manager's, columns DST's tables lack or cannot fill, numbers an integer column of DST (or SQLite)
cannot hold, metric values a JSON column of DST would refuse, BLOBs in text columns that no MySQL text column gives
back. The scan of SRC's values against DST's column lengths, character sets and number types is copyvalues'.
"""

import re

from .affinityfit import dst_declared_types
from .catalog import sqlite_affinity
from .columnfit import JSON_DEPTH, NUMBER_KINDS, TEXT_KINDS, integer_ranges, mariadb_json_valid, values_of
from .copyjournal import DIFFERS, DONE, RUNNING, UNVERIFIED
from .errors import AlreadyDoneError, DamagedInputError, EmfixError, SchemaError, UnfinishedError, UsageError
from .hierarchy import ROOT
from .idshift import id_owner
from .schema import EM_TABLES, discover_graph, require_experiment_manager, table_named
from .values import INTEGER_BITS


def foreign_ddl(source, target, graph, foreign, init):
    """CREATE statements for tables of SRC's subtree that are not the Experiment Manager's and DST lacks:
    taken from SRC when both are the same engine and --init asks for tables; otherwise a refusal that
    names them before anything is copied (a copy that stops at them half-way helps nobody)."""
    if not foreign:
        return []
    if init and source.dialect == target.dialect:
        if source.dialect == "sqlite":
            return [re.sub(r"^\s*CREATE\s+TABLE\s+", "CREATE TABLE IF NOT EXISTS ", source.table_sql(t), count=1,
                       flags=re.I)
                for t in foreign]
        return [source.query("SHOW CREATE TABLE %s" % source.quote(t))[0][1] for t in foreign]
    described = "; ".join("%s (%d row%s of this experiment; columns %s)" % (t, n, "" if n == 1 else "s", ", ".join(
        graph.columns[t]))
                          for t, n in foreign.items())
    raise SchemaError("%s lacks tables that are not the Experiment Manager's: %s; nothing was copied" % (
        target.address.display(), described),
        hint="create %s in DST first%s, or add --skip-tables %s to leave those rows out" % (
            "it" if len(foreign) == 1 else "them",
            "" if source.dialect == target.dialect else " (SRC and DST are different engines, so emfix does not "
            "translate their DDL)", ",".join(foreign)))


def target_requires_json(target, will_create=False):
    """MySQL's JSON type, or MariaDB's CHECK (json_valid(...)) on METRIC.per_label_val (as --init makes it)."""
    if target.dialect != "mysql":
        return False
    if will_create:
        return True
    kind = target.scalar("SELECT data_type FROM information_schema.columns WHERE table_schema = DATABASE() AND "
                         "table_name = 'METRIC' AND column_name = 'per_label_val'")
    if str(kind).lower() == "json":
        return True
    return bool(target.scalar("SELECT count(*) FROM information_schema.check_constraints WHERE constraint_schema = "
                              "DATABASE() AND table_name = 'METRIC' AND check_clause LIKE '%json_valid%'"))


def _integer_tests(source, column, kind):
    """(the value whose lowest and highest are read, the count of values that are not integers) as SQL, for a
    column of SRC (`kind`: its MySQL type; None: SQLite) going into an integer column of DST; None: not checked."""
    value = "t.%s" % source.quote(column)
    if kind is None:  # SQLite: what its INTEGER affinity could not make an integer (3.0 and 1e19 it could)
        return value, "sum(typeof(%s) IN ('text', 'blob') OR (typeof(%s) = 'real' AND %s <> round(%s)))" % (
            (value,) * 4)
    if kind in INTEGER_BITS:
        return value, "0"
    if kind == "bit":
        return "(%s + 0)" % value, "0"  # (MIN() of a BIT comes back as digits the driver reads as its bytes)
    if kind in NUMBER_KINDS:  # (round 34: a DOUBLE 3.5 was copied as 4)
        return value, "sum(%s <> ROUND(%s))" % (value, value)
    if kind in TEXT_KINDS:  # any text (round 34: '12abc' stopped the copy at its batch; '12' is stored as 12, which
        return value, "sum(%s IS NOT NULL)" % value  # the verify never finds the same as the text '12')
    return None


def refuse_ids_the_copy_cannot_move(source, graph, tree, tables):
    """An id or a link to one that is not an integer (a REAL 1.0, the text '1' or ' 1' SQLite compares with 1, a
    MariaDB VARCHAR or DECIMAL link): the walk reaches its row as the database compares it, but the copy moves only
    integers by its offsets, so such a trial was copied still pointing at experiment 1, DST's own (round 48: the
    subtree split between two experiments, then DIFFERS). Refused before anything is written."""
    sqlite = source.dialect == "sqlite"
    for table in tables:
        # SQLite: an INTEGER or NUMERIC affinity makes an integer of 1.0 and '1' as it stores them; what it keeps
        # otherwise (1.5, 'abc') equals no id, so no row of DST either (it dangles, as in SRC): not read
        kinds = {d.name.lower(): sqlite_affinity(d.type) for d in source.column_details(table)} if sqlite else \
            source.column_types(table)
        moved = [c for c in graph.columns[table] if id_owner(graph, table, c) and kinds.get(c.lower()) not in (
            ("INTEGER", "NUMERIC") if sqlite else INTEGER_BITS)]
        if not moved:
            continue
        odd = ["typeof(t.%s) NOT IN ('integer', 'null')" % source.quote(c) if sqlite else
               "t.%s IS NOT NULL" % source.quote(c) for c in moved]
        # (the walk's key table holds every id and link column, as stored: no read of the table itself)
        held = table in tree.held and set(moved) <= set(tree.columns.get(table, ()))
        row = source.query("SELECT %s FROM %s" % (", ".join("sum(%s), min(CASE WHEN %s THEN %s END)" % (
            test, test, "quote(t.%s)" % source.quote(c) if sqlite else "QUOTE(t.%s)" % source.quote(c))
            for c, test in zip(moved, odd)), "%s t" % source.quote(tree.held[table]) if held else
            tree.rows(source, graph, table)))[0]
        for n, column in enumerate(moved):
            found, example = row[2 * n:2 * n + 2]
            if found:
                raise DamagedInputError(
                    "%s not an integer (e.g. %s), which the copy cannot move with the ids it moves: the row would "
                    "keep pointing at that id in DST; nothing was copied" % (
                        values_of(int(found), table, column), example.decode() if isinstance(example, bytes)
                        else example),
                    hint=_integer_hint(source, table, column, kinds.get(column.lower())))


def _integer_hint(source, table, column, kind):
    """How to make a column's ids integers: an UPDATE where the column keeps what it is given (SQLite without a type),
    else a type of its own (round 50: `UPDATE ... CAST(... AS INTEGER)` into a TEXT column stored text again)."""
    if kind == "BLOB":
        return "make them integers in SRC (UPDATE %s SET %s = CAST(%s AS INTEGER) WHERE ...), then run again" % (
            source.quote(table), source.quote(column), source.quote(column))
    return "give %s.%s an integer type in SRC (%s), then run again" % (
        table, column, "ALTER TABLE ... MODIFY, if every value is a whole number" if source.dialect == "mysql" else
        "a %s column keeps them as they are: rebuild the table with INTEGER" % kind)


def refuse_numbers_past_dst_columns(source, target, graph, tree, tables, existing):
    """A MySQL DST's integer column that cannot hold a number of the subtree (an EPOCH.idx of 2^31 into the INT
    --init makes; a BIGINT UNSIGNED past 2^63 into a BIGINT; -1 into an UNSIGNED or a BIT) refused the batch holding
    it, after other tables' batches committed (round 32): found before the first batch, from the lowest and highest
    value of each such column (read from the walk's key table when it holds the column, as it does every key and
    link column). Only where SRC's column can hold more than DST's: SQLite's INTEGER (64 bits), or a wider MySQL
    type. From SQLite also any value of such a column that is not an integer (a REAL with a fraction, text, a BLOB:
    what SQLite's INTEGER affinity could not make one), which MySQL stores changed or refuses (round 33: 3.5 was
    copied as 4, and the verify said DIFFERS after the copy; '0x10' stopped it at its batch)."""
    for table in tables:
        wanted = integer_ranges(target, table, existing)
        had = integer_ranges(source, table) if source.dialect == "mysql" else None
        kinds = source.column_types(table) if had is not None else {}
        tests = {c: _integer_tests(source, c, kinds.get(c.lower())) for c in graph.columns[table]
                 if c.lower() in wanted and (had is None or c.lower() not in had or not (
                     wanted[c.lower()][0] <= had[c.lower()][0] and had[c.lower()][1] <= wanted[c.lower()][1]))}
        columns = [c for c, test in tests.items() if test is not None]
        if not columns:
            continue
        row = _subtree_bounds(source, graph, tree, table, columns, [tests[c] for c in columns], wanted, had is None)
        for n, column in enumerate(columns):
            low, high, odd = row[3 * n:3 * n + 3]
            least, most = wanted[column.lower()]
            outside = [v for v in (low, high) if not odd and v is not None and not least <= v <= most]
            if not odd and not outside:
                continue
            made = table_named(table, existing) is None
            first = "create the schema first (emfix init DST), then " if made else ""
            if odd:
                raise DamagedInputError(
                    "%s not an integer (%s), which %s's integer column would store changed or refuse; nothing was "
                    "copied" % (values_of(odd, table, column), "a number with a fraction, or text" if had is not None
                                else "a REAL with a fraction, text or a BLOB SQLite keeps in that column",
                                target.address.display()),
                    hint="make them integers in SRC%s, or %smake the column in DST one that holds such values, then "
                         "run again" % ("" if had is not None else " (typeof(%s) tells which)" % source.quote(column),
                                        first))
            raise DamagedInputError(
                "a value of %s.%s is %s, outside what %s's column holds (%s to %s); nothing was copied" % (
                    table, column, outside[0], target.address.display(), least, most),
                hint="%swiden the column in DST (ALTER TABLE %s MODIFY %s %s), or change the value in SRC, then run "
                     "again" % (first, target.quote(table), target.quote(column), _type_holding(outside[0])))


def _subtree_bounds(source, graph, tree, table, columns, tests, wanted, sqlite):
    """integer_bounds of the subtree's values of `columns`: from the walk's key table where it holds the table's own
    values of them (no scan of the table). METRIC's and ARTIFACT's key table holds the link columns' values instead
    (round 45: text ids in BATCH_METRIC.metric_id were said to be METRIC.id's): their ids are among them, so integers
    there within DST's range answer for the ids too; anything else is read from the table's own rows."""
    if table in tree.held and set(columns) <= set(tree.columns.get(table, ())):
        return integer_bounds(source, tests, "%s t" % source.quote(tree.held[table]), sqlite)
    if sqlite and table in tree.linked and set(columns) <= set(tree.linked[table][1:]):
        row = integer_bounds(source, tests, "%s t" % source.quote(tree.linked[table][0]), sqlite, quick_only=True)
        if row is not None and all(v is None or wanted[c.lower()][0] <= v <= wanted[c.lower()][1]
                                   for n, c in enumerate(columns) for v in row[3 * n:3 * n + 2]):
            return row
    return integer_bounds(source, tests, tree.rows(source, graph, table), sqlite)


def _type_holding(value):
    """A MySQL integer type that holds `value`, as a hint says it (round 48: 1e19 refused by a BIGINT was told to
    make the column BIGINT)."""
    if -(1 << 31) <= value < (1 << 31):
        return "INT"
    if -(1 << 63) <= value < (1 << 63):
        return "BIGINT"
    if 0 <= value < (1 << 64):
        return "BIGINT UNSIGNED"
    return "DECIMAL(65, 0)"


def integer_bounds(source, tests, origin, sqlite, quick_only=False):
    """(lowest, highest, how many are not integers) of each of `tests` (_integer_tests) over `origin`, flattened.
    From SQLite first by min(), max() and sum(v * 0) alone, a third of the exact count's cost (BATCH's key table:
    0.026 s against 0.072 s a 104k rows): text or a BLOB sorts above every number and comes back as the highest, an
    infinite REAL as the lowest or highest (its product with 0 is NULL), and any other REAL makes the sum a REAL;
    so integers alone there say that no value is anything else, and only otherwise are they counted one by one
    (`quick_only`: None then)."""
    if sqlite:
        row = source.query("SELECT %s FROM %s" % (", ".join(
            "min({0}), max({0}), sum({0} * 0)".format(value) for value, _odd in tests), origin))[0]
        if all(v is None or type(v) is int for v in row):
            return [0 if n % 3 == 2 else v for n, v in enumerate(row)]
    if quick_only:
        return None
    return source.query("SELECT %s FROM %s" % (", ".join(
        "min({0}), max({0}), {1}".format(*test) for test in tests), origin))[0]


NUMBERS_AS_TEXT = frozenset(INTEGER_BITS) | {"float", "double", "real", "bit", "year"}  # (a DECIMAL keeps its digits)


def refuse_numbers_sqlite_cannot_hold(source, target, graph, tree, tables, existing):
    """MySQL into SQLite, refused before the first batch (round 29): an integer past 2^63 - 1 (BIGINT UNSIGNED,
    BIT(64)), which SQLite's INTEGER cannot hold (a copy stopped at it with exit 70, its first tables committed); a
    DECIMAL into a column of DST that stores numbers as REAL (NUMERIC affinity: a DECIMAL(65,30) of 66 digits kept
    15, and any DECIMAL differed to the verify, after the copy); any other number into a column of DST that stores
    text (TEXT affinity: a BIGINT 123 became '123', a FLOAT 0.1 '0.100000001490116'). DST's tables as they are
    (`existing`), or as --init is about to make them (round 45: a DECIMAL 10.00 into --init's INT was not checked)."""
    if source.dialect != "mysql" or target.dialect != "sqlite":
        return
    for table in tables:
        kinds = source.column_types(table)
        affinity = {c: (sqlite_affinity(declared), declared) for c, declared in
                    dst_declared_types(target, table, existing).items()}
        numeric = {c: declared for c, (kind, declared) in affinity.items() if kind in ("INTEGER", "REAL", "NUMERIC")}
        text = {c: declared for c, (kind, declared) in affinity.items() if kind == "TEXT"}
        tests = [(c, "SUM(t.%s + 0 > 9223372036854775807)" % source.quote(c), None) for c in graph.columns[table]
                 if kinds.get(c.lower()) in ("bigint", "bit")]
        tests += [(c, "SUM(t.%s IS NOT NULL)" % source.quote(c), numeric[c.lower()]) for c in graph.columns[table]
                  if kinds.get(c.lower()) == "decimal" and c.lower() in numeric]
        tests += [(c, "SUM(t.%s IS NOT NULL)" % source.quote(c), ("text", text[c.lower()]))
                  for c in graph.columns[table] if c.lower() in text and kinds.get(c.lower()) in NUMBERS_AS_TEXT]
        if not tests:
            continue
        row = source.query("SELECT %s FROM %s" % (", ".join(sql for _c, sql, _d in tests),
                                                  tree.rows(source, graph, table)))[0]
        for (column, _sql, declared), found in zip(tests, row):
            if not found:
                continue
            many = values_of(found, table, column)
            if isinstance(declared, tuple):  # (a BIGINT 123 was stored as the text '123': DIFFERS after the copy)
                raise DamagedInputError(
                    "%s (%s), and %s's column is %s, which SQLite stores as text (never the same value to the "
                    "verify); nothing was copied" % (
                        values_of(found, table, column, "is a number", "are numbers"), kinds[column.lower()].upper(),
                        target.address.display(), declared[1]),
                    hint="make that column INTEGER, REAL or NUMERIC in DST (or give it no type), then run again")
            if declared is None:
                raise DamagedInputError(
                    "%s past 9223372036854775807, more than a SQLite INTEGER of %s holds; nothing was copied" % (
                        many, target.address.display()),
                    hint="copy this experiment into a MySQL database instead, or change those values in SRC first")
            raise DamagedInputError(  # (1.5 too: kept as the REAL 1.5, it never verified as the DECIMAL: round 31)
                "%s DECIMAL, and %s's column is %s, which SQLite stores as a REAL (a double: not the DECIMAL's digits, "
                "and never the same value to the verify); nothing was copied" % (
                    many, target.address.display(), declared or "without a type"),
                hint="make that column TEXT in DST (SQLite keeps the digits of a TEXT column as they are), then run "
                     "again")


def refuse_blobs_in_text(source, target, graph, tree, blobs):
    """Refuse, naming the rows, before anything is written (migrate's check found `blobs`: {(table, column):
    count})."""
    described, not_utf8 = [], []
    for (table, column), count in sorted(blobs.items()):
        key = graph.primary_keys.get(table) or ("rowid",)
        rows = source.query("SELECT %s, t.%s FROM %s ORDER BY %s LIMIT %d" % (
            ", ".join("t.%s" % source.quote(k) for k in key), source.quote(column), tree.rows(
                source, graph, table, "typeof(t.%s) = 'blob'" % source.quote(column)),
            ", ".join("t.%s" % source.quote(k) for k in key), BLOB_IDS_SHOWN))
        shown = ", ".join("/".join(str(v) for v in row[:-1]) for row in rows) + (", ..." if count > len(rows) else "")
        described.append("%s %s.%s (%s %s)" % ("{:,}".format(count), table, column, "/".join(key), shown))
        not_utf8 += ["/".join(str(v) for v in row[:-1]) for row in rows if not _is_utf8(row[-1])]
    only_metric_json = set(blobs) == {("METRIC", "per_label_val")}
    fix = "turn them into text first (emfix fix-json %s stores each as the text it holds" % source.address.display()
    if not_utf8:  # fix-json cannot make text of those: only --reset-unfixable changes them
        fix += "; %s %s not UTF-8 text, which only `fix-json --reset-unfixable` replaces, keeping the original in " \
               "its quarantine" % ("id" if len(not_utf8) == 1 else "ids", ", ".join(not_utf8) + (
                   " is" if len(not_utf8) == 1 else " are"))
    raise DamagedInputError(
        "values of this experiment are stored as BLOBs in text columns: %s; a MySQL text column of %s gives back "
        "text, so their copy could not be the same value; nothing was copied" % (
            "; ".join(described), target.address.display()),
        hint=fix + "), then run again" if only_metric_json else
        "if they are text, store them as text first (UPDATE the table SET the column = CAST(column AS TEXT) WHERE "
        "typeof(column) = 'blob', after `emfix snapshot create`), then run again")


def _is_utf8(value):
    try:
        bytes(value).decode("utf-8")
        return True
    except (UnicodeDecodeError, TypeError):
        return False


BLOB_IDS_SHOWN = 10


def sqlite_not_json(value):
    """SQLite's test of a value MySQL's JSON_VALID refuses: SQLite's json_valid() reads TEXT only up to a NUL
    ('{}' NUL 'x' passes), MySQL's reads it whole."""
    return "(NOT json_valid({v}) OR (typeof({v}) = 'text' AND instr({v}, char(0)) > 0))".format(v=value)


def sqlite_doubtful_json(value):
    """Text SQLite's json_valid() takes that MariaDB's may not: nested deeper than it allows (counted by its opening
    brackets, only in a value long enough to hold them), or holding a surrogate's escape (a lone one is refused)."""
    least = JSON_DEPTH + 1
    return ("(length({v}) >= {twice} AND length({v}) - length(replace(replace({v}, '[', ''), '{{', '')) >= {least}) "
            "OR (instr({v}, '\\u') > 0 AND {v} GLOB '*\\u[dD][89abcdefABCDEF]*')").format(
                v=value, least=least, twice=2 * least)


def refuse_invalid_json(source, target, graph, tree, will_create=False):
    """Stop before the first batch, not at it, when DST's JSON column would refuse a value of this subtree."""
    if "METRIC" not in graph.tables or "per_label_val" not in graph.columns["METRIC"]:
        return
    if not target_requires_json(target, will_create):
        return
    where = tree.referenced_where(source, graph, "METRIC")
    if not where:
        return
    value = "t.%s" % source.quote("per_label_val")
    invalid = "NOT JSON_VALID(%s)" % value if source.dialect == "mysql" else sqlite_not_json(value)
    count = int(source.scalar("SELECT count(*) FROM %s t WHERE %s AND %s IS NOT NULL AND %s" % (
        source.quote("METRIC"), where, value, invalid)) or 0)
    if source.dialect == "sqlite":  # what SQLite's json_valid() takes and MariaDB's does not (round 37)
        count += sum(1 for (text,) in source.iter_rows("SELECT %s FROM %s t WHERE %s AND %s IS NOT NULL AND NOT %s AND "
                                                       "(%s)" % (value, source.quote("METRIC"), where, value, invalid,
                                                                 sqlite_doubtful_json(value)))
                     if not mariadb_json_valid(text))
    if count:
        raise DamagedInputError("%s metric values of this experiment are not valid JSON, and the JSON column of %s "
                                "refuses them; nothing was copied" % ("{:,}".format(count), target.address.display()),
                                hint="repair them first (emfix fix-json %s), or write into a LONGTEXT column "
                                     "(emfix init DST --json-type text)" % source.address.display())


def refuse_missing_columns(source, target, graph, tree, tables, existing):
    """SRC's columns that DST's table lacks (an INSERT naming them would stop the copy at that table), for the
    tables to copy that hold rows of this experiment: DST's own, or the Experiment Manager's as --init makes
    them. `existing`: DST's table names."""
    ours = {t.name: [c.name for c in t.columns] for t in EM_TABLES}
    missing = {}
    for table in tables:
        named = table_named(table, existing)
        there = target.columns(named) if named else ours.get(table)
        if there is None:
            continue  # made from SRC's own DDL (foreign_ddl): SRC's columns
        have = {c.lower() for c in there}
        if named:  # a generated column is there, if not among the columns SQLite lists
            have |= target.generated_columns(named)
        lacking = [c for c in graph.columns[table] if c.lower() not in have]
        if lacking and tree.count(source, graph, table):
            missing[table] = lacking
    if not missing:
        return
    columns = ["%s.%s" % (t, c) for t, lacking in missing.items() for c in lacking]
    foreign = [t for t in missing if t not in ours]
    raise SchemaError("%s lacks column%s %s that rows of this experiment have in %s; nothing was copied" % (
        target.address.display(), "s" if len(columns) > 1 else "", ", ".join(columns), source.address.display()),
        hint="add %s to DST first (`emfix schema diff SRC DST` prints the ALTER TABLE; --init creates missing "
             "tables only, never columns)%s" % ("it" if len(columns) == 1 else "them", (
                 ", or add --skip-tables %s to leave those rows out" % ",".join(foreign)) if foreign else ""))


def refuse_unfillable_columns(source, target, graph, tree, tables, existing):
    """DST columns a copy cannot fill, for the tables to copy that hold rows of this experiment: NOT NULL
    without a default where SRC has no such column (the INSERT would stop at that table half-way), and DST's
    generated columns where SRC holds values of its own (DST computes them: SRC's values could not arrive, and
    the verify would say the copy differs)."""
    unfilled, computed = {}, {}
    for table in tables:
        there = table_named(table, existing)
        if there is None:
            continue  # created by --init, from the Experiment Manager's schema or SRC's own DDL
        have = {c.lower() for c in graph.columns[table]}
        generated, theirs = target.generated_columns(there), source.generated_columns(table)
        names_here = {c.lower(): c for c in graph.columns[table]}
        computed_here = [names_here[c] for c in sorted(generated) if c in have and c not in theirs]
        if computed_here:
            computed[table] = computed_here
        lacking = [c for c in target.required_columns(there) if c.lower() not in have]
        if lacking:
            unfilled[table] = lacking
    unfilled = ["%s.%s" % (t, c) for t, cs in unfilled.items() if tree.count(source, graph, t) for c in cs]
    computed = ["%s.%s" % (t, c) for t, cs in computed.items() if tree.count(source, graph, t) for c in cs]
    if unfilled:
        raise SchemaError("%s has column%s %s (NOT NULL, no default) that %s lacks: the copy could not fill %s; "
                          "nothing was copied" % (target.address.display(), "s" if len(unfilled) > 1 else "",
                                                  ", ".join(unfilled), source.address.display(),
                                                  "them" if len(unfilled) > 1 else "it"),
                          hint="give %s a default in DST (ALTER TABLE ... ALTER COLUMN ... SET DEFAULT ...) or allow "
                               "NULL there, then run the same command again" % ("them" if len(unfilled) > 1 else "it"))
    if computed:
        raise SchemaError("%s computes %s (generated column%s) where %s holds values of its own, which the copy "
                          "could not bring; nothing was copied" % (
                              target.address.display(), ", ".join(computed), "s" if len(computed) > 1 else "",
                              source.address.display()),
                          hint="make %s a plain column in DST, or the same generated column in SRC, then run the "
                               "same command again" % ("each" if len(computed) > 1 else "it"))


def checked_source(source, src, experiment_id, resume=False):
    """SRC's graph, once SRC has the Experiment Manager's tables and (unless `resume`: a finished copy's experiment
    may have left SRC since) this experiment: checked before DST is opened, which --init into MySQL creates (a refused
    SRC left an empty database, round 54). (Round 46: a SRC without TRIAL_RUN crashed the copy, exit 70, with DST
    made; --force is not that here.)"""
    graph = discover_graph(source)
    require_experiment_manager(graph, src, hint="check the path or URL of SRC")
    if not resume and not source.query("SELECT 1 FROM %s WHERE %s = ?" % (source.quote(ROOT), source.quote("id")),
                                       (experiment_id,)):
        raise UsageError("experiment %d does not exist in %s" % (experiment_id, src.display()))
    return graph


def refuse_by_journal(src, dst, experiment_id, journal, resume, force):
    """What DST's journal says against copying this experiment as asked."""
    state = journal and journal["state"]
    if resume and state not in (RUNNING, DONE, DIFFERS, UNVERIFIED):
        raise UsageError("nothing to resume: %s has no interrupted migration of experiment %d from %s" % (
            dst.display(), experiment_id, src.display()), hint="run the same command without --resume")
    if state == RUNNING and not resume and not force:
        raise UnfinishedError("a partial migration of experiment %d into %s exists (%s rows copied)" % (
            experiment_id, dst.display(), "{:,}".format(sum(journal["copied"].values()))),
            hint="run again with --resume to finish it (--force copies it again from the start with new ids; "
                 "the rows copied so far stay)")
    if resume or force:
        return
    if state == DIFFERS:
        raise EmfixError("experiment %d from %s was copied into %s, but the copy differs from the source" % (
            experiment_id, src.display(), dst.display()),
            hint="find what changes DST's rows (a trigger?), then run again with --resume to verify it again; "
                 "--force copies it again as a new experiment")
    if state in (DONE, UNVERIFIED):
        raise AlreadyDoneError("experiment %d from %s was already migrated to %s%s" % (
            experiment_id, src.display(), dst.display(), " (not verified)" if state == UNVERIFIED else ""),
            hint="pass --force to copy it again as a new experiment%s" % (
                "; --resume verifies the copy" if state == UNVERIFIED else ""))
