from __future__ import annotations

from pathlib import Path

import pytest

from consent_rules.decision import BadRequestError, DecisionRequest, ParsedRequest, Requester, parse_request
from consent_rules.state import replay
from consent_wire.codes import DataClass, LegalBasis, ObjectionAction, ObjectionKind, PurposeOfUse, Relationship
from consent_wire.model import Event, Objection
from edge_agent.errors import AsAtNotReplicatedError
from edge_agent.offline import decide_offline
from edge_agent.replica import ReplicaRecord
from tests.fakes import VALID_NHS, fake_pseudonymise

KEY = fake_pseudonymise(VALID_NHS)
OBJECTED_MS = 5  # the NDOP objection's hlc is (5 << 16): registered at 5 ms
REPLICA_MS = 1_700_000_000_000


def research_query(as_at_ms: int | None = None, now_ms: int = 1_700_000_500_000) -> ParsedRequest:
    requester = Requester("R1A00", "RESEARCHER", True, Relationship.NONE, False)
    at_ms = now_ms if as_at_ms is None else as_at_ms
    request = DecisionRequest(requester, PurposeOfUse.HRESCH, KEY, (DataClass.ALL,), LegalBasis.S251, at_ms)
    return ParsedRequest(request, "", as_at_ms)


def ndop_state() -> bytes:
    event = Event(
        "e" * 32,
        "agent-1",
        "A12345",
        1,
        bytes(32),
        OBJECTED_MS << 16,
        5,
        KEY,
        Objection(ObjectionKind.NDOP, ObjectionAction.REGISTER),
    )
    return replay(KEY, [event]).to_bytes()


def replica_record() -> ReplicaRecord:
    return ReplicaRecord(KEY, ndop_state(), REPLICA_MS, None, None)


def test_offline_answer_uses_replicated_objection_and_says_as_at() -> None:
    answer = decide_offline(research_query(), replica_record(), now_ms=1_700_000_500_000)

    assert answer.decision.outcome == "DENY"
    assert "NDOP_ACTIVE" in answer.decision.codes
    assert answer.offline is True
    assert answer.as_at_ms == REPLICA_MS
    assert answer.decision.state_version == 1
    assert answer.to_json()["offline"] is True
    assert answer.to_json()["audit_index"] is None


def test_without_replicated_state_the_answer_has_no_as_at() -> None:
    answer = decide_offline(research_query(now_ms=1), None, now_ms=1)

    assert answer.decision.outcome == "PERMIT_WITH_OBLIGATIONS"
    assert (answer.offline, answer.as_at_ms, answer.decision.state_version) == (True, None, 0)


def test_as_at_after_the_replica_state_is_answered_as_at_the_replica() -> None:
    answer = decide_offline(research_query(as_at_ms=REPLICA_MS + 10), replica_record(), now_ms=REPLICA_MS + 20)

    assert answer.decision.outcome == "DENY"
    assert answer.as_at_ms == REPLICA_MS


def test_as_at_before_the_replica_but_after_its_last_change_is_answered_as_at_then() -> None:
    answer = decide_offline(research_query(as_at_ms=OBJECTED_MS), replica_record(), now_ms=REPLICA_MS + 20)

    assert answer.decision.outcome == "DENY"
    assert answer.as_at_ms == OBJECTED_MS


def test_as_at_before_the_last_replicated_change_is_refused_with_a_reason() -> None:
    with pytest.raises(AsAtNotReplicatedError, match="ask the core's API") as info:
        decide_offline(research_query(as_at_ms=OBJECTED_MS - 1), replica_record(), now_ms=REPLICA_MS + 20)

    assert info.value.reason == "AS_AT_NOT_REPLICATED"


