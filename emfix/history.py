"""What emfix last found and did, per database, so `doctor` can say "last validated 3 days ago: 37 violations".

One JSON line per command run, appended to $EMFIX_HISTORY (default
$XDG_STATE_HOME/emfix/history.jsonl, i.e. ~/.local/state/emfix/history.jsonl). Databases are named
by DatabaseAddress.key() (a SQLite file by its real path; never a password). Recording never fails a command:
an unwritable history is skipped (a full disk included).

Appended, not written through fileutil.durable_file: a whole-file rewrite per run would cost the whole
history each time and lose the line of another emfix appending at the same moment; one write of one line
in append mode cannot, and a line cut short by a crash is skipped when read.
"""

import datetime
import json
import logging
import os

from .fileutil import state_home
from .outputguard import HISTORY_FIRST_BYTES, appendable

log = logging.getLogger(__name__)
HISTORY_ENV = "EMFIX_HISTORY"
FIRST_BYTES = HISTORY_FIRST_BYTES  # how every entry begins (record's first key)
READ_LIMIT = 1 << 20  # doctor reads the last MB: plenty for the newest entry of each command


def history_path():
    explicit = os.environ.get(HISTORY_ENV)
    if explicit:
        return explicit
    return os.path.join(state_home(), "history.jsonl")


def record(address, command, status, **summary):
    entry = {"when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
             "database": address.key(), "command": command, "status": status}
    entry.update(summary)
    path = history_path()
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        if not appendable(path, FIRST_BYTES):  # EMFIX_HISTORY naming a database appended a line into it
            log.warning("nothing recorded in the history: %s is not emfix's history file (check %s)", path,
                        HISTORY_ENV)
            return
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, default=str) + "\n")
    except OSError as exc:  # said where the user named the place (round 61: /proc/self/x, silently); the default
        # place unwritable (a read-only home on a locked-down server) is not said at every run
        (log.warning if os.environ.get(HISTORY_ENV) else log.debug)(
            "nothing recorded in the history: cannot write %s: %s", path, exc.strerror or exc)


def latest(address):
    """{command: newest entry} for this database."""
    path, key, found = history_path(), address.key(), {}
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - READ_LIMIT))
            lines = handle.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return found
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a partial first line after the seek, or a line cut by a crash
        if isinstance(entry, dict) and entry.get("database") == key:
            found[entry.get("command")] = entry
    return found
