"""docs/openapi.yaml documents every route of the app, and real responses match the documented schemas."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from broker.api import create_app
from broker.audit import AuditRecord
from broker.audit.requests import AuditReceipt, RequestPosition
from consent_wire.codes import BreachSeverity, ConsentDirective, PurposeOfUse
from tests.openapi import DOCS, Spec
from tests.unit.api.backend import (
    DAY_MS,
    NHS,
    NOW_MS,
    READER,
    MemoryBackend,
    access,
    breach,
    consent,
    objection,
    shield,
)

_SPEC = Spec(DOCS / "openapi.yaml")
SPEC: dict[str, Any] = _SPEC.doc


def problems(value: object, schema: dict[str, Any], at: str = "$") -> list[str]:
    """A small JSON Schema check (see :meth:`tests.openapi.Spec.problems`)."""
    return _SPEC.problems(value, schema, at)


def response_schema(path: str, method: str, status: int) -> dict[str, Any]:
    return _SPEC.response(path, method, status)[1]


def test_spec_is_openapi_3_1_and_every_route_is_documented_with_its_methods() -> None:
    assert SPEC["openapi"].startswith("3.1")
    app = create_app(MemoryBackend(), None)
    routes = {
        (r.method, r.resource.canonical) for r in app.router.routes() if r.method != "HEAD" and r.resource is not None
    }
    documented = {(m.upper(), p) for p, ops in SPEC["paths"].items() for m in ops if m != "parameters"}
    assert routes == documented


def test_the_request_example_is_valid_against_its_own_schema() -> None:
    body = SPEC["paths"]["/v1/decisions"]["post"]["requestBody"]["content"]["application/json"]
    assert problems(body["example"], body["schema"]) == []
    assert problems({"purpose": "TREAT"}, body["schema"]) != []  # the checker can fail


def _populated() -> MemoryBackend:
    backend = MemoryBackend(list_sizes={"A81001": 100})
    backend.add(
        consent(ConsentDirective.OPTIN, PurposeOfUse.HRESCH, at_ms=NOW_MS - 3 * DAY_MS),
        objection(),
        shield(),
        access("A81001", "RESLAB1"),
        breach("RX1", BreachSeverity.LEVEL_1),
    )
    return backend


DECISION = SPEC["paths"]["/v1/decisions"]["post"]["requestBody"]["content"]["application/json"]["example"]
CDS = SPEC["paths"]["/cds-services/patient-consent-consult"]["post"]["requestBody"]["content"]["application/json"][
    "example"
]
CALLS = [
    ("POST", "/v1/decisions", "/v1/decisions", DECISION, 200),
    ("POST", "/v1/decisions", "/v1/decisions", {**DECISION, "as_at": "2026-09-01T00:00:00Z"}, 200),
    ("POST", "/v1/decisions", "/v1/decisions", {**DECISION, "nhs_number": "123"}, 400),
    ("GET", "/v1/patients/{nhs_number}/consent", f"/v1/patients/{NHS}/consent{READER}", None, 200),
    ("GET", "/v1/patients/{nhs_number}/consent", f"/v1/patients/{NHS}/consent{READER}&format=fhir", None, 200),
    ("GET", "/v1/patients/{nhs_number}/consent", f"/v1/patients/12/consent{READER}", None, 400),
    ("GET", "/v1/patients/{nhs_number}/accesses", f"/v1/patients/{NHS}/accesses{READER}", None, 200),
    ("GET", "/v1/reports/objections", "/v1/reports/objections", None, 200),
    ("GET", "/v1/reports/objections", "/v1/reports/objections?list_sizes=bad", None, 400),
    ("GET", "/v1/reports/breaches", f"/v1/reports/breaches?from={NOW_MS - 7 * DAY_MS}", None, 200),
    ("GET", "/v1/reports/disclosures", "/v1/reports/disclosures", None, 200),
    ("GET", "/v1/health", "/v1/health", None, 200),
    ("GET", "/fhir/Consent", f"/fhir/Consent{READER}&patient={NHS}", None, 200),
    ("GET", "/fhir/Consent", f"/fhir/Consent{READER}&patient={NHS}&_count=1", None, 200),
    ("GET", "/fhir/Consent", f"/fhir/Consent{READER}", None, 400),
    ("GET", "/fhir/Consent/{id}", f"/fhir/Consent/{'0' * 31}9{READER}", None, 404),
    ("GET", "/fhir/AuditEvent", f"/fhir/AuditEvent{READER}&patient={NHS}", None, 200),
    ("GET", "/fhir/AuditEvent", f"/fhir/AuditEvent{READER}&patient={NHS}&date=bad", None, 400),
    ("GET", "/cds-services", "/cds-services", None, 200),
    ("POST", "/v1/checks", "/v1/checks?purpose=HRESCH&role=GP", NHS, 400),
    ("POST", "/cds-services/patient-consent-consult", "/cds-services/patient-consent-consult", CDS, 200),
    ("POST", "/cds-services/patient-consent-consult", "/cds-services/patient-consent-consult", {}, 400),
]


async def test_not_ready_and_health_responses_match_the_documented_schema() -> None:
    backend = _populated()
    backend.ready = False
    async with TestClient(TestServer(create_app(backend, None))) as client:
        for method, template, url, body, _ in CALLS:
            resp = await client.request(method, url, json=body)
            assert resp.status == 503
            assert problems(await resp.json(content_type=None), response_schema(template, method, 503)) == []


@pytest.mark.parametrize(("method", "template", "url", "body", "status"), CALLS)
async def test_real_responses_match_the_documented_schema(
    method: str, template: str, url: str, body: object, status: int
) -> None:
    async with TestClient(TestServer(create_app(_populated(), None))) as client:
        resp = await client.request(method, url, json=body)
        assert resp.status == status, await resp.text()
        payload = await resp.json(content_type=None)
    assert problems(payload, response_schema(template, method, status)) == []


async def test_fhir_metadata_and_a_consent_read_match_the_documented_schema() -> None:
    async with TestClient(TestServer(create_app(_populated(), None))) as client:
        metadata = await (await client.get("/fhir/metadata")).json(content_type=None)
        bundle = await (await client.get(f"/fhir/Consent{READER}&patient={NHS}")).json(content_type=None)
        read = await client.get(f"/fhir/Consent/{bundle['entry'][0]['resource']['id']}{READER}")
        assert read.status == 200
        consent = await read.json(content_type=None)
    assert problems(metadata, response_schema("/fhir/metadata", "GET", 200)) == []
    assert problems(consent, response_schema("/fhir/Consent/{id}", "GET", 200)) == []


async def test_an_answer_from_an_instance_that_does_not_hold_the_audit_log_names_its_audit_request() -> None:
    """Issue 16: audit_index null until appended, audit_request the acknowledged request; as documented."""

    class _NotHolding(MemoryBackend):
        async def record(self, record: AuditRecord) -> AuditReceipt:
            return AuditReceipt(None, RequestPosition(2, 41))

    body = {"requester": {"organisation": "RX1", "role": "GP", "registered": True, "relationship": "LEGITIMATE",
                          "care_team": True, "accessor_id": "staff-1"},
            "purpose": "TREAT", "nhs_number": NHS, "data_classes": ["GENERAL"]}  # fmt: skip
    async with TestClient(TestServer(create_app(_NotHolding(), None))) as client:
        resp = await client.post("/v1/decisions", json=body)
        assert resp.status == 200, await resp.text()
        answer = await resp.json()
    assert (answer["audit_index"], answer["audit_request"]) == (None, {"partition": 2, "offset": 41})
    assert problems(answer, response_schema("/v1/decisions", "post", 200)) == []
    assert problems({**answer, "audit_request": {"partition": 2}}, response_schema("/v1/decisions", "post", 200))
