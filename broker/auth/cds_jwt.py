"""CDS Hooks 2.0 client JWTs, verified against the registered clients' keys (pure: time is passed in).

The CDS Hooks specification ("Trusting CDS Clients"): each request carries ``Authorization: Bearer <JWT>``
signed by the CDS client with an asymmetric key whose public half the service knows (here: the client's
registered JWK, ``consent-broker clients add``); the header names the key (``kid``, required) and the
algorithm; the claims are ``iss`` (the client's identifier: its registered client id), ``aud`` (the URL of
the CDS service invoked), ``exp`` (at most five minutes ahead), ``iat`` and a unique ``jti`` (a replay is
refused). Authority then comes from the registration (organisation, roles, scopes), as for access tokens.

Errors (:mod:`broker.auth.errors`): ``AUTH_INVALID_CLIENT`` (unknown iss, unknown kid, bad signature,
algorithm, audience, lifetime), ``AUTH_EXPIRED``, ``AUTH_REPLAYED``.
"""

from __future__ import annotations

from typing import Any

import jwt

from broker.auth.errors import ExpiredToken, InvalidClient
from broker.auth.registry import Client, ClientRegistry
from broker.auth.tokens import CLIENT_ALGORITHMS, CLOCK_SKEW_S, MAX_ASSERTION_LIFETIME_S, Principal, ReplayCache

__all__ = ["CdsJwtVerifier", "is_cds_jwt"]


def is_cds_jwt(token: str) -> bool:
    """Whether ``token`` looks like a client-signed CDS Hooks JWT (its header names a ``kid``; access tokens do not)."""
    try:
        return "kid" in jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        return False


class CdsJwtVerifier:
    def __init__(self, registry: ClientRegistry, replay: ReplayCache | None = None) -> None:
        self._registry = registry
        self._replay = replay or ReplayCache()

    def verify(self, token: str, audience: str, now_s: int) -> Principal:
        """The principal of a CDS client JWT addressed to ``audience`` (the service URL), or an AuthenticationError."""
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise InvalidClient(f"the CDS Hooks bearer token is not a JWT: {exc}") from exc
        iss = unverified.get("iss")
        client = self._registry.get(iss) if isinstance(iss, str) else None
        if client is None:
            raise InvalidClient("the CDS client JWT names an issuer (iss) that is not a registered client")
        if header.get("alg") not in CLIENT_ALGORITHMS:
            raise InvalidClient(f"the CDS client JWT must be signed with one of {', '.join(CLIENT_ALGORITHMS)}")
        if header.get("kid") != _kid(client):
            raise InvalidClient("the CDS client JWT's kid is not the key registered for its issuer")
        claims = _decode(token, client, audience)
        _check(claims, now_s)
        self._replay.claim(f"cds\x00{iss}\x00{claims['jti']}", int(claims["exp"]) + CLOCK_SKEW_S, now_s)
        return Principal(client.client_id, client.organisation, client.roles, client.scopes)


def _kid(client: Client) -> str:
    return str(client.jwk.get("kid", client.client_id))  # `clients add` writes kid = client id


def _decode(token: str, client: Client, audience: str) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            client.public_key(),
            algorithms=list(CLIENT_ALGORITHMS),
            audience=audience,
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False, "require": ["exp", "aud", "jti"]},
        )
    except jwt.InvalidAudienceError as exc:
        raise InvalidClient(f"the CDS client JWT's audience (aud) must be the service URL {audience}") from exc
    except jwt.PyJWTError as exc:
        raise InvalidClient(f"the CDS client JWT is refused: {exc}") from exc
    return claims


def _check(claims: dict[str, Any], now_s: int) -> None:
    exp, iat, jti = claims.get("exp"), claims.get("iat"), claims.get("jti")
    if not isinstance(exp, int) or isinstance(exp, bool):
        raise InvalidClient("the CDS client JWT's exp must be an integer")
    if exp + CLOCK_SKEW_S < now_s:
        raise ExpiredToken("the CDS client JWT expired; sign a new one per request")
    if exp - now_s > MAX_ASSERTION_LIFETIME_S + CLOCK_SKEW_S:
        raise InvalidClient(f"the CDS client JWT's exp is more than {MAX_ASSERTION_LIFETIME_S} s ahead")
    if isinstance(iat, int) and iat - CLOCK_SKEW_S > now_s:
        raise InvalidClient("the CDS client JWT's iat is in the future")
    if not isinstance(jti, str) or not jti or len(jti) > 256:
        raise InvalidClient("the CDS client JWT needs a unique jti")
