"""Benchmark: emfix cleanup-orphans against a pure-SQL fixpoint of DELETE ... WHERE NOT EXISTS.

    python3 bench/bench_cleanup.py              # the 10M-row demo database, 3 alternating runs

Each run works on fresh copies of the database. While each side runs, a second process inserts a
row every 10 ms and records how long it waited for the write lock. The fixpoint deletes, relation
by relation in parent-first order, every row whose parent is missing, and repeats until a pass
deletes nothing; it keeps nothing and takes no snapshot (emfix is run with --no-snapshot).
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

WRITER = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
worst, writes = 0.0, 0
stop = sys.argv[2]
import os
print("ready", flush=True)
while not os.path.exists(stop):
    started = time.perf_counter()
    # The application's NOT NULL columns filled, as the application does.
    con.execute("INSERT INTO EXPERIMENT (title, start_time, update_time) VALUES "
                "('bench writer', datetime('now'), datetime('now'))")
    worst = max(worst, time.perf_counter() - started)
    writes += 1
    time.sleep(0.01)
print(worst, writes)
"""


def delete_to_fixpoint(graph, run, quote, delete):
    """The reference's deletes: every row whose parent is missing, relation by relation parents first, again
    until a pass deletes nothing. `run(sql)` gives the rows a statement deleted; `delete` is the dialect's
    `DELETE ... c` head, with `{child}` for the child table (the MariaDB bench shares this)."""
    order = {t: i for i, t in enumerate(graph.parent_first())}
    relations = sorted(graph.relations, key=lambda r: order[r.child])
    while True:
        changed = 0
        for r in relations:
            nonnull = " AND ".join("c.%s IS NOT NULL" % quote(c) for c in r.child_columns)
            match = " AND ".join("p.%s = c.%s" % (quote(p), quote(c))
                                 for c, p in zip(r.child_columns, r.parent_columns))
            changed += run("%s WHERE %s AND NOT EXISTS (SELECT 1 FROM %s p WHERE %s)" % (
                delete.format(child=quote(r.child)), nonnull, quote(r.parent), match))
        if not changed:
            return


def fixpoint(path):
    from emfix.address import DatabaseAddress
    from emfix.backends import open_database
    from emfix.schema import discover_graph
    with open_database(DatabaseAddress("sqlite", path=path)) as db:
        graph = discover_graph(db)
    con = sqlite3.connect(path, isolation_level=None)
    delete_to_fixpoint(graph, lambda sql: con.execute(sql).rowcount, lambda name: '"%s"' % name,
                       "DELETE FROM {child} AS c")
    con.close()


def with_writer(path, action):
    stop = path + ".stop"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, path, stop], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    if writer.stdout.readline().strip() != "ready":
        raise SystemExit("bench: the writer did not start: %s" % writer.communicate()[1][-500:])
    started = time.perf_counter()
    action()
    elapsed = time.perf_counter() - started
    open(stop, "w").close()
    out, err = writer.communicate()
    os.remove(stop)
    # A writer that died measured nothing: the figure would be void, so the bench fails loudly.
    if writer.returncode != 0 or not out.strip():
        raise SystemExit("bench: the writer failed (exit %s): %s" % (writer.returncode, err.strip()[-500:]))
    worst, writes = out.split()
    if int(writes) == 0:
        raise SystemExit("bench: the writer wrote nothing while the cleanup ran: nothing was measured")
    return elapsed, float(worst)


def main(argv=None):
    parser = bench_parser(__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    tag = scale_tag(args.scale)
    source = ensure_demo(os.path.join(args.data, tag), args.scale, clean=False)
    work = tempfile.mkdtemp(prefix="emfix-bench-", dir=args.data)
    env = dict(os.environ, PYTHONPATH=ROOT)
    ref, ours, ref_wait, our_wait = [], [], [], []
    try:
        for n in range(args.runs):
            a, b = os.path.join(work, "ref.db"), os.path.join(work, "emfix.db")
            shutil.copyfile(source, a)
            shutil.copyfile(source, b)
            t, w = with_writer(a, lambda a=a: fixpoint(a))
            ref.append(t)
            ref_wait.append(w)
            command = [sys.executable, "-m", "emfix", "cleanup-orphans", b, "--yes", "--no-snapshot", "-q",
                       "--quarantine-dir", os.path.join(work, "q%d" % n)]
            t, w = with_writer(b, lambda command=command: subprocess.run(command, check=True, env=env))
            ours.append(t)
            our_wait.append(w)
            print("run %d: fixpoint %.2f s (writer waited up to %.0f ms), emfix %.2f s (writer waited up to %.0f ms)"
                  % (n + 1, ref[-1], ref_wait[-1] * 1000, ours[-1], our_wait[-1] * 1000), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print("| %s M rows, %d runs | pure-SQL fixpoint | emfix cleanup-orphans --no-snapshot | ratio |" % (
        "%g" % args.scale, args.runs))
    print("|---|---|---|---|")
    print("| time (median) | %.2f s | %.2f s | %.2f |" % (statistics.median(ref), statistics.median(ours),
                                                         statistics.median(ours) / statistics.median(ref)))
    print("| writer's longest wait for the lock (max over runs) | %.0f ms | %.0f ms | |" % (
        max(ref_wait) * 1000, max(our_wait) * 1000))


if __name__ == "__main__":
    main()
