"""A password given any way, to any command, never shows: not in output, files, history or `ps`."""

import contextlib
import io
import os
import subprocess
import sys
import time
import uuid
from urllib.parse import quote

import pytest
from conftest import ROOT, make_demo, mysql_server_url
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from emfix.address import MASK, NAMED_OPTIONS, DatabaseAddress, hide_secrets, mask_url, parse_address
from emfix.backends import open_database
from emfix.cli import main
from emfix.errors import EmfixError

MARKER = "Zq7marker9Secret"


@pytest.fixture
def secret_user(mysql_databases):
    """A MySQL user whose password is MARKER, owning a fresh demo database."""
    base = parse_address(mysql_server_url(), environ={})
    db_address = mysql_databases()
    make_demo(db_address)
    user = "emfix_pw_%s" % uuid.uuid4().hex[:8]
    with open_database(base) as admin:
        admin.execute("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'" % (user, MARKER))
        admin.execute("GRANT ALL ON *.* TO '%s'@'%%'" % user)
    try:
        yield DatabaseAddress("mysql", host=base.host, port=base.port, user=user, database=db_address.database)
    finally:
        with open_database(base) as admin:
            admin.execute("DROP USER IF EXISTS '%s'@'%%'" % user)


def ways(address, tmp_path):
    """(argv for the database, environment) for every way a password can be given."""
    plain = "mysql://%s@%s:%s/%s" % (address.user, address.host, address.port, address.database)
    with_password = "mysql://%s:%s@%s:%s/%s" % (address.user, quote(MARKER, safe=""), address.host, address.port,
                                                address.database)
    password_file = tmp_path / "pw"
    password_file.write_text(MARKER + "\n")
    cnf = tmp_path / "my.cnf"
    cnf.write_text("[client]\npassword = %s\n" % MARKER)
    return {
        "url": ([with_password], {}),
        "--password": ([plain, "--password", MARKER], {}),
        "--password=": ([plain, "--password=" + MARKER], {}),
        "environment": ([plain], {"EMFIX_MYSQL_PASSWORD": MARKER}),
        "--password-file": ([plain, "--password-file", str(password_file)], {}),
        "--defaults-file": ([plain, "--defaults-file", str(cnf)], {}),
    }


def commands(tmp_path, n):
    """Every command that opens a database, with what it writes kept under tmp_path."""
    out = tmp_path / ("out%d" % n)
    out.mkdir()
    return [
        ["validate", "{db}", "-o", str(out / "report.json"), "--json"],
        ["schema", "{db}", "--json"],
        ["doctor", "{db}", "--json", "--snapshot-dir", str(out / "snaps")],
        ["snapshot", "create", "{db}", "--snapshot-dir", str(out / "snaps"), "--json"],
        ["snapshot", "list", "{db}", "--snapshot-dir", str(out / "snaps"), "--json"],
        ["cleanup-orphans", "{db}", "--yes", "--no-snapshot", "--quarantine-dir", str(out / "q"), "--json"],
        ["fix-json", "{db}", "--yes", "--no-snapshot", "--quarantine-dir", str(out / "q"), "--json"],
        ["export", "{db}", "-e", "1", "-o", str(out / "e1.jsonl"), "--json"],
        ["optimize", "{db}", "--dry-run", "--no-timing", "--json"],
        ["init", "{db}", "--json"],
    ]


def run_in_process(argv, env, monkeypatch):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(argv)
    for key in env:
        monkeypatch.delenv(key)
    return code, stdout.getvalue() + stderr.getvalue()


def every_file_under(*folders):
    for folder in folders:
        for root, _dirs, files in os.walk(str(folder)):
            for name in files:
                with open(os.path.join(root, name), "rb") as handle:
                    yield os.path.join(root, name), handle.read()


