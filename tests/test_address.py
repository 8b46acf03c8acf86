import pytest
from hypothesis import given
from hypothesis import strategies as st

from emfix.address import MASK, parse_address, read_option_file
from emfix.errors import AddressError, EmfixError, NotFoundError, UsageError


def test_plain_path_means_sqlite():
    address = parse_address("experiment.db")
    assert address.is_sqlite and address.path == "experiment.db"


def test_sqlite_url_with_absolute_path():
    assert parse_address("sqlite:///var/data/x.db").path == "/var/data/x.db"


def test_sqlalchemys_four_slash_sqlite_url_is_the_absolute_path_and_opens(tmp_path):
    """An outside tester: sqlite:////tmp/x.db (SQLAlchemy's form of an absolute path) said "invalid uri authority:
    tmp" (exit 3); so did a plain path beginning with two slashes, opened read-only."""
    import sqlite3

    from emfix.fileutil import read_only_uri
    assert parse_address("sqlite:////tmp/x.db").path == "/tmp/x.db"
    path = tmp_path / "x.db"
    sqlite3.connect(str(path)).close()
    sqlite3.connect(read_only_uri("/" + str(path)), uri=True).close()  # //tmp/... is the same file


def test_sqlite_url_with_relative_path():
    assert parse_address("sqlite:rel/x.db").path == "rel/x.db"


def test_mysql_url_parts():
    a = parse_address("mysql://analyst@db.example:3307/prod", environ={})
    assert (a.kind, a.user, a.host, a.port, a.database) == ("mysql", "analyst", "db.example", 3307, "prod")


def test_mysql_url_defaults_port_3306():
    assert parse_address("mysql://u@h/db", environ={}).port == 3306


def test_password_in_url_is_masked_everywhere():
    a = parse_address("mysql://u:s3cr%40t@h/db", environ={})
    assert a.password == "s3cr@t"
    for shown in (str(a), a.display(), repr(a), str(a.to_dict())):
        assert "s3cr" not in shown
    assert MASK in a.display()


def test_password_from_environment(tmp_path):
    a = parse_address("mysql://u@h/db", environ={"EMFIX_MYSQL_PASSWORD": "envpw"})
    assert a.password == "envpw"


def test_password_file_wins_over_environment(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("filepw\n")
    a = parse_address("mysql://u@h/db", password_file=str(pw), environ={"EMFIX_MYSQL_PASSWORD": "envpw"})
    assert a.password == "filepw"


def test_option_file_client_group_supplies_credentials(tmp_path):
    cnf = tmp_path / "my.cnf"
    cnf.write_text("[client]\nuser = reader\npassword = \"p w=1\"\nport=3310\n[mysqld]\nport=1\n")
    a = parse_address("mysql://h/db", defaults_file=str(cnf), environ={})
    assert (a.user, a.password, a.port) == ("reader", "p w=1", 3310)


def test_option_file_values_are_not_evaluated(tmp_path):
    cnf = tmp_path / "my.cnf"
    cnf.write_text("[client]\npassword = __import__('os').getcwd()\n")
    assert read_option_file(str(cnf))["password"] == "__import__('os').getcwd()"


@pytest.mark.parametrize("text", ["x\n  y\n", "[client]\npassword = secret\n= x\n"])
def test_an_option_file_python_cannot_parse_is_a_usage_error_that_shows_none_of_its_lines(tmp_path, text):
    """Round 60: an indented line after a bare key was an AttributeError in configparser (every MySQL command exit
    70, a report written over ~/.my.cnf by mistake included); a line is never shown, as it may hold a password."""
    cnf = tmp_path / "my.cnf"
    cnf.write_text(text)
    with pytest.raises(UsageError) as refused:
        parse_address("mysql://u@h/db", defaults_file=str(cnf), environ={})
    assert "cannot read MySQL option file" in refused.value.message and "secret" not in refused.value.message


def test_missing_defaults_file_is_not_found(tmp_path):
    """Exit 3, as anything named that does not exist (it was 2: round 54)."""
    with pytest.raises(NotFoundError):
        parse_address("mysql://u@h/db", defaults_file=str(tmp_path / "nope.cnf"), environ={})


@pytest.mark.parametrize("url", ["mysql://u@h:notaport/db", "mysql://u@h:3306/", "mysql:///db",
                                 "postgres://u@h/db", "sqlite://", "mysql://u@h/a/b"])
def test_malformed_urls_are_refused_with_address_error(url):
    with pytest.raises(AddressError):
        parse_address(url, environ={})


def test_malformed_url_message_masks_password():
    with pytest.raises(AddressError) as info:
        parse_address("mysql://u:hunter2@h:bad/db", environ={})
    assert "hunter2" not in info.value.message


@given(st.text(max_size=80))
def test_any_text_parses_or_raises_emfix_error(text):
    try:
        address = parse_address(text, environ={})
    except EmfixError as exc:
        assert exc.message and exc.exit_code in (2, 3)  # a clear usage or not-found error, never empty
        return
    # What parses is a whole address: one of the two engines, an identity, a name to show.
    assert address.kind in ("sqlite", "mysql")
    assert address.key().startswith(("sqlite:", "mysql://")) and address.display()
    if address.is_sqlite:
        assert address.path and address.path.strip()
        if "://" not in text and not text.lower().startswith("sqlite:"):
            assert address.path == text and address.display() == text  # a plain path is taken as it is
    else:
        assert address.host and 0 < int(address.port) < 65536
        assert address.key() == "mysql://%s:%d/%s" % (address.host.lower(), address.port, address.database)


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=12)


