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
import time
from contextlib import nullcontext
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
from .copyrefusals import foreign_ddl, refuse_invalid_json, refuse_oversized_values
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
from .guarded import IntegrityCheck
from .hierarchy import ROOT, reach_subtree
from .idshift import column_shifts, id_offset, id_owner
from .pool import ConnectionPool
from .progress import BASE_MB, DEFAULT_BATCH, NoProgress, utc_now
from .schema import EM_TABLE_NAMES, create_schema, discover_graph
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
    except BaseException as exc:
        # A refusal before anything was written must not leave an empty DST file behind it; nor a damaged SRC
        # found while the copy ran uncommitted.
        if made_dst and os.path.exists(dst.path) and _holds_nothing(dst.path, getattr(exc, "quick_check", False)):
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


def _undo_start(target, key, exc, integrity, journal):
    """SRC turned out damaged while the copy ran (nothing of it was committed): the journal row this run
    wrote goes too, so DST is as it was but for the tables --init created. Any other failure: SRC's
    check is waited for (a damaged SRC is said as such) or stopped."""
    if isinstance(exc, Exception):
        try:
            integrity.wait()
        except DamagedInputError:
            if journal is None:
                try:
                    with target.transaction():
                        target.execute("DELETE FROM %s WHERE run_key = ?" % target.quote(JOURNAL), (key,))
                except Exception:  # noqa: BLE001 - DST failing too: the damage is still the answer
                    pass
            raise
    else:
        integrity.cancel()