def test_no_command_shows_the_password_however_it_was_given(secret_user, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.my.cnf of the machine's
    for n, (way, (db_args, env)) in enumerate(ways(secret_user, tmp_path).items()):
        for command in commands(tmp_path, n):
            at = command.index("{db}")
            argv = command[:at] + db_args + command[at + 1:]
            code, shown = run_in_process(argv, env, monkeypatch)
            assert code in (0, 1), (way, command, shown)
            assert MARKER not in shown and quote(MARKER, safe="") not in shown, (way, command)
    for path, content in every_file_under(tmp_path):
        if os.path.basename(path) in ("pw", "my.cnf"):
            continue
        assert MARKER.encode() not in content, path  # reports, manifests, snapshots, quarantines, history


@pytest.mark.parametrize("argv", [
    ["validate", "mysql://u:%s@[::1/db" % MARKER],
    ["validate", "mysql://u:%s@h:notaport/db" % MARKER],
    ["validate", "--mysql", "-d", "x", "--host", "127.0.0.1", "--user", "nobody", "--pass", MARKER],
    ["validate", "--mysql", "-d", "x", "--host", "127.0.0.1", "--port", "1", "--user", "u", "--password", MARKER,
     "--lock-timeout", "0"],
    ["validate", "mysql://u@127.0.0.1:1/db", "--password=" + MARKER, "--lock-timeout", "0"],
    ["migrate", "mysql://u:%s@h:bad/db" % MARKER, "x.db", "-e", "1"],
    ["nonsense", "--password", MARKER],
])
def test_errors_never_show_the_password(argv, monkeypatch):
    code, shown = run_in_process(argv, {}, monkeypatch)
    assert code in (2, 3), shown
    assert MARKER not in shown and shown.startswith(("error:", "warning:")), shown


def test_password_on_argv_is_blanked_in_the_process_list(tmp_path):
    """As the mysql client does: `ps` shows x's where --password's value was."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "emfix", "validate", "--mysql", "-d", "x", "--host", "127.0.0.1",
                             "--port", "1", "--user", "u", "--password", MARKER, "--lock-timeout", "20"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        seen = b""
        while time.monotonic() < deadline:  # wait for the warning line: by then argv has been rewritten
            line = proc.stderr.readline()
            if line.startswith(b"warning:"):
                break
        with open("/proc/%d/cmdline" % proc.pid, "rb") as handle:
            seen = handle.read()
        assert MARKER.encode() not in seen and b"--password" in seen
    finally:
        proc.kill()
        proc.communicate()


def test_password_flag_warns_once_on_stderr(monkeypatch):
    code, shown = run_in_process(["validate", "--mysql", "-d", "x", "--host", "127.0.0.1", "--port", "1",
                                  "--user", "u", "--password", MARKER, "--lock-timeout", "0"], {}, monkeypatch)
    assert code == 3 and shown.count("warning: --password") == 1


secret_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="@/"),
                      min_size=6, max_size=24)


@settings(max_examples=200)
@given(secret_text, st.sampled_from(["[::1", "h:bad", "h", "h:3306", "", "[", "h:99999"]),
       st.sampled_from(["/db", "", "/a/b", "/db?use_pure=1"]))
def test_malformed_urls_never_show_their_password(secret, host, path):
    url = "mysql://u:%s@%s%s" % (secret, host, path)
    assert secret not in mask_url(url).replace("mysql://u:", "", 1) or secret in "mysql://u:@" + host + path
    try:
        parse_address(url, environ={})
    except EmfixError as exc:
        shown = hide_secrets(exc.message + " " + (exc.hint or ""))
        assert MASK in shown or secret not in url.split("@")[0]
        # A "secret" that is the message's own words (e.g. "intege" of "integer") shows for that reason alone.
        assume(secret not in _shown_for("mysql://u:%s@%s%s" % ("0", host, path)))
        assert secret not in shown.replace(host, "").replace(path, "")


@settings(max_examples=100)
@given(secret_text, st.sampled_from(["password=", "pwd=", "ssl_key=", "use_pure=1&password=", "=", "use_pure=",
                                     "password%3D", "", "use_pure=1#password="]))
def test_a_secret_in_a_urls_query_never_shows(secret, name):
    """Round 29: a URL's query was left unread without a word; refused now (emfix reads use_pure alone, 0 or 1), and
    the refusal names only options it knows of, never a value (round 30: `?=secret` showed it; round 31:
    `?password%3Dsecret` and `?secret` showed it as a name, a #fragment was left unread)."""
    url = "mysql://u@h:3306/db?%s%s" % (name, quote(secret, safe=""))
    with pytest.raises(EmfixError) as raised:
        parse_address(url, environ={})
    shown = raised.value.message + " " + (raised.value.hint or "")
    assert raised.value.exit_code == 2 and ("emfix does not read" in shown or "use_pure" in shown)
    if name == "" and secret in NAMED_OPTIONS:
        return  # `?option_groups` is an option's name emfix names (hypothesis made one a "secret" once)
    benign = _shown_for("mysql://u@h:3306/db?%s0" % name)  # what the same URL with a value of "0" shows
    for text in {secret, quote(secret, safe="")}:  # (a "secret" like `use_pu` is in the hint's own words)
        assert text not in shown or text in benign


@settings(max_examples=100)
@given(secret_text.filter(lambda t: not any(c in t for c in ";?#")),
       st.sampled_from([";password=", ";user=a;password=", ";pwd=", ";x="]))
def test_a_secret_in_jdbc_properties_after_the_database_never_shows(secret, name):
    """Round 32: `mysql://u@h/db;password=secret` (a JDBC URL's properties) was read as a database named
    `db;password=secret` and shown whole in the error (exit 3); refused now (exit 2), the value masked."""
    url = "mysql://u@h:3306/db%s%s" % (name, quote(secret, safe=";="))
    with pytest.raises(EmfixError) as raised:
        parse_address(url, environ={})
    shown = raised.value.message + " " + (raised.value.hint or "")
    assert raised.value.exit_code == 2 and "properties" in shown
    assert quote(secret, safe=";=") not in shown.replace("mysql://u@h:3306/db", "") or secret in _shown_for(
        "mysql://u@h:3306/db%s0" % name)


def _shown_for(url):
    try:
        parse_address(url, environ={})
    except EmfixError as exc:
        return exc.message + " " + (exc.hint or "")
    return ""


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"), blacklist_characters="@/"),
               min_size=6, max_size=24))
