"""Sample Experiment Manager data with the damage found in the field, at any size.

The same generator writes the demo database (`emfix demo`), the benchmark databases
(`--scale 10` is about 10 million rows) and the test databases, on SQLite or MySQL.
Everything is deterministic: the same shape and seed give the same rows.
"""

import dataclasses
import datetime
import json
import math
import os
import random
import sqlite3

from .address import DatabaseAddress
from .backends import open_database
from .errors import UsageError
from .fileutil import durable_file, read_only_uri
from .schema import create_schema

ROWS_PER_FULL_RUN = 3307  # rows one run of 100 epochs x 10 batches writes (see Shape.full)
LABELS = ("cat", "dog", "bird", "fish", "horse")
METRIC_TYPES = ("accuracy", "loss", "f1_score", "precision", "recall")
BASE_TIME = datetime.datetime(2025, 5, 1, 9, 0, 0)

# Malformed per_label_val values, as legacy writers and imports left them (one per category).
MALFORMED_JSON = (
    ("python_repr", "{'cat': 0.91, 'dog': 0.87}"),
    ("python_literals", "{'cat': 0.5, 'valid': True, 'note': None}"),
    ("trailing_comma", '{"cat": 0.91, "dog": 0.87,}'),
    ("nan", '{"cat": NaN, "dog": 0.87}'),
    ("infinity", '{"cat": Infinity, "dog": -Infinity}'),
    ("unescaped_backslash", '{"C:\\data\\cat": 0.5}'),
    ("truncated", '{"cat": 0.91, "do'),
    ("double_encoded", json.dumps(json.dumps({"cat": 0.91, "dog": 0.87}))),
    ("not_utf8", b'{"cat": 0.9\xff\xfe}'),
    ("empty", ""),
    ("numpy_repr", "{'cat': np.float32(0.91), 'dog': np.float64(0.5)}"),
    ("not_an_object", "[0.91, 0.87]"),
)


@dataclasses.dataclass(frozen=True)
class Shape:
    experiments: int = 3
    trials: int = 2  # per experiment
    runs: int = 3  # per trial
    epochs: int = 4  # per run
    batches: int = 3  # per epoch
    generation: int = 2  # 1: no BATCH tables

    @classmethod
    def full(cls, millions, generation=2):
        """About `millions` million rows in runs of 100 epochs x 10 batches."""
        if millions <= 0:
            raise UsageError("--scale must be a positive number of millions of rows")
        runs = max(4, int(round(millions * 1e6 / ROWS_PER_FULL_RUN)))
        experiments = max(2, int(math.ceil(runs / 136.0)))
        runs_per_trial = max(2, int(math.ceil(runs / (experiments * 4.0))))  # the damage needs two runs a trial
        return cls(experiments, 4, runs_per_trial, 100, 10, generation)


@dataclasses.dataclass
class DemoResult:
    path: str
    shape: Shape
    rows: dict  # table -> rows written before damage
    faults: list  # (name, what was done)

    @property
    def total_rows(self):
        return sum(self.rows.values())


class _Writer:
    """Buffers rows per table and flushes them in executemany batches."""

    def __init__(self, backend, batch=5000):
        self.backend = backend
        self.batch = batch
        self.buffers = {}
        self.sql = {}
        self.counts = {}

    def add(self, table, columns, row):
        buf = self.buffers.get(table)
        if buf is None:
            q = self.backend.quote
            self.sql[table] = "INSERT INTO %s (%s) VALUES (%s)" % (
                q(table), ", ".join(q(c) for c in columns), ", ".join("?" * len(columns)))
            buf = self.buffers[table] = []
        buf.append(row)
        if len(buf) >= self.batch:
            self.flush(table)

    def flush(self, table=None):
        for name in [table] if table else list(self.buffers):
            buf = self.buffers[name]
            if buf:
                self.backend.executemany(self.sql[name], buf, batch_size=self.batch)
                self.counts[name] = self.counts.get(name, 0) + len(buf)
                buf.clear()


def _ts(seconds):
    return (BASE_TIME + datetime.timedelta(seconds=seconds)).isoformat(timespec="microseconds")


def _per_label(rng):
    if rng.random() < 0.02:
        return None  # the old tool stored an empty dict as NULL
    return json.dumps({label: round(rng.random(), 4) for label in LABELS[:rng.randint(2, 5)]})


