"""emfix doctor: one screen that says what is wrong with a database's surroundings and what to run.

Read-only. Each check yields Findings (OK / WARN / FAIL, one line of why, the command that fixes
it). The checks cover what the cookbook's "Connection Problems" and "Performance Degradation"
sections and its resource checks ask about: reaching the database, locks, journal files, storage
engines, free disk and memory, oversized metric values, unindexed foreign keys, table sizes, and
what emfix last found.
"""

import dataclasses
import datetime
import os
import shutil
import sqlite3
import stat
import time
from typing import List, Optional

from . import history
from .backends import open_database
from .backends.sqlite import processes_with_open
from .errors import DamagedInputError, EmfixError, PrivilegeError, SchemaError
from .fileutil import uri_path
from .findings import FAIL, OK, WARN, Finding
from .progress import BASE_MB, DEFAULT_BATCH, format_mb
from .snapshot.restoremark import describe as describe_restore
from .snapshot.restoremark import unfinished_restore

LARGE_JSON = 10000  # the cookbook's LENGTH(per_label_val) > 10000
MYSQL_DEFAULT_PACKET = 16 * 1024 * 1024
WAL_WARN_BYTES = 256 * 1024 * 1024
SNAPSHOT_MAX_AGE_DAYS = 7


@dataclasses.dataclass
class DoctorReport:
    database: str
    findings: List[Finding]
    connected: bool
    seconds: float = 0.0
    exit_code: int = 0  # of the error that kept it from connecting
    error: Optional[EmfixError] = None  # that error (the command words its hint: commands.common.hint_for)

    @property
    def status(self):
        levels = {f.level for f in self.findings}
        return FAIL if FAIL in levels else WARN if WARN in levels else OK


def doctor(address, *, retry_policy=None, snapshot_dir=None, command_target=None):
    """command_target: how the fix commands should name the database (defaults to its display form)."""
    from .retry import RetryPolicy
    retry_policy = retry_policy or RetryPolicy()
    target = command_target or address.display()
    started = time.perf_counter()
    findings = []
    if address.is_sqlite:
        findings += _sqlite_file(address.path, target)
        if os.path.isfile(address.path):
            findings.append(_sqlite_lock(os.path.abspath(address.path), target))
    connect_started = time.perf_counter()
    try:
        db = open_database(address, readonly=address.is_sqlite, retry_policy=retry_policy)
    except DamagedInputError as exc:  # it opened, and what is there is damaged: a finding, not a failure to run
        findings.append(Finding("file", FAIL, str(exc), "restore a snapshot: emfix snapshot restore %s" % target))
        return DoctorReport(address.display(), findings, True, time.perf_counter() - started)
    except EmfixError as exc:
        findings.append(Finding("connect", FAIL, str(exc), exc.hint or "", {"policy": retry_policy.describe()}))
        return DoctorReport(address.display(), findings, False, time.perf_counter() - started, exc.exit_code, exc)
    with db:
        ms = (time.perf_counter() - connect_started) * 1000
        findings.append(Finding("connect", OK, "connected in %.0f ms; a locked or unreachable database is retried %s"
                                % (ms, retry_policy.describe()), details={"connect_ms": round(ms, 1)}))
        from .schema import discover_graph
        try:
            graph = discover_graph(db)
        except SchemaError as exc:
            findings.append(Finding("schema", FAIL, str(exc), "emfix init %s (if this is the right database)" % target))
            return DoctorReport(address.display(), findings, True, time.perf_counter() - started)
        if db.dialect == "sqlite":
            findings += _sqlite_state(db, target)
            damage = db.quick_check()  # one read of the file (0.8 s on ten million rows)
            findings.append(Finding("integrity", FAIL, "the file is damaged: %s" % damage,
                                    "emfix snapshot restore %s (or the sqlite3 shell's .recover)" % target)
                            if damage else Finding("integrity", OK, "PRAGMA quick_check: ok"))
        else:
            findings += _mysql_state(db, target)
        server_end = len(findings)  # replication and Galera findings go here, once the metric lengths are known
        findings.append(_schema_finding(graph, target))
        sizes = _table_sizes(db, graph)
        findings.append(_sizes_finding(sizes))
        findings += _schema_checks(db, target)
        lengths = _metric_lengths(db, graph)
        findings += _large_json(db, lengths, target)
        findings += _disk(address, sizes, snapshot_dir, target)
        findings.append(_memory(lengths, target))
        role = db.replication_role(probe=False) if db.dialect == "mysql" else None
        if role is not None:
            from .clustercheck import cluster_findings
            findings[server_end:server_end] = cluster_findings(address, role, lengths)
    findings += _last_results(address, snapshot_dir, target)
    if role is not None and role.is_replica:
        from .clustercheck import point_repairs_at_primary
        point_repairs_at_primary(findings, role, address, target)
    return DoctorReport(address.display(), findings, True, time.perf_counter() - started)


