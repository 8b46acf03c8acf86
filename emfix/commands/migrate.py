"""emfix migrate (also `migrate-experiment`): copy experiments between databases, resumable, verified."""

import dataclasses
import os
import tempfile

from .. import history
from ..errors import (
    EXIT_OK,
    AlreadyDoneError,
    DamagedInputError,
    DanglingLinksError,
    EmfixError,
    UnfinishedError,
    UsageError,
)
from . import common
from .common import n

STRATEGIES = {
    "conservative": "snapshot DST first; validate the source subtree and stop on any break (or on metric JSON "
                    "a MySQL JSON column would refuse); check every batch's row count as it is written; verify "
                    "counts and checksums at the end",
    "balanced": "snapshot DST first; validate the source subtree and stop on any break (or on metric JSON a "
                "MySQL JSON column would refuse); verify counts and checksums at the end",
    "aggressive": "no snapshot, no validation; verify row counts only at the end",
}


def register(sub):
    p = common.command(sub, "migrate", "copy experiments between databases (SQLite, MySQL), resumable, verified",
                "emfix migrate experiment.db mysql://em@db1/experiments -e 12 --init\n"
                "  emfix migrate experiment.db mysql://em@db1/experiments -e 12 --resume\n"
                "  emfix migrate-experiment -d experiment.db -s 12 -t 3   # the old form: within one database",
                aliases=["migrate-experiment"])
    p.add_argument("source", nargs="?", metavar="SRC", help="the database to copy from")
    p.add_argument("target", nargs="?", metavar="DST", help="the database to copy into")
    p.add_argument("-e", "-s", "--experiment", "--source-experiment", dest="experiment", type=common.row_id,
                   action="append", metavar="ID", help="an experiment (repeatable)")
    p.add_argument("-t", "--target-experiment", type=common.row_id, metavar="ID",
                   help="with -d DB (one database): add the copied trials to this existing experiment")
    p.add_argument("--no-snapshot", action="store_true",
                   help="skip the snapshot of DST taken first (the balanced and conservative strategies take one)")
    p.add_argument("--all", action="store_true", help="every experiment of SRC")
    p.add_argument("--strategy", choices=sorted(STRATEGIES), default="balanced",
                   help="; ".join("%s: %s" % kv for kv in sorted(STRATEGIES.items())) + " (default balanced)")
    p.add_argument("--batch-size", type=common.positive_int, metavar="N", help="rows per transaction (default 2000)")
    p.add_argument("--max-memory", type=common.positive_int, metavar="MB",
                   help="size each table's batches from this memory budget (with --batch-size: the smaller)")
    p.add_argument("--paging", choices=("keyset", "offset"), default="keyset",
                   help="keyset (WHERE key > last; default) or offset (LIMIT/OFFSET, slower on big tables)")
    p.add_argument("--resume", action="store_true",
                   help="finish a migration that was interrupted (with --all: the experiment begun, then the others), "
                        "or verify again a copy that differed")
    p.add_argument("--force", action="store_true", help="copy an experiment again that was already migrated; "
                   "also write to a MySQL replica (refused without)")
    p.add_argument("--init", action="store_true",
                   help="create the tables DST lacks, with the Experiment Manager's own DDL (on MySQL: FLOAT total_val "
                        "and DATETIME without fraction; values DST keeps less of are counted in the verify)")
    p.add_argument("--no-verify", action="store_true", help="skip the comparison at the end")
    p.add_argument("--skip-tables", metavar="T,...", help=common.SKIP_TABLES_HELP)
    p.add_argument("--snapshot-dir", metavar="DIR", help="where DST's snapshot goes")
    p.add_argument("--transformation-file", metavar="FILE",
                   help="with -d DB (the old form): apply these transform-metrics rules to the copied metrics "
                        "(originals kept in a quarantine file for `emfix undo`)")
    p.add_argument("--quarantine-dir", metavar="DIR", help="with --transformation-file: where the originals go")
    common.add_database_options(p, positional=False)  # -d DB: a copy within one database (the old tool's form)
    common.finish(p, run)


