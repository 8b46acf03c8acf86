"""An application's tables keep their own keys in a copy: a key DST holds already stops it.

The Experiment Manager's ids move past what DST holds (idshift) and are reserved first, so they never meet a row of
DST. An application's table keeps its own keys as they are (an INTEGER PRIMARY KEY of its own, a UNIQUE code): a
second copy into the same DST, the copy of another experiment that links the same METRIC row, or a row the
application wrote there meets one. Seen before the first write, the copy is refused with nothing written (round 50
left it as a stop part way); one written meanwhile still stops the copy at that batch (copybatches).
"""

import re

from .errors import EmfixError
from .idshift import id_owner
from .schema import EM_TABLE_NAMES, table_named

DUPLICATE_KEY = "duplicate_key"  # EmfixError.kind of a copy stopped (or refused) at a key DST already holds
PROBE = 200  # keys one statement asks DST for


def is_own_key(graph, table, columns):
    """No column of `columns` holds an Experiment Manager id, which a copy would move (idshift.id_owner)."""
    return bool(columns) and not any(id_owner(graph, table, c) for c in columns)


def own_key_hint(table, key, resume=False):
    """The way out of a copy stopped at (or refused for) an own key of an application's table; `key`: its columns,
    or the words naming it (failed_key); `resume`: the copy began, and its journal row says so."""
    again = "the same command%s" % (" with --resume" if resume else "")
    return ("%s's %s is its own, which the copy keeps as it is, and DST holds that key already (an earlier "
            "copy's row, the copy of another experiment that links the same METRIC or ARTIFACT row, or the "
            "application's own), or two copied rows share it by DST's rules: run the same command with "
            "%s--skip-tables %s to go on without its rows, or delete from DST's %s the rows that are unwanted copies "
            "(never the application's) and run %s" % (
                table, key if isinstance(key, str) else "key (%s)" % ", ".join(key), "--resume " if resume else "",
                table, table, again))


def failed_key(exc):
    """The words naming the unique key a refused INSERT met, from the engine's message: `key (code)`, `index
    eu`, `key pfx`; "unique key" where the message does not say (round 55: a hint named the primary key when a
    UNIQUE code had refused the row)."""
    text = str(exc)
    found = re.search(r"UNIQUE constraint failed: (index '([^']+)'|[^\n]+)", text)
    if found and found.group(2):
        return "unique index %s" % found.group(2)
    if found:
        return "key (%s)" % ", ".join(part.strip().split(".")[-1] for part in found.group(1).split(","))
    found = re.search(r"for key '([^']+)'", text)
    if found:
        return "unique key %s" % found.group(1).split(".")[-1]
    return "unique key"


def met_primary_key(target, table, exc):
    """Whether the unique key a refused INSERT met is `table`'s primary key in `target` (True where the engine's
    message does not tell): a UNIQUE index DST has of its own is another matter, which no new id gets past (round
    59: such an index met by two rows of the copy was said to be a key DST held, and --force hinted)."""
    named = failed_key(exc)
    if named.startswith("unique index "):
        return False
    if named.startswith("unique key ") and named != "unique key":
        return named.split()[-1].lower() == "primary"
    if named.startswith("key ("):
        try:
            primary = [c.lower() for c in target.primary_key(table) or ()]
        except Exception:  # noqa: BLE001 - the refusal is said either way; only its words depend on this
            return True
        return [c.lower() for c in named[len("key ("):-1].split(", ")] == primary
    return True


def dst_unique_keys(target, named):
    """DST's primary key and UNIQUE indexes of its table `named`, as column tuples; partial indexes and those on
    expressions left out (whether a row meets them is not a matter of its columns' values alone)."""
    keys = [tuple(target.primary_key(named) or ())]
    partial = set()
    if target.dialect == "sqlite":
        partial = {r[1] for r in target.query("PRAGMA index_list(%s)" % target.quote(named)) if len(r) > 4 and r[4]}
    keys += [tuple(i.columns) for i in target.indexes(named) if i.unique and i.name not in partial]
    found = []
    for key in keys:
        if key and all(isinstance(c, str) for c in key) and key not in found:
            found.append(key)
    return found


def own_keys(target, graph, table, named, columns):
    """DST's unique keys of its table `named` that a copy of `table`'s rows keeps as they are, each as the positions
    of its columns among `columns` (the names the rows come with); a key on a column the rows lack (DST's own: the
    copy leaves its default) or on an id the copy moves past DST's (idshift) is left out."""
    at = {c.lower(): n for n, c in enumerate(columns)}
    found = []
    for key in dst_unique_keys(target, named):
        positions = [at.get(c.lower()) for c in key]
        if None not in positions and is_own_key(graph, table, [columns[n] for n in positions]):
            found.append(positions)
    return found


