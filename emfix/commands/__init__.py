"""The commands: one module each, holding its options, its handler and its text. cli.py builds the parser
from REGISTERED (in --help order); adding a command is adding a module here."""

from . import (
    cleanup,
    demo,
    doctor,
    export,
    fixjson,
    hierarchy,
    importing,
    init,
    migrate,
    optimize,
    repair,
    schema,
    schematools,
    snapshot,
    transform,
    undo,
    validate,
)

REGISTERED = (demo, init, schema, schematools, validate, hierarchy, snapshot, repair, cleanup, fixjson, transform,
              export, importing, migrate, undo, doctor, optimize)


def rewrite_argv(argv):
    """A command's older spelling, turned into today's before parsing (`emfix schema DB`)."""
    for module in REGISTERED:
        argv = getattr(module, "rewrite_argv", lambda a: a)(argv)
    return argv
