"""Benchmark: emfix on MariaDB side by side with the MySQL tools a user already has (#16).

    python3 bench/bench_mysql.py --mysql mysql://root@127.0.0.1:3306/test --scale 1 --runs 3
    python3 bench/bench_mysql.py --mysql mysql://root@127.0.0.1:3306/test --scale 10 --runs 3

Each pair runs alternately, each run a fresh process; medians reported, with emfix's own peak RSS
(wait4). The demo database at --scale is loaded once into MariaDB database `emfix_bench_<scale>`
and generated once as a clean SQLite file under bench/data/<scale>m_clean/.

- snapshot create: `mysqldump --single-transaction DB > dump.sql` against `emfix snapshot create`;
- snapshot restore: `mysql OTHER < dump.sql` (into a scratch database) against `emfix snapshot
  restore --no-safety-snapshot` of the snapshot just taken (into the database itself);
- migrate SQLite -> MariaDB of experiment 1 (`--strategy aggressive`, into a fresh database)
  against the mysql client loading a dump of the same rows (`mysqldump --no-create-info` of what
  emfix copied, loaded into a fresh database that has the schema);
- migrate SQLite -> SQLite of experiment 1 (`--strategy aggressive`) against plain SQL (ATTACH +
  INSERT ... SELECT of the subtree found through a temporary table of run ids: bench_migrate.py).
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

from bench_migrate import same_engine  # noqa: E402
from bench_validate import bench_parser, ensure_demo, scale_tag  # noqa: E402

from emfix.address import parse_address  # noqa: E402
from emfix.backends import open_database  # noqa: E402
from emfix.demo import Shape, build_demo  # noqa: E402
from emfix.schema import create_schema  # noqa: E402


def scratch(name):
    """A scratch database of this run: two runs of the script at once (on a shared server) never empty
    each other's."""
    return "%s_%d" % (name, os.getpid())


def emfix(*args):
    return [sys.executable, "-m", "emfix", *args]


