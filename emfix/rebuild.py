"""SQLite: a table change ALTER TABLE cannot make, made without losing what the table holds.

SQLite's own procedure (https://www.sqlite.org/lang_altertable.html, section 7 "Making Other Kinds
Of Table Schema Changes"): with foreign keys off and legacy_alter_table on (the caller's
`rebuild_session`), in one transaction: remember the table's indexes and triggers, CREATE the new
table, copy the rows, DROP the old, RENAME the new, CREATE the indexes and triggers again. What the
table has beyond the Experiment Manager's schema goes with it: extra columns (their definitions as
written, so type, default, collation and checks), extra UNIQUE and FOREIGN KEY constraints, CHECK
constraints, the actions of its foreign keys, its indexes and triggers, and its AUTOINCREMENT
counter (sqlite_sequence), so ids deleted before are never handed out again. Views are not dropped:
with legacy_alter_table on, the RENAME leaves them (and triggers on other tables) as written, and
`check_rebuilds` makes sure each one still compiles. Anything the rebuild cannot carry (WITHOUT
ROWID, STRICT, a collation or check on one of the application's columns) is refused before any
change; `check_rebuilds` compares the table before and after, before COMMIT.
"""

import contextlib
import re

from .catalog import skip_quoted
from .errors import SchemaError
from .schemaddl import REBUILD_PREFIX, column_sql, index_sql

TABLE_CONSTRAINTS = ("CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN")


def split_create_table(sql):
    """([(column name, definition as written)], [table constraints as written], text after the body)."""
    items, current, depth, i, start = [], [], 0, 0, None
    while i < len(sql):
        ch = sql[i]
        if ch in "'\"`[":
            j = skip_quoted(sql, i)
            if start is not None:
                current.append(sql[i:j])
            i = j
            continue
        if sql.startswith("--", i) or sql.startswith("/*", i):
            end = sql.find("\n" if ch == "-" else "*/", i + 2)
            i = len(sql) if end < 0 else end + (1 if ch == "-" else 2)
            current.append(" ")
            continue
        i += 1
        if start is None:
            if ch == "(":
                start = i
            continue
        if ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
        elif ch == ")" or (ch == "," and not depth):
            items.append("".join(current).strip())
            current = []
            if ch == ")":
                break
            continue
        current.append(ch)
    columns, constraints = [], []
    for item in items:
        if _words(item)[:1] and _words(item)[0] in TABLE_CONSTRAINTS:
            constraints.append(item)
        else:
            columns.append((_unquote(_first_token(item)), item))
    return columns, constraints, sql[i:]


def _first_token(text):
    if text[:1] in "'\"`[":
        return text[:skip_quoted(text, 0)]
    return re.match(r"\S+", text).group(0)


def _unquote(name):
    if name[:1] in "'\"`" and name[-1:] == name[:1]:
        return name[1:-1].replace(name[0] * 2, name[0])
    return name[1:-1] if name[:1] == "[" else name


def _words(text):
    """The keywords of a definition: quoted names and literals taken out, upper case."""
    plain, i = [], 0
    while i < len(text):
        if text[i] in "'\"`[":
            i = skip_quoted(text, i)
            plain.append(" _ ")
            continue
        plain.append(text[i])
        i += 1
    return re.findall(r"[A-Z_]+", "".join(plain).upper())


def _fk_actions(db, table):
    """{(columns, parent, ref columns) lower case: ' ON UPDATE … ON DELETE …'} for the actions declared."""
    groups = {}
    for fk_id, seq, parent, column, ref, on_update, on_delete, _match in db.query(
            "PRAGMA foreign_key_list(%s)" % db.quote(table)):
        groups.setdefault(fk_id, []).append((seq, parent, column, ref, on_update, on_delete))
    actions = {}
    for parts in groups.values():
        parts.sort()
        refs = [p[3] for p in parts]
        if any(r is None for r in refs):  # REFERENCES T without columns: T's key
            refs = db.primary_key(parts[0][1])
        key = (tuple(p[2].lower() for p in parts), parts[0][1].lower(), tuple(str(r).lower() for r in refs))
        text = "".join(" ON %s %s" % (what, action) for what, action in (("UPDATE", parts[0][4]),
                                                                          ("DELETE", parts[0][5]))
                       if action and action.upper() != "NO ACTION")
        actions[key] = text
    return actions


