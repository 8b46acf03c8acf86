"""How a value read from one database is written to another, or to a file, and compared.

`portable` turns what a driver returns into what sqlite3 and mysql-connector both bind without
loss; `canonical` is the form two readings of the same stored value share, for checksums and
for telling whether a row already holds a quarantined value.
"""

import datetime
import decimal


def portable(value):
    if isinstance(value, decimal.Decimal):
        return str(value)  # exact; MySQL reads it back as the same DECIMAL
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat(" ") if isinstance(value, datetime.datetime) else value.isoformat()
    if isinstance(value, datetime.timedelta):
        return str(value)
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, set):
        return ",".join(sorted(value))
    return value


def canonical(value):
    value = portable(value)
    if isinstance(value, str) and len(value) >= 19 and value[4:5] == "-" and value[10:11] in (" ", "T"):
        try:
            return datetime.datetime.fromisoformat(value.replace(" ", "T")).isoformat()
        except ValueError:
            return value
    if isinstance(value, float) and value.is_integer():
        return int(value) if abs(value) < 1e15 else value
    return value
