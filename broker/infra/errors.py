"""Errors of the local infrastructure manager (each message is one actionable line)."""

from __future__ import annotations

from broker.errors import CoreError

__all__ = ["InfraError"]


class InfraError(CoreError):
    """A prerequisite is missing or a service failed to start. ``str()`` is one line."""

    reason = "INFRA_ERROR"
