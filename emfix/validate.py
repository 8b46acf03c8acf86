"""emfix validate: every relation, the cascade a cleanup would follow, every metric's JSON.

The work happens in the database: the foreign-key sweep (fksweep) on one connection, while the
METRIC scans (JSON, unreferenced rows, SQLite's quick_check) run meanwhile on a second read-only
one. This module holds the report and that driver.
"""

import contextlib
import dataclasses
import datetime
import functools
import logging
import os
import threading
import time
from typing import Dict, List, Optional

from . import __version__
from .backends import open_database
from .errors import ConnectError, DamagedInputError, DatabaseLockedError, TooManyConnectionsError
from .fksweep import (
    UNREFERENCED_TABLES,
    RelationCheck,
    TableCheck,
    Unreferenced,
    find_unreferenced,
    iter_violations,
    sweep_foreign_keys,
)
from .forkworker import ForkedWorker, fork_possible
from .jsoncheck import JsonScan, metric_id_ranges, scan_metric_json
from .pool import ConnectionPool
from .progress import NoProgress
from .schema import SchemaGraph, discover_graph, require_experiment_manager
from .snapshot.restoremark import describe as describe_restore
from .snapshot.restoremark import unfinished_restore

log = logging.getLogger(__name__)


@dataclasses.dataclass
class ValidationReport:
    database: dict
    graph: SchemaGraph
    relations: List[RelationCheck]
    tables: Dict[str, TableCheck]
    json: JsonScan
    unreferenced: List[Unreferenced]
    timings: Dict[str, float]
    limit: int
    tables_without_key: List[str] = dataclasses.field(default_factory=list)
    hierarchy: Optional[object] = None
    generated_at: str = ""
    unfinished_restore: Optional[dict] = None  # snapshot/restoremark.py: a restore that did not finish

    @property
    def total_violations(self):
        return sum(r.violations for r in self.relations)

    @property
    def total_cascade_rows(self):
        return sum(t.cascade_rows for t in self.tables.values())

    @property
    def passed(self):
        """No violation, no JSON issue, and no restore half done (round 24: an empty, half-restored database
        was "PASS", exit 0, with the restore in a warning)."""
        return self.total_violations == 0 and self.json.issue_count == 0 and self.unfinished_restore is None

    @property
    def status(self):
        return "PASS" if self.passed else "FAIL"

    def warnings(self):
        found = []
        if self.unfinished_restore is not None:
            message, hint = describe_restore(self.unfinished_restore, self.database.get("url", ""))
            found.append({"kind": "unfinished_restore", "restore": self.unfinished_restore,
                          "message": "%s: what is missing shows as violations; %s" % (message, hint)})
        if self.graph.missing_tables:
            found.append({"kind": "missing_tables", "tables": self.graph.missing_tables,
                          "message": "not an Experiment Manager table set: %s missing; the rest was checked"
                          % ", ".join(self.graph.missing_tables)})
        for rel in self.graph.unresolved:
            found.append({"kind": "unresolved_relation", "relation": rel.describe(),
                          "message": "%s cannot be checked: table %s is missing" % (rel.describe(), rel.parent)})
        if self.tables_without_key:
            found.append({"kind": "no_primary_key", "tables": self.tables_without_key,
                          "message": "no primary key on %s: rows are named by rowid or by all their columns"
                          % ", ".join(self.tables_without_key)})
        for check in self.relations:
            if check.null_keys:
                found.append({"kind": "null_foreign_key", "relation": check.relation.describe(),
                              "count": check.null_keys,
                              "message": "%s NULL in %s.%s (allowed, not a violation)" % (
                                  _rows(check.null_keys, check.relation.child, "has", "have"),
                                  check.relation.child, ", ".join(check.relation.child_columns))})
        for unref in self.unreferenced:
            if unref.count:
                found.append({"kind": "unreferenced", "table": unref.table, "count": unref.count,
                              "examples": unref.examples,
                              "message": "%s not referenced by any link table"
                              % _rows(unref.count, unref.table, "is", "are")})
        if self.json.structure_count:
            found.append({"kind": "json_structure", "count": self.json.structure_count,
                          "examples": [i.to_dict() for i in self.json.structure_examples],
                          "message": "%s valid JSON that is not an object of label -> number"
                          % _rows(self.json.structure_count, "METRIC", "holds", "hold")})
        if self.json.skipped:
            found.append({"kind": "json_not_checked", "message": "metric JSON not checked: %s" % self.json.skipped})
        return found

    def examples_by_table(self, cascade=False):
        """Examples per table, capped at `limit` per table across its relations."""
        grouped = {}
        for check in self.relations:
            items = check.cascade_examples if cascade else check.examples
            bucket = grouped.setdefault(check.relation.child, [])
            bucket.extend(items[:max(0, self.limit - len(bucket))])
        return grouped

    def to_dict(self):
        """The cookbook's report keys first (scripts read them), then emfix's own sections."""
        cascade_examples = self.examples_by_table(cascade=True)
        examples = self.examples_by_table()
        return {
            "foreign_key_violations": {t: [old_violation_text(v) for v in items] for t, items in examples.items()},
            "foreign_key_violation_records": {t: [v.to_dict() for v in items] for t, items in examples.items()},
            "json_metric_issues": [i.to_dict() for i in self.json.issues],
            "summary": {"total_foreign_key_violations": self.total_violations,
                        "total_json_metric_issues": self.json.issue_count,
                        "overall_status": self.status,
                        "rows_orphaned_through_parent": self.total_cascade_rows,
                        "fixable_json_issues": self.json.fixable_count,
                        "warnings": len(self.warnings())},
            "tables": {t: {"violating_rows": c.violating_rows, "orphaned_through_parent": c.cascade_rows,
                           "null_key_rows": c.null_key_rows,
                           "violations": sum(r.violations for r in self.relations if r.relation.child == t)}
                       for t, c in self.tables.items()},
            "cascade": {t: {"rows": self.tables[t].cascade_rows, "examples": [v.to_dict() for v in items]}
                        for t, items in cascade_examples.items() if self.tables[t].cascade_rows},
            "relations": [r.to_dict() for r in self.relations],
            "json": {"issue_count": self.json.issue_count, "fixable": self.json.fixable_count,
                     "categories": self.json.categories, "structure_warnings": self.json.structure_count,
                     "judged_by": self.json.judged_by},
            "warnings": self.warnings(),
            "hierarchy": self.hierarchy.to_dict() if self.hierarchy is not None else None,
            "schema": {"generation": self.graph.generation, "tables": self.graph.tables,
                       "missing_tables": self.graph.missing_tables},
            "database": self.database,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "limit": self.limit,
            "generated_at": self.generated_at,
            "timestamp": self.generated_at,  # the old tool's name for it (scripts read it)
            "emfix_version": __version__,
        }


