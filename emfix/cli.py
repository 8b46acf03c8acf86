"""The command line: build the parser from the command modules, run one, map errors to exit codes."""

import logging
import os
import select
import signal
import sqlite3
import sys
import tempfile
import threading
import time
import traceback

from . import __version__
from .address import hide_secrets, remember_secret
from .commands import modules, rewrite_argv
from .commands.common import Output, Parser, formatter, hint_for, silence_stdout
from .errors import EXIT_BUG, EXIT_CTRL_C, EXIT_OK, EXIT_TERMINATED, EXIT_USAGE, EmfixError, Terminated, UsageError
from .retry import STOP_WAITING, TERMINATE

EXIT_CODES_HELP = """exit codes:
    0  healthy / done
    1  problems found
    2  usage error (bad arguments, no command, the wrong database)
    3  cannot open, connect or write: a missing file or snapshot id, locked after retries, disk full
    4  damaged input (corrupt file, snapshot mismatch)
    5  interrupted; run again (or --resume) to finish
   70  a bug in emfix: the message says where its traceback is
  130  Ctrl-C twice: stopped at once
  143  SIGTERM to a command with no batches to stop between: stopped at once, nothing half-written kept"""


def build_parser(chosen=None):
    """The parser of the `chosen` command modules (commands.modules), by default of every command."""
    parser = Parser(prog="emfix", formatter_class=formatter, epilog=EXIT_CODES_HELP,
                    description="emfix: find and repair damage in Experiment Manager databases (SQLite, "
                                "MySQL/MariaDB).")
    parser.add_argument("--version", action="version", version="emfix %s (Python %s, SQLite %s)" % (
        __version__, sys.version.split()[0], sqlite3.sqlite_version))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for module in chosen or modules():
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
    hint = hint_for(exc)
    if hint:
        sys.stderr.write("hint: %s\n" % hide_secrets(hint))


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
    """Run one command; its exit code. Signal handlers it installs (SIGINT, SIGTERM, SIGXFSZ) are put back as they
    were when it returns: a program or a test that calls main() keeps its own Ctrl-C (an earlier command's
    handler swallowed a later Ctrl-C in the same process)."""
    kept = _signal_handlers()
    _fill_closed_standard_streams()
    stderr, sys.stderr = sys.stderr, _Diagnostics(sys.stderr)
    try:
        return _main(argv)
    except KeyboardInterrupt as exc:  # also while the parser is built, before _main's own handling
        return _interrupted(exc)
    finally:
        sys.stderr = stderr
        _flush_stdout()
        for signum, handler in kept.items():
            signal.signal(signum, handler)


def _flush_stdout():
    """What is left in stdout's buffer, before Python's own flush at exit, which says a failure as "Exception
    ignored" and exit 120: lost with the stream, the code stands."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        try:
            silence_stdout()
        except (OSError, ValueError):
            pass


def _fill_closed_standard_streams():
    """A closed stdin, stdout or stderr (`>&-`) is /dev/null: Python had no sys.stdout (validate >&-: exit 70;
    2>&-: every error exit 1, round 54), and no file opened later takes descriptor 1 or 2, where a stray write
    would land in it."""
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        null = os.open(os.devnull, os.O_RDWR)  # the lowest free descriptor: this one
        if null != fd:
            os.close(null)
            continue
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, mode, closefd=False))


class _Diagnostics:
    """stderr, whose failure (`2>/dev/full`, a reader gone) loses the message but never changes the exit code: an
    error said there came back as exit 1, "problems found" (round 54)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        try:
            return self._stream.write(text)
        except (OSError, ValueError):
            return len(text)

    def flush(self):
        try:
            self._stream.flush()
        except (OSError, ValueError):
            pass

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _signal_handlers():
    if threading.current_thread() is not threading.main_thread():
        return {}
    names = ("SIGINT", "SIGTERM", "SIGXFSZ")
    return {s: signal.getsignal(s) for s in (getattr(signal, n) for n in names if hasattr(signal, n))
            if signal.getsignal(s) is not None}


def _interrupted(exc):
    terminated = isinstance(exc, Terminated)
    sys.stderr.write("error: terminated (SIGTERM)\n" if terminated else "error: interrupted\n")
    if getattr(exc, "after_stop", False):  # a second signal, while the command was stopping between batches
        sys.stderr.write("hint: stopped at once, not after the batch: what the batches before committed stays; the "
                         "same command again (with --resume where it takes one) finishes the rest\n")
    return EXIT_TERMINATED if terminated else EXIT_CTRL_C


