"""Benchmark: transform-metrics against a plain script doing the same work, then undo.

    python3 bench/bench_transform.py              # the 10M-row demo sample, 3 alternating runs

Reference (what a user writes without emfix): read id, per_label_val; json.loads; change; json.dumps;
UPDATE, committed every 10,000 rows. emfix does the same with its originals written to a quarantine
file before each batch commits (and, in the last line, with the verified snapshot it takes by default).
Every run works on a fresh copy. After the last emfix run, `emfix undo` must leave METRIC identical.
"""

import hashlib
import json
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

from bench_validate import bench_parser, ensure_demo, scale_tag  # noqa: E402

RULES = {"cat": "normalize", "dog": {"round": 2}, "*": {"scale": 1.0}}


def change(values):
    """The reference's rules, written by hand: what RULES say."""
    out = {}
    for label, value in values.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = value / 100.0 if label == "cat" else round(value, 2) if label == "dog" else value * 1.0
        out[label] = value
    return out


def plain_script(path):
    """Pages of 10,000 by id, each page's UPDATEs committed together."""
    con = sqlite3.connect(path)
    last = -1
    while True:
        rows = con.execute("SELECT id, per_label_val FROM METRIC WHERE id > ? ORDER BY id LIMIT 10000",
                           (last,)).fetchall()
        if not rows:
            break
        last = rows[-1][0]
        updates = []
        for ident, raw in rows:
            try:  # NaN/Infinity are not JSON: skipped, as emfix skips them
                values = json.loads(raw, parse_constant=lambda _name: float("x"))
            except (TypeError, ValueError):
                continue
            if not isinstance(values, dict):
                continue
            new = json.dumps(change(values))
            if new != raw:
                updates.append((new, ident))
        con.executemany("UPDATE METRIC SET per_label_val = ? WHERE id = ?", updates)
        con.commit()
    con.close()


def metric_digest(path):
    con = sqlite3.connect(path)
    digest = hashlib.sha256()
    for row in con.execute("SELECT id, type, total_val, per_label_val FROM METRIC ORDER BY id"):
        digest.update(repr(row).encode())
    con.close()
    return digest.hexdigest()


def emfix(*args):
    return subprocess.run([sys.executable, "-m", "emfix", *args], env=dict(os.environ, PYTHONPATH=ROOT),
                          capture_output=True, text=True, check=True)


def main(argv=None):
    parser = bench_parser(__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    source = ensure_demo(os.path.join(args.data, scale_tag(args.scale)), args.scale, clean=False)
    work = tempfile.mkdtemp(prefix="emfix-bench-transform-")
    rules = os.path.join(work, "rules.json")
    with open(rules, "w") as handle:
        json.dump(RULES, handle)
    copy = os.path.join(work, "experiment.db")
    count = sqlite3.connect(source).execute("SELECT count(*) FROM METRIC").fetchone()[0]
    ref, mine, snap = [], [], []
    try:
        for _ in range(args.runs):
            shutil.copyfile(source, copy)
            started = time.perf_counter()
            plain_script(copy)
            ref.append(time.perf_counter() - started)
            expected = metric_digest(copy)
            shutil.copyfile(source, copy)
            shutil.rmtree(os.path.join(work, "quarantine"), ignore_errors=True)
            started = time.perf_counter()
            emfix("transform-metrics", copy, "--rules", rules, "--yes", "--no-snapshot", "-q")
            mine.append(time.perf_counter() - started)
            assert metric_digest(copy) == expected, "emfix and the plain script disagree"
        before = metric_digest(source)
        shutil.copyfile(source, copy)
        shutil.rmtree(os.path.join(work, "quarantine"), ignore_errors=True)
        started = time.perf_counter()
        done = json.loads(emfix("transform-metrics", copy, "--rules", rules, "--yes", "--json",
                                "--snapshot-dir", os.path.join(work, "snapshots")).stdout)
        snap.append(time.perf_counter() - started)
        started = time.perf_counter()
        emfix("undo", done["quarantine"], "-q")
        undo_seconds = time.perf_counter() - started
        identical = metric_digest(copy) == before
    finally:
        shutil.rmtree(work, ignore_errors=True)
    r, m = statistics.median(ref), statistics.median(mine)
    print("METRIC rows: %d; values changed: %d" % (count, done["changed"]))
    print("| plain script (10,000-row transactions) | %.2f s |" % r)
    print("| emfix transform-metrics --no-snapshot (quarantine) | %.2f s | %.2f x |" % (m, m / r))
    print("| emfix transform-metrics (verified snapshot first) | %.2f s | %.2f x |" % (snap[0], snap[0] / r))
    print("| emfix undo | %.2f s | METRIC identical after undo: %s |" % (undo_seconds, identical))
    if not identical:
        sys.exit(1)


if __name__ == "__main__":
    main()
