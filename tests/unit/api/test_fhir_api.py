"""The core's FHIR R4 endpoint over an in-memory backend: search, paging, read, AuditEvent, OperationOutcome, auth."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.api import create_app
from broker.audit import AuditRecord, RecordKind
from broker.auth import ClientRegistry, TokenService
from tests.fhir.emitted import DECISION, populated
from tests.unit.api.backend import NHS, OTHER_NHS, READER, MemoryBackend, key_of
from tests.unit.api.test_api_auth import TOKEN_URL, Door, _bearer, _entry

Client = TestClient  # type: ignore[type-arg]
R = READER.lstrip("?")


async def fhir_get(client: Client, url: str, status: int = 200) -> dict[str, Any]:
    resp = await client.get(url)
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/fhir+json"
    body: dict[str, Any] = await resp.json(content_type=None)
    return body


def _local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def test_an_empty_search_is_a_valid_searchset_without_entry(client: Client) -> None:
    bundle = await fhir_get(client, f"/fhir/Consent?patient={OTHER_NHS}&{R}")
    assert (bundle["type"], bundle["total"]) == ("searchset", 0)
    assert "entry" not in bundle
    assert [link["relation"] for link in bundle["link"]] == ["self"]


async def test_paging_follows_next_links_to_every_consent_once() -> None:
    backend = populated()
    async with TestClient(TestServer(create_app(backend, None))) as client:
        page = await fhir_get(client, f"/fhir/Consent?patient={NHS}&_count=3&{R}")
        total, seen, pages = page["total"], [], 0
        while True:
            pages += 1
            for entry in page.get("entry", []):
                assert entry["fullUrl"].endswith(f"/fhir/Consent/{entry['resource']['id']}")
                assert entry["search"] == {"mode": "match"}
                seen.append(entry["resource"]["id"])
            nxt = [link["url"] for link in page["link"] if link["relation"] == "next"]
            if not nxt:
                break
            page = await fhir_get(client, _local(nxt[0]))
    assert total == 4  # three consents and the NDOP objection
    assert len(seen) == len(set(seen)) == total
    assert pages == 2


async def test_search_filters_by_date_status_and_scope(client: Client, backend: MemoryBackend) -> None:
    backend.add(*populated().stored)
    everything = await fhir_get(client, f"/fhir/Consent?patient={NHS}&{R}")
    assert everything["total"] == 4
    assert (await fhir_get(client, f"/fhir/Consent?patient={NHS}&date=lt2020&{R}"))["total"] == 0
    assert (await fhir_get(client, f"/fhir/Consent?patient={NHS}&date=ge2026-09&date=lt2027&{R}"))["total"] == 4
    assert (await fhir_get(client, f"/fhir/Consent?patient={NHS}&status=inactive&{R}"))["total"] == 0
    assert (await fhir_get(client, f"/fhir/Consent?patient={NHS}&scope=research&{R}"))["total"] == 0
    nhs_system = f"https://fhir.nhs.uk/Id/nhs-number%7C{NHS}"
    assert (await fhir_get(client, f"/fhir/Consent?patient={nhs_system}&status=active&{R}"))["total"] == 4


async def test_a_read_by_id_names_the_patient_by_pseudonym_and_is_audited(
    client: Client, backend: MemoryBackend
) -> None:
    backend.add(*populated().stored)
    found = await fhir_get(client, f"/fhir/Consent?patient={NHS}&{R}")
    consent_id = found["entry"][0]["resource"]["id"]
    consent = await fhir_get(client, f"/fhir/Consent/{consent_id}?{R}")
    assert consent["id"] == consent_id
    assert consent["patient"]["identifier"] == {"system": "urn:uk-nhs-consent:patient-pseudonym", "value": key_of(NHS)}
    records = [AuditRecord.from_bytes(e.record) for e in backend.log.entries]
    assert [(r.kind, r.outcome) for r in records if r.kind is RecordKind.READ] == [
        (RecordKind.READ, "READ_CONSENT"),
        (RecordKind.READ, "READ_CONSENT"),
    ]
    missing = await fhir_get(client, f"/fhir/Consent/{'e' * 32}?{R}", 404)
    assert missing["issue"][0]["code"] == "not-found"


async def test_audit_events_are_shaped_per_balp(client: Client, backend: MemoryBackend) -> None:
    backend.add(*populated().stored)
    assert (await client.post("/v1/decisions", json=DECISION)).status == 200
    research = {**DECISION, "purpose": "HRESCH", "legal_basis": "S251"}
    assert (await client.post("/v1/decisions", json=research)).status == 200
    bundle = await fhir_get(client, f"/fhir/AuditEvent?patient={NHS}&{R}")
    events = [e["resource"] for e in bundle["entry"]]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_type.setdefault(event["type"]["code"], []).append(event)
    decisions = by_type["110113"]
    assert [(d["subtype"][0]["code"], d["action"], d["outcome"]) for d in decisions] == [
        ("AuthZ-Consent", "E", "0"),
        ("AuthZ-Consent", "E", "4"),
    ]
    (disclosure,) = by_type["disclose"]
    assert {
        "code": "110152",
        "display": "Destination Role ID",
        "system": "http://dicom.nema.org/resources/ontology/DCM",
    } in [a["type"]["coding"][0] for a in disclosure["agent"]]
    assert all(e["entity"][0]["what"]["identifier"]["value"] == NHS for e in events)
    assert by_type["rest"][0]["subtype"][0]["code"] == "read"  # the site-reported view
    assert bundle["total"] == len(events) == 4  # the search's own read is recorded after it answers
    again = await fhir_get(client, f"/fhir/AuditEvent?patient={NHS}&{R}")
    assert again["total"] == 5


async def test_errors_under_fhir_are_operation_outcomes_with_the_reason_code(client: Client) -> None:
    cases = {
        f"/fhir/Consent?{R}": (400, "BAD_REQUEST", "invalid"),
        f"/fhir/Consent?patient={NHS}&colour=red&{R}": (400, "BAD_REQUEST", "invalid"),
        f"/fhir/Consent?patient={NHS}&_count=101&{R}": (400, "BAD_REQUEST", "invalid"),
        f"/fhir/Consent?patient=123&{R}": (400, "INVALID_NHS_NUMBER", "invalid"),
        "/fhir/Observation": (404, "NOT_FOUND", "not-found"),
    }
    for url, (status, reason, code) in cases.items():
        outcome = await fhir_get(client, url, status)
        (issue,) = outcome["issue"]
        assert (issue["code"], issue["details"]["coding"][0]["code"]) == (code, reason), url
    resp = await client.post("/fhir/metadata")
    assert (resp.status, resp.headers["Allow"]) == (405, "GET")
    assert (await resp.json(content_type=None))["issue"][0]["code"] == "not-supported"


async def test_the_fhir_endpoint_is_behind_the_oauth_scopes() -> None:
    keys = {name: ec.generate_private_key(ec.SECP256R1()) for name in ("rx1", "auditor")}
    registry = ClientRegistry.from_data(
        {
            "client": [
                _entry("rx1", "RX1", ["patient.read"], keys["rx1"]),
                _entry("auditor", "RX1", ["audit.read"], keys["auditor"]),
            ]
        }
    )
    backend = populated()
    app = create_app(backend, TokenService(registry, Ed25519PrivateKey.generate(), TOKEN_URL))
    reader = R.replace("GP", "CONSULTANT")
    async with TestClient(TestServer(app)) as client:
        door = Door(client, backend, keys)
        assert (await client.get("/fhir/metadata")).status == 200  # open, as FHIR clients expect
        anonymous = await client.get(f"/fhir/Consent?patient={NHS}&{reader}")
        assert anonymous.status == 401
        assert (await anonymous.json(content_type=None))["issue"][0]["code"] == "login"
        rx1, auditor = await door.token("rx1"), await door.token("auditor")
        assert (await client.get(f"/fhir/Consent?patient={NHS}&{reader}", headers=_bearer(rx1))).status == 200
        denied = await client.get(f"/fhir/AuditEvent?patient={NHS}&{reader}", headers=_bearer(rx1))
        assert denied.status == 403
        assert (await denied.json(content_type=None))["issue"][0]["details"]["coding"][0]["code"] == "AUTH_SCOPE"
        assert (await client.get(f"/fhir/AuditEvent?patient={NHS}&{reader}", headers=_bearer(auditor))).status == 200
        assert (await client.get(f"/fhir/Consent?patient={NHS}&{reader}", headers=_bearer(auditor))).status == 403
