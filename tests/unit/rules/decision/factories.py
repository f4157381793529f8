"""Builders for decision tests: events on a timeline, requesters and requests."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from consent_rules.decision import DecisionRequest, OverrideEvidence, Requester
from consent_rules.state import PatientState, replay
from consent_wire.codes import (
    ConsentDirective,
    DataClass,
    HiddenField,
    LegalBasis,
    ObjectionAction,
    ObjectionKind,
    PurposeOfUse,
    Relationship,
    ShieldingAction,
)
from consent_wire.model import ConsentDecision, Event, Objection, Payload, ShieldingFlag

PATIENT = "a1b2c3d4e5f60718"  # arbitrary pseudonymous key, not derived from anyone
GP_PRACTICE = "A81001"  # ODS-style code of the patient's practice (the recording site)
HOSPITAL = "RX1"
RESEARCH_UNIT = "RESLAB1"
CARE_HOME = "VNC01"
DAY_MS = 86_400_000
NOW_MS = 1_760_000_000_000  # a fixed "today" (Oct 2025); tests never read the clock

_ids = itertools.count(1)


def hlc_of(ms: int) -> int:
    return ms << 16


def event(payload: Payload, *, at_ms: int, site: str = GP_PRACTICE, patient: str = PATIENT) -> Event:
    n = next(_ids)
    return Event(
        event_id=f"{n:032x}",
        agent_id=f"agent-{site}",
        site=site,
        seq=n,
        prev_hash=bytes(32),
        hlc=hlc_of(at_ms),
        recorded_ms=at_ms,
        patient_key=patient,
        payload=payload,
    )


def consent(
    directive: ConsentDirective,
    purpose: PurposeOfUse,
    data_class: DataClass = DataClass.ALL,
    recipient: str = "*",
    *,
    at_ms: int = NOW_MS - 30 * DAY_MS,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> Event:
    payload = ConsentDecision(directive, purpose, data_class, recipient, start_ms, end_ms, "GP")
    return event(payload, at_ms=at_ms)


def objection(
    kind: ObjectionKind,
    action: ObjectionAction = ObjectionAction.REGISTER,
    *,
    exemptions: tuple[LegalBasis, ...] = (),
    exempt_flows: tuple[str, ...] = (),
    at_ms: int = NOW_MS - 20 * DAY_MS,
    site: str = GP_PRACTICE,
) -> Event:
    return event(Objection(kind, action, exemptions, exempt_flows), at_ms=at_ms, site=site)


def shield(
    hides: tuple[HiddenField, ...] = (HiddenField.LOCATION,),
    *,
    action: ShieldingAction = ShieldingAction.SET,
    at_ms: int = NOW_MS - 10 * DAY_MS,
    role: str = "SAFEGUARDING_LEAD",
) -> Event:
    return event(ShieldingFlag(action, hides, role, "CHILD_PROTECTION"), at_ms=at_ms)


def state_of(events: Iterable[Event]) -> PatientState:
    return replay(PATIENT, events)


def requester(
    organisation: str = HOSPITAL,
    role: str = "CONSULTANT",
    *,
    registered: bool = True,
    relationship: Relationship = Relationship.LEGITIMATE,
    care_team: bool = True,
) -> Requester:
    return Requester(organisation, role, registered, relationship, care_team)


def researcher(organisation: str = RESEARCH_UNIT) -> Requester:
    return Requester(organisation, "RESEARCHER", True, Relationship.NONE, False)


def request(
    who: Requester,
    purpose: PurposeOfUse,
    data_classes: tuple[DataClass, ...] = (DataClass.GENERAL,),
    legal_basis: LegalBasis | None = None,
    at_ms: int = NOW_MS,
    evidence: OverrideEvidence | None = None,
) -> DecisionRequest:
    return DecisionRequest(who, purpose, PATIENT, data_classes, legal_basis, at_ms, evidence=evidence)
