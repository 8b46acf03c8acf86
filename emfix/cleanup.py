"""emfix cleanup-orphans: remove orphans and every row orphaned through them, keeping each one.

The plan is validate's sweep: a row is doomed when a parent is missing or doomed, computed parents
first over the whole relation graph, so one pass reaches the fixpoint. Every doomed row is copied
into a quarantine file and committed there before anything is deleted; then children go before
parents in short batches by rowid or primary key (the pt-archiver way), each batch its own
transaction. Killed at any moment, the database plus the quarantine hold every original row, and
running the command again finishes the job. The two halves live in emfix.orphans, so `repair` runs
them inside its own guarded change.
"""

import dataclasses
import time
from typing import Dict, Optional

from .backends import open_database
from .errors import UsageError
from .fksweep import sweep_foreign_keys
from .guarded import GuardedChange, Safeguards, checked_meanwhile, preflight
from .orphans import CHUNK_ROWS, RECREATABLE_PARENTS, CleanupPlan, plan_orphans, remove_orphans
from .progress import NoProgress
from .schema import discover_graph, table_named

__all__ = ["COMMAND", "RECREATABLE_PARENTS", "CleanupPlan", "CleanupResult", "cleanup_orphans"]

COMMAND = "cleanup-orphans"


@dataclasses.dataclass
class CleanupResult:
    plan: CleanupPlan
    dry_run: bool
    removed: Dict[str, int] = dataclasses.field(default_factory=dict)
    created: Dict[str, int] = dataclasses.field(default_factory=dict)
    quarantine: Optional[str] = None
    snapshot_id: Optional[str] = None
    seconds: float = 0.0
    batches: int = 0
    max_batch_ms: float = 0.0
    final: Optional[dict] = None  # validate's summary afterwards
    # rows another process changed after they were planned (re-parented, edited): not deleted
    left_alone: Dict[str, int] = dataclasses.field(default_factory=dict)
    left_alone_examples: Dict[str, list] = dataclasses.field(default_factory=dict)
    resumed: bool = False  # it finished an interrupted run: `removed` counts that run's rows too
    one_row_over_ms: float = 0.0  # a batch of one row took longer than --max-lock-ms (the limit cannot be met)


def cleanup_orphans(address, *, dry_run=False, batch_size=5000, sleep=0.0, max_lock_ms=200, tables=None,
                    include_unreferenced=False, recreate_parents=False, snapshot=True, snapshot_dir=None,
                    quarantine_dir=None, retry_policy=None, progress=None, confirm=None, interrupted=None,
                    final_validate=True, force=False):
    """Plan, then (unless dry_run) snapshot, quarantine and delete in batches. Returns CleanupResult."""
    progress = progress or NoProgress()
    interrupted = interrupted or (lambda: False)
    started = time.perf_counter()
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    with open_database(address, readonly=dry_run and address.is_sqlite and not recreate_parents,
                       retry_policy=retry_policy) as db:
        graph = preflight(db, address, force, writing=not dry_run, check=False)
        named = {t: table_named(t, graph.tables) for t in tables or ()}  # as the database spells them (trial: TRIAL)
        unknown = sorted(t for t, found in named.items() if found is None)
        if unknown:
            raise UsageError("no table %s in %s" % (", ".join(unknown), address.display()))
        tables = list(dict.fromkeys(named.values())) if tables else tables
        progress.update("planning", force=True)
        with checked_meanwhile(db, retry_policy):
            work = plan_orphans(db, graph, tables=tables, include_unreferenced=include_unreferenced,
                                recreate_parents=recreate_parents, preview=dry_run or confirm is not None)
        if dry_run:
            return CleanupResult(work.shown, True, seconds=time.perf_counter() - started)
        result = CleanupResult(work.plan, False)
        if work.anything:
            change = GuardedChange(address, COMMAND, "rows whose parent is missing, and the rows under them",
                                   Safeguards(snapshot, snapshot_dir, quarantine_dir, retry_policy, force), progress)
            change.confirm(confirm, work.shown)
            change.prepare()
            result.resumed = change.resuming
            with change:
                outcome = remove_orphans(db, graph, work, change, batch_size=batch_size, sleep=sleep,
                                         max_lock_ms=max_lock_ms, progress=progress, interrupted=interrupted)
                result.quarantine, result.snapshot_id = change.quarantine_path, change.snapshot_id
                result.plan, result.removed, result.created = outcome.plan, outcome.removed, outcome.created
                result.batches, result.max_batch_ms = outcome.batches, outcome.max_batch_ms
                result.one_row_over_ms = outcome.one_row_over_ms
                result.left_alone, result.left_alone_examples = outcome.left_alone, outcome.left_alone_examples
                change.finish(removed=result.removed, created=result.created, left_alone=result.left_alone)
    progress.done()
    if final_validate:  # on a connection of its own, once the one above is closed (a user may be allowed one)
        result.final = _final(address, retry_policy)
    result.seconds = time.perf_counter() - started
    return result


def _final(address, retry_policy):
    """The foreign-key half of validate, in short statements (the JSON is not cleanup's business)."""
    with open_database(address, readonly=address.is_sqlite, retry_policy=retry_policy) as db:
        graph = discover_graph(db)
        checks, tables, _plans = sweep_foreign_keys(db, graph, limit=0, chunk_rows=CHUNK_ROWS)
    return {"total_foreign_key_violations": sum(c.violations for c in checks),
            "rows_orphaned_through_parent": sum(t.cascade_rows for t in tables.values()),
            "null_keys": sum(c.null_keys for c in checks)}
