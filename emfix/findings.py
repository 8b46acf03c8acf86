"""What doctor says about a database, one finding at a time (clustercheck adds the replication and Galera
ones): a check's name, its level, what it found and what to run."""

import dataclasses

OK, WARN, FAIL = "OK", "WARN", "FAIL"


@dataclasses.dataclass
class Finding:
    check: str
    level: str
    message: str
    fix: str = ""
    details: dict = dataclasses.field(default_factory=dict)
