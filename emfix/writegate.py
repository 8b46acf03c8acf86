"""The gate every command that writes passes first, before it takes a snapshot or opens a quarantine.

A change made on a MySQL replica breaks replication: the primary's next change to the same rows
stops the replica's SQL thread (1032 "Can't find record"). Root on a read_only replica is not
stopped by the server, so emfix stops itself: a server that is read_only / super_read_only or has a
replication source configured is refused unless --force; a server that refuses this user's writes
anyway (1290) is refused whatever the flags say, before anything was taken or opened.
"""

import dataclasses
import logging
import os
import shlex
import stat

from .backends import open_database
from .backends.sqlite import refuse_what_is_no_file
from .errors import ConnectError, DamagedInputError, ReadOnlyServerError, ReplicaError, UsageError
from .outputguard import emfix_file_kind
from .snapshot.restoremark import describe as describe_restore
from .snapshot.restoremark import unfinished_restore

log = logging.getLogger(__name__)


def refuse_if_replica(db, force):
    """Raise unless the server behind `db` is the one to write to, and its database is not one a restore left
    partly restored (unless `force`); return its ReplicationRole (None on SQLite, which has no replicas).

    ReadOnlyServerError (exit 3) when the server refuses this user's writes, with or without `force`;
    ReplicaError (exit 2) when it is a replica and `force` is false. With `force`, writing to a
    replica goes ahead with a warning."""
    return _judge(db, force, db.address)


def _judge(db, force, address, restoring=False, can_force=True):
    if not hasattr(db, "replication_role"):
        return None
    role = db.replication_role()
    where = "%s:%s" % (address.host, address.port)
    if role.writable is False:
        raise ReadOnlyServerError("this server is read-only: run it on the primary (MySQL %s: %s; user %r may not "
                                  "write past read_only)" % (where, role.describe(), address.user),
                                  hint=_primary_hint(address, role, force_helps=False))
    if role.is_replica and not force:
        raise ReplicaError("MySQL %s is %s: a change made here breaks replication (the primary's next change to "
                           "the same rows stops the replica); nothing was changed" % (where, role.describe()),
                           hint=_primary_hint(address, role, force_helps=True))
    if role.is_replica:
        log.warning("writing to MySQL %s, %s, as --force asks: replication from its primary may stop", where,
                    role.describe())
    if db.address.database and not restoring:
        _refuse_unfinished_restore(db, force, address, can_force)
    return role


def _refuse_unfinished_restore(db, force, address, can_force):
    unfinished = unfinished_restore(db)
    if unfinished is None:
        return
    message, hint = describe_restore(unfinished, address.target())
    if not force:
        raise DamagedInputError(message + "; nothing was changed", hint=hint + (
            "; or add --force to change it as it is" if can_force else ""))
    if address.key() not in _warned:  # once, though the command's gate and the library's preflight both ask
        _warned.add(address.key())
        log.warning("%s; going ahead as --force asks", message)


_warned = set()


def check_before_writing(address, force, retry_policy=None, restoring=False, can_force=True):
    """refuse_if_replica on a connection of its own: what a command calls before the library opens the
    database to change it. A database that does not exist yet (init, migrate --init) is judged by its
    server. A SQLite file that is emfix's own (a snapshot, a quarantine file) is refused, --force or not.
    A MySQL database a restore left partly restored (snapshot/restoremark.py) is refused unless --force
    (`can_force`: the command has one to offer); a restore (`restoring`) goes ahead, as it finishes it."""
    if address.is_sqlite:
        refuse_what_is_no_file(address.path)  # before a byte of it is read (a FIFO: round 33)
        refuse_own_file(address, retry_policy)
        return None
    try:
        db = open_database(address, retry_policy=retry_policy)
    except ConnectError as exc:
        if not getattr(exc, "missing_database", False):
            raise
        db = open_database(dataclasses.replace(address, database=None), retry_policy=retry_policy)
    with db:
        return _judge(db, force, address, restoring, can_force)


def refuse_own_file(address, retry_policy=None):
    """A SQLite file that is emfix's own (a snapshot, a quarantine file) is never a database to change,
    whatever --force says (found by an outside tester: migrate wrote into a snapshot, which then failed
    its verify). A locked file is waited for up to the policy's --lock-timeout."""
    wait = retry_policy.deadline if retry_policy is not None else 5.0
    kind = emfix_file_kind(address.path, wait) if address.is_sqlite else None
    if kind is not None:
        raise UsageError("refusing to write into %s: it is %s emfix keeps, not a database to change; nothing was "
                         "changed" % (address.path, kind),
                         hint="name the database itself (`emfix snapshot restore` puts a snapshot back, `emfix undo` "
                              "a quarantine)")
    links = _links(address.path) if address.is_sqlite else 1
    if links > 1:  # a hard link to a snapshot looks like any database; a write here changes every name of it
        raise UsageError("refusing to write into %s: the file has %d other name%s (hard links), which a change here "
                         "would change too (one may be an emfix snapshot); nothing was changed" % (
                             address.path, links - 1, "" if links == 2 else "s"),
                         hint="give the database a file of its own first: cp %s %s.own && mv %s.own %s" % (
                             (shlex.quote(address.path),) * 4))


def _links(path):
    try:
        found = os.stat(path)
    except OSError:  # not there yet (init, migrate --init): no other name
        return 1
    # A directory's links are its entries (round 20: "1 other name (hard links)" for a directory): the opening
    # says what it is.
    return found.st_nlink if stat.S_ISREG(found.st_mode) else 1


def _primary_hint(address, role, force_helps):
    primary = role.primary_address(address)
    if primary is not None:
        text = "run it on the primary: %s" % primary.target()
    else:
        text = "run it on the primary (`emfix doctor` on this server shows what it knows of it)"
    if force_helps:
        text += "; --force writes here anyway (only for a replica taken out of replication)"
    return text
