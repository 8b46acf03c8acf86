"""Benchmark: what `emfix optimize` changes on the 10-million-row sample database.

    python3 bench/bench_optimize.py              # 10M rows, 3 runs of each measurement
    python3 bench/bench_optimize.py --scale 1 --runs 5

On a copy of the sample (bench/data/, git-ignored): doctor's index finding, `validate`, and
`validate --experiment 1` (the hierarchy walk, which looks children up by their parent) before
and after `optimize`, medians of fresh processes, plus optimize's own time.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bench_validate import _env, bench_parser, emfix, ensure_demo, run, scale_tag  # noqa: E402


def median_run(argv, runs):
    return statistics.median(run(argv, env=_env())[0] for _ in range(runs))


def index_finding(path):
    out = subprocess.run(emfix("doctor", path, "--json"), capture_output=True, text=True, env=_env()).stdout
    finding = [f for f in json.loads(out)["findings"] if f["check"] == "indexes"][0]
    return "%s (%d missing)" % (finding["level"], len(finding["details"].get("missing", [])))


def main(argv=None):
    parser = bench_parser(__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    tag = scale_tag(args.scale)
    sample = ensure_demo(os.path.join(args.data, tag), args.scale, clean=False)
    work = os.path.join(args.data, tag + "_optimize")
    os.makedirs(work, exist_ok=True)
    path = os.path.join(work, "experiment.db")
    shutil.copyfile(sample, path)
    rows = []
    for phase in ("before", "after"):
        if phase == "after":
            started = time.perf_counter()
            subprocess.run(emfix("optimize", path, "--no-timing", "-q"), check=True, env=_env())
            rows.append("| optimize itself | %.1f s |" % (time.perf_counter() - started))
        finding = index_finding(path)
        full = median_run(emfix("validate", path, "-q"), args.runs)
        walk = median_run(emfix("validate", path, "-q", "--experiment", "1"), args.runs)
        rows.append("| %s | doctor indexes: %s | validate %.2f s | validate --experiment 1 %.2f s |" % (
            phase, finding, full, walk))
        print(rows[-1], flush=True)
    print(rows[1], flush=True)
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
