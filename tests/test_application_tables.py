"""An application's own tables beside the Experiment Manager's: what migrate and export take of them, and what they
say when they cannot (round 50)."""

import collections
import sqlite3

import pytest
from conftest import make_demo, run_cli, url_of

from emfix.address import DatabaseAddress
from emfix.backends import open_database
from emfix.demo import Shape

METRIC_NOTES = ("CREATE TABLE METRIC_NOTE (metric_id INT REFERENCES METRIC(id), note TEXT)",
                "CREATE TABLE ARTIFACT_TAG (id INTEGER PRIMARY KEY, artifact_id INT REFERENCES ARTIFACT(id), tag TEXT)")


def _demo_with(tmp_path, *statements):
    source = DatabaseAddress("sqlite", path=str(tmp_path / "src.db"))
    make_demo(source, shape=Shape(experiments=2, trials=2, runs=1, epochs=2, batches=2), faults=False)
    con = sqlite3.connect(source.path)
    with con:
        for statement in statements:
            con.execute(statement)
    con.close()
    return source.path


def _rows(path, sql):
    con = sqlite3.connect(path)
    try:
        return collections.Counter(con.execute(sql).fetchall())
    finally:
        con.close()


def _with_metric_notes(tmp_path):
    return _demo_with(tmp_path, *METRIC_NOTES, "INSERT INTO METRIC_NOTE SELECT id, 'note ' || id FROM METRIC",
                      "INSERT INTO METRIC_NOTE SELECT id, 'again' FROM METRIC WHERE id % 3 = 0",
                      "INSERT INTO ARTIFACT_TAG (artifact_id, tag) SELECT id, 'tag' FROM ARTIFACT")


NOTES_OF_LINKED_METRICS = ("SELECT n.note, m.type, m.total_val FROM METRIC_NOTE n JOIN METRIC m ON m.id = n.metric_id "
                         "WHERE m.id IN (SELECT metric_id FROM EPOCH_METRIC UNION SELECT metric_id FROM BATCH_METRIC "
                         "UNION SELECT metric_id FROM RESULTS_METRIC)")


def test_migrate_takes_the_rows_that_hang_off_the_metrics_and_artifacts_it_copies(tmp_path):
    """Round 50: a table linking only to METRIC (or ARTIFACT) was left out of migrate and export without a word,
    while the rows it points at were copied. Its rows go where those rows go, their links moved with them."""
    source = _with_metric_notes(tmp_path)
    one, every = str(tmp_path / "one.db"), str(tmp_path / "all.db")
    assert run_cli("migrate", source, one, "-e", "1", "--init").returncode == 0
    assert run_cli("migrate", source, one, "-e", "2").returncode == 0  # into a DST holding experiment 1
    assert run_cli("validate", one, "-q").returncode == 0
    assert _rows(one, NOTES_OF_LINKED_METRICS) == _rows(source, NOTES_OF_LINKED_METRICS)
    assert _rows(one, "SELECT tag FROM ARTIFACT_TAG") == _rows(source, "SELECT tag FROM ARTIFACT_TAG")
    assert run_cli("migrate", source, every, "--all", "--init").returncode == 0
    assert _rows(every, "SELECT * FROM METRIC_NOTE") == _rows(source, "SELECT * FROM METRIC_NOTE")


def test_export_and_import_take_them_too(tmp_path):
    source = _with_metric_notes(tmp_path)
    out, target = str(tmp_path / "e1.jsonl"), str(tmp_path / "dst.db")
    assert run_cli("export", source, "-e", "1", "-o", out).returncode == 0
    assert run_cli("init", target).returncode == 0
    con = sqlite3.connect(target)
    with con:
        for statement in METRIC_NOTES:
            con.execute(statement)
    con.close()
    result = run_cli("import", target, out)
    assert result.returncode == 0, result.stderr
    migrated = str(tmp_path / "one.db")
    assert run_cli("migrate", source, migrated, "-e", "1", "--init").returncode == 0
    assert _rows(target, NOTES_OF_LINKED_METRICS) == _rows(migrated, NOTES_OF_LINKED_METRICS)
    assert sum(_rows(target, "SELECT * FROM METRIC_NOTE").values()) > 0


TRIAL_NOTES = ("CREATE TABLE TRIAL_NOTE (id INTEGER PRIMARY KEY, trial_id INT REFERENCES TRIAL(id), code TEXT UNIQUE, "
               "note TEXT)", "INSERT INTO TRIAL_NOTE (trial_id, code, note) SELECT id, 'c' || id, 'n' FROM TRIAL")


