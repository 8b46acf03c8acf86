"""emfix repair: the troubleshooting cookbook's whole workflow in one command, under one undo.

The cookbook walks a person through four commands (snapshot, remove orphans, fix the metric JSON,
validate again), each with its own question, snapshot and quarantine. Here they are one guarded
change: preflight once, one plan for everything (orphans to remove or parents to recreate, metric
values to repair by kind, values that cannot be repaired and what happens to them, what is not
touched), one question, one verified snapshot, ONE quarantine holding both the removed rows and the
rewritten values, then the foreign-key and JSON checks again, before -> after per table.

Rows are removed first (emfix.orphans), then the values the plan found are rewritten
(emfix.jsonpages), each batch kept before it is written and written by compare-and-swap. Killed at
any moment, the same command (or --resume) finishes the repair; nothing is applied twice: a removed
row is no orphan any more, a repaired value is no longer doubtful. `emfix undo` of the quarantine
puts back the rows first, then the values.
"""

import dataclasses
import time
from typing import Dict, List, Optional

from . import quarantine as q
from .backends import open_database
from .errors import UsageError
from .fksweep import sweep_foreign_keys
from .guarded import (
    GuardedChange,
    Safeguards,
    ValueRewrites,
    checked_meanwhile,
    kill_point,
    preflight,
    rowid_windows,
)
from .jsoncheck import scan_metric_json
from .jsonpages import FixJsonResult, metric_target, repair_values
from .orphandelete import settle_marks
from .orphans import CHUNK_ROWS, plan_orphans, remove_orphans
from .progress import NoProgress
from .schema import discover_graph

COMMAND = "repair"
REASON = "orphaned rows removed and metric values rewritten by repair"
COLUMN = "METRIC.per_label_val"
KEPT_VALUES = "_emfix_values_%s"  # the quarantine table of a column's rewritten values (rows keep the table's name)
KEEP_KEYS = 1000000  # more doubtful values than this: the rewrite pass scans again instead of holding their keys
NOT_TOUCHED = [
    "METRIC and ARTIFACT rows no link references (validate warns; `emfix cleanup-orphans --include-unreferenced` "
    "removes them)",
    "metric values that are valid JSON but not an object of label -> number (validate warns; a person decides)",
    "tables that are not the Experiment Manager's, and every other column",
]


@dataclasses.dataclass
class ValuePlan:
    column: str
    doubtful: int = 0  # values the JSON check rejects
    to_repair: int = 0
    by_kind: Dict[str, int] = dataclasses.field(default_factory=dict)  # what the repairs change, by kind
    unfixable: int = 0
    unfixable_action: str = "left as they are"  # or "reset to {}" (--reset-unfixable)
    examples: List[dict] = dataclasses.field(default_factory=list)
    problems: List[dict] = dataclasses.field(default_factory=list)

    @property
    def to_rewrite(self):
        return self.to_repair + (self.unfixable if self.unfixable_action != "left as they are" else 0)


@dataclasses.dataclass
class RepairPlan:
    remove: Dict[str, int]  # table -> rows, children first
    recreate: Dict[str, int]  # parent table -> rows --recreate-parents creates first
    keepable: Dict[str, int]  # links whose missing parent could be recreated instead of removed
    examples: Dict[str, list]
    values: ValuePlan
    not_touched: List[str]
    unkeyed: Dict[str, int] = dataclasses.field(default_factory=dict)  # orphans in MySQL tables without a key: stay
    held: Dict[str, int] = dataclasses.field(default_factory=dict)  # doomed rows kept: rows that stay point at them

    @property
    def rows_to_remove(self):
        return sum(self.remove.values())

    @property
    def empty(self):
        return not (self.rows_to_remove or self.recreate or self.values.to_rewrite)


