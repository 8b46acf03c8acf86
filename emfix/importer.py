"""emfix import: an export file back into a database, with every auto-increment id shifted.

The file is read twice, as a stream both times: first to check it (format, every line, the
trailer's counts and SHA-256), then to insert. Each auto-increment id gets an offset that puts it
past the largest id already there; every column that refers to one (through the relation graph,
composite keys included) moves with it, so nothing collides and every link still holds.
"""

import hashlib
import json
import time

from .backends import open_database
from .errors import DamagedInputError, UsageError
from .export import AUTO_ID_TABLES, FORMAT, ImportResult, decode_value
from .hierarchy import ROOT
from .progress import NoProgress
from .schema import discover_graph

BATCH = 1000


def id_owner(graph, table, column, seen=None):
    """The auto-increment table whose id this column holds (following foreign keys), or None."""
    seen = seen or set()
    if (table, column) in seen:
        return None
    seen.add((table, column))
    if table in AUTO_ID_TABLES and column == "id" and tuple(graph.primary_keys.get(table) or ()) == ("id",):
        return table
    for rel in graph.relations_of(table):
        if column in rel.child_columns:
            parent_column = rel.parent_columns[rel.child_columns.index(column)]
            owner = id_owner(graph, rel.parent, parent_column, seen)
            if owner:
                return owner
    return None


def _records(path):
    """(line number, parsed object) for every line; a line that is not JSON is damage."""
    try:
        handle = open(path, encoding="utf-8")
    except OSError as exc:
        raise UsageError("cannot read %s: %s" % (path, exc.strerror)) from None
    with handle:
        for number, line in enumerate(handle, 1):
            try:
                yield number, line, json.loads(line)
            except ValueError:
                raise DamagedInputError("%s line %d is not valid JSON (corrupted or cut off)" % (path, number),
                                        hint="export the experiment again") from None


def check_file(path):
    """Read the whole file once; return (header, trailer) or raise DamagedInputError."""
    header, trailer, counts, digest = None, None, {}, hashlib.sha256()
    for number, line, record in _records(path):
        if number == 1:
            meta = record.get("header") if isinstance(record, dict) else None
            if not isinstance(meta, dict) or "tables" not in record or "columns" not in record:
                raise DamagedInputError("%s is not an emfix jsonl export (no header)" % path,
                                        hint="import reads files written by `emfix export --format jsonl`")
            if meta.get("format") != FORMAT:
                raise UsageError("%s was written in format %r; this emfix reads %r" % (
                    path, meta.get("format"), FORMAT), hint="use the emfix version that wrote it, or newer")
            header = record
            continue
        if trailer is not None:
            raise DamagedInputError("%s has lines after its trailer" % path)
        if "trailer" in record:
            trailer = record["trailer"]
            continue
        digest.update(line.encode("utf-8"))
        counts[record["table"]] = counts.get(record["table"], 0) + 1
    if header is None:
        raise DamagedInputError("%s is empty" % path)
    if trailer is None:
        raise DamagedInputError("%s ends without its trailer: the export was cut off" % path,
                                hint="export the experiment again; nothing was imported")
    stated = {k: v for k, v in trailer.get("counts", {}).items() if v}
    if trailer.get("sha256") != digest.hexdigest() or stated != counts:
        raise DamagedInputError("%s does not match its own checksum: it was changed or damaged" % path)
    return header, trailer


def import_file(address, path, experiment_title=None, retry_policy=None, progress=None):
    progress = progress or NoProgress()
    started = time.perf_counter()
    header, trailer = check_file(path)
    with open_database(address, retry_policy=retry_policy) as db:
        graph = discover_graph(db)
        missing = [t for t in header["tables"] if t not in graph.tables]
        if missing:
            raise UsageError("%s lacks tables the export has: %s" % (address.display(), ", ".join(missing)),
                             hint="create the schema first: emfix init %s" % address.display())
        offsets = {}
        for table, low in trailer.get("min_ids", {}).items():
            top = db.scalar("SELECT max(%s) FROM %s" % (db.quote("id"), db.quote(table))) or 0
            offsets[table] = int(top) + 1 - int(low)
        columns = header["columns"]
        shifts = {t: [(i, offsets.get(id_owner(graph, t, c), 0)) for i, c in enumerate(columns[t])
                      if offsets.get(id_owner(graph, t, c))] for t in header["tables"]}
        counts = {}
        with db.transaction():
            if db.dialect == "mysql":
                db.execute("SET SESSION FOREIGN_KEY_CHECKS = 0")  # the subtree may hold rows whose parent is gone
            batch, current = [], None
            for number, _line, record in _records(path):
                if number == 1 or "trailer" in record:
                    continue
                table = record["table"]
                if table != current and batch:
                    _insert(db, current, columns[current], batch)
                    batch = []
                current = table
                row = [decode_value(v) for v in record["row"]]
                for index, shift in shifts[table]:
                    if isinstance(row[index], int):
                        row[index] += shift
                if table == ROOT and experiment_title is not None and "title" in columns[table]:
                    row[columns[table].index("title")] = experiment_title
                batch.append(tuple(row))
                counts[table] = counts.get(table, 0) + 1
                if len(batch) >= BATCH:
                    _insert(db, table, columns[table], batch)
                    batch = []
                    progress.update("%s: %d rows" % (table, counts[table]))
            if batch:
                _insert(db, current, columns[current], batch)
            if db.dialect == "mysql":
                db.execute("SET SESSION FOREIGN_KEY_CHECKS = 1")
    progress.done()
    new_id = header["header"]["experiment_id"] + offsets.get(ROOT, 0)
    return ImportResult(path, new_id, counts, offsets, time.perf_counter() - started)


def _insert(db, table, columns, rows):
    db.executemany("INSERT INTO %s (%s) VALUES (%s)" % (db.quote(table), db.quote_columns(columns),
                                                        ", ".join("?" * len(columns))), rows, batch_size=BATCH)
