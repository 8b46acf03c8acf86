"""Where a database is: a SQLite path or a MySQL URL, with the password kept out of sight.

A password may come from the URL, a password file, EMFIX_MYSQL_PASSWORD or the MySQL option
files; it is never needed on the command line and never shown: `str(address)` masks it, and a caller
that prints messages (the CLI) registers each address's password with `remember_secret` so that
`hide_secrets` masks it in any text, a driver's message or a traceback included. Parsing registers
nothing by itself. An address is a value: nothing writes to it once made (dataclasses.replace).
"""

import configparser
import dataclasses
import getpass
import os
import re
from typing import Optional
from urllib.parse import parse_qsl, unquote, urlsplit

from .errors import AddressError, UsageError
from .inputfile import read_input_text

PASSWORD_ENV = "EMFIX_MYSQL_PASSWORD"
MASK = "***"
MYSQL_SCHEMES = ("mysql", "mariadb", "mysql+mysqlconnector")
DEFAULT_MYSQL_PORT = 3306


@dataclasses.dataclass(frozen=True)
class DatabaseAddress:
    kind: str  # "sqlite" or "mysql"
    path: Optional[str] = None
    host: Optional[str] = None
    port: Optional[int] = None
    user: Optional[str] = None
    password: Optional[str] = dataclasses.field(default=None, repr=False)
    database: Optional[str] = None
    options: dict = dataclasses.field(default_factory=dict)

    @property
    def is_sqlite(self):
        return self.kind == "sqlite"

    def display(self):
        """The address as a user would write it, password masked."""
        if self.is_sqlite:
            return self.path
        auth = self.user or ""
        if self.password:
            auth += ":" + MASK
        return "mysql://%s@%s:%s/%s" % (auth, self.host, self.port, self.database or "")

    def __str__(self):
        return self.display()

    def key(self):
        """The database's identity without a password: what snapshots, journals, quarantines and the
        history are filed under. A SQLite file by its real path (so ./a.db, a.db and a symlink agree)."""
        if self.is_sqlite:
            return "sqlite:" + os.path.realpath(self.path)
        return "mysql://%s:%s/%s" % ((self.host or "").lower(), self.port, self.database or "")

    def same_database(self, other):
        """Both name one database (one server's database; one SQLite file, however each path reaches it)."""
        if not (self.is_sqlite or other.is_sqlite):
            return (self.host, self.port, self.database) == (other.host, other.port, other.database)
        both = self.is_sqlite and other.is_sqlite and os.path.exists(self.path) and os.path.exists(other.path)
        return both and os.path.samefile(self.path, other.path)

    def target(self):
        """How to name the database in a suggested command: never with a password in it."""
        if self.is_sqlite:
            return self.path
        return "mysql://%s@%s:%s/%s" % (self.user or "", self.host, self.port, self.database or "")

    def to_dict(self):
        """For reports: never contains the password."""
        if self.is_sqlite:
            return {"backend": "sqlite", "path": os.path.abspath(self.path)}
        return {"backend": "mysql", "host": self.host, "port": self.port, "user": self.user,
                "database": self.database, "password": MASK if self.password else None,
                "url": self.display()}


_SECRETS = set()
_URLS_WITH_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:@/\s]*:)(\S*)@")


def remember_secret(value):
    """A password this process knows: hide_secrets() masks it wherever it would be shown. The CLI calls it
    for each password it is given (on argv: cli.main; by any means: commands.common's address parsing)."""
    if value:
        _SECRETS.add(str(value))


def hide_secrets(text):
    """`text` with every known password, and the password of any URL in it, masked."""
    text = _URLS_WITH_PASSWORD.sub(lambda m: m.group(1) + MASK + "@", str(text))
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def parse_address(text, password_file=None, defaults_file=None, environ=None, password=None):
    """Turn what the user typed into a DatabaseAddress, filling MySQL credentials."""
    if text is None or not str(text).strip():
        raise UsageError("no database given", hint="pass a SQLite file path or mysql://user@host/db")
    text = str(text)
    if "\x00" in text:  # no file system names a file with a NUL in it
        raise AddressError("a database name cannot hold a NUL character: %r" % mask_url(text),
                           hint="check how the name was typed or generated")
    scheme = text.split(":", 1)[0].lower() if "://" in text or text.lower().startswith("sqlite:") else ""
    if scheme == "sqlite":
        return DatabaseAddress("sqlite", path=_sqlite_path(text))
    if scheme in MYSQL_SCHEMES:
        return _mysql_address(text, password_file, defaults_file, environ, password)
    if "://" in text:
        raise AddressError("unknown database URL scheme %r in %s" % (scheme, mask_url(text)),
                           hint="use a file path, sqlite:///path or mysql://user@host:port/dbname")
    return DatabaseAddress("sqlite", path=text)