def old_violation_text(v):
    """A violation as the old tool's report wrote it: "T.col = v references non-existent P.col"."""
    def side(table, columns, values=None):
        names = columns[0] if len(columns) == 1 else "(%s)" % ", ".join(columns)
        if values is None:
            return "%s.%s" % (table, names)
        shown = values[0] if len(values) == 1 else "(%s)" % ", ".join(str(x) for x in values)
        return "%s.%s = %s" % (table, names, shown)
    return "%s references non-existent %s" % (side(v.table, list(v.columns), list(v.values)),
                                              side(v.parent_table, list(v.parent_columns)))


def _rows(count, table, singular, plural):
    return "%d %s %s %s" % (count, table, "row" if count == 1 else "rows", singular if count == 1 else plural)


# -- running it all ---------------------------------------------------------------------------------

class _MetricWork:
    """The METRIC-side checks as small independent tasks any connection can take.

    A helper starts on them at once; the main connection joins in when its foreign-key sweep is
    done, so the two cores stay busy until the end. On a SQLite file the helper is a forked process
    (forkworker: SQLite's allocator has one lock per process); where it is a thread, the two never
    test JSON at the same time (json_valid allocates for every value: side by side, each took 2-4
    times as long as alone), so while one tests JSON the other takes the other tasks, or stops when only
    JSON is left.
    """

    JSON_PIECES = 16  # small pieces: the connection that finishes first waits less for the other

    def __init__(self, graph, limit, deep_json=False, sink=None, quick_check=True):
        self.graph, self.limit, self.deep_json, self.sink = graph, limit, deep_json, sink
        self.quick_check = quick_check
        self.lock = threading.Lock()
        self.tasks = []
        self.json_parts = {}
        self.unreferenced = {}
        self.seconds = {"json": 0.0, "unreferenced": 0.0}
        self.busy = {}  # seconds (and CPU) each connection spent on these tasks: the critical path, in --json
        self.damage = ""
        self.json_alone = False  # a helper thread on SQLite: one connection at a time tests JSON
        self.testing_json = 0  # connections testing JSON now

    def prepare(self, db, helper_thread):
        ranges = metric_id_ranges(db, self.graph.columns, self.JSON_PIECES)
        self.json_alone = helper_thread and db.dialect == "sqlite"
        whole = [("quick_check",)] if db.dialect == "sqlite" and self.quick_check else []
        whole += [("unreferenced", t) for t in UNREFERENCED_TABLES if t in self.graph.tables]
        pieces = [("json", n, r) for n, r in enumerate(ranges)]
        # The helper starts on the tasks that cannot be split while the main connection sweeps, and
        # the two share the JSON pieces at the end. A helper thread on SQLite starts on the JSON
        # instead, and the main connection, done, takes the other tasks beside it.
        self.tasks = pieces + whole if self.json_alone else whole + pieces

    def _next(self):
        with self.lock:
            for n, task in enumerate(self.tasks):
                if task[0] == "json" and self.json_alone and self.testing_json:
                    continue  # the other connection is testing JSON: leave the rest of it to that one
                if task[0] == "json":
                    self.testing_json += 1
                return self.tasks.pop(n)
            return None

    def drain(self, db, who):
        """Take tasks until none is left, running them on `db`."""
        def run(task):
            cpu = time.thread_time()
            result = run_metric_task(db, self._message(task), self._sink_of(task))
            return result, time.thread_time() - cpu
        self._drain(who, run)

    def drain_through(self, worker, who, identity):
        """Take tasks until none is left, running them in a helper process (forkworker.ForkedWorker)
        that first shows it reads the file of `identity` (file_identity), not one put in its place."""
        try:
            theirs = worker.run((("identity",), None, None, None))[1]
        except DatabaseLockedError:  # a writer waits for this process's read lock: this one does it all
            return
        if theirs != identity:
            raise _replaced("the database file")

        def run(task):
            result = worker.run(self._message(task), self._sink_of(task))
            return result, worker.last_cpu
        self._drain(who, run)

    def _message(self, task):
        return task, self.graph, self.limit, self.deep_json

    def _sink_of(self, task):
        return None if self.sink is None or task[0] != "json" else functools.partial(self.sink, part=task[1])

    def _drain(self, who, run):
        """`run(task)` -> (what it found, the CPU seconds of the thread or process that ran it)."""
        began, spent = time.perf_counter(), 0.0
        try:
            while True:
                task = self._next()
                if task is None:
                    return
                started, result, cpu = time.perf_counter(), None, None
                try:
                    result, cpu = run(task)
                    spent += cpu
                finally:
                    self._record(task, result, time.perf_counter() - started, cpu)
        finally:
            self.busy["metric_tasks_" + who] = time.perf_counter() - began
            self.busy["cpu_metric_tasks_" + who] = spent

    def _record(self, task, result, seconds, cpu):
        with self.lock:
            if task[0] == "json":
                self.testing_json -= 1
            if result is not None:
                if task[0] == "quick_check":
                    self.damage = result[1]
                elif task[0] == "unreferenced":
                    self.unreferenced[task[1]] = result[1]
                else:
                    self.json_parts[task[1]] = result[1]
            self.seconds[task[0]] = self.seconds.get(task[0], 0.0) + seconds
            if cpu is not None:  # the CPU of the thread (or process) that ran it, whatever else the machine runs
                self.seconds["cpu_" + task[0]] = self.seconds.get("cpu_" + task[0], 0.0) + cpu

    def results(self):
        scan = JsonScan()
        for n in sorted(self.json_parts):
            scan.merge(self.json_parts[n], self.limit)
        unreferenced = [self.unreferenced[t] for t in UNREFERENCED_TABLES if self.unreferenced.get(t)]
        return scan, unreferenced


