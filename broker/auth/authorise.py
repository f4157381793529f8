"""What an authenticated client may do: scopes per route and the requester it may ask as (pure)."""

from __future__ import annotations

from broker.auth.errors import OrganisationMismatch, RoleNotAllowed, ScopeRequired
from broker.auth.registry import Scope
from broker.auth.tokens import Principal

__all__ = ["check_requester", "require_scope"]


def require_scope(principal: Principal, scope: Scope) -> None:
    if scope not in principal.scopes:
        raise ScopeRequired(f"this call needs the {scope.value!r} scope; client {principal.client_id} lacks it")


def check_requester(principal: Principal, organisation: str, role: str) -> None:
    """The requester in a body must be the credential's organisation and one of its registered roles."""
    if organisation != principal.organisation:
        raise OrganisationMismatch(
            f"client {principal.client_id} is registered for organisation {principal.organisation}; "
            "it may not ask as another organisation"
        )
    if role not in principal.roles:
        raise RoleNotAllowed(f"role {role!r} is not registered for client {principal.client_id}")
