from emfix.backends import open_database
from emfix.schema import BUILTIN_RELATIONS, EM_TABLE_NAMES, create_schema, discover_graph

# The relation table of the Experiment Manager schema document, written out by hand.
EXPECTED_RELATIONS = {
    ("TRIAL", ("experiment_id",), "EXPERIMENT", ("id",)),
    ("TRIAL_RUN", ("trial_id",), "TRIAL", ("id",)),
    ("RESULTS", ("trial_run_id",), "TRIAL_RUN", ("id",)),
    ("EPOCH", ("trial_run_id",), "TRIAL_RUN", ("id",)),
    ("BATCH", ("epoch_idx", "trial_run_id"), "EPOCH", ("idx", "trial_run_id")),
    ("EXPERIMENT_ARTIFACT", ("experiment_id",), "EXPERIMENT", ("id",)),
    ("EXPERIMENT_ARTIFACT", ("artifact_id",), "ARTIFACT", ("id",)),
    ("TRIAL_ARTIFACT", ("trial_id",), "TRIAL", ("id",)),
    ("TRIAL_ARTIFACT", ("artifact_id",), "ARTIFACT", ("id",)),
    ("TRIAL_RUN_ARTIFACT", ("trial_run_id",), "TRIAL_RUN", ("id",)),
    ("TRIAL_RUN_ARTIFACT", ("artifact_id",), "ARTIFACT", ("id",)),
    ("RESULTS_METRIC", ("results_id",), "RESULTS", ("trial_run_id",)),
    ("RESULTS_METRIC", ("metric_id",), "METRIC", ("id",)),
    ("RESULTS_ARTIFACT", ("results_id",), "RESULTS", ("trial_run_id",)),
    ("RESULTS_ARTIFACT", ("artifact_id",), "ARTIFACT", ("id",)),
    ("EPOCH_METRIC", ("epoch_idx", "epoch_trial_run_id"), "EPOCH", ("idx", "trial_run_id")),
    ("EPOCH_METRIC", ("metric_id",), "METRIC", ("id",)),
    ("EPOCH_ARTIFACT", ("epoch_idx", "epoch_trial_run_id"), "EPOCH", ("idx", "trial_run_id")),
    ("EPOCH_ARTIFACT", ("artifact_id",), "ARTIFACT", ("id",)),
    ("BATCH_METRIC", ("batch_idx", "epoch_idx", "trial_run_id"), "BATCH", ("idx", "epoch_idx", "trial_run_id")),
    ("BATCH_METRIC", ("metric_id",), "METRIC", ("id",)),
    ("BATCH_ARTIFACT", ("batch_idx", "epoch_idx", "trial_run_id"), "BATCH", ("idx", "epoch_idx", "trial_run_id")),
    ("BATCH_ARTIFACT", ("artifact_id",), "ARTIFACT", ("id",)),
}
BATCH_TABLES = {"BATCH", "BATCH_METRIC", "BATCH_ARTIFACT"}


def _relations(graph):
    return {(r.child, r.child_columns, r.parent, r.parent_columns) for r in graph.relations}


def test_init_builds_schema_whose_declared_graph_equals_the_document(address):
    with open_database(address, create=True) as db:
        assert create_schema(db) == list(EM_TABLE_NAMES)
        graph = discover_graph(db)
    assert _relations(graph) == EXPECTED_RELATIONS
    assert all(r.source == "declared" for r in graph.relations)
    assert graph.generation == 2 and graph.missing_tables == []


def test_init_twice_creates_nothing_new(address):
    with open_database(address, create=True) as db:
        create_schema(db)
        assert create_schema(db) == []


def test_first_generation_schema_has_no_batch_relations(address):
    with open_database(address, create=True) as db:
        create_schema(db, generation=1)
        graph = discover_graph(db)
    assert graph.generation == 1
    assert _relations(graph) == {r for r in EXPECTED_RELATIONS if r[0] not in BATCH_TABLES}
    assert graph.missing_tables == []


def test_builtin_relations_equal_the_document():
    assert {(r.child, r.child_columns, r.parent, r.parent_columns) for r in BUILTIN_RELATIONS} == EXPECTED_RELATIONS


def test_database_without_declared_keys_gets_builtin_graph(sqlite_address):
    from emfix.schema import EM_TABLES, column_type
    with open_database(sqlite_address, create=True) as db:
        for table in EM_TABLES:  # the same tables, with no FOREIGN KEY clauses
            cols = ", ".join('"%s" %s' % (c.name, column_type("sqlite", c)) for c in table.columns)
            db.execute('CREATE TABLE "%s" (%s, PRIMARY KEY (%s))' % (
                table.name, cols, ", ".join('"%s"' % c for c in table.primary_key)))
        assert all(not db.foreign_keys(t) for t in db.tables())
        graph = discover_graph(db)
    assert _relations(graph) == EXPECTED_RELATIONS
    assert {r.source for r in graph.relations} == {"builtin"}


def test_unknown_tables_are_kept_and_ordered(sqlite_address):
    with open_database(sqlite_address, create=True) as db:
        create_schema(db)
        db.execute('CREATE TABLE "NOTES" (id INTEGER PRIMARY KEY, trial_id INT REFERENCES "TRIAL"(id))')
        graph = discover_graph(db)
    assert "NOTES" in graph.tables
    assert ("NOTES", ("trial_id",), "TRIAL", ("id",)) in _relations(graph)
    order = graph.parent_first()
    assert order.index("TRIAL") < order.index("NOTES")


def test_parent_first_puts_every_parent_before_its_children(address):
    with open_database(address, create=True) as db:
        create_schema(db)
        graph = discover_graph(db)
    order = graph.parent_first()
    assert sorted(order) == sorted(graph.tables)
    for rel in graph.relations:
        assert order.index(rel.parent) < order.index(rel.child), rel
    assert graph.child_first() == list(reversed(order))


def test_missing_tables_are_named(sqlite_address):
    with open_database(sqlite_address, create=True) as db:
        create_schema(db)
        db.execute('DROP TABLE "RESULTS_ARTIFACT"')
        graph = discover_graph(db)
    assert graph.missing_tables == ["RESULTS_ARTIFACT"]
