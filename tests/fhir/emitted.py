"""Every kind of FHIR resource the product emits, for the HAPI validator (tests/unit/api/test_fhir_hapi.py).

Resources come from the real code paths: Consent exports of every importable HL7-shaped example (import
then export), and the core's HTTP answers over an in-memory backend: searchset Bundles (empty, one page,
paged with next/previous links), a Consent read, AuditEvents of every record kind (decision permit and
deny, read, view, disclosure), an OperationOutcome for each error path, the CapabilityStatement.

Hook for the CDS Hooks service (another module of issue 17): if ``broker.api.cds`` offers
``fhir_resources_for_validation() -> Iterable[tuple[str, dict]]`` (name, FHIR resource from its cards),
those are validated too.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from broker.api import create_app
from consent_wire import ConsentDecision, InvalidFhirError
from consent_wire.codes import BreachSeverity, ConsentDirective, DataClass, PurposeOfUse
from consent_wire.fhir import consent_to_fhir, fhir_to_events_payloads
from tests.fhir import hl7_examples as ex
from tests.unit.api.backend import (
    DAY_MS,
    NHS,
    NOW_MS,
    OTHER_NHS,
    READER,
    MemoryBackend,
    access,
    breach,
    consent,
    objection,
    shield,
)

Json = dict[str, Any]
DECISION = {
    "requester": {"organisation": "RX1", "role": "CONSULTANT", "registered": True, "relationship": "LEGITIMATE",
                  "care_team": True, "accessor_id": "staff-42"},
    "purpose": "TREAT", "nhs_number": NHS, "data_classes": ["GENERAL"],
}  # fmt: skip


def exports() -> Iterator[tuple[str, Json]]:
    """Import then export every importable example: the export of each import case."""
    for name, resource in {**ex.R4_VALID, **ex.R5_VALID}.items():
        try:
            payloads = fhir_to_events_payloads(resource)
        except InvalidFhirError:
            continue
        first, *rest = payloads
        exceptions = [p for p in rest if isinstance(p, ConsentDecision)] if isinstance(first, ConsentDecision) else []
        yield f"export-{name}", consent_to_fhir(first, nhs_number=ex.NHS, recorded_ms=NOW_MS, exceptions=exceptions)


def populated() -> MemoryBackend:
    backend = MemoryBackend(list_sizes={"A81001": 100})
    backend.add(
        *(consent(ConsentDirective.OPTIN, p, at_ms=NOW_MS - (5 - i) * DAY_MS)
          for i, p in enumerate((PurposeOfUse.HRESCH, PurposeOfUse.TREAT, PurposeOfUse.COC))),
        objection(),
        shield(),
        access("A81001", "RESLAB1"),
        access("A81001"),
        breach("RX1", BreachSeverity.LEVEL_1),
    )  # fmt: skip
    return backend


async def http_resources() -> list[tuple[str, Json]]:
    backend = populated()
    out: list[tuple[str, Json]] = []
    async with TestClient(TestServer(create_app(backend, None))) as client:

        async def get(name: str, url: str, status: int = 200) -> Json:
            resp = await client.get(url)
            assert resp.status == status, (url, resp.status, await resp.text())
            assert resp.content_type == "application/fhir+json" or url.startswith("/v1/"), (url, resp.content_type)
            body: Json = await resp.json()
            out.append((name, body))
            return body

        for outcome_body in (DECISION, {**DECISION, "purpose": "HRESCH", "legal_basis": "S251"}):
            resp = await client.post("/v1/decisions", json=outcome_body)
            assert resp.status == 200, await resp.text()
        reader = READER.lstrip("?")
        await get("capability", "/fhir/metadata")
        page1 = await get("consent-page-1", f"/fhir/Consent?patient={NHS}&_count=2&{reader}")
        await get("consent-page-2", f"/fhir/Consent?patient={NHS}&_count=2&_offset=2&{reader}")
        await get("consent-empty", f"/fhir/Consent?patient={OTHER_NHS}&{reader}")
        await get("consent-status-inactive", f"/fhir/Consent?patient={NHS}&status=inactive&{reader}")
        await get("consent-dated", f"/fhir/Consent?patient={NHS}&date=ge2026-09-01&date=lt2030&{reader}")
        await get("consent-format-fhir", f"/v1/patients/{NHS}/consent{READER}&format=fhir")
        await get("consent-format-fhir-empty", f"/v1/patients/{OTHER_NHS}/consent{READER}&format=fhir")
        consent_id = page1["entry"][0]["resource"]["id"]
        await get("consent-read", f"/fhir/Consent/{consent_id}?{reader}")
        await get("audit-events", f"/fhir/AuditEvent?patient={NHS}&{reader}")
        await get("audit-events-paged", f"/fhir/AuditEvent?patient={NHS}&_count=1&_offset=1&{reader}")
        await get("audit-events-empty", f"/fhir/AuditEvent?patient={OTHER_NHS}&date=lt2000&{reader}")
        errors = {
            "missing-patient": (f"/fhir/Consent?{reader}", 400),
            "unknown-parameter": (f"/fhir/Consent?patient={NHS}&colour=red&{reader}", 400),
            "bad-count": (f"/fhir/Consent?patient={NHS}&_count=1000&{reader}", 400),
            "bad-date": (f"/fhir/Consent?patient={NHS}&date=yesterday&{reader}", 400),
            "bad-nhs-number": (f"/fhir/Consent?patient=123&{reader}", 400),
            "no-reader": (f"/fhir/AuditEvent?patient={NHS}", 400),
            "not-found": (f"/fhir/Consent/{'f' * 32}?{reader}", 404),
            "no-route": ("/fhir/Patient", 404),
        }
        for name, (url, status) in errors.items():
            await get(f"outcome-{name}", url, status)
        resp = await client.post("/fhir/metadata")
        assert resp.status == 405
        out.append(("outcome-method", await resp.json()))
        backend.ready = False
        await get("outcome-not-ready", f"/fhir/Consent?patient={NHS}&{reader}", 503)
    return out


def cds_resources() -> list[tuple[str, Json]]:
    try:
        cds = importlib.import_module("broker.api.cds")
    except ImportError:
        return []
    provider = getattr(cds, "fhir_resources_for_validation", None)
    return [(f"cds-{name}", r) for name, r in provider()] if provider is not None else []


def all_classes_export() -> Iterator[tuple[str, Json]]:
    for data_class in DataClass:
        if data_class is not DataClass.ALL:
            decision = ConsentDecision(ConsentDirective.OPTOUT, PurposeOfUse.ANY, data_class, "*")
            yield f"export-class-{data_class.value}", consent_to_fhir(decision, nhs_number=NHS, recorded_ms=NOW_MS)
