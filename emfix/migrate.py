"""emfix migrate: copy experiments between any two databases, resumable, and prove nothing was lost.

A migration runs in named phases (`_Migration.run`): preflight (what DST's journal says, the source
subtree reached and everything that would stop the copy half-way refused), prepare DST (tables,
journal row, snapshot), copy, verify, finish (the journal says what the verify found).

The source subtree is found with hierarchy.reach_subtree and read table by table (parents first)
in keyset pages (`WHERE key > last ORDER BY key LIMIT n`; OFFSET paging on request). Every batch
is inserted into DST in one transaction together with the journal row that records the last key
copied per table, so after a crash `--resume` continues exactly there: no duplicate, no gap. Ids
move only where they would collide (idshift), with the offsets kept in the journal.
"""

import dataclasses
import os
import time
from contextlib import nullcontext
from typing import Dict, List, Optional, Tuple

from . import pages
from .backends import open_database
from .backends.mysqlload import load_folder
from .copybatches import BatchCopy, without_generated
from .copycheck import TableCheck, verify_copy
from .copyjournal import (
    DIFFERS,
    DONE,
    JOURNAL,
    RUNNING,
    UNVERIFIED,
    copying_alone,
    ensure_journal,
    find_journal,
    held_by_other_copies,
    holds_nothing,
    journal_key,
    moved_on,
    new_journal_row,
    read_journal,
    set_reserved,
    set_state,
    take_back_row,
)
from .copyrefusals import (
    checked_source,
    foreign_ddl,
    refuse_by_journal,
    refuse_ids_the_copy_cannot_move,
    refuse_invalid_json,
    refuse_missing_columns,
    refuse_unfillable_columns,
)
from .copyvalues import refuse_oversized_values
from .errors import (
    ConnectError,
    DamagedInputError,
    DatabaseLockedError,
    EmfixError,
    NoSpaceError,
    NotFoundError,
    SchemaError,
    UsageError,
)
from .guarded import IntegrityCheck
from .hierarchy import ROOT, reach_subtree
from .idshift import (
    IdsTakenError,
    claim_gained_ids,
    claim_ids,
    claiming_alone,
    subtree_id_ranges,
    subtree_ids_above,
)
from .killpoints import kill_point
from .ownkeys import DUPLICATE_KEY, refuse_own_keys_dst_holds
from .pool import ConnectionPool
from .progress import BASE_MB, NoProgress, utc_now
from .schema import EM_TABLE_NAMES, create_schema, discover_graph
from .subtreerefusals import refuse_rows_no_copy_keeps, refuse_skipped_parents, skipped_tables

STRATEGIES = ("conservative", "balanced", "aggressive")  # what each does: `emfix migrate --help`


@dataclasses.dataclass(frozen=True)
class MigrateOptions:
    """How an experiment is copied: `emfix migrate`'s options, checked once when built (by keyword).

    batch_size: rows per transaction (2000 by default); max_memory (MB) caps it per table by row size."""
    strategy: str = "balanced"
    batch_size: Optional[int] = None
    paging: str = "keyset"
    resume: bool = False
    force: bool = False
    init: bool = False
    verify: bool = True
    retry_policy: object = None
    snapshot_dir: Optional[str] = None
    max_memory: Optional[int] = None
    skip_tables: Tuple[str, ...] = ()
    snapshot: bool = True  # False (--no-snapshot): no snapshot of DST first, whatever the strategy

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise UsageError("unknown strategy %r" % self.strategy, hint="conservative, balanced or aggressive")
        if self.max_memory is not None and self.max_memory < BASE_MB + 10:
            raise UsageError("--max-memory %d MB leaves nothing for the rows: emfix itself takes about %d MB" % (
                self.max_memory, BASE_MB), hint="give at least %d" % (BASE_MB + 10))
        object.__setattr__(self, "skip_tables", tuple(self.skip_tables or ()))


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


