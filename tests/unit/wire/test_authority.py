"""A key's authority (site and capabilities) from its operator-signed registration (issue 12 item 5)."""

from __future__ import annotations

import io
import json

import avro.io
import avro.schema
import pytest

from consent_wire import (
    AgentSigner,
    Authority,
    Capability,
    InvalidKeyEventError,
    KeyAction,
    KeyEvent,
    KeyRegistry,
    OperatorRoot,
    decode,
    default_store,
    grantable,
    key_id,
    refusal,
)
from consent_wire._records import key_event_to_record
from consent_wire.avro_codec import HEADER_BYTES, encode
from consent_wire.codes import (
    BreachSeverity,
    HiddenField,
    ObjectionAction,
    ObjectionKind,
    PurposeOfUse,
    Relationship,
    ShieldingAction,
)
from consent_wire.dsse import KEY_PAYLOAD_TYPE, seal_envelope
from consent_wire.model import AccessRecord, BreachReport, Event, Objection, ShieldingFlag
from tests.factories import consent

ROOT = OperatorRoot.from_private_bytes(bytes(range(32)))
AGENT = AgentSigner.from_private_bytes("agent-1", bytes(range(1, 33)))


def _event(payload: object, site: str = "A81001") -> Event:
    return Event("0" * 32, "agent-1", site, 1, bytes(32), 1 << 16, 1, "ab" * 16, payload)  # type: ignore[arg-type]


def _access(organisation: str) -> AccessRecord:
    return AccessRecord("staff-1", organisation, "GP", True, Relationship.LEGITIMATE, PurposeOfUse.TREAT, ())


def _breach(organisation: str) -> BreachReport:
    return BreachReport(organisation, BreachSeverity.LEVEL_1, "LOST", "", "", False, 1)


GP = Authority("A81001", frozenset(grantable("A81001")))


def test_registration_carries_site_and_capabilities_into_the_registry() -> None:
    registry = KeyRegistry(ROOT.public_key)
    caps = (Capability.CONSENT, Capability.SHIELDING_SET)
    registry.apply(ROOT.register("agent-1", AGENT.public_key_bytes, 0, site="RXX01", capabilities=caps))
    assert registry.authority("agent-1", key_id(AGENT.public_key_bytes)) == Authority("RXX01", frozenset(caps))


def test_a_rotation_names_the_new_keys_authority_afresh() -> None:
    registry = KeyRegistry(ROOT.public_key)
    registry.apply(ROOT.register("agent-1", AGENT.public_key_bytes, 0, site="A81001", capabilities=()))
    new = AgentSigner.generate("agent-1")
    registry.apply(ROOT.rotate(AGENT, new.public_key_bytes, 10, site="A81001", capabilities=grantable("A81001")))
    assert registry.authority("agent-1", key_id(new.public_key_bytes)) == GP
    assert registry.authority("agent-1", key_id(AGENT.public_key_bytes)) == Authority("A81001", frozenset())


def test_type1_objection_capability_only_for_a_gp_practice() -> None:
    with pytest.raises(InvalidKeyEventError, match="only for a GP practice"):
        ROOT.register("agent-1", AGENT.public_key_bytes, 0, site="RXX01", capabilities=(Capability.TYPE1_OBJECTION,))
    forged = ROOT.sign_key_event(
        KeyEvent(
            KeyAction.REGISTER, "agent-1", "", AGENT.public_key_bytes, 0, b"", "RXX", (Capability.TYPE1_OBJECTION,)
        )
    )
    with pytest.raises(InvalidKeyEventError, match="only for a GP practice"):
        KeyRegistry(ROOT.public_key).apply(forged)
    assert Capability.TYPE1_OBJECTION not in grantable("VM1001")
    assert Capability.TYPE1_OBJECTION in grantable("A81001")


def test_capabilities_without_a_valid_ods_site_are_refused() -> None:
    with pytest.raises(InvalidKeyEventError, match="not an ODS code"):
        ROOT.register("agent-1", AGENT.public_key_bytes, 0, site="", capabilities=(Capability.CONSENT,))
    with pytest.raises(InvalidKeyEventError, match="not an ODS code"):
        ROOT.register("agent-1", AGENT.public_key_bytes, 0, site="a81001; drop", capabilities=(Capability.CONSENT,))


