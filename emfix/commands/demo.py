"""emfix demo: a sample database with the damage found in the field, to try emfix on."""

import dataclasses
import os

from ..errors import EXIT_OK, ConnectError, UsageError
from . import common


def register(sub):
    p = common.command(sub, "demo", "write a sample database with realistic damage to try emfix on",
                "emfix demo ./emfix-demo && emfix validate ./emfix-demo/experiment.db")
    p.add_argument("directory", nargs="?", default="emfix-demo", metavar="DIR",
                   help="where to write experiment.db (default: ./emfix-demo)")
    p.add_argument("--scale", type=scale, metavar="MILLIONS",
                   help="write about MILLIONS million rows (e.g. 10) instead of the small demo")
    p.add_argument("--generation", type=int, choices=(1, 2), default=2,
                   help="schema generation: 1 without the BATCH tables, 2 with (default)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--clean", action="store_true", help="write no damage")
    p.add_argument("--force", action="store_true",
                   help="kept for old scripts: demo rewrites a database it wrote itself, and never any other file")
    common.finish(p, run)


def scale(text):
    return common.number(text, 0.001, 1000, "the scale (millions of rows)")


def run(args, out):
    from .. import demo
    shape = demo.Shape.full(args.scale, args.generation) if args.scale else demo.Shape(generation=args.generation)
    directory = args.directory
    if "://" in directory:  # (not echoed: a URL may hold a password)
        raise UsageError("demo writes a SQLite file into a folder, and DIR looks like a database URL",
                         hint="write it to a folder (`emfix demo DIR --clean`), then copy it: `emfix init URL` and "
                              "`emfix migrate DIR/experiment.db URL --all --strategy aggressive`")
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise UsageError("%s exists and is not a directory" % directory)
    path = os.path.join(directory, "experiment.db")
    try:
        os.makedirs(directory, exist_ok=True)
        result = demo.write_demo(path, shape, seed=args.seed, faults=not args.clean)
    except OSError as exc:  # a read-only place; a full disk is NoSpaceError, raised where it is written
        raise ConnectError("cannot write the demo into %s: %s" % (directory, exc.strerror or exc),
                           hint="choose a folder you can write to") from None
    if out.json:
        common.emit_json({"path": path, "rows": result.rows, "total_rows": result.total_rows,
                   "shape": dataclasses.asdict(shape), "faults": [dict(name=n, what=w) for n, w in result.faults]})
        return EXIT_OK
    out.text("wrote %s: %d rows, schema generation %d, %d kinds of damage" % (
        path, result.total_rows, shape.generation, len(result.faults)))
    for _name, what in result.faults:
        out.text("  - %s" % what)
    out.text("")
    out.text("try:")
    emfix = common.invocation()
    for line in ("validate %s" % path, "schema %s" % path, "--help"):
        out.text("  %s %s" % (emfix, line))
    return EXIT_OK