def _every_row(address):
    with open_database(address, readonly=True) as db:
        return {t: sorted(db.query("SELECT * FROM %s" % db.quote(t)), key=repr) for t in db.tables()}


def test_a_key_of_its_own_already_in_dst_is_refused_before_anything_is_written(tmp_path):
    """Round 50: copied a second time (--force), a table with its own INTEGER PRIMARY KEY met its keys in DST: the
    in-engine group went back, and the message said "another migrate went on with this copy meanwhile"; the hint
    then said --force, which meets the same key. It is seen before the first write now: nothing is written."""
    source = _demo_with(tmp_path, *TRIAL_NOTES)
    target = DatabaseAddress("sqlite", path=str(tmp_path / "dst.db"))
    assert run_cli("migrate", source, target.path, "-e", "1", "--init").returncode == 0
    before = _every_row(target)
    result = run_cli("migrate", source, target.path, "-e", "1", "--force")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "already holds id = 1" in result.stderr and "nothing was copied" in result.stderr
    assert "TRIAL_NOTE's key (id) is its own" in result.stderr and "--skip-tables TRIAL_NOTE" in result.stderr
    assert _every_row(target) == before  # no journal row, no reservation, no snapshot's mark
    assert run_cli("migrate", source, target.path, "-e", "1", "--force", "--skip-tables", "TRIAL_NOTE").returncode == 0


def test_a_unique_code_the_application_wrote_in_dst_is_refused_on_every_engine(tmp_path, mysql_address):
    """A UNIQUE column of an application's table is a key the copy keeps too; DST compares as its INSERT would
    (MariaDB's collation: 'C1' is 'c1')."""
    source = _demo_with(tmp_path, *TRIAL_NOTES)
    dst = DatabaseAddress("sqlite", path=str(tmp_path / "dst.db"))
    for target, code in ((dst, "c1"), (mysql_address, "C1")):  # (SQLite's TEXT compares bytes)
        assert run_cli("init", url_of(target)).returncode == 0
        with open_database(target) as db:
            db.execute("CREATE TABLE TRIAL_NOTE (id INT PRIMARY KEY, trial_id INT, code VARCHAR(20) UNIQUE, note TEXT)")
            db.execute("INSERT INTO TRIAL_NOTE VALUES (900, NULL, ?, 'the application''s')", (code,))
        before = _every_row(target)
        result = run_cli("migrate", source, url_of(target), "-e", "1")
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert "already holds code = '%s'" % code in result.stderr and "nothing was copied" in result.stderr
        assert _every_row(target) == before
        assert run_cli("migrate", source, url_of(target), "-e", "2").returncode == 0  # its codes are c3, c4


def test_import_refuses_such_a_key_before_anything_is_written(tmp_path):
    """Import stopped part way at such a key (exit 4, rows committed, the journal 'running')."""
    source = _demo_with(tmp_path, *TRIAL_NOTES)
    out, target = str(tmp_path / "e1.jsonl"), DatabaseAddress("sqlite", path=str(tmp_path / "dst.db"))
    assert run_cli("export", source, "-e", "1", "-o", out).returncode == 0
    assert run_cli("init", target.path).returncode == 0
    con = sqlite3.connect(target.path)
    with con:
        con.execute(TRIAL_NOTES[0])
    con.close()
    assert run_cli("import", target.path, out).returncode == 0
    before = _every_row(target)
    again = run_cli("import", target.path, out, "--force")
    assert again.returncode == 1 and "Traceback" not in again.stderr, again.stderr
    assert "already holds id = 1" in again.stderr and "nothing was imported" in again.stderr
    assert "--resume" not in again.stderr
    assert _every_row(target) == before


def test_a_row_hanging_off_two_metrics_of_different_experiments_is_refused(tmp_path):
    """A table linking twice to METRIC (a pair of metrics compared) goes with the metrics it points at; a row whose
    second metric belongs to another experiment would keep a moved id pointing at a metric never copied."""
    source = _demo_with(tmp_path, "CREATE TABLE METRIC_PAIR (a INT REFERENCES METRIC(id), b INT REFERENCES METRIC(id))",
                        "INSERT INTO METRIC_PAIR SELECT metric_id, metric_id FROM EPOCH_METRIC",
                        "INSERT INTO METRIC_PAIR SELECT (SELECT min(metric_id) FROM RESULTS_METRIC), "
                        "(SELECT max(metric_id) FROM RESULTS_METRIC)")
    result = run_cli("migrate", source, str(tmp_path / "dst.db"), "-e", "1", "--init")
    assert result.returncode == 4 and "row of METRIC_PAIR in experiment 1 links through" in result.stderr, \
        result.stderr
    assert "nothing was copied" in result.stderr and len(result.stderr.strip().splitlines()) == 2