def _fk_key(fk):
    return tuple(c.lower() for c in fk.child_columns), fk.parent.lower(), tuple(c.lower() for c in fk.parent_columns)


def rebuild_statements(db, d, ta, tb, a_dialect):
    """The statements that rebuild the live table `tb` as `ta` says, keeping everything else it has."""
    sql = db.table_sql(tb.name)
    written, constraints, tail = split_create_table(sql)
    definitions = {name.lower(): text for name, text in written}
    tail_words = _words(tail)
    if "ROWID" in tail_words or "STRICT" in tail_words:
        raise SchemaError("%s is a %s table, which the rebuild this upgrade needs would not keep; nothing was "
                          "changed" % (tb.name, "WITHOUT ROWID" if "ROWID" in tail_words else "STRICT"),
                          hint="make the change by hand (https://www.sqlite.org/lang_altertable.html, section 7)")
    for column in ta.columns:  # the new table declares these as the Experiment Manager's schema does
        words = _words(definitions.get(column.name.lower(), ""))
        if any(w in words for w in ("COLLATE", "CHECK", "GENERATED")):
            raise SchemaError("%s.%s has a collation or check that the rebuild of %s this upgrade needs would not "
                              "keep; nothing was changed" % (tb.name, column.name, tb.name),
                              hint="make the change by hand (https://www.sqlite.org/lang_altertable.html, section 7)")
    q = db.quote
    extra = [(name, text) for name, text in written if not ta.column(name)]  # generated ones too
    generated = {str(r[1]).lower() for r in _xinfo(db, tb.name) if r[6:7] and r[6] in (2, 3)}
    inline = {name.lower(): _words(text) for name, text in extra}

    def declared_inline(columns, word):
        return len(columns) == 1 and word in inline.get(columns[0].lower(), ())

    parts = [column_sql(d, ta.name, c, a_dialect, ta.primary_key) for c in ta.columns] + [t for _n, t in extra]
    if ta.primary_key and not any(c.auto and tuple(ta.primary_key) == (c.name,) for c in ta.columns):
        parts.append("PRIMARY KEY (%s)" % d.quote_columns(ta.primary_key))
    wanted = {tuple(c.lower() for c in u) for u in ta.unique}
    parts += ["UNIQUE (%s)" % d.quote_columns(u) for u in ta.unique]
    parts += ["UNIQUE (%s)" % d.quote_columns(u) for u in tb.unique
              if tuple(c.lower() for c in u) not in wanted and not declared_inline(u, "UNIQUE")]
    actions = _fk_actions(db, tb.name)
    keys = [_fk_key(f) for f in ta.foreign_keys]
    fks = list(ta.foreign_keys) + [f for f in tb.foreign_keys if _fk_key(f) not in keys
                                   and not declared_inline(f.child_columns, "REFERENCES")]
    parts += ["FOREIGN KEY (%s) REFERENCES %s (%s)%s" % (d.quote_columns(f.child_columns), q(f.parent),
                                                        d.quote_columns(f.parent_columns), actions.get(_fk_key(f), ""))
              for f in fks]
    parts += [c for c in constraints if _words(c)[:1] == ["CHECK"] or _words(c)[:3][2:] == ["CHECK"]]
    temp = REBUILD_PREFIX + tb.name
    copied = [c.name for c in ta.columns if tb.column(c.name)] + [n for n, _t in extra if n.lower() not in generated]
    source = [(tb.column(n).name if tb.column(n) else n) for n in copied]
    statements = ["CREATE TABLE %s (\n  %s\n)" % (q(temp), ",\n  ".join(parts)),
                  "INSERT INTO %s (%s) SELECT %s FROM %s" % (q(temp), d.quote_columns(copied),
                                                              d.quote_columns(source), q(tb.name))]
    if any(c.auto for c in ta.columns):  # the counter goes with the table: ids once used are not used again
        statements += ["DELETE FROM sqlite_sequence WHERE name = '%s'" % temp.replace("'", "''"),
                       "INSERT INTO sqlite_sequence (name, seq) SELECT '%s', seq FROM sqlite_sequence WHERE name = "
                       "'%s'" % (temp.replace("'", "''"), tb.name.replace("'", "''"))]
    statements += ["DROP TABLE %s" % q(tb.name), "ALTER TABLE %s RENAME TO %s" % (q(temp), q(tb.name))]
    saved = db.query("SELECT type, name, sql FROM sqlite_master WHERE tbl_name = ? COLLATE NOCASE AND type IN "
                     "('index', 'trigger') "
                     "AND sql IS NOT NULL ORDER BY type = 'trigger', rowid", (tb.name,))
    names = {str(n).lower() for _t, n, _s in saved}
    statements += [s for t, _n, s in saved if t == "index"]
    statements += [index_sql(d, tb.name, i) for i in ta.indexes if i.name.lower() not in names]
    statements += [s for t, _n, s in saved if t == "trigger"]
    return statements


