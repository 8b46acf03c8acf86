"""Benchmark: fix-json's repair speed against json_repair, and its scan against SQLite's own check.

    pip install -r bench/requirements.txt           # json_repair, for the comparison only
    python3 bench/bench_fixjson.py                  # 10M-row demo database, 5 alternating runs

1. Repair throughput on Python-repr metric dicts of 10 labels (what legacy writers stored).
2. `emfix fix-json DB --dry-run` end to end against
   `sqlite3 DB "SELECT count(*) FROM METRIC WHERE NOT json_valid(per_label_val)"`.
"""

import os
import random
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

from bench_validate import bench_parser, ensure_demo, scale_tag  # noqa: E402

from emfix.jsonrepair import repair  # noqa: E402


def corpus(n, seed=1):
    rng = random.Random(seed)
    labels = ["label_%d" % i for i in range(10)]
    return [repr({label: rng.random() for label in labels}) for _ in range(n)]


def throughput(func, values, rounds=3):
    best = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        for value in values:
            func(value)
        best = max(best, len(values) / (time.perf_counter() - started))
    return best


def timed(argv):
    started = time.perf_counter()
    subprocess.run(argv, check=False, stdout=subprocess.DEVNULL, env=dict(os.environ, PYTHONPATH=ROOT))
    return time.perf_counter() - started


def main(argv=None):
    parser = bench_parser(__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--values", type=int, default=20000)
    args = parser.parse_args(argv)
    values = corpus(args.values)
    ours = throughput(repair, values)
    assert all(repair(v).fixed for v in values[:100])
    try:
        import json_repair
        theirs = throughput(json_repair.loads, values[:2000], rounds=1)
        theirs_text = "%.0f values/s" % theirs
        ratio = "%.1f" % (ours / theirs)
    except ImportError:
        theirs_text, ratio = "not installed (pip install -r bench/requirements.txt)", "-"
    print("| repair, Python-repr dicts of 10 labels | emfix %.0f values/s | json_repair %s | %s x |" % (
        ours, theirs_text, ratio))
    tag = scale_tag(args.scale)
    db = ensure_demo(os.path.join(args.data, tag), args.scale, clean=False)
    reference = ["sqlite3", db, "SELECT count(*) FROM METRIC WHERE NOT json_valid(per_label_val)"]
    command = [sys.executable, "-m", "emfix", "fix-json", db, "--dry-run", "-q"]
    timed(command)  # warm the page cache
    ref, mine = [], []
    for _ in range(args.runs):
        ref.append(timed(reference))
        mine.append(timed(command))
    print("| scan %s M rows | sqlite3 count(NOT json_valid) %.2f s | emfix fix-json --dry-run %.2f s | %.2f x |" % (
        "%g" % args.scale, statistics.median(ref), statistics.median(mine),
        statistics.median(mine) / statistics.median(ref)))


if __name__ == "__main__":
    main()
