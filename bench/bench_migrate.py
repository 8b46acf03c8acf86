"""Benchmark: migrate of one experiment, SQLite -> SQLite, against the sqlite3 shell running one plain script.

    python3 bench/bench_migrate.py                       # 10M-row database, experiment 1, 5 runs each
    python3 bench/bench_migrate.py --scale 1 --runs 3
    python3 bench/bench_migrate.py --mysql mysql://root@127.0.0.1:3306/test

Reference (no emfix code, #28): the `sqlite3` shell running one script on SRC (`shell_script`): ATTACH of
a new DST, BEGIN, CREATE TABLE/INDEX from SRC's own schema, INSERT ... SELECT of every table of the
subtree (found through a temporary table of run ids, METRIC and ARTIFACT through the links copied:
PLAIN_COPY), COMMIT. emfix: `migrate SRC DST -e 1 --init --strategy aggressive` (count verify) into a
new file. The two run in turn, each a fresh process (wall time, CPU time and its own peak RSS from
wait4); medians, the median of the pairwise ratios and the ratio of the CPU medians are printed.
Then, one run each as before: `export --format jsonl`, `migrate --strategy balanced` (snapshot of DST
+ checksums), a 10x smaller experiment, OFFSET against keyset pages of BATCH_METRIC, and (--mysql)
SQLite -> MariaDB rows/s.
"""

import os
import shutil
import sqlite3
import statistics
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


def run(argv, cpu=False):
    """(wall seconds, peak RSS MB) of one fresh process; with cpu=True also its CPU seconds (user + system,
    every thread), which the machine's load moves less than wall time."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, env=dict(os.environ, PYTHONPATH=ROOT))
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        raise SystemExit("%s failed" % " ".join(argv))
    seconds = time.perf_counter() - started
    if cpu:
        return seconds, usage.ru_maxrss / 1024.0, usage.ru_utime + usage.ru_stime
    return seconds, usage.ru_maxrss / 1024.0


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


def shell_script(source, target, experiment):
    """The plain script for the sqlite3 shell: SRC's schema created in DST, the subtree copied, one commit."""
    con = sqlite3.connect("file:%s?mode=ro" % source, uri=True)
    ddl = []
    for kind, sql in con.execute("SELECT type, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE "
                                 "'sqlite%' AND type IN ('table', 'index') ORDER BY type = 'index'"):
        word = "CREATE TABLE " if kind == "table" else ("CREATE UNIQUE INDEX " if sql.upper().startswith(
            "CREATE UNIQUE") else "CREATE INDEX ")
        ddl.append(word + "dst." + sql[len(word):].lstrip() + ";")
    con.close()
    return "ATTACH DATABASE '%s' AS dst;\nBEGIN;\n%s\n%s;\nCOMMIT;\n" % (
        target.replace("'", "''"), "\n".join(ddl), PLAIN_COPY.strip().rstrip(";").replace(":e", str(int(experiment))))


def side_by_side(source, experiment, runs, work):
    """{"ref": [...], "ours": [...], "rss": [...], "ratios": [...], "ref_cpu": [...], "ours_cpu": [...]}: the
    sqlite3 shell with the plain script and emfix migrate --strategy aggressive, in turn, each into a new file
    (wall and CPU seconds per run, emfix's peak RSS, the pairwise wall ratios)."""
    shell = shutil.which("sqlite3")
    script = os.path.join(work, "plain.sql")
    with open(script, "w") as out:
        out.write(shell_script(source, os.path.join(work, "plain.db"), experiment))
    ours_db = os.path.join(work, "ours.db")
    found = {name: [] for name in ("ref", "ours", "rss", "ratios", "ref_cpu", "ours_cpu")}
    for n in range(runs + 1):  # the first pair warms the page cache and is not counted
        for name in ("plain.db", "ours.db"):
            if os.path.exists(os.path.join(work, name)):
                os.remove(os.path.join(work, name))
        if shell:
            with open(script) as stdin:
                seconds, cpu = timed_stdin([shell, source], stdin)
        else:  # no sqlite3 shell: the same statements through Python's sqlite3 (a slightly faster reference)
            seconds, cpu = same_engine(source, os.path.join(work, "plain.db"), experiment)[0], float("nan")
        mine, peak, mine_cpu = run([sys.executable, "-m", "emfix", "migrate", source, ours_db, "-e", str(experiment),
                                    "--init", "--strategy", "aggressive", "-q"], cpu=True)
        if n:
            for name, value in (("ref", seconds), ("ours", mine), ("rss", peak), ("ratios", mine / seconds),
                                ("ref_cpu", cpu), ("ours_cpu", mine_cpu)):
                found[name].append(value)
    return found


def timed_stdin(argv, stdin):
    """(wall seconds, CPU seconds) of one run of argv reading stdin."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        raise SystemExit("%s failed" % " ".join(argv))
    return time.perf_counter() - started, usage.ru_utime + usage.ru_stime


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
    parser.add_argument("--runs", type=int, default=5, help="runs of each side, side by side (default 5)")
    parser.add_argument("--side-by-side-only", action="store_true", help="only the table against the sqlite3 shell")
    args = parser.parse_args(argv)
    tag = scale_tag(args.scale)
    big = ensure_demo(os.path.join(args.data, tag), args.scale, clean=False)
    work = tempfile.mkdtemp(prefix="emfix-bench-", dir=args.data)
    emfix = [sys.executable, "-m", "emfix"]
    try:
        if not args.only_mysql:
            found = side_by_side(big, args.experiment, args.runs, work)
            median = {name: statistics.median(values) for name, values in found.items()}
            print("| %g M rows, experiment %d, %d runs each | sqlite3 shell, one plain script | emfix migrate "
                  "--init --strategy aggressive | ratio (median of pairs) | CPU: shell, emfix, ratio | emfix peak "
                  "RSS |" % (args.scale, args.experiment, args.runs))
            print("|---|---|---|---|---|---|")
            print("| medians | %.2f s | %.2f s | **%.2f** | %.2f s, %.2f s, %.2f | %.0f MB |" % (
                median["ref"], median["ours"], median["ratios"], median["ref_cpu"], median["ours_cpu"],
                median["ours_cpu"] / median["ref_cpu"], median["rss"]))
            print("| each pair | %s | %s | %s | %s | |" % tuple(" ".join("%.2f" % t for t in found[name]) for name in (
                "ref", "ours", "ratios", "ours_cpu")), flush=True)
        if args.side_by_side_only:
            return
        small = ensure_demo(os.path.join(args.data, "0_1m"), 0.1, clean=False)
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
