"""migrate's journal in DST (`_emfix_migration`): one row per experiment copied from a SRC.

A row's state says how far its copy got, and what its verify found:

- running: batches are being copied (position: the last key per table); --resume continues there;
- done: every row copied and the verify found SRC and DST alike;
- differs: every row copied, but the verify found DST unlike SRC; --resume verifies again;
- unverified: every row copied, the verify skipped (--no-verify); --resume verifies it.

A copy killed between its last batch and its verify stays `running`: --resume copies nothing more
and verifies.
"""

import contextlib
import json
import os
import sqlite3

from .backends import open_database
from .backends.base import server_lock
from .errors import ConnectError, DatabaseLockedError, EmfixError
from .fileutil import read_only_uri
from .journal import IMPORT_JOURNAL, damaged, decode_fields, is_table_numbers, position_problem, position_values
from .progress import utc_now
from .retry import RetryPolicy

JOURNAL = "_emfix_migration"
RUNNING, DONE, DIFFERS, UNVERIFIED = "running", "done", "differs", "unverified"
STATES = (RUNNING, DONE, DIFFERS, UNVERIFIED)


def journal_key(src, experiment_id):
    """SRC by its identity (real path, or host:port/database), so `./a.db` and `a.db` resume the same copy."""
    return "%s#%d" % (src.key(), experiment_id)


def ensure_journal(db):
    """The journal table, with `reserved` (SRC's highest id per table whose moved range DST reserved: what a
    resumed copy compares SRC's ids with) added to one an older emfix made."""
    text = "VARCHAR(700)" if db.dialect == "mysql" else "TEXT"
    db.execute("CREATE TABLE IF NOT EXISTS %s (run_key %s PRIMARY KEY, state VARCHAR(20), offsets TEXT, position "
               "TEXT, copied TEXT, started_at VARCHAR(40), finished_at VARCHAR(40), reserved TEXT)" % (
                   db.quote(JOURNAL), text))
    if not _has_reserved(db):
        db.execute("ALTER TABLE %s ADD COLUMN reserved TEXT" % db.quote(JOURNAL))


def _has_reserved(db):
    return "reserved" in {c.lower() for c in db.columns(JOURNAL)}


def read_journal(db, key):
    """The journal row of `key` as a dict (state, offsets, position, copied, reserved: None when an older emfix
    began the copy), or None."""
    reserved = "reserved" if _has_reserved(db) else "NULL"
    rows = db.query("SELECT state, offsets, position, copied, %s FROM %s WHERE run_key = ?" % (
        reserved, db.quote(JOURNAL)), (key,))
    if not rows:
        return None
    state, offsets, position, copied, reserved = rows[0]
    try:
        journal = dict(decode_fields((offsets, position, copied), ("offsets", "position", "copied")), state=state)
        journal["position"] = position_values(journal["position"])
        journal["reserved"] = None if reserved is None else json.loads(reserved)
        wrong = ("its state is not one of %s" % ", ".join(STATES) if state not in STATES else
                 "offsets, copied or reserved is not a table -> number object" if not (
                     is_table_numbers(journal["offsets"]) and is_table_numbers(journal["copied"]) and (
                         reserved is None or is_table_numbers(journal["reserved"]))) else
                 position_problem(journal["position"]))
    except (TypeError, ValueError) as exc:
        wrong = "not JSON (%s)" % exc
    if wrong:
        raise damaged("migration", db.address.display(), JOURNAL, key, wrong,
                      "what it copied stays in DST; to start again, remove it there (or restore the snapshot taken "
                      "first), delete that journal row, and run without --resume")
    return journal


def find_journal(db, src, experiment_id):
    """(key, journal row or None) of this experiment's copy from SRC; emfix before 0.3 keyed it by SRC's name."""
    key = journal_key(src, experiment_id)
    journal = read_journal(db, key)
    if journal is None:
        legacy = "%s#%d" % (src.display(), experiment_id)
        found = read_journal(db, legacy)
        if found is not None:
            return legacy, found
    return key, journal


