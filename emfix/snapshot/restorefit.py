"""Whether a snapshot's rows fit a MySQL database's tables as they are now: the check a restore makes before it
empties anything, from the snapshot's own CREATE TABLE text (SHOW CREATE TABLE as it was) against
information_schema: the columns (one added NOT NULL without a default, dropped, narrowed, made NOT NULL), the names
of the foreign keys of the tables it will make, and the unique keys and CHECK constraints added since; and the INSERT
triggers that will run on each row on its way in (said, not refused).
"""

import re

from ..backends.mysqlcatalog import text_of
from .sqlreader import COLUMN_LINE

INTEGERS = {"tinyint": 1, "smallint": 2, "mediumint": 3, "int": 4, "integer": 4, "bigint": 5}
TEXTS = {"tinytext": 255, "text": 65535, "mediumtext": 16777215, "longtext": 4294967295}
BLOBS = {"tinyblob": 255, "blob": 65535, "mediumblob": 16777215, "longblob": 4294967295}
SIZED = {"char", "varchar", "binary", "varbinary", "datetime", "timestamp", "time", "bit"}
FOREIGN_KEY_NAME = re.compile(r"CONSTRAINT `((?:[^`]|``)+)` FOREIGN KEY")


UNIQUE_LINE = re.compile(r"^\s*(?:PRIMARY KEY|UNIQUE KEY `(?:[^`]|``)+`) \((.*)\)", re.M)
TEXT_LITERAL = re.compile(r"'(?:[^'\\]|\\.|'')*'")  # a default or comment: its words are not the column's
KEY_PART = re.compile(r"`((?:[^`]|``)+)`(?:\((\d+)\))?")  # a column of an index, and its prefix's length
CHECK_NAME = re.compile(r"CONSTRAINT `((?:[^`]|``)+)` CHECK")
COLUMN_CHECK = re.compile(r"^\s*`((?:[^`]|``)+)` .* CHECK \(", re.M)  # MariaDB names a column's CHECK by the column


def snapshot_columns(ddl):
    """{column (lower case): (name, type)} of one SHOW CREATE TABLE text."""
    return {m.group(1).replace("``", "`").lower(): (m.group(1).replace("``", "`"), _plain(m.group(2)))
            for m in COLUMN_LINE.finditer(ddl)}


def _plain(kind):
    """A column type as both servers print it: integer display widths dropped (int(11) is int)."""
    parts = TEXT_LITERAL.split(kind.strip())  # ENUM and SET values keep their case (round 31: 'Alpha' is not 'alpha')
    literals = TEXT_LITERAL.findall(kind.strip())
    kind = "".join(part.lower() + (literals[n] if n < len(literals) else "") for n, part in enumerate(parts))
    return re.sub(r"^(tinyint|smallint|mediumint|int|integer|bigint)\(\d+\)", r"\1", kind)


def split_type(kind):
    """(base type, (sizes), unsigned?) of a column type as SHOW CREATE TABLE prints it."""
    match = re.match(r"^([a-z]+)(?:\(([^)]*)\))?( unsigned)?", kind)
    numbers = tuple(int(n) for n in (match.group(2) or "").split(",") if n.strip().isdigit())
    return match.group(1), numbers, bool(match.group(3))


