"""How values travel between emfix and MySQL exactly: the SQL literal the server writes of each column type
(snapshots, copies into MySQL, scratch tables filled without locks), and the driver's converter, which keeps
dates Python's datetime cannot hold. A part of the MySQL backend, kept apart so that each file stays readable.
"""

import functools

NUMBER_TYPES = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal", "numeric", "float",
                "double", "real", "bit", "year"}
# A FLOAT as text that gives back its bits: the server's own short text (six digits) where it reads back as the
# same float (CAST ... AS FLOAT rounds the text as an INSERT into a FLOAT column does), else its exact value as a
# DOUBLE (17 digits, which the server prints the slow way: the short text costs it about half). A short text
# inserted into a column since widened to DOUBLE is not the float's exact double: restore loads such a table
# through a temporary table whose column is FLOAT (mysqlrestore.load_through_floats). Servers before CAST AS
# FLOAT (MariaDB 10.4.5, MySQL 8.0.17) get the DOUBLE text.
FLOAT_LITERAL = "IF(CAST(CONCAT({c}) AS FLOAT) = {c}, CONCAT({c}), CAST({c} AS DOUBLE))"
FLOAT_LITERAL_OLD_SERVER = "CAST({c} AS DOUBLE)"
# GROUP_CONCAT copies each row's literal into a field as wide as the expression's declared width, and a DOUBLE's text
# may be longer than its (-0.000000000000028019071776292417: 33 characters against 22): a row ending in WIDE_END, as
# wide as a TEXT column can be, is copied into a BLOB, which cuts nothing (an outside tester: such a row was cut).
FLOAT_KINDS = {"float", "double", "real"}
WIDE_END = "CAST('\\0' AS CHAR(65536))"
TEMPORAL_TYPES = {"date", "datetime", "timestamp", "time"}  # their text holds no quote or backslash: no QUOTE scan
BINARY_TYPES = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "geometry", "point",
                "linestring", "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection"}


@functools.lru_cache(maxsize=512)
def literal_of(name, kind, nullable=True, short_floats=True):
    """The SQL literal of column `name` (of DATA_TYPE `kind`) as the server writes it: see literal_row."""
    if kind not in NUMBER_TYPES and kind not in BINARY_TYPES and kind not in TEMPORAL_TYPES:  # text, JSON, ENUM
        return "QUOTE(%s)" % name  # QUOTE(NULL) is NULL's literal
    if kind in TEMPORAL_TYPES:  # the server's text of the value, as QUOTE would give it, without its escaping scan
        value = "CONCAT('''', %s, '''')" % name
    elif kind == "float":
        value = (FLOAT_LITERAL if short_floats else FLOAT_LITERAL_OLD_SERVER).format(c=name)
    elif kind == "bit":
        value = "(%s + 0)" % name
    elif kind in BINARY_TYPES:
        value = "CONCAT('X''', HEX(%s), '''')" % name
    else:
        value = name
    return "IFNULL(%s, 'NULL')" % value if nullable else value


@functools.lru_cache(maxsize=None)
def exact_dates_converter(driver):
    """The driver's converter, but a DATE, DATETIME or TIMESTAMP that Python's datetime cannot hold (a zero date,
    a zero month or day, which MariaDB's default sql_mode accepts) comes back as the server's text instead of
    None: a snapshot, a copy or a quarantine keeps it, and the server reads the text back as the same value."""
    base = driver.conversion.MySQLConverter

    def keeping_text(convert):
        def to_python(value, dsc=None):
            result = convert(value, dsc)
            if result is None and isinstance(value, (bytes, bytearray)):
                return bytes(value).decode("ascii", "replace")
            return result
        return staticmethod(to_python)

    return type("ExactDatesConverter", (base,), {
        "_date_to_python": keeping_text(base._date_to_python),
        "_datetime_to_python": keeping_text(base._datetime_to_python),
        "_timestamp_to_python": keeping_text(base._timestamp_to_python),
        "__doc__": exact_dates_converter.__doc__})
