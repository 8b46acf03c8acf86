"""Benchmark: `jsonrepair.repair` time per 10 MB on large values of every shape fix-json meets.

    python3 bench/bench_repair_sizes.py            # about 7 MB per shape, median of 3
    python3 bench/bench_repair_sizes.py --size 2

Target (#14): linear in the size, at most 1 s per 10 MB whatever the shape. tests/test_jsonrepair.py
uses the same SHAPES with a looser bound, so a test run cannot fail on a slow machine.
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SHAPES = {
    "truncated array": lambda n, x: '{"cat": [' + ("%s," % x) * n,
    "truncated repr": lambda n, x: "{'cat': [" + ("%s, " % x) * n,
    "tuple": lambda n, x: "{'cat': (" + ("%s, " % x) * n + ")}",
    "numpy array": lambda n, x: "{'cat': np.array([" + ("%s, " % x) * n + "], dtype=float32)}",
    "nan repr": lambda n, _x: "{" + ", ".join("'k%d': nan" % i for i in range(n // 2)) + "}",
    "unquoted keys": lambda n, x: "{" + ", ".join("k%d: %s" % (i, x) for i in range(n // 2)) + "}",
    "garbage": lambda n, _x: "x" * (n * 6),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=float, default=7.0, help="MB per value (about)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from emfix.jsonrepair import repair
    print("| shape | MB | seconds (median of %d) | per 10 MB | result |" % args.runs)
    print("|---|---|---|---|---|")
    for name, make in SHAPES.items():
        text = make(int(args.size * 1e6 / 7), "0.123")
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            outcome = repair(text)
            times.append(time.perf_counter() - started)
        best = statistics.median(times)
        print("| %s | %.1f | %.2f | %.2f s | %s |" % (name, len(text) / 1e6, best, best / len(text) * 1e7,
                                                     outcome.category))


if __name__ == "__main__":
    main()
