"""Hypothesis strategies and a small event builder for the per-patient state tests."""

from __future__ import annotations

import dataclasses
import uuid

from hypothesis import strategies as st

from consent_wire.codes import (
    ConsentDirective,
    DataClass,
    HiddenField,
    LegalBasis,
    ObjectionAction,
    ObjectionKind,
    ProxyAuthorityKind,
    PurposeOfUse,
    Relationship,
    ShieldingAction,
)
from consent_wire.model import (
    AccessRecord,
    ConsentDecision,
    Event,
    Objection,
    Payload,
    ProxyAuthority,
    ShieldingFlag,
)

__all__ = [
    "AGENT_SKEW_MS",
    "BASE_MS",
    "PATIENT",
    "event_lists",
    "events",
    "hlc_of",
    "lists_of_one_history",
    "make_event",
    "payloads",
]

PATIENT = "5f1c0ffee0ddba11"  # an arbitrary pseudonymous key (hex), not derived from anyone
BASE_MS = 1_700_000_000_000  # 2023-11-14T22:13:20Z, an arbitrary recent epoch
HOUR_MS = 3_600_000
# Agents whose clocks are skewed by hours, as an offline site's laptop might be.
AGENT_SKEW_MS = {"agent-a": 0, "agent-b": 3 * HOUR_MS, "agent-c": -5 * HOUR_MS}

PURPOSES = [PurposeOfUse.TREAT, PurposeOfUse.HRESCH, PurposeOfUse.ANY]
DATA_CLASSES = [DataClass.ALL, DataClass.GENERAL, DataClass.HIV]
RECIPIENTS = ["*", "RX1", "Y02"]
SITES = ["A81001", "B82002"]
ROLES = ["GP", "CALDICOTT_GUARDIAN", "SAFEGUARDING_LEAD", "NURSE", "RECEPTIONIST"]


def hlc_of(physical_ms: int, logical: int = 0) -> int:
    """Pack a hybrid logical clock as the wire does: ``(physical_ms << 16) | logical``."""
    return (physical_ms << 16) | logical


def make_event(
    payload: Payload,
    *,
    hlc: int,
    agent_id: str = "agent-a",
    event_id: str | None = None,
    patient_key: str = PATIENT,
    site: str = "A81001",
    subject_deceased_ms: int | None = None,
) -> Event:
    return Event(
        event_id=event_id or uuid.uuid4().hex,
        agent_id=agent_id,
        site=site,
        seq=1,
        prev_hash=bytes(32),
        hlc=hlc,
        recorded_ms=hlc >> 16,
        patient_key=patient_key,
        payload=payload,
        subject_deceased_ms=subject_deceased_ms,
    )


@st.composite
def _periods(draw: st.DrawFn) -> tuple[int | None, int | None]:
    start = draw(st.none() | st.integers(BASE_MS - HOUR_MS, BASE_MS + HOUR_MS))
    if draw(st.booleans()):
        return start, None
    low = (start if start is not None else BASE_MS - 2 * HOUR_MS) + 1
    return start, draw(st.integers(low, low + 2 * HOUR_MS))


# who recorded it (issue 14): the person, a parent, an attorney with its reference, or a proxy without
# authority over health (rejected by the reconciler, so it must never change the state)
PROXIES = st.sampled_from(
    [
        None,
        None,
        ProxyAuthority(ProxyAuthorityKind.PARENTAL_RESPONSIBILITY),
        ProxyAuthority(ProxyAuthorityKind.LPA_HEALTH_WELFARE, "7000-1234-5678"),
        ProxyAuthority(ProxyAuthorityKind.LPA_PROPERTY_FINANCIAL, "7000-8765-4321"),
    ]
)


@st.composite
def _consents(draw: st.DrawFn) -> ConsentDecision:
    start, end = draw(_periods())
    return ConsentDecision(
        directive=draw(st.sampled_from(ConsentDirective)),
        purpose=draw(st.sampled_from(PURPOSES)),
        data_class=draw(st.sampled_from(DATA_CLASSES)),
        recipient=draw(st.sampled_from(RECIPIENTS)),
        period_start_ms=start,
        period_end_ms=end,
        recorded_by_role="GP",
        policy_ref=draw(st.sampled_from([None, "DSA-2025-014"])),
        proxy=draw(PROXIES),
    )


