"""HTTP handlers over an in-memory backend: decisions, audit, consent views, reports, errors."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from broker.audit import AuditRecord, RecordKind
from broker.audit.note import Checkpoint, parse_note
from consent_wire import BadProofError, verify_inclusion
from consent_wire.codes import BreachSeverity, ConsentDirective, ObjectionKind, PurposeOfUse
from tests.unit.api.backend import (
    DAY_MS,
    NHS,
    NOW_MS,
    OTHER_NHS,
    PRACTICE,
    READER,
    MemoryBackend,
    access,
    breach,
    consent,
    key_of,
    objection,
    shield,
)

Client = TestClient  # type: ignore[type-arg]


def decision_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "requester": {
            "organisation": "RX1",
            "role": "CONSULTANT",
            "registered": True,
            "relationship": "LEGITIMATE",
            "care_team": True,
            "accessor_id": "staff-42",
        },
        "purpose": "TREAT",
        "nhs_number": NHS,
        "data_classes": ["GENERAL"],
    }
    body.update(overrides)
    return body


async def post(client: Client, body: object, status: int = 200) -> dict[str, Any]:
    resp = await client.post("/v1/decisions", json=body)
    assert resp.status == status, await resp.text()
    result: dict[str, Any] = await resp.json()
    return result


async def test_direct_care_is_permitted_and_recorded_in_the_audit_log(client: Client, backend: MemoryBackend) -> None:
    result = await post(client, decision_body())
    assert result["outcome"] == "PERMIT"
    assert result["legal_basis"] == "IMPLIED_CONSENT_DIRECT_CARE"
    assert result["codes"] == ["DIRECT_CARE_IMPLIED_CONSENT"]
    assert result["permitted"] == ["GENERAL"]
    assert result["audit_index"] == 0
    assert result["decided_at_ms"] == NOW_MS
    record = AuditRecord.from_bytes(backend.log.entries[0].record)
    assert (record.kind, record.patient_key, record.accessor_id, record.outcome) == (
        RecordKind.DECISION,
        key_of(NHS),
        "staff-42",
        "PERMIT",
    )


async def test_research_is_denied_when_the_patient_opted_out_nationally(client: Client, backend: MemoryBackend) -> None:
    backend.add(objection(ObjectionKind.NDOP))
    body = decision_body(purpose="HRESCH", legal_basis="S251")
    body["requester"].update(relationship="NONE", care_team=False, role="RESEARCHER")
    result = await post(client, body)
    assert result["outcome"] == "DENY"
    assert "NDOP_ACTIVE" in result["codes"]
    assert result["legal_basis"] is None
    assert result["withheld"] == ["GENERAL"]
    assert result["state_version"] == 1


async def test_shielded_patient_gets_redaction_and_location_withheld(client: Client, backend: MemoryBackend) -> None:
    backend.add(shield())
    result = await post(client, decision_body(data_classes=["GENERAL", "PATLOC"]))
    assert result["outcome"] == "PERMIT_WITH_OBLIGATIONS"
    assert {"REDACT_LOCATION", "REDACT_CONTACT", "WITHHOLD_DATA_CLASSES"} <= set(result["obligations"])
    assert result["permitted"] == ["GENERAL"]
    assert result["withheld"] == ["PATLOC"]


async def test_as_at_re_evaluates_the_past_state_and_is_recorded_as_a_read(
    client: Client, backend: MemoryBackend
) -> None:
    backend.add(
        consent(ConsentDirective.OPTIN, PurposeOfUse.HRESCH, at_ms=NOW_MS - 10 * DAY_MS),
        consent(ConsentDirective.OPTOUT, PurposeOfUse.HRESCH, at_ms=NOW_MS - 2 * DAY_MS),
    )
    body = decision_body(purpose="HRESCH")
    before = await post(client, {**body, "as_at": NOW_MS - 5 * DAY_MS})
    now = await post(client, body)
    assert (before["outcome"], before["as_at_ms"], before["audit_index"]) == (
        "PERMIT_WITH_OBLIGATIONS",
        NOW_MS - 5 * DAY_MS,
        None,
    )
    assert before["state_version"] == 1
    assert now["outcome"] == "DENY"
    kinds = [AuditRecord.from_bytes(e.record) for e in backend.log.entries]
    assert [(r.kind, r.outcome) for r in kinds] == [(RecordKind.READ, "READ_AS_AT"), (RecordKind.DECISION, "DENY")]


async def test_as_at_in_the_future_is_refused_and_nothing_is_recorded(client: Client, backend: MemoryBackend) -> None:
    resp = await client.post("/v1/decisions", json={**decision_body(), "as_at": NOW_MS + DAY_MS})
    assert resp.status == 400
    assert (await resp.json())["reason"] == "AS_AT_IN_FUTURE"
    assert len(backend.log.entries) == 0


async def test_a_decision_without_an_accessor_is_refused(client: Client, backend: MemoryBackend) -> None:
    body = decision_body()
    body["requester"] = {k: v for k, v in body["requester"].items() if k != "accessor_id"}
    resp = await client.post("/v1/decisions", json=body)
    assert resp.status == 400
    assert "accessor_id is required" in (await resp.json())["message"]
    assert len(backend.log.entries) == 0


async def test_reads_of_patient_data_name_the_reader_and_are_recorded(client: Client, backend: MemoryBackend) -> None:
    resp = await client.get(f"/v1/patients/{NHS}/consent")
    assert resp.status == 400
    assert len(backend.log.entries) == 0
    assert (await client.get(f"/v1/patients/{NHS}/consent{READER}")).status == 200
    record = AuditRecord.from_bytes(list(backend.log.entries)[-1].record)
    assert (record.kind, record.outcome, record.accessor_id, record.purpose) == (
        RecordKind.READ,
        "READ_CONSENT",
        "staff-9",
        PurposeOfUse.TREAT,
    )
    assert record.patient_key == key_of(NHS)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"nhs_number": "9434765918"}, "INVALID_NHS_NUMBER"),
        ({"purpose": "SHOPPING"}, "INVALID_CODE"),
        ({"data_classes": ["GENERAL", "NOPE"]}, "INVALID_CODE"),
        ({"legal_basis": "BECAUSE"}, "INVALID_CODE"),
        ({"purpose": "ANY"}, "BAD_DECISION_REQUEST"),
        ({"data_classes": []}, "BAD_DECISION_REQUEST"),
        ({"nhs_number": 9434765919}, "BAD_REQUEST"),
        ({"requester": "RX1"}, "BAD_REQUEST"),
        ({"as_at": "yesterday"}, "BAD_REQUEST"),
    ],
)
async def test_bad_decision_requests_are_400_with_a_reason(
    client: Client, backend: MemoryBackend, change: dict[str, Any], reason: str
) -> None:
    result = await post(client, decision_body(**change), status=400)
    assert result["reason"] == reason
    assert NHS not in result["message"]
    assert backend.log.entries == ()


async def test_missing_requester_field_and_non_json_are_bad_requests(client: Client) -> None:
    body = decision_body()
    del body["requester"]["registered"]
    assert (await post(client, body, status=400))["message"] == "missing field requester.registered"
    resp = await client.post("/v1/decisions", data=b"{not json")
    assert resp.status == 400
    assert (await resp.json())["reason"] == "BAD_REQUEST"


async def test_consent_state_as_json_and_as_fhir(client: Client, backend: MemoryBackend) -> None:
    backend.add(consent(ConsentDirective.OPTOUT, PurposeOfUse.HRESCH, at_ms=NOW_MS - DAY_MS), objection())
    resp = await client.get(f"/v1/patients/{NHS}/consent{READER}")
    state = await resp.json()
    assert state["patient_key"] == key_of(NHS)
    assert state["version"] == 2
    assert not {"applied", "marks", "format"} & set(state)  # the ledger (event ids, agents) stays inside the core
    assert [(c["purpose"], c["directive"]) for c in state["consents"]] == [("HRESCH", "OPTOUT")]
    assert [(o["kind"], o["active"]) for o in state["objections"]] == [("NDOP", True)]
    fhir = await (await client.get(f"/v1/patients/{NHS}/consent{READER}&format=fhir")).json()
    assert fhir["resourceType"] == "Bundle"
    assert fhir["total"] == 2
    resources = [e["resource"] for e in fhir["entry"]]
    assert {r["resourceType"] for r in resources} == {"Consent"}
    assert {r["patient"]["identifier"]["value"] for r in resources} == {NHS}


async def test_consent_of_an_unknown_patient_is_empty_and_bad_numbers_are_400(client: Client) -> None:
    state = await (await client.get(f"/v1/patients/{OTHER_NHS}/consent{READER}")).json()
    assert (state["version"], state["consents"], state["shielding"]) == (0, [], None)
    resp = await client.get(f"/v1/patients/1234567890/consent{READER}")
    assert resp.status == 400
    assert (await resp.json())["reason"] == "INVALID_NHS_NUMBER"
    resp = await client.get(f"/v1/patients/{NHS}/consent{READER}&format=xml")
    assert (await resp.json())["reason"] == "BAD_REQUEST"


async def test_accesses_list_decisions_and_access_records_of_that_patient_only(
    client: Client, backend: MemoryBackend
) -> None:
    backend.add(access("B82002", at_ms=NOW_MS - 3 * DAY_MS), access("C83003", nhs=OTHER_NHS))
    await post(client, decision_body())
    result = await (await client.get(f"/v1/patients/{NHS}/accesses{READER}")).json()
    got = [(a["kind"], a["organisation"], a["at_ms"], a["outcome"]) for a in result["accesses"]]
    assert got == [
        ("ACCESS", "B82002", NOW_MS - 3 * DAY_MS, "VIEWED"),
        ("DECISION", "RX1", NOW_MS, "PERMIT"),
        ("READ", "UNAUTHENTICATED", NOW_MS, "READ_ACCESSES"),  # this very read (insecure_http: no organisation)
    ]


async def test_the_access_log_pages_through_in_log_order(client: Client, backend: MemoryBackend) -> None:
    """Issue 16: ``?limit=&after=`` pages through a long access log; ``next_after`` says where the next page starts."""
    backend.add(*(access("B82002", at_ms=NOW_MS - (10 - i) * DAY_MS) for i in range(5)))
    seen: list[int] = []
    after: int | None = -1
    while after is not None:
        page = await (await client.get(f"/v1/patients/{NHS}/accesses{READER}&limit=2&after={after}")).json()
        assert len(page["accesses"]) <= 2
        seen += [a["index"] for a in page["accesses"]]
        after = page["next_after"]
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert seen[:5] == [e.index for e in backend.log.entries[:5]]  # every access record, each once
    whole = await (await client.get(f"/v1/patients/{NHS}/accesses{READER}")).json()
    assert "next_after" not in whole  # no limit: the whole list, as before
    for bad in ("limit=0", "limit=1001", "limit=x", "after=-2", "after=1e3"):
        resp = await client.get(f"/v1/patients/{NHS}/accesses{READER}&{bad}")
        assert (resp.status, (await resp.json())["reason"]) == (400, "BAD_REQUEST"), bad


async def test_disclosure_windows_are_whole_utc_days(client: Client, backend: MemoryBackend) -> None:
    """The aggregates are per UTC day: a window inside a day is refused, not answered approximately."""
    backend.add(access("A81001", "RESLAB1", at_ms=NOW_MS - DAY_MS))
    day = (NOW_MS - DAY_MS) // DAY_MS * DAY_MS
    report = await (await client.get(f"/v1/reports/disclosures?from={day}&to={day + DAY_MS}")).json()
    assert [(r["recipient"], r["disclosures"]) for r in report["rows"]] == [("RESLAB1", 1)]
    empty = await (await client.get(f"/v1/reports/disclosures?from={day + DAY_MS}")).json()
    assert empty["rows"] == []
    resp = await client.get(f"/v1/reports/disclosures?from={day + 1}")
    assert (resp.status, (await resp.json())["reason"]) == (400, "BAD_REPORT_INPUT")


async def test_objection_report_flags_practices_and_needs_list_sizes(client: Client, backend: MemoryBackend) -> None:
    backend.add(objection(), objection(ObjectionKind.TYPE1, nhs=OTHER_NHS))
    resp = await client.get("/v1/reports/objections")
    assert resp.status == 400
    report = await (await client.get(f"/v1/reports/objections?list_sizes={PRACTICE}:100,B82002:100")).json()
    rows = {r["practice"]: r for r in report["rows"]}
    assert (rows[PRACTICE]["objectors"], rows["B82002"]["objectors"]) == (2, 0)
    assert rows[PRACTICE]["overall_rate"] == 2 / 200
    assert report["alerts"] == []
    bad = await client.get("/v1/reports/objections?list_sizes=A81001")
    assert (await bad.json())["reason"] == "BAD_REQUEST"


async def test_breach_and_disclosure_reports(client: Client, backend: MemoryBackend) -> None:
    backend.add(
        breach("RX1", BreachSeverity.LEVEL_2),
        breach("RX1", BreachSeverity.LEVEL_0, at_ms=NOW_MS - 40 * DAY_MS),
        access("A81001", "RESLAB1"),
        access("A81001", "RESLAB1", nhs=OTHER_NHS),
    )
    breaches = await (await client.get("/v1/reports/breaches")).json()
    assert breaches["summary"]["rows"] == [
        {"organisation": "RX1", "level_0": 1, "level_1": 0, "level_2": 1, "total": 2,
         "individuals_affected": 2, "apologies_given": 2}
    ]  # fmt: skip
    assert len(breaches["incidents"]["rows"]) == 2
    recent = await (await client.get(f"/v1/reports/breaches?from={NOW_MS - 10 * DAY_MS}")).json()
    assert recent["summary"]["rows"][0]["total"] == 1
    report = await (await client.get("/v1/reports/disclosures")).json()
    assert [(r["recipient"], r["disclosures"], r["patients"]) for r in report["rows"]] == [("RESLAB1", 2, 2)]


async def test_a_report_is_rendered_once_per_version_of_the_aggregates(
    client: Client, backend: MemoryBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Repeated report queries reuse the rendered body until the aggregates change; no-cache renders anew."""
    reads: list[object] = []
    totals = backend.report_totals

    async def counted(*args: Any, **kwargs: Any) -> Any:
        reads.append(args)
        return await totals(*args, **kwargs)

    monkeypatch.setattr(backend, "report_totals", counted)
    backend.add(access("A81001", "RESLAB1"))
    first = await (await client.get("/v1/reports/disclosures")).json()
    again = await (await client.get("/v1/reports/disclosures")).json()
    assert (first, len(reads)) == (again, 1)
    backend.add(access("A81001", "RESLAB1", nhs=OTHER_NHS))  # a new version: the next answer counts it
    report = await (await client.get("/v1/reports/disclosures")).json()
    assert [(r["disclosures"], r["patients"]) for r in report["rows"]] == [(2, 2)]
    assert len(reads) == 2
    await client.get("/v1/reports/disclosures", headers={"Cache-Control": "no-cache"})
    assert len(reads) == 3
    bad = await client.get("/v1/reports/disclosures?from=1")  # parameters are checked on every request
    assert (bad.status, len(reads)) == (400, 3)


