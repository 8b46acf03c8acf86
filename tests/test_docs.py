"""The command pages in docs/ match --help, and every command speaks to scripts the same way."""

import os
import re
import runpy
import sys

import pytest
from conftest import ROOT, make_demo, run_cli

from emfix.cli import build_parser

GENERATOR = runpy.run_path(os.path.join(ROOT, "docs", "generate.py"))


def commands():
    parser = build_parser()
    sub = GENERATOR["_subparsers"](parser)
    for name, command in sub.choices.items():
        nested = GENERATOR["_subparsers"](command)
        if nested is None:
            yield name, command
        else:
            for child_name, child in nested.choices.items():
                yield "%s %s" % (name, child_name), child


@pytest.mark.skipif(sys.version_info[:2] != GENERATOR["GENERATED_WITH"], reason="help wording differs by version")
def test_command_pages_equal_the_generated_help():
    assert GENERATOR["main"](["--check"]) == 0, "run python3 docs/generate.py"


def test_every_option_of_every_command_is_on_its_page():
    pages = GENERATOR["render_pages"]()
    for name, parser in commands():
        page = pages.get(name.split()[0] + ".md")
        if page is None:  # an alias: documented on the page of what it stands for
            continue
        for action in parser._actions:
            for option in action.option_strings:
                assert re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(option), page), (name, option)


@pytest.mark.parametrize("name,parser", list(commands()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_command_has_json_and_quiet(name, parser):
    options = {o for a in parser._actions for o in a.option_strings}
    assert {"--json", "-q", "--quiet"} <= options, name


def test_version_flag():
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--version"])
    assert exit_info.value.code == 0


@pytest.mark.parametrize("command", ["cleanup-orphans", "fix-json"])
def test_repairs_never_ask_without_a_terminal(sqlite_address, command):
    make_demo(sqlite_address)
    before = open(sqlite_address.path, "rb").read()
    result = run_cli(command, sqlite_address.path, "--no-snapshot")  # stdin is /dev/null
    assert result.returncode == 2 and "--yes" in result.stderr and "Traceback" not in result.stderr
    assert open(sqlite_address.path, "rb").read() == before


def test_the_weekly_cron_script_of_the_automation_page_mails_the_report(tmp_path):
    """Round 54: the page's script made its report file with `mktemp`, which `-o` refuses (it never writes over a
    file that is there): every week it mailed "could not check". Run as printed, with `mail` stubbed."""
    import json
    import subprocess
    text = open(os.path.join(ROOT, "docs", "automation.md"), encoding="utf-8").read()
    script = re.search(r"```sh\n(#!/bin/sh\n# /usr/local/bin/emfix-weekly.*?)```", text, re.S).group(1)
    script = script.replace("python3 /opt/emfix/emfix.pyz", "%s -m emfix" % sys.executable)
    (tmp_path / "bin").mkdir()
    mail = tmp_path / "bin" / "mail"
    mail.write_text('#!/bin/sh\necho "$2" > "%s/subject"; cat > "%s/body"\n' % (tmp_path, tmp_path))
    mail.chmod(0o755)
    (tmp_path / "weekly.sh").write_text(script)
    result = run_cli("demo", str(tmp_path / "d"))
    assert result.returncode == 0
    env = dict(os.environ, PATH="%s:%s" % (tmp_path / "bin", os.environ["PATH"]), PYTHONPATH=ROOT)
    done = subprocess.run(["sh", str(tmp_path / "weekly.sh"), str(tmp_path / "d" / "experiment.db"), "ops@example"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "subject").read_text().startswith("emfix: problems in")
    assert json.loads((tmp_path / "body").read_text())["summary"]["overall_status"] == "FAIL"
    assert len(os.listdir(tmp_path / "d" / "snapshots")) == 2  # the snapshot and its manifest