def run_metric_task(db, message, sink=None):
    """One METRIC task on `db`: (its kind, what it found). A plain function: a helper process runs it too."""
    task, graph, limit, deep_json = message
    if task[0] == "identity":
        return task[0], db.file_identity
    if task[0] == "quick_check":  # validate reads the whole file anyway: a damaged one is said first
        return task[0], db.quick_check()
    if task[0] == "unreferenced":
        # MySQL: in a consistent read its scratch table is filled without shared locks (create_temp_table)
        with db.consistent_read() if db.dialect == "mysql" else contextlib.nullcontext():
            return task[0], find_unreferenced(db, graph, limit, task[1])
    return task[0], scan_metric_json(db, graph.columns, limit, task[2], deep_json, sink)  # `sink`: in id order


def _open_for_checks(address, retry_policy):
    """SQLite opens read-only (mode=ro). MariaDB refuses temporary tables in a READ ONLY session, so
    the MySQL connection is a normal one that writes only to its own TEMPORARY tables."""
    return open_database(address, readonly=address.is_sqlite, retry_policy=retry_policy)


def _tune(db):
    if db.dialect == "sqlite":
        db.execute("PRAGMA cache_size = -4000")  # 4 MB: parent index pages stay cached during a sweep


def describe_database(db):
    info = dict(db.address.to_dict())
    info["dialect"] = db.dialect
    info["server_version"] = db.server_version()
    if db.dialect == "sqlite" and os.path.isfile(db.address.path):
        info["size_bytes"] = os.path.getsize(db.address.path)
    return info


