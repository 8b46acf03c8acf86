"""doctor on a MySQL server among others: replica or primary, replication running and its lag; on a
Galera node its state, cluster size and write-set limits against emfix's batches; what a snapshot's
global read lock does to the node; wsrep_sync_wait. On a replica, the repairs doctor suggests are
pointed at the primary, never at the replica's own URL.
"""

import re

from .findings import FAIL, OK, WARN, Finding
from .undo import UNDO_BATCH

# The largest transaction each repair writes by default: (command, rows per transaction). Undo's batches are
# as many values (or rows) as it puts back at once: under wsrep_max_ws_rows 500 they need --batch-size too.
DEFAULT_BATCHES = (("transform-metrics", 10000), ("cleanup-orphans", 5000), ("migrate", 2000),
                   ("undo", UNDO_BATCH), ("fix-json", 500))
WRITING = ("cleanup-orphans", "fix-json", "transform-metrics", "undo", "optimize", "init", "import",
           "schema upgrade", "snapshot restore")


def cluster_findings(address, role, lengths):
    """Findings about replication and Galera; `lengths` is doctor's (values over the limit, widest metric)."""
    found = [_replication(role, address)]
    if role.galera is not None:
        found += _galera(role.galera, lengths)
    return found


def _replication(role, address):
    primary = role.primary_address(address)
    on_primary = "run repairs on the primary%s, never here: a change made on a replica breaks replication" % (
        " (%s)" % primary.target() if primary else "")
    details = {"role": "replica" if role.is_replica else "primary", "read_only": role.read_only,
               "super_read_only": role.super_read_only, "binlog": role.binlog, "binlog_format": role.binlog_format,
               "channels": [{"name": c.name, "source": c.source, "io_running": c.io_running,
                             "sql_running": c.sql_running, "seconds_behind_master": c.lag, "last_error": c.last_error}
                            for c in role.channels]}
    if not role.is_replica:
        binlog = ("binary log ON (%s): replicas apply what emfix writes here" % role.binlog_format if role.binlog
                  else "binary log OFF")
        return Finding("replication", OK, "a primary: read_only OFF, no replication source; %s" % binlog,
                       details=details)
    if not role.channels:
        why = ("user %r may not see its replication status (needs SLAVE MONITOR or REPLICATION CLIENT)"
               % address.user if not role.channels_visible else "no replication source is configured")
        return Finding("replication", WARN, "%s: most likely a replica; %s" % (role.describe(), why),
                       on_primary + " (or, if this server should take writes, SET GLOBAL read_only = 0)", details)
    texts, level = [], WARN
    for c in role.channels:
        name = " %r" % c.name if c.name else ""
        if c.running:
            texts.append("replication%s from %s running, %s s behind" % (name, c.source,
                                                                        "?" if c.lag is None else c.lag))
        else:
            level = FAIL
            texts.append("replication%s from %s STOPPED (IO %s, SQL %s)%s" % (
                name, c.source, c.io_running, c.sql_running, ": " + c.last_error if c.last_error else ""))
    fix = on_primary
    if level == FAIL:
        fix = ("replication must be repaired first (SHOW SLAVE STATUS; the primary holds the reference data); "
               + on_primary)
    return Finding("replication", level, "%s: %s" % (role.describe(), "; ".join(texts)), fix, details)


