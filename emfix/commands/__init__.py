"""The commands: one module each, holding its options, its handler and its text. cli.py builds the parser
from them (in --help order); adding a command is adding a module here and its names to NAMES.

A command line names one command, so only that command's module is imported and only its parser built (the
whole parser, every module, is 20-40 ms of each start): NAMES says which module registers which command name
(tests/test_cli_errors.py checks it against what the modules register)."""

import importlib

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


def modules(argv=None):
    """The command modules to build the parser from: the one `argv`'s first word names, or all of them (no
    command, an unknown one, or a top-level option such as --help come first)."""
    name = NAMES.get(argv[0]) if argv else None
    return [importlib.import_module("." + m, __name__) for m in ((name,) if name else ORDER)]


def rewrite_argv(argv, chosen):
    """A command's older spelling, turned into today's before parsing (`emfix schema DB`)."""
    for module in chosen:
        argv = getattr(module, "rewrite_argv", lambda a: a)(argv)
    return argv
