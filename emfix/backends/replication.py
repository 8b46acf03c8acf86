"""Where a MySQL/MariaDB server stands among others: a replica or a primary, a Galera node, and the
place in its binary log that a snapshot's data belongs to. Only questions (and one probe that
changes nothing); the write gate (emfix.writegate) and doctor decide from the answers.

The MySQL backend inherits ReplicationMixin; its error translation asks `translate_server_error`
first, so a read-only server, a conflict and a transaction too large for a Galera node each say
what to do instead of what the server said.
"""

import dataclasses
import logging
from typing import List, Optional

from ..errors import (
    ConflictError,
    ConnectError,
    EmfixError,
    NotFoundError,
    PrivilegeError,
    ReadOnlyServerError,
    TransactionTooLargeError,
)

log = logging.getLogger(__name__)

READ_ONLY = 1290  # "running with the --read-only (or --super-read-only) option"
ERROR_DURING_COMMIT = 1180  # Galera: wsrep_max_ws_rows exceeded, a write set too large, a commit aborted
DEADLOCK, LOCK_WAIT_TIMEOUT = 1213, 1205  # Galera reports a certification conflict as a deadlock
SYNTAX_ERROR = 1064
NODE_NOT_READY = 1047  # Galera: "WSREP has not yet prepared node for application use"
PROBE_TABLE = "emfix_read_only_probe"  # never created: deleting nothing from it asks whether writes are allowed
GALERA_STATUS = ("wsrep_local_state_comment", "wsrep_cluster_size", "wsrep_cluster_status", "wsrep_ready")
VARIABLES = ("read_only", "super_read_only", "log_bin", "binlog_format", "wsrep_on", "wsrep_max_ws_rows",
             "wsrep_max_ws_size", "wsrep_sync_wait")


def _text(value):
    return value.decode("utf-8") if isinstance(value, (bytes, bytearray)) else value


def _on(value):
    return value is not None and str(value).upper() not in ("OFF", "0", "")


@dataclasses.dataclass
class Channel:
    """One configured replication source (MariaDB names them; MySQL calls them channels)."""
    name: str
    source: str  # host:port of the server it replicates from
    io_running: str  # Yes, No, Connecting
    sql_running: str
    lag: Optional[int]  # Seconds_Behind_Master; None while it does not replicate
    last_error: str

    @property
    def running(self):
        return self.io_running == "Yes" and self.sql_running == "Yes"


@dataclasses.dataclass
class Galera:
    state: str  # wsrep_local_state_comment: Synced, Donor/Desynced, Joining...
    cluster_size: int
    cluster_status: str  # Primary, or non-Primary when this node lost the quorum
    ready: bool
    max_ws_rows: int  # 0: no limit
    max_ws_size: int
    sync_wait: int


@dataclasses.dataclass
class ReplicationRole:
    read_only: bool
    super_read_only: Optional[bool]  # None: the server has no such variable (MariaDB)
    channels: List[Channel]
    channels_visible: bool  # False: this user may not read SHOW SLAVE STATUS (channels then unknown)
    writable: Optional[bool]  # whether this user's writes get through read_only (None: not known)
    galera: Optional[Galera] = None
    binlog: bool = False
    binlog_format: str = ""

    @property
    def is_replica(self):
        return self.read_only or bool(self.super_read_only) or bool(self.channels)

    @property
    def primary(self):
        """host:port of the (first) server this one replicates from, when it is known."""
        return self.channels[0].source if self.channels else None

    def primary_address(self, address):
        """`address` moved to the primary (same user and database, no password); None when not known."""
        if not self.primary:
            return None
        host, _, port = self.primary.rpartition(":")
        return dataclasses.replace(address, host=host, port=int(port) if port.isdigit() else port, password=None)

    def describe(self):
        """`a replica of 127.0.0.1:3306 (read_only=ON)`, or `a primary (...)`."""
        flags = ["read_only=%s" % ("ON" if self.read_only else "OFF")]
        if self.super_read_only:
            flags.append("super_read_only=ON")
        if not self.is_replica:
            return "a primary (%s, no replication source)" % ", ".join(flags)
        sources = ", ".join(c.source for c in self.channels)
        return "a replica%s (%s)" % (" of " + sources if sources else "", ", ".join(flags))


