"""OAuth 2.0 client credentials with ``private_key_jwt`` (HL7 SMART Backend Services), pure: time is passed in.

A client proves who it is with a JWT it signs with its registered key (the *client assertion*:
``iss`` = ``sub`` = client id, ``aud`` = the token endpoint URL, ``exp`` at most five minutes ahead,
a unique ``jti``) and receives a short-lived access token: a JWT signed by the core's token key carrying the
client id, its organisation, roles and the granted scopes. Any API instance holding the token key's public
half verifies it, so tokens work across instances without shared state. Replay of an assertion is refused by
remembering each ``jti`` until its ``exp``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.auth.errors import (
    ExpiredToken,
    InvalidClient,
    InvalidToken,
    MissingCredentials,
    ReplayedAssertion,
    TokenRequestError,
)
from broker.auth.registry import Client, ClientRegistry, Scope

__all__ = ["ASSERTION_TYPE", "AccessToken", "Principal", "ReplayCache", "TokenService", "make_client_assertion"]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"  # RFC 7523 section 2.2
# SMART Backend Services: the assertion's exp "no more than five minutes in the future".
MAX_ASSERTION_LIFETIME_S = 300
# SMART Backend Services recommends access tokens of five minutes; clients fetch a new one when it lapses.
ACCESS_TOKEN_TTL_S = 300
CLOCK_SKEW_S = 30  # tolerated difference between the client's clock and ours (both directions)
# Algorithms SMART names (RS384, ES384) plus ES256 and EdDSA, all asymmetric: "none" and HMAC never.
CLIENT_ALGORITHMS = ("ES256", "ES384", "RS384", "EdDSA")
TOKEN_AUDIENCE = "consent-broker-api"  # noqa: S105 - an audience name, not a secret
MAX_REPLAY_ENTRIES = 100_000  # bound on remembered jti values (each kept at most MAX_ASSERTION_LIFETIME_S)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated API client, as its access token says."""

    client_id: str
    organisation: str
    roles: frozenset[str]
    scopes: frozenset[Scope]


@dataclass(frozen=True, slots=True)
class AccessToken:
    token: str
    expires_in: int
    scopes: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "access_token": self.token,
            "token_type": "bearer",
            "expires_in": self.expires_in,
            "scope": " ".join(self.scopes),
        }


class ReplayCache:
    """Remembers assertion ids until they expire; refuses a second use of one."""

    def __init__(self, max_entries: int = MAX_REPLAY_ENTRIES) -> None:
        self._seen: dict[str, int] = {}
        self._max = max_entries

    def claim(self, key: str, expires_s: int, now_s: int) -> None:
        if len(self._seen) >= self._max:
            self._seen = {k: exp for k, exp in self._seen.items() if exp >= now_s}
            if len(self._seen) >= self._max:
                raise ReplayedAssertion("too many client assertions in flight; retry shortly")
        if key in self._seen and self._seen[key] >= now_s:
            raise ReplayedAssertion("this client assertion (jti) was used before; sign a new one per request")
        self._seen[key] = expires_s


