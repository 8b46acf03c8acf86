"""Benchmark: `emfix validate` against `sqlite3 DB "PRAGMA foreign_key_check"`, side by side.

    python3 bench/bench_validate.py                  # 10M rows, 5 alternating runs each
    python3 bench/bench_validate.py --scale 1 --runs 3
    python3 bench/bench_validate.py --only-demo --runs 5   # the demo database alone (#28's figure)
    python3 bench/bench_validate.py --mysql mysql://root@127.0.0.1:3306/test

Databases are generated once under bench/data/ (git-ignored): the demo database at --scale, a
clean copy with exactly 100 violations and one with exactly 100,000. Each measurement is a fresh
process; wall time and that process's own peak RSS (wait4) are recorded, medians reported.
"""

import argparse
import compileall
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)


def run(argv, env=None):
    """(seconds, peak RSS in MB, exit code) of one child process."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status >> 8
    err = proc.stderr.read().decode()
    proc.stderr.close()
    if proc.returncode not in (0, 1):
        raise SystemExit("%s failed (%s): %s" % (" ".join(argv), proc.returncode, err))
    return elapsed, usage.ru_maxrss / 1024.0, proc.returncode


def byte_compiled():
    """emfix as installed (pip compiles the package; a clone writes __pycache__ on its first run): the timed runs
    do not compile ~60 modules each, which a shell with PYTHONDONTWRITEBYTECODE=1 would otherwise make them do
    (about 0.1 s a run)."""
    compileall.compile_dir(os.path.join(ROOT, "emfix"), quiet=1)


def bench_parser(doc):
    """The options every benchmark shares: the sample's size and where generated databases live (and emfix
    byte-compiled once, as installed)."""
    byte_compiled()
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=10.0, help="millions of rows (default 10)")
    parser.add_argument("--data", default=os.path.join(HERE, "data"), help="where generated databases live")
    return parser


def scale_tag(scale):
    """bench/data/<tag>/: 10 -> 10m, 0.1 -> 0_1m."""
    return ("%g" % scale).replace(".", "_") + "m"


def emfix(*args):
    return [sys.executable, "-m", "emfix", *args]


def ensure_demo(directory, scale, clean):
    path = os.path.join(directory, "experiment.db")
    if not os.path.exists(path):
        os.makedirs(directory, exist_ok=True)
        print("generating %s (%s million rows%s)..." % (path, scale, ", clean" if clean else ""), flush=True)
        flags = ["--clean"] if clean else []
        subprocess.run(emfix("demo", directory, "--scale", str(scale), "--force", "-q", *flags), check=True,
                       cwd=ROOT, env=_env())
    return path


def with_violations(clean_path, count, directory):
    """A copy of the clean database in which exactly `count` BATCH_METRIC rows lost their METRIC."""
    path = os.path.join(directory, "experiment.db")
    if not os.path.exists(path):
        os.makedirs(directory, exist_ok=True)
        shutil.copyfile(clean_path, path + ".tmp")
        con = sqlite3.connect(path + ".tmp")
        con.execute("DELETE FROM METRIC WHERE id IN (SELECT metric_id FROM BATCH_METRIC ORDER BY rowid LIMIT ?)",
                    (count,))
        con.commit()
        con.close()
        os.replace(path + ".tmp", path)
    return path


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT
    return env


def measure(label, argv, runs):
    times, rss = [], []
    for _ in range(runs):
        seconds, peak, _code = run(argv, _env())
        times.append(seconds)
        rss.append(peak)
    return label, times, rss


def side_by_side(path, runs):
    """Alternate pragma and emfix so both see the same machine state; medians of each."""
    pragma = ["sqlite3", path, "PRAGMA foreign_key_check"] if shutil.which("sqlite3") else [
        sys.executable, "-c", "import sqlite3,sys; sqlite3.connect(sys.argv[1]).execute("
        "'PRAGMA foreign_key_check').fetchall()", path]
    validate = emfix("validate", path, "-q")
    run(validate, _env())  # warm the OS page cache for both
    a, b = [], []
    for _ in range(runs):
        a.append(run(pragma, _env()))
        b.append(run(validate, _env()))
    return ([t for t, _, _ in a], [r for _, r, _ in a]), ([t for t, _, _ in b], [r for _, r, _ in b])


def main(argv=None):
    parser = bench_parser(__doc__)
    parser.add_argument("--runs", type=int, default=5, help="runs of each side (default 5)")
    parser.add_argument("--mysql", metavar="URL", help="also time validate on this MariaDB server (loads a copy)")
    parser.add_argument("--only-demo", action="store_true",
                        help="only the demo database (no clean copies with 100 and 100,000 violations)")
    args = parser.parse_args(argv)
    tag = scale_tag(args.scale)
    damaged = ensure_demo(os.path.join(args.data, tag), args.scale, clean=False)
    databases = [("demo damage (154 violations)", lambda: damaged)]
    if not args.only_demo:
        clean = ensure_demo(os.path.join(args.data, tag + "-clean"), args.scale, clean=True)
        databases += [
            ("100 violations", lambda: with_violations(clean, 100, os.path.join(args.data, tag + "-v100"))),
            ("100,000 violations", lambda: with_violations(clean, 100000, os.path.join(args.data, tag + "-v100k")))]
    rows = []
    for name, made in databases:
        path = made()
        (pt, pr), (vt, vr) = side_by_side(path, args.runs)
        pairs = statistics.median(v / p for p, v in zip(pt, vt))  # pair by pair: robust to a drifting machine
        rows.append((name, statistics.median(pt), statistics.median(vt), statistics.median(vr), max(vr), pairs))
        print("%-30s pragma %.2fs  emfix %.2fs  ratio %.2f (pairs %.2f)  emfix peak RSS %.0f MB (max %.0f)" % (
            name, rows[-1][1], rows[-1][2], rows[-1][2] / rows[-1][1], pairs, rows[-1][3], rows[-1][4]), flush=True)
    if args.mysql:
        mysql_rows = bench_mysql(args.mysql, args.scale, args.runs)
        print("%-30s emfix %.2fs  peak RSS %.0f MB  (%s)" % ("MariaDB InnoDB, demo damage", *mysql_rows))
    print()
    print("| database (%s M rows) | PRAGMA foreign_key_check | emfix validate | ratio | ratio (median of pairs) "
          "| emfix peak RSS |" % ("%g" % args.scale))
    print("|---|---|---|---|---|---|")
    for name, p, v, r, _mx, pairs in rows:
        print("| %s | %.2f s | %.2f s | %.2f | %.2f | %.0f MB |" % (name, p, v, v / p, pairs, r))


def bench_mysql(url, scale, runs):
    """Load the demo database at `scale` into a fresh MariaDB database (once) and time validate on it."""
    from emfix.address import parse_address
    from emfix.backends import open_database
    from emfix.demo import Shape, build_demo
    base = parse_address(url)
    name = "emfix_bench_%s" % ("%g" % scale).replace(".", "_")
    target = url.rsplit("/", 1)[0] + "/" + name
    with open_database(base) as admin:
        exists = admin.scalar("SELECT count(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", (name,))
        if not exists:
            print("loading %s million rows into MariaDB %s (once)..." % (scale, name), flush=True)
            admin.execute("CREATE DATABASE `%s` CHARACTER SET utf8mb4" % name)
            with open_database(parse_address(target)) as db:
                build_demo(db, Shape.full(scale))
    times, rss = [], []
    for _ in range(runs):
        seconds, peak, _ = run(emfix("validate", target, "-q"), _env())
        times.append(seconds)
        rss.append(peak)
    return statistics.median(times), statistics.median(rss), target


if __name__ == "__main__":
    main()
