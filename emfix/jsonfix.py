"""emfix fix-json: rewrite the metric values the database's JSON check rejects, keeping each original.

The scan selects only what the database doubts (not text, not valid JSON, a JSON string that may
hold the object), pages through it by key, repairs each value with jsonrepair.repair, writes the
originals to a quarantine file and commits it, then updates the batch in one short transaction.
Unrepairable values are reported and left alone unless --reset-unfixable asks for {}. The pages
live in emfix.jsonpages, so `repair` runs them inside its own guarded change.
"""

import time

from .backends import open_database
from .guarded import GuardedChange, Safeguards, ValueRewrites, preflight
from .jsonpages import FixJsonResult, metric_target, repair_values
from .progress import NoProgress

__all__ = ["COMMAND", "FixJsonResult", "fix_json"]

COMMAND = "fix-json"


def fix_json(address, *, column="METRIC.per_label_val", dry_run=False, reset_unfixable=False, batch_size=500,
             snapshot=True, snapshot_dir=None, quarantine_dir=None, retry_policy=None, progress=None, confirm=None,
             interrupted=None, force=False):
    progress = progress or NoProgress()
    interrupted = interrupted or (lambda: False)
    started = time.perf_counter()
    safeguards = Safeguards(snapshot, snapshot_dir, quarantine_dir, retry_policy, force)
    with open_database(address, readonly=dry_run and address.is_sqlite, retry_policy=retry_policy) as db:
        graph = preflight(db, address, force, writing=not dry_run)
        table, col, key = metric_target(graph, column)
        result = FixJsonResult(table, col, dry_run)
        with GuardedChange(address, COMMAND, "metric values rewritten by fix-json", safeguards, progress) as change:
            rewrites = None
            if not dry_run:
                change.confirm(confirm, address)
                change.prepare(table=table, column=col, key=key, tables=[table])
                rewrites = ValueRewrites(change, table, key, col)
            repair_values(db, table, col, key, batch_size, reset_unfixable, rewrites, result, progress, interrupted)
            change.finish(repaired=result.repaired, reset=result.reset, left_alone=result.left_alone_count)
            result.snapshot_id, result.quarantine = change.snapshot_id, change.kept_in
    progress.done()
    result.seconds = time.perf_counter() - started
    return result
