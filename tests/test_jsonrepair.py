"""jsonrepair.repair: exact repairs, honest refusals, valid input untouched, never a crash."""

import json
import math
import os
import runpy

import pytest
from conftest import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from emfix.jsonrepair import repair

REPAIRED = [  # (stored value, exact strict JSON expected)
    ("{'cat': 0.91, 'dog': 0.87}", '{"cat": 0.91, "dog": 0.87}'),
    ("{'cat': 0.5, 'valid': True, 'note': None}", '{"cat": 0.5, "valid": true, "note": null}'),
    ('{"cat": 0.91, "dog": 0.87,}', '{"cat": 0.91, "dog": 0.87}'),
    ('{"a": [1, 2,],}', '{"a": [1, 2]}'),
    ('{"cat": NaN, "dog": 0.87}', '{"cat": null, "dog": 0.87}'),
    ('{"cat": Infinity, "dog": -Infinity}', '{"cat": null, "dog": null}'),
    ("{'a': nan, 'b': -inf, 'c': inf}", '{"a": null, "b": null, "c": null}'),
    ('{"C:\\data\\cat": 0.5}', '{"C:\\\\data\\\\cat": 0.5}'),
    (json.dumps(json.dumps({"cat": 0.91})), '{"cat": 0.91}'),
    ("", "{}"),
    ("   \n", "{}"),
    ("\ufeff{\"a\": 1}", '{"a": 1}'),
    ("{'cat': np.float32(0.91), 'dog': np.float64(0.5)}", '{"cat": 0.91, "dog": 0.5}'),
    ("{'x': array([1, 2], dtype=float32)}", '{"x": [1, 2]}'),
    ("{'x': np.array([1.5], dtype=np.float64)}", '{"x": [1.5]}'),
    ("{'a': (1, 2)}", '{"a": [1, 2]}'),
    ("{a: 1, b_2: 2}", '{"a": 1, "b_2": 2}'),
    ("{1: 0.5, 2: 0.25}", '{"1": 0.5, "2": 0.25}'),
    ('{"name": "O\'Brien", "ok": True}', '{"name": "O\'Brien", "ok": true}'),
    ("{'O\\'Brien': 1}", '{"O\'Brien": 1}'),
    ("{'it\"s': 1}", '{"it\\"s": 1}'),
    ("{'tab\\there': 1, 'nl': 'a\\nb'}", '{"tab\\there": 1, "nl": "a\\nb"}'),
    ("{'u': '\\u00e9\\x41'}", '{"u": "éA"}'),
    ("{'a': +1, 'b': .5, 'c': 5.}", '{"a": 1, "b": 0.5, "c": 5.0}'),
    ("{'a': 'True inside a string, nan too'}", '{"a": "True inside a string, nan too"}'),
    ('{"a": "x, }"  ,}', '{"a": "x, }"  }'),  # only the comma goes; the rest keeps its spacing
    (b'{"cat": 1}', '{"cat": 1}'),
]

UNREPAIRABLE = [  # (stored value, words of the reason)
    ('{"cat": 0.91, "do', "truncated"),
    ("{'cat': 0.91", "truncated"),
    ('{"a": 1}{"b": 2}', "text after"),
    ("{'a': 1} and some prose", "text after"),
    ("the accuracy was great", "unknown word"),
    ("{1, 2, 3}", "a set"),
    ("{'a': os.system('rm -rf /')}", "never evaluated"),
    ("{'a': __import__('os')}", "never evaluated"),
    (b'{"cat": 0.9\xff\xfe}', "not UTF-8"),
    ("{'a': b'\\x00'}", "bytes literal"),
    ("{'a': 1e999}", "out of range"),
    ("[" * 5000 + "]" * 5000, "nested"),
]

VALID = ['{"a": 1}', '{"cat": 0.91, "dog": 0.87}', '[0.91, 0.87]', '{"C:\\temp\\new": 1}', ' {"a": 1} ', '{}',
         '{"nested": {"x": [1, {"y": null}]}}']


@pytest.mark.parametrize("raw, expected", REPAIRED)
def test_repairs_exactly(raw, expected):
    result = repair(raw)
    assert result.fixed, result
    assert result.value == expected
    json.loads(result.value)  # strict JSON


@pytest.mark.parametrize("raw, words", UNREPAIRABLE)
def test_reports_what_it_cannot_repair_without_guessing(raw, words):
    result = repair(raw)
    assert result.category == "unrepairable" and result.value is None
    assert words in result.reason, result.reason