def run(args, out):
    from .. import hierarchy, migrate
    if args.source is None and (args.database or args.mysql):
        return _copy_within(args, out)
    if args.source is None or args.target is None:
        raise UsageError("migrate needs SRC and DST (or -d DB -s ID for a copy within one database)",
                         hint="e.g. emfix migrate experiment.db mysql://em@db1/experiments -e 12 --init")
    if args.target_experiment is not None:
        raise UsageError("-t/--target-experiment works within one database", hint="use -d DB -s ID -t ID")
    if args.transformation_file:
        raise UsageError("--transformation-file works with the old form, a copy within one database (-d DB -s ID)",
                         hint="after the migration: emfix transform-metrics DST -e NEW_ID --rules FILE")
    source, target = common.address_of(args.source, args), common.address_of(args.target, args)
    common.refuse_replica(args, target)  # DST is written; SRC is only read (a replica serves)
    ids = list(dict.fromkeys(args.experiment or []))  # `-e 1 -e 1` is experiment 1 (round 45: copied, then exit 2)
    if args.all:
        ids = hierarchy.list_experiments(source, retry_policy=common.retry_policy(args))
    if not ids:
        raise UsageError("which experiments? give -e ID (repeatable) or --all")
    resume = _to_resume(source, target, ids, args) if len(ids) > 1 else set(ids if args.resume else ())
    stop = common.StopFlag().install()
    options = migrate.MigrateOptions(
        strategy=args.strategy, batch_size=args.batch_size, paging=args.paging, force=args.force, init=args.init,
        verify=not args.no_verify, retry_policy=common.retry_policy(args), snapshot_dir=args.snapshot_dir,
        max_memory=args.max_memory, skip_tables=tuple(common.table_list(args.skip_tables) or ()),
        snapshot=not args.no_snapshot)
    results = []
    for experiment_id in ids:
        try:
            result = migrate.migrate_experiment(
                source, target, experiment_id, options=dataclasses.replace(options, resume=experiment_id in resume),
                progress=common.make_progress("migrate", args, out), interrupted=stop)
        except EmfixError as exc:
            if results:  # "nothing was copied" is of this experiment: the ones before it are copied (an outside tester)
                exc.message = "experiment %d: %s (experiment%s %s copied before it, and stay%s)" % (
                    experiment_id, exc.message, "s" if len(results) > 1 else "",
                    ", ".join(str(r.experiment_id) for r in results), "" if len(results) > 1 else "s")
            raise
        results.append(result)
        history.record(target, "migrate", "done" if result.verified else "DIFFERS", summary="experiment %d -> %s" % (
            result.experiment_id, "%s rows" % n(sum(result.copied.values()))))
        out.text("experiment %d -> %d in %s: %s rows in %.1f s%s" % (
            result.experiment_id, result.new_experiment_id, target.display(), n(sum(result.copied.values())),
            result.seconds, " (resumed)" if result.resumed else ""))
        out.lines(migrate_check_lines(result.verify))
    if out.json:
        common.emit_json(results)
    differing = [r for r in results if not r.verified]
    if differing:
        raise DamagedInputError("the copy differs from the source (see the table above)",
                                hint=_differs_hint(differing, target, args.snapshot_dir))
    return EXIT_OK


def _differs_hint(differing, target, snapshot_dir):
    """What to do about a copy that differs: where DST's content from before is (if a snapshot was taken), and,
    for a resumed copy, the likely cause: SRC changed between the interruption and the resume."""
    parts = []
    if any(r.resumed for r in differing):
        parts.append("a resumed copy differs when SRC lost or changed rows after the copy began (--resume copies "
                     "the rows SRC gained, but takes nothing back from DST): run the same command with --force to "
                     "copy it again from the start (new ids; the rows copied so far stay in DST)")
    taken = [r.snapshot_id for r in differing if r.snapshot_id]
    if taken:
        parts.append("snapshot %s of DST, taken first, holds its content from before: emfix snapshot restore %s%s "
                     "--snapshot-id %s" % (taken[0], target.target(), " --snapshot-dir %s" % snapshot_dir
                                           if snapshot_dir else "", taken[0]))
    elif not parts:
        parts.append("no snapshot of DST was taken first (--strategy aggressive or --no-snapshot)")
    return "; ".join(parts)


