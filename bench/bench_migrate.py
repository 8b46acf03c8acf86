"""Benchmark: export and migrate of one experiment against SQLite's same-engine limit.

    python3 bench/bench_migrate.py                       # 10M-row database, experiment 1
    python3 bench/bench_migrate.py --mysql mysql://root@127.0.0.1:3306/test

Reference (no emfix code): ATTACH + `INSERT INTO dst.T SELECT ... FROM main.T WHERE <in the subtree>`
for every table of the subtree, the subtree found through a temporary table of run ids (PLAIN_COPY).
emfix: `export --format jsonl` and `migrate --strategy
aggressive` (count verify) and `--strategy balanced` (snapshot of DST + checksums), each a fresh
process with its peak RSS (wait4). Also: a 10x smaller experiment, OFFSET against keyset pages of
100,000 rows at the start and the end of BATCH_METRIC, and SQLite -> MariaDB rows/s with plain
executemany batches beside it.
"""

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

from bench_validate import bench_parser, ensure_demo, scale_tag  # noqa: E402

from emfix.address import DatabaseAddress, parse_address  # noqa: E402
from emfix.backends import open_database  # noqa: E402
from emfix.hierarchy import reach_subtree  # noqa: E402
from emfix.schema import create_schema, discover_graph  # noqa: E402


def run(argv):
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, env=dict(os.environ, PYTHONPATH=ROOT))
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        raise SystemExit("%s failed" % " ".join(argv))
    return time.perf_counter() - started, usage.ru_maxrss / 1024.0


# The reference a user writes without emfix: the subtree through a temporary table of run ids, every
# table (METRIC and ARTIFACT through the links copied) by ATTACH + INSERT ... SELECT, one transaction.
PLAIN_COPY = """
CREATE TEMP TABLE runs AS SELECT r.id FROM TRIAL_RUN r JOIN TRIAL t ON t.id = r.trial_id WHERE t.experiment_id = :e;
CREATE INDEX temp.runs_id ON runs (id);
INSERT INTO dst.EXPERIMENT SELECT * FROM main.EXPERIMENT WHERE id = :e;
INSERT INTO dst.TRIAL SELECT * FROM main.TRIAL WHERE experiment_id = :e;
INSERT INTO dst.TRIAL_RUN SELECT * FROM main.TRIAL_RUN WHERE id IN (SELECT id FROM runs);
INSERT INTO dst.RESULTS SELECT * FROM main.RESULTS WHERE trial_run_id IN (SELECT id FROM runs);
INSERT INTO dst.EPOCH SELECT * FROM main.EPOCH WHERE trial_run_id IN (SELECT id FROM runs);
INSERT INTO dst.BATCH SELECT * FROM main.BATCH WHERE trial_run_id IN (SELECT id FROM runs);
INSERT INTO dst.EXPERIMENT_ARTIFACT SELECT * FROM main.EXPERIMENT_ARTIFACT WHERE experiment_id = :e;
INSERT INTO dst.TRIAL_ARTIFACT SELECT * FROM main.TRIAL_ARTIFACT WHERE trial_id IN (SELECT id FROM dst.TRIAL);
INSERT INTO dst.TRIAL_RUN_ARTIFACT SELECT * FROM main.TRIAL_RUN_ARTIFACT WHERE trial_run_id IN (SELECT id FROM runs);
INSERT INTO dst.RESULTS_METRIC SELECT * FROM main.RESULTS_METRIC WHERE results_id IN (SELECT id FROM runs);
INSERT INTO dst.RESULTS_ARTIFACT SELECT * FROM main.RESULTS_ARTIFACT WHERE results_id IN (SELECT id FROM runs);
INSERT INTO dst.EPOCH_METRIC SELECT * FROM main.EPOCH_METRIC WHERE epoch_trial_run_id IN (SELECT id FROM runs);
INSERT INTO dst.EPOCH_ARTIFACT SELECT * FROM main.EPOCH_ARTIFACT WHERE epoch_trial_run_id IN (SELECT id FROM runs);
INSERT INTO dst.BATCH_METRIC SELECT * FROM main.BATCH_METRIC WHERE trial_run_id IN (SELECT id FROM runs);
INSERT INTO dst.BATCH_ARTIFACT SELECT * FROM main.BATCH_ARTIFACT WHERE trial_run_id IN (SELECT id FROM runs);
INSERT INTO dst.METRIC SELECT * FROM main.METRIC WHERE id IN (SELECT metric_id FROM dst.RESULTS_METRIC UNION
  SELECT metric_id FROM dst.EPOCH_METRIC UNION SELECT metric_id FROM dst.BATCH_METRIC);
INSERT INTO dst.ARTIFACT SELECT * FROM main.ARTIFACT WHERE id IN (SELECT artifact_id FROM dst.EXPERIMENT_ARTIFACT
  UNION SELECT artifact_id FROM dst.TRIAL_ARTIFACT UNION SELECT artifact_id FROM dst.TRIAL_RUN_ARTIFACT UNION
  SELECT artifact_id FROM dst.RESULTS_ARTIFACT UNION SELECT artifact_id FROM dst.EPOCH_ARTIFACT UNION
  SELECT artifact_id FROM dst.BATCH_ARTIFACT);
"""


