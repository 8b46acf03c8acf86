"""emfix migrate: copy experiments between any two databases, resumable, and prove nothing was lost.

The source subtree is found with hierarchy.reach_subtree and read table by table (parents first)
in keyset pages (`WHERE key > last ORDER BY key LIMIT n`; OFFSET paging on request). Every batch
is inserted into DST in one transaction together with the journal row that records the last key
copied per table, so after a crash `--resume` continues exactly there: no duplicate, no gap. Ids
move only where they would collide (idshift), with the offsets kept in the journal.
"""

import dataclasses
import json
import os
import re
import time
from typing import Dict, List, Optional

from . import pages
from .backends import open_database
from .copycheck import TableCheck, verify_copy
from .copyjournal import (
    DIFFERS,
    DONE,
    JOURNAL,
    RUNNING,
    UNVERIFIED,
    ensure_journal,
    find_journal,
    journal_key,
    set_state,
)
from .errors import (
    AlreadyDoneError,
    ConnectError,
    DamagedInputError,
    EmfixError,
    NoSpaceError,
    NotFoundError,
    OperationInterrupted,
    SchemaError,
    UsageError,
)
from .fileutil import read_only_uri
from .guarded import check_integrity
from .hierarchy import ROOT, reach_subtree
from .idshift import column_shifts, id_offset, id_owner
from .pool import ConnectionPool
from .progress import BASE_MB, DEFAULT_BATCH, NoProgress, utc_now
from .schema import EM_TABLE_NAMES, EM_TABLES, create_schema, discover_graph
from .values import portable

STRATEGIES = ("conservative", "balanced", "aggressive")  # what each does: `emfix migrate --help`


@dataclasses.dataclass
class MigrationResult:
    experiment_id: int
    new_experiment_id: int
    copied: Dict[str, int]
    offsets: Dict[str, int]
    resumed: bool
    seconds: float
    verify: List[TableCheck] = dataclasses.field(default_factory=list)
    snapshot_id: Optional[str] = None

    @property
    def verified(self):
        return all(check.ok for check in self.verify)


def _same_database(a, b):
    if a.is_sqlite and b.is_sqlite:
        return os.path.exists(a.path) and os.path.exists(b.path) and os.path.samefile(a.path, b.path)
    if a.is_sqlite or b.is_sqlite:
        return False
    return (a.host, a.port, a.database) == (b.host, b.port, b.database)


def migrate_experiment(src, dst, experiment_id, *, strategy="balanced", batch_size=None, paging="keyset",
                       resume=False, force=False, init=False, verify=True, retry_policy=None, progress=None,
                       interrupted=None, snapshot_dir=None, max_memory=None, skip_tables=None):
    """batch_size: rows per transaction (2000 by default); max_memory (MB) caps it per table by row size."""
    if strategy not in STRATEGIES:
        raise UsageError("unknown strategy %r" % strategy, hint="conservative, balanced or aggressive")
    if max_memory is not None and max_memory < BASE_MB + 10:
        raise UsageError("--max-memory %d MB leaves nothing for the rows: emfix itself takes about %d MB" % (
            max_memory, BASE_MB), hint="give at least %d" % (BASE_MB + 10))
    if _same_database(src, dst):
        raise UsageError("SRC and DST are the same database (%s)" % src.display(),
                         hint="to copy an experiment within one database: emfix export, then emfix import")
    if dst.is_sqlite and not init and not os.path.exists(dst.path):
        raise NotFoundError("database file not found: %s" % dst.path,
                            hint="add --init to create it with the Experiment Manager's tables (or run `emfix init "
                                 "%s` first)" % dst.path)
    progress = progress or NoProgress()
    interrupted = interrupted or (lambda: False)
    started = time.perf_counter()
    made_dst = init and dst.is_sqlite and not os.path.exists(dst.path)
    try:
        return _migrate(src, dst, experiment_id, strategy, batch_size, paging, resume, force, init, verify,
                        retry_policy, progress, interrupted, snapshot_dir, max_memory, skip_tables, started)
    except BaseException:
        # A refusal before anything was written must not leave an empty DST file behind it.
        if made_dst and os.path.exists(dst.path) and _holds_nothing(dst.path):
            for suffix in ("", "-journal", "-wal", "-shm"):
                if os.path.exists(dst.path + suffix):
                    os.remove(dst.path + suffix)
        raise


