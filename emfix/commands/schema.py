"""emfix schema: the relation graph emfix discovered, parents before children."""

from ..errors import EXIT_OK
from ..schema import discover_graph
from . import common


def register(sub):
    p = common.command(sub, "schema", "show the relation graph emfix discovered (parents before children)",
                "emfix schema experiment.db --json")
    common.add_database_options(p)
    common.finish(p, run)


def run(args, out):
    with common.open_from_args(args, readonly=True) as db:
        graph = discover_graph(db)
    if out.json:
        common.emit_json(graph)
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