def test_a_table_linking_to_one_that_hangs_off_the_metrics_goes_too(tmp_path):
    """Round 51: METRIC_NOTE went with the metrics, but a table linking to METRIC_NOTE was left out without a word
    (exit 0, verify "ok"), from SQLite and into MariaDB alike."""
    source = _demo_with(tmp_path, "CREATE TABLE METRIC_NOTE (id INTEGER PRIMARY KEY, metric_id INT REFERENCES "
                        "METRIC(id), note TEXT)", "CREATE TABLE NOTE_REPLY (note_id INT REFERENCES METRIC_NOTE(id), "
                        "reply TEXT)", "INSERT INTO METRIC_NOTE (metric_id, note) SELECT id, 'n' || id FROM METRIC",
                        "INSERT INTO NOTE_REPLY SELECT id, 'r' || id FROM METRIC_NOTE",
                        "INSERT INTO NOTE_REPLY SELECT id, 'again' FROM METRIC_NOTE WHERE id % 2 = 0")
    every = str(tmp_path / "all.db")
    result = run_cli("migrate", source, every, "--all", "--init")
    assert result.returncode == 0, result.stderr
    query = "SELECT r.reply, n.note FROM NOTE_REPLY r JOIN METRIC_NOTE n ON n.id = r.note_id"
    assert _rows(every, query) == _rows(source, query)
    assert run_cli("validate", every, "-q").returncode == 0


ANSWERS = "CREATE TABLE ANSWER (id INTEGER PRIMARY KEY, metric_id INT REFERENCES METRIC(id), parent_id INT " \
          "REFERENCES ANSWER(id), txt TEXT)"


def _answers(tmp_path, *rows):
    """The demo with ANSWER rows (id, metric of experiment 1 or 2 or NULL, parent, text), METRIC ids as `1` and
    `2`: the smallest metric each experiment links."""
    source = _demo_with(tmp_path, ANSWERS)
    con = sqlite3.connect(source)
    with con:
        first = {e: con.execute("SELECT min(m.metric_id) FROM RESULTS_METRIC m JOIN RESULTS r ON r.trial_run_id = "
                                "m.results_id JOIN TRIAL_RUN u ON u.id = r.trial_run_id JOIN TRIAL t ON t.id = "
                                "u.trial_id WHERE t.experiment_id = ?", (e,)).fetchone()[0] for e in (1, 2)}
        for row_id, experiment, parent, text in rows:
            con.execute("INSERT INTO ANSWER VALUES (?, ?, ?, ?)", (row_id, first.get(experiment), parent, text))
    con.close()
    return source


def test_rows_reached_through_a_link_to_their_own_table_go_too(tmp_path):
    """Round 52: an answer to a note of the experiment (its metric NULL, its parent that note) was left out of
    migrate and export, exit 0, verify "ok"; so was an answer to that answer."""
    source = _answers(tmp_path, (1, 1, None, "top"), (2, None, 1, "child"), (3, None, 2, "grandchild"),
                      (4, 2, None, "other experiment"))
    target = str(tmp_path / "dst.db")
    result = run_cli("migrate", source, target, "-e", "1", "--init")
    assert result.returncode == 0, result.stderr
    assert sorted(_rows(target, "SELECT id, parent_id, txt FROM ANSWER")) == [
        (1, None, "top"), (2, 1, "child"), (3, 2, "grandchild")]
    out = str(tmp_path / "e1.jsonl")
    assert run_cli("export", source, "-e", "1", "-o", out).returncode == 0
    with open(out) as handle:
        assert sum(1 for line in handle if line.startswith('{"table": "ANSWER"')) == 3


def test_a_row_answering_another_experiments_row_is_refused(tmp_path):
    """Round 52: an answer of experiment 1's metric to experiment 2's note was copied with a link to a row never
    copied (exit 0, validate of DST FAIL); so was the other way round, for experiment 2."""
    source = _answers(tmp_path, (1, 1, None, "top"), (2, 2, None, "other"), (3, 1, 2, "across"))
    for experiment, words in ((1, "through parent_id to ANSWER rows"), (2, "through metric_id to METRIC rows")):
        result = run_cli("migrate", source, str(tmp_path / ("d%d.db" % experiment)), "-e", str(experiment), "--init")
        assert result.returncode == 4 and words in result.stderr and "nothing was copied" in result.stderr, \
            result.stderr


