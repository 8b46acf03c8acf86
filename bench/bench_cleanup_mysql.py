"""Benchmark: emfix cleanup-orphans on MariaDB against a pure-SQL fixpoint of DELETE ... WHERE NOT EXISTS.

    python3 bench/bench_cleanup_mysql.py --mysql mysql://root@127.0.0.1:3306/test          # scale 0.05, 3 runs
    python3 bench/bench_cleanup_mysql.py --mysql URL --scale 0.5 --include-unreferenced

The demo (InnoDB foreign keys included, orphans made with the checks off, as they reach InnoDB in the field) is
built once into a database of its own and dumped beside the SQLite demos; every run loads a fresh copy for each
side. The fixpoint deletes, relation by relation in parent-first order, every row whose parent is missing, and
repeats until a pass deletes nothing (with --include-unreferenced, then the METRIC/ARTIFACT rows no link points
at); it keeps nothing and takes no snapshot (emfix runs with --no-snapshot, and keeps every row it removes in its
quarantine, looks again inside each batch whether a row is still an orphan, and keeps each batch's locks under
--max-lock-ms).
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

from bench_cleanup import delete_to_fixpoint  # noqa: E402
from bench_validate import bench_parser, scale_tag  # noqa: E402


def server_args(address):
    args = ["-h", address.host or "127.0.0.1", "-P", str(address.port or 3306), "-u", address.user or "root"]
    return args + (["-p" + address.password] if address.password else [])


def ensure_dump(address, scale, data):
    """The demo at `scale` as a mysqldump file (made once)."""
    from emfix.backends import open_database
    from emfix.demo import Shape, build_demo
    path = os.path.join(data, scale_tag(scale), "mysql_demo.sql")
    if os.path.exists(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    print("building the %g M demo on %s..." % (scale, address.display()), flush=True)
    name = "emfix_bcm_build"
    subprocess.run(["mysql", *server_args(address), "-e", "DROP DATABASE IF EXISTS %s; CREATE DATABASE %s" % (
        name, name)], check=True)
    with open_database(address.__class__(**dict(vars(address), database=name))) as db:
        build_demo(db, Shape.full(scale))
    with open(path + ".part", "w") as out:
        subprocess.run(["mysqldump", *server_args(address), name], stdout=out, check=True)
    os.replace(path + ".part", path)
    subprocess.run(["mysql", *server_args(address), "-e", "DROP DATABASE %s" % name], check=True)
    return path


def load(address, name, dump):
    subprocess.run(["mysql", *server_args(address), "-e", "DROP DATABASE IF EXISTS %s; CREATE DATABASE %s" % (
        name, name)], check=True)
    with open(dump) as source:
        subprocess.run(["mysql", *server_args(address), name], stdin=source, check=True)


def fixpoint(address, include_unreferenced):
    import mysql.connector

    from emfix.backends import open_database
    from emfix.schema import discover_graph
    with open_database(address) as db:
        graph = discover_graph(db)
    con = mysql.connector.connect(host=address.host, port=address.port, user=address.user,
                                  password=address.password or "", database=address.database, autocommit=True)
    cur = con.cursor()
    cur.execute("SET foreign_key_checks = 0")  # parents first: InnoDB would refuse a parent its orphans still name

    def run(sql):
        cur.execute(sql)
        return cur.rowcount
    delete_to_fixpoint(graph, run, lambda name: "`%s`" % name, "DELETE c FROM {child} c")
    if include_unreferenced:
        for table in ("METRIC", "ARTIFACT"):
            links = [r for r in graph.children_of(table) if len(r.child_columns) == 1]
            cur.execute("DELETE t FROM `%s` t WHERE %s" % (table, " AND ".join(
                "NOT EXISTS (SELECT 1 FROM `%s` x WHERE x.`%s` = t.`%s`)" % (
                    r.child, r.child_columns[0], r.parent_columns[0]) for r in links)))
    con.close()


def main(argv=None):
    parser = bench_parser(__doc__)
    parser.set_defaults(scale=0.05)
    parser.add_argument("--mysql", metavar="URL", required=True, help="a MariaDB server (any database on it)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--include-unreferenced", action="store_true")
    args = parser.parse_args(argv)
    from emfix.address import parse_address
    server = parse_address(args.mysql)
    dump = ensure_dump(server, args.scale, args.data)
    ref_db, our_db = "emfix_bcm_ref", "emfix_bcm_emfix"
    ref_address = server.__class__(**dict(vars(server), database=ref_db))
    url = "mysql://%s@%s:%d/%s" % (server.user, server.host, server.port or 3306, our_db)
    work = tempfile.mkdtemp(prefix="emfix-bench-", dir=args.data)
    env = dict(os.environ, PYTHONPATH=ROOT)
    extra = ["--include-unreferenced"] if args.include_unreferenced else []
    ref, ours = [], []
    try:
        for n in range(args.runs):
            load(server, ref_db, dump)
            started = time.perf_counter()
            fixpoint(ref_address, args.include_unreferenced)
            ref.append(time.perf_counter() - started)
            load(server, our_db, dump)
            command = [sys.executable, "-m", "emfix", "cleanup-orphans", url, "--yes", "--no-snapshot", "--json",
                       "--quarantine-dir", os.path.join(work, "q%d" % n), *extra]
            started = time.perf_counter()
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            ours.append(time.perf_counter() - started)
            if done.returncode not in (0, 1):
                raise SystemExit("bench: emfix failed (exit %d): %s" % (done.returncode, done.stderr[-500:]))
            print("run %d: fixpoint %.2f s, emfix %.2f s" % (n + 1, ref[-1], ours[-1]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        subprocess.run(["mysql", *server_args(server), "-e", "DROP DATABASE IF EXISTS %s; DROP DATABASE IF EXISTS "
                        "%s" % (ref_db, our_db)], check=False)
    print()
    print("| %g M rows on MariaDB, %d runs%s | pure-SQL fixpoint | emfix cleanup-orphans --no-snapshot | ratio |" % (
        args.scale, args.runs, ", --include-unreferenced" if extra else ""))
    print("|---|---|---|---|")
    print("| time (median) | %.2f s | %.2f s | %.2f |" % (statistics.median(ref), statistics.median(ours),
                                                         statistics.median(ours) / statistics.median(ref)))


if __name__ == "__main__":
    main()
