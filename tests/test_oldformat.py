"""The old schema tool's files read whatever they hold (a Catalog or a DamagedInputError, never
another exception), written back so the old readers and emfix read the same schema; each change of a
diff rated where it is computed."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from emfix.catalog import (
    Catalog,
    ColumnInfo,
    IndexInfo,
    TableInfo,
    expected_catalog,
)
from emfix.errors import DamagedInputError, EmfixError
from emfix.foreignkey import ForeignKey
from emfix.oldformat import catalog_from_old, catalog_to_old, catalogs_from_old_diff, diff_to_old
from emfix.schemadiff import diff_catalogs
from emfix.schemafiles import load_catalog, schema_from_data

KEYS = ["database_name", "database_type", "tables", "name", "columns", "indexes", "foreign_keys", "data_type",
        "normalized_type", "is_nullable", "default_value", "is_primary_key", "is_auto_increment", "is_unique",
        "is_primary", "column_name", "referenced_table", "referenced_column", "row_count", "schema_version",
        "format", "emfix", "table_diffs", "source_schema", "target_schema", "old_table", "new_table"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 10 ** 20), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["sqlite", "mysql", "INT", "PRIMARY", "EPOCH", "id"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), inner,
                                                 max_size=6)), max_leaves=40)

column = st.fixed_dictionaries({"name": st.one_of(st.text(min_size=1, max_size=8), scalars)}, optional={
    "data_type": scalars, "is_nullable": scalars, "default_value": scalars, "is_primary_key": scalars,
    "is_auto_increment": scalars})
index = st.fixed_dictionaries({"columns": st.one_of(st.lists(st.text(min_size=1, max_size=5), max_size=3), values)},
                              optional={"name": scalars, "is_unique": scalars, "is_primary": scalars})
foreign = st.fixed_dictionaries({"column_name": scalars, "referenced_table": scalars, "referenced_column": scalars},
                                optional={"name": scalars})
table = st.fixed_dictionaries({"name": st.one_of(st.text(min_size=1, max_size=8), scalars)}, optional={
    "columns": st.one_of(st.lists(column, max_size=4), values), "indexes": st.one_of(st.lists(index, max_size=3),
                                                                                       values),
    "foreign_keys": st.one_of(st.lists(foreign, max_size=3), values), "row_count": scalars})
old_schema = st.fixed_dictionaries({"tables": st.lists(table, max_size=4)}, optional={
    "database_type": scalars, "database_name": scalars, "schema_version": scalars})


def read_or_refuse(read, data):
    try:
        result = read(data)
    except DamagedInputError as exc:
        assert exc.exit_code == 4 and exc.message
        return None
    return result


@settings(max_examples=300)
@given(st.one_of(old_schema, values))
def test_any_schema_json_gives_a_catalog_or_a_damaged_input_error(data):
    result = read_or_refuse(schema_from_data, data)
    if result is not None:
        assert isinstance(result, Catalog)
        for name, t in result.tables.items():
            assert isinstance(name, str) and all(isinstance(c.name, str) for c in t.columns)
        diff_catalogs(result, result)  # what is read can be compared


@settings(max_examples=150)
@given(st.one_of(st.fixed_dictionaries({"table_diffs": st.lists(st.fixed_dictionaries(
    {}, optional={"old_table": table, "new_table": table}), max_size=3)}), values))
def test_any_diff_json_gives_two_catalogs_or_a_damaged_input_error(data):
    result = read_or_refuse(catalogs_from_old_diff, data)
    if result is not None:
        source, target = result
        diff_catalogs(target, source)


@settings(max_examples=100)
@given(st.binary(max_size=200))
def test_any_file_gives_a_catalog_or_an_emfix_error(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("f") / "schema.json"
    path.write_bytes(raw)
    try:
        load_catalog(str(path))
    except EmfixError:
        pass


def test_deep_nesting_is_refused_not_a_crash(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100000 + "]" * 100000)
    try:
        load_catalog(str(path))
    except DamagedInputError as exc:
        assert "JSON" in exc.message
    else:
        raise AssertionError("read")


def sample():
    tables = {
        "PARENT": TableInfo("PARENT", [ColumnInfo("id", "INT", True, None, True), ColumnInfo("k", "INT")], ("id",),
                            [("k",)], [], [], 3),
        "CHILD": TableInfo("CHILD", [ColumnInfo("a", "INT", True), ColumnInfo("b", "INT", True),
                                     ColumnInfo("note", "VARCHAR(20)", False, "'x'")], ("a", "b"), [],
                           [IndexInfo("ix_note", ("note",))],
                           [ForeignKey("CHILD", ("a", "b"), "PARENT", ("id", "k"))], 0),
    }
    return Catalog("mysql", "sample", tables)


def test_the_old_layout_written_without_emfix_section_reads_back_the_same_schema():
    written = catalog_to_old(sample())
    assert {"database_name", "database_type", "version", "schema_version", "extracted_at", "metadata",
            "tables"} <= set(written)
    child = next(t for t in written["tables"] if t["name"] == "CHILD")
    assert [(f["name"], f["column_name"]) for f in child["foreign_keys"]] == [("fk_CHILD_0", "a"), ("fk_CHILD_0", "b")]
    del written["emfix"]
    back = catalog_from_old(json.loads(json.dumps(written)))
    assert diff_catalogs(sample(), back).same
    assert back.tables["CHILD"].foreign_keys[0].child_columns == ("a", "b") and back.tables["PARENT"].rows == 3


def test_ratings_follow_what_a_change_does_to_data():
    a = expected_catalog("sqlite")
    b = expected_catalog("sqlite")
    b.tables["EXPERIMENT"].columns.append(ColumnInfo("legacy", "TEXT"))
    b.tables["EXPERIMENT"].rows = 5
    b.tables["TRIAL"].columns.append(ColumnInfo("empty_col", "TEXT"))
    b.tables["TRIAL"].rows = 0
    b.tables["METRIC"].indexes.append(IndexInfo("ix", ("type",)))
    b.tables["SCRATCH"] = TableInfo("SCRATCH", [ColumnInfo("x", "INT")], rows=None)
    del b.tables["ARTIFACT"].columns[2]  # loc: NOT NULL without a default
    b.tables["ARTIFACT"].rows = 2
    diff = diff_catalogs(a, b)
    rated = {(d.kind, d.table): (d.rating, d.reason) for d in diff.differences}
    assert rated[("extra_column", "EXPERIMENT")] == ("BREAKING", "dropping the column loses its data (5 rows)")
    assert rated[("extra_column", "TRIAL")][0] == "MINOR"
    assert rated[("extra_index", "METRIC")][0] == "COSMETIC"
    assert rated[("extra_table", "SCRATCH")] == ("BREAKING", "dropping the table loses its data (rows unknown: it "
                                                             "may hold data)")
    assert rated[("missing_column", "ARTIFACT")][0] == "BREAKING"
    assert diff.overall_rating == "BREAKING" and diff.to_dict()["ratings"]["COSMETIC"] == 1
    old = diff_to_old(diff, b, a)
    assert old["overall_impact"] == "BREAKING" and old["summary"]["breaking_changes"] == 3


def test_a_new_unique_constraint_in_an_old_diff_gets_its_ddl():
    """(found by the property test above: the index name's lower() was applied to a tuple)"""
    data = {"table_diffs": [{"old_table": {"name": "0"}},
                            {"new_table": {"name": "0", "indexes": [{"columns": ["0"], "is_unique": 1}]}}]}
    source, target = catalogs_from_old_diff(data, "d.json")
    diff = diff_catalogs(target, source)
    assert any("emfix_uq_0_0" in statement for statement in diff.statements), diff.statements
