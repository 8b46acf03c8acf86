"""The one description of a foreign key, wherever it comes from: a database's declaration, a schema file,
or the Experiment Manager's own relations (the graph every capability walks)."""

import dataclasses
from typing import Tuple


@dataclasses.dataclass(frozen=True)
class ForeignKey:
    """child(child_columns) references parent(parent_columns).

    `name`: the constraint's name where the database gives one (not part of its identity).
    `source`: "declared" (the database or file says so) or "builtin" (the Experiment Manager's own
    relation, used for a known table that declares none)."""

    child: str
    child_columns: Tuple[str, ...]
    parent: str
    parent_columns: Tuple[str, ...]
    name: str = dataclasses.field(default="", compare=False)
    source: str = "declared"

    def describe(self):
        return "%s(%s) -> %s(%s)" % (self.child, ", ".join(self.child_columns),
                                     self.parent, ", ".join(self.parent_columns))

    def to_dict(self):
        """The graph's JSON form (`validate --json`, `schema --json`)."""
        return {"child": self.child, "child_columns": list(self.child_columns), "parent": self.parent,
                "parent_columns": list(self.parent_columns), "source": self.source}
