"""The API's cache of verified access tokens: a hit skips the signature check, never the expiry or a bad token."""

from __future__ import annotations

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.api.token_cache import CachingTokenService
from broker.auth import ASSERTION_TYPE, AuthError, ClientRegistry, make_client_assertion
from broker.auth import tokens as token_module
from tests.factories import with_tampered_signature

TOKEN_URL = "https://core.example/oauth2/token"
NOW = 1_800_000_000


@pytest.fixture
def client_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _service(client_key: ec.EllipticCurvePrivateKey, max_entries: int = 100) -> CachingTokenService:
    jwk = dict(jwt.algorithms.ECAlgorithm.to_jwk(client_key.public_key(), as_dict=True))
    client = {"id": "rx1-ehr", "organisation": "RX1", "roles": ["CONSULTANT"], "scopes": ["decisions"], "jwk": jwk}
    registry = ClientRegistry.from_data({"client": [client]})
    return CachingTokenService(registry, Ed25519PrivateKey.generate(), TOKEN_URL, max_entries=max_entries)


def _bearer(service: CachingTokenService, client_key: ec.EllipticCurvePrivateKey, at: int = NOW) -> str:
    assertion = make_client_assertion("rx1-ehr", client_key, TOKEN_URL, at)
    form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
    return f"Bearer {service.exchange(form, at).token}"


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = token_module._decode

    def counting(token: str, *args: object, **kwargs: object) -> dict[str, object]:
        seen.append(token)
        return real(token, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(token_module, "_decode", counting)
    return seen


def test_a_token_seen_before_is_not_verified_again(client_key, verifications: list[str]) -> None:
    service = _service(client_key)
    header = _bearer(service, client_key)
    verifications.clear()  # the assertion's own verification
    first = service.authenticate(header, NOW)
    assert service.authenticate(header, NOW + 5) == first
    assert len(verifications) == 1


def test_a_cached_token_is_still_refused_once_expired(client_key) -> None:
    service = _service(client_key)
    header = _bearer(service, client_key)
    service.authenticate(header, NOW)
    with pytest.raises(AuthError) as exc:
        service.authenticate(header, NOW + 3600)
    assert (exc.value.reason, exc.value.status) == ("AUTH_EXPIRED", 401)


def test_a_tampered_token_is_verified_and_refused_even_when_the_genuine_one_is_cached(client_key) -> None:
    service = _service(client_key)
    header = _bearer(service, client_key)
    service.authenticate(header, NOW)
    forged = jwt.encode(
        {"sub": "rx1-ehr", "org": "RX1", "roles": [], "scope": "admin", "aud": "consent-broker-api", "exp": NOW + 60},
        Ed25519PrivateKey.generate(),
        algorithm="EdDSA",
    )
    for bad in (f"Bearer {with_tampered_signature(header.removeprefix('Bearer '))}", f"Bearer {forged}"):
        with pytest.raises(AuthError) as exc:
            service.authenticate(bad, NOW)
        assert exc.value.status == 401


def test_the_cache_is_bounded_oldest_first(client_key, verifications: list[str]) -> None:
    service = _service(client_key, max_entries=2)
    headers = [_bearer(service, client_key, NOW + i) for i in range(3)]
    for header in headers:
        service.authenticate(header, NOW + 3)
    verifications.clear()
    service.authenticate(headers[2], NOW + 3)  # kept
    assert verifications == []
    service.authenticate(headers[0], NOW + 3)  # dropped when the third arrived: verified again
    assert len(verifications) == 1
