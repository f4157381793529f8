"""Typed errors of the edge agent, each with a stable ``reason`` code.

Submission errors reuse the wire protocol's :class:`~consent_wire.errors.ValidationError`
tree so the HTTP layer maps every invalid input to one 400 response shape.

Tree::

    EdgeError                       (reason: varies)
    +-- ConfigError                 CONFIG_INVALID
    +-- OutboxFullError             OUTBOX_FULL (retriable: space frees once the backlog drains)
    +-- OutboxClosedError           OUTBOX_CLOSED
    +-- OutboxOwnerError            OUTBOX_OWNER_MISMATCH (data_dir of another agent)
    +-- AckOutOfRangeError          ACK_OUT_OF_RANGE (ack of a seq never assigned)
    +-- AckRefusedError             ACK_REFUSED (an MQTT ack the agent will not act on; counted, never deletes)
    |   +-- AckMalformedError       ACK_MALFORMED (not a signed ack record, or over 1 KiB)
    |   +-- AckBadSignatureError    ACK_BAD_SIGNATURE (not signed by the core key core_public_key_hex)
    |   +-- AckWrongAgentError      ACK_WRONG_AGENT (signed, but for another agent)
    |   +-- AckBeyondSentError      ACK_BEYOND_SENT (signed, but last_seq above the highest seq sent)
    +-- TransportError              TRANSPORT_ERROR (retriable)
    |   +-- AckTimeoutError         ACK_TIMEOUT (retriable)
    ValidationError (consent_wire)
    +-- AsAtNotReplicatedError      AS_AT_NOT_REPLICATED (the replica cannot tell the state as at then)
    +-- SubmissionError             INVALID_SUBMISSION
        +-- MissingFieldError       MISSING_FIELD
        +-- InvalidFieldError       INVALID_FIELD
        +-- UnknownEventTypeError   UNKNOWN_EVENT_TYPE
        +-- MalformedJsonError      MALFORMED_JSON
        +-- EventIdConflictError    EVENT_ID_CONFLICT (409: the id was used for another body)
"""

from __future__ import annotations

from typing import ClassVar

from consent_wire.errors import ValidationError

__all__ = [
    "AckBadSignatureError",
    "AckBeyondSentError",
    "AckMalformedError",
    "AckOutOfRangeError",
    "AckRefusedError",
    "AckTimeoutError",
    "AckWrongAgentError",
    "AsAtNotReplicatedError",
    "ConfigError",
    "DeceasedStatusNotGpError",
    "EdgeError",
    "EventIdConflictError",
    "InvalidFieldError",
    "MalformedJsonError",
    "MissingFieldError",
    "OutboxClosedError",
    "OutboxFullError",
    "OutboxOwnerError",
    "SubmissionError",
    "TransportError",
    "UnknownEventTypeError",
]


class EdgeError(Exception):
    """Base of the edge agent's own errors. ``reason`` is a stable code."""

    reason: ClassVar[str] = "EDGE_ERROR"
    retriable: ClassVar[bool] = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


class ConfigError(EdgeError):
    reason = "CONFIG_INVALID"


class OutboxFullError(EdgeError):
    reason = "OUTBOX_FULL"
    retriable = True


class OutboxClosedError(EdgeError):
    reason = "OUTBOX_CLOSED"


class OutboxOwnerError(EdgeError):
    reason = "OUTBOX_OWNER_MISMATCH"


class AckOutOfRangeError(EdgeError):
    reason = "ACK_OUT_OF_RANGE"


class AckRefusedError(EdgeError):
    reason = "ACK_REFUSED"


class AckMalformedError(AckRefusedError):
    reason = "ACK_MALFORMED"


class AckBadSignatureError(AckRefusedError):
    reason = "ACK_BAD_SIGNATURE"


class AckWrongAgentError(AckRefusedError):
    reason = "ACK_WRONG_AGENT"


class AckBeyondSentError(AckRefusedError):
    reason = "ACK_BEYOND_SENT"


class TransportError(EdgeError):
    reason = "TRANSPORT_ERROR"
    retriable = True


class AckTimeoutError(TransportError):
    reason = "ACK_TIMEOUT"


class AsAtNotReplicatedError(ValidationError):
    """An offline decision ``as_at`` a time the replica's single state cannot answer for."""

    reason = "AS_AT_NOT_REPLICATED"


class SubmissionError(ValidationError):
    reason = "INVALID_SUBMISSION"


class MissingFieldError(SubmissionError):
    reason = "MISSING_FIELD"


class InvalidFieldError(SubmissionError):
    reason = "INVALID_FIELD"


class DeceasedStatusNotGpError(SubmissionError):
    """A submission stating the patient's death (or withdrawing it) to an agent whose site is not a GP
    practice: the core would dead-letter it with the same code (issue 14; consent_wire.authority)."""

    reason = "DECEASED_STATUS_NOT_GP"


class UnknownEventTypeError(SubmissionError):
    reason = "UNKNOWN_EVENT_TYPE"


class MalformedJsonError(SubmissionError):
    reason = "MALFORMED_JSON"


class EventIdConflictError(SubmissionError):
    """A client-supplied event_id already submitted with a different body (HTTP 409)."""

    reason = "EVENT_ID_CONFLICT"
