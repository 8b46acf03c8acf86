"""emfix import: an export file back into a database, with every auto-increment id shifted.

The file is read twice, as a stream both times: first to check it (format, every line, the
trailer's counts and SHA-256), then to insert, in batches each committed together with the line it
reached in a journal table (`_emfix_import`), so an interrupted import is finished by `--resume`.
Each auto-increment id gets an offset that puts it past the largest id already there; every column
that refers to one (through the relation graph, composite keys included) moves with it, so nothing
collides and every link still holds.
"""

import dataclasses
import json
import time
from typing import Dict

from .backends import open_database
from .backends.base import is_duplicate_key
from .copyjournal import held_by_other_copies
from .errors import (
    AlreadyDoneError,
    DamagedInputError,
    DanglingLinksError,
    EmfixError,
    OperationInterrupted,
    SchemaError,
    UnfinishedError,
    UsageError,
)
from .exportfile import ValueTally, check_file, read_header, records
from .exportjunctions import JunctionRowsTwice
from .exportlinks import LinkCheck
from .guarded import check_integrity
from .hierarchy import ROOT
from .idshift import (
    claim_ids,
    claiming_alone,
    column_shifts,
    id_offset,
    referring_columns,
    refuse_ids_past_the_column,
    reserve_ids,
)
from .importrefusals import ChoiceCheck, refuse_what_the_database_cannot_take, values_a_float_keeps_otherwise
from .journal import IMPORT_JOURNAL, damaged, decode_fields, is_table_numbers
from .killpoints import kill_point
from .ownkeys import KeyProbe, failed_key, import_own_key_hint, key_held_error, linked_to, own_keys
from .progress import NoProgress
from .schema import EM_TABLE_NAMES, discover_graph, table_named
from .values import decode_value, whole


@dataclasses.dataclass
class ImportResult:
    path: str
    experiment_id: int  # the new id
    counts: Dict[str, int]
    id_offsets: Dict[str, int]
    seconds: float
    resumed: bool = False
    dangling: Dict[str, int] = dataclasses.field(default_factory=dict)  # link rows imported without their parent
    already_done: bool = False  # --resume of an import that had finished: nothing was inserted this time
    single_precision: Dict[str, int] = dataclasses.field(default_factory=dict)  # "TABLE.column": numbers a FLOAT
    #                                                                               column keeps otherwise


BATCH = 1000
JOURNAL = IMPORT_JOURNAL