def populate(backend, shape=Shape(), seed=0):
    """Write a clean Experiment Manager dataset of the given shape; return rows per table."""
    rng = random.Random(seed)
    w = _Writer(backend)
    ids = {"trial": 0, "run": 0, "metric": 0, "artifact": 0}
    clock = [0]

    def tick(seconds=1):
        clock[0] += seconds
        return _ts(clock[0])

    def metric():
        ids["metric"] += 1
        w.add("METRIC", ("id", "type", "total_val", "per_label_val"),
              (ids["metric"], rng.choice(METRIC_TYPES), round(rng.random(), 6), _per_label(rng)))
        return ids["metric"]

    def artifact(kind, loc):
        ids["artifact"] += 1
        w.add("ARTIFACT", ("id", "type", "loc"), (ids["artifact"], kind, loc))
        return ids["artifact"]

    with backend.transaction():
        for e in range(1, shape.experiments + 1):
            w.add("EXPERIMENT", ("id", "title", "desc", "start_time", "update_time"),
                  (e, "experiment %d" % e, "sweep %d: lr x batch size" % e, tick(), tick()))
            w.add("EXPERIMENT_ARTIFACT", ("experiment_id", "artifact_id"),
                  (e, artifact("config", "configs/exp%d.yaml" % e)))
            for _t in range(shape.trials):
                ids["trial"] += 1
                trial = ids["trial"]
                w.add("TRIAL", ("id", "name", "experiment_id", "start_time", "update_time"),
                      (trial, "trial %d" % trial, e, tick(), tick()))
                w.add("TRIAL_ARTIFACT", ("trial_id", "artifact_id"), (trial, artifact("log", "logs/t%d.txt" % trial)))
                for _r in range(shape.runs):
                    ids["run"] += 1
                    run = ids["run"]
                    w.add("TRIAL_RUN", ("id", "trial_id", "status", "start_time", "update_time"),
                          (run, trial, "completed", tick(), tick()))
                    w.add("TRIAL_RUN_ARTIFACT", ("trial_run_id", "artifact_id"),
                          (run, artifact("model", "models/run%d.pt" % run)))
                    for idx in range(shape.epochs):
                        w.add("EPOCH", ("idx", "trial_run_id", "time"), (idx, run, tick(60)))
                        w.add("EPOCH_METRIC", ("epoch_idx", "epoch_trial_run_id", "metric_id"), (idx, run, metric()))
                        if idx % 10 == 9 or idx == shape.epochs - 1:
                            w.add("EPOCH_ARTIFACT", ("epoch_idx", "epoch_trial_run_id", "artifact_id"),
                                  (idx, run, artifact("checkpoint", "ckpt/run%d/e%d.pt" % (run, idx))))
                        if shape.generation < 2:
                            continue
                        for b in range(shape.batches):
                            w.add("BATCH", ("idx", "epoch_idx", "trial_run_id", "time"), (b, idx, run, tick()))
                            w.add("BATCH_METRIC", ("batch_idx", "epoch_idx", "trial_run_id", "metric_id"),
                                  (b, idx, run, metric()))
                        if idx == 0:
                            w.add("BATCH_ARTIFACT", ("batch_idx", "epoch_idx", "trial_run_id", "artifact_id"),
                                  (0, 0, run, artifact("sample", "samples/run%d.png" % run)))
                    w.add("RESULTS", ("trial_run_id", "time"), (run, tick()))
                    for _m in range(2):
                        w.add("RESULTS_METRIC", ("results_id", "metric_id"), (run, metric()))
                    w.add("RESULTS_ARTIFACT", ("results_id", "artifact_id"),
                          (run, artifact("report", "reports/run%d.html" % run)))
        w.flush()
    return dict(w.counts)