def same_engine(source, target, experiment):
    """The limit: plain SQL (sqlite3 module only), schema copied from the source's own sqlite_master."""
    started = time.perf_counter()
    con = sqlite3.connect(source, isolation_level=None)
    schema = [sql for (sql,) in con.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                                            "'sqlite%'")]
    con.execute("ATTACH DATABASE ? AS dst", (target,))
    for sql in schema:
        con.execute(sql.replace("CREATE TABLE ", "CREATE TABLE dst.", 1).replace(
            "CREATE TABLE dst.IF NOT EXISTS ", "CREATE TABLE IF NOT EXISTS dst.", 1))
    con.execute("BEGIN")
    rows = 0
    for statement in PLAIN_COPY.split(";"):
        if statement.strip():
            rows += max(con.execute(statement, {"e": experiment}).rowcount, 0)
    con.execute("COMMIT")
    con.close()
    return time.perf_counter() - started, rows


def paging(path):
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    key = "batch_idx, epoch_idx, trial_run_id, metric_id"
    total = con.execute("SELECT count(*) FROM BATCH_METRIC").fetchone()[0]
    out = {}
    for name, offset in (("start", 0), ("end", total - 100000)):
        started = time.perf_counter()
        rows = con.execute("SELECT * FROM BATCH_METRIC ORDER BY %s LIMIT 100000 OFFSET %d" % (key, offset)).fetchall()
        out["offset " + name] = time.perf_counter() - started
        first = con.execute("SELECT %s FROM BATCH_METRIC ORDER BY %s LIMIT 1 OFFSET %d" % (key, key, max(offset - 1, 0))
                            ).fetchone()
        started = time.perf_counter()
        rows = con.execute("SELECT * FROM BATCH_METRIC WHERE (%s) > (?, ?, ?, ?) ORDER BY %s LIMIT 100000" % (key, key),
                           first if offset else (-1, -1, -1, -1)).fetchall()
        out["keyset " + name] = time.perf_counter() - started
        assert len(rows) == 100000 or name == "end"
    return total, out


