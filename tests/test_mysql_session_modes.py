"""emfix's MySQL sessions keep the server's sql_mode but for the modes that change what emfix's SQL means or what a
value becomes (an outside tester, round 42: under EMPTY_STRING_IS_NULL an import stored '' as NULL with exit 0;
under ANSI_QUOTES a snapshot was a syntax error, exit 70)."""

import mysql.connector
import pytest

from emfix.backends import open_database
from emfix.backends.mysqlmodes import lenient_modes, session_modes, set_session_modes


@pytest.mark.parametrize("server, strict, expected", [
    ("STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION", True,
     "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION,NO_AUTO_VALUE_ON_ZERO"),
    ("", True, "STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO"),
    ("", False, ""),
    ("EMPTY_STRING_IS_NULL,ANSI_QUOTES,TIME_ROUND_FRACTIONAL,NO_ZERO_DATE", False, ""),
    ("STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,TRADITIONAL", True,
     "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_VALUE_ON_ZERO"),
    ("PIPES_AS_CONCAT,ANSI_QUOTES,IGNORE_SPACE,ORACLE,NO_KEY_OPTIONS,NO_TABLE_OPTIONS,NO_FIELD_OPTIONS,"
     "NO_AUTO_CREATE_USER,SIMULTANEOUS_ASSIGNMENT", True,
     "NO_AUTO_CREATE_USER,STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO"),
    ("no_backslash_escapes,only_full_group_by,pad_char_to_full_length", True,
     "STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO"),
])
def test_the_modes_that_change_emfix_sql_are_dropped_and_writers_are_strict(server, strict, expected):
    assert session_modes(server, strict) == expected


def emfix_session_begun_under(address, modes):
    """A driver connection whose session the server began under `modes`, made an emfix writer's
    (set_session_modes): its cursor, then closed."""
    conn = mysql.connector.connect(host=address.host, port=address.port, user=address.user,
                                   password=address.password or "", database=address.database, autocommit=True)
    try:
        cursor = conn.cursor()
        cursor.execute("SET SESSION sql_mode = '%s'" % modes)
        set_session_modes(conn, strict=True)
        yield cursor
    finally:
        conn.close()


@pytest.mark.mysql
def test_a_session_begun_under_altering_modes_stores_empty_text_and_reads_emfix_sql(mysql_address):
    for cursor in emfix_session_begun_under(mysql_address, "EMPTY_STRING_IS_NULL,ANSI_QUOTES,PIPES_AS_CONCAT"):
        cursor.execute("CREATE TABLE t (s VARCHAR(5) NOT NULL)")
        cursor.execute("INSERT INTO t VALUES ('')")
        cursor.execute("SELECT s IS NULL, s = '', CONCAT(\"a\", '\\0') = 'a\\0', 1 || 0 FROM t")
        assert cursor.fetchall() == [(0, 1, 1, 1)]  # ('' kept; "a" a string; || an OR)
        with pytest.raises(mysql.connector.errors.DataError):
            cursor.execute("INSERT INTO t VALUES ('toolong')")  # (strict)



@pytest.mark.parametrize("modes, lenient", [
    ("STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION,NO_AUTO_VALUE_ON_ZERO",
     "NO_ENGINE_SUBSTITUTION,NO_AUTO_VALUE_ON_ZERO"),
    ("STRICT_TRANS_TABLES,STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,TRADITIONAL,"
     "NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION", "NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,"
     "NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION"),
])
def test_a_scratch_tables_modes_are_not_strict(modes, lenient):
    assert lenient_modes(modes) == lenient


@pytest.mark.mysql
def test_a_scratch_table_compares_text_with_a_number_under_traditional(mysql_address):
    """Round 43: under TRADITIONAL (which names strict mode again) a scratch table's comparison of DST's '5abc' with
    a number was an error: migrate copied everything, then stopped, exit 4."""
    with open_database(mysql_address) as db:
        db.execute("SET SESSION sql_mode = 'TRADITIONAL'")  # (as a session the server began so)
        db.session_modes = str(db.scalar("SELECT @@SESSION.sql_mode"))
        db.execute("CREATE TABLE t (link VARCHAR(10))")
        with db.transaction():
            db.execute("INSERT INTO t VALUES ('5abc'), ('6')")
        db.create_temp_table("emfix_k", "SELECT link FROM t WHERE link IN (SELECT 5)")
        assert db.query("SELECT link FROM emfix_k") == [("5abc",)]
        assert "STRICT_TRANS_TABLES" in str(db.scalar("SELECT @@SESSION.sql_mode"))  # (as it was, after)


@pytest.mark.mysql
def test_a_session_begun_under_traditional_keeps_zero_dates_and_truncates_fractions(mysql_address):
    """Round 44: under TRADITIONAL an undo put '2025-00-00' back as 0000-00-00 (exit 0); under TIME_ROUND_FRACTIONAL
    2025-12-31 23:59:59.7 went into the next year. An emfix session stores what it is given, or refuses."""
    for cursor in emfix_session_begun_under(mysql_address, "TRADITIONAL,TIME_ROUND_FRACTIONAL"):
        cursor.execute("CREATE TABLE t (d DATETIME)")
        cursor.execute("INSERT INTO t VALUES ('2025-00-00 00:00:00'), ('2025-12-31 23:59:59.7')")
        cursor.execute("SELECT CAST(d AS CHAR) FROM t")
        assert cursor.fetchall() == [("2025-00-00 00:00:00",), ("2025-12-31 23:59:59",)]
        with pytest.raises(mysql.connector.errors.DataError):
            cursor.execute("INSERT INTO t VALUES ('2025-02-30 00:00:00')")  # (strict still)
