"""Small files a user names for emfix to read: a password file, a MySQL option file, a rules file, a schema or diff
file. One that is missing, a folder, a pipe no process writes to, or not UTF-8 gets a clear error (exit 3, or 2 for
text that is not UTF-8) instead of a traceback or a wait without end (round 54: a FIFO as --rules waited forever,
a Latin-1 password file was exit 70).
"""

import os
import select
import stat
import time

from .errors import NotFoundError, UsageError

PIPE_WAIT = 10.0  # seconds a pipe (`--password-file <(pass show db)`) may take to say something


def read_input_text(path, what, pipes=False, first_line=False, wait=PIPE_WAIT):
    """The UTF-8 text of the file at `path` (`what` names it in errors: "the rules file"); `pipes`: a pipe is
    read too (a process substitution), if a process writes to it within `wait` seconds; `first_line`: only that."""
    try:
        found = os.stat(path)
    except OSError as exc:
        raise NotFoundError("cannot read %s %s: %s" % (what, path, exc.strerror or exc)) from None
    if stat.S_ISDIR(found.st_mode):
        raise NotFoundError("%s %s is a folder, not a file" % (what, path), hint="name the file itself")
    if stat.S_ISFIFO(found.st_mode) and pipes:
        data = _read_pipe(path, what, first_line, wait)
    elif not stat.S_ISREG(found.st_mode):
        raise NotFoundError("%s %s is not a regular file (a pipe, socket or device)" % (what, path),
                            hint="write it to a file first, then name that file")
    else:
        try:
            with open(path, "rb") as handle:
                data = handle.readline() if first_line else handle.read()
        except OSError as exc:
            raise NotFoundError("cannot read %s %s: %s" % (what, path, exc.strerror or exc)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError("%s %s is not UTF-8 text" % (what, path),
                         hint="save it as UTF-8 (emfix reads and sends text as UTF-8)") from None


def _read_pipe(path, what, first_line, wait):
    """A pipe's text: up to its first newline (`first_line`) or its end, once a writer has said something."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # opening a FIFO no one writes to waits without this
    except OSError as exc:
        raise NotFoundError("cannot read %s %s: %s" % (what, path, exc.strerror or exc)) from None
    chunks, deadline = [], time.monotonic() + wait
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not poller.poll(left * 1000):
                raise UsageError("%s %s is a pipe that nothing was written to within %d s" % (what, path, wait),
                                 hint="start what writes to it first, or name a regular file")
            try:
                block = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if not block:  # the writer closed it
                return b"".join(chunks)
            chunks.append(block)
            if first_line and b"\n" in block:
                return b"".join(chunks).split(b"\n", 1)[0] + b"\n"
    finally:
        os.close(fd)