def _xinfo(db, table):
    """Every column, generated ones too (table_xinfo, SQLite 3.26+; before it there are none to see)."""
    try:
        rows = db.query("PRAGMA table_xinfo(%s)" % db.quote(table))  # an unknown pragma returns no rows
    except Exception:  # noqa: BLE001
        rows = []
    return rows or db.query("PRAGMA table_info(%s)" % db.quote(table))


@contextlib.contextmanager
def rebuild_session(db):
    """Steps 1 and 12 of SQLite's procedure, around the transaction: foreign keys off (the DROP TABLE must
    not cascade or fail), legacy_alter_table on (the RENAME must not rewrite or check views and triggers
    that name the table); both put back as they were."""
    foreign_keys = db.scalar("PRAGMA foreign_keys")
    legacy = db.scalar("PRAGMA legacy_alter_table")
    db.execute("PRAGMA foreign_keys = OFF")
    db.execute("PRAGMA legacy_alter_table = ON")
    try:
        yield
    finally:
        db.execute("PRAGMA legacy_alter_table = %s" % ("ON" if legacy else "OFF"))
        db.execute("PRAGMA foreign_keys = %s" % ("ON" if foreign_keys else "OFF"))


def remember(db, tables):
    """What the rebuilt tables must still have after it (read before the first statement)."""
    wanted = tuple(tables)
    marks = ",".join("?" * len(wanted)) or "NULL"
    state = {"objects": set(map(tuple, db.query(
        "SELECT type, name, tbl_name FROM sqlite_master WHERE type IN ('index', 'trigger') AND sql IS NOT NULL AND "
        "tbl_name IN (%s)" % marks, wanted))),
        "views": set(map(tuple, db.query("SELECT name, sql FROM sqlite_master WHERE type = 'view'"))),
        "rows": {t: db.scalar("SELECT count(*) FROM %s" % db.quote(t)) for t in wanted},
        "columns": {t: {str(r[1]).lower() for r in _xinfo(db, t)} for t in wanted},
        "sequence": {}}
    if db.scalar("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_sequence'"):
        state["sequence"] = dict(db.query("SELECT name, seq FROM sqlite_sequence WHERE name IN (%s)" % marks, wanted))
    return state


def check_rebuilds(db, before):
    """After the statements, before COMMIT: every row, column, index, trigger, view and counter is still there."""
    after = remember(db, before["rows"])
    lost = []
    for table, count in before["rows"].items():
        if after["rows"][table] != count:
            lost.append("%s of its %s rows" % (count - after["rows"][table], table))
        lost += ["column %s.%s" % (table, c) for c in sorted(before["columns"][table] - after["columns"][table])]
    lost += ["%s %s on %s" % o for o in sorted(before["objects"] - after["objects"])]
    lost += ["view %s as it was" % v[0] for v in sorted(before["views"] - after["views"])]
    lost += ["the AUTOINCREMENT counter of %s (%s)" % (t, seq) for t, seq in sorted(before["sequence"].items())
             if (after["sequence"].get(t) or 0) < seq]
    for name, _sql in sorted(after["views"]):
        try:
            db.query("SELECT * FROM %s LIMIT 0" % db.quote(name))
        except Exception as exc:  # noqa: BLE001 (any error: the view no longer compiles)
            lost.append("view %s (%s)" % (name, exc))
    if lost:
        raise SchemaError("the table rebuild would lose %s; nothing was changed" % ", ".join(lost),
                          hint="report this; `emfix schema diff` shows the DDL to make the change by hand")
