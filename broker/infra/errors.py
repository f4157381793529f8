"""Errors of the local infrastructure manager (each message is one actionable line)."""

from __future__ import annotations

from typing import ClassVar

__all__ = ["InfraError"]


class InfraError(Exception):
    """A prerequisite is missing or a service failed to start. ``str()`` is one line."""

    reason: ClassVar[str] = "INFRA_ERROR"
    retriable: ClassVar[bool] = False
