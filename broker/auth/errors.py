"""Errors of API authentication and authorisation, each with a stable reason and HTTP status.

Tree::

    CoreError (broker.errors)
    +-- AuthError                  (retriable = False)
    +-- AuthenticationError        401: who is calling is unknown or unproven
    |   +-- MissingCredentials     AUTH_MISSING
    |   +-- InvalidToken           AUTH_INVALID_TOKEN (bad signature, malformed, wrong audience)
    |   +-- ExpiredToken           AUTH_EXPIRED
    |   +-- InvalidClient          AUTH_INVALID_CLIENT (client assertion refused: unknown client,
    |                              bad signature, wrong audience, lifetime too long, unsigned)
    |   +-- ReplayedAssertion      AUTH_REPLAYED (a client assertion's jti seen before)
    +-- TokenRequestError          400 AUTH_BAD_TOKEN_REQUEST (not a client-credentials request)
    +-- AuthorisationError         403: the caller is known but may not do this
        +-- ScopeRequired          AUTH_SCOPE
        +-- OrganisationMismatch   AUTH_ORGANISATION (asking as an organisation not in the credential)
        +-- RoleNotAllowed         AUTH_ROLE (asserting a role the registration does not list)
"""

from __future__ import annotations

from typing import ClassVar

from broker.errors import CoreError

__all__ = [
    "AuthError",
    "AuthenticationError",
    "AuthorisationError",
    "ExpiredToken",
    "InvalidClient",
    "InvalidToken",
    "MissingCredentials",
    "OrganisationMismatch",
    "ReplayedAssertion",
    "RoleNotAllowed",
    "ScopeRequired",
    "TokenRequestError",
]


class AuthError(CoreError):
    reason: ClassVar[str] = "AUTH_ERROR"
    status: ClassVar[int] = 401  # the HTTP status of the class; broker.api.handlers maps classes so


class AuthenticationError(AuthError):
    status = 401


class MissingCredentials(AuthenticationError):
    reason = "AUTH_MISSING"


class InvalidToken(AuthenticationError):
    reason = "AUTH_INVALID_TOKEN"


class ExpiredToken(AuthenticationError):
    reason = "AUTH_EXPIRED"


class InvalidClient(AuthenticationError):
    reason = "AUTH_INVALID_CLIENT"


class ReplayedAssertion(AuthenticationError):
    reason = "AUTH_REPLAYED"


class TokenRequestError(AuthError):
    reason = "AUTH_BAD_TOKEN_REQUEST"
    status = 400


class AuthorisationError(AuthError):
    status = 403


class ScopeRequired(AuthorisationError):
    reason = "AUTH_SCOPE"


class OrganisationMismatch(AuthorisationError):
    reason = "AUTH_ORGANISATION"


class RoleNotAllowed(AuthorisationError):
    reason = "AUTH_ROLE"
