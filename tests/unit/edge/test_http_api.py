from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from edge_agent.http_api import ApiContext, make_app
from edge_agent.intake import Intake
from edge_agent.metrics import EdgeCollector, SubmissionCounts, make_registry
from edge_agent.outbox import Outbox
from edge_agent.replica import Replica
from edge_agent.submission import MAX_BATCH_BYTES
from edge_agent.wire import AvroEventCodec
from tests.fakes import VALID_NHS, FakeClock, fake_pseudonymise

CONSENT = {
    "type": "consent_decision",
    "nhs_number": VALID_NHS,
    "payload": {"directive": "OPTOUT", "purpose": "HRESCH", "data_class": "ALL", "recipient": "*"},
}


@dataclass
class Api:
    client: TestClient  # type: ignore[type-arg]
    outbox: Outbox
    replica: Replica


async def start_api(tmp_path: Path, cap: int = 1 << 30) -> Api:
    outbox = await Outbox.open(
        tmp_path / "o.db", agent_id="agent-1", site="A12345", codec=AvroEventCodec(), cap_bytes=cap
    )
    replica = Replica(tmp_path / "r.db", None)
    await replica.open()
    counts = SubmissionCounts()
    ids = iter(f"{i:032x}" for i in range(1, 100_000))
    intake = Intake(outbox, fake_pseudonymise, FakeClock(), lambda: 1_700_000_000_000, lambda: next(ids))
    registry = make_registry(EdgeCollector(outbox, counts, None, replica))
    ctx = ApiContext("agent-1", "A12345", intake, outbox, fake_pseudonymise, counts, registry, lambda: 1, replica)
    client = TestClient(TestServer(make_app(ctx, b"t" * 64)), headers={"Authorization": "Bearer " + "t" * 64})
    await client.start_server()
    return Api(client, outbox, replica)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    a = await start_api(tmp_path)
    yield a
    await a.client.close()
    await a.outbox.close()
    await a.replica.close()


async def test_post_event_returns_202_with_seq_after_commit(api: Api) -> None:
    resp = await api.client.post("/v1/events", json=CONSENT)

    assert resp.status == 202
    assert await resp.json() == {"event_id": f"{1:032x}", "seq": 1}
    assert [r.seq for r in await api.outbox.pending(10)] == [1]


async def test_invalid_event_returns_400_with_reason_and_nothing_stored(api: Api) -> None:
    bad = {**CONSENT, "payload": {**CONSENT["payload"], "purpose": "GOSSIP"}}  # type: ignore[dict-item]
    resp = await api.client.post("/v1/events", json=bad)
    body = await resp.json()

    assert resp.status == 400
    assert body["reason"] == "INVALID_CODE"
    assert body["message"].startswith("payload.purpose='GOSSIP'")
    assert api.outbox.pending_count == 0


async def test_malformed_json_returns_400(api: Api) -> None:
    resp = await api.client.post("/v1/events", data=b"{oops")

    assert resp.status == 400
    assert (await resp.json())["reason"] == "MALFORMED_JSON"


async def test_batch_returns_one_receipt_per_event_in_order(api: Api) -> None:
    resp = await api.client.post("/v1/events/batch", json={"events": [CONSENT] * 3})

    assert resp.status == 202
    assert [r["seq"] for r in (await resp.json())["receipts"]] == [1, 2, 3]


async def test_outbox_at_cap_returns_507_and_raises_alarm_metric(tmp_path: Path) -> None:
    probe = await Outbox.open(tmp_path / "p" / "o.db", agent_id="a", site="A12345", codec=AvroEventCodec(), cap_bytes=1)
    empty = (await probe.stats()).used_bytes
    await probe.close()
    api = await start_api(tmp_path, cap=empty + 2048)
    try:
        statuses = [(await api.client.post("/v1/events", json=CONSENT)).status for _ in range(40)]
        last = await api.client.post("/v1/events", json=CONSENT)
        last_body = await last.json()
        metrics = await (await api.client.get("/metrics")).text()
    finally:
        await api.client.close()
        await api.outbox.close()
        await api.replica.close()

    assert statuses[0] == 202
    assert 507 in statuses
    assert last.status == 507
    assert last_body["reason"] == "OUTBOX_FULL"
    assert "edge_outbox_full 1.0" in metrics
    assert f"edge_outbox_pending_events {statuses.count(202)}.0" in metrics


async def test_metrics_count_submissions_by_outcome(api: Api) -> None:
    await api.client.post("/v1/events", json=CONSENT)
    await api.client.post("/v1/events", data=b"[]")
    text = await (await api.client.get("/metrics")).text()

    assert 'edge_submissions_total{outcome="accepted"} 1.0' in text
    assert 'edge_submissions_total{outcome="INVALID_FIELD"} 1.0' in text
    assert "edge_quarantined_total 0.0" in text
    assert "edge_outbox_full 0.0" in text


async def test_health_reports_backlog(api: Api) -> None:
    await api.client.post("/v1/events", json=CONSENT)
    body = await (await api.client.get("/v1/health")).json()

    assert body == {
        "status": "ok",
        "agent_id": "agent-1",
        "site": "A12345",
        "outbox_pending": 1,
        "outbox_full": False,
        "quarantined": 0,
        "publisher_connected": False,
    }


