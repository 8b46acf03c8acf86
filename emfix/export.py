"""emfix export / import: one experiment's complete subtree as a stream, and back in with new ids.

Export walks the relation graph from the experiment (hierarchy.reach_subtree: trials, runs,
results, epochs, batches, every link row, and the METRIC/ARTIFACT rows they point at) inside one
consistent read and writes row by row, so memory does not grow with the experiment. `jsonl` is one
record per line between a header and a trailer holding per-table counts and a SHA-256 of the
records; `json` keeps the old tool's layout for the scripts that read it.

Import checks the whole file first (trailer, checksum, counts), then inserts parents before
children in one transaction, shifting every auto-increment id (experiment, trial, run, metric,
artifact) past the ids already in the database, and every key that refers to one with it.
"""

import dataclasses
import datetime
import hashlib
import json
import sys
import time
from typing import Dict

from . import __version__
from .backends import open_database
from .errors import UsageError
from .fileutil import durable_output, stdout_error
from .guarded import check_integrity
from .hierarchy import ROOT, check_hierarchy, reach_subtree
from .idshift import AUTO_ID_TABLES
from .jsonrepair import strict_loads
from .outputguard import check_output_path
from .progress import NoProgress
from .schema import discover_graph, require_experiment_manager
from .subtreerefusals import refuse_rows_no_copy_keeps
from .values import EXPORT_FORMAT, encode_value

BATCH = 1000


@dataclasses.dataclass
class ExportResult:
    experiment_id: int
    path: str
    format: str
    counts: Dict[str, int]
    sha256: str
    seconds: float
    dangling: Dict[str, int] = dataclasses.field(default_factory=dict)  # link rows whose parent is missing


# -- export -----------------------------------------------------------------------------------------

def _select(db, graph, tree, table):
    columns = graph.columns[table]
    source, keys, _names = tree.source(db, graph, table)
    return columns, "SELECT %s FROM %s ORDER BY %s" % (db.exact_columns(table, columns, "t."), source,
                                                       ", ".join(keys))


def export_experiment(address, experiment_id, path, *, fmt="jsonl", retry_policy=None, progress=None, force=False):
    """Stream one experiment's subtree to `path` ('-' for stdout); returns counts and checksum."""
    if fmt not in ("jsonl", "json"):
        raise UsageError("unknown format %r" % fmt, hint="use jsonl or json")
    progress = progress or NoProgress()
    started = time.perf_counter()
    with open_database(address, readonly=address.is_sqlite, retry_policy=retry_policy) as db:
        graph = discover_graph(db)
        check_integrity(db)  # a damaged file would give a partial export that looks whole
        # (round 46: a database without TRIAL_RUN was "whole" to check-hierarchy, and exported what was reached)
        require_experiment_manager(graph, address, hint="check the path or URL")
        with db.consistent_read():
            tree = reach_subtree(db, graph, experiment_id)
            if not tree.exists:
                raise UsageError("experiment %s does not exist in %s" % (experiment_id, address.display()),
                                 hint="`emfix validate DB --experiment ID` lists what a missing id left behind")
            refuse_rows_no_copy_keeps(db, graph, tree, "exported")
            tables = tree.tables(graph)
            db.warn_without_transactions(tables, reading=True)  # MyISAM: the export is one moment only if so
            dangling = {}
            for broken in check_hierarchy(db, graph, experiment_id, limit=0, tree=tree).breaks:
                dangling[broken.table] = dangling.get(broken.table, 0) + broken.count
            writer = _write_jsonl if fmt == "jsonl" else _write_json
            if path == "-":
                try:
                    counts, digest = writer(db, graph, tree, tables, sys.stdout, experiment_id, address, progress,
                                            dangling)
                    sys.stdout.flush()
                except OSError as exc:
                    if isinstance(exc, BrokenPipeError):
                        raise  # the reader stopped (`| head`): cli says nothing
                    raise stdout_error(exc) from None
            else:
                real, in_place = check_output_path(path, [address.path] if address.is_sqlite else [], force=force)
                with durable_output(real, in_place=in_place) as out:
                    counts, digest = writer(db, graph, tree, tables, out, experiment_id, address, progress, dangling)
    progress.done()
    return ExportResult(experiment_id, path, fmt, counts, digest, time.perf_counter() - started, dangling)


def _metadata(address, experiment_id, db):
    return {"exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(), "experiment_id": experiment_id,
            "include_metrics": True, "include_artifacts": True,
            "database_type": "SQLite" if db.dialect == "sqlite" else "MySQL", "source": address.to_dict(),
            "emfix_version": __version__, "format": EXPORT_FORMAT}