# -- SQLite: the file, its journal, and who holds it ------------------------------------------

def _sqlite_file(path, target):
    path = os.path.abspath(path)
    if not os.path.exists(path):
        return []  # the connect check says it, with the hint
    info = os.stat(path)
    mode = stat.filemode(info.st_mode)
    details = {"path": path, "size": info.st_size, "mode": mode, "uid": info.st_uid}
    found = []
    folder = os.path.dirname(path)
    if not os.access(path, os.W_OK) or not os.access(folder, os.W_OK):
        what = path if not os.access(path, os.W_OK) else "its folder %s" % folder
        found.append(Finding("file", WARN, "%s, %s bytes; %s is not writable by this user: checks work, repairs "
                             "and snapshots next to it do not" % (mode, "{:,}".format(info.st_size), what),
                             "chmod u+w %s (or run emfix as the database's owner)" % what, details))
    else:
        found.append(Finding("file", OK, "%s, %s bytes, writable" % (mode, "{:,}".format(info.st_size)),
                             details=details))
    try:
        journal = os.path.getsize(path + "-journal")
    except OSError:  # none, or a writer's commit deleted it just now
        journal = 0
    if journal and not processes_with_open(path):
        found.append(Finding("journal", WARN, "a rollback journal (%s bytes) is left by a writer that died "
                             "mid-transaction; the next open rolls it back" % "{:,}".format(journal),
                             "emfix validate %s (opening recovers it)" % target))
    return found


def _sqlite_state(db, target):
    path = os.path.abspath(db.address.path)
    found = []
    mode = str(db.scalar("PRAGMA journal_mode")).lower()
    extra = {s: os.path.getsize(path + s) for s in ("-wal", "-shm", "-journal") if os.path.exists(path + s)}
    text = ", ".join("%s %s bytes" % (s, "{:,}".format(n)) for s, n in extra.items()) or "no -wal/-shm/-journal file"
    if extra.get("-wal", 0) > WAL_WARN_BYTES:
        found.append(Finding("journal", WARN, "journal_mode=%s; %s: the WAL is not being checkpointed (a reader that "
                             "never finishes?)" % (mode, text), "emfix optimize %s (checkpoints the WAL)" % target,
                             {"journal_mode": mode, "files": extra}))
    else:
        found.append(Finding("journal", OK, "journal_mode=%s; %s" % (mode, text),
                             details={"journal_mode": mode, "files": extra}))
    return found


def _sqlite_lock(path, target):
    """Try for the write lock without waiting, then let go at once: nothing is written."""
    holders = processes_with_open(path)
    who = ", ".join("pid %d (%s)" % h for h in holders) or "a process this user cannot see"
    probe = None
    try:
        writable = os.access(path, os.W_OK) and os.access(os.path.dirname(path), os.W_OK)
        uri = "file:%s?mode=%s" % (uri_path(path), "rw" if writable else "ro")
        probe = sqlite3.connect(uri, uri=True, timeout=0, isolation_level=None)
        probe.execute("BEGIN IMMEDIATE" if writable else "BEGIN")
        probe.execute("SELECT count(*) FROM sqlite_master").fetchone()
        probe.execute("ROLLBACK")
    except sqlite3.DatabaseError as exc:
        if "locked" in str(exc).lower() or "busy" in str(exc).lower():
            return Finding("lock", WARN, "another process holds the database's lock right now: %s" % who,
                           "wait for it, or stop it; emfix commands retry for --lock-timeout seconds "
                           "(emfix validate %s --lock-timeout 120)" % target, {"holders": holders})
        return Finding("lock", WARN, "could not probe the lock: %s" % exc)
    finally:
        if probe is not None:
            probe.close()
    readers = ", ".join("pid %d (%s)" % h for h in holders)
    return Finding("lock", OK, "no lock held" + ("; open in %s" % readers if readers else ""),
                   details={"holders": holders})