def test_the_agent_accepts_the_core_request_with_accessor_id_and_as_at() -> None:
    doc = {
        "nhs_number": VALID_NHS,
        "purpose": "TREAT",
        "data_classes": ["ALL"],
        "as_at": "1970-01-01T00:00:00.010Z",
        "requester": {
            "organisation": "A12345",
            "role": "GP",
            "registered": True,
            "relationship": "LEGITIMATE",
            "care_team": True,
            "accessor_id": "staff-42",
        },
    }
    parsed = parse_request(doc, fake_pseudonymise, now_ms=REPLICA_MS)

    assert (parsed.accessor_id, parsed.as_at_ms, parsed.request.at_ms) == ("staff-42", 10, 10)
    assert decide_offline(parsed, replica_record(), now_ms=REPLICA_MS).as_at_ms == 10


def test_query_needs_a_requester() -> None:
    with pytest.raises(BadRequestError, match="field requester must be an object"):
        parse_request({"nhs_number": VALID_NHS, "purpose": "TREAT", "data_classes": ["ALL"]}, fake_pseudonymise, 1)


def test_offline_decisions_apply_the_deployments_policy_file_like_the_core(tmp_path: Path) -> None:
    """[decision] policy_file: the agent reads the core's document, so a GP's break-glass the deployment does
    not entitle is refused offline too (rule 9), and a bad file is a ConfigError naming the setting."""
    from consent_rules.decision import Outcome
    from edge_agent.config import load_decision_policy
    from edge_agent.errors import ConfigError

    policy_file = tmp_path / "decision-policy.toml"
    policy_file.write_text('break_glass_roles = ["ED_DOCTOR"]\n')
    policy = load_decision_policy(policy_file)
    gp = Requester("RX1", "GP", True, Relationship.NONE, False)
    request = DecisionRequest(gp, PurposeOfUse.TREAT, KEY, (DataClass.GENERAL,), LegalBasis.BREAK_GLASS, REPLICA_MS)
    parsed = ParsedRequest(request, "", None)
    assert decide_offline(parsed, None, REPLICA_MS).decision.outcome is Outcome.PERMIT_WITH_OBLIGATIONS
    refused = decide_offline(parsed, None, REPLICA_MS, policy).decision
    assert (refused.outcome, refused.codes) == (Outcome.DENY, ("BREAK_GLASS_NOT_ENTITLED",))
    policy_file.write_text("break_glass_role = []\n")
    with pytest.raises(ConfigError, match="decision_policy_file"):
        load_decision_policy(policy_file)


def test_offline_decisions_see_a_death_the_replicated_state_records() -> None:
    """Issue 14: the site's replica is the core's state record (format 6), so its deceased register
    reaches the agent's offline decisions: HDECD by the personal representative needs no word of death
    on the request, and the NDOP objection still applies to research after death."""
    from dataclasses import replace

    from consent_rules.decision import AccessRight
    from consent_rules.hierarchy import RequestOnlyPurpose

    objection = Event(  # the practice's NDOP objection, stated with the death (subject_deceased_ms=5)
        "d" * 32, "agent-1", "A12345", 1, bytes(32), OBJECTED_MS << 16, 5, KEY,
        Objection(ObjectionKind.NDOP, ObjectionAction.REGISTER), 5,
    )  # fmt: skip
    record = ReplicaRecord(KEY, replay(KEY, [objection]).to_bytes(), REPLICA_MS, None, None)
    parsed = research_query()
    representative = Requester("PATIENT", "EXECUTOR", False, Relationship.NONE, False)
    hdecd = replace(
        parsed.request,
        requester=representative,
        purpose=PurposeOfUse.HOPERAT,
        purpose_detail=RequestOnlyPurpose.HDECD,
        access_right=AccessRight.PERSONAL_REPRESENTATIVE,
        legal_basis=None,
    )
    research = decide_offline(parsed, record, now_ms=1_700_000_500_000)
    by_representative = decide_offline(ParsedRequest(hdecd, "", None), record, now_ms=1_700_000_500_000)
    assert research.decision.codes[:2] == ("DECEASED_CONFIDENTIALITY_CONTINUES", "NDOP_ACTIVE")
    assert by_representative.decision.codes == ("DECEASED_CONFIDENTIALITY_CONTINUES", "PROXY_ACCESS")
