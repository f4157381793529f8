"""CDS Hooks on the core (issue 17): discovery, cards for permit / deny / shielded / unknown patients, and the
client JWT checks the CDS Hooks specification requires (iss registered, kid, aud = service URL, exp, jti replay)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.api import create_app
from broker.auth import ClientRegistry, TokenService
from consent_wire.codes import ConsentDirective, ObjectionKind, PurposeOfUse
from tests.cds_client import ACT_CODE, card, client_jwt, consult, redacted
from tests.unit.api.backend import NHS, NOW_MS, OTHER_NHS, MemoryBackend, consent, objection, shield

TOKEN_URL = "https://core.test/oauth2/token"
SERVICE = "https://core.test/cds-services/patient-consent-consult"
PATH = "/cds-services/patient-consent-consult"
UNKNOWN = "9434765935"  # valid, never recorded


@dataclass
class Core:
    client: TestClient  # type: ignore[type-arg]
    backend: MemoryBackend
    key: ec.EllipticCurvePrivateKey

    async def call(self, body: object, token: str | None = None) -> tuple[int, Any]:
        token = token or client_jwt("rx1", "rx1", self.key, SERVICE, NOW_MS // 1000)
        resp = await self.client.post(PATH, json=body, headers={"Authorization": f"Bearer {token}"})
        return resp.status, await resp.json()


@pytest.fixture
async def core() -> AsyncIterator[Core]:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True) | {"kid": "rx1"}
    entry = {"id": "rx1", "organisation": "RX1", "roles": ["CONSULTANT", "RESEARCHER"], "jwk": jwk}
    registry = ClientRegistry.from_data({"client": [entry | {"scopes": ["decisions"]}]})
    backend = MemoryBackend()
    backend.add(objection(ObjectionKind.NDOP), shield(), consent(ConsentDirective.OPTIN, PurposeOfUse.HRESCH,
                at_ms=NOW_MS - 1000))  # fmt: skip
    backend.add(objection(ObjectionKind.TYPE2, nhs=OTHER_NHS))
    app = create_app(backend, TokenService(registry, Ed25519PrivateKey.generate(), TOKEN_URL))
    async with TestClient(TestServer(app)) as client:
        yield Core(client, backend, key)


async def test_discovery_lists_the_consent_consult_service(core: Core) -> None:
    resp = await core.client.get("/cds-services")
    services = (await resp.json())["services"]
    assert [(s["hook"], s["id"]) for s in services] == [("patient-consent-consult",) * 2]


async def test_direct_care_is_permitted_and_recorded(core: Core) -> None:
    status, body = await core.call(consult(OTHER_NHS))
    c = card(body)
    assert (status, c["summary"], c["indicator"]) == (200, "CONSENT_PERMIT", "info")
    assert c["extension"]["codes"] == ["DIRECT_CARE_IMPLIED_CONSENT"]
    assert c["extension"]["audit_index"] == 0 and len(core.backend.log.entries) == 1


async def test_an_objection_denies_research(core: Core) -> None:
    _, body = await core.call(consult(OTHER_NHS, purpose="HRESCH", role="RESEARCHER", care=False, legal_basis="S251"))
    c = card(body)
    assert (c["summary"], c["indicator"], c["extension"]["obligations"]) == ("CONSENT_DENY", "critical", [])
    assert "TYPE2_ACTIVE" in c["extension"]["codes"]


async def test_a_request_only_purpose_is_taken_and_decided_on_its_condition(core: Core) -> None:
    """Issue 14, vocabulary: context.purposeOfUse HLEGAL (HL7 ActReason, a kind of HOPERAT) goes through the
    shared parser; without an evidenced mandate or consent it is denied with the rule's code."""
    _, body = await core.call(consult(OTHER_NHS, purpose="HLEGAL", role="RESEARCHER", care=False))
    c = card(body)
    assert (c["summary"], c["extension"]["codes"]) == ("CONSENT_DENY", ["PURPOSE_NEEDS_BASIS"])