def _to_resume(source, target, ids, args):
    """Several experiments (--all, -e repeated), as DST's journal holds them: with --resume, those
    begun are finished (or verified again) and the others copied; without it, nothing is copied
    while one of them was begun, and the message says what to run."""
    from .. import copyjournal
    states = copyjournal.journal_states(source, target, ids, retry_policy=common.retry_policy(args))
    if args.resume:
        if not states:
            raise UsageError("nothing to resume: %s has no migration of these %d experiments from %s" % (
                target.display(), len(ids), source.display()), hint="run the same command without --resume")
        return set(states)
    if not states or args.force:
        return set()
    words = {copyjournal.DONE: "copied", copyjournal.UNVERIFIED: "copied, not verified",
             copyjournal.RUNNING: "partly copied", copyjournal.DIFFERS: "copied, but differs from the source"}
    found = "; ".join("%s %s" % (_ids([i for i in ids if states.get(i) == state]), word)
                      for state, word in words.items() if state in states.values())
    fresh = len(ids) - len(states)
    message = "%s already holds %d of these %d experiments of %s (%s); nothing was copied" % (
        target.display(), len(states), len(ids), source.display(), found)
    if fresh or set(states.values()) - {copyjournal.DONE}:
        begun = set(states.values())
        does = [what for what, needed in (("finishes what was partly copied", copyjournal.RUNNING in begun),
                                          ("verifies the copies not verified or that differ",
                                           begun & {copyjournal.DIFFERS, copyjournal.UNVERIFIED}),
                                          ("copies the %d not begun" % fresh, fresh)) if needed]
        again = "" if copyjournal.RUNNING in begun else "; --force copies every one again as a new experiment"
        raise UnfinishedError(message, hint="to finish: the same command with --resume (it %s)%s" % (
            " and ".join(does), again))
    raise AlreadyDoneError(message, hint="pass --force to copy them again as new experiments")


def _ids(ids):
    shown = ", ".join(str(i) for i in ids[:10])
    return "experiment%s %s%s" % ("s" if len(ids) > 1 else "", shown, ", …" if len(ids) > 10 else "")