@pytest.mark.parametrize("raw", VALID)
def test_valid_json_comes_back_byte_for_byte(raw):
    result = repair(raw)
    assert result.category == "valid" and result.value == raw


def test_nan_replacements_are_named():
    assert "NaN/Infinity -> null" in repair('{"a": NaN}').changes


def test_huge_truncated_value_is_refused_quickly():
    result = repair('{"cat": [' + "1," * (5 * 1024 * 1024))
    assert result.category == "unrepairable" and "truncated" in result.reason


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=("Cs",))),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.text(st.characters(blacklist_categories=("Cs",)), max_size=8), children, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_json_document_is_left_unchanged(value):
    text = json.dumps(value)
    result = repair(text)
    assert result.value == text and result.category in ("valid", "repaired")
    if result.category == "repaired":  # only a double-encoded object is ever rewritten
        assert result.changes == ["double-encoded"]


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_python_repr_comes_back_as_the_same_value(value):
    result = repair(repr(value))
    assert result.value is not None, (repr(value), result)
    decoded = json.loads(result.value)
    if isinstance(value, str) and value.strip().startswith("{"):
        return  # a string holding an object is read as double-encoded JSON, by design
    assert decoded == value or (isinstance(value, float) and math.isclose(decoded, value))


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(), st.binary()))
def test_repair_never_raises(raw):
    result = repair(raw)
    assert result.category in ("valid", "repaired", "unrepairable")
    if result.value is not None and result.category == "repaired":
        json.loads(result.value)


def test_string_escape_only_python_reads_is_rewritten_not_called_valid():
    result = repair(repr({"'\x1f": []}))  # repr picks double quotes and writes \x1f, which JSON lacks
    assert result.category == "repaired" and json.loads(result.value) == {"'\x1f": []}


def test_raw_control_character_inside_a_string_is_escaped_and_named():
    result = repair('{"a\x1fb": 1}')  # strict JSON refuses a raw control character in a string
    assert result.category == "repaired" and "control characters escaped" in result.changes
    assert json.loads(result.value) == {"a\x1fb": 1}


SHAPES = runpy.run_path(os.path.join(ROOT, "bench", "bench_repair_sizes.py"))["SHAPES"]  # one list of shapes


@pytest.mark.slow  # 10 s of large values: the default Python runs it, the other Pythons skip it in CI
@settings(max_examples=len(SHAPES) * 2, deadline=None)
@given(st.sampled_from(sorted(SHAPES)), st.sampled_from(["0.123", "1", "-2.5e-3", "7"]))
def test_repair_time_grows_linearly_with_size(shape, number):
    """A few MB of any shape in well under a second per MB (it was quadratic: 7.5 MB took 6.4 s)."""
    import time
    timings = []
    for n in (100_000, 400_000):
        text = SHAPES[shape](n, number)
        best = min(_timed(time, text) for _ in range(2))
        timings.append(best / (len(text) / 1e6))
    small, large = timings
    assert large < 2.0, (shape, "%.2f s per MB" % large)  # a gross bound (about 0.1-0.7 s/MB here, by load)
    assert large < max(small, 0.02) * 3, (shape, "%.3f -> %.3f s per MB: not linear" % (small, large))


def _timed(time, text):
    """CPU time of this process: other processes on a loaded machine (parallel test workers) do not count."""
    started = time.process_time()
    repair(text)
    return time.process_time() - started


def test_a_long_number_alone_in_a_sequence_is_read_like_a_short_one():
    """A run of digits with no comma in it was cut at rfind's -1 and reported as nested too deep."""
    long = "1" * 70
    assert repair('{"a": (%s)}' % long).value == '{"a": [%s]}' % long
    assert repair('{"a": (%s)}' % long).value.replace(long, "5") == repair('{"a": (5)}').value


def test_a_quarantine_that_cannot_be_written_says_why_and_only_a_full_disk_is_no_space():
    import errno
    import sqlite3

    from emfix import quarantine
    from emfix.errors import NoSpaceError, NotWritableError
    full = quarantine.write_error(OSError(errno.ENOSPC, "No space left on device"), "q.db", "nothing was deleted")
    assert isinstance(full, NoSpaceError) and "disk is full" in full.message
    sqlite_full = quarantine.write_error(sqlite3.OperationalError("database or disk is full"), "q.db", "x")
    assert isinstance(sqlite_full, NoSpaceError)
    denied = quarantine.write_error(OSError(errno.EACCES, "Permission denied"), "q.db", "nothing was deleted")
    assert isinstance(denied, NotWritableError) and "Permission denied" in denied.message
    assert "space" not in denied.message + (denied.hint or "")