def journal_states(src, dst, experiment_ids, retry_policy=None):
    """{experiment id: journal state} for those of SRC's experiments whose copy DST has begun or finished."""
    if dst.is_sqlite and not os.path.exists(dst.path):
        return {}
    try:
        opened = open_database(dst, readonly=dst.is_sqlite, retry_policy=retry_policy)
    except ConnectError as exc:
        if getattr(exc, "missing_database", False):  # a MySQL database --init will create: nothing begun there
            return {}
        raise
    with opened as db:
        if JOURNAL not in db.tables():
            return {}
        states = {}
        for experiment_id in experiment_ids:
            journal = find_journal(db, src, experiment_id)[1]
            if journal is not None:
                states[experiment_id] = journal["state"]
        return states


@contextlib.contextmanager
def copying_alone(db, key, what):
    """A MySQL DST: the copy of `key` holds a named lock for its whole run, so the same copy begun again meanwhile (a
    second --resume, the same command twice) is refused at once (an outside tester: two resumes of one copy, and the
    loser's hint, --force, then copied the experiment twice). A SQLite DST: its journal row, read again under the
    write lock where the ids are chosen, keeps fresh starts apart."""
    with server_lock(db, "copy", "%s:%s" % (db.address.database, key), 0) as held:
        if held is False:
            raise DatabaseLockedError("another migrate of %s into %s is running now; this one copied nothing" % (
                what, db.address.display()), hint="let it finish (stopped, the same command with --resume finishes it)")
        yield


def held_by_other_copies(db, key):
    """{table: the highest id} that copies into this database other than `key`'s, still running (or killed and not
    resumed), reserved: migrates (this journal) and imports (IMPORT_JOURNAL). Their rows may not be there yet, and a
    copy that took ids among them (an outside tester: two migrates at once into one DST) put its rows under the
    other's experiment or made it fail at a duplicate key. A row of an older emfix (no `reserved`) or one not readable
    holds nothing here (its --resume says so)."""
    present, held = db.tables(), {}
    for journal in (JOURNAL, IMPORT_JOURNAL):
        if journal not in present or "reserved" not in {c.lower() for c in db.columns(journal)}:
            continue
        for offsets, reserved in db.query("SELECT offsets, reserved FROM %s WHERE state = ? AND run_key <> ? AND "
                                          "reserved IS NOT NULL" % db.quote(journal), (RUNNING, key)):
            try:
                offsets, reserved = json.loads(offsets), json.loads(reserved)
            except (TypeError, ValueError):
                continue
            if not (is_table_numbers(offsets) and is_table_numbers(reserved)):
                continue
            for table, high in reserved.items():
                held[table] = max(held.get(table, 0), int(high) + int(offsets.get(table, 0)))
    return held


def new_journal_row(db, key, offsets, reserved, started_at):
    """The journal row of a copy that begins: running, the id offsets, what DST reserved (see ensure_journal)."""
    db.execute("DELETE FROM %s WHERE run_key = ?" % db.quote(JOURNAL), (key,))
    db.execute("INSERT INTO %s (run_key, state, offsets, position, copied, started_at, finished_at, reserved) "
               "VALUES (?, ?, ?, '{}', '{}', ?, NULL, ?)" % db.quote(JOURNAL),
               (key, RUNNING, json.dumps(offsets), started_at, json.dumps(reserved)))


def set_reserved(db, key, offsets, reserved):
    """A resumed copy moved on what DST reserved (SRC gained rows): the offsets and reserved tops it holds now."""
    db.execute("UPDATE %s SET offsets = ?, reserved = ? WHERE run_key = ?" % db.quote(JOURNAL),
               (json.dumps(offsets), json.dumps(reserved), key))


def set_state(db, key, state, finished_at):
    with db.transaction():
        db.execute("UPDATE %s SET state = ?, finished_at = ? WHERE run_key = ?" % db.quote(JOURNAL),
                   (state, finished_at, key))


