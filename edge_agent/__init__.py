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

import importlib
from typing import TYPE_CHECKING, Any

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
_HOME = {
    **dict.fromkeys(("Settings", "load_settings"), "edge_agent.config"),
    **dict.fromkeys(
        (
            "AckTimeoutError",
            "ConfigError",
            "EdgeError",
            "OutboxClosedError",
            "OutboxFullError",
            "SubmissionError",
            "TransportError",
        ),
        "edge_agent.errors",
    ),
    **dict.fromkeys(("Draft", "Outbox", "OutboxRow", "OutboxStats", "Receipt"), "edge_agent.outbox"),
    **dict.fromkeys(("BatchSigner", "Publisher", "PublisherSettings", "Transport"), "edge_agent.publisher"),
    **dict.fromkeys(("Replica", "ReplicaKind", "ReplicaRecord"), "edge_agent.replica"),
    **dict.fromkeys(("Submission", "parse_submission", "parse_submission_list"), "edge_agent.submission"),
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'edge_agent' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