# -- MySQL: server, engines, foreign_key_checks, lock waits -------------------------------------

def _mysql_state(db, target):
    found = []
    version = db.server_version()
    found.append(Finding("server", OK, "MySQL/MariaDB %s" % version, details={"version": version}))
    unfinished = unfinished_restore(db)
    if unfinished is not None:  # a restore killed outright: its mark is all that says so (restoremark.py)
        message, hint = describe_restore(unfinished, target)
        found.append(Finding("restore", WARN if unfinished["running"] else FAIL, message, hint, unfinished))
    engines = db.query("SELECT table_name, engine FROM information_schema.tables WHERE table_schema = DATABASE() "
                       "AND table_type = 'BASE TABLE'")
    other = [(t, e) for t, e in engines if (e or "").lower() != "innodb"]
    if other:
        names = ", ".join("%s (%s)" % te for te in other)
        found.append(Finding("engine", FAIL, "%s ignore foreign keys and transactions: orphans appear unnoticed and "
                             "a crash can leave half a batch" % names,
                             "emfix snapshot create %s --verify, then ALTER TABLE <table> ENGINE=InnoDB for each; "
                             "then emfix validate %s" % (target, target), {"tables": dict(other)}))
    else:
        found.append(Finding("engine", OK, "every table is InnoDB (%d tables)" % len(engines)))
    checks = db.query("SELECT @@GLOBAL.foreign_key_checks, @@SESSION.foreign_key_checks")[0]
    if not int(checks[0]):
        found.append(Finding("foreign_key_checks", WARN, "foreign_key_checks is OFF server-wide: new orphans are "
                             "accepted silently", "SET GLOBAL foreign_key_checks = 1; then emfix validate %s" % target))
    else:
        found.append(Finding("foreign_key_checks", OK, "foreign_key_checks is ON"))
    found.append(_mysql_locks(db, target))
    packet = int(db.scalar("SELECT @@max_allowed_packet") or 0)
    found.append(Finding("max_allowed_packet", OK, "max_allowed_packet %s bytes" % "{:,}".format(packet),
                         details={"max_allowed_packet": packet}))
    return found


def _mysql_locks(db, target):
    try:
        return _mysql_lock_finding(db, target)
    except PrivilegeError as exc:  # the check needs PROCESS; the rest of doctor does not
        return Finding("lock", WARN, "cannot see lock waits and long transactions: %s" % exc.message, exc.hint)


def _mysql_lock_finding(db, target):
    waits = 0
    if db.scalar("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'information_schema' "
                 "AND table_name = 'INNODB_LOCK_WAITS'"):  # MariaDB; MySQL 8 moved it to performance_schema
        waits = int(db.scalar("SELECT count(*) FROM information_schema.innodb_lock_waits") or 0)
    old = db.query("SELECT trx_mysql_thread_id, TIMESTAMPDIFF(SECOND, trx_started, NOW()) FROM "
                   "information_schema.innodb_trx WHERE trx_started < NOW() - INTERVAL 60 SECOND")
    if waits or old:
        parts = []
        if waits:
            parts.append("%d lock waits now" % waits)
        if old:
            parts.append("transactions open for over a minute: %s" % ", ".join(
                "thread %s (%ss)" % (t, s) for t, s in old[:5]))
        return Finding("lock", WARN, "; ".join(parts), "wait, or end those sessions (KILL <thread>); emfix retries "
                       "for --lock-timeout seconds (emfix validate %s --lock-timeout 120)" % target,
                       {"lock_waits": waits, "long_transactions": [list(r) for r in old]})
    return Finding("lock", OK, "no lock waits, no long transactions")


# -- both backends ------------------------------------------------------------------------------

