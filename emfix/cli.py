"""The command line: build the parser from the command modules, run one, map errors to exit codes."""

import logging
import signal
import sqlite3
import sys

from . import __version__
from .address import hide_secrets, remember_secret
from .commands import REGISTERED, rewrite_argv
from .commands.common import Output, Parser, formatter, silence_stdout
from .errors import EXIT_OK, EXIT_PROBLEMS, EmfixError

EXIT_CODES_HELP = """exit codes:
  0  healthy / done          3  cannot open or connect, or locked after retries
  1  problems found          4  damaged input (corrupt file, snapshot mismatch)
  2  usage error             5  interrupted; run again (or --resume) to finish"""


def build_parser():
    parser = Parser(prog="emfix", formatter_class=formatter, epilog=EXIT_CODES_HELP,
                    description="emfix: find and repair damage in Experiment Manager databases (SQLite, "
                                "MySQL/MariaDB).")
    parser.add_argument("--version", action="version", version="emfix %s (Python %s, SQLite %s)" % (
        __version__, sys.version.split()[0], sqlite3.sqlite_version))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for module in REGISTERED:
        module.register(sub)
    return parser


def _configure_logging(args):
    level = logging.WARNING
    if getattr(args, "quiet", False):
        level = logging.ERROR
    elif getattr(args, "verbose", 0) >= 2:
        level = logging.DEBUG
    elif getattr(args, "verbose", 0) == 1:
        level = logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("emfix: %(message)s"))
    root = logging.getLogger("emfix")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _print_error(exc):
    sys.stderr.write("error: %s\n" % hide_secrets(exc.message))
    if exc.hint:
        sys.stderr.write("hint: %s\n" % hide_secrets(exc.hint))


VALUE_OPTIONS = ("--older-than",)


def _glue_negative_values(argv):
    """`--older-than -1d` as `--older-than=-1d`: argparse would take `-1d` for an option, and say so
    ("expected one argument") instead of what is wrong with the value."""
    out, skip = [], False
    for n, token in enumerate(argv):
        if skip:
            skip = False
            continue
        if token in VALUE_OPTIONS and n + 1 < len(argv) and argv[n + 1].startswith("-"):
            out.append("%s=%s" % (token, argv[n + 1]))
            skip = True
        else:
            out.append(token)
    return out


def _secrets_on_argv(argv):
    """Passwords given on the command line (--password X, --password=X, a URL's user:password@)."""
    found = []
    for n, token in enumerate(argv):
        name = token.split("=", 1)[0]
        old_pair = name in ("--source-password", "--target-password")  # compare-live-schemas
        if old_pair or (name.startswith("--pass") and "--password".startswith(name)):  # not --password-file (a path)
            if "=" in token:
                found.append(token.split("=", 1)[1])
            elif n + 1 < len(argv):
                found.append(argv[n + 1])  # --password X, or a mistyped --pass X: kept out of every message
        if "://" in token and "@" in token:
            masked = hide_secrets(token)
            if masked != token:
                found.append(token[token.index(":", token.index("://") + 3) + 1:token.rindex("@")])
    return [f for f in found if f]


def hide_from_process_list(secrets):
    """Overwrite the passwords in this process's own argv (what `ps` and /proc/PID/cmdline show), as the
    mysql client does. Linux only, best effort: the bytes live between arg_start and arg_end."""
    try:
        with open("/proc/self/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end (fields 48 and 49 of stat)
        with open("/proc/self/mem", "r+b", buffering=0) as mem:
            mem.seek(start)
            raw = mem.read(end - start)
            scrubbed = raw
            for secret in secrets:
                encoded = secret.encode(sys.getfilesystemencoding(), "surrogateescape")
                scrubbed = scrubbed.replace(encoded, b"x" * len(encoded))
            if scrubbed != raw:
                mem.seek(start)
                mem.write(scrubbed)
    except (OSError, ValueError, IndexError):
        pass


def main(argv=None):
    if hasattr(signal, "SIGXFSZ"):  # over a file-size limit, let the write fail with EFBIG, not kill us
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    parser = build_parser()
    secrets = _secrets_on_argv(sys.argv[1:] if argv is None else list(argv))
    for secret in secrets:
        remember_secret(secret)
    if secrets and argv is None:
        hide_from_process_list(secrets)
    try:
        args = parser.parse_args(_glue_negative_values(rewrite_argv(sys.argv[1:] if argv is None else list(argv))))
        if not args.command:
            parser.print_help()
            return EXIT_OK
        _configure_logging(args)
        return args.func(args, Output(args))
    except EmfixError as exc:
        _print_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    except BrokenPipeError:
        silence_stdout()
        sys.stderr.write("error: the output was closed before everything was written\n")
        return EXIT_PROBLEMS


def run():
    """Entry point for zipapp's generated __main__ (which ignores a return value): exit with main's code."""
    sys.exit(main())