def test_an_aggressive_copy_of_a_damaged_source_with_such_a_table_verifies(tmp_path):
    """Round 52: an ANSWER row on a METRIC the damaged source lacks (a link row points at it too) was copied, but
    DST's count took only the METRIC rows that are there: DIFFERS, exit 4."""
    source = DatabaseAddress("sqlite", path=str(tmp_path / "src.db"))
    make_demo(source, shape=Shape(experiments=2, trials=2, runs=2, epochs=2, batches=2))  # with its damage
    con = sqlite3.connect(source.path)
    with con:
        con.execute(ANSWERS)
        con.execute("INSERT INTO ANSWER SELECT NULL, e.metric_id, NULL, 'on a missing metric' FROM EPOCH_METRIC e "
                    "WHERE e.metric_id NOT IN (SELECT id FROM METRIC)")
        assert con.execute("SELECT count(*) FROM ANSWER").fetchone()[0]
    con.close()
    result = run_cli("migrate", source.path, str(tmp_path / "dst.db"), "--all", "--init", "--strategy", "aggressive")
    assert result.returncode == 0, result.stdout + result.stderr


def test_skipping_a_table_other_copied_tables_link_to_is_refused(tmp_path):
    """Round 52: `--skip-tables` of a table DST has wrote its children's rows without their parents (validate
    FAIL), the verify saying 0 of them arrived. Refused before anything is written; skipping both copies."""
    source = _demo_with(tmp_path, "CREATE TABLE MNOTE (id INTEGER PRIMARY KEY, metric_id INT REFERENCES METRIC(id))",
                        "CREATE TABLE MREPLY (note_id INT REFERENCES MNOTE(id), k INT, PRIMARY KEY (note_id, k))",
                        "INSERT INTO MNOTE (metric_id) SELECT id FROM METRIC",
                        "INSERT INTO MREPLY SELECT id, 1 FROM MNOTE")
    target = str(tmp_path / "dst.db")
    result = run_cli("migrate", source, target, "-e", "1", "--init", "--skip-tables", "MNOTE")
    assert result.returncode == 2 and "MREPLY links to it" in result.stderr, result.stderr
    assert "--skip-tables MNOTE,MREPLY" in result.stderr and "Traceback" not in result.stderr
    assert run_cli("migrate", source, target, "-e", "1", "--init", "--skip-tables", "MNOTE,MREPLY").returncode == 0
    assert run_cli("validate", target, "-q").returncode == 0


def test_a_link_to_its_own_table_by_a_column_that_is_not_its_key_is_followed(tmp_path):
    """Round 53: a self-link to a UNIQUE column (QA.parent_code -> QA.code), or to (run_id, seq) of a table without a
    primary key, was not followed: its key table did not keep the column, and the rows reached through it were left
    out, exit 0, verify "ok"."""
    source = _answers(tmp_path, (1, 1, None, "top"))
    con = sqlite3.connect(source)
    with con:
        con.execute("CREATE TABLE QA (id INTEGER PRIMARY KEY, metric_id INT REFERENCES METRIC(id), code TEXT UNIQUE, "
                    "parent_code TEXT REFERENCES QA(code))")
        con.execute("INSERT INTO QA SELECT 1, metric_id, 'a', NULL FROM ANSWER")
        con.execute("INSERT INTO QA VALUES (2, NULL, 'b', 'a'), (3, NULL, 'c', 'b')")
    con.close()
    target = str(tmp_path / "dst.db")
    result = run_cli("migrate", source, target, "-e", "1", "--init", "--batch-size", "2")
    assert result.returncode == 0, result.stderr
    assert sorted(_rows(target, "SELECT code, parent_code FROM QA")) == [("a", None), ("b", "a"), ("c", "b")]


