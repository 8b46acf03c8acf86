"""MySQL's errors as emfix's own: each with its exit code (errors.py) and a hint of what to do."""

import re

from ..errors import (
    ConflictError,
    ConnectError,
    DamagedInputError,
    NotFoundError,
    PrivilegeError,
    SchemaError,
    StillReferencedError,
    TooManyConnectionsError,
)
from .replication import translate_server_error

ACCESS_DENIED = 1045
SOCKET_ONLY_ACCOUNT = 1698  # MariaDB: the account signs in by its unix socket (root@localhost), not a password
UNKNOWN_DATABASE = 1049
REFUSED_VALUE_ERRNOS = (3140, 4025)  # MySQL: invalid JSON text; MariaDB: CHECK (json_valid) failed
INCORRECT_STRING = 1366  # bytes that are not UTF-8 into a utf8mb4 column
VALUE_NOT_TAKEN = (1265, 1292)  # "Data truncated" ('0x10' into an INT), "Incorrect datetime value" ('x'): round 33
TABLE_DEF_CHANGED = 1412  # a consistent read of a table TRUNCATEd or ALTERed since it began
NO_SUCH_TABLE = 1146
CANNOT_CREATE_TABLE = 1005  # errno 121: a constraint's name is taken; 150: a foreign key's parent
INTERRUPTED = (1317, 1969, 3024)  # KILL QUERY; MariaDB's max_statement_time; MySQL's max_execution_time
NO_DEFAULT = 1364  # a NOT NULL column without a default that the INSERT does not name
# A trigger's SIGNAL, a NULL into NOT NULL, a foreign key (with its checks on): the row refused, as SQLite's RAISE
# (round 59: a trigger's SIGNAL was exit 70)
ROW_REFUSED = (1644, 1048, 1452)
OUT_OF_RANGE = 1264  # a number past the column's type (1e39 in a FLOAT)
DATA_TOO_LONG = 1406  # a text or bytes longer than the column (a MySQL -> MySQL copy's rows: exit 70, round 29)
PRIVILEGE_ERRNOS = (1044, 1142, 1143, 1227)  # database / table / column / global privilege missing
TOO_MANY_CONNECTIONS = (1040, 1203, 1226)  # the server's max_connections; the user's max_user_connections or limits