def _holds_nothing(path, but_schema=False):
    import sqlite3
    try:
        con = sqlite3.connect(read_only_uri(path), uri=True)
        try:
            tables = [t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            if not but_schema:
                return not tables
            return not any(con.execute('SELECT 1 FROM "%s" LIMIT 1' % t.replace('"', '""')).fetchone()
                           for t in tables if t not in (JOURNAL, "SCHEMA_VERSION") and not t.startswith("sqlite_"))
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
            # SRC's quick_check runs on the second reader while this one walks and copies.
            second = pin or (readers.acquire() if source.dialect == "sqlite" else None)
            with IntegrityCheck(source, second, None if pin or second is None else readers.release) as integrity:
                # In-engine, the copy goes on meanwhile but commits nothing before it passed; otherwise DST is
                # written only once it passed.
                integrity.deferred = pin is not None
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
                creates = foreign_ddl(source, target, graph, foreign, init)
                tables = [t for t in tables if t not in missing or (t in EM_TABLE_NAMES and init) or t in foreign]
                if strategy != "aggressive" and not resume:
                    from .hierarchy import check_hierarchy
                    report = check_hierarchy(source, graph, experiment_id)
                    if report.breaks:
                        raise EmfixError("the source subtree has %d breaks (e.g. %s); nothing was copied" % (
                            len(report.breaks), report.breaks[0].message),
                            hint="repair it first (emfix cleanup-orphans), or use --strategy aggressive")
                    refuse_invalid_json(source, target, graph, tree, will_create="METRIC" not in existing and init)
                refuse_oversized_values(source, target, graph, tree, tables)
            try:
                # SQLite DST without a snapshot first: schema, journal table and journal row in one commit (fsyncs).
                with target.transaction() if target.dialect == "sqlite" and strategy == "aggressive" else nullcontext():
                    if init:  # only now, once nothing can refuse: creates only the tables DST lacks
                        create_schema(target, generation=graph.generation)
                        for ddl in creates:
                            target.execute(ddl)
                    ensure_journal(target)
                    snapshot_id = None
                    if strategy != "aggressive" and not (resume and journal):
                        from .snapshot import safety_snapshot
                        snapshot_id = safety_snapshot(dst, snapshot_dir, "migrating experiment %d" % experiment_id,
                                                      retry_policy=retry_policy)
                    if resume and state in (RUNNING, DIFFERS, UNVERIFIED):  # copies what is left (if any), verifies
                        offsets, position, copied = journal["offsets"], journal["position"], journal["copied"]
                    else:
                        offsets = _offsets(source, target, graph, tree, tables)
                        position, copied = {}, {}
                        with target.transaction():
                            target.execute("DELETE FROM %s WHERE run_key = ?" % journal_table, (key,))
                            target.execute("INSERT INTO %s VALUES (?, ?, ?, '{}', '{}', ?, NULL)" % journal_table,
                                           (key, RUNNING, json.dumps(offsets), utc_now()))
            except BaseException as exc:
                _undo_start(target, key, exc, integrity, journal)
                raise
            copy = _Copy(source, target, graph, tree, key, offsets, position, copied, interrupted, progress,
                         pages.literal_limit(source, target), in_engine=pin is not None)
            try:
                copy.run(tables, batch_size, max_memory, paging, strategy, integrity)
            except BaseException as exc:
                _undo_start(target, key, exc, integrity, journal)
                if isinstance(exc, NoSpaceError):  # SRC's reader may be the one whose temporary files hit it
                    exc.message = "copying into %s stopped: %s" % (dst.display(), exc.message)
                if isinstance(exc, (ConnectError, NoSpaceError)) or (
                        isinstance(exc, DamagedInputError) and not integrity.damage):
                    exc.hint = (exc.hint + "; " if exc.hint else "") + "the batches copied so far are committed: " \
                        "once that is fixed, run the same command with --resume to finish"
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

    def run(self, tables, batch_size, max_memory, paging, strategy, integrity=None):
        source, graph, tree = self.source, self.graph, self.tree
        self.source_counts = {t: tree.count(source, graph, t) for t in tables}  # inside SRC's one moment
        total = sum(self.source_counts.values())
        done = sum(self.copied.values())
        stream = self._pages(tables, batch_size, max_memory, paging, strategy)
        if self.target.dialect == "mysql":  # the next page is read while this one crosses the network
            stream = pages.prefetched(stream, depth=1)
        group, restore = None, None
        if self.in_engine:
            source.execute("COMMIT")  # ATTACH is refused inside a transaction; the pin holds SRC's moment
            source.execute("ATTACH DATABASE ? AS %s" % pages.ENGINE_DST, (self.target.address.path,))
            # --batch-size says rows per transaction; without it, batches are grouped into fewer commits
            group = pages.CommitGroup(source, batch_size or pages.ENGINE_GROUP, gate=integrity)
            restore = pages.quick_commits(source, pages.ENGINE_DST)
        try:
            for table, rows, last in stream:
                if rows is None:
                    if self.position.get(table) != "done":  # a last page that said so saved it with its rows
                        self.position[table] = "done"
                        self._save_position(group=group)
                    continue
                if self.interrupted():
                    if group is not None:
                        group.commit()
                    raise OperationInterrupted("interrupted after %s rows; the copy so far is committed" % (
                        "{:,}".format(done)), hint="run the same command with --resume to finish")
                if group is not None:
                    group.begin()
                written = self._write(table, rows, last, strategy)
                if group is not None:
                    group.wrote(written)
                done += written
                self.progress.rows(done, total)
            if group is not None:
                group.commit()
        except BaseException as exc:
            if group is not None:
                group.rollback(exc)
            raise
        finally:
            close = getattr(stream, "close", None)
            if close is not None:  # the read-ahead thread stops and is joined now, not at interpreter exit
                close()
            if self.in_engine:
                if restore:
                    source.scalar(restore)
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

    def _save_position(self, copied=False, db=None, journal=None, group=None):
        """Inside the batch's transaction (copied=True), in the open group of in-engine batches, or on its
        own once a table is done."""
        if group is not None:
            group.begin()
            db, journal = self.source, "%s.%s" % (pages.ENGINE_DST, self.source.quote(JOURNAL))
        sql = "UPDATE %s SET position = ?%s WHERE run_key = ?" % (journal or self.target.quote(JOURNAL),
                                                                  ", copied = ?" if copied else "")
        params = (json.dumps(self.position),) + ((json.dumps(self.copied),) if copied else ()) + (self.key,)
        if copied or group is not None:
            (db or self.target).execute(sql, params)
            return
        with self.target.transaction():
            self.target.execute(sql, params)


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