def test_skip_tables_names_src_tables_and_never_the_experiment_managers(tmp_path):
    """Round 53: `--skip-tables RESULTS_METRIC` copied the METRIC rows it links all the same, and the verify, which
    finds them through it, said DIFFERS for ever; `answer` skipped nothing (import matches any letter case); a name
    SRC lacks was taken silently."""
    source = _answers(tmp_path, (1, 1, None, "top"))
    target = str(tmp_path / "dst.db")
    refused = run_cli("migrate", source, target, "-e", "1", "--init", "--skip-tables", "RESULTS_METRIC")
    assert refused.returncode == 2 and "RESULTS_METRIC is the Experiment Manager's" in refused.stderr, refused.stderr
    unknown = run_cli("migrate", source, target, "-e", "1", "--init", "--skip-tables", "ANSWERS")
    assert unknown.returncode == 2 and "has no table ANSWERS" in unknown.stderr, unknown.stderr
    result = run_cli("migrate", source, target, "-e", "1", "--init", "--skip-tables", "answer")
    assert result.returncode == 0, result.stderr
    assert not _rows(target, "SELECT name FROM sqlite_master WHERE name = 'ANSWER'")


def test_a_key_met_while_copying_names_that_key_and_the_way_out_finishes(tmp_path):
    """Round 55: a UNIQUE key the check before the copy cannot see (a partial index in DST) stopped the copy; the
    hint named the primary key, and for a table whose key is an id it said --force, which copied it all twice.
    The hint names the key met, and its --resume --skip-tables finishes the copy once."""
    source = _demo_with(tmp_path, *TRIAL_NOTES, "UPDATE TRIAL_NOTE SET note = 'same'")
    target = str(tmp_path / "dst.db")
    assert run_cli("init", target).returncode == 0
    con = sqlite3.connect(target)
    with con:
        con.execute(TRIAL_NOTES[0])
        con.execute("CREATE UNIQUE INDEX one_note ON TRIAL_NOTE(note) WHERE note IS NOT NULL")
    con.close()
    stopped = run_cli("migrate", source, target, "-e", "1")
    assert stopped.returncode == 1 and "Traceback" not in stopped.stderr, stopped.stderr
    assert "TRIAL_NOTE's key (note)" in stopped.stderr and "--force" not in stopped.stderr
    assert "with --resume --skip-tables TRIAL_NOTE" in stopped.stderr
    assert run_cli("migrate", source, target, "-e", "1", "--resume", "--skip-tables", "TRIAL_NOTE").returncode == 0
    assert _rows(target, "SELECT count(*) FROM EXPERIMENT") == collections.Counter([(1,)])
    assert run_cli("validate", target, "-q").returncode == 0


def test_import_skips_an_application_table_nothing_else_links_to(tmp_path):
    """Round 55: an import stopped at such a key had no way out but deleting its rows by hand (--skip-tables was
    refused for every table the database has). A table no other table of the file links to may be left out."""
    source = _demo_with(tmp_path, *TRIAL_NOTES, "UPDATE TRIAL_NOTE SET note = 'same'")
    out, target = str(tmp_path / "e1.jsonl"), str(tmp_path / "dst.db")
    assert run_cli("export", source, "-e", "1", "-o", out).returncode == 0
    assert run_cli("init", target).returncode == 0
    con = sqlite3.connect(target)
    with con:
        con.execute(TRIAL_NOTES[0].replace("note TEXT", "note TEXT UNIQUE"))
    con.close()
    stopped = run_cli("import", target, out)
    assert stopped.returncode == 4 and "--resume --skip-tables TRIAL_NOTE" in stopped.stderr, stopped.stderr
    assert run_cli("import", target, out, "--resume", "--skip-tables", "TRIAL_NOTE").returncode == 0
    assert _rows(target, "SELECT count(*) FROM TRIAL_NOTE") == collections.Counter([(0,)])
    assert run_cli("import", target, out, "--force", "--skip-tables", "TRIAL").returncode == 2  # others need it


def test_a_number_is_compared_as_the_text_mariadb_would_store(tmp_path, mysql_address):
    """Round 55: SQLite's integer 7 going into a VARCHAR that holds '07': MariaDB compares '07' = 7 as numbers, and
    the copy was refused, though the row would hold '7'."""
    source = _demo_with(tmp_path, "CREATE TABLE TRIAL_NOTE (id INTEGER PRIMARY KEY, trial_id INT REFERENCES "
                        "TRIAL(id), code UNIQUE)",
                        "INSERT INTO TRIAL_NOTE (trial_id, code) SELECT id, id + 6 FROM TRIAL")
    assert run_cli("init", url_of(mysql_address)).returncode == 0
    with open_database(mysql_address) as db:
        db.execute("CREATE TABLE TRIAL_NOTE (id INT PRIMARY KEY, trial_id INT, code VARCHAR(20) UNIQUE)")
        db.execute("INSERT INTO TRIAL_NOTE VALUES (900, NULL, '07')")
    result = run_cli("migrate", source, url_of(mysql_address), "-e", "1")
    assert result.returncode == 0, result.stderr
    with open_database(mysql_address) as db:
        assert sorted(r[0] for r in db.query("SELECT code FROM TRIAL_NOTE")) == ["07", "7", "8"]


