"""Authentication and authorisation of the core's HTTP API (OAuth 2.0 client credentials, private_key_jwt)."""

from __future__ import annotations

from broker.auth.authorise import check_requester, require_scope
from broker.auth.errors import AuthenticationError, AuthError, AuthorisationError
from broker.auth.registry import Client, ClientRegistry, RegistryError, Scope
from broker.auth.tokens import ASSERTION_TYPE, AccessToken, Principal, ReplayCache, TokenService, make_client_assertion

__all__ = [
    "ASSERTION_TYPE",
    "AccessToken",
    "AuthError",
    "AuthenticationError",
    "AuthorisationError",
    "Client",
    "ClientRegistry",
    "Principal",
    "RegistryError",
    "ReplayCache",
    "Scope",
    "TokenService",
    "check_requester",
    "make_client_assertion",
    "require_scope",
]
