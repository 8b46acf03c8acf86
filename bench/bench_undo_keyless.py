"""Benchmark: `emfix undo` into a table without a primary key, by the number of rows it puts back.

    python3 bench/bench_undo_keyless.py                  # 10,000, 40,000 and 200,000 rows, median of 3
    python3 bench/bench_undo_keyless.py --rows 40000 --runs 1

The demo database with EPOCH_METRIC rebuilt without a primary key and ROWS orphan rows added (one in seven
identical to another), removed by `cleanup-orphans --tables EPOCH_METRIC`, then put back by `undo`, whose whole
process is timed (a copy of the cleaned database each run). Undo's time should grow with the rows, not with their
square (each batch's copies are counted against the table in one join: emfix/undotwins.py).
"""

import argparse
import glob
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def emfix(*args):
    """One emfix command; 1 (problems left, as the demo's other orphans after a cleanup of one table) is no failure."""
    done = subprocess.run([sys.executable, "-m", "emfix"] + list(args), cwd=ROOT, stdout=subprocess.DEVNULL)
    if done.returncode not in (0, 1):
        raise SystemExit("emfix %s: exit %d" % (" ".join(args), done.returncode))


def keyless_demo(folder, rows):
    """A cleaned database and the quarantine of the `rows` orphans its cleanup removed."""
    emfix("demo", folder, "--force", "-q")
    path = os.path.join(folder, "experiment.db")
    con = sqlite3.connect(path, isolation_level=None)
    con.executescript("""
        CREATE TABLE em_copy AS SELECT * FROM EPOCH_METRIC;
        DROP TABLE EPOCH_METRIC;
        CREATE TABLE EPOCH_METRIC (epoch_idx INTEGER, epoch_trial_run_id INTEGER, metric_id INTEGER, note TEXT,
            FOREIGN KEY (epoch_idx, epoch_trial_run_id) REFERENCES EPOCH (idx, trial_run_id),
            FOREIGN KEY (metric_id) REFERENCES METRIC (id));
        INSERT INTO EPOCH_METRIC SELECT *, NULL FROM em_copy;
        DROP TABLE em_copy;
    """)
    con.execute("WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < ?) INSERT INTO EPOCH_METRIC "
                "SELECT 5000 + i / 7, 999, i % 50 + 1, CASE WHEN i % 3 = 0 THEN NULL ELSE 'n' || (i % 11) END FROM s",
                (rows - 1,))
    con.close()
    emfix("cleanup-orphans", path, "--yes", "--no-snapshot", "--tables", "EPOCH_METRIC", "--quarantine-dir",
          os.path.join(folder, "q"), "-q")
    return path, glob.glob(os.path.join(folder, "q", "*.quarantine.db"))[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append", help="orphan rows (repeatable)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print("| rows put back | undo (median of %d) | per 10,000 rows |" % args.runs)
    print("|---|---|---|")
    for rows in args.rows or [10000, 40000, 200000]:
        folder = tempfile.mkdtemp(prefix="emfix-bench-undo-")
        try:
            path, quarantine = keyless_demo(folder, rows)
            for name in (path, quarantine):
                shutil.copyfile(name, name + ".clean")
            times = []
            for _ in range(args.runs):
                for name in (path, quarantine):
                    shutil.copyfile(name + ".clean", name)
                started = time.perf_counter()
                emfix("undo", quarantine, "--yes", "-q")
                times.append(time.perf_counter() - started)
            seconds = statistics.median(times)
            print("| {:,} | {:.2f} s | {:.2f} s |".format(rows, seconds, seconds / rows * 10000), flush=True)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
