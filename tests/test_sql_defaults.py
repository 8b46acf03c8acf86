"""A column's default read from either engine's catalog, written as DDL for either engine, and read back: the same
default (schema diff compares and writes them: sqldefault.py)."""

import decimal
import sqlite3

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from emfix.backends import open_database
from emfix.sqldefault import default_sql, normal_default, same_default

TEXTS = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
# MariaDB keeps a default in utf8mb3 (its table definition): a 4-byte character is reported as '?'
THREE_BYTE_TEXTS = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00",
                                         max_codepoint=0xFFFF), max_size=12)


def through_sqlite(value):
    """What SQLite's catalog reports of a column made with default `value` (the one form)."""
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE t (c TEXT DEFAULT %s)" % default_sql(value, "sqlite"))
    return con.execute("SELECT dflt_value FROM pragma_table_info('t')").fetchone()[0]


@settings(max_examples=300, deadline=None)
@given(TEXTS)
@example("it's")
@example("x\\y")
@example("5")
@example("05")
@example("0")
@example("-0")
@example("NULL")
def test_a_text_default_comes_back_from_sqlite_as_it_went(text):
    value = normal_default("'%s'" % text.replace("'", "''"), "sqlite")
    assert normal_default(through_sqlite(value), "sqlite") == value
    quoted = "'%s'" % text.replace("'", "''")
    assert value == quoted or (value == text and float(text) == float(value))  # (a number as its digits: '5', not '05')


@pytest.fixture
def mysql_db(mysql_address):
    """A database on the test server where each example makes its table."""
    with open_database(mysql_address) as db:
        yield db


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(THREE_BYTE_TEXTS)
@example("it's")
@example("x\\y")
@example("a\\%b_\\_")
@example("tab\there\nline")
@example(" ON UPDATE ")
@example("x ON UPDATE now()")
def test_a_text_default_comes_back_from_mariadb_as_it_went(mysql_db, text):
    value = normal_default("'%s'" % text.replace("'", "''"), "sqlite")
    mysql_db.execute("DROP TABLE IF EXISTS t")
    mysql_db.execute("CREATE TABLE t (c VARCHAR(40) DEFAULT %s)" % default_sql(value, "mysql"))
    reported = mysql_db.scalar("SELECT COLUMN_DEFAULT FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
                               "AND TABLE_NAME = 't' AND COLUMN_NAME = 'c'")
    assert normal_default(reported, "mysql") == value


@pytest.mark.parametrize("a, a_dialect, b, b_dialect, same", [
    ("current_timestamp(6)", "mysql", "CURRENT_TIMESTAMP", "sqlite", True),  # (SQLite has no fraction digits)
    ("current_timestamp(6)", "mysql", "current_timestamp()", "mysql", False),
    ("current_timestamp()", "mysql", "CURRENT_TIMESTAMP", "sqlite", True),
    ("b'101'", "mysql", "5", "sqlite", True),
    ("'5'", "sqlite", "5", "mysql", True),
    ("'05'", "sqlite", "5", "mysql", False),
    ("1.50", "mysql", "+1.5", "sqlite", True),
    ("TRUE", "sqlite", "1", "mysql", True),
    ("'NULL'", "sqlite", "NULL", "mysql", False),  # the text NULL, and no default
    ("'x\\\\y'", "mysql", "'x\\y'", "sqlite", True),
    ("X'0a01'", "sqlite", "x'0A01'", "sqlite", True),
    ("(datetime('now'))", "sqlite", "datetime('now')", "sqlite", True),
    ("\"dq\"", "sqlite", "'dq'", "mysql", True),
    ("'a ON UPDATE CURRENT_TIMESTAMP'", "mysql", "'a ON UPDATE CURRENT_TIMESTAMP'", "sqlite", True),  # text, no clause
    ("'a' ON UPDATE current_timestamp()", "mysql", "'a'", "sqlite", True),
    ("(1 + 2)", "mysql", "(1+2)", "sqlite", True),  # (round 41: an expression both engines compute alike)
    ("(2 * 3 - 1.5)", "mysql", "((2 * 3) - 1.5)", "sqlite", True),
    ("(1 + 2)", "mysql", "4", "sqlite", False),
    ("(7 / 2)", "mysql", "(7/2)", "sqlite", False),  # (3.5 to MySQL, 3 to SQLite)
    ("0x10", "sqlite", "16", "mysql", True),  # (round 43: SQLite's hex integer, not bytes)
    ("0xffffffffffffffff", "sqlite", "-1", "mysql", True),  # (64 bits, two's complement)
])
def test_defaults_compare_by_the_value_they_set(a, a_dialect, b, b_dialect, same):
    assert same_default(a, a_dialect, b, b_dialect) is same


@pytest.mark.parametrize("expression", ["1+2", "(2 * 3) - 1.5", "-(4)", "0.1 * 3", "((1))"])
def test_an_arithmetic_default_is_the_number_mariadb_sets(mysql_db, expression):
    """MariaDB reports (1+2) as (1 + 2) and drops parentheses; SQLite keeps the text as written: both read as the
    number the row gets (round 41: the diff left the default out of SQLite's DDL and never settled)."""
    mysql_db.execute("DROP TABLE IF EXISTS t")
    mysql_db.execute("CREATE TABLE t (id INT, c DECIMAL(10, 4) DEFAULT (%s))" % expression)
    mysql_db.execute("INSERT INTO t (id) VALUES (1)")
    reported = mysql_db.scalar("SELECT COLUMN_DEFAULT FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
                               "AND TABLE_NAME = 't' AND COLUMN_NAME = 'c'")
    value = normal_default(reported, "mysql")
    assert value == normal_default("(%s)" % expression, "sqlite")
    assert decimal.Decimal(value) == mysql_db.scalar("SELECT c FROM t")  # (the number the row got)