def _refuse_by_journal(src, dst, experiment_id, journal, resume, force):
    """What DST's journal says against copying this experiment as asked."""
    state = journal and journal["state"]
    if resume and state not in (RUNNING, DONE, DIFFERS, UNVERIFIED):
        raise UsageError("nothing to resume: %s has no interrupted migration of experiment %d from %s" % (
            dst.display(), experiment_id, src.display()), hint="run the same command without --resume")
    if state == RUNNING and not resume:
        raise EmfixError("a partial migration of experiment %d into %s exists (%s rows copied)" % (
            experiment_id, dst.display(), "{:,}".format(sum(journal["copied"].values()))),
            hint="run again with --resume to finish it")
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


def _holds_nothing(path):
    import sqlite3
    try:
        con = sqlite3.connect(read_only_uri(path), uri=True)
        try:
            return not con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return False


def _migrate(src, dst, experiment_id, strategy, batch_size, paging, resume, force, init, verify, retry_policy,
             progress, interrupted, snapshot_dir, max_memory, skip_tables, started):
    # SRC's pool has room for a second reader (the pin of an in-engine copy); the pools open, check and
    # close every connection, whatever happens here.
    with ConnectionPool(lambda: open_database(src, readonly=src.is_sqlite, retry_policy=retry_policy),
                        size=2) as readers, \
            ConnectionPool(lambda: open_database(dst, create=init, retry_policy=retry_policy), size=1) as writers, \
            readers.connection() as source, writers.connection() as target:
        graph = discover_graph(source)
        check_integrity(source)
        if ROOT not in graph.tables:
            raise SchemaError("%s has no EXPERIMENT table" % src.display())
        existing = target.tables()
        if not existing and not init:
            raise UsageError("%s has no Experiment Manager schema" % dst.display(),
                             hint="add --init to create it, or run `emfix init %s`" % dst.display())
        key, journal = (find_journal(target, src, experiment_id) if JOURNAL in existing
                        else (journal_key(src, experiment_id), None))
        journal_table = target.quote(JOURNAL)
        state = journal and journal["state"]
        if state and not force and (state == DONE or (state == UNVERIFIED and not verify)) and resume:
            # Killed after the last commit but before it could say so: the job is done, and says so.
            offsets = journal["offsets"]
            return MigrationResult(experiment_id, experiment_id + offsets.get(ROOT, 0), journal["copied"], offsets,
                                   True, time.perf_counter() - started)
        _refuse_by_journal(src, dst, experiment_id, journal, resume, force)
        pin = None
        with source.consistent_read():
            if pages.copies_in_engine(source, target, paging):
                pin = pages.pin_moment(readers)  # taken while SRC's read is held: the same moment, kept for the copy
            tree = reach_subtree(source, graph, experiment_id)
            if not tree.exists:
                raise UsageError("experiment %d does not exist in %s" % (experiment_id, src.display()))
            tables = [t for t in tree.tables(graph) if t not in (skip_tables or ())]
            missing = [t for t in tables if t.lower() not in {e.lower() for e in existing}]
            rows = {t: tree.count(source, graph, t) for t in missing}
            ours = [t for t in missing if t in EM_TABLE_NAMES and rows[t]]
            if ours and not init:
                raise SchemaError("%s has no table %s for rows of this experiment (an older schema generation)" % (
                    dst.display(), ", ".join(ours)), hint="add --init to create the missing tables")
            foreign = {t: n for t, n in rows.items() if t not in EM_TABLE_NAMES and n}
            foreign_ddl = _foreign_ddl(source, target, graph, foreign, init)
            tables = [t for t in tables if t not in missing or (t in EM_TABLE_NAMES and init) or t in foreign]
            if strategy != "aggressive" and not resume:
                from .hierarchy import check_hierarchy
                report = check_hierarchy(source, graph, experiment_id)
                if report.breaks:
                    raise EmfixError("the source subtree has %d breaks (e.g. %s); nothing was copied" % (
                        len(report.breaks), report.breaks[0].message),
                        hint="repair it first (emfix cleanup-orphans), or use --strategy aggressive")
                _refuse_invalid_json(source, target, graph, tree, will_create="METRIC" not in existing and init)
            _refuse_oversized_values(source, target, graph, tree, tables)
            if init:  # only now, once nothing can refuse: creates only the tables DST lacks
                create_schema(target, generation=graph.generation)
                for ddl in foreign_ddl:
                    target.execute(ddl)
            ensure_journal(target)
            snapshot_id = None
            if strategy != "aggressive" and not (resume and journal):
                from .snapshot import create_snapshot, default_snapshot_dir
                snapshot_id = create_snapshot(dst, snapshot_dir or default_snapshot_dir(dst),
                                              description="before migrating experiment %d" % experiment_id, verify=True,
                                              retry_policy=retry_policy).id
            if resume and state in (RUNNING, DIFFERS, UNVERIFIED):  # copies what is left (if any), verifies
                offsets, position, copied = journal["offsets"], journal["position"], journal["copied"]
            else:
                offsets = _offsets(source, target, graph, tree, tables)
                position, copied = {}, {}
                with target.transaction():
                    target.execute("DELETE FROM %s WHERE run_key = ?" % journal_table, (key,))
                    target.execute("INSERT INTO %s VALUES (?, ?, ?, '{}', '{}', ?, NULL)" % journal_table,
                                   (key, RUNNING, json.dumps(offsets), utc_now()))
            copy = _Copy(source, target, graph, tree, key, offsets, position, copied, interrupted, progress,
                         pages.literal_limit(source, target), in_engine=pin is not None)
            try:
                copy.run(tables, batch_size, max_memory, paging, strategy)
            except (ConnectError, DamagedInputError, NoSpaceError) as exc:
                if isinstance(exc, NoSpaceError):  # SRC's reader may be the one whose temporary files hit it
                    exc.message = "copying into %s stopped: %s" % (dst.display(), exc.message)
                exc.hint = (exc.hint + "; " if exc.hint else "") + "the batches copied so far are committed: once " \
                    "that is fixed, run the same command with --resume to finish"
                raise
            finally:
                if pin is not None:
                    pin.execute("COMMIT")
                    readers.release(pin)
            if state == DIFFERS:  # a copy that differed is checked again in full, whatever else was asked
                verify, strategy = True, "balanced" if strategy == "aggressive" else strategy
            checks = verify_copy(source, target, graph, tree, tables, offsets, experiment_id, strategy,
                                 copy.source_counts) if verify else []
            # The verify's result is the journal's: a copy is done only once it is verified.
            set_state(target, key, (DONE if all(c.ok for c in checks) else DIFFERS) if verify else UNVERIFIED,
                      utc_now())
    progress.done()
    return MigrationResult(experiment_id, experiment_id + offsets.get(ROOT, 0), copied, offsets,
                           bool(resume and journal), time.perf_counter() - started, checks, snapshot_id)