def takes(live, wanted):
    """Does a column of type `live` take every value a column of type `wanted` held, as it was?"""
    if live == wanted:
        return True
    (a, a_size, a_unsigned), (b, b_size, b_unsigned) = split_type(live), split_type(wanted)
    if a == b and a in ("enum", "set"):  # every value the snapshot's could hold, spelled alike (round 31)
        return set(TEXT_LITERAL.findall(wanted)) <= set(TEXT_LITERAL.findall(live))
    if (a, b) in (("binary", "varbinary"), ("binary", "binary"), ("char", "varchar")):
        return False  # a BINARY pads with zero bytes, a CHAR drops trailing spaces: other values (round 31)
    if a in INTEGERS and b in INTEGERS:
        return a_unsigned == b_unsigned and INTEGERS[a] >= INTEGERS[b]
    if a == b and a in SIZED and a_unsigned == b_unsigned:
        return a_size >= b_size
    if a == b == "decimal" and len(a_size) == len(b_size) == 2:
        return a_size[1] >= b_size[1] and a_size[0] - a_size[1] >= b_size[0] - b_size[1]
    if a in ("char", "varchar") and b in ("char", "varchar") or a in ("binary", "varbinary") and b in (
            "binary", "varbinary"):
        return a_size >= b_size
    length = max(b_size or (1,))
    if a in TEXTS:  # bytes; a character of utf8mb4 takes up to 4
        return TEXTS[a] >= (TEXTS[b] if b in TEXTS else 4 * length if b in ("char", "varchar") else 1 << 40)
    if a in BLOBS:
        return BLOBS[a] >= (BLOBS[b] if b in BLOBS else length if b in ("binary", "varbinary") else 1 << 40)
    return a == "double" and b == "float"


def restore_problems(db, tables):
    """What stops the rows of the snapshot's `tables` ({name: SHOW CREATE TABLE text}) going into the
    database as it is now, or changes them on the way in: [text], empty when nothing does. A table the database lacks
    is created."""
    live, required, texts = {}, {}, {}
    for table, column, kind, nullable, charset, collation in db.catalog_query(
            "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, CHARACTER_SET_NAME, COLLATION_NAME FROM "
            "information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, ORDINAL_POSITION"):
        table, column, kind, nullable = (text_of(v) for v in (table, column, kind, nullable))
        if table not in required:
            required[table] = {c.lower() for c in db.required_columns(table)}
        needs_value = column.lower() in required[table]
        live.setdefault(db.table_key(table), {})[column.lower()] = (column, _plain(kind), needs_value,
                                                                     nullable == "YES")
        if charset is not None:
            texts.setdefault(db.table_key(table), {})[column.lower()] = (text_of(charset), text_of(collation))
    problems = []
    held = {t.lower(): t for t in db.tables()}
    uniques, checks = _rules_now(db)
    keys = db.foreign_key_names()
    for table, ddl in tables.items():
        columns = live.get(db.table_key(table))
        made = _created_name(ddl) or table  # as its CREATE TABLE names it (a SQLite-format file keys it otherwise)
        other = held.get(made.lower())
        if db.table_key(made) not in live and other is not None:  # a server that tells cases apart: the restore
            problems.append("the snapshot's %s is %s here (another spelling: restoring would make a second table "
                            "beside it)" % (made, other))  # (round 25: a half-made set of empty tables, then refused)
            continue
        if columns is None:  # to be made: its foreign keys' names must be free (InnoDB compares them in any case)
            names = [name.replace("``", "`") for name in FOREIGN_KEY_NAME.findall(ddl or "")]
            problems += ["%s's foreign key %s is the name of table %s's" % (made, name, keys[name.lower()][1])
                         for name in names if name.lower() in keys]
            continue
        wanted, nulls, computed = snapshot_columns(ddl), nullable_columns(ddl), generated_columns(ddl)
        generated_now = db.generated_columns(table)
        for key, (name, kind) in wanted.items():
            if key in computed and key in columns and key not in generated_now:  # its default, not the values
                problems.append("%s.%s was computed by the server (GENERATED) in the snapshot, which holds none of "
                                "its values; the column is plain now" % (table, name))  # (round 31)
            if key in computed:  # the snapshot holds no value of it (round 29: one dropped since was refused)
                continue
            if key in generated_now:
                problems.append("%s.%s is computed by the server now (GENERATED), the snapshot holds its values"
                                % (table, name))
            elif key not in columns:
                problems.append("%s.%s (in the snapshot) is not in the table" % (table, name))
            elif not takes(columns[key][1], kind):
                problems.append("%s.%s is %s, the snapshot's was %s" % (table, name, columns[key][1], kind))
            elif key in nulls and not columns[key][3]:  # an outside tester: emptied, then "cannot be null"
                problems.append("%s.%s is NOT NULL now, the snapshot's took NULL" % (table, name))
        for key, (name, kind, needs_value, _nullable) in columns.items():
            if (key not in wanted or key in computed) and needs_value:  # (round 30: a generated one made plain)
                problems.append("%s.%s (%s NOT NULL, no default) is not in the snapshot" % (table, name, kind))
        problems += _new_rules(table, ddl, uniques.get(db.table_key(table), {}),
                               checks.get(db.table_key(table), set()))
        problems += _text_changes(db, table, ddl, wanted, texts.get(db.table_key(table), {}),
                                  uniques.get(db.table_key(table), {}))
    return problems