def test_a_table_declared_without_rowid_behind_a_comment_is_copied_and_validated(tmp_path):
    """Round 57: `WITHOUT/**/ROWID` was read as a rowid table: migrate (which reads a table keyed by an index of
    its own by the rowid its walk kept) and validate selected its rowid, exit 70."""
    source = _demo_with(tmp_path, "CREATE TABLE RUN_NOTE (trial_run_id INT REFERENCES TRIAL_RUN(id), k TEXT, v, "
                                  "PRIMARY KEY (trial_run_id, k)) WITHOUT/**/ROWID",
                        "CREATE TABLE RUN_TAG (trial_run_id INT REFERENCES TRIAL_RUN(id), tag TEXT, v, "
                        "PRIMARY KEY (trial_run_id, tag)) WITHOUT -- (no rowid)\n ROWID",
                        "INSERT INTO RUN_NOTE SELECT id, 'k' || id, x'00ff' FROM TRIAL_RUN",
                        "INSERT INTO RUN_TAG SELECT id, 'tag', 0.5 FROM TRIAL_RUN")
    for strategy in ("balanced", "aggressive"):
        copy = str(tmp_path / ("%s.db" % strategy))
        result = run_cli("migrate", source, copy, "-e", "1", "--init", "--strategy", strategy)
        assert result.returncode == 0, result.stderr
        for table in ("RUN_NOTE", "RUN_TAG"):
            mine = "SELECT n.* FROM %s n JOIN TRIAL_RUN r ON r.id = n.trial_run_id JOIN TRIAL t ON t.id = r.trial_id " \
                   "WHERE t.experiment_id = 1" % table
            assert _rows(copy, mine) == _rows(source, mine) and _rows(copy, mine)
    assert run_cli("validate", source, "-q").returncode == 0


def test_keys_a_json_journal_cannot_hold_as_they_are_are_copied_page_by_page_and_resumed(tmp_path):
    """Round 57: a page ending on a BLOB key (or text that is not UTF-8) could not be saved in the journal (exit 70,
    and every --resume the same); such text bound as the next page's bound compared as a BLOB, above every text."""
    from emfix.errors import OperationInterrupted
    from emfix.migrate import migrate_experiment
    source = _demo_with(tmp_path, "CREATE TABLE RUN_KEY (trial_run_id INT REFERENCES TRIAL_RUN(id), k, "
                                  "PRIMARY KEY (trial_run_id, k))",
                        "INSERT INTO RUN_KEY SELECT r.id, v.k FROM TRIAL_RUN r, (SELECT x'01' AS k UNION ALL "
                        "SELECT x'02' UNION ALL SELECT CAST(x'41ff' AS TEXT) UNION ALL SELECT CAST(x'42ff' AS TEXT) "
                        "UNION ALL SELECT 'C' UNION ALL SELECT 9e999 UNION ALL SELECT 1.5) v")
    mine = "SELECT n.trial_run_id, typeof(n.k), hex(n.k) FROM RUN_KEY n JOIN TRIAL_RUN r ON r.id = n.trial_run_id " \
           "JOIN TRIAL t ON t.id = r.trial_id WHERE t.experiment_id = 1"
    whole = str(tmp_path / "whole.db")
    assert run_cli("migrate", source, whole, "-e", "1", "--init", "--batch-size", "1").returncode == 0
    assert _rows(whole, mine) == _rows(source, mine) and len(_rows(source, mine)) == 14  # (two runs)
    address, copy, asked = DatabaseAddress("sqlite", path=source), str(tmp_path / "resumed.db"), []

    def after_some_batches():
        asked.append(1)
        return len(asked) > 40
    with pytest.raises(OperationInterrupted):
        migrate_experiment(address, DatabaseAddress("sqlite", path=copy), 1, init=True, batch_size=1,
                           strategy="aggressive", interrupted=after_some_batches)
    assert run_cli("migrate", source, copy, "-e", "1", "--resume", "--batch-size", "1").returncode == 0
    assert _rows(copy, mine) == _rows(source, mine)
