"""emfix optimize: index the foreign-key columns that have none, refresh statistics, optionally compact.

A child column without an index makes every "which rows point at this parent" question a full
scan: the hierarchy walk (validate --experiment, export, migrate), cleanup's deletes, and the
Experiment Manager's own lookups. Only indexes are added and statistics refreshed; no row changes,
so no snapshot is taken. Each CREATE INDEX is one statement, so an interrupted run is finished by
running it again. VACUUM / OPTIMIZE TABLE rewrite the database and need room for a copy: the free
disk is checked first.
"""

import dataclasses
import os
import shutil
import time
from typing import List, Optional

from .backends import open_database
from .errors import NoSpaceError
from .fksweep import sweep_foreign_keys
from .guarded import check_integrity
from .progress import NoProgress
from .schema import MissingIndex, discover_graph, find_missing_indexes, require_experiment_manager


@dataclasses.dataclass
class OptimizeResult:
    database: str
    dry_run: bool
    created: List[MissingIndex]
    analyzed: bool = False
    vacuumed: bool = False
    checkpointed: bool = False
    slowest_relation: str = ""
    before_seconds: Optional[float] = None
    after_seconds: Optional[float] = None
    validate_before: Optional[float] = None
    validate_after: Optional[float] = None
    seconds: float = 0.0

    def to_dict(self):
        data = dataclasses.asdict(self)
        data["created"] = [gap.to_dict() for gap in self.created]
        return data


def _time_checks(address, retry_policy):
    """validate's foreign-key checks alone (what indexes can change), timed: (checks, total seconds).
    The metric JSON scan, which no index touches, is not run."""
    started = time.perf_counter()
    with open_database(address, readonly=address.is_sqlite, retry_policy=retry_policy) as db:
        with db.transaction():
            checks = sweep_foreign_keys(db, discover_graph(db), limit=1)[0]
    return checks, time.perf_counter() - started


def _seconds_of(checks, relation_text):
    return next((c.seconds for c in checks if c.relation.describe() == relation_text), None)


def optimize(address, *, dry_run=False, vacuum=False, timing=True, retry_policy=None, progress=None, force=False):
    progress = progress or NoProgress()
    started = time.perf_counter()
    with open_database(address, readonly=dry_run and address.is_sqlite, retry_policy=retry_policy) as db:
        graph = discover_graph(db)
        require_experiment_manager(graph, address, force)
        check_integrity(db)
        missing = find_missing_indexes(db, graph)
    result = OptimizeResult(address.display(), dry_run, missing)
    if timing:
        progress.update("timing validate before", force=True)
        checks, total = _time_checks(address, retry_policy)
        slowest = max(checks, key=lambda c: c.seconds, default=None)
        if slowest is not None:
            result.slowest_relation, result.before_seconds = slowest.relation.describe(), slowest.seconds
        result.validate_before = total
    if dry_run:
        result.seconds = time.perf_counter() - started
        progress.done()
        return result
    with open_database(address, retry_policy=retry_policy) as db:
        for gap in missing:
            progress.update("creating %s" % gap.name, force=True)
            db.execute("CREATE INDEX %s%s ON %s (%s)" % ("IF NOT EXISTS " if db.dialect == "sqlite" else "",
                                                        db.quote(gap.name), db.quote(gap.table),
                                                        db.quote_columns(gap.columns)))
        progress.update("ANALYZE", force=True)
        if db.dialect == "sqlite":
            db.execute("ANALYZE")
            if str(db.scalar("PRAGMA journal_mode")).lower() == "wal":
                db.query("PRAGMA wal_checkpoint(TRUNCATE)")
                result.checkpointed = True
        else:
            for table in db.tables():
                db.query("ANALYZE TABLE %s" % db.quote(table))
        result.analyzed = True
        if vacuum:
            _compact(db, progress)
            result.vacuumed = True
    if timing:
        progress.update("timing validate after", force=True)
        after, total = _time_checks(address, retry_policy)
        result.after_seconds = _seconds_of(after, result.slowest_relation)
        result.validate_after = total
    progress.done()
    result.seconds = time.perf_counter() - started
    return result


def _compact(db, progress):
    """VACUUM needs room for a full copy (plus its journal); OPTIMIZE TABLE for the largest table."""
    if db.dialect == "sqlite":
        path = os.path.abspath(db.address.path)
        need = 2 * os.path.getsize(path)
        where = os.path.dirname(path)
    else:
        need = int(db.scalar("SELECT COALESCE(max(data_length + index_length), 0) FROM information_schema.tables "
                             "WHERE table_schema = DATABASE()") or 0)
        where = str(db.scalar("SELECT @@datadir"))
    try:
        free = shutil.disk_usage(where).free
    except OSError:
        free = None  # a remote server's datadir: the server itself refuses when it runs out
    if free is not None and free < need:
        raise NoSpaceError("compacting needs about %.0f MB free in %s, and %.0f MB are" % (
            need / 1e6, where, free / 1e6), hint="free some space, or run optimize without --vacuum")
    progress.update("compacting", force=True)
    if db.dialect == "sqlite":
        db.execute("VACUUM")
    else:
        for table in db.tables():
            db.query("OPTIMIZE TABLE %s" % db.quote(table))