def mysql_address_from_flags(database, host=None, port=None, user=None, password_file=None,
                             defaults_file=None, environ=None, password=None):
    """The cookbook's `--mysql --host --user --port -d NAME` form."""
    if not database:
        raise UsageError("--mysql needs a database name", hint="add -d NAME (or use mysql://user@host/NAME)")
    address = DatabaseAddress("mysql", host=host, port=port, user=user, database=database)
    return _fill_mysql(address, password_file, defaults_file, environ, password)


def _sqlite_path(text):
    rest = text[len("sqlite:"):]
    if rest.startswith("//"):
        rest = rest[2:]  # sqlite:///abs/path -> /abs/path, like file:// URLs
        if rest.startswith("//"):
            rest = "/" + rest.lstrip("/")  # SQLAlchemy's sqlite:////abs/path: the same file
    path = unquote(rest.split("?", 1)[0])
    if not path:
        raise AddressError("sqlite URL has no path: %s" % text, hint="write sqlite:///abs/path.db or sqlite:rel.db")
    return path


_URL_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:@/]*:)(.*)@", re.DOTALL)


def mask_url(text):
    """The URL with whatever stands between `user:` and the last `@` masked, even when the URL is
    malformed (so an error about a bad URL never shows its password)."""
    match = _URL_PASSWORD.match(text)
    if match:
        text = match.group(1) + MASK + text[match.end() - 1:]
    head, mark, query = text.partition("?")  # a query's values too, but use_pure's (?password=... : round 29)
    head = re.sub(r"(;[^=;/?#]*=)[^;?#]*", lambda m: m.group(1) + MASK, head)  # JDBC's ;password=... (round 32)
    return head + mark + re.sub(r"(^|&)((?!use_pure=)[^=&]*=)[^&]*", lambda m: m.group(1) + m.group(2) + MASK, query)


def key_of_source(source):
    """DatabaseAddress.key() (the one identity) of an address written by to_dict() (a manifest's `source`)."""
    if not isinstance(source, dict):
        return None
    if source.get("backend") == "sqlite" and source.get("path"):
        return DatabaseAddress("sqlite", path=str(source["path"])).key()
    if source.get("backend") == "mysql":
        return DatabaseAddress("mysql", host=str(source.get("host") or ""), port=source.get("port"),
                               database=source.get("database")).key()
    return None


URL_OPTIONS = {"use_pure"}  # what a MySQL URL's query may say (backends/mysql.py reads it)
USE_PURE = ("0", "1", "true", "false", "yes", "no")
NAMED_OPTIONS = {  # options of other tools' URLs, named when refused (any other name may be a secret: not shown)
    "ssl_ca", "ssl_cert", "ssl_key", "ssl_disabled", "ssl_verify_cert", "ssl_verify_identity", "ssl_mode", "ssl",
    "tls", "charset", "collation", "password", "passwd", "pwd", "user", "username", "host", "port", "database", "db",
    "unix_socket", "socket", "connect_timeout", "connection_timeout", "read_timeout", "write_timeout", "autocommit",
    "auth_plugin", "use_unicode", "sql_mode", "time_zone", "init_command", "local_infile", "allow_local_infile",
    "compress", "pool_size", "pool_name", "option_files", "option_groups"}


