"""The tamper-evident audit log of decisions and accesses (recommendation 1).

- :mod:`broker.audit.records`: what an entry says (:class:`AuditRecord`) and a patient's access list;
- :mod:`broker.audit.log`: the hash chain with signed checkpoints (:class:`AuditLog`) and :func:`verify`;
- :mod:`broker.audit.lines`: the stored JSON-line format, parsing and :func:`verify_stored`;
- :mod:`broker.audit.appender`: the Kafka appender that drives an :class:`AuditLog` (I/O shell);
- :mod:`broker.audit.errors`: the error tree.

All but the appender are pure; importing this package does not import aiokafka (the appender is
imported from :mod:`broker.audit.appender` by the service that runs it).
"""

from broker.audit.errors import AuditError, AuditLineError, AuditRecordError, AuditUnavailableError
from broker.audit.lines import (
    LogScan,
    RestoredLog,
    StoredCheckpoint,
    StoredLog,
    add_source,
    checkpoint_line,
    entry_line,
    note_line,
    parse_log,
    position_of,
    sources_cursor,
    verify_stored,
)
from broker.audit.log import (
    CHECKPOINT_CONTEXT,
    DEFAULT_CHECKPOINT_EVERY,
    GENESIS_HASH,
    AuditEntry,
    AuditLog,
    AuditProblem,
    AuditVerification,
    CanonicalRecord,
    ChainPosition,
    Checkpoint,
    Tamper,
    chain_hash,
    checkpoint_message,
    describe_problem,
    verify,
)
from broker.audit.records import (
    AccessView,
    AuditRecord,
    RecordKind,
    access_record,
    accesses_for,
    decision_record,
    read_record,
)

__all__ = [
    "CHECKPOINT_CONTEXT",
    "DEFAULT_CHECKPOINT_EVERY",
    "GENESIS_HASH",
    "AccessView",
    "AuditEntry",
    "AuditError",
    "AuditLineError",
    "AuditLog",
    "AuditProblem",
    "AuditRecord",
    "AuditRecordError",
    "AuditUnavailableError",
    "AuditVerification",
    "CanonicalRecord",
    "ChainPosition",
    "Checkpoint",
    "LogScan",
    "RecordKind",
    "RestoredLog",
    "StoredCheckpoint",
    "StoredLog",
    "Tamper",
    "access_record",
    "accesses_for",
    "add_source",
    "chain_hash",
    "checkpoint_line",
    "checkpoint_message",
    "decision_record",
    "describe_problem",
    "entry_line",
    "note_line",
    "parse_log",
    "position_of",
    "read_record",
    "sources_cursor",
    "verify",
    "verify_stored",
]