async def test_a_shielded_patient_is_permitted_with_redaction_labels(core: Core) -> None:
    _, body = await core.call(consult(NHS, classes=("PSY", "LOCIS")))
    c = card(body)
    assert c["summary"] == "CONSENT_PERMIT"
    assert c["extension"]["outcome"] == "PERMIT_WITH_OBLIGATIONS"
    assert redacted(c) == {(ACT_CODE, "LOCIS"), ("urn:uk-nhs-consent:hidden-field", "CONTACT")}
    assert c["extension"]["withheld"] == ["PATLOC"]


async def test_an_unknown_patient_has_no_consent_for_research_and_implied_consent_for_care(core: Core) -> None:
    _, body = await core.call(consult(UNKNOWN, purpose="HRESCH", role="RESEARCHER", care=False))
    c = card(body)
    assert (c["summary"], c["indicator"], c["extension"]["state_version"]) == ("NO_CONSENT", "warning", 0)
    _, body = await core.call(consult(UNKNOWN))
    assert card(body)["summary"] == "CONSENT_PERMIT"


async def test_categories_not_kept_here_answer_no_consent_without_deciding(core: Core) -> None:
    request = consult(NHS)
    request["context"]["category"] = [{"system": "http://loinc.org", "code": "64292-6"}]  # a treatment consent
    _, body = await core.call(request)
    assert card(body)["summary"] == "NO_CONSENT"
    assert len(core.backend.log.entries) == 0


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"aud": "https://elsewhere.test/cds-services/patient-consent-consult"}, "AUTH_INVALID_CLIENT"),
        ({"iss": "stranger"}, "AUTH_INVALID_CLIENT"),
        ({"kid": "another-key"}, "AUTH_INVALID_CLIENT"),
        ({"now": NOW_MS // 1000 - 3600}, "AUTH_EXPIRED"),
        ({"key": "other"}, "AUTH_INVALID_CLIENT"),
    ],
)
async def test_a_bad_client_jwt_is_refused_and_nothing_recorded(
    core: Core, change: dict[str, Any], reason: str
) -> None:
    key = ec.generate_private_key(ec.SECP256R1()) if change.get("key") else core.key
    token = client_jwt(
        change.get("iss", "rx1"),
        change.get("kid", "rx1"),
        key,
        change.get("aud", SERVICE),
        change.get("now", NOW_MS // 1000),
    )
    status, body = await core.call(consult(NHS), token)
    assert (status, body["reason"]) == (401, reason)
    assert len(core.backend.log.entries) == 0


async def test_a_replayed_jti_is_refused(core: Core) -> None:
    token = client_jwt("rx1", "rx1", core.key, SERVICE, NOW_MS // 1000, jti="once")
    assert (await core.call(consult(NHS), token))[0] == 200
    status, body = await core.call(consult(NHS), token)
    assert (status, body["reason"]) == (401, "AUTH_REPLAYED")


async def test_the_actor_must_be_the_clients_organisation(core: Core) -> None:
    status, body = await core.call(consult(NHS, organisation="EVIL"))
    assert (status, body["reason"]) == (403, "AUTH_ORGANISATION")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: r.pop("hookInstance"),
        lambda r: r.update(hook="patient-view"),
        lambda r: r["context"].update(patientId=[{"system": "urn:x", "value": "1"}]),
        lambda r: r["context"].update(actor=[]),
        lambda r: r["context"].update(purposeOfUse=["TREAT", "HRESCH"]),
        lambda r: r["context"].update({"class": [{"system": "urn:unknown", "code": "X"}]}),
        lambda r: r.update(extension=[]),
    ],
)
async def test_malformed_hook_requests_are_400_with_a_reason(core: Core, mutate: Any) -> None:
    request = consult(NHS)
    mutate(request)
    status, body = await core.call(request)
    assert status == 400 and body["reason"] == "BAD_REQUEST", body
    assert "9434765919" not in body["message"]