def _terminate(_signum, _frame):
    """SIGTERM: Terminated, once. More within a second (a supervisor sending several) are ignored, or one would
    land inside the cleanup the first set going (a temporary file left, "Exception ignored" tracebacks: found by
    an outside tester); a later one raises again, as the first may have been dropped (see retry.TERMINATE)."""
    now = time.monotonic()
    if TERMINATE.is_set() and now - _terminate.at < 1.0:
        return
    _terminate.at = now
    TERMINATE.set()  # a wait for a lock ends, even where Python drops the exception below
    raise Terminated()


_terminate.at = 0.0


def _main(argv):
    if hasattr(signal, "SIGXFSZ"):  # over a file-size limit, let the write fail with EFBIG, not kill us
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    if threading.current_thread() is threading.main_thread():  # StopFlag replaces it where batches can stop
        TERMINATE.clear()
        STOP_WAITING.clear()
        signal.signal(signal.SIGTERM, _terminate)
    own_argv = argv is None  # this process's command line, which `ps` shows
    argv = sys.argv[1:] if own_argv else list(argv)
    chosen = modules(argv)
    parser = build_parser(chosen)
    secrets = _secrets_on_argv(argv)
    for secret in secrets:
        remember_secret(secret)
    if secrets and own_argv:
        hide_from_process_list(secrets)
    try:
        args = parser.parse_args(_glue_negative_values(rewrite_argv(argv, chosen)))
        if not args.command:  # not a request for help (that is --help): a usage error, help on stderr
            parser.print_help(sys.stderr)
            sys.stderr.write("error: no command given\n")
            return EXIT_USAGE
        _refuse_empty_paths(args)
        _configure_logging(args)
        return args.func(args, Output(args))
    except EmfixError as exc:
        _print_error(exc)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        return _interrupted(exc)
    except BrokenPipeError as exc:
        # One rule for a closed stdout (`validate | head`, `export -o - | head`): the reader chose to stop, so
        # the rest is dropped quietly and nothing is reported. A command that writes through write_stdout keeps
        # its own code; one whose output was the data (export -o -) stops there, with nothing failed: 0.
        if not _stdout_closed():
            report_bug(exc)
            return EXIT_BUG
        silence_stdout()
        return EXIT_OK
    except Exception as exc:  # a crash is reported as one, never as a finding (exit 1)
        report_bug(exc)
        return EXIT_BUG


def _refuse_empty_paths(args):
    """`-o ""` (an unset shell variable) was taken as no -o at all: the report went to stdout (round 54)."""
    for name, flag in (("output", "-o/--output"), ("snapshot_dir", "--snapshot-dir"), ("rules", "--rules"),
                       ("password_file", "--password-file"), ("defaults_file", "--defaults-file")):
        if getattr(args, name, None) == "":
            raise UsageError("%s was given an empty name" % flag, hint="name a file (is a shell variable unset?)")


def _stdout_closed():
    """Whether stdout is a pipe its reader has closed (poll says POLLERR); True when that cannot be told."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _fd, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):
        return True


def report_bug(exc):
    """One line on stderr saying this is emfix's bug and where its traceback went: a file in the temp
    directory (passwords masked), or stderr when that cannot be written."""
    text = hide_secrets("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    summary = hide_secrets("%s: %s" % (type(exc).__name__, exc))[:300].replace("\n", " ")
    name = "emfix-crash-%s-%d.txt" % (time.strftime("%Y%m%d-%H%M%S"), os.getpid())
    path = os.path.join(tempfile.gettempdir(), name)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as handle:
            handle.write("emfix %s, Python %s\nargv: %s\n\n%s" % (
                __version__, sys.version.split()[0], hide_secrets(" ".join(sys.argv)), text))
        where = "its traceback is in %s" % path
    except OSError:
        sys.stderr.write(text)
        where = "its traceback is above"
    sys.stderr.write("error: a bug in emfix (%s); %s: please report it with the command you ran\n" % (summary, where))


def run():
    """Entry point for zipapp's generated __main__ (which ignores a return value): exit with main's code."""
    sys.exit(main())