def _galera(galera, lengths):
    found = []
    details = {"state": galera.state, "cluster_size": galera.cluster_size, "cluster_status": galera.cluster_status,
               "ready": galera.ready, "wsrep_max_ws_rows": galera.max_ws_rows,
               "wsrep_max_ws_size": galera.max_ws_size, "wsrep_sync_wait": galera.sync_wait}
    text = "Galera node %s, cluster of %d (%s component)" % (galera.state, galera.cluster_size, galera.cluster_status)
    if not galera.ready or galera.cluster_status != "Primary":
        found.append(Finding("galera", FAIL, text + "; the node does not take queries (wsrep_ready OFF)",
                             "point emfix at a node that is Synced in the Primary component", details))
    elif galera.state != "Synced":
        found.append(Finding("galera", WARN, text + ": not Synced (a donor, joining or desynced node lags the "
                             "cluster)", "point emfix at a Synced node, or wait until this one is", details))
    else:
        found.append(Finding("galera", OK, text, details=details))
    found.append(_write_set(galera, lengths))
    found.append(Finding("galera_snapshot", OK, "each snapshot (snapshot create, and the one every repair takes "
                         "first) holds FLUSH TABLES WITH READ LOCK for a moment, which briefly desyncs this node (it "
                         "stops applying the cluster's writes until the lock is let go); take them at a quiet time, "
                         "or with --connections 1 (no global lock)"))
    if galera.sync_wait:
        found.append(Finding("sync_wait", OK, "wsrep_sync_wait=%d: reads here wait for the cluster's writes"
                             % galera.sync_wait))
    else:
        found.append(Finding("sync_wait", OK, "wsrep_sync_wait=0: a read on another node right after a repair here "
                             "may not see it yet; sessions that read elsewhere: SET SESSION wsrep_sync_wait = 1"))
    return found


# What a row costs in a write set, measured on a Galera node (MariaDB 10.11, binlog_row_image FULL,
# binlog_annotate_row_events ON): a value rewritten by compare-and-swap travels five times (the row's image
# before and after, and the statement's text, annotated, with the new value and the expected one twice)
# beside about 300 bytes of the row's other columns, event headers and key; a row deleted or copied once
# or twice. A transaction adds about 120 bytes. Each figure here leaves room beyond what was measured.
ROW_OVERHEAD = 500
TRANSACTION_OVERHEAD = 512
VALUE_COPIES = {"transform-metrics": 5, "fix-json": 5, "undo": 5, "migrate": 2, "cleanup-orphans": 1}


def _write_set(galera, lengths):
    """wsrep_max_ws_rows / wsrep_max_ws_size against the largest batch each repair writes by default."""
    widest = lengths[1] if lengths else 0
    over = []
    for command, rows in DEFAULT_BATCHES:
        fits = rows
        if galera.max_ws_rows:
            fits = min(fits, galera.max_ws_rows)
        if galera.max_ws_size:
            per_row = VALUE_COPIES[command] * widest + ROW_OVERHEAD
            fits = min(fits, max(1, (galera.max_ws_size - TRANSACTION_OVERHEAD) // per_row))
        if fits < rows:
            over.append((command, rows, max(1, fits * 9 // 10)))
    limits = "wsrep_max_ws_rows %s, wsrep_max_ws_size %s bytes" % (
        "{:,}".format(galera.max_ws_rows) if galera.max_ws_rows else "unlimited", "{:,}".format(galera.max_ws_size))
    if not over:
        return Finding("write_set", OK, "%s: every repair's default batch fits" % limits)
    return Finding("write_set", WARN, "%s: a default batch is larger than a write set may be (%s)" % (limits, ", ".join(
        "%s %s rows" % (c, "{:,}".format(r)) for c, r, _ in over)), "; ".join(
        "emfix %s ... --batch-size %d" % (c, n) for c, _, n in over),
        {"over": [{"command": c, "default": r, "batch_size": n} for c, r, n in over]})


def point_repairs_at_primary(findings, role, address, target):
    """On a replica, every suggested repair names the primary (or PRIMARY when it is not known) instead of
    this server's URL; commands that only read (validate, snapshot create, doctor) stay as they are."""
    primary = role.primary_address(address)
    there = primary.target() if primary is not None else "PRIMARY"
    pattern = re.compile(r"emfix (%s) %s" % ("|".join(re.escape(c) for c in WRITING), re.escape(target)))
    for finding in findings:
        if finding.fix and pattern.search(finding.fix):
            finding.fix = pattern.sub(lambda m: "emfix %s %s" % (m.group(1), there), finding.fix)
            finding.fix += " (on the primary: this server is a replica)"
    return findings