def _table_sizes(db, graph):
    """{table: (rows, bytes or None)}: exact counts on SQLite, the server's estimates on MySQL."""
    if db.dialect == "mysql":
        return {t: (int(r or 0), int(b or 0)) for t, r, b in db.query(
            "SELECT table_name, table_rows, data_length + index_length FROM information_schema.tables "
            "WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'")}
    return {t: (int(db.scalar("SELECT count(*) FROM %s" % db.quote(t)) or 0), None) for t in graph.tables}


def _schema_finding(graph, target):
    missing = graph.missing_tables
    if not missing:
        return Finding("schema", OK, "every Experiment Manager table is there (schema generation %d)" % (
            graph.generation))
    level = FAIL if "EXPERIMENT" in missing else WARN
    return Finding("schema", level, "%d Experiment Manager tables are missing: %s%s" % (
        len(missing), ", ".join(missing), " (is this the right database?)" if level == FAIL else ""),
        "emfix init %s (creates only the missing tables)" % target, {"missing": missing})


def _sizes_finding(sizes):
    total = sum(r for r, _ in sizes.values())
    top = sorted(sizes.items(), key=lambda kv: -kv[1][0])[:3]
    return Finding("tables", OK, "%d tables, %s rows; largest %s" % (len(sizes), "{:,}".format(total), ", ".join(
        "%s %s" % (t, "{:,}".format(r)) for t, (r, _) in top)), details={t: r for t, (r, _) in sizes.items()})


def _schema_checks(db, target):
    """The checks `analyze-schema` writes (schemacheck): foreign keys without an index, tables without a
    primary key, complexity: one set of checks, two spellings."""
    from .catalog import read_catalog
    from .schemacheck import WARN as NEEDS_WORK
    from .schemacheck import analyze_catalog
    fixes = {"indexes": "emfix optimize %s" % target}
    return [Finding(f.check, f.level, f.message, fixes.get(f.check, "") if f.level == NEEDS_WORK else "", f.details)
            for f in analyze_catalog(read_catalog(db, counts=False)).findings]


def _metric_lengths(db, graph):
    """(values over LARGE_JSON, the longest value's length) in one scan; None without METRIC.per_label_val."""
    if "METRIC" not in graph.tables or "per_label_val" not in graph.columns["METRIC"]:
        return None
    length = "LENGTH(%s)" % db.quote("per_label_val")
    count, widest = db.query("SELECT COALESCE(sum(CASE WHEN %s > ? THEN 1 ELSE 0 END), 0), COALESCE(max(%s), 0) "
                             "FROM %s" % (length, length, db.quote("METRIC")), (LARGE_JSON,))[0]
    return int(count), int(widest)


def _large_json(db, lengths, target):
    if lengths is None:
        return []
    count, largest = lengths
    if not count:
        return [Finding("metric_size", OK, "no metric JSON value over %s bytes" % "{:,}".format(LARGE_JSON))]
    q = db.quote
    length = "LENGTH(%s)" % q("per_label_val")
    rows = db.query("SELECT %s, %s FROM %s WHERE %s > ? ORDER BY 2 DESC LIMIT 5" % (
        q("id"), length, q("METRIC"), length), (LARGE_JSON,))
    text = "%s metric values over %s bytes; largest: %s" % ("{:,}".format(count), "{:,}".format(LARGE_JSON), ", ".join(
        "id %s (%s bytes)" % (i, "{:,}".format(int(n))) for i, n in rows))
    fix = "emfix migrate %s DST -e ID --max-memory 200 (batches sized by row size)" % target
    if largest > MYSQL_DEFAULT_PACKET:
        text += "; over MySQL's default max_allowed_packet (16 MB), so copying it to MySQL fails"
        fix = "SET GLOBAL max_allowed_packet = %d on the MySQL side, then %s" % (2 * largest, fix)
    return [Finding("metric_size", WARN, text, fix, {"count": count, "largest": [list(r) for r in rows]})]


