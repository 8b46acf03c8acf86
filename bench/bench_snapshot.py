"""Benchmark: emfix snapshot create --verify and verify, side by side with the sqlite3 CLI and sha256sum.

    python3 bench/bench_snapshot.py                   # the 10M-row demo database, 5 alternating runs
    python3 bench/bench_snapshot.py --mysql mysql://root@127.0.0.1:3306/emfix_bench_10 --runs 3

References: `sqlite3 DB ".backup X"` + `sha256sum X` for create --verify; `sha256sum X` +
`sqlite3 X "PRAGMA quick_check"` for verify; `mysqldump --single-transaction` for MySQL.
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

from bench_validate import bench_parser, ensure_demo, scale_tag  # noqa: E402


def timed(*commands, **kwargs):
    started = time.perf_counter()
    for command in commands:
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=dict(os.environ, PYTHONPATH=ROOT),
                       **kwargs)
    return time.perf_counter() - started


def emfix(*args):
    return [sys.executable, "-m", "emfix", *args]


def latest(directory):
    names = sorted(n for n in os.listdir(directory) if n.endswith(".db"))
    return os.path.join(directory, names[-1])


def main(argv=None):
    parser = bench_parser(__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mysql", metavar="URL", help="also time a MySQL snapshot against mysqldump")
    args = parser.parse_args(argv)
    tag = scale_tag(args.scale)
    db = ensure_demo(os.path.join(args.data, tag), args.scale, clean=False)
    work = tempfile.mkdtemp(prefix="emfix-bench-", dir=args.data)
    try:
        ref_create, ours_create, ref_verify, ours_verify = [], [], [], []
        for n in range(args.runs):
            copy = os.path.join(work, "ref-%d.db" % n)
            ref_create.append(timed(["sqlite3", db, ".backup %s" % copy], ["sha256sum", copy]))
            snaps = os.path.join(work, "snaps")
            ours_create.append(timed(emfix("snapshot", "create", db, "--snapshot-dir", snaps, "--verify", "-q")))
            ref_verify.append(timed(["sha256sum", copy], ["sqlite3", copy, "PRAGMA quick_check"]))
            snapshot_id = os.path.basename(latest(snaps))[:-3]
            ours_verify.append(timed(emfix("snapshot", "verify", "--snapshot-dir", snaps, snapshot_id, "-q")))
            os.remove(copy)
            shutil.rmtree(snaps)
        rows = [("snapshot create --verify", "sqlite3 .backup + sha256sum", ref_create, ours_create),
                ("snapshot verify", "sha256sum + sqlite3 PRAGMA quick_check", ref_verify, ours_verify)]
        print("| %s M rows, %d runs | reference | reference time | emfix | ratio |" % ("%g" % args.scale, args.runs))
        print("|---|---|---|---|---|")
        for name, ref_name, ref, ours in rows:
            print("| %s | %s | %.2f s | %.2f s | %.2f |" % (name, ref_name, statistics.median(ref),
                                                           statistics.median(ours),
                                                           statistics.median(ours) / statistics.median(ref)))
        if args.mysql:
            bench_mysql(args.mysql, work, args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench_mysql(url, work, runs):
    from emfix.address import parse_address
    address = parse_address(url)
    dump, ours = [], []
    for _ in range(runs):
        with open(os.path.join(work, "dump.sql"), "wb") as out:
            started = time.perf_counter()
            subprocess.run(["mysqldump", "--single-transaction", "-h", address.host, "-P", str(address.port),
                            "-u", address.user, address.database], check=True, stdout=out)
            dump.append(time.perf_counter() - started)
        snaps = os.path.join(work, "msnaps")
        ours.append(timed(emfix("snapshot", "create", url, "--snapshot-dir", snaps, "--verify", "-q")))
        shutil.rmtree(snaps)
    print("| MySQL snapshot create --verify | mysqldump --single-transaction | %.2f s | %.2f s | %.2f |" % (
        statistics.median(dump), statistics.median(ours), statistics.median(ours) / statistics.median(dump)))


if __name__ == "__main__":
    main()