async def test_health_is_503_until_the_views_caught_up(client: Client, backend: MemoryBackend) -> None:
    backend.ready = False
    resp = await client.get("/v1/health")
    assert (resp.status, (await resp.json())["status"]) == (503, "starting")
    refused = await post(client, decision_body(), status=503)
    assert refused["reason"] == "NOT_READY"
    assert backend.log.entries == ()
    backend.ready = True
    await post(client, decision_body())
    resp = await client.get("/v1/health")
    body = await resp.json()
    assert (resp.status, body["status"]) == (200, "ok")
    assert body["audit_next_index"] == body["audit_indexed"] == 1  # the index's lag: their difference, here none


async def test_a_wish_set_aside_comes_with_a_patient_notice_in_the_answer_and_the_access_log(
    client: Client, backend: MemoryBackend
) -> None:
    """Issue 14, notices (rec 7, principle 8 of 2020); rule 5 through the HTTP API: a COPI regulation 3
    flow is outside the national opt-out, and the patient can later read why in their access log."""
    backend.add(objection())
    researcher = {"organisation": "RESLAB1", "role": "RESEARCHER", "registered": True, "relationship": "NONE",
                  "care_team": False, "accessor_id": "r-1"}  # fmt: skip
    body = decision_body(requester=researcher, purpose="HRESCH", legal_basis="S251", gateway="COPI_REG3",
                         flow_ref="COPI notice 2020-03")  # fmt: skip
    answer = await post(client, body)
    assert answer["codes"][0] == "GATEWAY_OUTSIDE_OPT_OUT"
    assert "opt-out does not apply here" in answer["patient_notice"]
    refused = await post(client, decision_body(requester=researcher, purpose="HRESCH", legal_basis="S251"))
    assert (refused["outcome"], refused["patient_notice"]) == ("DENY", None)
    log = await (await client.get(f"/v1/patients/{NHS}/accesses{READER}")).json()
    notices = [a["notice"] for a in log["accesses"] if a["kind"] == "DECISION"]
    assert notices == [answer["patient_notice"], None]