@dataclasses.dataclass
class _Copy:
    """The copy phase: every table of the subtree, batch by batch, each batch committed with its journal row."""
    source: object
    target: object
    graph: object
    tree: object
    key: str
    offsets: dict
    position: dict
    copied: dict
    interrupted: object
    progress: object
    packet: int = 0  # SQLite into MySQL: pages go as SQL text of at most this many bytes (0: as rows)
    source_counts: dict = dataclasses.field(default_factory=dict)
    in_engine: bool = False  # SQLite into SQLite: DST attached to SRC's connection, INSERT ... SELECT per batch

    def run(self, tables, batch_size, max_memory, paging, strategy):
        source, graph, tree = self.source, self.graph, self.tree
        self.source_counts = {t: tree.count(source, graph, t) for t in tables}  # inside SRC's one moment
        total = sum(self.source_counts.values())
        done = sum(self.copied.values())
        stream = self._pages(tables, batch_size, max_memory, paging, strategy)
        if self.target.dialect == "mysql":  # the next page is read while this one crosses the network
            stream = pages.prefetched(stream, depth=1)
        if self.in_engine:
            source.execute("COMMIT")  # ATTACH is refused inside a transaction; the pin holds SRC's moment
            source.execute("ATTACH DATABASE ? AS %s" % pages.ENGINE_DST, (self.target.address.path,))
        try:
            for table, rows, last in stream:
                if rows is None:
                    if self.position.get(table) != "done":  # a last page that said so saved it with its rows
                        self.position[table] = "done"
                        self._save_position()
                    continue
                if self.interrupted():
                    raise OperationInterrupted("interrupted after %s rows; the copy so far is committed" % (
                        "{:,}".format(done)), hint="run the same command with --resume to finish")
                done += self._write(table, rows, last, strategy)
                self.progress.rows(done, total)
        finally:
            if self.in_engine:
                source.execute("DETACH DATABASE %s" % pages.ENGINE_DST)

    def _pages(self, tables, batch_size, max_memory, paging, strategy):
        """(table, page, last key) for every page still to copy, then (table, None, None) when it is done."""
        source, graph, tree = self.source, self.graph, self.tree
        for table in tables:
            if self.position.get(table) == "done":
                continue
            where = tree.where(source, graph, table)
            size = batch_size or (None if max_memory else DEFAULT_BATCH)
            if max_memory:
                size = min(size or pages.MAX_BATCH, pages.batch_for_memory(source, graph, table, where, max_memory))
            found = pages.row_pages(source, graph, tree, table, size, paging, self.position.get(table))
            if self.packet and paging == "keyset" and (graph.primary_keys.get(table) or table in tree.linked):
                moves = column_shifts(graph, table, graph.columns[table], self.offsets)
                found = pages.literal_pages(source, graph, tree, table, size, self.position.get(table), moves,
                                            self.packet, adaptive=not (batch_size or max_memory))
            if self.in_engine and (graph.primary_keys.get(table) or table in tree.linked):
                moves = column_shifts(graph, table, graph.columns[table], self.offsets)
                found = pages.engine_batches(source, graph, tree, table, batch_size or pages.ENGINE_BATCH,
                                             self.position.get(table), moves, strategy == "conservative")
            for rows, last in found:
                yield table, rows, last
            yield table, None, None

    def _write(self, table, rows, last, strategy):
        target, columns = self.target, self.graph.columns[table]
        if isinstance(rows, pages.LiteralPage):
            self._write_literal(table, rows, last, strategy)
            return len(rows)
        if isinstance(rows, pages.EngineBatch):
            return self._write_in_engine(table, rows, last)
        moves = column_shifts(self.graph, table, columns, self.offsets)
        if self.source.dialect == "sqlite" and not moves:
            batch = rows  # sqlite3 returns only what it binds back unchanged: no conversion to make
        else:
            batch = []
            for row in rows:
                row = [portable(v) for v in row]
                for i, move in moves:
                    if isinstance(row[i], int):
                        row[i] += move
                batch.append(tuple(row))
        self.position[table] = last
        self.copied[table] = self.copied.get(table, 0) + len(batch)
        insert = "INSERT INTO %s (%s) VALUES (%s)" % (target.quote(table), target.quote_columns(columns),
                                                      ", ".join("?" * len(columns)))
        def write():  # run again whole after a conflict rolled it back (write_batch)
            target.foreign_key_checks(False)
            written = target.executemany(insert, batch, batch_size=len(batch))
            if strategy == "conservative" and written not in (len(batch), -1):
                raise DamagedInputError("a batch of %d rows into %s wrote %d" % (len(batch), table, written))
            self._save_position(copied=True)
        target.write_batch(write)
        return len(batch)

    def _write_literal(self, table, page, last, strategy):
        self.position[table] = last
        self.copied[table] = self.copied.get(table, 0) + page.count
        target = self.target
        def write():
            target.foreign_key_checks(False)
            written = target.execute_raw(b"INSERT INTO %s (%s) VALUES (%s)" % (
                target.quote(table).encode("utf-8"), target.quote_columns(self.graph.columns[table]).encode("utf-8"),
                page.text))
            if strategy == "conservative" and written != page.count:
                raise DamagedInputError("a batch of %d rows into %s wrote %d" % (page.count, table, written))
            self._save_position(copied=True)
        target.write_batch(write)

    def _write_in_engine(self, table, batch, last):
        source, before = self.source, self.copied.get(table, 0)

        def write():  # the same again after a conflict rolled it back: counted from `before`
            written = source.execute(batch.sql, batch.params)
            if batch.expected is not None and written != batch.expected:
                raise DamagedInputError("a batch of %d rows into %s wrote %d" % (batch.expected, table, written))
            self.position[table] = last
            self.copied[table] = before + written
            self._save_position(copied=True, db=source, journal="%s.%s" % (pages.ENGINE_DST, source.quote(JOURNAL)))
            return written
        return source.write_batch(write)

    def _save_position(self, copied=False, db=None, journal=None):
        """Inside the batch's transaction (copied=True) or on its own once a table is done."""
        sql = "UPDATE %s SET position = ?%s WHERE run_key = ?" % (journal or self.target.quote(JOURNAL),
                                                                  ", copied = ?" if copied else "")
        params = (json.dumps(self.position),) + ((json.dumps(self.copied),) if copied else ()) + (self.key,)
        if copied:
            (db or self.target).execute(sql, params)
            return
        with self.target.transaction():
            self.target.execute(sql, params)


