"""migrate's journal in DST (`_emfix_migration`): one row per experiment copied from a SRC.

A row's state says how far its copy got, and what its verify found:

- running: batches are being copied (position: the last key per table); --resume continues there;
- done: every row copied and the verify found SRC and DST alike;
- differs: every row copied, but the verify found DST unlike SRC; --resume verifies again;
- unverified: every row copied, the verify skipped (--no-verify); --resume verifies it.

A copy killed between its last batch and its verify stays `running`: --resume copies nothing more
and verifies.
"""

import json
import os

from .backends import open_database

JOURNAL = "_emfix_migration"
RUNNING, DONE, DIFFERS, UNVERIFIED = "running", "done", "differs", "unverified"
STATES = (RUNNING, DONE, DIFFERS, UNVERIFIED)


def journal_key(src, experiment_id):
    """SRC by its identity (real path, or host:port/database), so `./a.db` and `a.db` resume the same copy."""
    return "%s#%d" % (src.key(), experiment_id)


def ensure_journal(db):
    text = "VARCHAR(700)" if db.dialect == "mysql" else "TEXT"
    db.execute("CREATE TABLE IF NOT EXISTS %s (run_key %s PRIMARY KEY, state VARCHAR(20), offsets TEXT, position "
               "TEXT, copied TEXT, started_at VARCHAR(40), finished_at VARCHAR(40))" % (db.quote(JOURNAL), text))


def read_journal(db, key):
    rows = db.query("SELECT state, offsets, position, copied FROM %s WHERE run_key = ?" % db.quote(JOURNAL), (key,))
    if not rows:
        return None
    state, offsets, position, copied = rows[0]
    return {"state": state, "offsets": json.loads(offsets), "position": json.loads(position),
            "copied": json.loads(copied)}


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
    with open_database(dst, readonly=dst.is_sqlite, retry_policy=retry_policy) as db:
        if JOURNAL not in db.tables():
            return {}
        states = {}
        for experiment_id in experiment_ids:
            journal = find_journal(db, src, experiment_id)[1]
            if journal is not None:
                states[experiment_id] = journal["state"]
        return states


def set_state(db, key, state, finished_at):
    with db.transaction():
        db.execute("UPDATE %s SET state = ?, finished_at = ? WHERE run_key = ?" % db.quote(JOURNAL),
                   (state, finished_at, key))