@dataclasses.dataclass
class RepairResult:
    database: str
    dry_run: bool
    plan: RepairPlan
    before: dict  # the checks' figures before: per table and in total
    after: Optional[dict] = None  # the same, checked again afterwards (None for a dry run)
    removed: Dict[str, int] = dataclasses.field(default_factory=dict)
    created: Dict[str, int] = dataclasses.field(default_factory=dict)
    repaired: int = 0
    reset: int = 0
    # what another process changed after emfix read it: left as that process wrote it
    rows_left_alone: Dict[str, int] = dataclasses.field(default_factory=dict)
    values_left_alone: int = 0
    values_left_alone_keys: List[object] = dataclasses.field(default_factory=list)
    remaining: List[str] = dataclasses.field(default_factory=list)  # what is left after, and why
    quarantine: Optional[str] = None
    snapshot_id: Optional[str] = None
    resumed: bool = False
    seconds: float = 0.0

    @property
    def clean(self):
        return self.after is not None and self.after["status"] == "PASS" and not self.left_alone

    @property
    def left_alone(self):
        return sum(self.rows_left_alone.values()) + self.values_left_alone

    def per_table(self):
        """[(table, before figures, after figures)] for every table with something before or after."""
        before, after = self.before["tables"], (self.after or {}).get("tables", {})
        zero = {"violations": 0, "orphaned_through_parent": 0, "json_issues": 0}
        names = list(before) + [t for t in after if t not in before]
        return [(t, before.get(t, zero), after.get(t, zero) if self.after is not None else None) for t in names]

    def to_dict(self):
        data = {k: getattr(self, k) for k in ("database", "dry_run", "before", "after", "removed", "created",
                                              "repaired", "reset", "rows_left_alone", "values_left_alone",
                                              "values_left_alone_keys", "remaining", "quarantine", "snapshot_id",
                                              "resumed")}
        data["plan"] = dict(dataclasses.asdict(self.plan), rows_to_remove=self.plan.rows_to_remove,
                            values_to_rewrite=self.plan.values.to_rewrite)
        data["per_table"] = [{"table": t, "before": b, "after": a} for t, b, a in self.per_table()]
        data["clean"] = self.clean
        data["undo"] = "emfix undo %s" % self.quarantine if self.quarantine else None
        data["seconds"] = round(self.seconds, 3)
        return data


# -- the checks' figures, before and after -------------------------------------------------------------

def figures(checks, tables, json_issues):
    """Per table: rows with a missing parent, rows orphaned through a parent, metric JSON issues."""
    per = {}
    for table, found in tables.items():
        if found.violating_rows or found.cascade_rows:
            per[table] = {"violations": found.violating_rows, "orphaned_through_parent": found.cascade_rows,
                          "json_issues": 0}
    if json_issues:
        per.setdefault("METRIC", {"violations": 0, "orphaned_through_parent": 0, "json_issues": 0})
        per["METRIC"]["json_issues"] = json_issues
    violations = sum(c.violations for c in checks)
    return {"tables": per, "foreign_key_violations": violations,
            "rows_orphaned_through_parent": sum(t.cascade_rows for t in tables.values()),
            "json_metric_issues": json_issues, "null_keys": sum(c.null_keys for c in checks),
            "status": "PASS" if not violations and not json_issues else "FAIL"}


def check(address, retry_policy=None):
    """validate's foreign-key sweep and metric JSON check again (read-only), as figures."""
    with open_database(address, readonly=address.is_sqlite, retry_policy=retry_policy) as db:
        graph = discover_graph(db)
        checks, tables, _plans = sweep_foreign_keys(db, graph, limit=0, chunk_rows=CHUNK_ROWS)
        windows = rowid_windows(db, "METRIC", "id") if "METRIC" in graph.tables else None
        issues = sum(scan_metric_json(db, graph.columns, limit=0, id_range=window).issue_count
                     for window in (windows if windows is not None else [None]))
    return figures(checks, tables, issues)


# -- the plan ---------------------------------------------------------------------------------------------

def _plan(work, scan, reset_unfixable):
    shown = work.shown  # None with --recreate-parents and no question: the rows are known once the parents exist
    values = ValuePlan(COLUMN, scan.candidates, scan.repaired, dict(scan.changes), scan.unrepairable,
                       "reset to {}" if reset_unfixable else "left as they are", scan.examples[:5], scan.problems[:10])
    recreate = dict(work.keepable) if work.recreate_parents else {}
    return RepairPlan(dict(shown.remove) if shown else {}, recreate, dict(work.keepable),
                      dict(shown.examples) if shown else {}, values, list(NOT_TOUCHED),
                      dict(shown.unkeyed) if shown else {}, dict(shown.held) if shown else {})