def file_identity(path):
    """(device, inode) of the file at `path` now; None when there is none."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def _same_file_throughout(path, before):
    """The identity of the file a connection opened between `before` (file_identity then) and now."""
    if before is None or file_identity(path) != before:
        raise _replaced(path)
    return before


def _replaced(what):
    return ConnectError("%s was replaced while validate opened it: the report would mix two files" % what,
                        hint="run validate again")


def _helper_connection(address, retry_policy):
    """The helper process's connection, its read lock taken at once and held to its end (see _validate),
    and the identity of the file it opened."""
    before = file_identity(address.path)
    db = _open_for_checks(address, retry_policy)
    _tune(db)
    db.execute("BEGIN")
    db.scalar("SELECT count(*) FROM sqlite_master")
    db.file_identity = _same_file_throughout(address.path, before)
    return db


def _start_helper(drain):
    """A thread working through the METRIC tasks beside the main connection's sweep: on a second
    connection, or feeding a helper process."""
    failure = []

    def run():
        try:
            drain()
        except BaseException as exc:  # re-raised in the main thread
            failure.append(exc)

    thread = threading.Thread(target=run, name="emfix-validate-metrics", daemon=True)
    try:
        thread.start()
    except RuntimeError:  # no thread to be had (a limit): the main connection does it all
        return None
    return thread, failure


def _drain_on_own_connection(pool, work):
    try:
        db = pool.acquire()
    except TooManyConnectionsError as exc:  # the server allows this user one connection: the main one does it all
        log.info("checking over one connection: %s", exc)
        return
    try:
        _tune(db)
        work.drain(db, "helper")
    finally:
        pool.release(db)


@contextlib.contextmanager
def _helper_process(address, retry_policy, wanted):
    """A forked helper (forkworker.ForkedWorker) for a SQLite file, or None where it cannot be had: forked
    before this process opens a connection (one must not cross fork()); killed when validate stops early."""
    worker = None
    if wanted and fork_possible():
        try:
            worker = ForkedWorker.start(lambda: _helper_connection(address, retry_policy), run_metric_task)
        except OSError:  # no process to be had: a thread, or this one alone
            worker = None
    if worker is None:
        yield None
        return
    try:
        yield worker
    except BaseException:
        worker.close(kill=True)
        raise
    worker.close()


def validate(address, *, limit=100, experiment=None, retry_policy=None, progress=None, parallel=True,
             deep_json=False, force=False, every_violation=None, every_json_issue=None, quick_check=True):
    """Check a database read-only; return a ValidationReport (nothing is written to it).

    The report's lists are capped at `limit`; every_violation(table, violation) and
    every_json_issue(issue, part=N) are called for each one found (the latter from helper threads; `part`
    numbers the id ranges of the scan in id order), for a report file that holds them all without holding them
    in memory."""
    progress = progress or NoProgress()
    started = time.perf_counter()
    wanted = parallel and address.is_sqlite and address.path != ":memory:"
    with _helper_process(address, retry_policy, wanted) as worker:
        timings = {}
        opened = file_identity(address.path) if worker is not None else None
        # The connections come from the pool: it opens them (retrying as the policy says), checks one
        # before handing it out again, and closes them all, whatever happens here.
        with ConnectionPool(lambda: _open_for_checks(address, retry_policy), size=2) as pool, \
                pool.connection() as db:
            _tune(db)
            graph = discover_graph(db)
            restoring = unfinished_restore(db)  # and again at the end: one running now may be gone by then
            require_experiment_manager(graph, address, force)
            db.warn_without_transactions(graph.tables, reading=True)  # MyISAM: a finding may be a write under way
            timings["discover"] = time.perf_counter() - started
            no_key = [t for t in graph.tables if not graph.primary_keys.get(t)]
            work = _MetricWork(graph, limit, deep_json, every_json_issue, quick_check)
            in_memory = db.dialect == "sqlite" and db.address.path == ":memory:"
            work.prepare(db, helper_thread=worker is None and parallel and not in_memory)
            helper = None
            if worker is None and parallel and not in_memory:
                helper = _start_helper(lambda: _drain_on_own_connection(pool, work))
            step, cpu = time.perf_counter(), time.thread_time()
            with db.consistent_read():  # one moment of every relation, read without locks (MySQL too)
                if worker is not None:
                    # The helper process holds a read lock of its own. This process holds its own from before
                    # the helper's to after its last task, so it never asks for one while a writer waits for
                    # the helper's (rollback journal: a waiting writer blocks new readers); and the helper
                    # must have opened the same file (checked on its first answer).
                    db.scalar("SELECT count(*) FROM sqlite_master")
                    identity = _same_file_throughout(address.path, opened)
                    helper = _start_helper(lambda: work.drain_through(worker, "helper", identity))
                checks, tables, plans = sweep_foreign_keys(db, graph, limit, progress)
                if every_violation is not None:
                    for table, violation in iter_violations(db, graph, plans):
                        every_violation(table, violation)
                timings["foreign_keys"] = time.perf_counter() - step
                timings["cpu_foreign_keys"] = time.thread_time() - cpu
                progress.update("metric JSON", force=True)
                if worker is not None:
                    work.drain(db, "main")
            if worker is None:
                work.drain(db, "main")
            step = time.perf_counter()
            if helper is not None:
                helper[0].join()
                if helper[1]:
                    raise helper[1][0]
            timings["waiting_for_helper"] = time.perf_counter() - step
            if work.damage:
                raise DamagedInputError("%s is damaged: %s" % (address.display(), work.damage),
                                        hint="restore a snapshot (emfix snapshot restore %s), or recover what is "
                                             "readable with the sqlite3 shell's .recover" % address.target())
            json_scan, unreferenced = work.results()
            timings.update(work.seconds)
            timings.update(work.busy)
            hierarchy = None
            if experiment is not None:
                from .hierarchy import check_hierarchy
                step = time.perf_counter()
                with db.consistent_read():  # one moment, and on MySQL no row lock
                    hierarchy = check_hierarchy(db, graph, experiment, limit)
                timings["hierarchy"] = time.perf_counter() - step
            database = describe_database(db)
            unfinished = unfinished_restore(db) or restoring
        progress.done()
        timings["total"] = time.perf_counter() - started
        return ValidationReport(database=database, graph=graph, relations=checks, tables=tables, json=json_scan,
                                unreferenced=unreferenced, timings=timings, limit=limit, tables_without_key=no_key,
                                hierarchy=hierarchy, unfinished_restore=unfinished,
                                generated_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
