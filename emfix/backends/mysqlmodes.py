"""The sql_mode of emfix's MySQL sessions: strict where it writes, not where it only builds scratch tables."""

# A server whose sql_mode is not strict cuts a value too long for its column, or a number out of range, with a
# warning only: a repair or a copy must fail instead. Added where neither strict mode is on; the rest is kept,
# but NO_BACKSLASH_ESCAPES: emfix's text (a copy's pages, a snapshot's rows) and the driver's escaping of bound
# values write a backslash as two (with the mode, a copy stored both). NO_AUTO_VALUE_ON_ZERO too: a row with id 0
# that a copy, an import or an undo writes keeps id 0 (without it the server gives the row a new id, and its
# children point at 0).
_KEPT_MODES = "TRIM(BOTH ',' FROM REPLACE(CONCAT(',', @@sql_mode, ','), ',NO_BACKSLASH_ESCAPES,', ','))"
STRICT_SESSION = ("SET SESSION sql_mode = CONCAT_WS(',', NULLIF(%s, ''), IF(FIND_IN_SET('STRICT_TRANS_TABLES', "
                  "@@sql_mode) OR FIND_IN_SET('STRICT_ALL_TABLES', @@sql_mode), NULL, 'STRICT_ALL_TABLES'), "
                  "IF(FIND_IN_SET('NO_AUTO_VALUE_ON_ZERO', @@sql_mode), NULL, 'NO_AUTO_VALUE_ON_ZERO'))" % _KEPT_MODES)

# A scratch table's rows come from a SELECT, whose column types it takes: nothing to cut. Strict mode would only turn
# the warnings of a comparison (text with a number) into an error.
LENIENT_MODES = "REPLACE(REPLACE(@@SESSION.sql_mode, 'STRICT_ALL_TABLES', ''), 'STRICT_TRANS_TABLES', '')"