def migrate_experiment(src, dst, experiment_id, *, options=None, progress=None, interrupted=None, **keywords):
    """Copy one experiment of SRC into DST and verify it. `options` is a MigrateOptions, or its fields are
    given here by keyword (strategy=..., init=..., ...)."""
    if options is not None and keywords:
        raise TypeError("give either options or their keywords, not both")
    options = options if options is not None else MigrateOptions(**keywords)
    if src.same_database(dst):
        raise UsageError("SRC and DST are the same database (%s)" % src.display(),
                         hint="to copy an experiment within one database: emfix export, then emfix import")
    if dst.is_sqlite and not options.init and not os.path.exists(dst.path):
        raise NotFoundError("database file not found: %s" % dst.path,
                            hint="add --init to create it with the Experiment Manager's tables (or run `emfix init "
                                 "%s` first)" % dst.path)
    migration = _Migration(src, dst, experiment_id, options, progress or NoProgress(),
                           interrupted or (lambda: False))
    made_dst = options.init and dst.is_sqlite and not os.path.exists(dst.path)
    try:
        return migration.run()
    except BaseException as exc:
        # A refusal before anything was written must not leave an empty DST file behind it; nor a damaged SRC
        # found while the copy ran uncommitted.
        if made_dst and os.path.exists(dst.path) and holds_nothing(dst.path, getattr(exc, "quick_check", False)):
            for suffix in ("", "-journal", "-wal", "-shm"):
                if os.path.exists(dst.path + suffix):
                    os.remove(dst.path + suffix)
        raise


@dataclasses.dataclass
class _Plan:
    """What preflight found: DST's journal of this copy, SRC's subtree and the tables to copy."""
    graph: object
    existing: List[str]  # DST's tables
    key: str  # the journal row's run_key
    journal: Optional[dict]
    tree: object = None
    tables: List[str] = dataclasses.field(default_factory=list)
    creates: List[str] = dataclasses.field(default_factory=list)  # DDL of SRC's own tables DST lacks (--init)

    @property
    def state(self):
        return self.journal and self.journal["state"]


@dataclasses.dataclass
class _Start:
    """Where the copy starts: the id offsets, the last key copied per table, the rows copied so far."""
    offsets: dict
    position: dict
    copied: dict
    snapshot_id: Optional[str] = None
    gained: bool = False  # a resumed copy whose SRC gained ids since it began: every table is walked again