class KeyProbe:
    """Keys of DST's table `named` (tuples of values of its `columns`) asked of DST PROBE at a time: `add` each, then
    `finish`; each says the first key the table holds already, or None. DST compares, as its INSERT would (its
    collations, its types); a key with a NULL meets no other."""

    def __init__(self, target, named, columns):
        spelled = {c.lower(): c for c in target.columns(named)}
        self.target, self.named, self.batch = target, named, []
        self.names = [target.quote(spelled.get(c.lower(), c)) for c in columns]
        self.as_text = _text_columns(target, named, columns)

    def add(self, key):
        if None in key:
            return None
        key = tuple(_as_text(v) if n in self.as_text else v for n, v in enumerate(key))
        if _UNKNOWN in key:
            return None
        self.batch.append(key)
        return self.finish() if len(self.batch) == PROBE else None

    def finish(self):
        batch, self.batch = self.batch, []
        return _held_in(self.target, self.named, self.names, batch) if batch else None


def first_held(target, named, columns, keys):
    """The first of `keys` that DST's table `named` holds already, or None (KeyProbe)."""
    probe = KeyProbe(target, named, columns)
    for key in keys:
        held = probe.add(key)
        if held:
            return held
    return probe.finish()


_UNKNOWN = object()


def _text_columns(target, named, columns):
    """Positions of `columns` that DST's MySQL table holds as text: MySQL compares '07' = 7 as numbers, where the
    row inserted would hold '7' (round 55: a copy refused for a key it would not have met)."""
    if target.dialect != "mysql":
        return set()  # SQLite converts the number to text for a TEXT column's comparison, as its INSERT does
    kinds = {c.name.lower(): (c.type or "").lower() for c in target.column_details(named)}
    return {n for n, c in enumerate(columns) if any(t in kinds.get(c.lower(), "") for t in ("char", "text"))}


def _as_text(value):
    """The text a MySQL text column holds for `value`, where it is sure: an integer's digits; a REAL's text is
    the engine's, so such a key is left to the copy's own stop (_UNKNOWN)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return str(value) if isinstance(value, int) else _UNKNOWN


def _held_in(target, named, names, keys):
    """The first of `keys` DST's table holds, by its quoted column `names`."""
    q = target.quote
    if len(names) == 1:
        where = "%s IN (%s)" % (names[0], ", ".join("?" * len(keys)))
    else:
        one = "(%s)" % " AND ".join("%s = ?" % n for n in names)
        where = " OR ".join([one] * len(keys))
    found = target.query("SELECT %s FROM %s WHERE %s LIMIT 1" % (", ".join(names), q(named), where),
                         tuple(v for key in keys for v in key))
    return tuple(found[0]) if found else None


def key_held_error(target, table, columns, held, rows_of, hint, verb="copied"):
    """The refusal of rows of `table` (`rows_of`: whose) meeting their own key `held` in DST."""
    return EmfixError("%s already holds %s = %s, a key of its own of a row of %s; nothing was %s" % (
        target.address.display(), "(%s)" % ", ".join(columns) if len(columns) > 1 else columns[0], _shown(held),
        rows_of, verb), kind=DUPLICATE_KEY, facts={"table": table}, hint=hint)


def import_own_key_hint(table, key, database, resume=False, skippable=True):
    """own_key_hint for import; `skippable`: no other table of the file links to `table`, so --skip-tables may
    leave its rows out."""
    again = "the same command%s" % (" with --resume" if resume else "")
    return ("%s's %s is its own, which import keeps as it is, and %s holds that key already (an earlier import's "
            "row, or the application's own), or two of the file's rows share it by the database's rules: %sdelete "
            "from its %s the rows that are unwanted copies (never the application's), then run %s" % (
                table, key if isinstance(key, str) else "key (%s)" % ", ".join(key), database,
                "run %s --skip-tables %s to go on without its rows, or " % (again, table) if skippable else "",
                table, again))


def linked_to(graph, table, tables):
    """Whether a table of `tables` (other than `table`) has a foreign key to `table`."""
    return any(r.parent == table and r.child != table for t in tables for r in graph.relations_of(t))


def refuse_own_keys_dst_holds(source, target, graph, tree, tables, existing):
    """Refuse, before anything is written, a copy whose rows of an application's table meet a key of their own
    that DST's table holds already. `existing`: DST's tables (one the copy creates holds no key yet)."""
    q = source.quote
    for table in tables:
        named = table_named(table, existing)
        if table in EM_TABLE_NAMES or named is None or not tree.count(source, graph, table):
            continue
        for positions in own_keys(target, graph, table, named, graph.columns[table]):
            columns = [graph.columns[table][n] for n in positions]
            rows = source.iter_rows("SELECT %s FROM %s" % (", ".join("t.%s" % q(c) for c in columns),
                                                           tree.rows(source, graph, table)), arraysize=PROBE)
            held = first_held(target, named, columns, rows)
            for _ in rows:  # read to the end: a MySQL result left part read leaves its connection unusable
                pass
            if held is not None:
                raise key_held_error(target, table, columns, held, "this experiment's " + table,
                                     own_key_hint(table, columns))


def _shown(values):
    text = ", ".join(repr(v) if isinstance(v, str) else str(v) for v in values)
    return "(%s)" % text if len(values) > 1 else text
