"""The commands: one module each, holding its options, its handler and its text. cli.py builds the parser
from them (in --help order); adding a command is adding a module here, its names to NAMES and its import to
_module.

A command line names one command, so only that command's module is imported and only its parser built (the
whole parser, every module, is 20-40 ms of each start): NAMES says which module registers which command name
(tests/test_cli_errors.py checks it against what the modules register)."""

ORDER = ("demo", "init", "schema", "schematools", "validate", "hierarchy", "snapshot", "repair", "cleanup", "fixjson",
         "transform", "export", "importing", "migrate", "undo", "doctor", "optimize")

NAMES = {
    "demo": "demo", "init": "init", "schema": "schema",
    "extract-schema": "schematools", "compare-schemas": "schematools", "compare-live-schemas": "schematools",
    "analyze-schema": "schematools", "generate-migration-plan": "schematools",
    "validate": "validate", "check-hierarchy": "hierarchy",
    "snapshot": "snapshot", "create-snapshot": "snapshot", "list-snapshots": "snapshot",
    "verify-snapshot": "snapshot", "restore-snapshot": "snapshot",
    "repair": "repair", "cleanup-orphans": "cleanup", "cleanup": "cleanup", "fix-json": "fixjson",
    "transform-metrics": "transform", "create-transformation-template": "transform",
    "export": "export", "export-experiment": "export", "import": "importing",
    "migrate": "migrate", "migrate-experiment": "migrate", "undo": "undo", "doctor": "doctor", "optimize": "optimize",
}


def _module(name):
    """One command module, imported by an import statement of its own (so that tools reading the imports see
    every command under cli)."""
    if name == "demo":
        from . import demo as module
    elif name == "init":
        from . import init as module
    elif name == "schema":
        from . import schema as module
    elif name == "schematools":
        from . import schematools as module
    elif name == "validate":
        from . import validate as module
    elif name == "hierarchy":
        from . import hierarchy as module
    elif name == "snapshot":
        from . import snapshot as module
    elif name == "repair":
        from . import repair as module
    elif name == "cleanup":
        from . import cleanup as module
    elif name == "fixjson":
        from . import fixjson as module
    elif name == "transform":
        from . import transform as module
    elif name == "export":
        from . import export as module
    elif name == "importing":
        from . import importing as module
    elif name == "migrate":
        from . import migrate as module
    elif name == "undo":
        from . import undo as module
    elif name == "doctor":
        from . import doctor as module
    elif name == "optimize":
        from . import optimize as module
    else:
        raise KeyError(name)
    return module


def modules(argv=None):
    """The command modules to build the parser from: the one `argv`'s first word names, or all of them (no
    command, an unknown one, or a top-level option such as --help come first)."""
    name = NAMES.get(argv[0]) if argv else None
    return [_module(m) for m in ((name,) if name else ORDER)]


def rewrite_argv(argv, chosen):
    """A command's older spelling, turned into today's before parsing (`emfix schema DB`)."""
    for module in chosen:
        argv = getattr(module, "rewrite_argv", lambda a: a)(argv)
    return argv
