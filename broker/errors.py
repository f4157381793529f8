"""The core's own errors: one root, a stable ``reason`` code and a ``retriable`` flag on each.

Two families, chosen by who is at fault:

- Bad input (a request, a record, a report parameter) stays under the wire protocol's
  :class:`~consent_wire.errors.ValidationError` (or ``DecodeError``), as it already was: every HTTP
  API maps that one class to 400, whether the wire decoder, the pseudonymiser
  (``INVALID_NHS_NUMBER``) or a core parser raised it, and the edge agent does the same.
- Everything else the core raises (settings, readiness, infrastructure, provisioning) derives
  from :class:`CoreError`.
- Errors of the HTTP surface itself (unknown route, wrong method, oversized body) are aiohttp's
  ``HTTPException`` s; :mod:`consent_io.http` answers them as ``NOT_FOUND`` (404),
  ``METHOD_NOT_ALLOWED`` (405) and ``BODY_TOO_LARGE`` (413) in the same JSON shape, for the core's
  API and the edge agent's alike, and any unexpected exception as ``INTERNAL_ERROR`` (500).

Tree::

    CoreError                      (reason: varies; retriable = False)
    +-- SettingsError              BAD_SETTINGS (broker.settings: refused at load, names the setting)
    +-- NotReadyError              NOT_READY (retriable: the views are still catching up)
    +-- TopicProvisioningError     TOPIC_PROVISIONING (broker.topics)
    +-- InfraError                 INFRA_ERROR (broker.infra: local Kafka / Mosquitto)
    +-- AuthError                  AUTH_* (broker.auth: 401 unauthenticated, 403 not authorised, 400 bad token request)
    WireError (consent_wire.errors)
    +-- ValidationError            (400 on every API)
        +-- ApiRequestError        BAD_REQUEST (broker.api.codec)
        +-- DecisionRequestError   BAD_DECISION_REQUEST (consent_rules.decision)
        +-- AuditError ...         (broker.audit; AuditUnavailableError AUDIT_UNAVAILABLE -> 503)

The HTTP status of each class is chosen in one table, :data:`broker.api.handlers.STATUS_BY_ERROR`;
the reason codes are listed in ``docs/reason-codes.md``.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "CoreError",
    "NotReadyError",
    "SettingsError",
]


class CoreError(Exception):
    """Base of the core's own errors. ``reason`` is a stable code; ``str()`` is one line."""

    reason: ClassVar[str] = "CORE_ERROR"
    retriable: ClassVar[bool] = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SettingsError(CoreError):
    """A setting is missing, malformed, out of range or names a file that cannot be read."""

    reason = "BAD_SETTINGS"


class NotReadyError(CoreError):
    """The state and event views have not yet caught up with the topics: answers could be wrong."""

    reason = "NOT_READY"
    retriable = True
