"""emfix: the repair kit for Experiment Manager databases (SQLite and MySQL/MariaDB)."""

__version__ = "0.1.0"