def _recorded(path):
    con = q.open_quarantine(path)
    try:
        return q.read_meta(con)
    finally:
        con.close()


def _refuse_other_options(address, unfinished, **ours):
    """A rerun finishes an interrupted repair only with the options it was begun with: with others (an outside
    tester), the end state mixed both (parents recreated by the first, values reset by the second) and the
    quarantine then recorded only the second's, unsaid."""
    recorded = _recorded(unfinished).get("options")
    if not isinstance(recorded, dict):  # an older emfix recorded none
        return
    theirs = {name: bool(recorded.get(name, False)) for name in ours}
    if theirs != ours:
        flags = " ".join("--" + name.replace("_", "-") for name, on in sorted(theirs.items()) if on) or "neither " \
            "--recreate-parents nor --reset-unfixable"
        raise UsageError("an interrupted repair of %s begun with %s has not finished (%s); nothing was changed" % (
            address.display(), flags, unfinished), hint="finish it with --resume (it takes the options it was begun "
                                                        "with), or `emfix undo %s` first" % unfinished)


def repair(address, *, dry_run=False, recreate_parents=False, reset_unfixable=False, resume=False, batch_size=1000,
           max_lock_ms=200, snapshot=True, snapshot_dir=None, quarantine_dir=None, retry_policy=None, progress=None,
           confirm=None, interrupted=None, force=False):
    """Plan, then (unless dry_run) one question, one snapshot, one quarantine, the orphans removed and the
    values rewritten; then the checks again. Returns RepairResult. `resume` finishes an interrupted
    repair with the options it was started with (a plain rerun with those options finishes it too; with others
    it is refused)."""
    progress = progress or NoProgress()
    interrupted = interrupted or (lambda: False)
    started = time.perf_counter()
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    change = GuardedChange(address, COMMAND, REASON, Safeguards(snapshot, snapshot_dir, quarantine_dir, retry_policy,
                                                                force), progress)
    unfinished = q.find_unfinished(change.quarantine_dir, COMMAND, address)
    if resume:
        if not unfinished:
            raise UsageError("nothing to resume: no unfinished repair of %s in %s" % (
                address.display(), change.quarantine_dir), hint="run it without --resume")
        options = _recorded(unfinished).get("options") or {}
        recreate_parents = options.get("recreate_parents", recreate_parents)
        reset_unfixable = options.get("reset_unfixable", reset_unfixable)
    elif unfinished and not dry_run:
        _refuse_other_options(address, unfinished, recreate_parents=recreate_parents, reset_unfixable=reset_unfixable)
    with open_database(address, readonly=dry_run and address.is_sqlite and not recreate_parents,
                       retry_policy=retry_policy) as db:
        graph = preflight(db, address, force, writing=not dry_run, check=False)
        try:
            table, col, key = metric_target(graph, COLUMN)
        except UsageError as exc:  # --force on a database that is not the Experiment Manager's
            raise UsageError("%s; repair works on the Experiment Manager's %s, and changed nothing" % (
                exc.message, COLUMN), hint="on another schema: emfix cleanup-orphans, and emfix fix-json --column "
                                           "TABLE.COLUMN") from None
        with checked_meanwhile(db, retry_policy):
            progress.update("planning: foreign keys", force=True)
            work = plan_orphans(db, graph, recreate_parents=recreate_parents,
                                preview=dry_run or confirm is not None)
            progress.update("planning: metric JSON", force=True)
            scan, found = FixJsonResult(table, col, True), []
            repair_values(db, table, col, key, batch_size, reset_unfixable, None, scan, NoProgress(), lambda: False,
                          found=found)
        plan = _plan(work, scan, reset_unfixable)
        result = RepairResult(address.display(), dry_run, plan, figures(work.checks, work.tables, scan.candidates))
        if dry_run:
            result.seconds = time.perf_counter() - started
            return result
        if plan.empty and not unfinished:
            result.after = result.before  # nothing to change: the checks just ran
            result.remaining = remaining(result)
            result.seconds = time.perf_counter() - started
            return result
        if not plan.empty:
            change.confirm(confirm, plan)
        change.prepare(values=[{"table": table, "column": col, "key": key, "kept_as": KEPT_VALUES % table}],
                       options={"recreate_parents": recreate_parents, "reset_unfixable": reset_unfixable})
        result.resumed = change.resuming
        if result.resumed:  # the snapshot the interrupted run took holds the content from before it
            change.snapshot_id = _recorded(change.quarantine_path).get("snapshot_id")
        with change:
            q.write_meta(change.open(), snapshot_id=change.snapshot_id)
            if work.anything:
                outcome = remove_orphans(db, graph, work, change, batch_size=batch_size, max_lock_ms=max_lock_ms,
                                         progress=progress, interrupted=interrupted)
                result.removed, result.created = outcome.removed, outcome.created
                result.rows_left_alone = outcome.left_alone
                if work.plan is None:  # the parents were created first: this is the plan that ran
                    plan.remove, plan.examples = dict(outcome.plan.remove), dict(outcome.plan.examples)
            elif result.resumed:  # nothing left to remove: still, settle what the interrupted run removed
                settle_marks(db, graph, change.open())
                result.removed = q.removed_counts(change.open())
            kill_point("between")
            if plan.values.to_rewrite:
                done = FixJsonResult(table, col, False)
                rewrites = ValueRewrites(change, table, key, col, kept_as=KEPT_VALUES % table)
                repair_values(db, table, col, key, batch_size, reset_unfixable, rewrites, done, progress, interrupted,
                              keys=found if len(found) <= KEEP_KEYS else None)
                result.repaired, result.reset = done.repaired, done.reset
                result.values_left_alone, result.values_left_alone_keys = done.left_alone_count, done.left_alone[:100]
            change.finish(removed=result.removed, created=result.created, repaired=result.repaired,
                          reset=result.reset, left_alone=result.left_alone)
            result.quarantine, result.snapshot_id = change.kept_in, change.snapshot_id
    progress.update("checking again", force=True)
    result.after = check(address, retry_policy)
    progress.done()
    result.remaining = remaining(result)
    result.seconds = time.perf_counter() - started
    return result