class _Migration:
    """One experiment's copy from SRC into DST, phase by phase (see `run`)."""

    def __init__(self, src, dst, experiment_id, options, progress, interrupted):
        self.src, self.dst, self.experiment_id, self.options = src, dst, experiment_id, options
        self.progress, self.interrupted = progress, interrupted
        self.started = time.perf_counter()
        self.readers = self.writers = self.source = self.target = None
        self.journal_written = False  # this run wrote its journal row (take_back_journal_row deletes no other's)

    def run(self):
        """preflight -> prepare DST -> copy -> verify -> finish. SRC is read at one moment from the first
        read to the last batch; its quick_check runs on a second reader meanwhile. SRC's pool has room for
        that second reader (or the pin of an in-engine copy); the pools open, check and close every
        connection, whatever happens here."""
        src, dst, options = self.src, self.dst, self.options
        as_text = src.is_sqlite and not dst.is_sqlite  # pages of SQL text, loaded from files of a private folder
        with load_folder() if as_text else nullcontext() as folder, \
                ConnectionPool(lambda: open_database(src, readonly=src.is_sqlite, retry_policy=options.retry_policy),
                               size=2) as readers, \
                ConnectionPool(lambda: open_database(dst, create=options.init, retry_policy=options.retry_policy,
                                                     load_directory=folder), size=2 if as_text else 1) as writers, \
                readers.connection() as source, \
                nullcontext(checked_source(source, src, self.experiment_id, options.resume)) as graph, \
                writers.connection() as target, \
                copying_alone(target, journal_key(src, self.experiment_id), "experiment %d from %s" % (
                    self.experiment_id, src.display())):
            self.readers, self.writers, self.source, self.target = readers, writers, source, target
            plan = self.read_journal(graph)
            if self.already_done(plan):
                # Killed after the last commit but before it could say so: the job is done, and says so.
                offsets = plan.journal["offsets"]
                return MigrationResult(self.experiment_id, self.experiment_id + offsets.get(ROOT, 0),
                                       plan.journal["copied"], offsets, True, time.perf_counter() - self.started)
            refuse_by_journal(src, dst, self.experiment_id, plan.journal, options.resume, options.force)
            with source.consistent_read():
                pin = pages.pin_moment(readers) if pages.copies_in_engine(source, target, options.paging) else None
                second = pin or (readers.acquire() if source.dialect == "sqlite" else None)
                with IntegrityCheck(source, second, None if pin or second is None else readers.release) as integrity:
                    self.preflight(plan)
                    # DST is prepared and the copy goes on meanwhile, but commits no row before it passed. Before
                    # then DST gets only what a damaged SRC lets undo_start take back or leave harmlessly: a new
                    # journal row, the id reservation, tables --init creates. A safety snapshot, or a journal row
                    # that is there already (--force, --resume), waits for the check (an outside tester: --force
                    # on a damaged SRC replaced a finished copy's journal row).
                    integrity.deferred = options.strategy == "aggressive" and plan.journal is None
                start = self.prepare_dst(plan, integrity)
                kill_point("prepared")  # tests: the journal row and the reservation are committed
                try:
                    copy = self.copy(plan, start, integrity, pin)
                    checks = self.verify(plan, start, copy)
                finally:  # the pin holds SRC's moment through the verify (round 57: a writer between them: DIFFERS)
                    if pin is not None:
                        pin.execute("COMMIT")
                        readers.release(pin)
                self.finish(plan, checks)
        self.progress.done()
        return MigrationResult(self.experiment_id, self.experiment_id + start.offsets.get(ROOT, 0), start.copied,
                               start.offsets, bool(options.resume and plan.journal),
                               time.perf_counter() - self.started, checks or [], start.snapshot_id)

    def read_journal(self, graph):
        """Preflight, first step: DST has a schema (or --init makes one), and DST's journal row of this experiment,
        if any, says how far an earlier copy got."""
        target = self.target
        existing = self.dst_catalog(lambda db: db.stable_tables(EM_TABLE_NAMES))
        if not existing and not self.options.init:
            raise UsageError("%s has no Experiment Manager schema" % self.dst.display(),
                             hint="add --init to create it, or run `emfix init %s`" % self.dst.display())
        key, journal = (find_journal(target, self.src, self.experiment_id) if JOURNAL in existing
                        else (journal_key(self.src, self.experiment_id), None))
        return _Plan(graph, existing, key, journal)

    def dst_catalog(self, read):
        """read(DST) of DST's catalog while no other copy reserves its ids: the server's catalog can leave out a
        table another session holds for its ALTER TABLE ... AUTO_INCREMENT (CI: a copy refused for a missing
        table, a verify's KeyError)."""
        with claiming_alone(self.target):
            return read(self.target)

    def already_done(self, plan):
        """--resume of a copy whose journal already says done (or unverified, and no verify asked)."""
        options, state = self.options, plan.state
        return bool(state and not options.force and options.resume and (
            state == DONE or (state == UNVERIFIED and not options.verify)))

    def preflight(self, plan):
        """Reach SRC's subtree and refuse, before anything is written, what would stop the copy half-way:
        tables DST lacks, (unless aggressive) breaks in the subtree or metric JSON DST's column refuses,
        values too long for a MySQL DST. Runs inside SRC's one moment, beside its quick_check."""
        source, target, graph, options = self.source, self.target, plan.graph, self.options
        tree = reach_subtree(source, graph, self.experiment_id, seek_rowids=True)  # (one moment: see run)
        if not tree.exists:
            raise UsageError("experiment %d does not exist in %s" % (self.experiment_id, self.src.display()))
        skipped = skipped_tables(source, graph, tree, options.skip_tables)
        tables = [t for t in tree.tables(graph) if t not in skipped]
        known = {e.lower() for e in plan.existing}
        if not options.init and any(t.lower() not in known for t in tables):  # once more before a refusal
            plan.existing = self.dst_catalog(lambda db: db.stable_tables(EM_TABLE_NAMES))
            known = {e.lower() for e in plan.existing}
        missing = [t for t in tables if t.lower() not in known]
        rows = {t: tree.count(source, graph, t) for t in missing}
        ours = [t for t in missing if t in EM_TABLE_NAMES and rows[t]]
        if ours and not options.init:
            raise SchemaError("%s has no table %s for rows of this experiment (an older schema generation)" % (
                self.dst.display(), ", ".join(ours)), hint="add --init to create the missing tables")
        foreign = {t: n for t, n in rows.items() if t not in EM_TABLE_NAMES and n}
        plan.creates = foreign_ddl(source, target, graph, foreign, options.init)
        plan.tree, plan.tables = tree, [t for t in tables if t not in missing or (t in EM_TABLE_NAMES and options.init)
                                        or t in foreign]
        if options.strategy != "aggressive" and not options.resume:
            from .hierarchy import check_hierarchy
            report = check_hierarchy(source, graph, self.experiment_id, tree=tree)  # (its key tables: not walked again)
            if report.breaks:
                raise EmfixError("the source subtree has %d breaks (e.g. %s); nothing was copied" % (
                    len(report.breaks), report.breaks[0].message),
                    hint="repair it first (emfix cleanup-orphans), or use --strategy aggressive")
            refuse_invalid_json(source, target, graph, tree, will_create="METRIC" not in plan.existing and options.init)
        refuse_skipped_parents(source, graph, tree, plan.tables, skipped)
        refuse_rows_no_copy_keeps(source, graph, tree, "copied", plan.tables)
        source.warn_without_transactions(plan.tables, reading=True)  # MyISAM: no one moment to copy from
        target.warn_without_transactions([t for t in plan.tables if t.lower() in known])  # nor a batch to roll back
        refuse_missing_columns(source, target, graph, tree, plan.tables, plan.existing)
        refuse_unfillable_columns(source, target, graph, tree, plan.tables, plan.existing)
        refuse_oversized_values(source, target, graph, tree, plan.tables, plan.existing,
                                thorough=options.strategy != "aggressive")
        refuse_ids_the_copy_cannot_move(source, graph, tree, plan.tables)  # (after: what DST refuses is said first)
        if not options.resume:  # (resumed: the keys DST holds are this copy's own, its journal says how far it got)
            refuse_own_keys_dst_holds(source, target, graph, tree, plan.tables, plan.existing)

    def prepare_dst(self, plan, integrity):
        """Only now, once nothing can refuse: the tables DST lacks (--init), the journal table, the snapshot
        of DST (unless aggressive), and the journal row saying `running` with the id offsets; or, resuming,
        where the journal says the copy stopped. A failure here takes back the journal row this run wrote."""
        source, target, options = self.source, self.target, self.options
        state, journal = plan.state, plan.journal
        created = False  # tables --init made that outlive a failure here (MySQL's DDL commits by itself)
        try:
            # SQLite DST without a snapshot first: schema, journal table and journal row in one commit (fsyncs).
            one_commit = target.dialect == "sqlite" and options.strategy == "aggressive"
            with target.transaction() if one_commit else nullcontext():
                if options.init:  # creates only the tables DST lacks
                    lacked = {t.lower() for t in plan.tables} - {t.lower() for t in plan.existing}
                    created = not one_commit and bool(lacked)
                    create_schema(target, generation=plan.graph.generation)
                    for ddl in plan.creates:
                        target.execute(ddl)
                ensure_journal(target)
                snapshot_id = None
                if options.strategy != "aggressive" and options.snapshot and not (options.resume and journal):
                    from .snapshot import safety_snapshot
                    snapshot_id = safety_snapshot(self.dst, options.snapshot_dir,
                                                  "migrating experiment %d" % self.experiment_id,
                                                  retry_policy=options.retry_policy)
                ranges = subtree_id_ranges(source, plan.graph, plan.tree, plan.tables)
                if options.resume and state in (RUNNING, DIFFERS, UNVERIFIED):  # copies what is left, verifies
                    return self.resume_start(plan, ranges, snapshot_id)
                # The ids are reserved as they are chosen, so the application's inserts meanwhile go above them:
                # SQLite in one transaction with the journal row (the application waits for it); MySQL's
                # ALTER TABLE commits by itself, so there the reservation comes before the journal row.
                with target.transaction() if target.dialect == "sqlite" else claiming_alone(target):
                    if read_journal(target, plan.key) != journal:  # the same copy, begun beside this one
                        raise EmfixError("another migrate of experiment %d from %s into %s began meanwhile; this "
                                         "one copied nothing" % (self.experiment_id, self.src.display(),
                                                                 self.dst.display()),
                                         hint="let that one finish (stopped, it is finished by the same command with "
                                              "--resume)")
                    offsets = claim_ids(target, ranges, held=held_by_other_copies(target, plan.key))
                    self.journal_written = True  # (before: a signal may land between its commit and the next line)
                    with target.transaction():
                        new_journal_row(target, plan.key, offsets, {t: high for t, (_low, high) in ranges.items()},
                                        utc_now())
                return _Start(offsets, {}, {}, snapshot_id)
        except BaseException as exc:
            self.undo_start(plan, exc, integrity)
            if created and isinstance(exc, EmfixError) and "--init created" not in exc.message:
                exc.message += " (the tables --init created in DST stay, empty)"
            raise

    def resume_start(self, plan, ranges, snapshot_id):
        """Where a resumed copy starts. DST's reservation is made again (a kill may have come before it held); ids
        SRC gained since the copy began (above what the journal says DST reserved) are reserved too, moved by the
        same offsets, unless DST's application took one of them meanwhile: then the copy cannot take them, and
        that is said before anything more is copied. A table that had no rows when the copy began gets its offset
        now. A copy an older emfix began (no `reserved` in its journal) is reserved again as it was."""
        target, journal = self.target, plan.journal
        offsets, gained = journal["offsets"], False
        if journal.get("reserved") is None:
            if plan.state == RUNNING:
                claim_ids(target, ranges, offsets)
        else:
            with target.transaction() if target.dialect == "sqlite" else claiming_alone(target):
                try:
                    offsets, reserved, gained = claim_gained_ids(
                        target, ranges, offsets, journal["reserved"], journal["copied"],
                        lambda table, above: subtree_ids_above(self.source, plan.graph, plan.tree, table, above),
                        held_by_other_copies(target, plan.key))
                except IdsTakenError as exc:
                    exc.hint = ("run the same command with --force to copy the experiment again from the start with "
                                "new ids, reserved first (the rows copied so far stay in DST as experiment %d: "
                                "delete it there if it is not wanted)" % (self.experiment_id + offsets.get(ROOT, 0)))
                    raise
                if gained:
                    with target.transaction():
                        set_reserved(target, plan.key, offsets, reserved)
        return _Start(offsets, journal["position"], journal["copied"], snapshot_id, gained)

    def copy(self, plan, start, integrity, pin):
        """Every batch still to copy, each committed with its journal row. A failure is said with what to do next
        (the batches committed stay: --resume goes on from them). `pin`: an in-engine copy's hold of SRC's moment."""
        source, target = self.source, self.target
        packet = pages.literal_limit(source, target)
        # SQL text: two inserting, where the server allows this user a second connection
        lanes = self.writers.acquire_up_to(2, first=[target])[1:] if packet and self.writers.size > 1 else []
        copy = BatchCopy(source, target, without_generated(plan, target), start, self.interrupted, self.progress,
                         packet, in_engine=pin is not None, lanes=lanes)
        try:
            copy.run(self.options, integrity, count_both=self.counts_in_engine(plan))
            if self.options.resume and plan.journal:  # SRC may have gained rows since the interruption
                copy.catch_up(self.options, everything=start.gained)
            integrity.wait()  # a copy with nothing left to commit still says a damaged SRC
        except BaseException as exc:
            self.undo_start(plan, exc, integrity)
            if getattr(exc, "kind", None) == DUPLICATE_KEY:
                self.refuse_if_copied_meanwhile(plan, copy)
            if pin is not None and isinstance(exc, DatabaseLockedError):
                # In-engine, SRC's connection writes DST attached to it, and only DST can be locked: SRC's own
                # reads never wait while the pin holds its read lock. It named SRC and SRC's holders.
                found = target.locked_error("waited %gs" % target.retry_policy.deadline)
                exc.message, exc.hint = found.message, found.hint
            if isinstance(exc, NoSpaceError):  # SRC's reader may be the one whose temporary files hit it
                exc.message = "copying into %s stopped: %s" % (self.dst.display(), exc.message)
            if isinstance(exc, (ConnectError, NoSpaceError)) or (
                    isinstance(exc, DamagedInputError) and not integrity.damage):
                exc.hint = (exc.hint + "; " if exc.hint else "") + "the batches copied so far are committed: " \
                    "once that is fixed, run the same command with --resume to finish"
            raise
        finally:
            for lane in lanes:
                self.writers.release(lane)
        return copy

    def refuse_if_copied_meanwhile(self, plan, copy):
        """A key DST holds, and the journal row no longer says what this run committed: another run of the same copy
        went on with it meanwhile (two --resume at once into a SQLite DST, which no named lock keeps apart; an outside
        tester's loser was told to use --force, which copies the experiment a second time)."""
        if moved_on(self.target, plan.key, copy.copied):
            raise DatabaseLockedError(
                "another migrate of experiment %d from %s into %s went on with this copy meanwhile (its journal row "
                "moved past what this run committed); this one stopped" % (
                    self.experiment_id, self.src.display(), self.dst.display()),
                hint="the batches committed so far stay: once no other migrate of it runs, the same command with "
                     "--resume finishes the copy (or says it is done); not --force, which copies it again") from None

    def counts_in_engine(self, plan):
        """An in-engine copy checked by counts alone has DST attached to SRC's connection: both sides are
        counted then, through SRC's key tables (copycheck.count_in_engine), instead of a second walk of DST.
        Only for a copy made whole in this run, at this moment of SRC: a resumed one may hold rows copied
        before from rows SRC has lost since, which only a walk of DST finds."""
        options = self.options
        return bool(options.verify and options.strategy == "aggressive" and plan.state != DIFFERS
                    and not (options.resume and plan.journal))

    def verify(self, plan, start, copy):
        """Counts (and unless aggressive, checksums) of the subtree on both sides, ids mapped; none with
        --no-verify. A copy that differed before is checked again in full, whatever was asked."""
        verify, strategy = self.options.verify, self.options.strategy
        if plan.state == DIFFERS:
            verify, strategy = True, "balanced" if strategy == "aggressive" else strategy
        if not verify:
            return None
        if copy.counted is not None and strategy == "aggressive":
            return copy.counted  # both sides counted in one pass while DST was attached (in-engine)
        # aggressive: a second connection to DST counts METRIC meanwhile, where the server allows this user one
        beside = self.writers.acquire_up_to(2, [self.target])[1:] if strategy == "aggressive" and \
            self.writers.size > 1 else []
        try:
            target_graph = self.dst_catalog(discover_graph)
            return verify_copy(self.source, self.target, plan.graph, plan.tree, plan.tables, start.offsets,
                               self.experiment_id, strategy, copy.source_counts, self.interrupted, target_graph,
                               beside[0] if beside else None)
        except ConnectError as exc:  # the copy is whole: only the verify is left
            exc.hint = (exc.hint + "; " if exc.hint else "") + "every row is copied and committed: once that is " \
                "fixed, run the same command with --resume to verify the copy"
            raise
        finally:
            for conn in beside:
                self.writers.release(conn)

    def finish(self, plan, checks):
        """The verify's result is the journal's: a copy is done only once it is verified."""
        state = UNVERIFIED if checks is None else DONE if all(c.ok for c in checks) else DIFFERS
        set_state(self.target, plan.key, state, utc_now())

    def undo_start(self, plan, exc, integrity):
        """SRC turned out damaged while the copy ran (nothing of it was committed): the journal row this run
        wrote goes too, so DST is as it was but for the tables --init created. Any other failure: SRC's
        check is waited for (a damaged SRC is said as such) or stopped. Stopped at once (a second Ctrl-C): the
        check is stopped, and the journal row this run wrote goes if no page was committed under it (a rerun
        said "a partial migration exists (0 rows copied)")."""
        if not isinstance(exc, Exception):
            integrity.cancel()
            if plan.journal is None:
                self.take_back_journal_row(plan, only_empty=True)
            return
        try:
            integrity.wait()
        except DamagedInputError as damaged:
            if plan.journal is None:
                removed = self.take_back_journal_row(plan)
                if removed:  # prepared before the check's answer: the journal row is gone, the reservation stays
                    damaged.message = damaged.message.replace("nothing was read or changed", (
                        "nothing was copied into %s (its id counters stay past the ids the copy had "
                        "reserved)") % self.dst.display())
            raise

    def take_back_journal_row(self, plan, only_empty=False):
        """Delete the journal row this run wrote (copyjournal.take_back_row); 0 when it wrote none."""
        if not self.journal_written:
            return 0
        return take_back_row(self.target, self.dst, plan.key, only_empty)