def _mysql_address(text, password_file, defaults_file, environ, password=None):
    shown = mask_url(text)
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise AddressError("malformed MySQL URL %s: %s" % (shown, exc),
                           hint="expected mysql://user@host:port/dbname") from None
    database = unquote(parts.path.lstrip("/"))
    if not parts.hostname and not parts.netloc:
        raise AddressError("MySQL URL has no host: %s" % shown, hint="expected mysql://user@host:port/dbname")
    if not database or "/" in database:
        raise AddressError("MySQL URL must name one database: %s" % shown,
                           hint="expected mysql://user@host:port/dbname")
    if re.search(r";[^;]*=", database):  # a JDBC URL's properties (;password=...), not a database's name
        raise AddressError("MySQL URL %s has ;name=value properties after the database name, which emfix does not "
                           "read" % shown, hint="name the database alone; the password goes in --password-file or "
                                                "EMFIX_MYSQL_PASSWORD, the rest in an option file (--defaults-file)")
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    options = dict(pairs)
    # Never a value, nor a name emfix does not know (rounds 30, 31: `?=secret`, `?password%3Dsecret`, `?secret`)
    unknown = sorted({name if name in NAMED_OPTIONS else "one whose name is not shown"
                      for name in options if name not in URL_OPTIONS})
    if unknown or (parts.query and not options) or parts.fragment:  # (round 29: ?x=1 was left unread, silently)
        raise AddressError("MySQL URL %s has %s emfix does not read: %s" % (
            shown.partition("?")[0].partition("#")[0], "an option" if len(unknown) <= 1 else "options",
            ", ".join(unknown) or ("a #fragment" if parts.fragment else "(its query is not name=value)")),
            hint="the one option a URL takes is use_pure (0 or 1); the password goes in --password-file or "
                 "EMFIX_MYSQL_PASSWORD, the rest in an option file (--defaults-file)")
    if len(pairs) > len(options) or options.get("use_pure", "0").lower() not in USE_PURE:
        raise AddressError("MySQL URL %s: use_pure is said more than once, or is not 0 or 1" % shown.partition("?")[0],
                           hint="?use_pure=1 (the pure-Python driver) or ?use_pure=0 (its C extension), once")
    address = DatabaseAddress(
        "mysql", host=parts.hostname or None, port=port,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        database=database, options=options)
    return _fill_mysql(address, password_file, defaults_file, environ, password)


def _fill_mysql(address, password_file, defaults_file, environ, password=None):
    """The password, first found: the URL, --password, --password-file, EMFIX_MYSQL_PASSWORD, the option file."""
    environ = os.environ if environ is None else environ
    option_values = read_option_file(defaults_file)
    secret = address.password
    if secret is None and password is not None:
        secret = password
    if secret is None and password_file:
        secret = read_password_file(password_file)
    if secret is None and environ.get(PASSWORD_ENV) is not None:
        secret = environ[PASSWORD_ENV]
    if secret is None:
        secret = option_values.get("password")
    port = address.port
    if port is None:
        try:
            port = int(option_values.get("port") or DEFAULT_MYSQL_PORT)
        except ValueError:
            raise AddressError("option file has a port that is not a number: %r" % option_values["port"]) from None
    filled = dataclasses.replace(address, password=secret, port=port,
                                 user=address.user or option_values.get("user") or _login_name(),
                                 host=address.host or option_values.get("host") or "127.0.0.1")
    for part in ("user", "password", "host", "database"):  # (round 54: exit 70 in the driver; the value unshown)
        try:
            (getattr(filled, part) or "").encode("utf-8")
        except UnicodeEncodeError:
            raise AddressError("the MySQL %s holds bytes that are not UTF-8 text" % part,
                               hint="emfix sends names and passwords to the server as UTF-8: give the %s in UTF-8"
                               % part) from None
    return filled


def read_password_file(path):
    """Its first line; a pipe too (`--password-file <(pass show db)`)."""
    return read_input_text(path, "password file", pipes=True, first_line=True).rstrip("\r\n")


def read_option_file(defaults_file=None):
    """The [client] group of a MySQL option file, read as plain strings.

    mysql-connector evaluates option-file values as Python literals; we read the file ourselves
    and pass on only user, password, host and port.
    """
    path = defaults_file or os.path.expanduser("~/.my.cnf")
    if not defaults_file and not os.path.isfile(path):
        return {}
    text = read_input_text(path, "MySQL option file", pipes=True)
    parser = configparser.ConfigParser(allow_no_value=True, strict=False, interpolation=None,
                                       comment_prefixes=("#", ";"), inline_comment_prefixes=None)
    try:
        parser.read_string("[__top__]\n" + text, source=path)
    except (configparser.Error, AttributeError) as exc:  # (AttributeError: an indented line after a bare key: 60)
        # Its line is not shown: it may hold a password.
        lines = [number - 1 for number, _line in getattr(exc, "errors", ())]
        raise UsageError("cannot read MySQL option file %s: %s" % (path, "line %d is not `key = value`, a [group] "
                                                                   "or a comment" % lines[0] if lines else
                                                                   "an indented line continues no value"),
                         hint="correct the file, or name another with --defaults-file") from None
    values = {}
    for group in ("client", "mysql"):
        if parser.has_section(group):
            for key in ("user", "password", "host", "port"):
                value = parser.get(group, key, fallback=None)
                if value is not None and key not in values:
                    values[key] = _unquote_option(value)
    return values


def _unquote_option(value):
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _login_name():
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "root"
