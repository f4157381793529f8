from __future__ import annotations

import pytest

from broker.state import replay
from consent_wire.codes import DataClass, LegalBasis, ObjectionAction, ObjectionKind, PurposeOfUse, Relationship
from consent_wire.model import Event, Objection
from edge_agent.errors import MissingFieldError
from edge_agent.offline import OfflineQuery, decide_offline, parse_query
from edge_agent.replica import ReplicaRecord
from tests.fakes import VALID_NHS, fake_pseudonymise

KEY = fake_pseudonymise(VALID_NHS)


def research_query() -> OfflineQuery:
    return OfflineQuery(
        KEY,
        PurposeOfUse.HRESCH,
        (DataClass.ALL,),
        LegalBasis.S251,
        "R1A00",
        "RESEARCHER",
        True,
        Relationship.NONE,
        False,
    )


def ndop_state() -> bytes:
    event = Event(
        "e" * 32,
        "agent-1",
        "A12345",
        1,
        bytes(32),
        5 << 16,
        5,
        KEY,
        Objection(ObjectionKind.NDOP, ObjectionAction.REGISTER),
    )
    return replay(KEY, [event]).to_bytes()


def test_offline_answer_uses_replicated_objection_and_says_as_at() -> None:
    record = ReplicaRecord(KEY, ndop_state(), 1_700_000_000_000, None, None)
    answer = decide_offline(research_query(), record, now_ms=1_700_000_500_000)

    assert answer.outcome == "DENY"
    assert "NDOP_ACTIVE" in answer.codes
    assert answer.offline is True
    assert answer.as_at_ms == 1_700_000_000_000
    assert answer.state_version == 1


def test_without_replicated_state_the_answer_has_no_as_at() -> None:
    answer = decide_offline(research_query(), None, now_ms=1)

    assert answer.outcome == "PERMIT_WITH_OBLIGATIONS"
    assert (answer.offline, answer.as_at_ms, answer.state_version) == (True, None, 0)


def test_query_needs_a_requester() -> None:
    with pytest.raises(MissingFieldError, match="requester is required"):
        parse_query({"nhs_number": VALID_NHS, "purpose": "TREAT", "data_classes": ["ALL"]}, fake_pseudonymise)