def import_file(address, path, *, experiment_title=None, experiment_desc=None, retry_policy=None, progress=None,
                resume=False, force=False, interrupted=None, skip_tables=None, allow_dangling=False,
                into_experiment=None):
    """Insert the file's rows parents first in batches, each committed with a journal row (the id
    offsets and the last line written), so a killed import is finished by `--resume`.

    into_experiment: add the file's trials (and experiment links) to this existing experiment
    instead of creating a new one (the old tool's `migrate-experiment -t`)."""
    progress = progress or NoProgress()
    interrupted = interrupted or (lambda: False)
    started = time.perf_counter()
    read_header(path)  # (a file that is no export, or the arguments the wrong way round: said before connecting)
    # One read checks the file whole and tallies its values and its links; into MySQL, what the database's ENUM, SET
    # and JSON columns take too (ChoiceCheck, which asks the database as the header comes: connected first)
    tally = ValueTally(text_too=not address.is_sqlite,  # (SQLite keeps text as it is given)
                       links=LinkCheck(), junctions=JunctionRowsTwice())
    if address.is_sqlite:
        header, trailer = _checked(path, tally, allow_dangling)
    with open_database(address, retry_policy=retry_policy) as db:
        if not address.is_sqlite:
            tally.choices = ChoiceCheck(db)
            header, trailer = _checked(path, tally, allow_dangling)
        graph = discover_graph(db)
        check_integrity(db)
        db.warn_without_transactions(graph.tables)  # a batch there commits row by row (round 25)
        as_stored = _spell_as_the_database(header, trailer, tally, graph)
        experiments = sum(n for t, n in trailer["counts"].items() if t.lower() == ROOT.lower() and isinstance(n, int))
        if experiments != 1:  # (round 60: a file of no rows said it imported experiment 1, another's, exit 0)
            raise DamagedInputError("%s holds %d %s rows; an export holds its experiment's one; nothing was imported"
                                    % (path, experiments, ROOT), hint="export the experiment again (the file was "
                                                                       "edited)")
        # (round 40: `--skip-tables epoch` skipped nothing, silently: table names in any letter case, as the file's)
        spelled = {t.lower(): t for t in header["tables"]}
        skip = {spelled.get(t.lower(), t) for t in skip_tables or ()}
        # (round 37: METRIC skipped left 8,816 links without their rows; EXPERIMENT, trials without theirs. Round 55:
        # an application's table that nothing else of the file links to may go, the way out of a key it meets)
        held = sorted(t for t in skip if table_named(t, graph.tables) and (
            t in EM_TABLE_NAMES or linked_to(graph, t, [f for f in header["tables"] if f not in skip])))
        if held:
            raise UsageError("--skip-tables %s: %s has %s, which the file's other rows need" % (
                ",".join(sorted(skip)), address.display(), ", ".join(held)),
                hint="leave out only tables %s does not have, or an application's table no other table of the file "
                     "links to (the rows of the others would lose their links)" % address.display())
        missing = [t for t in header["tables"] if t not in graph.tables and t not in skip]
        ours = [t for t in missing if t in EM_TABLE_NAMES]
        if ours:
            raise SchemaError("%s lacks Experiment Manager tables the export has: %s (an older schema generation)" % (
                address.display(), ", ".join(ours)), hint="create them first: emfix init %s" % address.target())
        if missing:
            raise SchemaError("%s lacks tables that are not the Experiment Manager's: %s; nothing was imported" % (
                address.display(), "; ".join("%s (columns %s)" % (t, ", ".join(header["columns"][t]))
                                             for t in missing)),
                hint="create them in the database first, or add --skip-tables %s to leave those rows out"
                % ",".join(missing))
        refuse_what_the_database_cannot_take(db, graph, header, trailer, tally, skip, path)
        single = values_a_float_keeps_otherwise(db, header, tally, skip)
        key = "import:%s" % trailer["sha256"]
        pinned = {}
        if into_experiment is not None:
            if not db.query("SELECT 1 FROM %s WHERE %s = ?" % (db.quote(ROOT), db.quote("id")), (into_experiment,)):
                raise UsageError("experiment %d does not exist in %s" % (into_experiment, address.display()),
                                 hint="give an existing experiment as the target, or none to make a new one")
            pinned[ROOT] = into_experiment - _experiment_of(header, trailer)
            key += ":into:%d" % into_experiment
        if not resume:  # (resumed: the keys the database holds are this import's own)
            _refuse_own_keys_held(db, graph, path, header, trailer, {t: column_shifts(
                graph, t, header["columns"][t], {}, unmoved_too=True) for t in header["tables"]}, as_stored, skip)
        journal = _start_journal(db, key, path, trailer, resume, force, pinned, graph)
        kill_point("journaled")
        offsets, done_line, counts = journal["offsets"], journal["line"], journal["counts"]
        if journal.get("done"):
            new_id = _experiment_of(header, trailer) + offsets.get(ROOT, 0)
            return ImportResult(path, new_id, counts, offsets, time.perf_counter() - started, True, already_done=True)
        columns = header["columns"]
        shifts = {t: column_shifts(graph, t, columns[t], offsets, unmoved_too=True)  # (1.0 becomes 1 in every one)
                  for t in header["tables"]}
        renamed = {"title": experiment_title, "desc": experiment_desc}
        db.foreign_key_checks(False)  # the subtree may hold rows whose parent is gone
        try:
            _insert_rows(db, path, (columns, shifts, renamed, as_stored), trailer, key, done_line, counts, skip,
                         pinned, progress, interrupted)
        except EmfixError as exc:  # a batch refused: said with what is committed, and how to finish (round 35)
            if isinstance(exc, OperationInterrupted):
                raise
            done = sum(counts.values())
            committed = "%s row%s committed" % ("{:,}".format(done), " is" if done == 1 else "s are")
            if getattr(exc, "kind", None) == "duplicate_key":  # the file's own rows: no --resume gets past them
                exc.message += "; the import stopped part way: %s (experiment %d, its journal row in %s 'running')" % (
                    committed, _experiment_of(header, trailer) + offsets.get(ROOT, 0), JOURNAL)
                exc.hint = "delete that experiment's rows, then import an export made again (--resume would meet " \
                           "the same row)"  # (round 40: --resume was said to finish it)
                table = (exc.facts or {}).get("table")
                if table not in EM_TABLE_NAMES:  # (round 52: an export again holds it; round 55: any unique key)
                    exc.hint = import_own_key_hint(table, exc.facts.get("key") or "unique key", address.display(),
                                                   resume=True, skippable=not linked_to(graph, table, header["tables"]))
            else:
                exc.message += "; the import stopped part way: %s, and the same command with --resume finishes " \
                               "it once that is fixed" % committed
            exc.args = (exc.message,)
            raise
        with db.transaction():
            db.execute("UPDATE %s SET state = 'done' WHERE run_key = ?" % db.quote(JOURNAL), (key,))
    progress.done()
    new_id = _experiment_of(header, trailer) + offsets.get(ROOT, 0)
    return ImportResult(path, new_id, counts, offsets, time.perf_counter() - started, bool(resume and done_line),
                        {t: n for t, n in (trailer.get("dangling") or {}).items() if n}, single_precision=single)


