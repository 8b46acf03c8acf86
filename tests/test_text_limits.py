"""Issue 24, item 3: the text output honours its options (--limit), says how many it did not list, and
names rows by their key."""

import json

from conftest import run_cli, url_of

# -- 3. text output honours its options -----------------------------------------------------------------

def _more_lines(text):
    return [line for line in text.splitlines() if "... and" in line]


def test_validate_text_shows_limit_rows_and_says_how_many_more(demo_file):
    one = run_cli("validate", demo_file, "--limit", "1").stdout
    trial_run = one[one.index("  TRIAL_RUN "):].splitlines()
    assert trial_run[1].strip().startswith("row ") and trial_run[2].strip() == "... and 2 more"
    five = run_cli("validate", demo_file, "--limit", "5").stdout
    assert "... and" not in five[five.index("  TRIAL_RUN "):five.index("  TRIAL_ARTIFACT")]
    json_part = one[one.index("Metric JSON"):one.index("Warnings")].splitlines()
    assert len([line for line in json_part if line.startswith("  METRIC")]) == 1 and "... and 10 more" in json_part[-2]
    zero = run_cli("validate", demo_file, "--limit", "0").stdout
    assert "      row " not in zero and len(_more_lines(zero)) >= 10


def test_validate_report_note_names_what_the_text_shows(demo_file, tmp_path):
    result = run_cli("validate", demo_file, "--limit", "2", "-o", str(tmp_path / "r.json"))
    assert "the lists above show at most 2 per relation" in result.stdout


def test_check_hierarchy_text_lists_limit_rows_per_break(demo_address):
    result = run_cli("check-hierarchy", url_of(demo_address), "-e", "3", "--limit", "1")
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    batch = next(i for i, line in enumerate(lines) if "BATCH rows have no EPOCH" in line)
    assert lines[batch + 1].strip().startswith("row ") and "trial_run_id=" in lines[batch + 1]
    assert lines[batch + 2].strip() == "... and 2 more"
    none = run_cli("check-hierarchy", url_of(demo_address), "-e", "3", "--limit", "0").stdout
    assert "      row " not in none and "... and 3 more" in none


def test_fix_json_says_how_many_repairs_it_did_not_list(demo_address):
    result = run_cli("fix-json", url_of(demo_address), "--dry-run")
    assert result.returncode == 0, result.stderr
    shown = [line for line in result.stdout.splitlines() if line.startswith("  per_label_val ")]
    repaired = int(result.stdout.split()[2])
    assert len(shown) == 5 and repaired > 5
    assert "  ... and %d more" % (repaired - 5) in result.stdout.splitlines()


def test_cleanup_examples_name_the_rows_key_not_a_rowid(demo_address):
    result = run_cli("cleanup-orphans", url_of(demo_address), "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.split()[0] == "TRIAL" and line.endswith("e.g. id 1006") for line in lines), result.stdout
    assert any(line.split()[0] == "EPOCH" and "e.g. (idx=0, trial_run_id=13)" in line for line in lines)
    as_json = json.loads(run_cli("cleanup-orphans", url_of(demo_address), "--dry-run", "--json").stdout)
    assert as_json["plan"]["examples"]["TRIAL"] == [{"id": 1006}]