def _foreign_ddl(source, target, graph, foreign, init):
    """CREATE statements for tables of SRC's subtree that are not the Experiment Manager's and DST lacks:
    taken from SRC when both are the same engine and --init asks for tables; otherwise a refusal that
    names them before anything is copied (a copy that stops at them half-way helps nobody)."""
    if not foreign:
        return []
    if init and source.dialect == target.dialect:
        if source.dialect == "sqlite":
            return [re.sub(r"^\s*CREATE\s+TABLE\s+", "CREATE TABLE IF NOT EXISTS ", source.scalar(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (t,)), count=1, flags=re.I)
                for t in foreign]
        return [source.query("SHOW CREATE TABLE %s" % source.quote(t))[0][1] for t in foreign]
    described = "; ".join("%s (%d rows of this experiment; columns %s)" % (t, n, ", ".join(graph.columns[t]))
                          for t, n in foreign.items())
    raise SchemaError("%s lacks tables that are not the Experiment Manager's: %s; nothing was copied" % (
        target.address.display(), described),
        hint="create %s in DST first%s, or add --skip-tables %s to leave those rows out" % (
            "it" if len(foreign) == 1 else "them",
            "" if source.dialect == target.dialect else " (SRC and DST are different engines, so emfix does not "
            "translate their DDL)", ",".join(foreign)))


