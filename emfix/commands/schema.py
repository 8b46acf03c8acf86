"""emfix schema: the relation graph emfix discovered, parents before children."""

from ..errors import EXIT_OK
from ..schema import discover_graph
from .common import add_database_options, add_output_options, command, emit_json, open_from_args


def register(sub):
    p = command(sub, "schema", "show the relation graph emfix discovered (parents before children)",
                "emfix schema experiment.db --json")
    add_database_options(p)
    add_output_options(p)
    p.set_defaults(func=run)


def run(args, out):
    with open_from_args(args, readonly=True) as db:
        graph = discover_graph(db)
    if out.json:
        emit_json(graph)
        return EXIT_OK
    out.lines(schema_lines(graph))
    return EXIT_OK


def schema_lines(graph):
    yield "schema generation %d, %d tables, %d relations" % (graph.generation, len(graph.tables), len(graph.relations))
    if graph.missing_tables:
        yield "missing Experiment Manager tables: %s" % ", ".join(graph.missing_tables)
    yield "parent -> child order: %s" % ", ".join(graph.parent_first())
    for rel in graph.relations:
        yield "  %s%s" % (rel.describe(), "  (built-in: not declared)" if rel.source == "builtin" else "")
    for rel in graph.unresolved:
        yield "  %s  (parent table missing)" % rel.describe()