def _checked(path, tally, allow_dangling):
    """(header, trailer) of the file, read whole (check_file); its dangling links refused unless allowed."""
    header, trailer = check_file(path, tally)
    dangling = {t: n for t, n in (trailer.get("dangling") or {}).items() if n}
    if dangling and not allow_dangling:
        raise DanglingLinksError("%s holds %s link rows whose parent row is missing (%s); nothing was imported" % (
            path, "{:,}".format(sum(dangling.values())), ", ".join("%s %d" % kv for kv in sorted(dangling.items()))),
            hint="--allow-dangling imports them as they are (they stay orphans in DB), or clean the source "
                 "(emfix cleanup-orphans) and export again")
    return header, trailer


def _experiment_of(header, trailer):
    """The file's experiment id: its EXPERIMENT row's (the trailer's, checked against the rows), the header's only
    where the file has no such row (round 37: an edited header made the reported id another)."""
    return int(trailer.get("min_ids", {}).get(ROOT, header["header"]["experiment_id"]))


def _spell_as_the_database(header, trailer, tally, graph):
    """The file's table and column names as the database spells them, in the header, the trailer and the tally;
    {file's table name: the database's}. Round 37: `Experiment_Id` was inserted, but not recognised as the link it
    is, nor moved (the trials joined another experiment); round 40: a file whose tables were `experiment`, `trial`…
    "lacked" every table of a database that has them as EXPERIMENT, TRIAL…"""
    lowered = [t.lower() for t in header["tables"]]
    as_stored = {t: (table_named(t, graph.tables) if lowered.count(t.lower()) == 1 else None) or t
                 for t in header["tables"]}

    def respelled(by_table):
        return {as_stored.get(t, t): v for t, v in by_table.items()}

    header["tables"] = [as_stored[t] for t in header["tables"]]
    header["columns"] = respelled(header["columns"])
    for part in ("counts", "min_ids"):
        if isinstance(trailer.get(part), dict):
            trailer[part] = respelled(trailer[part])
    tally.columns, tally.widest_row = respelled(tally.columns), respelled(tally.widest_row)
    if tally.choices is not None:
        tally.choices.failures = {(as_stored.get(t, t), c): v for (t, c), v in tally.choices.failures.items()}
        tally.choices.short = {(as_stored.get(t, t), c): v for (t, c), v in tally.choices.short.items()}
        tally.choices.watch = {as_stored.get(t, t): v for t, v in tally.choices.watch.items()}
    for table, columns in header["columns"].items():
        spelled = {c.lower(): c for c in graph.columns.get(table, ())}
        header["columns"][table] = [spelled.get(c.lower(), c) for c in columns]
    return as_stored


def _insert_rows(db, path, rows_as, trailer, key, done_line, counts, skip, pinned, progress, interrupted):
    """The file's rows from line `done_line` on, parents first, in batches each committed with its journal row;
    `rows_as`: (each table's columns, their id shifts, the experiment's new title and description, the database's
    spelling of each of the file's table names)."""
    columns, shifts, renamed, as_stored = rows_as
    total = sum(trailer.get("counts", {}).values())
    batch, current, last = [], None, done_line
    for number, _line, record in records(path):
        if number <= done_line or number == 1 or "trailer" in record:
            continue
        table = as_stored.get(record["table"], record["table"])
        if table in skip or (pinned and table == ROOT):  # (pinned: the experiment they go into exists already)
            continue
        if batch and (table != current or len(batch) >= BATCH):
            _commit_batch(db, key, current, columns[current], batch, last, counts)
            batch = []
            progress.rows(sum(counts.values()), total)
            if interrupted():
                raise OperationInterrupted("interrupted after %s rows; they are committed" % "{:,}".format(
                    sum(counts.values())), hint="run the same command with --resume to finish")
        current, last = table, number
        batch.append(_as_inserted(record, table, columns[table], shifts[table], renamed))
    if batch:
        _commit_batch(db, key, current, columns[current], batch, last, counts)


