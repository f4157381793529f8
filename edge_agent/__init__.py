"""Edge agent: a site-local, durable outbox and offline replica next to a clinical system.

Public surface (import I/O adapters from their modules: transport_kafka, transport_mqtt,
replica_follow, http_api, app):

- :class:`Settings` / :func:`load_settings` - typed configuration (TOML + EDGE_AGENT_* env).
- :func:`parse_submission` / :class:`Submission` - JSON body -> validated payload (pure).
- :class:`Outbox` - SQLite WAL outbox, group commit, gap-free seq + hash chain, disk cap.
- :class:`Publisher` / :class:`Transport` / :class:`BatchSigner` - signed batches, end-to-end ack.
- :class:`Replica` - local state/shielding for the site's patients; offline decisions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge_agent.config import Settings, load_settings
    from edge_agent.errors import (
        AckTimeoutError,
        ConfigError,
        EdgeError,
        OutboxClosedError,
        OutboxFullError,
        SubmissionError,
        TransportError,
    )
    from edge_agent.outbox import Draft, Outbox, OutboxRow, OutboxStats, Receipt
    from edge_agent.publisher import BatchSigner, Publisher, PublisherSettings, Transport
    from edge_agent.replica import Replica, ReplicaKind, ReplicaRecord
    from edge_agent.submission import Submission, parse_submission, parse_submission_list

__all__ = [
    "AckTimeoutError",
    "BatchSigner",
    "ConfigError",
    "Draft",
    "EdgeError",
    "Outbox",
    "OutboxClosedError",
    "OutboxFullError",
    "OutboxRow",
    "OutboxStats",
    "Publisher",
    "PublisherSettings",
    "Receipt",
    "Replica",
    "ReplicaKind",
    "ReplicaRecord",
    "Settings",
    "Submission",
    "SubmissionError",
    "Transport",
    "TransportError",
    "load_settings",
    "parse_submission",
    "parse_submission_list",
]

# Imported on first use, so `import edge_agent.submission` (pure) pulls in no SQLite, Kafka or HTTP.
# Plain import statements (not importlib), so mypy and a reader see which module each name comes from.
_CONFIG = frozenset({"Settings", "load_settings"})
_ERRORS = frozenset(
    {
        "AckTimeoutError",
        "ConfigError",
        "EdgeError",
        "OutboxClosedError",
        "OutboxFullError",
        "SubmissionError",
        "TransportError",
    }
)
_OUTBOX = frozenset({"Draft", "Outbox", "OutboxRow", "OutboxStats", "Receipt"})
_PUBLISHER = frozenset({"BatchSigner", "Publisher", "PublisherSettings", "Transport"})
_REPLICA = frozenset({"Replica", "ReplicaKind", "ReplicaRecord"})
_SUBMISSION = frozenset({"Submission", "parse_submission", "parse_submission_list"})
_LAZY = _CONFIG | _ERRORS | _OUTBOX | _PUBLISHER | _REPLICA | _SUBMISSION


def __getattr__(name: str) -> object:
    if name in _CONFIG:
        from edge_agent import config

        return getattr(config, name)
    if name in _ERRORS:
        from edge_agent import errors

        return getattr(errors, name)
    if name in _OUTBOX:
        from edge_agent import outbox

        return getattr(outbox, name)
    if name in _PUBLISHER:
        from edge_agent import publisher

        return getattr(publisher, name)
    if name in _REPLICA:
        from edge_agent import replica

        return getattr(replica, name)
    if name in _SUBMISSION:
        from edge_agent import submission

        return getattr(submission, name)
    raise AttributeError(f"module 'edge_agent' has no attribute {name!r}")