def _disk(address, sizes, snapshot_dir, target):
    from .snapshot import default_snapshot_dir
    if address.is_sqlite:
        need = os.path.getsize(address.path)
        places = {"database": os.path.dirname(os.path.abspath(address.path))}
    else:
        need = sum(b or 0 for _, b in sizes.values())
        places = {}
    places["snapshots"] = snapshot_dir or default_snapshot_dir(address)
    found = []
    for what, where in places.items():
        probe = where
        while probe and not os.path.exists(probe):
            probe = os.path.dirname(probe)
        try:
            free = shutil.disk_usage(probe or ".").free
        except OSError as exc:
            found.append(Finding("disk", WARN, "cannot read free space of %s: %s" % (where, exc)))
            continue
        text = "%s free where the %s live (%s); a snapshot needs about %s" % (
            format_mb(free), what if what == "snapshots" else "database files", where, format_mb(need))
        details = {"path": where, "free": free, "need": need}
        if free < need:
            found.append(Finding("disk", FAIL, text, "free space, or give --snapshot-dir on another disk "
                                 "(emfix snapshot create %s --snapshot-dir /bigdisk/snaps)" % target, details))
        elif free < 2 * need:
            found.append(Finding("disk", WARN, text + " (room for one, not two)",
                                 "emfix snapshot prune %s --keep 3" % target, details))
        else:
            found.append(Finding("disk", OK, text, details=details))
    return found


def _memory(lengths, target):
    available = available_memory()
    widest = lengths[1] if lengths else 0
    need = BASE_MB * 1024 * 1024 + 4 * DEFAULT_BATCH * (200 + min(widest, 1 << 16)) + 4 * widest
    details = {"available": available, "need": need}
    if available is None:
        return Finding("memory", WARN, "cannot tell the free memory here (no psutil, no /proc/meminfo)",
                       "pip install 'emfix[monitor]'", details)
    text = "%s available; a migration with the default batch needs about %s" % (format_mb(available), format_mb(need))
    if available < need:
        return Finding("memory", FAIL, text, "emfix migrate %s DST -e ID --max-memory %d" % (
            target, max(BASE_MB + 10, available // (2 * 1024 * 1024))), details)
    return Finding("memory", OK, text, details=details)


def available_memory():
    try:
        import psutil
        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _last_results(address, snapshot_dir, target):
    from .snapshot import default_snapshot_dir, list_snapshots
    found = []
    last = history.latest(address)
    validated = last.get("validate")
    if not validated:
        found.append(Finding("last_validate", WARN, "emfix has no record of validating this database",
                             "emfix validate %s" % target))
    elif validated.get("status") == "FAIL":
        found.append(Finding("last_validate", WARN, "validate on %s found %s violations and %s JSON issues" % (
            validated["when"], validated.get("violations", "?"), validated.get("json_issues", "?")),
            "emfix cleanup-orphans %s --dry-run; emfix fix-json %s --dry-run" % (target, target), validated))
    else:
        found.append(Finding("last_validate", OK, "validate on %s passed" % validated["when"], details=validated))
    for command in ("cleanup-orphans", "fix-json", "migrate"):
        if command in last:
            entry = last[command]
            found.append(Finding("last_" + command.replace("-", "_"), OK, "%s on %s: %s" % (
                command, entry["when"], entry.get("summary", entry.get("status"))), details=entry))
    try:
        snapshots = list_snapshots(snapshot_dir or default_snapshot_dir(address), address)
    except EmfixError:
        snapshots = []
    verified = [s for s in snapshots if s.status == "verified"]
    if not verified:
        found.append(Finding("last_snapshot", WARN, "no verified snapshot in %s" % (
            snapshot_dir or default_snapshot_dir(address)), "emfix snapshot create %s --verify" % target))
    else:
        newest = verified[0]
        age = _age_days(newest.manifest.created_at)
        level = WARN if age is not None and age > SNAPSHOT_MAX_AGE_DAYS else OK
        found.append(Finding("last_snapshot", level, "newest verified snapshot %s, %s" % (
            newest.id, "%.0f days old" % age if age is not None else "of unknown age"),
            "emfix snapshot create %s --verify" % target if level == WARN else "", {"id": newest.id}))
    return found


def _age_days(stamp):
    try:
        when = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return (datetime.datetime.now(datetime.timezone.utc) - when).total_seconds() / 86400