def _target_requires_json(target, will_create=False):
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


def _refuse_oversized_values(source, target, graph, tree, tables):
    """A value longer than DST's max_allowed_packet makes MySQL drop the connection mid-batch, and every
    --resume after it fail the same way: find it before the first batch."""
    if target.dialect != "mysql":
        return
    packet = int(target.scalar("SELECT @@max_allowed_packet") or 0)
    length = "length" if source.dialect == "sqlite" else "LENGTH"
    text_columns = {t.name: [c.name for c in t.columns if c.type in ("TEXT", "JSON") or c.type.startswith("VARCHAR")]
                    for t in EM_TABLES}
    for table in tables:
        columns = [c for c in text_columns.get(table, graph.columns[table]) if c in graph.columns[table]]
        if not columns:
            continue
        row = source.query("SELECT %s FROM %s t WHERE %s" % (", ".join(
            "max(%s(t.%s))" % (length, source.quote(c)) for c in columns), source.quote(table),
            tree.where(source, graph, table)))[0]
        longest = max(int(v or 0) for v in row)
        if packet and longest > packet - 1024:  # the statement around the value needs room too
            raise DamagedInputError(
                "a value in %s is %s bytes, more than %s's max_allowed_packet (%s bytes); nothing was copied" % (
                    table, "{:,}".format(longest), target.address.display(), "{:,}".format(packet)),
                hint="as an administrator: SET GLOBAL max_allowed_packet = %d (and in the server's config), then "
                     "run again" % min(1 << 30, 1 << (longest + 4096).bit_length()))


def _refuse_invalid_json(source, target, graph, tree, will_create=False):
    """Stop before the first batch, not at it, when DST's JSON column would refuse a value of this subtree."""
    if "METRIC" not in graph.tables or "per_label_val" not in graph.columns["METRIC"]:
        return
    if not _target_requires_json(target, will_create):
        return
    where = tree.referenced_where(source, graph, "METRIC")
    if not where:
        return
    value = "t.%s" % source.quote("per_label_val")
    invalid = "NOT JSON_VALID(%s)" % value if source.dialect == "mysql" else "NOT json_valid(%s)" % value
    count = int(source.scalar("SELECT count(*) FROM %s t WHERE %s AND %s IS NOT NULL AND %s" % (
        source.quote("METRIC"), where, value, invalid)) or 0)
    if count:
        raise DamagedInputError("%s metric values of this experiment are not valid JSON, and the JSON column of %s "
                                "refuses them; nothing was copied" % ("{:,}".format(count), target.address.display()),
                                hint="repair them first (emfix fix-json %s), or write into a LONGTEXT column "
                                     "(emfix init DST --json-type text)" % source.address.display())


def _offsets(source, target, graph, tree, tables):
    offsets = {}
    for table in tables:
        if id_owner(graph, table, "id") != table:
            continue
        low, high = source.query("SELECT min(t.%s), max(t.%s) FROM %s t WHERE %s" % (
            source.quote("id"), source.quote("id"), source.quote(table), tree.where(source, graph, table)))[0]
        if low is None:
            continue
        offsets[table] = id_offset(target, table, low, high)
    return offsets