def translate_server_error(address, errno, msg, exhausted=None):
    """The emfix error for what a server said about replication, locks and cluster limits; None otherwise."""
    where = "%s:%s" % (address.host, address.port)
    low = str(msg).lower()
    if errno == READ_ONLY:
        option = "--super-read-only" if "super" in low else "--read-only"
        return ReadOnlyServerError("this server is read-only: run it on the primary (MySQL %s runs with %s)" % (
            where, option), kind="read_only_server")
    if errno == NODE_NOT_READY and "wsrep" in low:
        return ConnectError("the Galera node MySQL %s does not take queries now: %s" % (where, msg),
                            kind="galera_node_not_ready")
    tries = ""
    if exhausted is not None:
        tries = " (gave up after %d attempts in %.1fs)" % (exhausted.attempts, exhausted.elapsed)
    if errno == DEADLOCK or (errno == ERROR_DURING_COMMIT and ("deadlock" in low or "error 149" in low)):
        return ConflictError("MySQL %s aborted the transaction: another session (or, on Galera, another node) "
                             "changed the same rows at the same time%s: %s" % (where, tries, msg),
                             hint="emfix rolls such a batch back and runs it again until --lock-timeout; run it "
                                  "again when the other writer is quieter, or with a smaller --batch-size")
    if errno == LOCK_WAIT_TIMEOUT:
        return ConflictError("MySQL %s: another session held a lock this needs (on rows, or on a table in an open "
                             "transaction) for longer than --lock-timeout allows%s: %s" % (where, tries, msg),
                             hint="retry when that session has finished, or raise --lock-timeout")
    limit = "max_ws_" in low or "writeset size" in low or "write set size" in low
    if errno == ERROR_DURING_COMMIT and not limit and 'error 1 "operation not permitted"' in low:
        # MariaDB's word for a COMMIT that another session's KILL QUERY interrupted (an outside tester), and for a
        # row that repeats a unique key, loaded into an empty table with the checks off (its keys are checked only
        # at COMMIT then: round 27, a restore into a table with a unique key added since)
        return ConnectError("MySQL %s stopped emfix's COMMIT: %s (another session's KILL QUERY, or a row that "
                            "repeats a unique key)" % (where, msg), kind="statement_interrupted",
                            hint="the batch is rolled back: run the same command again (a migrate with --resume); "
                                 "stopped again, a unique key refuses one of its rows (not a KILL QUERY)")
    if limit or errno == ERROR_DURING_COMMIT:
        return TransactionTooLargeError("MySQL %s refused to commit a batch: %s" % (where, msg),
                                        kind="transaction_too_large", facts={"galera_limit": limit})
    return None