# -- copies within one database (`migrate-experiment -d DB -s ID [-t ID]`) -----------------------------
# The rows travel by export and import (whose own journal resumes them); this row, in the same table,
# records the finished copy by its scope (which experiment, into which), so that a second copy of
# the same scope is refused without --force even when the source experiment changed in between.

def within_key(address, source_id, into):
    return "within:%s#%d>%s" % (address.key(), source_id, "new" if into is None else "%d" % into)


def find_copy_within(address, source_id, into, retry_policy=None):
    """The finished copy of experiment SOURCE_ID within ADDRESS (into experiment INTO, or as a new one):
    {"experiment_id": the experiment it went into, "copied": rows per table}, or None."""
    with open_database(address, readonly=address.is_sqlite, retry_policy=retry_policy) as db:
        if JOURNAL not in db.tables():
            return None
        journal = read_journal(db, within_key(address, source_id, into))
    if journal is None or journal["state"] != DONE:
        return None
    return {"experiment_id": journal["offsets"].get("EXPERIMENT", 0) + source_id, "copied": journal["copied"]}


def record_copy_within(address, source_id, into, experiment_id, copied, retry_policy=None):
    key, finished_at = within_key(address, source_id, into), utc_now()
    with open_database(address, retry_policy=retry_policy) as db:
        ensure_journal(db)
        with db.transaction():
            db.execute("DELETE FROM %s WHERE run_key = ?" % db.quote(JOURNAL), (key,))
            db.execute("INSERT INTO %s (run_key, state, offsets, position, copied, started_at, finished_at) "
                       "VALUES (?, ?, ?, '{}', ?, ?, ?)" % db.quote(JOURNAL),
                       (key, DONE, json.dumps({"EXPERIMENT": experiment_id - source_id}), json.dumps(copied),
                        finished_at, finished_at))


def moved_on(db, key, copied):
    """Journal row `key` counts more rows of some table than a run's own `copied`: another run of the same copy
    committed under it meanwhile. Not merely other counts: an in-engine copy counts the batches of a group it has not
    committed yet, and a key an application's table already held in DST (its own ids, which no offset moves) rolled
    that group back, which was then told "another migrate went on with this copy" (round 50). False when it cannot
    be read."""
    try:
        journal = read_journal(db, key)
    except EmfixError:
        return False
    if journal is None or not isinstance(journal.get("copied"), dict):
        return False
    return any(_count(n) > _count(copied.get(table)) for table, n in journal["copied"].items())


def _count(value):
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def take_back_row(target, dst, key, only_empty=False):
    """Delete journal row `key` (a run's own, written before anything was copied under it); 0 when DST fails
    too (the answer is the one on its way). `only_empty` (the run was stopped at once): only if no page
    committed under it, and on a connection of its own to `dst`, as `target`'s may have been stopped inside a
    statement (a BEGIN there would commit what it held)."""
    empty = " AND position = '{}' AND copied = '{}'" if only_empty else ""
    try:
        with open_database(dst, retry_policy=RetryPolicy(deadline=2.0)) if only_empty else \
                contextlib.nullcontext(target) as db, db.transaction():
            return db.execute("DELETE FROM %s WHERE run_key = ?%s" % (db.quote(JOURNAL), empty), (key,))
    except Exception:  # noqa: BLE001 - DST failing too
        return 0


def holds_nothing(path, but_schema=False):
    """The SQLite file at `path` holds no table (or, `but_schema`, no row but in the journal and SCHEMA_VERSION):
    a DST file a refused or failed migrate made, which it may remove again."""
    try:
        con = sqlite3.connect(read_only_uri(path), uri=True)
        try:
            tables = [t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            if not but_schema:
                return not tables
            return not any(con.execute('SELECT 1 FROM "%s" LIMIT 1' % t.replace('"', '""')).fetchone()
                           for t in tables if t not in (JOURNAL, "SCHEMA_VERSION") and not t.startswith("sqlite_"))
        finally:
            con.close()
    except sqlite3.Error:
        return False