def test_a_v1_registration_is_still_read_and_grants_nothing() -> None:
    record = {
        "action": "REGISTER",
        "agent_id": "agent-1",
        "key_id": key_id(AGENT.public_key_bytes),
        "public_key": AGENT.public_key_bytes,
        "effective_ms": 0,
        "endorsement": b"",
    }
    signed = seal_envelope(ROOT.signer, KEY_PAYLOAD_TYPE, encode("KeyEvent", record, version=1))
    registry = KeyRegistry(ROOT.public_key)
    registry.apply(signed)
    authority = registry.authority("agent-1", key_id(AGENT.public_key_bytes))
    assert authority == Authority()
    problem = refusal(_event(consent()), authority)
    assert problem is not None and problem[0] == "CAPABILITY_DENIED"


def test_apache_avro_reads_a_v2_key_event() -> None:
    event = KeyEvent(
        KeyAction.REGISTER, "agent-1", "k", AGENT.public_key_bytes, 5, b"", "A81001", (Capability.CONSENT,)
    )
    data = encode("KeyEvent", key_event_to_record(event))
    schema = avro.schema.parse(json.dumps(default_store().current("KeyEvent").raw))
    decoded = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(data[HEADER_BYTES:])))
    assert decoded["site"] == "A81001" and decoded["capabilities"] == ["CONSENT"]
    assert decode("KeyEvent", data)["capabilities"] == ["CONSENT"]


@pytest.mark.parametrize(
    ("payload", "site", "reason"),
    [
        (consent(), "B82001", "SITE_MISMATCH"),
        (_access("B82001"), "A81001", "SITE_MISMATCH"),
        (_breach("B82001"), "A81001", "SITE_MISMATCH"),
    ],
)
def test_an_event_for_another_site_or_organisation_is_a_site_mismatch(payload: object, site: str, reason: str) -> None:
    problem = refusal(_event(payload, site), GP)
    assert problem is not None and problem[0] == reason


@pytest.mark.parametrize(
    ("payload", "needed"),
    [
        (consent(), Capability.CONSENT),
        (Objection(ObjectionKind.NDOP, ObjectionAction.REGISTER, ()), Capability.OBJECTION),
        (Objection(ObjectionKind.TYPE1, ObjectionAction.REGISTER, ()), Capability.TYPE1_OBJECTION),
        (_access("A81001"), Capability.ACCESS_RECORD),
        (ShieldingFlag(ShieldingAction.SET, (HiddenField.LOCATION,), "X"), Capability.SHIELDING_SET),
        (ShieldingFlag(ShieldingAction.CLEAR, (HiddenField.LOCATION,), "X"), Capability.SHIELDING_CLEAR),
        (_breach("A81001"), Capability.BREACH_REPORT),
    ],
)
def test_each_payload_needs_exactly_its_capability(payload: object, needed: Capability) -> None:
    assert refusal(_event(payload), GP) is None
    without = Authority("A81001", GP.capabilities - {needed})
    problem = refusal(_event(payload), without)
    assert problem is not None and problem[0] == "CAPABILITY_DENIED" and needed.value in problem[1]


def test_a_key_event_recorded_as_an_event_is_never_an_agents() -> None:
    payload = KeyEvent(KeyAction.REGISTER, "agent-2", "k", bytes(32), 0)
    problem = refusal(_event(payload), GP)
    assert problem is not None and problem[0] == "CAPABILITY_DENIED"


@pytest.mark.parametrize("deceased_ms", [1_700_000_000_000, 0])
def test_only_a_gp_practice_key_may_state_a_death_or_withdraw_it(deceased_ms: int) -> None:
    """Issue 14: the death (or its withdrawal) on Event v5 comes from the registered practice only."""
    from dataclasses import replace

    hospital = Authority("RXH01", frozenset(grantable("RXH01")))
    assert refusal(replace(_event(consent(), site="RXH01"), subject_deceased_ms=None), hospital) is None
    problem = refusal(replace(_event(consent(), site="RXH01"), subject_deceased_ms=deceased_ms), hospital)
    assert problem is not None and problem[0] == "DECEASED_STATUS_NOT_GP" and "RXH01" in problem[1]
    assert refusal(replace(_event(consent()), subject_deceased_ms=deceased_ms), GP) is None