def remaining(result):
    """What is left after the repair, and why, one sentence each (empty when the database is clean)."""
    after, plan, said = result.after, result.plan, []
    if after is None:
        return said
    failing = after["json_metric_issues"]
    if failing:
        # Of the values still failing, at most the plan's unrepairable ones were left so; any more were written
        # (or changed) by another process since the plan (an outside tester: those, fixable, were said unrepairable).
        left = min(failing, plan.values.unfixable) if plan.values.unfixable_action == "left as they are" else 0
        if left:
            said.append("%d metric values cannot be repaired without guessing and were left as they are "
                        "(--reset-unfixable sets them to {}, keeping the originals)" % left)
        if failing > left:
            said.append("%d metric values still fail the JSON check (written by another process since the plan?); "
                        "run the same command again" % (failing - left))
    rows = after["foreign_key_violations"] + after["rows_orphaned_through_parent"]
    if rows:
        said.append("%d foreign-key violations and %d rows orphaned through a parent remain%s" % (
            after["foreign_key_violations"], after["rows_orphaned_through_parent"],
            "" if result.rows_left_alone else " (written since the plan, or in a table without a key); run the same "
                                              "command again"))
    if result.rows_left_alone:
        said.append("%d rows another process changed (or gave back a missing parent) after they were planned were "
                    "left alone (%s); run the same command again to check them anew (rows under them removed before "
                    "that are in the quarantine: emfix undo puts everything back)" % (
                        sum(result.rows_left_alone.values()),
                        ", ".join("%s %d" % kv for kv in sorted(result.rows_left_alone.items()))))
    if result.values_left_alone:
        said.append("%d metric values another process changed after emfix read them were left as it wrote them"
                    % result.values_left_alone)
    return said