def main(argv=None):
    parser = bench_parser(__doc__)
    parser.add_argument("--experiment", type=int, default=1)
    parser.add_argument("--mysql", metavar="URL", help="also migrate into a fresh database on this server")
    parser.add_argument("--only-mysql", action="store_true", help="skip the SQLite figures")
    args = parser.parse_args(argv)
    tag = scale_tag(args.scale)
    big = ensure_demo(os.path.join(args.data, tag), args.scale, clean=False)
    small = ensure_demo(os.path.join(args.data, "0_1m"), 0.1, clean=False)
    work = tempfile.mkdtemp(prefix="emfix-bench-", dir=args.data)
    emfix = [sys.executable, "-m", "emfix"]
    try:
        for label, db in () if args.only_mysql else (("10x smaller experiment", small),
                                                      ("experiment %d" % args.experiment, big)):
            limit, rows = same_engine(db, os.path.join(work, "limit.db"), args.experiment)
            export_s, export_rss = run(emfix + ["export", db, "-e", str(args.experiment), "-o",
                                                os.path.join(work, "e.jsonl"), "-q"])
            fast_s, fast_rss = run(emfix + ["migrate", db, os.path.join(work, "m1.db"), "-e", str(args.experiment),
                                            "--init", "--strategy", "aggressive", "-q"])
            safe_s, safe_rss = run(emfix + ["migrate", db, os.path.join(work, "m2.db"), "-e", str(args.experiment),
                                            "--init", "--strategy", "balanced", "-q",
                                            "--snapshot-dir", os.path.join(work, "snaps")])
            print("| %s: %s rows | ATTACH+INSERT %.2f s (%.0f rows/s) | export jsonl %.2f s (%.2f of the limit's rate, "
                  "%.0f MB) | migrate aggressive %.2f s (%.2f, %.0f MB) | migrate balanced %.2f s (%.0f MB) |" % (
                      label, "{:,}".format(rows), limit, rows / limit, export_s, limit / export_s, export_rss,
                      fast_s, limit / fast_s, fast_rss, safe_s, safe_rss), flush=True)
            for name in os.listdir(work):
                path = os.path.join(work, name)
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        if not args.only_mysql:
            total, pages = paging(big)
            print("| paging BATCH_METRIC (%s rows), 100,000 rows | %s |" % ("{:,}".format(total), " | ".join(
                "%s %.3f s" % kv for kv in pages.items())))
        if args.mysql:  # MySQL refuses the sample's non-UTF-8 and non-JSON values: copy from a clean sample
            clean = ensure_demo(os.path.join(args.data, tag + "_clean"), args.scale, clean=True)
            bench_mysql(args.mysql, clean, args.experiment, emfix)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench_mysql(url, source, experiment, emfix):
    base = parse_address(url)
    targets = {}
    with open_database(base) as admin:
        for name in ("emfix_bench_migrate", "emfix_bench_plain"):
            admin.execute("DROP DATABASE IF EXISTS `%s`" % name)
            admin.execute("CREATE DATABASE `%s` CHARACTER SET utf8mb4" % name)
            targets[name] = url.rsplit("/", 1)[0] + "/" + name
            with open_database(parse_address(targets[name])) as db:
                create_schema(db)
    seconds, rss = run(emfix + ["migrate", source, targets["emfix_bench_migrate"], "-e", str(experiment),
                                "--strategy", "aggressive", "-q"])
    started = time.perf_counter()  # the same subtree, streamed into plain executemany batches
    rows = 0
    with open_database(DatabaseAddress("sqlite", path=source), readonly=True) as src, \
            open_database(parse_address(targets["emfix_bench_plain"])) as dst:
        dst.execute("SET SESSION FOREIGN_KEY_CHECKS = 0")
        graph = discover_graph(src)
        tree = reach_subtree(src, graph, experiment)
        for table in tree.tables(graph):
            where = tree.where(src, graph, table)
            cols = graph.columns[table]
            insert = "INSERT INTO `%s` (%s) VALUES (%s)" % (table, dst.quote_columns(cols), ", ".join("?" * len(cols)))
            batch = []
            for row in src.iter_rows('SELECT %s FROM "%s" t WHERE %s' % (src.quote_columns(cols, "t."), table, where)):
                batch.append(row)
                if len(batch) == 2000:
                    with dst.transaction():
                        dst.executemany(insert, batch, batch_size=2000)
                    rows += len(batch)
                    batch = []
            if batch:
                with dst.transaction():
                    dst.executemany(insert, batch, batch_size=2000)
                rows += len(batch)
    plain = time.perf_counter() - started
    print("| SQLite -> MariaDB, experiment %d: %s rows | emfix migrate --strategy aggressive %.1f s (%.0f rows/s, "
          "peak RSS %.0f MB) | plain executemany batches of the same rows %.1f s (%.0f rows/s) |" % (
              experiment, "{:,}".format(rows), seconds, rows / seconds, rss, plain, rows / plain))


if __name__ == "__main__":
    main()