async def test_each_access_carries_a_proof_a_patient_app_checks_without_trusting_the_api(
    client: Client, backend: MemoryBackend
) -> None:
    backend.add(access("B82002", at_ms=NOW_MS - 3 * DAY_MS), access("C83003", nhs=OTHER_NHS))
    await post(client, decision_body())
    backend.cosigned_size = 3  # the read below is newer than the checkpoint
    result = await (await client.get(f"/v1/patients/{NHS}/accesses{READER}")).json()
    note = parse_note(result["checkpoint"])
    assert note.verified_by(backend.log_key.verifier) == 0
    root = Checkpoint.parse(note.text).root
    proved = [a for a in result["accesses"] if a["inclusion_proof"] is not None]
    assert [a["kind"] for a in proved] == ["ACCESS", "DECISION"]
    for a in proved:
        hashes = tuple(base64.b64decode(h) for h in a["inclusion_proof"]["hashes"])
        verify_inclusion(a["record"].encode(), a["index"], a["inclusion_proof"]["tree_size"], hashes, root)
        forged = a["record"].replace("B82002", "X99999").replace('"RX1"', '"X99999"').encode()
        with pytest.raises(BadProofError):
            verify_inclusion(forged, a["index"], a["inclusion_proof"]["tree_size"], hashes, root)
    assert result["accesses"][-1]["inclusion_proof"] is None  # the read itself: not yet under a checkpoint


async def test_the_deployments_decision_policy_reaches_every_decision(backend: MemoryBackend) -> None:
    """decision_policy_file (rule 9): a deployment that entitles only ED doctors to break-glass refuses a GP's."""
    from aiohttp.test_utils import TestServer

    from broker.api import create_app
    from consent_rules.decision import DecisionPolicy

    policy = DecisionPolicy(break_glass_roles=frozenset({"ED_DOCTOR"}))
    gp = {"organisation": "RX1", "role": "GP", "registered": True, "relationship": "NONE", "care_team": False,
          "accessor_id": "gp-1"}  # fmt: skip
    body = decision_body(requester=gp, legal_basis="BREAK_GLASS")
    async with TestClient(TestServer(create_app(backend, None))) as default_client:
        assert (await post(default_client, body))["outcome"] == "PERMIT_WITH_OBLIGATIONS"  # GP: a default role
    async with TestClient(TestServer(create_app(backend, None, policy))) as configured:
        answer = await post(configured, body)
    assert (answer["outcome"], answer["codes"]) == ("DENY", ["BREAK_GLASS_NOT_ENTITLED"])