@given(st.sampled_from(["mysql", "mariadb", "MySQL"]), names, st.one_of(st.none(), st.text(min_size=1, max_size=12)),
       st.sampled_from(["db1", "db.example", "127.0.0.1", "[::1]"]), st.one_of(st.none(), st.integers(1, 65535)),
       names)
def test_a_mysql_url_parses_into_exactly_its_parts(scheme, user, password, host, port, database):
    from urllib.parse import quote
    url = "%s://%s%s@%s%s/%s" % (scheme, user, "" if password is None else ":" + quote(password, safe=""), host,
                                 "" if port is None else ":%d" % port, database)
    a = parse_address(url, environ={})
    assert (a.kind, a.user, a.password, a.host, a.port, a.database) == (
        "mysql", user, password, host.strip("[]"), 3306 if port is None else port, database)
    assert a.key() == "mysql://%s:%d/%s" % (host.strip("[]"), a.port, database)


@pytest.mark.parametrize("text, path", [("experiment.db", "experiment.db"), ("sqlite:///var/x.db", "/var/x.db"),
                                        ("sqlite:rel/x%20y.db", "rel/x y.db"), ("SQLITE:///a.db?mode=ro", "/a.db")])
def test_a_sqlite_address_parses_into_its_path(text, path):
    a = parse_address(text, environ={})
    assert (a.kind, a.path, a.host, a.password) == ("sqlite", path, None, None)


def test_a_manifests_source_has_the_same_identity_as_its_address(tmp_path):
    from emfix.address import key_of_source
    for address in (parse_address(str(tmp_path / "x.db")),
                    parse_address("mysql://u:pw@DB1.example:3307/prod", environ={})):
        assert key_of_source(address.to_dict()) == address.key()
    assert key_of_source("x") is None and key_of_source({"backend": "postgres"}) is None


def test_an_address_is_a_value_nothing_writes_to():
    import dataclasses
    a = parse_address("mysql://u@h/db", environ={"EMFIX_MYSQL_PASSWORD": "pw"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.password = "other"  # type: ignore[misc]


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=6, max_size=20))
def test_password_never_shown_in_display(password):
    from urllib.parse import quote
    a = parse_address("mysql://u:%s@h/db" % quote(password, safe=""), environ={})
    assert a.password == password
    assert password not in a.display().replace("mysql://u:", "").replace("@h:3306/db", "")