def _copy_within(args, out):
    """The old tool's `migrate-experiment -d DB -s ID [-t ID]`: a copy of an experiment inside its own
    database (new ids), or its trials added to experiment -t. Export to a private temporary file, then
    import: both stream, both check, and the import is resumable like any other."""
    from .. import copyjournal, export, exportfile, hierarchy, importer, snapshot, transform
    address = common.resolve_address(args)
    if not args.experiment or len(args.experiment) != 1:
        raise UsageError("which experiment? give -s ID (one)", hint="e.g. emfix migrate-experiment -d DB -s 12")
    source_id, into, policy = args.experiment[0], args.target_experiment, common.retry_policy(args)
    common.refuse_replica(args, address)
    rules = transform.load_rules(args.transformation_file) if args.transformation_file else None
    done = copyjournal.find_copy_within(address, source_id, into, retry_policy=policy)
    if done and not args.force:
        # A repeat of a finished copy would add the same trials (or make the same experiment) again.
        what = "added to experiment %d" % into if into is not None else "copied as experiment %d" % (
            done["experiment_id"])
        if not args.resume:
            raise AlreadyDoneError("experiment %d was already %s in %s; nothing was copied" % (
                source_id, what, address.display()), hint="pass --force to %s again" % (
                    "add its trials" if into is not None else "make another copy"))
        out.text("experiment %d was already %s in %s: nothing to resume" % (source_id, what, address.display()))
        if out.json:
            common.emit_json(dict(done, source_experiment=source_id, resumed=True))
        return EXIT_OK
    snapshot_id = None
    if not args.no_snapshot:
        snapshot_id = snapshot.safety_snapshot(address, args.snapshot_dir, "copying experiment %d" % source_id,
                                               retry_policy=policy)
    with tempfile.TemporaryDirectory(prefix="emfix-copy-") as folder:
        path = os.path.join(folder, "experiment-%d.jsonl" % source_id)
        exported = export.export_experiment(address, source_id, path, retry_policy=policy)
        dangling = {t: count for t, count in exported.dangling.items() if count}
        if dangling and args.strategy != "aggressive":  # the export says so: nothing is imported
            raise DanglingLinksError("experiment %d has link rows whose parent row is missing; nothing was copied "
                                     "(%s)" % (source_id, ", ".join("%s %d" % kv for kv in sorted(dangling.items()))),
                                     hint="repair it first (emfix cleanup-orphans), or copy them as they are with "
                                          "--strategy aggressive")
        options = dict(retry_policy=policy, progress=common.make_progress("migrate", args, out),
                       interrupted=common.StopFlag().install(), allow_dangling=args.strategy == "aggressive",
                       into_experiment=into, resume=args.resume)
        if into is None:  # named as the old tool named its copies
            options.update(zip(("experiment_title", "experiment_desc"),
                               hierarchy.copy_names(address, source_id, policy)))
        try:  # a killed copy is finished with --resume; one that finished before only with --force
            result = importer.import_file(address, path, **options)
        except AlreadyDoneError:
            if not args.force:  # the same rows imported before (killed before its copy was recorded)
                raise AlreadyDoneError("experiment %d was already %s in %s; nothing was copied" % (
                    source_id, "added to experiment %d" % into if into is not None else "copied", address.display()),
                    hint="pass --force to copy it again") from None
            result = importer.import_file(address, path, force=True, **options)
        copyjournal.record_copy_within(address, source_id, into, result.experiment_id, result.counts,
                                       retry_policy=policy)
        transformed = None
        if rules is not None:  # the same transform as transform-metrics, over the copied metrics alone
            transformed = transform.transform_metrics(
                address, rules, metric_ids=exportfile.imported_ids(path, "METRIC", result.id_offsets), snapshot=False,
                quarantine_dir=args.quarantine_dir, retry_policy=policy, force=args.force,
                progress=common.make_progress("transform-metrics", args, out))
    if out.json:
        common.emit_json(dict(common.to_jsonable(result), source_experiment=source_id, snapshot_id=snapshot_id,
                              transform=common.to_jsonable(transformed) if transformed else None))
    else:
        out.text("experiment %d %s in %s: %s rows, %.1f s" % (
            source_id, "added to experiment %d" % result.experiment_id if into is not None
            else "copied as experiment %d" % result.experiment_id, address.display(),
            n(sum(result.counts.values())), result.seconds))
        if snapshot_id:
            out.text("snapshot before: %s" % snapshot_id)
        if transformed is not None:
            out.text("transformed %s of %s copied metric values; originals kept in %s (undo: emfix undo %s)" % (
                n(transformed.changed), n(transformed.scanned), transformed.quarantine, transformed.quarantine))
    return EXIT_OK


def migrate_check_lines(checks):
    """SRC and DST side by side: rows, and the content checksum (ids mapped) where one was taken."""
    if not checks:
        return
    summed = any(c.source_checksum for c in checks)
    yield "  %-20s %12s %12s%s" % ("table", "SRC rows", "DST rows", "  checksum SRC / DST" if summed else "")
    for c in checks:
        sums = ""
        if summed:
            sums = "  %s / %s" % (c.source_checksum[:12], c.target_checksum[:12])
        yield "  %-20s %12s %12s%s  %s" % (c.table, n(c.source_rows), n(c.target_rows), sums,
                                          "ok" if c.ok else "DIFFERS")
    for c in checks:
        for column, count in sorted(c.narrowed.items()):
            yield ("  note: %s %s of %s.%s %s stored as DST's column keeps them (a single-precision FLOAT or a "
                   "DATETIME without the fraction, as the Experiment Manager's MySQL schema declares it; a number in "
                   "a DECIMAL to its scale; text in a binary column as its bytes; a whole number in a text column as "
                   "its digits); the checksums compare them as DST stores them" % (
                       n(count), "value" if count == 1 else "values", c.table, column, "is" if count == 1 else "are"))