def test_any_url_in_any_text_is_masked(secret):
    """A URL has no blank in it; its password is masked wherever the URL stands in a message."""
    text = "cannot use mysql://someone:%s@db1:3306/x today" % secret
    assert secret not in hide_secrets(text).replace("someone", "").replace("db1:3306/x today", "")


@pytest.mark.parametrize("way", ["url", "environment", "option file", "password file"])
def test_a_password_never_shows_in_stderr_json_or_the_traceback_file(way, tmp_path, monkeypatch):
    """Parsing an address registers nothing by itself: the CLI registers each address's password where it
    parses it, so a crash whose text holds the password (a driver's message) still shows it masked."""
    import tempfile

    import emfix.address
    from emfix.backends.mysql import MySQLBackend
    secret = "Zq8%sPw" % uuid.uuid4().hex[:10]
    monkeypatch.setattr(emfix.address, "_SECRETS", set())  # nothing an earlier test registered helps here
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where report_bug writes the traceback
    monkeypatch.setenv("HOME", str(tmp_path))

    def crash(self, address, *args, **kwargs):  # noqa: ARG001
        raise RuntimeError("the driver says: no login with password %s" % address.password)
    monkeypatch.setattr(MySQLBackend, "__init__", crash)
    plain = "mysql://u@127.0.0.1:1/db"
    (tmp_path / "my.cnf").write_text("[client]\npassword = %s\n" % secret)
    (tmp_path / "pw").write_text(secret + "\n")
    db_args, env = {"url": (["mysql://u:%s@127.0.0.1:1/db" % secret], {}),
                    "environment": ([plain], {"EMFIX_MYSQL_PASSWORD": secret}),
                    "option file": ([plain, "--defaults-file", str(tmp_path / "my.cnf")], {}),
                    "password file": ([plain, "--password-file", str(tmp_path / "pw")], {})}[way]
    code, shown = run_in_process(["validate"] + db_args + ["--json"], env, monkeypatch)
    assert code == 70 and "a bug in emfix" in shown, shown
    assert secret not in shown and "no login with password %s" % MASK in shown, shown
    crashes = [p for p in tmp_path.iterdir() if p.name.startswith("emfix-crash-")]
    assert len(crashes) == 1
    text = crashes[0].read_text()
    assert "RuntimeError" in text and secret not in text and MASK in text


@pytest.mark.parametrize("way", ["--password-file", "--defaults-file", "--password"])
def test_undo_into_the_database_the_quarantine_names_takes_the_password_options(secret_user, tmp_path, monkeypatch,
                                                                                way):
    """undo without -d opens the database the quarantine came from, with the password given to undo itself."""
    monkeypatch.setenv("HOME", str(tmp_path))
    db_args, _env = ways(secret_user, tmp_path)[way]
    code, shown = run_in_process(["cleanup-orphans", *db_args, "--yes", "--no-snapshot", "--quarantine-dir",
                                  str(tmp_path / "q"), "--json"], {}, monkeypatch)
    assert code == 0, shown
    (kept,) = os.listdir(str(tmp_path / "q"))
    code, shown = run_in_process(["undo", str(tmp_path / "q" / kept), "--yes", *db_args[1:], "--json"], {},
                                 monkeypatch)
    assert code == 0, shown
    assert '"restored"' in shown and MARKER not in shown