def insert_triggers(db, tables):
    """What the INSERT triggers of the tables a restore loads ({name: SHOW CREATE TABLE text}) will do: run on every
    row, which then may not be the snapshot's (an outside tester: names came back with " (trg)" added, exit 0). Said,
    not refused: a trigger is the application's own (an audit row, say), and one that refuses a row ends the
    restore as a refused statement does."""
    restored = {db.table_key(_created_name(ddl) or t) for t, ddl in tables.items()}
    return ["%s has trigger %s (%s INSERT): the restore runs it on every row it loads, so those rows are what it "
            "makes of the snapshot's" % (t, name, timing) for name, t, timing in (
                (text_of(n), text_of(t), text_of(w)) for n, t, w in db.query(
                    "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_TIMING FROM information_schema.TRIGGERS WHERE "
                    "EVENT_OBJECT_SCHEMA = DATABASE() AND EVENT_MANIPULATION = 'INSERT' ORDER BY 2, 1"))
            if db.table_key(t) in restored]


def generated_columns(ddl):
    """The columns (lower case) of one SHOW CREATE TABLE text that the server computes: a snapshot holds no value of
    one (snapshot/sqltext.py leaves them out)."""
    return {m.group(1).replace("``", "`").lower() for m in COLUMN_LINE.finditer(ddl or "")
            if " GENERATED ALWAYS AS " in TEXT_LITERAL.sub("''", ddl[m.end():ddl.find("\n", m.end())])}


def nullable_columns(ddl):
    """The columns (lower case) of one SHOW CREATE TABLE text that take NULL (no NOT NULL on their line)."""
    lines = ((COLUMN_LINE.match(line), TEXT_LITERAL.sub("''", line)) for line in (ddl or "").splitlines())
    return {m.group(1).replace("``", "`").lower() for m, line in lines if m and " NOT NULL" not in line}


def _key_parts(text):
    """The columns of an index as SHOW CREATE TABLE lists them, a prefix kept with its length: `k`(3) is k(3)."""
    return tuple("%s(%s)" % (name.replace("``", "`").lower(), size) if size else name.replace("``", "`").lower()
                 for name, size in KEY_PART.findall(text))


def _new_rules(table, ddl, uniques, checks):
    """The unique keys and CHECK constraints `table` has now that the snapshot's (`ddl`) did not: its rows were
    never held to them, so one may refuse a row after the tables were emptied (an outside tester: a UNIQUE key added
    since, and the restore ended "partly restored")."""
    had = {_key_parts(m.group(1)) for m in UNIQUE_LINE.finditer(ddl or "")}
    problems = ["%s has a unique key %s on (%s) that the snapshot's table did not have" % (
        table, name, ", ".join(columns)) for name, columns in sorted(uniques.items())
        if not any(set(key) <= {c.lower() for c in columns} for key in had)]  # (a key it had, and more: unique)
    named = {m.replace("``", "`").lower() for m in CHECK_NAME.findall(ddl or "")}
    named |= {m.group(1).replace("``", "`").lower() for m in COLUMN_CHECK.finditer(ddl or "")}
    return problems + ["%s has a CHECK constraint %s that the snapshot's table did not have" % (table, name)
                       for name in sorted(checks) if name.lower() not in named]