_objections = st.builds(
    Objection,
    kind=st.sampled_from([ObjectionKind.TYPE1, ObjectionKind.NDOP, ObjectionKind.LOCAL_DISSENT]),
    action=st.sampled_from(ObjectionAction),
    exemptions=st.lists(st.sampled_from(LegalBasis), max_size=3).map(tuple),
    exempt_flows=st.lists(st.sampled_from(["21/CAG/0032", "COPI-2020-03"]), max_size=2).map(tuple),
    proxy=PROXIES,
)

_shielding = st.builds(
    ShieldingFlag,
    action=st.sampled_from(ShieldingAction),
    hides=st.lists(st.sampled_from(HiddenField), max_size=3).map(tuple),
    set_by_role=st.sampled_from(ROLES),
    reason=st.sampled_from(["CHILD_PROTECTION", "DOMESTIC_ABUSE"]),
)

_access = st.builds(
    AccessRecord,
    accessor_id=st.just("c0ffee"),
    organisation=st.just("RX1"),
    role=st.just("NURSE"),
    registered=st.booleans(),
    relationship=st.just(Relationship.LEGITIMATE),
    purpose=st.just(PurposeOfUse.TREAT),
    data_classes=st.just((DataClass.GENERAL,)),
)

payloads: st.SearchStrategy[Payload] = st.one_of(_consents(), _consents(), _objections, _shielding, _access)


@st.composite
def events(draw: st.DrawFn, patient_key: str = PATIENT) -> Event:
    """One event; hlc collisions across agents are likely (small time range) to exercise tie-breaks."""
    agent = draw(st.sampled_from(sorted(AGENT_SKEW_MS)))
    physical = BASE_MS + AGENT_SKEW_MS[agent] + draw(st.integers(0, 20))
    return make_event(
        draw(payloads),
        hlc=hlc_of(physical, draw(st.integers(0, 2))),
        agent_id=agent,
        event_id=draw(st.uuids()).hex,
        patient_key=patient_key,
        site=draw(st.sampled_from(SITES)),  # per-organisation objections are keyed by site (issue 14, rule 6)
        # a death stated (> 0), withdrawn (0) or neither (issue 14, the deceased register)
        subject_deceased_ms=draw(st.none() | st.just(0) | st.integers(1, 2**40)),
    )


def event_lists(min_size: int = 0, max_size: int = 25) -> st.SearchStrategy[list[Event]]:
    """Lists of events with unique ids (an id names one fact; redelivery is modelled separately) and, as
    the verifier guarantees, unique ``(agent, seq)``: each agent's events are numbered 1, 2, ... in list
    order. At most 25 by default, so a state built from one list stays within the ledger's window (its
    overflow into per-agent marks is exercised on in-order streams in ``test_state_bounds.py``)."""
    return st.lists(events(), min_size=min_size, max_size=max_size, unique_by=lambda e: e.event_id).map(_numbered)


def _numbered(evs: list[Event]) -> list[Event]:
    seqs: dict[str, int] = {}
    out = []
    for e in evs:
        seqs[e.agent_id] = seqs.get(e.agent_id, 0) + 1
        out.append(dataclasses.replace(e, seq=seqs[e.agent_id]))
    return out


@st.composite
def lists_of_one_history(draw: st.DrawFn, n: int) -> list[list[Event]]:
    """``n`` lists drawn from one pool of facts, so a shared ``(agent, seq)`` is the same event (what the
    verifier guarantees across every state that is ever merged). The pool holds at most the ledger's
    window (32) of events: a merge of any of them is exact without the in-order condition that the
    per-agent marks need (``test_state_bounds.py`` covers those)."""
    pool = draw(event_lists(max_size=32))
    if not pool:
        return [[] for _ in range(n)]
    return [draw(st.lists(st.sampled_from(pool), max_size=25, unique_by=lambda e: e.event_id)) for _ in range(n)]