def _write_jsonl(db, graph, tree, tables, out, experiment_id, address, progress, dangling):
    header = {"header": _metadata(address, experiment_id, db), "tables": tables,
              "columns": {t: graph.columns[t] for t in tables}}
    header_line = json.dumps(header) + "\n"
    out.write(header_line)
    digest, counts, low_ids, high_ids = hashlib.sha256(), {}, {}, {}
    for table in tables:
        columns, sql = _select(db, graph, tree, table)
        count = 0
        for row in db.iter_rows(sql, arraysize=BATCH):
            line = json.dumps({"table": table, "row": [encode_value(v) for v in row]}, ensure_ascii=False,
                              allow_nan=False) + "\n"
            digest.update(line.encode("utf-8"))
            out.write(line)
            count += 1
            if table in AUTO_ID_TABLES and "id" in columns:
                value = row[columns.index("id")]
                if isinstance(value, int):
                    low_ids[table] = min(value, low_ids.get(table, value))
                    high_ids[table] = max(value, high_ids.get(table, value))
            if count % 10000 == 0:
                progress.update("%s: %d rows" % (table, count))
        counts[table] = count
    trailer = {"trailer": {"counts": counts, "sha256": digest.hexdigest(), "min_ids": low_ids, "max_ids": high_ids,
                           "dangling": dangling,  # the header's own, so that its column names are checked too
                           "header_sha256": hashlib.sha256(header_line.encode("utf-8")).hexdigest()}}
    out.write(json.dumps(trailer) + "\n")
    return counts, digest.hexdigest()


def _json_value(table, column, value):
    if table == "METRIC" and column == "per_label_val" and isinstance(value, str):
        try:
            return strict_loads(value)  # as an object, like the old layout; malformed values stay text
        except (ValueError, RecursionError):
            return value
    return encode_value(value)


def _write_json(db, graph, tree, tables, out, experiment_id, address, progress, dangling):
    """The old tool's layout, streamed: experiment, trials with nested runs, metrics, artifacts;
    emfix adds each run's batches and a `links` section with every link table."""
    counts = {t: 0 for t in tables}
    digest = hashlib.sha256()

    def rows(table, extra="", params=()):
        columns, sql = _select(db, graph, tree, table)
        if extra:
            sql = (sql.replace(" ORDER BY", " AND %s ORDER BY" % extra, 1) if " ORDER BY" in sql
                   else sql + " AND " + extra)
        for row in db.iter_rows(sql, params, arraysize=BATCH):
            counts[table] += 1
            yield {c: _json_value(table, c, v) for c, v in zip(columns, row)}

    def emit(text):
        digest.update(text.encode("utf-8"))
        out.write(text)

    def dumps(value):
        return json.dumps(value, ensure_ascii=False, allow_nan=False, default=str)

    q = db.quote
    experiment = next(rows(ROOT))
    emit('{"experiment": %s, "trials": [' % dumps(experiment))
    for n, trial in enumerate(rows("TRIAL") if "TRIAL" in tables else []):
        emit((", " if n else "") + '{"trial": %s, "runs": [' % dumps(trial))
        for m, run in enumerate(rows("TRIAL_RUN", "t.%s = ?" % q("trial_id"), (trial["id"],))
                                if "TRIAL_RUN" in tables else []):
            results = list(rows("RESULTS", "t.%s = ?" % q("trial_run_id"), (run["id"],))) \
                if "RESULTS" in tables else []
            emit((", " if m else "") + '{"run": %s, "results": %s, "epochs": [' % (
                dumps(run), dumps(results[0] if results else None)))
            for k, epoch in enumerate(rows("EPOCH", "t.%s = ?" % q("trial_run_id"), (run["id"],))
                                      if "EPOCH" in tables else []):
                emit((", " if k else "") + dumps(epoch))
            emit('], "batches": [')
            for k, batch in enumerate(rows("BATCH", "t.%s = ?" % q("trial_run_id"), (run["id"],))
                                      if "BATCH" in tables else []):
                emit((", " if k else "") + dumps(batch))
            emit("]}")
        emit("]}")
        progress.update("trial %s" % trial["id"])
    for section, table in (("metrics", "METRIC"), ("artifacts", "ARTIFACT")):
        emit('], "%s": [' % section)  # closes the trials (then the metrics) array
        for n, row in enumerate(rows(table) if table in tables else []):
            emit((", " if n else "") + dumps(row))
    emit('], "links": {')
    links = [t for t in tables if t not in (ROOT, "TRIAL", "TRIAL_RUN", "RESULTS", "EPOCH", "BATCH", "METRIC",
                                            "ARTIFACT")]
    for n, table in enumerate(links):
        emit((", " if n else "") + "%s: [" % json.dumps(table))
        for k, row in enumerate(rows(table)):
            emit((", " if k else "") + dumps(row))
        emit("]")
    metadata = dict(_metadata(address, experiment_id, db), counts=counts, dangling=dangling)
    emit('}, "export_metadata": %s}\n' % dumps(metadata))
    return counts, digest.hexdigest()
