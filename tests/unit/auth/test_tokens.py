"""OAuth 2.0 client credentials with private_key_jwt (SMART Backend Services): every refusal has its reason."""

from __future__ import annotations

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.auth import (
    ASSERTION_TYPE,
    AuthError,
    ClientRegistry,
    Principal,
    Scope,
    TokenService,
    check_requester,
    make_client_assertion,
    require_scope,
)
from broker.auth.registry import RegistryError

TOKEN_URL = "https://core.example/oauth2/token"
NOW = 1_800_000_000


def _jwk(key: ec.EllipticCurvePrivateKey) -> dict[str, object]:
    return dict(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True))


@pytest.fixture
def client_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def service(client_key: ec.EllipticCurvePrivateKey) -> TokenService:
    registry = ClientRegistry.from_data(
        {
            "client": [
                {
                    "id": "rx1-ehr",
                    "organisation": "RX1",
                    "roles": ["CONSULTANT"],
                    "scopes": ["decisions", "patient.read"],
                    "jwk": _jwk(client_key),
                }
            ]
        }
    )
    return TokenService(registry, Ed25519PrivateKey.generate(), TOKEN_URL)


def _form(assertion: str, scope: str = "") -> dict[str, str]:
    form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
    if scope:
        form["scope"] = scope
    return form


def _reason(exc: pytest.ExceptionInfo[AuthError]) -> tuple[str, int]:
    return exc.value.reason, exc.value.status


def test_a_signed_assertion_gets_a_token_carrying_the_registration(service: TokenService, client_key) -> None:
    token = service.exchange(_form(make_client_assertion("rx1-ehr", client_key, TOKEN_URL, NOW)), NOW)
    assert token.scopes == ("decisions", "patient.read")
    principal = service.authenticate(f"Bearer {token.token}", NOW + 10)
    assert principal == Principal(
        "rx1-ehr", "RX1", frozenset({"CONSULTANT"}), frozenset({Scope.DECISIONS, Scope.PATIENT_READ})
    )


def test_a_narrower_scope_can_be_requested(service: TokenService, client_key) -> None:
    token = service.exchange(_form(make_client_assertion("rx1-ehr", client_key, TOKEN_URL, NOW), "decisions"), NOW)
    assert service.authenticate(f"Bearer {token.token}", NOW).scopes == frozenset({Scope.DECISIONS})


def test_a_scope_not_registered_is_refused(service: TokenService, client_key) -> None:
    with pytest.raises(AuthError) as exc:
        service.exchange(_form(make_client_assertion("rx1-ehr", client_key, TOKEN_URL, NOW), "admin"), NOW)
    assert _reason(exc) == ("AUTH_BAD_TOKEN_REQUEST", 400)


def test_a_replayed_assertion_is_refused(service: TokenService, client_key) -> None:
    assertion = make_client_assertion("rx1-ehr", client_key, TOKEN_URL, NOW)
    service.exchange(_form(assertion), NOW)
    with pytest.raises(AuthError) as exc:
        service.exchange(_form(assertion), NOW + 1)
    assert _reason(exc) == ("AUTH_REPLAYED", 401)


def test_an_expired_assertion_is_refused(service: TokenService, client_key) -> None:
    assertion = make_client_assertion("rx1-ehr", client_key, TOKEN_URL, NOW - 3600)
    with pytest.raises(AuthError) as exc:
        service.exchange(_form(assertion), NOW)
    assert _reason(exc) == ("AUTH_INVALID_CLIENT", 401)


def test_an_assertion_for_another_audience_is_refused(service: TokenService, client_key) -> None:
    assertion = make_client_assertion("rx1-ehr", client_key, "https://elsewhere/token", NOW)
    with pytest.raises(AuthError, match="audience") as exc:
        service.exchange(_form(assertion), NOW)
    assert _reason(exc) == ("AUTH_INVALID_CLIENT", 401)


def test_an_unsigned_assertion_is_refused(service: TokenService) -> None:
    claims = {"iss": "rx1-ehr", "sub": "rx1-ehr", "aud": TOKEN_URL, "exp": NOW + 60, "jti": "x"}
    unsigned = jwt.encode(claims, None, algorithm="none")  # type: ignore[arg-type]  # deliberately unsigned
    with pytest.raises(AuthError) as exc:
        service.exchange(_form(unsigned), NOW)
    assert _reason(exc) == ("AUTH_INVALID_CLIENT", 401)


