"""Open a database by its address; the MySQL driver loads only when a MySQL address is opened."""

from ..foreignkey import ForeignKey
from .base import Backend, Index
from .sqlite import SQLiteBackend

__all__ = ["Backend", "ForeignKey", "Index", "open_database"]


def open_database(address, readonly=False, create=False, retry_policy=None, load_directory=None):
    """A connected Backend for a DatabaseAddress.

    readonly: SQLite opens with mode=ro, MySQL marks the session READ ONLY.
    create: allow SQLite to create a missing file (init, demo); otherwise a missing file is an error.
    load_directory: MySQL may LOAD DATA LOCAL pages of SQL text from files there (backends/mysqlload.py).
    """
    if address.is_sqlite:
        return SQLiteBackend(address, readonly=readonly, retry_policy=retry_policy, create=create)
    from .mysql import MySQLBackend
    return MySQLBackend(address, readonly=readonly, retry_policy=retry_policy, create=create,
                        load_directory=load_directory)
