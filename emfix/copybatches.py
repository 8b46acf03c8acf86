"""migrate's copy phase: every table of the subtree, batch by batch, each batch committed with its journal row.

Pages come from emfix/pages.py (rows, SQL text into MySQL, or INSERT ... SELECT batches from SQLite into
an attached SQLite DST); each batch's journal row says the last key copied per table, in the batch's own
transaction, so a kill leaves rows and journal at the same commit and `--resume` goes on from there.
"""

import collections
import dataclasses
import json
import queue
import threading

from . import pages
from .backends.base import is_duplicate_key
from .catalog import sqlite_affinity
from .copycheck import count_in_engine
from .copyjournal import JOURNAL
from .errors import DamagedInputError, EmfixError, OperationInterrupted, SchemaError
from .fileutil import sqlite_name
from .hierarchy import ROOT
from .idshift import column_shifts
from .journal import position_text
from .ownkeys import DUPLICATE_KEY, failed_key, met_primary_key, own_key_hint
from .pool import run_parallel
from .progress import DEFAULT_BATCH
from .schema import EM_TABLE_NAMES
from .values import portable

LANE_DEPTH = 1  # pages read ahead for each lane


class BatchCopy:
    """The copy phase: every table of the subtree, batch by batch, each batch committed with its journal row."""

    def __init__(self, source, target, plan, start, interrupted, progress, packet=0, in_engine=False, lanes=()):
        """packet: SQLite into MySQL, pages go as SQL text of at most this many bytes (0: as rows); in_engine:
        SQLite into SQLite, DST attached to SRC's connection, INSERT ... SELECT per batch; lanes: more DST
        connections that insert pages of other tables meanwhile (SQL text pages only: see _run_in_lanes)."""
        self.source, self.target, self.plan, self.start = source, target, plan, start
        self.interrupted, self.progress, self.packet, self.in_engine = interrupted, progress, packet, in_engine
        self.lanes = [target] + [db for db in lanes if db is not target]
        self.journal_lock = threading.Lock()
        self.journal_unsure = False  # lanes: a commit failed with the journal lock held (it may have committed)
        self.source_counts = {}
        self.counted = None  # in-engine, aggressive: both sides counted while DST was attached (copycheck)
        self.gate = None  # SRC's IntegrityCheck, maybe still running: no write into DST begins before it passed
        self.stopping = None  # lanes: set when one failed or was stopped (a wait for the gate ends then)
        self.real_columns = {}  # SQL text pages: SRC's columns of each table that may hold a REAL

    @property
    def graph(self):
        return self.plan.graph

    @property
    def position(self):
        return self.start.position

    @property
    def copied(self):
        return self.start.copied

    def run(self, options, integrity=None, count_both=False):
        """`count_both`: in-engine, count DST's copy through SRC's key tables before DST is detached (before
        the last commit, which waits for SRC's quick_check: the count runs meanwhile, and counts what it commits)."""
        source, graph, tree, tables = self.source, self.graph, self.plan.tree, self.plan.tables
        self.gate = None if self.in_engine else integrity  # in-engine, the group of batches waits for it
        self.source_counts = {t: tree.count(source, graph, t) for t in tables}  # inside SRC's one moment
        if self.packet and source.dialect == "sqlite":  # SQL text pages: here, before other threads read SRC
            self.real_columns = {t: [d.name for d in source.column_details(t) if sqlite_affinity(d.type) != "TEXT"]
                                 for t in tables}
        total = sum(self.source_counts.values())
        done = sum(self.copied.values())
        if len(self.lanes) > 1 and self._all_as_text(tables, options):
            self._run_in_lanes(tables, options, done, total)
            return
        stream = self._pages(tables, options)
        if self.target.dialect == "mysql":  # the next page is read while this one crosses the network
            stream = pages.prefetched(stream, depth=1)
        group, restore = None, None
        if self.in_engine:
            source.execute("COMMIT")  # ATTACH is refused inside a transaction; the pin holds SRC's moment
            source.execute("ATTACH DATABASE ? AS %s" % pages.ENGINE_DST, (sqlite_name(self.target.address.path),))
            # --batch-size says rows per transaction; without it, batches are grouped into fewer commits
            group = pages.CommitGroup(source, options.batch_size or pages.ENGINE_GROUP, gate=integrity)
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
                if group is not None and isinstance(rows, pages.EngineBatch):
                    group.begin()
                elif group is not None:  # a page of rows (a table without a key) goes in on DST's own connection:
                    group.commit()  # the group's transaction holds DST's lock (round 48: it waited on itself, exit 3)
                try:
                    written = self._write(table, rows, last, options.strategy)
                except Exception as exc:  # noqa: BLE001 - only a duplicate key is said otherwise
                    if not is_duplicate_key(exc):
                        raise self._refusal(table, exc) from None
                    # (an in-engine group not committed yet goes back with this batch: round 50 said its rows were)
                    raise self._collision(table, exc, done - (group.pending if group is not None and group.open
                                                              is not None else 0)) from None
                if group is not None:
                    group.wrote(written)
                done += written
                self.progress.rows(done, total)
            if self.in_engine and count_both:  # DST's rows as this transaction leaves them, while SRC's check ends
                self.counted = count_in_engine(source, graph, tree, tables, self.start.offsets, self.source_counts,
                                               pages.ENGINE_DST)
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

    def _pages(self, tables, options):
        """(table, page, last key) for every page still to copy, then (table, None, None) when it is done."""
        for table in tables:
            if self.position.get(table) != "done":
                yield from self._table_pages(table, options)

    def _table_pages(self, table, options):
        source, graph, tree, offsets = self.source, self.graph, self.plan.tree, self.start.offsets
        batch_size, max_memory, paging = options.batch_size, options.max_memory, options.paging
        where = tree.where(source, graph, table)
        size = batch_size or (None if max_memory else DEFAULT_BATCH)
        if max_memory:
            size = min(size or pages.MAX_BATCH, pages.batch_for_memory(source, graph, table, where, max_memory))
        found = pages.row_pages(source, graph, tree, table, size, paging, self.position.get(table))
        if self.packet and paging == "keyset" and (graph.primary_keys.get(table) or table in tree.linked):
            moves = column_shifts(graph, table, graph.columns[table], offsets)
            found = pages.literal_pages(source, graph, tree, table, size, self.position.get(table), moves,
                                        self.packet, adaptive=not (batch_size or max_memory))
        if self.in_engine and (graph.primary_keys.get(table) or table in tree.linked):
            moves = column_shifts(graph, table, graph.columns[table], offsets)
            found = pages.engine_batches(source, graph, tree, table, batch_size or pages.ENGINE_BATCH,
                                         self.position.get(table), moves, options.strategy == "conservative")
        for rows, last in found:
            yield table, rows, last
        yield table, None, None

    def _all_as_text(self, tables, options):
        """Every table left goes as pages of SQL text (SQLite into MySQL, keyset pages, keys known)."""
        graph, tree = self.graph, self.plan.tree
        return bool(self.packet) and not self.in_engine and options.paging == "keyset" and all(
            graph.primary_keys.get(t) or t in tree.linked for t in tables if self.position.get(t) != "done")

    def _run_in_lanes(self, tables, options, done, total):
        """The tables left, in their order, each taken whole by the next free DST connection (a lane); one
        thread reads SRC's pages (one connection, one moment) for whichever lane has room. A page commits
        with its journal row as before, the journal row written under one lock from what has committed: each
        table's last key in it is that table's last committed page, whichever lane commits. A failure in any
        lane stops the others after their current page; what committed stays, and --resume goes on from it."""
        # The largest tables first (rows left times columns), each to the next free lane: the two finish
        # together, where in the subtree's order the last big table ran alone. Any order is safe: foreign-key
        # checks are off and each table's journal position is its own.
        left = collections.deque(sorted((t for t in tables if self.position.get(t) != "done"), key=lambda t: -max(
            0, self.source_counts.get(t, 0) - self.copied.get(t, 0)) * len(self.graph.columns[t])))
        failed, room = threading.Event(), threading.Condition()
        self.stopping = failed  # Ctrl-C in one lane: the other does not wait out SRC's check before it stops
        queues = [queue.Queue(maxsize=LANE_DEPTH) for _ in self.lanes]
        counter, counted = {"done": done}, threading.Lock()

        def produce():
            current = [None] * len(self.lanes)
            finished = [False] * len(self.lanes)
            while not all(finished):
                with room:  # a lane that took a page notifies
                    room.wait_for(lambda: failed.is_set() or any(
                        not finished[n] and not queues[n].full() for n in range(len(self.lanes))), timeout=0.2)
                if failed.is_set():
                    return
                for n in [n for n in range(len(self.lanes)) if not finished[n] and not queues[n].full()]:
                    item = None
                    while item is None:
                        if current[n] is None:
                            if not left:
                                break
                            current[n] = self._table_pages(left.popleft(), options)
                        item = next(current[n], None)
                        if item is None:
                            current[n] = None
                    if item is None:
                        finished[n] = True
                    queues[n].put(item)  # None: this lane is done

        def lane(n):
            db = self.lanes[n]
            while True:
                try:
                    item = queues[n].get(timeout=0.2)
                except queue.Empty:
                    if failed.is_set():
                        return
                    continue
                with room:
                    room.notify_all()
                if item is None or failed.is_set():
                    return
                table, rows, last = item
                if rows is None:
                    if self.position.get(table) != "done":  # a last page that said so saved it with its rows
                        self._commit_position(db, table, "done", 0)
                    continue
                if self.interrupted():
                    raise OperationInterrupted("interrupted after %s rows; the copy so far is committed" % (
                        "{:,}".format(counter["done"])), hint="run the same command with --resume to finish")
                try:
                    self._write_literal(table, rows, last, options.strategy, db)
                except Exception as exc:  # noqa: BLE001 - only a duplicate key is said otherwise
                    if not is_duplicate_key(exc):
                        raise self._refusal(table, exc) from None
                    raise self._collision(table, exc, counter["done"]) from None
                with counted:
                    counter["done"] += rows.count
                    self.progress.rows(counter["done"], total)

        run_parallel([lambda n=n: lane(n) for n in range(len(self.lanes))] + [produce], failed)

    def _refusal(self, table, exc):
        """A row DST's table refused (a trigger's RAISE, a CHECK, NOT NULL), said with the table's name (round 59:
        "SQLite refused a row: no", which table left to guess); any other error as it is."""
        if not isinstance(exc, (SchemaError, DamagedInputError)) or "refused" not in exc.message:
            return exc
        return type(exc)("copying %s into %s stopped: %s" % (table, self.target.address.display(), exc.message),
                         hint=exc.hint, kind=exc.kind, facts=exc.facts)

    def _collision(self, table, exc, done):
        """`done`: the rows committed before the batch that met the key."""
        if table in EM_TABLE_NAMES and not met_primary_key(self.target, table, exc):
            what = ("a unique index of DST's own refused a row of this experiment: DST holds a row of the same value "
                    "there, or two rows of the copy share it")
        elif table in EM_TABLE_NAMES:
            what = "DST already holds a key of a row of this experiment"
        else:
            what = ("a row of this experiment met a unique key DST holds already, or one another copied row holds "
                    "by DST's rules")
        return EmfixError("copying %s into %s stopped: %s (%s); %s" % (
                              table, self.target.address.display(), what, exc,
                              "the %s rows copied before are committed" % "{:,}".format(done) if done else
                              "nothing was committed"),
                          kind=DUPLICATE_KEY, facts={"table": table, "key": failed_key(exc)},
                          hint=self._collision_hint(table, done, exc))

    def _collision_hint(self, table, done, exc):
        """The way out of a copy stopped at a key DST already holds: --resume meets it again (the journal's ids are
        fixed), --force starts again with new ids chosen past it and reserved; but an application's table keeps its
        own keys, which no offset moves (round 50: --force was hinted, and met the same key; round 55: so was it
        for a UNIQUE column of such a table whose primary key is an id, and --force then copied it all twice)."""
        if table not in EM_TABLE_NAMES:  # (--resume even with nothing committed: the journal row says 'running')
            return own_key_hint(table, failed_key(exc), resume=True)
        if not met_primary_key(self.target, table, exc):  # new ids would meet it again
            return ("drop or change the UNIQUE index of %s that DST alone has (%s; the Experiment Manager has no "
                    "such key), then run the same command with --resume" % (table, failed_key(exc)))
        partial = ""
        if table != ROOT and self.copied.get(ROOT) and done:  # copied first: committed before the batch that stopped
            partial = " (as experiment %d: delete it there if it is not wanted)" % (
                self.plan.tree.experiment_id + self.start.offsets.get(ROOT, 0))
        return ("--resume would stop at the same row; run the same command with --force to copy the experiment "
                "again from the start with new ids, reserved first: the rows copied so far stay in DST%s. If "
                "the application writes its own ids into %s, stop it meanwhile" % (partial, table))

    def _commit_position(self, db, table, last, rows, write=None):
        """Lanes: `write()` (the page's INSERT) and the journal row with this table's new last key and count,
        in one transaction on `db`; the journal row is made, and the transaction committed, under the journal
        lock from what has committed (self.position / self.copied), which this table's entry joins only once
        committed."""
        held = []

        def batch():
            if write is not None:
                write()
            if not held:  # a retry after a conflict keeps the lock it took
                self.journal_lock.acquire()
                held.append(True)
            if self.journal_unsure:  # written from a state that may lack that commit, the journal could go back
                raise EmfixError("stopped before committing a page into %s: another connection to DST failed "
                                 "while it committed" % table, hint="run the same command with --resume to finish")
            position, copied = dict(self.position), dict(self.copied)
            position[table] = last
            if rows:
                copied[table] = copied.get(table, 0) + rows
            self._update_journal(db, position, copied)
            return copied
        self._pass_gate()
        try:
            copied = db.write_batch(batch)
            self.position[table], self.copied[table] = last, copied.get(table, 0)
        except BaseException:
            # A connection lost at COMMIT may have committed: the other lanes write no journal row from now on
            # (one made from self.position / self.copied without this page would take its last key back, and a
            # resume would copy the page again: a duplicate key, seen once in CI with connections killed).
            if held:
                self.journal_unsure = True
            raise
        finally:
            if held:
                self.journal_lock.release()

    def _write(self, table, rows, last, strategy):
        target = self.target
        if isinstance(rows, pages.LiteralPage):
            self._write_literal(table, rows, last, strategy)
            return len(rows)
        if isinstance(rows, pages.EngineBatch):
            return self._write_in_engine(table, rows, last)
        self._pass_gate()
        batch = self._moved(table, rows)
        self.position[table] = last
        self.copied[table] = self.copied.get(table, 0) + len(batch)
        insert = self._insert_statement(table)

        def write():  # run again whole after a conflict rolled it back (write_batch)
            target.foreign_key_checks(False)
            written = target.executemany(insert, batch, batch_size=len(batch))
            if strategy == "conservative" and written not in (len(batch), -1):
                raise DamagedInputError("a batch of %d rows into %s wrote %d" % (len(batch), table, written))
            self._save_position(copied=True)
        target.write_batch(write)
        return len(batch)

    def _insert_statement(self, table):
        """DST's INSERT of one row of `table`, its columns as the copy writes them."""
        target, columns = self.target, self.graph.columns[table]
        return "INSERT INTO %s (%s) VALUES (%s)" % (target.quote(table), target.quote_columns(columns),
                                                    ", ".join("?" * len(columns)))

    def _moved(self, table, rows):
        """SRC's rows as DST gets them: values made portable, ids moved by the copy's offsets."""
        moves = column_shifts(self.graph, table, self.graph.columns[table], self.start.offsets)
        if self.source.dialect == "sqlite" and not moves:
            return rows  # sqlite3 returns only what it binds back unchanged: no conversion to make
        batch = []
        for row in rows:
            row = [portable(v) for v in row]
            for i, move in moves:
                if isinstance(row[i], int):
                    row[i] += move
            batch.append(tuple(row))
        return batch

    def catch_up(self, options, everything=False):
        """A resumed copy whose SRC gained rows, after the interruption, in tables the copy had already gone
        through: SRC's rows of those tables are walked again from the start, and the ones whose key DST does
        not hold yet are copied (each page with its journal row; the positions stay as they are, so a kill here
        and another --resume walk them again). The tables walked: those SRC has more rows of than the journal
        copied, or (`everything`: SRC gained ids since the copy began, and a row lost beside one gained leaves
        the count as it was) all. Rows SRC lost meanwhile are left for the verify to say."""
        behind = [t for t in self.plan.tables if (everything or self.source_counts.get(t, 0) > self.copied.get(t, 0))
                  and self.graph.primary_keys.get(t)]
        for table in behind:
            for rows, _last in pages.row_pages(self.source, self.graph, self.plan.tree, table,
                                               options.batch_size or DEFAULT_BATCH, "keyset", None):
                if self.interrupted():
                    raise OperationInterrupted("interrupted while copying the rows SRC gained since the copy "
                                               "began; the copy so far is committed",
                                               hint="run the same command with --resume to finish")
                try:
                    self._write_missing(table, self._moved(table, rows))
                except Exception as exc:  # noqa: BLE001 - only a duplicate key is said otherwise
                    if not is_duplicate_key(exc):
                        raise self._refusal(table, exc) from None
                    raise self._collision(table, exc, sum(self.copied.values())) from None
        return behind

    def _write_missing(self, table, batch, chunk=200):
        """Insert the rows of `batch` (DST's values) whose primary key DST does not hold, with the journal's
        counts, in one transaction."""
        target, columns = self.target, self.graph.columns[table]
        keys = [columns.index(c) for c in self.graph.primary_keys[table]]
        match = "(%s)" % " AND ".join("%s = ?" % target.quote(columns[i]) for i in keys)
        held = set()
        for start in range(0, len(batch), chunk):
            part = batch[start:start + chunk]
            held.update(tuple(r) for r in target.query("SELECT %s FROM %s WHERE %s" % (
                ", ".join(target.quote(columns[i]) for i in keys), target.quote(table),
                " OR ".join([match] * len(part))), tuple(row[i] for row in part for i in keys)))
        missing = [row for row in batch if tuple(row[i] for i in keys) not in held]
        if not missing:
            return 0
        insert = self._insert_statement(table)
        before = self.copied.get(table, 0)
        self._pass_gate()

        def write():  # run again whole after a conflict rolled it back (write_batch)
            target.foreign_key_checks(False)
            target.executemany(insert, missing, batch_size=len(missing))
            self.copied[table] = before + len(missing)
            self._save_position(copied=True)
        target.write_batch(write)
        self.progress.rows(sum(self.copied.values()), sum(self.source_counts.values()))
        return len(missing)

    def _write_literal(self, table, page, last, strategy, lane=None):
        """One page of SQL text and its journal row in one transaction: on the copy's DST connection, or
        (lanes) on `lane`, the journal row then made under the journal lock (_commit_position)."""
        target = lane or self.target

        def insert():
            target.foreign_key_checks(False)
            columns = target.quote_columns(self.graph.columns[table])
            written = target.load_text_page(table, columns, page.text, page.count, self._may_hold_reals(table))
            if written is None:  # not loaded (see backends/mysqlload.py): its INSERT
                written = target.execute_raw(b"INSERT INTO %s (%s) VALUES (%s)" % (
                    target.quote(table).encode("utf-8"), columns.encode("utf-8"), page.text))
            if strategy == "conservative" and written != page.count:
                raise DamagedInputError("a batch of %d rows into %s wrote %d" % (page.count, table, written))
        if lane is not None:
            self._commit_position(lane, table, last, page.count, insert)
            return
        self._pass_gate()
        self.position[table] = last
        self.copied[table] = self.copied.get(table, 0) + page.count

        def write():
            insert()
            self._save_position(copied=True)
        target.write_batch(write)

    def _may_hold_reals(self, table):
        """SRC's columns of `table` that may hold a REAL (SQLite keeps one only where the affinity is not TEXT),
        read by run() before other threads use SRC's connection; all of them for a table it did not read."""
        return self.real_columns.get(table, self.graph.columns[table])

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
        counts = self.copied if copied else None
        if copied or group is not None:
            self._update_journal(db or self.target, self.position, counts, journal)
            return
        self._pass_gate()
        with self.target.transaction():
            self._update_journal(self.target, self.position, counts, journal)

    def _pass_gate(self):
        """Before a transaction into DST opens: SRC's quick_check passed (waited for the first time; its damage
        raised). Not inside one: a page's transaction would stay open as long as the check of a large file."""
        if self.gate is not None:
            self.gate.wait(self.stopping)

    def _update_journal(self, db, position, copied=None, journal=None):
        """The one UPDATE of the journal row: the last key copied per table, and (given) the rows copied per
        table; `journal` names the table where DST is attached to SRC's connection."""
        db.execute("UPDATE %s SET position = ?%s WHERE run_key = ?" % (
            journal or db.quote(JOURNAL), ", copied = ?" if copied is not None else ""),
            (position_text(position),) + ((json.dumps(copied),) if copied is not None else ()) + (self.plan.key,))


def without_generated(plan, target):
    """The plan the copy writes by: DST's generated columns (VIRTUAL, STORED) left out of every column list, as
    DST computes them and refuses a value for one. SRC's generated columns go as values into plain ones."""
    target.forget_catalog()  # --init may have created tables since the catalog was read
    generated = {t: target.generated_columns(t) for t in plan.tables}
    if not any(generated.values()):
        return plan
    columns = dict(plan.graph.columns)
    for table, names in generated.items():
        columns[table] = [c for c in columns[table] if c.lower() not in names]
    return dataclasses.replace(plan, graph=dataclasses.replace(plan.graph, columns=columns))
