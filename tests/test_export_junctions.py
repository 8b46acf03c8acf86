"""exportjunctions: a junction table's row twice in an export file is found before anything is imported, exactly,
however the rows share their linked ids, and within flat memory."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emfix import exportjunctions

COLUMNS = {"EPOCH_METRIC": ["epoch_idx", "epoch_trial_run_id", "metric_id"],
           "batch_artifact": ["batch_idx", "epoch_idx", "trial_run_id", "artifact_id"],  # (any letter case)
           "METRIC": ["id", "type"]}


def first_twice(rows, monkeypatch, max_pages=None, max_shared=None, one_hash=False):
    """JunctionRowsTwice over `rows` ((table, row), in file order), its bounds as given (`one_hash`: every key's
    hash the same, as if each row collided): {table: the first key a row repeats}, and how often the file was
    read again."""
    with monkeypatch.context() as patched:  # (undone after each of hypothesis's examples)
        if max_pages is not None:
            patched.setattr(exportjunctions, "MAX_PAGES", max_pages)
        if max_shared is not None:
            patched.setattr(exportjunctions, "MAX_SHARED", max_shared)
        if one_hash:
            patched.setattr(exportjunctions, "hash", lambda value: 7, raising=False)
        check, reads = exportjunctions.JunctionRowsTwice(), []
        check.begin({"tables": list(COLUMNS), "columns": COLUMNS})
        for table, row in rows:
            check.add(table, row)

        def again():
            reads.append(1)
            return ((n, "", {"table": t, "row": r}) for n, (t, r) in enumerate(rows, 2))
        return {table: key for (table, _columns), key in check.twice(again).items()}, len(reads)


def brute_force(rows):
    seen, found = set(), {}
    for table, row in rows:
        if table in found or table == "METRIC":
            continue
        key = (table, tuple(int(v) for v in row))
        if key in seen:
            found[table] = key[1]
        seen.add(key)
    return found


LINKED = st.integers(0, 6) | st.integers(70000, 70002) | st.integers(-3, -1) | st.integers(1 << 40, (1 << 40) + 1)
ROWS = st.lists(st.one_of(
    st.tuples(st.just("EPOCH_METRIC"), st.tuples(st.integers(0, 2), st.integers(1, 2), LINKED)),
    st.tuples(st.just("batch_artifact"), st.tuples(st.integers(0, 1), st.integers(0, 1), st.integers(1, 2), LINKED)),
    st.tuples(st.just("METRIC"), st.tuples(LINKED, st.just("loss")))), max_size=60)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ROWS, st.sampled_from([None, 0, 1]), st.sampled_from([None, 0, 3]), st.booleans(), st.booleans())
def test_the_first_row_written_twice_is_found_whatever_the_bounds(monkeypatch, rows, max_pages, max_shared, one_hash,
                                                                   as_floats):
    rows = [(t, list(r)) for t, r in rows]
    if as_floats:  # (an export edited by hand: 2.0 is the id 2 to the database)
        rows = [(t, [float(v) if isinstance(v, int) and abs(v) < 1 << 50 else v for v in r]) for t, r in rows]
    found, _reads = first_twice(rows, monkeypatch, max_pages, max_shared, one_hash)
    assert found == brute_force(rows)


def test_a_file_without_such_a_row_is_read_once_though_its_ids_are_shared(monkeypatch):
    rows = [("EPOCH_METRIC", [epoch, 1, 5]) for epoch in range(50)] + [("EPOCH_METRIC", [0, 2, 5])]
    assert first_twice(rows, monkeypatch) == ({}, 0)


def test_a_row_twice_is_found_past_the_bounds_in_the_temporary_database(monkeypatch):
    rows = [("batch_artifact", [i, 0, 1, i]) for i in range(20)] + [("batch_artifact", [3, 0, 1, 3])]
    assert first_twice(rows, monkeypatch, max_pages=0) == ({"batch_artifact": (3, 0, 1, 3)}, 1)


def test_values_that_are_no_id_are_left_to_the_other_checks(monkeypatch):
    rows = [("EPOCH_METRIC", [0, 1, None]), ("EPOCH_METRIC", [0, 1, None]), ("EPOCH_METRIC", [0, 1, "x"]),
            ("EPOCH_METRIC", [0, 1, {"$decimal": "2.0"}]), ("EPOCH_METRIC", [0.0, 1, 2])]
    assert first_twice(rows, monkeypatch) == ({"EPOCH_METRIC": (0, 1, 2)}, 1)