def _as_inserted(record, table, columns, shifts, renamed):
    """The file's row as import inserts it: values decoded, ids moved, the experiment's title and description as
    given."""
    row = [decode_value(v) for v in record["row"]]
    for index, shift in shifts:
        value = whole(row[index])
        row[index] = value + shift if isinstance(value, int) else value
    for name, given in renamed.items() if table == ROOT else ():
        if given is not None and name in columns:
            row[columns.index(name)] = given
    return tuple(row)


def _refuse_own_keys_held(db, graph, path, header, trailer, shifts, as_stored, skip):
    """An application's table keeps its own keys (an INTEGER PRIMARY KEY of its own, a UNIQUE code): one the
    database holds already stopped the import part way (exit 4, rows committed). Said before the first write, in
    one read of the file for every such key."""
    counts, probes = trailer.get("counts") or {}, {}
    for table in header["tables"]:
        named = table_named(table, graph.tables)
        if table in EM_TABLE_NAMES or table in skip or named is None or not counts.get(table):
            continue
        columns = header["columns"][table]
        probes[table] = [(positions, KeyProbe(db, named, [columns[n] for n in positions]))
                         for positions in own_keys(db, graph, table, named, columns)]
    probes = {t: p for t, p in probes.items() if p}
    if not probes:
        return
    for _n, _l, record in records(path):
        table = as_stored.get(record.get("table"), record.get("table")) if "row" in record else None
        keyed = probes.get(table, ())
        row = _as_inserted(record, table, header["columns"][table], shifts[table], {}) if keyed else None
        for positions, probe in keyed:
            _refuse_held(db, graph, path, header, table, positions, probe.add(tuple(row[n] for n in positions)))
    for table, keyed in probes.items():
        for positions, probe in keyed:
            _refuse_held(db, graph, path, header, table, positions, probe.finish())


def _refuse_held(db, graph, path, header, table, positions, held):
    if held is None:
        return
    key = [header["columns"][table][n] for n in positions]
    raise key_held_error(db, table, key, held, "%s's %s" % (path, table), import_own_key_hint(
        table, key, db.address.display(), skippable=not linked_to(graph, table, header["tables"])), verb="imported")


def _read_journal(db, key, row):
    """(state, offsets, line, counts) of a journal row, each checked: a damaged row is DamagedInputError."""
    state, offsets, line, counts = row
    try:
        fields = decode_fields((offsets, counts), ("offsets", "counts"))
        line = int(line or 0)
        whole = isinstance(state, str) and is_table_numbers(fields["offsets"]) and is_table_numbers(
            fields["counts"]) and line >= 0
    except (TypeError, ValueError):
        whole = False
    if not whole:
        raise damaged("import", db.address.display(), JOURNAL, key, "a field is missing or of the wrong type",
                      "what it imported stays; to start again, remove it (or restore a snapshot), delete that "
                      "journal row, and import without --resume")
    return state, fields["offsets"], line, fields["counts"]