def timed(argv, stdin=None, stdout=None):
    """(seconds, peak RSS in MB) of one child process."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=stdin, stdout=stdout or subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=dict(os.environ, PYTHONPATH=ROOT))
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    err = proc.stderr.read().decode()
    proc.stderr.close()
    if status:
        raise SystemExit("%s failed: %s" % (" ".join(argv), err))
    return elapsed, usage.ru_maxrss / 1024.0


class Server:
    def __init__(self, url):
        self.base = parse_address(url)
        self.url_prefix = url.rsplit("/", 1)[0] + "/"

    def client(self, tool, *args):
        a = self.base
        return [tool, "-h", a.host, "-P", str(a.port), "-u", a.user, *args]

    def fresh(self, name, schema=False):
        with open_database(self.base) as admin:
            admin.execute("DROP DATABASE IF EXISTS `%s`" % name)
            admin.execute("CREATE DATABASE `%s` CHARACTER SET utf8mb4" % name)
        if schema:
            with open_database(parse_address(self.url_prefix + name)) as db:
                create_schema(db)
        return self.url_prefix + name

    def drop(self, name):
        with open_database(self.base) as admin:
            admin.execute("DROP DATABASE IF EXISTS `%s`" % name)

    def loaded(self, scale, name=None):
        """The demo database at `scale` in MariaDB (loaded once), by default `emfix_bench_<scale>`."""
        name = name or "emfix_bench_%s" % ("%g" % scale).replace(".", "_")
        with open_database(self.base) as admin:
            exists = admin.scalar("SELECT count(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", (name,))
        if not exists:
            print("loading %s million rows into MariaDB %s (once)..." % (scale, name), flush=True)
            with open_database(parse_address(self.fresh(name))) as db:
                build_demo(db, Shape.full(scale))
        return name, self.url_prefix + name

    def rows(self, name):
        with open_database(parse_address(self.url_prefix + name)) as db:
            return sum(int(db.scalar("SELECT count(*) FROM `%s`" % t)) for t in db.tables())


def median_row(label, reference, ref_times, ours, our_times, rss=None):
    """Medians, and the median of the pairwise ratios (each pair ran side by side: the machine's speed
    drifts less within a pair than over the whole run)."""
    ref, mine = statistics.median(ref_times), statistics.median(our_times)
    pairs = statistics.median(b / a for a, b in zip(ref_times, our_times))
    print("| %s | %s %.2f s | %s %.2f s | **%.2f** (pairs; medians %.2f) |%s" % (
        label, reference, ref, ours, mine, pairs, mine / ref, " %.0f MB |" % statistics.median(rss) if rss else " |"),
        flush=True)


def bench_snapshot(server, name, url, work, runs):
    dump = os.path.join(work, "dump.sql")
    snaps = os.path.join(work, "snaps")
    other = scratch("emfix_bench_load")
    create = {"ref": [], "ours": [], "rss": []}
    restore = {"ref": [], "ours": [], "rss": []}
    for _ in range(runs):
        shutil.rmtree(snaps, ignore_errors=True)
        with open(dump, "wb") as out:
            create["ref"].append(timed(server.client("mysqldump", "--single-transaction", name), stdout=out)[0])
        seconds, rss = timed(emfix("snapshot", "create", url, "--snapshot-dir", snaps, "-q"))
        create["ours"].append(seconds)
        create["rss"].append(rss)
        server.fresh(other)
        with open(dump, "rb") as source:
            restore["ref"].append(timed(server.client("mysql", other), stdin=source)[0])
        snapshot_id = [n for n in os.listdir(snaps) if n.endswith(".sql")][0][:-4]
        seconds, rss = timed(emfix("snapshot", "restore", url, "--snapshot-dir", snaps, "--snapshot-id", snapshot_id,
                                   "--no-safety-snapshot", "--yes", "-q"))
        restore["ours"].append(seconds)
        restore["rss"].append(rss)
    median_row("snapshot create", "mysqldump --single-transaction", create["ref"], "emfix snapshot create",
               create["ours"], create["rss"])
    median_row("snapshot restore", "mysql DB < dump", restore["ref"], "emfix snapshot restore --no-safety-snapshot",
               restore["ours"], restore["rss"])


def bench_migrate(server, source, work, runs, experiment=1):
    dump = os.path.join(work, "copied.sql")
    migrated, plain = scratch("emfix_bench_migrate"), scratch("emfix_bench_plain")
    mysql = {"ref": [], "ours": [], "rss": []}
    sqlite = {"ref": [], "ours": [], "rss": []}
    rows = 0
    for _ in range(runs):
        target = server.fresh(migrated)
        seconds, rss = timed(emfix("migrate", source, target, "-e", str(experiment), "--init", "--strategy",
                                   "aggressive", "-q"))
        mysql["ours"].append(seconds)
        mysql["rss"].append(rss)
        with open(dump, "wb") as out:  # the same rows as a dump (data only: DST has the schema)
            subprocess.run(server.client("mysqldump", "--no-create-info", "--ignore-table=%s._emfix_migration" %
                                         migrated, "--ignore-table=%s.SCHEMA_VERSION" % migrated, migrated),
                           stdout=out, check=True)
        rows = server.rows(migrated) - 2  # less the journal row and SCHEMA_VERSION's
        server.fresh(plain, schema=True)
        with open(dump, "rb") as data:
            mysql["ref"].append(timed(server.client("mysql", plain), stdin=data)[0])
        for name in ("limit.db", "ours.db"):
            if os.path.exists(os.path.join(work, name)):
                os.remove(os.path.join(work, name))
        sqlite["ref"].append(same_engine(source, os.path.join(work, "limit.db"), experiment)[0])
        seconds, rss = timed(emfix("migrate", source, os.path.join(work, "ours.db"), "-e", str(experiment), "--init",
                                   "--strategy", "aggressive", "-q"))
        sqlite["ours"].append(seconds)
        sqlite["rss"].append(rss)
    median_row("migrate SQLite -> MariaDB, experiment %d (%s rows)" % (experiment, "{:,}".format(rows)),
               "mysql client loading a dump of the same rows", mysql["ref"], "emfix migrate --strategy aggressive",
               mysql["ours"], mysql["rss"])
    median_row("migrate SQLite -> SQLite, experiment %d" % experiment, "ATTACH + INSERT ... SELECT", sqlite["ref"],
               "emfix migrate --strategy aggressive", sqlite["ours"], sqlite["rss"])


def main(argv=None):
    parser = bench_parser(__doc__)
    parser.add_argument("--mysql", metavar="URL", required=True, help="the MariaDB server (any database on it)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=("snapshot", "migrate"), help="one half only")
    parser.add_argument("--database", metavar="NAME", help="the MariaDB database snapshots are taken of and restored "
                        "into (loaded at --scale when missing; default emfix_bench_<scale>): one of your own when "
                        "others run this script on the same server")
    args = parser.parse_args(argv)
    server = Server(args.mysql)
    work = tempfile.mkdtemp(prefix="emfix-bench-", dir=args.data)
    try:
        print("| %g M-row demo, %d runs each | reference | emfix | ratio | emfix peak RSS |" % (args.scale, args.runs))
        print("|---|---|---|---|---|")
        if args.only != "migrate":
            name, url = server.loaded(args.scale, args.database)
            print("| MariaDB database %s: %s rows | | | | |" % (name, "{:,}".format(server.rows(name))), flush=True)
            bench_snapshot(server, name, url, work, args.runs)
        if args.only != "snapshot":
            source = ensure_demo(os.path.join(args.data, scale_tag(args.scale) + "_clean"), args.scale, clean=True)
            bench_migrate(server, source, work, args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for name in ("emfix_bench_load", "emfix_bench_migrate", "emfix_bench_plain"):
            server.drop(scratch(name))


if __name__ == "__main__":
    main()
