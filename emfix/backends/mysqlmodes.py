"""The sql_mode of emfix's MySQL sessions: the server's, without the modes that change what emfix's SQL means; strict
where it writes; not strict where it only builds scratch tables."""

import re

# The server's sql_mode is kept for emfix's sessions but for the modes that change how emfix's SQL text is read or
# what a value becomes (an outside tester, round 42: EMPTY_STRING_IS_NULL stored '' as NULL with exit 0; ANSI_QUOTES
# made a snapshot's '\0' text a syntax error, exit 70). NO_BACKSLASH_ESCAPES: emfix's text (a copy's pages, a
# snapshot's rows) and the driver's escaping of bound values write a backslash as two (with the mode, a copy stored
# both). NO_*_OPTIONS leave the table options out of SHOW CREATE TABLE, which a snapshot keeps. ONLY_FULL_GROUP_BY
# changes no value, but refuses queries MariaDB's default takes. The combinations (ORACLE, ANSI...) name them.
# TIME_ROUND_FRACTIONAL rounds a fraction a column cannot hold, 2025-12-31 23:59:59.7 into the next year (round 44);
# NO_ZERO_DATE and NO_ZERO_IN_DATE refuse, or under IGNORE change, the zero dates a database already holds, which
# an undo or a repair puts back or compares as they were (round 44: '2025-00-00' came back as 0000-00-00, exit 0);
# TRADITIONAL names them again (its strict parts stay: the server lists each of them too).
ALTERING_MODES = frozenset((
    "ANSI_QUOTES", "PIPES_AS_CONCAT", "NO_BACKSLASH_ESCAPES", "EMPTY_STRING_IS_NULL", "IGNORE_SPACE",
    "HIGH_NOT_PRECEDENCE", "REAL_AS_FLOAT", "PAD_CHAR_TO_FULL_LENGTH", "SIMULTANEOUS_ASSIGNMENT",
    "NO_UNSIGNED_SUBTRACTION", "NO_KEY_OPTIONS", "NO_TABLE_OPTIONS", "NO_FIELD_OPTIONS", "ONLY_FULL_GROUP_BY",
    "TIME_ROUND_FRACTIONAL", "NO_ZERO_DATE", "NO_ZERO_IN_DATE", "TRADITIONAL",
    "ORACLE", "ANSI", "MSSQL", "DB2", "POSTGRESQL", "MAXDB", "MYSQL323", "MYSQL40"))


def session_modes(server_modes, strict):
    """The sql_mode of an emfix session on a server whose session starts with `server_modes`: those that change
    nothing emfix relies on kept. `strict` (a session that writes): a server whose mode is not strict cuts a value
    too long for its column, or a number out of range, with a warning only, and a repair or a copy must fail
    instead: STRICT_ALL_TABLES added where neither strict mode is on. NO_AUTO_VALUE_ON_ZERO too: a row with id 0
    that a copy, an import or an undo writes keeps id 0 (without it the server gives the row a new id, and its
    children point at 0)."""
    modes = [m for m in str(server_modes or "").upper().split(",") if re.match(r"[A-Z0-9_]+\Z", m) and
             m not in ALTERING_MODES]
    if strict and "STRICT_TRANS_TABLES" not in modes and "STRICT_ALL_TABLES" not in modes:
        modes.append("STRICT_ALL_TABLES")
    if strict and "NO_AUTO_VALUE_ON_ZERO" not in modes:
        modes.append("NO_AUTO_VALUE_ON_ZERO")
    return ",".join(modes)

def set_session_modes(conn, strict):
    """Set the session_modes of a new driver connection `conn`; return them."""
    cursor = conn.cursor()
    cursor.execute("SELECT @@SESSION.sql_mode")
    modes = cursor.fetchone()[0]
    cursor.close()
    modes = session_modes(modes.decode("utf-8") if isinstance(modes, (bytes, bytearray)) else modes, strict)
    conn.cmd_query("SET SESSION sql_mode = '%s'" % modes)
    return modes


def lenient_modes(modes):
    """`modes` without strict mode, for a scratch table: its rows come from a SELECT, whose column types it takes
    (nothing to cut), and strict mode would only turn the warnings of a comparison (text with a number) into an
    error. TRADITIONAL too, which names strict mode again (an outside tester, round 43: under it a migrate copied
    everything, then stopped at DST's '5abc', exit 4)."""
    return ",".join(m for m in modes.split(",") if m not in ("STRICT_ALL_TABLES", "STRICT_TRANS_TABLES", "TRADITIONAL"))