class TokenService:
    def __init__(
        self,
        registry: ClientRegistry,
        signing_key: Ed25519PrivateKey,
        token_url: str,
        *,
        ttl_s: int = ACCESS_TOKEN_TTL_S,
        replay: ReplayCache | None = None,
    ) -> None:
        self._registry = registry
        self._key = signing_key
        self._public = signing_key.public_key()
        self.token_url = token_url
        self._ttl = ttl_s
        self._replay = replay or ReplayCache()

    @property
    def registry(self) -> ClientRegistry:
        """The registered clients (their public keys also verify CDS Hooks client JWTs: broker.auth.cds_jwt)."""
        return self._registry

    def exchange(self, form: Mapping[str, str], now_s: int) -> AccessToken:
        """The token endpoint: a client-credentials request with a signed assertion -> an access token."""
        if form.get("grant_type") != "client_credentials":
            raise TokenRequestError("grant_type must be client_credentials")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise TokenRequestError(f"client_assertion_type must be {ASSERTION_TYPE}")
        assertion = form.get("client_assertion", "")
        if not assertion:
            raise TokenRequestError("client_assertion is required")
        client = self._verify_assertion(assertion, now_s)
        scopes = _granted(client, form.get("scope", ""))
        claims = {
            "iss": self.token_url,
            "aud": TOKEN_AUDIENCE,
            "sub": client.client_id,
            "org": client.organisation,
            "roles": sorted(client.roles),
            "scope": " ".join(scopes),
            "iat": now_s,
            "exp": now_s + self._ttl,
            "jti": uuid.uuid4().hex,
        }
        return AccessToken(jwt.encode(claims, self._key, algorithm="EdDSA"), self._ttl, scopes)

    def authenticate(self, authorization: str | None, now_s: int) -> Principal:
        """The principal behind an ``Authorization: Bearer`` header, or an AuthenticationError."""
        if not authorization:
            raise MissingCredentials("no Authorization header: get a token from /oauth2/token and send it as Bearer")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise MissingCredentials("the Authorization header must be 'Bearer <access token>'")
        claims = _decode(token.strip(), self._public, ("EdDSA",), audience=TOKEN_AUDIENCE, what="access token")
        _check_time(claims, now_s, ExpiredToken, "access token")
        try:
            scopes = frozenset(Scope(s) for s in str(claims.get("scope", "")).split())
            return Principal(str(claims["sub"]), str(claims["org"]), frozenset(claims["roles"]), scopes)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidToken("access token lacks the expected claims") from exc

    def _verify_assertion(self, assertion: str, now_s: int) -> Client:
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise InvalidClient(f"client_assertion is not a JWT: {exc}") from exc
        client_id = unverified.get("iss")
        client = self._registry.get(client_id) if isinstance(client_id, str) else None
        if client is None:
            raise InvalidClient("client_assertion names a client (iss) that is not registered")
        if header.get("alg") not in CLIENT_ALGORITHMS:
            raise InvalidClient(f"client_assertion must be signed with one of {', '.join(CLIENT_ALGORITHMS)}")
        claims = _decode(assertion, client.public_key(), CLIENT_ALGORITHMS, audience=self.token_url, what="assertion")
        if claims.get("sub") != client_id:
            raise InvalidClient("client_assertion sub must equal iss (the client id)")
        _check_time(claims, now_s, InvalidClient, "client_assertion")
        exp = int(claims["exp"])
        if exp - now_s > MAX_ASSERTION_LIFETIME_S + CLOCK_SKEW_S:
            raise InvalidClient(f"client_assertion exp is more than {MAX_ASSERTION_LIFETIME_S} s ahead")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise InvalidClient("client_assertion needs a unique jti")
        self._replay.claim(f"{client_id}\x00{jti}", exp + CLOCK_SKEW_S, now_s)
        return client


def _decode(token: str, key: Any, algorithms: tuple[str, ...], *, audience: str, what: str) -> dict[str, Any]:
    error = InvalidClient if what == "assertion" else InvalidToken
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=list(algorithms),
            audience=audience,
            # time is checked by _check_time against the time passed in, not the library's clock
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False, "require": ["exp", "aud"]},
        )
    except jwt.InvalidAudienceError as exc:
        raise error(f"{what} audience (aud) must be {audience}") from exc
    except jwt.PyJWTError as exc:
        raise error(f"{what} refused: {exc}") from exc
    return claims


def _check_time(claims: Mapping[str, Any], now_s: int, error: type[Exception], what: str) -> None:
    exp, nbf, iat = claims.get("exp"), claims.get("nbf"), claims.get("iat")
    if not isinstance(exp, int) or isinstance(exp, bool):
        raise error(f"{what} exp must be an integer")
    if exp + CLOCK_SKEW_S < now_s:
        raise error(f"{what} expired")
    for name, value in (("nbf", nbf), ("iat", iat)):
        if isinstance(value, int) and value - CLOCK_SKEW_S > now_s:
            raise error(f"{what} {name} is in the future")


def _granted(client: Client, requested: str) -> tuple[str, ...]:
    asked = set(requested.split()) if requested.strip() else {s.value for s in client.scopes}
    allowed = {s.value for s in client.scopes}
    unknown = asked - allowed
    if unknown:
        raise TokenRequestError(f"scope(s) not granted to this client: {', '.join(sorted(unknown))}")
    return tuple(sorted(asked))


def make_client_assertion(client_id: str, private_key: Any, token_url: str, now_s: int, *, alg: str = "ES256") -> str:
    """A fresh client assertion (what a client sends to the token endpoint); for clients, tests and the demo."""
    claims = {"iss": client_id, "sub": client_id, "aud": token_url, "exp": now_s + 240, "iat": now_s}
    claims["jti"] = uuid.uuid4().hex
    return jwt.encode(claims, private_key, algorithm=alg)