class ReplicationMixin:
    """What MySQLBackend answers about replication (it provides _run, _cursor, query, execute, scalar)."""

    def named_rows(self, sql):
        """Rows as {column: value}: for SHOW statements whose columns differ between servers and versions."""
        def run():
            with self._cursor() as cursor:
                cursor.execute(sql)
                names = [d[0] for d in cursor.description or ()]
                return [dict(zip(names, (_text(v) for v in row))) for row in cursor.fetchall()]
        return self._run(run, "statement")

    def _settings(self, statement, names):
        rows = self.query("%s WHERE Variable_name IN (%s)" % (statement, ", ".join("'%s'" % n for n in names)))
        return {_text(k).lower(): _text(v) for k, v in rows}

    def replication_role(self, probe=True):
        """A ReplicationRole: read_only / super_read_only, the configured sources with their state and lag,
        the Galera node's state. `probe`: on a read-only server, ask whether this user's writes get through."""
        settings = self._settings("SHOW GLOBAL VARIABLES", VARIABLES)
        channels, visible = self._channels()
        role = ReplicationRole(_on(settings.get("read_only")), _on(settings["super_read_only"])
                               if "super_read_only" in settings else None, channels, visible, None,
                               self._galera(settings), _on(settings.get("log_bin")), settings.get("binlog_format", ""))
        if not (role.read_only or role.super_read_only):
            role.writable = True
        elif probe:
            role.writable = self._writes_get_through()
        return role

    def _channels(self):
        statements = ["SHOW ALL SLAVES STATUS"] if self.is_mariadb() else ["SHOW REPLICA STATUS", "SHOW SLAVE STATUS"]
        for statement in statements:
            try:
                rows = self.named_rows(statement)
            except PrivilegeError:
                return [], False
            except self._driver.Error as exc:
                if exc.errno == SYNTAX_ERROR:  # MySQL before 8.0.22 has no SHOW REPLICA STATUS
                    continue
                raise
            return [_channel(row) for row in rows], True
        return [], False

    def _galera(self, settings):
        if not _on(settings.get("wsrep_on")):
            return None
        status = self._settings("SHOW GLOBAL STATUS", GALERA_STATUS)
        return Galera(status.get("wsrep_local_state_comment", "?"), int(status.get("wsrep_cluster_size") or 0),
                      status.get("wsrep_cluster_status", "?"), _on(status.get("wsrep_ready")),
                      int(settings.get("wsrep_max_ws_rows") or 0), int(settings.get("wsrep_max_ws_size") or 0),
                      int(settings.get("wsrep_sync_wait") or 0))

    def _writes_get_through(self):
        """On a read-only server: whether this user may write anyway (SUPER / READ_ONLY ADMIN bypass
        read_only; nobody bypasses super_read_only). A DELETE from a table that does not exist is refused
        with 1290 before the server looks for the table; nothing is written either way."""
        if not self.address.database:
            return None
        try:
            self.execute("DELETE FROM %s WHERE 1 = 0" % self.quote(PROBE_TABLE))
        except ReadOnlyServerError:
            return False
        except NotFoundError as exc:  # no such table: it got past read_only
            return True if exc.kind == "no_such_table" else None
        except EmfixError:  # no DELETE privilege here: not known
            return None
        except self._driver.Error:  # a READ ONLY session: not known
            return None
        return True

    def stream_position(self, locked):
        """Where the data of this moment is in the server's binary log: GTID position and binlog file and
        position. Called on the connection that just started its consistent snapshot; `locked`: inside
        FLUSH TABLES WITH READ LOCK, where nothing commits, so the server-wide values are exact too.
        None when the server keeps no binary log (or will not say): a snapshot never fails for want of it."""
        try:
            return self._stream_position(locked)
        except (EmfixError, self._driver.Error) as exc:
            log.info("no binary log position for this snapshot: %s", exc)
            return None

    def _stream_position(self, locked):
        position = {}
        if self.is_mariadb():
            status = {_text(k).lower(): _text(v) for k, v in self.query("SHOW SESSION STATUS LIKE 'binlog_snapshot_%'")}
            binlog = status.get("binlog_snapshot_file")
            if binlog:  # the snapshot's own place in the binlog, exact without any lock
                offset = int(status.get("binlog_snapshot_position") or 0)
                position.update(binlog_file=binlog, binlog_position=offset)
                gtid = _text(self.scalar("SELECT BINLOG_GTID_POS(?, ?)", (binlog, offset)))
                if gtid:
                    position.update(gtid=gtid, gtid_variable="gtid_binlog_pos")
            if "gtid" not in position and locked:
                gtid = _text(self.scalar("SELECT @@gtid_binlog_pos"))
                if gtid:
                    position.update(gtid=gtid, gtid_variable="gtid_binlog_pos")
            replica = _text(self.scalar("SELECT @@gtid_slave_pos")) if locked else None
            if replica:
                position["replica_gtid"] = replica  # this replica's place in its primary's stream
            exact = locked or bool(binlog)
        else:
            gtid = _text(self.scalar("SELECT @@GLOBAL.gtid_executed"))
            if gtid:
                position.update(gtid=gtid, gtid_variable="gtid_executed")
            position.update(self._binlog_status())
            exact = locked
        if not position:
            return None
        position["exact"] = exact  # False: read just after the data's moment, not in it (no lock could be taken)
        return position

    def _binlog_status(self):
        for statement in ("SHOW MASTER STATUS", "SHOW BINARY LOG STATUS"):  # MySQL 8.4 has only the second
            try:
                rows = self.query(statement)
            except PrivilegeError:
                return {}
            except self._driver.Error as exc:
                if exc.errno == SYNTAX_ERROR:
                    continue
                raise
            return {"binlog_file": _text(rows[0][0]), "binlog_position": int(rows[0][1])} if rows else {}
        return {}


def _channel(row):
    def first(*names):
        for name in names:
            if row.get(name) not in (None, ""):
                return row[name]
        return ""
    lag = first("Seconds_Behind_Master", "Seconds_Behind_Source")
    return Channel(first("Connection_name", "Channel_Name"),
                   "%s:%s" % (first("Master_Host", "Source_Host"), first("Master_Port", "Source_Port")),
                   first("Slave_IO_Running", "Replica_IO_Running") or "No",
                   first("Slave_SQL_Running", "Replica_SQL_Running") or "No",
                   int(lag) if str(lag).strip().isdigit() else None,
                   first("Last_SQL_Error", "Last_IO_Error", "Last_Error"))