def inject_faults(backend, shape):
    """Damage a clean dataset the ways the field does; return (name, description) pairs.

    Experiment 1 keeps its foreign keys intact (it carries the malformed JSON); the damage to
    the hierarchy is all in the last experiment plus one stray trial.
    """
    if shape.experiments < 2 or shape.trials < 2 or shape.runs < 2 or shape.epochs < 2:
        raise UsageError("fault injection needs at least 2 experiments, trials, runs and epochs")
    q = backend.quote
    faults = []
    first_trial = (shape.experiments - 1) * shape.trials + 1
    last_trial = shape.experiments * shape.trials
    run_a = (first_trial - 1) * shape.runs + 1
    run_b = run_a + 1

    quoted = {name: q(name) for name in _NAMES}

    def run(sql, params=()):
        return backend.execute(sql.format(**quoted), params)

    with backend.transaction():
        run("DELETE FROM {TRIAL} WHERE {id} = ?", (last_trial,))
        faults.append(("deleted_trial", "TRIAL %d deleted; its runs, epochs, batches and links stay behind"
                       % last_trial))
        run("DELETE FROM {TRIAL_RUN} WHERE {id} = ?", (run_a,))
        faults.append(("deleted_run", "TRIAL_RUN %d deleted; its results, epochs and batches stay behind" % run_a))
        run("DELETE FROM {EPOCH} WHERE {trial_run_id} = ? AND {idx} = 0", (run_b,))
        faults.append(("deleted_epoch", "EPOCH (0, %d) deleted; its batches and links stay behind" % run_b))
        run("DELETE FROM {RESULTS} WHERE {trial_run_id} = ?", (run_b,))
        faults.append(("parentless_results_links",
                       "RESULTS %d missing while its run exists (old API); its RESULTS_METRIC rows are real data"
                       % run_b))
        metric_id = backend.scalar("SELECT max(%s) FROM %s" % (q("id"), q("METRIC"))) + 1
        run("INSERT INTO {METRIC} ({id}, {type}, {total_val}, {per_label_val}) VALUES (?, 'loss', 0.25, NULL)",
            (metric_id,))
        run("INSERT INTO {EPOCH_METRIC} ({epoch_idx}, {epoch_trial_run_id}, {metric_id}) VALUES (?, ?, ?)",
            (shape.epochs + 5, run_b, metric_id))
        faults.append(("parentless_epoch_link", "EPOCH_METRIC links metric %d to epoch %d of run %d, never created"
                       % (metric_id, shape.epochs + 5, run_b)))
        victim = backend.scalar("SELECT min(%s) FROM %s WHERE %s = ? AND %s = 1" % (
            q("metric_id"), q("EPOCH_METRIC"), q("epoch_trial_run_id"), q("epoch_idx")), (run_b,))
        run("DELETE FROM {METRIC} WHERE {id} = ?", (victim,))
        faults.append(("deleted_metric", "METRIC %d deleted while EPOCH_METRIC still links it" % victim))
        art = backend.scalar("SELECT %s FROM %s WHERE %s = ?" % (
            q("artifact_id"), q("TRIAL_RUN_ARTIFACT"), q("trial_run_id")), (run_b,))
        run("DELETE FROM {ARTIFACT} WHERE {id} = ?", (art,))
        faults.append(("deleted_artifact", "ARTIFACT %d deleted while TRIAL_RUN_ARTIFACT still links it" % art))
        trial_id = last_trial + 1000
        run_id = backend.scalar("SELECT max(%s) FROM %s" % (q("id"), q("TRIAL_RUN"))) + 1000
        stamp = BASE_TIME.isoformat(" ")
        run("INSERT INTO {TRIAL} ({id}, {name}, {experiment_id}, {start_time}, {update_time}) "
            "VALUES (?, 'stray trial', 999999, ?, ?)", (trial_id, stamp, stamp))
        run("INSERT INTO {TRIAL_RUN} ({id}, {trial_id}, {status}, {start_time}, {update_time}) "
            "VALUES (?, ?, 'failed', ?, ?)", (run_id, trial_id, stamp, stamp))
        run("INSERT INTO {EPOCH} ({idx}, {trial_run_id}, {time}) VALUES (0, ?, ?)", (run_id, stamp))
        faults.append(("missing_experiment", "TRIAL %d points at EXPERIMENT 999999, which never existed" % trial_id))
        if backend.dialect == "sqlite":  # MySQL makes every primary-key column NOT NULL
            link = backend.scalar("SELECT min(%s) FROM %s" % (q("id"), q("ARTIFACT")))
            run("INSERT INTO {TRIAL_RUN_ARTIFACT} ({trial_run_id}, {artifact_id}) VALUES (NULL, ?)", (link,))
            faults.append(("null_parent", "a TRIAL_RUN_ARTIFACT row links artifact %d to trial_run_id NULL "
                           "(a warning, not a violation)" % link))
        for k in range(3):
            run("INSERT INTO {METRIC} ({id}, {type}, {total_val}, {per_label_val}) VALUES (?, 'accuracy', 0.5, NULL)",
                (metric_id + 1 + k,))
        art_id = backend.scalar("SELECT max(%s) FROM %s" % (q("id"), q("ARTIFACT"))) + 1
        run("INSERT INTO {ARTIFACT} ({id}, {type}, {loc}) VALUES (?, 'log', 'logs/lost.txt')", (art_id,))
        faults.append(("unreferenced", "3 METRIC rows and 1 ARTIFACT row that nothing references"))
        first_exp_metrics = [r[0] for r in backend.query(
            "SELECT m.%s FROM %s m JOIN %s em ON em.%s = m.%s WHERE em.%s <= ? ORDER BY m.%s" % (
                q("id"), q("METRIC"), q("EPOCH_METRIC"), q("metric_id"), q("id"), q("epoch_trial_run_id"), q("id")),
            (shape.trials * shape.runs,))]
        step = max(1, len(first_exp_metrics) // (len(MALFORMED_JSON) + 1))
        for n, (category, value) in enumerate(MALFORMED_JSON):
            if isinstance(value, bytes) and backend.dialect == "mysql":
                continue  # a utf8mb4 column cannot hold these bytes
            target = first_exp_metrics[(n * step) % len(first_exp_metrics)]
            run("UPDATE {METRIC} SET {per_label_val} = ? WHERE {id} = ?", (value, target))
            faults.append(("json_" + category, "METRIC %d per_label_val = %r" % (target, value)))
    return faults


_NAMES = ("TRIAL", "TRIAL_RUN", "EPOCH", "RESULTS", "METRIC", "EPOCH_METRIC", "ARTIFACT", "id", "trial_run_id",
          "idx", "type", "total_val", "per_label_val", "epoch_idx", "epoch_trial_run_id", "metric_id", "name",
          "experiment_id", "trial_id", "status", "loc", "start_time", "update_time", "time", "TRIAL_RUN_ARTIFACT",
          "artifact_id")


def build_demo(backend, shape=Shape(), seed=0, faults=True, json_type="text"):
    """Create the schema, fill it and damage it; works on SQLite and MySQL backends."""
    create_schema(backend, generation=shape.generation, json_type=json_type, applied_at=BASE_TIME)
    backend.foreign_key_checks(False)  # how orphans reach InnoDB in the field
    rows = populate(backend, shape, seed)
    injected = inject_faults(backend, shape) if faults else []
    backend.foreign_key_checks(True)
    return rows, injected


DEMO_APPLICATION_ID = 0x656D6678  # "emfx": how demo knows a file is its own to rewrite


def is_demo_database(path):
    try:
        con = sqlite3.connect(read_only_uri(path), uri=True)
        try:
            return con.execute("PRAGMA application_id").fetchone()[0] == DEMO_APPLICATION_ID
        finally:
            con.close()
    except sqlite3.Error:
        return False


def write_demo(path, shape=Shape(), seed=0, faults=True):
    """Write a demo SQLite database file at `path`: built under a temporary name, then renamed.

    A file demo wrote before is replaced; any other file never is."""
    if os.path.exists(path) and not is_demo_database(path):
        raise UsageError("%s already exists and is not a database `emfix demo` wrote: it is left alone" % path,
                         hint="choose another directory for the demo")
    with durable_file(path) as temp:
        backend = open_database(DatabaseAddress("sqlite", path=temp), create=True)
        try:
            conn = backend.connection
            conn.execute("PRAGMA journal_mode = OFF")  # a new file: nothing to protect while it is written
            conn.execute("PRAGMA synchronous = OFF")
            conn.execute("PRAGMA application_id = %d" % DEMO_APPLICATION_ID)
            rows, injected = build_demo(backend, shape, seed, faults)
            conn.execute("PRAGMA journal_mode = DELETE")
        finally:
            backend.close()
        for suffix in ("-wal", "-shm", "-journal"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
    return DemoResult(path, shape, rows, injected)
