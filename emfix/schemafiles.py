"""A schema as `schema diff`, `compare-schemas` and the old tool's commands take it: a file (emfix's
`schema show --json`, or the old tool's `extract-schema` layout) or a live database, read into a Catalog."""

import os

from .catalog import CATALOG_FORMAT, catalog_from_dict, load_json_file, read_catalog
from .errors import DamagedInputError, NotFoundError


def schema_from_data(data, origin="the file"):
    """A Catalog from a schema file's JSON, whichever tool wrote it."""
    from . import oldformat
    if oldformat.is_old_schema(data):  # the old tool's `extract-schema` file (emfix's, when it wrote one)
        if isinstance(data.get("emfix"), dict) and data["emfix"].get("format") == CATALOG_FORMAT:
            return catalog_from_dict(data["emfix"], origin)
        return oldformat.catalog_from_old(data, origin)
    if oldformat.is_old_diff(data):
        raise DamagedInputError("%s is a schema diff file, not a schema file" % origin,
                                hint="give it to `emfix generate-migration-plan -d %s`" % origin)
    return catalog_from_dict(data, origin)


def load_catalog(path):
    return schema_from_data(load_json_file(path), path)


def catalog_of(text, password_file=None, counts=False, parse=None):
    """A schema file (emfix's `schema show --json`, or the old tool's extract-schema), or a live database.
    parse(text, password_file): the address of a live one (default address.parse_address; the CLI's
    registers the password it finds, commands.common.address_from_text)."""
    from .address import parse_address
    parse = parse or parse_address
    from .backends import open_database
    if os.path.isfile(text) and not text.endswith((".db", ".sqlite", ".sqlite3")):
        with open(text, "rb") as handle:
            head = handle.read(16)
        if not head.startswith(b"SQLite format 3"):
            return load_catalog(text)
    address = parse(text, password_file)
    if address.is_sqlite and not os.path.exists(address.path):
        raise NotFoundError("%s does not exist" % address.path, hint="give a database or a schema file")
    with open_database(address, readonly=True) as db:
        return read_catalog(db, counts=counts)
