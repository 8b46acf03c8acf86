"""One exception hierarchy; each error carries the exit code the CLI returns for it.

Exit codes are a contract with shell scripts and cron jobs, so they live here once:

    0  healthy / done
    1  problems found
    2  usage error (bad arguments, malformed URL)
    3  cannot open or connect to the database, or it stayed locked after retries
    4  damaged input (not a database, corrupt file, snapshot mismatch)
    5  interrupted, resumable
   70  a bug in emfix (an unexpected exception; EX_SOFTWARE): never 1, so a crash is not read as a finding
  130  Ctrl-C twice (once, to a command with no batches): stopped at once
"""

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_CONNECT = 3
EXIT_DAMAGED = 4
EXIT_INTERRUPTED = 5
EXIT_BUG = 70  # sysexits.h EX_SOFTWARE
EXIT_CTRL_C = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, what a shell reports for a process SIGTERM ended


class EmfixError(Exception):
    """An expected failure: the CLI prints `error: message` (+ `hint: ...`) and exits.

    `kind` names what happened where the next step is a command to run (`unknown_database`,
    `refused_json`, ...), with the `facts` that step needs: the library does not know the command line,
    so the command layer words that hint (commands.common.hint_for) before `hint`, the library's own."""

    exit_code = EXIT_PROBLEMS

    def __init__(self, message, hint=None, kind=None, facts=None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.kind = kind
        self.facts = dict(facts or {})

    def __str__(self):
        return self.message

    def __reduce__(self):  # pickled whole (a helper process sends it back): hint, kind and facts too
        return self.__class__, (self.message, self.hint, self.kind, self.facts)


class SchemaError(EmfixError):
    """The database lacks what a command needs (tables, keys)."""


class NotExperimentManagerError(SchemaError):
    """The database given is not an Experiment Manager database: most likely the wrong one."""

    exit_code = EXIT_USAGE


class DanglingLinksError(EmfixError):
    """Link rows whose parent row is missing would be copied: refused unless asked for."""


class StillReferencedError(EmfixError):
    """MySQL refused to delete a row that other rows still reference (a foreign key, error 1451)."""


class Cancelled(EmfixError):
    """The user answered no: nothing was changed, and nothing is left to resume (exit 1)."""


class UsageError(EmfixError):
    """What was asked cannot be done as asked: a bad option, a wrong path, the wrong database."""

    exit_code = EXIT_USAGE


class AlreadyDoneError(UsageError):
    """This import or migration was finished before: another copy needs --force."""


class UnfinishedError(UsageError):
    """A run of this import or migration stopped part way, and this one asked for neither --resume (finish it) nor
    --force (copy again): nothing was changed (an outside tester: exit 1, read as a finding)."""


class ReplicaError(UsageError):
    """A writing command pointed at a replica: a change there breaks replication; refused without --force."""


class AddressError(UsageError):
    """A database address (path or URL) that cannot be understood."""


class ConnectError(EmfixError):
    """The database cannot be opened or reached."""

    exit_code = EXIT_CONNECT


class NotFoundError(ConnectError):
    """A file or snapshot named on the command line does not exist or cannot be read: the database,
    an export to import, a rules or schema file, a snapshot id. One code for all of them (3), as for a
    missing database file; a file that exists but is damaged is DamagedInputError (4)."""


class NotWritableError(ConnectError):
    """A place emfix must write cannot be written: a missing or read-only folder for a new database, a
    report, a snapshot or a quarantine (exit 3, as a file that cannot be opened). Writing onto something
    that must not be overwritten is a UsageError (2): that is a refusal, not a failure."""


class DatabaseLockedError(ConnectError):
    """Another process held the lock for longer than the retry deadline."""


class ConflictError(DatabaseLockedError):
    """The server aborted a transaction for a conflict with another session (deadlock, lock wait timeout,
    a Galera certification failure): a batch is rolled back and run again until --lock-timeout."""


class TransactionTooLargeError(ConnectError):
    """The server refused to commit a batch this large (a Galera node's wsrep_max_ws_rows / wsrep_max_ws_size):
    a smaller --batch-size fits. The database could not be written (exit 3), like a read-only server: the
    default batch meets it as surely as a chosen one, so it is no usage error."""


class ReadOnlyServerError(ConnectError):
    """The server refuses this user's writes (read_only / super_read_only): a replica; run it on the primary."""


class PrivilegeError(ConnectError):
    """The database refused a statement for want of a privilege: the hint is the GRANT that allows it."""


class MissingDependencyError(ConnectError):
    """An optional package is needed for what was asked (MySQL driver, psutil)."""


class TooManyConnectionsError(ConnectError):
    """The server allows no more connections (max_connections, or the user's max_user_connections): a command
    that reads over several (a MySQL snapshot's readers) reads over those it has."""


class PoolTimeoutError(ConnectError):
    """No connection of the pool became free in time."""


class NoSpaceError(ConnectError):
    """The disk (or a file-size limit) is full: nothing half-written is kept."""


class DamagedInputError(EmfixError):
    """A file or value is damaged: a corrupt database, a snapshot or export that fails its checks."""

    exit_code = EXIT_DAMAGED


class Terminated(KeyboardInterrupt):
    """SIGTERM to a command with no batches to stop between (validate, a snapshot, an export): raised in the
    main thread so every `finally` and context manager runs (a half-written -o file's temporary is removed)
    before emfix exits with EXIT_TERMINATED. A KeyboardInterrupt, so what Ctrl-C stops, SIGTERM stops alike."""


class OperationInterrupted(EmfixError):
    """Stopped between batches (Ctrl-C, SIGTERM): what is committed stays, a rerun finishes."""

    exit_code = EXIT_INTERRUPTED
