"""The audit package's errors, each with a stable ``reason``.

Errors::

    ValidationError (consent_wire.errors)
    +-- AuditError               AUDIT_ERROR
        +-- AuditRecordError     BAD_AUDIT_RECORD
        +-- AuditLineError       BAD_AUDIT_LINE
        +-- AuditUnavailableError    AUDIT_UNAVAILABLE
"""

from __future__ import annotations

from consent_wire.errors import ValidationError

__all__ = ["AuditError", "AuditLineError", "AuditRecordError", "AuditUnavailableError"]


class AuditError(ValidationError):
    reason = "AUDIT_ERROR"


class AuditRecordError(AuditError):
    reason = "BAD_AUDIT_RECORD"


class AuditLineError(AuditError):
    reason = "BAD_AUDIT_LINE"


class AuditUnavailableError(AuditError):
    """A write to the audit topic failed: the chain head is uncertain until the service restarts."""

    reason = "AUDIT_UNAVAILABLE"