async def test_fhir_consent_is_accepted(api: Api) -> None:
    from consent_wire.codes import ConsentDirective, DataClass, PurposeOfUse
    from consent_wire.fhir import consent_to_fhir
    from consent_wire.model import ConsentDecision

    decision = ConsentDecision(ConsentDirective.OPTOUT, PurposeOfUse.HRESCH, DataClass.ALL, "*")
    resource = consent_to_fhir(decision, nhs_number=VALID_NHS, recorded_ms=1_700_000_000_000)
    resp = await api.client.post("/v1/fhir/Consent", json=resource)

    assert resp.status == 202
    assert [r["seq"] for r in (await resp.json())["receipts"]] == [1]
    event = AvroEventCodec().decode((await api.outbox.pending(1))[0].data)
    assert event.payload == decision
    assert event.patient_key == fake_pseudonymise(VALID_NHS)


async def test_invalid_fhir_is_400(api: Api) -> None:
    resp = await api.client.post("/v1/fhir/Consent", json={"resourceType": "Patient"})

    assert resp.status == 400
    assert (await resp.json())["reason"] == "FHIR_INVALID"


async def test_offline_decision_is_marked_offline(api: Api) -> None:
    query = {
        "nhs_number": VALID_NHS,
        "purpose": "TREAT",
        "data_classes": ["ALL"],
        "requester": {
            "organisation": "A12345",
            "role": "GP",
            "registered": True,
            "relationship": "LEGITIMATE",
            "care_team": True,
        },
    }
    resp = await api.client.post("/v1/decisions", json=query)
    body = await resp.json()

    assert resp.status == 200
    assert body["offline"] is True
    assert body["as_at_ms"] is None  # no replicated state for this patient yet
    assert body["outcome"].startswith("PERMIT")


async def test_offline_decision_takes_the_core_request_and_answers_in_the_documented_shape(api: Api) -> None:
    from tests.unit.api.test_openapi import DECISION, SPEC, problems, response_schema

    assert "accessor_id" in DECISION["requester"]  # the core's documented example, as is
    for query in (DECISION, {**DECISION, "as_at": "2026-09-01T00:00:00Z"}):
        resp = await api.client.post("/v1/decisions", json=query)
        body = await resp.json()

        assert resp.status == 200, body
        assert problems(body, response_schema("/v1/decisions", "POST", 200)) == []
        assert (body["offline"], body["audit_index"]) == (True, None)
    assert SPEC["components"]["schemas"]["Decision"]["properties"]["offline"]["type"] == "boolean"


async def test_offline_decision_refuses_a_core_request_it_cannot_parse_with_the_core_reason(api: Api) -> None:
    from tests.unit.api.test_openapi import DECISION

    resp = await api.client.post("/v1/decisions", json={**DECISION, "as_at": "yesterday"})

    assert resp.status == 400
    assert (await resp.json())["reason"] == "BAD_REQUEST"


async def test_offline_decisions_take_the_request_only_purposes_with_their_conditions(api: Api) -> None:
    """Issue 14, vocabulary: the agent shares the core's parser and rules (HL7 ActReason HLEGAL, a kind of
    HOPERAT, needs an evidenced mandate; HDECD a deceased patient)."""
    researcher = {"organisation": "A12345", "role": "SOLICITOR", "registered": True, "relationship": "NONE",
                  "care_team": False}  # fmt: skip
    base = {"nhs_number": VALID_NHS, "data_classes": ["GENERAL"], "requester": researcher}
    mandate = {"legal_basis": "STATUTORY_MANDATE", "evidence": {"instrument": "Court order 2026/123"}}
    bare = await (await api.client.post("/v1/decisions", json={**base, "purpose": "HLEGAL"})).json()
    ordered = await (await api.client.post("/v1/decisions", json={**base, "purpose": "HLEGAL", **mandate})).json()
    living = await (await api.client.post("/v1/decisions", json={**base, "purpose": "HDECD", **mandate})).json()
    assert (bare["outcome"], bare["codes"], bare["offline"]) == ("DENY", ["PURPOSE_NEEDS_BASIS"], True)
    assert (ordered["outcome"], ordered["legal_basis"]) == ("PERMIT_WITH_OBLIGATIONS", "STATUTORY_MANDATE")
    assert (living["outcome"], living["codes"]) == ("DENY", ["PATIENT_NOT_DECEASED"])


async def _error_of(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body: dict[str, Any] = await resp.json()
    assert set(body) == {"reason", "message"}
    return body


async def test_an_unknown_route_is_404_not_found_in_the_error_shape(api: Api) -> None:
    body = await _error_of(await api.client.get("/v1/nowhere"), 404)
    assert body == {"reason": "NOT_FOUND", "message": "no route /v1/nowhere; see the API's documentation"}


async def test_a_wrong_method_is_405_in_the_error_shape(api: Api) -> None:
    resp = await api.client.get("/v1/events")
    body = await _error_of(resp, 405)
    assert body == {"reason": "METHOD_NOT_ALLOWED", "message": "GET is not allowed on /v1/events; use POST"}
    assert resp.headers["Allow"] == "POST"


async def test_a_body_over_the_limit_is_413_body_too_large_and_nothing_is_queued(api: Api) -> None:
    resp = await api.client.post("/v1/events/batch", data=io.BytesIO(b" " * (MAX_BATCH_BYTES + 1)))
    body = await _error_of(resp, 413)
    assert body["reason"] == "BODY_TOO_LARGE"
    assert str(MAX_BATCH_BYTES) in body["message"]
    assert api.outbox.pending_count == 0
