"""Benchmark: `emfix repair --yes` against the cookbook's steps one after the other.

    python3 bench/bench_repair.py --scale 0.1 --runs 3     # a small demo (the machine is shared)
    python3 bench/bench_repair.py --runs 3                 # the 10M-row demo of issue #27

Each run works on a fresh copy of the damaged demo (`emfix demo --scale N`), alternating:

- repair: `emfix repair DB --yes` (its snapshot, one quarantine, the checks again);
- steps: `emfix validate DB`, `emfix cleanup-orphans DB --yes`, `emfix fix-json DB --yes`,
  `emfix validate DB` (a snapshot each for the two repairs), timed as their sum.

Both end with the same rows (checked: rows per table and the metric values' digest). Peak RSS is each
emfix process's own (getrusage in the process); the steps' figure is the largest of the four.
"""

import hashlib
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

RUN = ("import resource, sys\nfrom emfix.cli import main\ncode = main(sys.argv[1:])\n"
       "sys.stderr.write('peak_kb=%d\\n' % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\nsys.exit(code)\n")


def emfix(*args):
    """(seconds, exit code, peak RSS in MB) of one emfix process."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", RUN, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    seconds = time.perf_counter() - started
    peak = [int(line.split("=")[1]) for line in done.stderr.splitlines() if line.startswith("peak_kb=")]
    if done.returncode not in (0, 1):
        raise SystemExit("emfix %s failed (%d): %s" % (" ".join(args), done.returncode, done.stderr[-500:]))
    return seconds, done.returncode, (peak[0] / 1024.0 if peak else float("nan"))


def fingerprint(path):
    """Rows per table and a digest of every metric value: what both ways must end with."""
    con = sqlite3.connect(path)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                                           "'sqlite%' ORDER BY name")]
        counts = {t: con.execute('SELECT count(*) FROM "%s"' % t).fetchone()[0] for t in tables}
        digest = hashlib.sha256()
        for key, value in con.execute("SELECT id, per_label_val FROM METRIC ORDER BY id"):
            digest.update(("%r:%r\n" % (key, value)).encode("utf-8", "backslashreplace"))
        return counts, digest.hexdigest()
    finally:
        con.close()


def fresh_copy(source, work, name):
    folder = os.path.join(work, name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    path = os.path.join(folder, "experiment.db")
    shutil.copyfile(source, path)
    return folder, path


def run_repair(source, work):
    folder, path = fresh_copy(source, work, "repair")
    seconds, code, peak = emfix("repair", path, "--yes", "-q", "--snapshot-dir", os.path.join(folder, "snaps"))
    return seconds, peak, code, fingerprint(path)


def run_steps(source, work):
    folder, path = fresh_copy(source, work, "steps")
    snaps = ["--snapshot-dir", os.path.join(folder, "snaps")]
    parts = [emfix("validate", path, "-q"), emfix("cleanup-orphans", path, "--yes", "-q", *snaps),
             emfix("fix-json", path, "--yes", "-q", *snaps), emfix("validate", path, "-q")]
    return sum(p[0] for p in parts), max(p[2] for p in parts), [round(p[0], 2) for p in parts], fingerprint(path)


def main(argv=None):
    parser = bench_parser(__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    source = ensure_demo(os.path.join(args.data, scale_tag(args.scale)), args.scale, clean=False)
    work = tempfile.mkdtemp(prefix="bench-repair-", dir=args.data)
    try:
        run_repair(source, work)  # warm the page cache; not counted
        ours, theirs, peaks, step_peaks, split = [], [], [], [], []
        for _ in range(args.runs):
            seconds, peak, code, ours_end = run_repair(source, work)
            ours.append(seconds)
            peaks.append(peak)
            total, step_peak, parts, steps_end = run_steps(source, work)
            theirs.append(total)
            step_peaks.append(step_peak)
            split.append(parts)
            if ours_end != steps_end:
                raise SystemExit("repair and the steps ended with different rows")
        rows = sum(ours_end[0].values())
        print("| demo --scale %g (%s rows after) | validate + cleanup-orphans --yes + fix-json --yes + validate | "
              "repair --yes | ratio | peak RSS steps / repair |" % (args.scale, "{:,}".format(rows)))
        print("|---|---|---|---|---|")
        print("| medians of %d alternating runs | %.2f s | %.2f s | %.2f | %.0f MB / %.0f MB |" % (
            args.runs, statistics.median(theirs), statistics.median(ours),
            statistics.median(ours) / statistics.median(theirs), max(step_peaks), max(peaks)))
        print("steps, each run (validate, cleanup-orphans, fix-json, validate): %s" % split)
        print("repair, each run: %s; exit %d (what cannot be repaired without guessing is left)" % (
            [round(s, 2) for s in ours], code))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