def _text_changes(db, table, ddl, wanted, texts, uniques):
    """A text column's character set or collation changed since the snapshot (round 29: the tables were emptied,
    then a row refused): a character set that does not hold all of Unicode may not hold its characters; in a unique
    key, another collation may find two of its rows alike ('a' and 'A' once _bin, now _ci)."""
    defaults = {}
    was = text_settings(ddl, lambda charset: defaults[charset] if charset in defaults else defaults.setdefault(
        charset, _default_collation(db, charset)))
    keyed = {c.split("(")[0].lower() for columns in uniques.values() for c in columns}
    problems = []
    for key, (charset, collation) in sorted(texts.items()):
        if key not in was:
            continue
        name, (old_charset, old_collation) = wanted[key][0], was[key]
        if charset != old_charset and charset not in WHOLE_UNICODE:
            problems.append("%s.%s is CHARACTER SET %s now, the snapshot's was %s" % (table, name, charset,
                                                                                      old_charset))
        elif collation != old_collation and key in keyed:
            problems.append("%s.%s, in a unique key, compares by %s now, the snapshot's by %s (two of its rows may "
                            "be alike now)" % (table, name, collation, old_collation))
    return problems


WHOLE_UNICODE = ("utf8mb4", "utf16", "utf16le", "utf32")  # character sets that hold every character
COLUMN_CHARSET = re.compile(r" CHARACTER SET (\w+)")
COLUMN_COLLATION = re.compile(r" COLLATE (\w+)")
TEXT_KINDS = {"char", "varchar", "enum", "set"} | set(TEXTS)


def text_settings(ddl, default_collation):
    """{column (lower case): (character set, collation)} of the text columns of one SHOW CREATE TABLE text: as its
    line says, else as the table's options do (a collation not said: its character set's default)."""
    options = (ddl or "").rsplit(")", 1)[-1]
    table_charset = re.search(r"CHARSET=(\w+)", options)
    table_collation = re.search(r"COLLATE=(\w+)", options)
    settings = {}
    for line in (ddl or "").splitlines():
        found = COLUMN_LINE.match(line)
        if not found or split_type(_plain(found.group(2)))[0] not in TEXT_KINDS:
            continue
        rest = TEXT_LITERAL.sub("''", line[found.end():])
        charset, collation = COLUMN_CHARSET.search(rest), COLUMN_COLLATION.search(rest)
        if charset is None and collation is None:
            charset, collation = table_charset, table_collation
        if charset is None and collation is None:
            continue
        charset = charset.group(1) if charset else collation.group(1).split("_")[0]
        settings[found.group(1).replace("``", "`").lower()] = (
            charset, collation.group(1) if collation else default_collation(charset))
    return settings


def _default_collation(db, charset):
    """The collation a character set has by default on this server."""
    return text_of(db.scalar("SELECT COLLATION_NAME FROM information_schema.COLLATIONS WHERE CHARACTER_SET_NAME = ? "
                             "AND IS_DEFAULT = 'Yes'", (charset,)) or "")


def _rules_now(db):
    """({table_key: {unique index: [columns]}}, {table_key: {CHECK constraint names}}) as the database has them now."""
    uniques = {}
    for table, index, column, part in db.query(
            "SELECT TABLE_NAME, INDEX_NAME, COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS WHERE "
            "TABLE_SCHEMA = DATABASE() AND NON_UNIQUE = 0 ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX"):
        column = text_of(column) + ("(%s)" % part if part else "")  # a prefix: unique in its first characters only
        uniques.setdefault(db.table_key(text_of(table)), {}).setdefault(text_of(index), []).append(column)
    checks = {}
    for table, name in db.query("SELECT TABLE_NAME, CONSTRAINT_NAME FROM information_schema.TABLE_CONSTRAINTS WHERE "
                                "CONSTRAINT_SCHEMA = DATABASE() AND CONSTRAINT_TYPE = 'CHECK'"):
        checks.setdefault(db.table_key(text_of(table)), set()).add(text_of(name))
    return uniques, checks


def _created_name(ddl):
    found = re.match(r"\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?`((?:[^`]|``)+)`", ddl or "", re.IGNORECASE)
    return found.group(1).replace("``", "`") if found else None


