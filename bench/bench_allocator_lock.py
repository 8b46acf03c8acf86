"""Why validate's helper is a process on SQLite (#28): the same two halves of the metric-JSON test, run one
after the other, as two threads of one process, and as two processes.

    python3 bench/bench_allocator_lock.py [--data DIR] [--scale 10]

SQLite counts every memory allocation under one lock for the whole process (its memory statistics, which
Python's build leaves on); json_valid allocates for every value, so two threads testing JSON wait on each other.
Prints each half's wall and CPU seconds per way of running them.
"""

import os
import sqlite3
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_validate import bench_parser, ensure_demo, scale_tag  # noqa: E402

from emfix.address import parse_address  # noqa: E402
from emfix.backends import open_database  # noqa: E402
from emfix.jsoncheck import scan_metric_json  # noqa: E402


def _half(path, bounds, label, mode):
    """validate's JSON test of the METRIC ids in `bounds`, on a read-only connection of its own."""
    with open_database(parse_address(path), readonly=True) as db:
        db.execute("PRAGMA cache_size = -4000")
        began, cpu = time.perf_counter(), time.thread_time()
        found = scan_metric_json(db, {"METRIC": db.columns("METRIC")}, 100, bounds)
        print("%-9s %-6s wall %.2f s  cpu %.2f s  (%d issues)" % (
            mode, label, time.perf_counter() - began, time.thread_time() - cpu, found.issue_count), flush=True)


def main(argv=None):
    args = bench_parser(__doc__).parse_args(argv)
    path = ensure_demo(os.path.join(args.data, scale_tag(args.scale)), args.scale, clean=False)
    con = sqlite3.connect(path)
    low, high = con.execute('SELECT min(id), max(id) + 1 FROM "METRIC"').fetchone()
    con.close()
    middle = (low + high) // 2
    halves = [((low, middle), "first"), ((middle, high), "second")]
    for bounds, label in halves:
        _half(path, bounds, label, "alone")
    threads = [threading.Thread(target=_half, args=(path, b, label, "threads")) for b, label in halves]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    children = []
    for bounds, label in halves:
        pid = os.fork()
        if pid == 0:
            try:
                _half(path, bounds, label, "processes")
            finally:
                os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