def _start_journal(db, key, path, trailer, resume, force, pinned, graph):
    """The journal row for this file's content: new (with fresh offsets), or the one to resume."""
    text = "VARCHAR(100)" if db.dialect == "mysql" else "TEXT"
    q = db.quote
    db.execute("CREATE TABLE IF NOT EXISTS %s (run_key %s PRIMARY KEY, state VARCHAR(20), offsets TEXT, "
               "line INTEGER, counts TEXT, reserved TEXT)" % (q(JOURNAL), text))
    if "reserved" not in {c.lower() for c in db.columns(JOURNAL)}:  # made by an older emfix
        db.execute("ALTER TABLE %s ADD COLUMN reserved TEXT" % q(JOURNAL))
    rows = db.query("SELECT state, offsets, line, counts FROM %s WHERE run_key = ?" % q(JOURNAL), (key,))
    if resume and not rows:  # (an outside tester: it imported the whole file, exit 0)
        raise UsageError("nothing to resume: %s has no import of %s" % (db.address.display(), path),
                         hint="run the same command without --resume")
    if rows:
        state, offsets, line, counts = _read_journal(db, key, rows[0])
        if state in ("running", "done") and resume:  # done: killed after its last commit; nothing left to do
            return {"offsets": offsets, "line": line, "counts": counts, "done": state == "done"}
        if state == "running":  # (--force too: its journal row, the only way to finish it, was replaced: round 38)
            raise UnfinishedError("a partial import of %s exists (%s rows committed)" % (
                path, "{:,}".format(sum(counts.values()))), hint="run again with --resume to finish it%s" % (
                    " (then --force imports another copy)" if force else ""))
        if state == "done" and not force:
            raise AlreadyDoneError("%s was already imported as experiment %d" % (
                path, int(trailer.get("min_ids", {}).get(ROOT, 0)) + offsets.get(ROOT, 0)),
                hint="pass --force to import another copy")
    # The ids are chosen as a migrate chooses them (one copy at a time on MySQL, in one write transaction on SQLite),
    # and the file's highest ids go into the journal row: a migrate or import begun meanwhile counts them as taken.
    tops = {t: int(high) for t, high in trailer.get("max_ids", {}).items() if high is not None}
    with db.transaction() if db.dialect == "sqlite" else claiming_alone(db):
        held = held_by_other_copies(db, key)  # ids unfinished copies reserved: their rows may not be there yet
        referrers = referring_columns(graph)
        pinned = pinned or {}
        lows = {t: low for t, low in trailer.get("min_ids", {}).items() if t not in pinned}
        # Each range reserved, then checked with a locking read on MySQL and moved past what the application took
        # meanwhile (round 38: an insert beside the import took an id of its range: duplicate key, exit 70, and
        # --resume stopped at the same id for ever)
        offsets = claim_ids(db, {t: (low, tops[t]) for t, low in lows.items() if t in tops}, held=held,
                            referrers=referrers)
        for table, low in lows.items():
            if table not in offsets:  # (no highest id stated: every id below the lowest must be free)
                offsets[table] = id_offset(db, table, low, None, held.get(table), referrers.get(table, ()))
        offsets.update(pinned)
        reserved = {t: high for t, high in tops.items() if t in offsets}
        for table, shift in pinned.items():  # (the experiment the trials join: its own id, reserved as it is)
            if table in reserved:
                low = trailer.get("min_ids", {}).get(table)
                refuse_ids_past_the_column(db, table, reserved[table] if low is None else int(low), reserved[table],
                                           shift)
                reserve_ids(db, table, reserved[table] + shift)
        with db.transaction():
            db.execute("DELETE FROM %s WHERE run_key = ?" % q(JOURNAL), (key,))
            db.execute("INSERT INTO %s (run_key, state, offsets, line, counts, reserved) VALUES (?, 'running', ?, 0, "
                       "'{}', ?)" % q(JOURNAL), (key, json.dumps(offsets), json.dumps(reserved)))
    return {"offsets": offsets, "line": 0, "counts": {}}


def _commit_batch(db, key, table, columns, rows, line, counts):
    """The rows and the journal's line and counts in one transaction; `counts` grows once it is committed (round 36:
    a batch refused was counted as committed in the error's message)."""
    after = dict(counts, **{table: counts.get(table, 0) + len(rows)})

    def write():  # run again whole after a conflict rolled it back
        _insert(db, table, columns, rows)
        db.execute("UPDATE %s SET line = ?, counts = ? WHERE run_key = ?" % db.quote(JOURNAL),
                   (line, json.dumps(after), key))
    try:
        db.write_batch(write)
    except Exception as exc:  # (round 39: a row the file holds twice crashed the import here, exit 70)
        if not is_duplicate_key(exc):
            raise
        raise DamagedInputError("%s refused a row of %s the file holds twice, or that the database holds already: "
                                "%s" % (db.address.display(), table, exc), kind="duplicate_key",
                                facts={"table": table, "key": failed_key(exc)}) from None
    counts.update(after)


def _insert(db, table, columns, rows):
    db.executemany("INSERT INTO %s (%s) VALUES (%s)" % (db.quote(table), db.quote_columns(columns),
                                                        ", ".join("?" * len(columns))), rows, batch_size=BATCH)