def test_an_assertion_signed_by_another_key_is_refused(service: TokenService) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(AuthError) as exc:
        service.exchange(_form(make_client_assertion("rx1-ehr", other, TOKEN_URL, NOW)), NOW)
    assert _reason(exc) == ("AUTH_INVALID_CLIENT", 401)


def test_an_unknown_client_is_refused(service: TokenService, client_key) -> None:
    with pytest.raises(AuthError) as exc:
        service.exchange(_form(make_client_assertion("evil", client_key, TOKEN_URL, NOW)), NOW)
    assert _reason(exc) == ("AUTH_INVALID_CLIENT", 401)


def test_a_long_lived_assertion_is_refused(service: TokenService, client_key) -> None:
    claims = {"iss": "rx1-ehr", "sub": "rx1-ehr", "aud": TOKEN_URL, "exp": NOW + 86_400, "jti": "long"}
    with pytest.raises(AuthError, match="s ahead") as exc:
        service.exchange(_form(jwt.encode(claims, client_key, algorithm="ES256")), NOW)
    assert _reason(exc) == ("AUTH_INVALID_CLIENT", 401)


def test_a_request_that_is_not_client_credentials_is_refused(service: TokenService) -> None:
    with pytest.raises(AuthError) as exc:
        service.exchange({"grant_type": "password"}, NOW)
    assert _reason(exc) == ("AUTH_BAD_TOKEN_REQUEST", 400)


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer ", "Bearer not-a-jwt"])
def test_a_call_without_a_valid_bearer_token_is_refused(service: TokenService, header: str | None) -> None:
    with pytest.raises(AuthError) as exc:
        service.authenticate(header, NOW)
    assert exc.value.status == 401
    assert exc.value.reason in {"AUTH_MISSING", "AUTH_INVALID_TOKEN"}


def test_an_expired_access_token_is_refused(service: TokenService, client_key) -> None:
    token = service.exchange(_form(make_client_assertion("rx1-ehr", client_key, TOKEN_URL, NOW)), NOW)
    with pytest.raises(AuthError) as exc:
        service.authenticate(f"Bearer {token.token}", NOW + 3600)
    assert _reason(exc) == ("AUTH_EXPIRED", 401)


def test_an_access_token_of_another_core_is_refused(service: TokenService, client_key) -> None:
    other = TokenService(ClientRegistry.from_data({}), Ed25519PrivateKey.generate(), TOKEN_URL)
    forged = jwt.encode(
        {"sub": "rx1-ehr", "org": "RX1", "roles": [], "scope": "admin", "aud": "consent-broker-api", "exp": NOW + 60},
        Ed25519PrivateKey.generate(),
        algorithm="EdDSA",
    )
    assert other is not service
    with pytest.raises(AuthError) as exc:
        service.authenticate(f"Bearer {forged}", NOW)
    assert _reason(exc) == ("AUTH_INVALID_TOKEN", 401)


def test_a_client_may_ask_only_as_its_organisation_and_roles() -> None:
    principal = Principal("rx1-ehr", "RX1", frozenset({"CONSULTANT"}), frozenset({Scope.DECISIONS}))
    check_requester(principal, "RX1", "CONSULTANT")
    with pytest.raises(AuthError) as exc:
        check_requester(principal, "EVIL", "CONSULTANT")
    assert _reason(exc) == ("AUTH_ORGANISATION", 403)
    with pytest.raises(AuthError) as exc:
        check_requester(principal, "RX1", "CALDICOTT_GUARDIAN")
    assert _reason(exc) == ("AUTH_ROLE", 403)
    with pytest.raises(AuthError) as exc:
        require_scope(principal, Scope.PATIENT_READ)
    assert _reason(exc) == ("AUTH_SCOPE", 403)


def test_a_registry_with_a_bad_entry_says_which() -> None:
    with pytest.raises(RegistryError, match="client #1 lacks 'jwk'"):
        ClientRegistry.from_data({"client": [{"id": "a", "organisation": "RX1"}]})
    with pytest.raises(RegistryError, match="scopes are"):
        ClientRegistry.from_data({"client": [{"id": "a", "organisation": "RX1", "scopes": ["all"], "jwk": {}}]})