def translate_error(a, exc, exhausted, lost, connected, quote):
    """The driver's error `exc` (of address `a`) as emfix's own, with what to do; `exc` itself where none fits.
    `lost`: the connection is gone; `connected`: the error came after connecting; `exhausted`: the retries
    that gave up (RetriesExhausted)."""
    errno = getattr(exc, "errno", None)
    msg = getattr(exc, "msg", None) or str(exc)
    if errno == ACCESS_DENIED:
        return ConnectError("access denied for MySQL user %r at %s:%s" % (a.user, a.host, a.port),
                            kind="access_denied")
    if errno == SOCKET_ONLY_ACCOUNT:  # (was exit 70: an outside tester's "bug")
        return ConnectError("access denied for MySQL user %r at %s:%s: %s" % (a.user, a.host, a.port, msg),
                            kind="access_denied_socket", hint="the server lets this account in only through its unix "
                            "socket (MariaDB's root@localhost signs in so), which emfix does not use: connect as an "
                            "account that signs in with a password over TCP")
    if errno == UNKNOWN_DATABASE:
        error = ConnectError("MySQL database %r does not exist on %s:%s" % (a.database, a.host, a.port),
                             kind="unknown_database", facts={"target": a.target(),
                                                             "database": quote(a.database)})
        error.missing_database = True
        return error
    if errno in TOO_MANY_CONNECTIONS:
        return TooManyConnectionsError(
            "MySQL %s allows user %r no more connections now: %s" % (a.display(), a.user, msg),
            kind="too_many_connections",
            hint="close other sessions of this user, or raise the server's limit (max_connections, "
                 "max_user_connections); emfix itself may need two at once (a safety snapshot beside a change)")
    if errno in PRIVILEGE_ERRNOS:
        return PrivilegeError("MySQL user %r may not do this on %s: %s" % (a.user, a.display(), msg),
                              hint=grant_hint(a, errno, msg, connected))
    cluster = translate_server_error(a, errno, msg, exhausted)  # read-only, conflicts, Galera limits
    if cluster is not None:
        return cluster
    if errno == TABLE_DEF_CHANGED:
        return ConflictError("MySQL %s: a table was emptied or altered while this read it at one moment (a restore, a "
                             "TRUNCATE or an ALTER TABLE ran meanwhile): %s" % (a.display(), msg),
                             hint="run it again once that has finished (`emfix doctor` says whether a restore is "
                                  "running)")
    if errno == NO_SUCH_TABLE:  # a table emfix read a moment ago (its catalog, a listing) is gone
        return NotFoundError("MySQL %s: a table is not there: %s" % (a.display(), msg), kind="no_such_table",
                             hint="if another program dropped or renamed it meanwhile, run this again once it is "
                                  "done; on a server that tells letter cases apart, the Experiment Manager's tables "
                                  "are spelled in capitals (EXPERIMENT, TRIAL, ...)")
    if errno == CANNOT_CREATE_TABLE:
        taken = "errno: 121" in msg
        return SchemaError("MySQL %s refused to create a table: %s" % (a.display(), msg),
                           hint="a foreign key of another table already has the name this table's would get (MariaDB "
                                "compares those names whatever their letter case: a table spelled like this one in "
                                "other letters, e.g. `trial` beside TRIAL, has them): rename that table, then run "
                                "this again; the tables made before it stay" if taken else
                                "a foreign key's parent table is missing or its column differs; the tables made "
                                "before it stay")
    if errno in INTERRUPTED:
        return ConnectError("MySQL %s interrupted a statement of emfix: %s" % (a.display(), msg),
                            kind="statement_interrupted",
                            hint="another session stopped it (KILL QUERY), or the server's max_statement_time "
                                 "(MySQL: max_execution_time) did; what was not committed is rolled back: run the "
                                 "same command again (a migrate with --resume)")
    if errno == 1451:  # Cannot delete or update a parent row: a foreign key constraint fails
        return StillReferencedError("MySQL %s refused to delete a row others still reference: %s" % (
            a.display(), msg), hint="validate shows which rows reference it")
    if errno == 4025 and "per_label_val" not in msg and "json" not in msg.lower():  # another CHECK than the JSON one
        return DamagedInputError("MySQL %s refused a value: %s" % (a.display(), msg),
                                 hint="a CHECK constraint of that table refused it: correct the value where it comes "
                                      "from, or change the constraint (ALTER TABLE ... DROP CONSTRAINT ...)")
    if errno in REFUSED_VALUE_ERRNOS:
        return DamagedInputError("MySQL %s refused a value: %s" % (a.display(), msg), kind="refused_json")
    if errno in ROW_REFUSED:
        return SchemaError("MySQL %s refused a row: %s" % (a.display(), msg),
                           hint="a trigger, a NOT NULL column or a foreign key of the table written refused it: "
                                "change that, or the row where it comes from, then run the same command again (a "
                                "migrate or an import with --resume)")
    if errno == NO_DEFAULT:
        return SchemaError("MySQL %s refused a row: %s" % (a.display(), msg), kind="refused_statement",
                           hint="the table has a NOT NULL column without a default that the rows do not fill: give "
                                "it a default (ALTER TABLE ... ALTER COLUMN ... SET DEFAULT ...) or allow NULL")
    if errno == OUT_OF_RANGE:
        return DamagedInputError("MySQL %s refused a value: %s" % (a.display(), msg),
                                 hint="the value does not fit the column's type there (an INT holds at most "
                                      "2147483647, a FLOAT about 3.4e38): correct it where it comes from, or widen "
                                      "the column (ALTER TABLE ... MODIFY ... with a wider type: BIGINT, DOUBLE)")
    if errno == DATA_TOO_LONG:
        return DamagedInputError("MySQL %s refused a value: %s" % (a.display(), msg),
                                 hint="the column there is narrower than the value: widen it (ALTER TABLE ... MODIFY "
                                      "...), or shorten the value where it comes from")
    if errno == INCORRECT_STRING and "string value" in msg.lower():
        return DamagedInputError("MySQL %s refused a value: %s" % (a.display(), msg), kind="refused_text")
    if errno in VALUE_NOT_TAKEN:  # a value, not the tables: exit 4 with what to do (it was 1, "tables differ")
        return DamagedInputError("MySQL %s refused a value: %s" % (a.display(), msg),
                                 hint="the column the error names cannot take that value as it is (text that is not "
                                      "a number or a date; from SQLite, where typeof() of the column is 'text'): "
                                      "correct it where it comes from")
    if errno == INCORRECT_STRING:  # "Incorrect double value: 'abc'": text SQLite keeps in a number column
        return DamagedInputError("MySQL %s refused a value: %s" % (a.display(), msg),
                                 hint="the column the error names holds numbers there, and the value is not one: "
                                      "correct it where it comes from (in SQLite, where typeof() of the column is "
                                      "'text')")
    if exhausted is not None or lost or errno in (2002, 2003, 2005):
        tries = ""
        if exhausted is not None:
            tries = " (gave up after %d attempts in %.1fs)" % (exhausted.attempts, exhausted.elapsed)
        return ConnectError("cannot reach MySQL server at %s:%s%s: %s" % (a.host, a.port, tries, msg),
                            hint="check that the server runs and the host/port are right")
    return exc


def grant_hint(a, errno, msg, connected):
    """The GRANT an administrator gives user `a.user` for a privilege error."""
    who = "'%s'@'%%'" % a.user
    if errno == 1227:  # "you need (at least one of) the PROCESS privilege(s)"
        wanted = re.search(r"the ([A-Z ]+?) privilege", msg)
        return "as an administrator: GRANT %s ON *.* TO %s" % (wanted.group(1) if wanted else "PROCESS", who)
    if errno in (1142, 1143):  # "CREATE command denied to user ..."
        command = msg.split(" command", 1)[0].strip().upper() or "ALL"
        return "as an administrator: GRANT %s ON `%s`.* TO %s" % (command, a.database, who)
    if not connected:  # refused at connect: the database itself (or it does not exist; MySQL does not say)
        return ("the database may not exist, or the user may not use it; as an administrator: CREATE DATABASE "
                "IF NOT EXISTS `%s` CHARACTER SET utf8mb4; GRANT ALL ON `%s`.* TO %s" % (
                    a.database, a.database, who))
    # 1044 on a database the user can read: emfix's scratch tables (validate, export, cleanup)
    return ("emfix works in connection-private temporary tables; as an administrator: GRANT CREATE TEMPORARY "
            "TABLES ON `%s`.* TO %s" % (a.database, who))
