"""Hypothesis strategies for the wire model (one module, as attrs' tests/strategies.py)."""

from __future__ import annotations

import hashlib

from hypothesis import strategies as st

from consent_wire import (
    AccessRecord,
    BreachReport,
    BreachSeverity,
    ConsentDecision,
    ConsentDirective,
    DataClass,
    Event,
    HiddenField,
    KeyAction,
    KeyEvent,
    LegalBasis,
    Objection,
    ObjectionAction,
    ObjectionKind,
    ProxyAuthority,
    ProxyAuthorityKind,
    PurposeOfUse,
    Relationship,
    ShieldingAction,
    ShieldingFlag,
    encode_event,
)

LONG = st.integers(min_value=-(2**63), max_value=2**63 - 1)  # Avro long
NON_NEG_LONG = st.integers(min_value=0, max_value=2**63 - 1)
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)  # UTF-8 encodable
SHORT = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1, max_size=12)

proxies = st.none() | st.builds(ProxyAuthority, authority=st.sampled_from(ProxyAuthorityKind), reference=TEXT)
consent_decisions = st.builds(
    ConsentDecision,
    directive=st.sampled_from(ConsentDirective),
    purpose=st.sampled_from(PurposeOfUse),
    data_class=st.sampled_from(DataClass),
    recipient=st.one_of(st.just("*"), SHORT),
    period_start_ms=st.none() | LONG,
    period_end_ms=st.none() | LONG,
    recorded_by_role=TEXT,
    policy_ref=st.none() | TEXT,
    proxy=proxies,
)
objections = st.builds(
    Objection,
    kind=st.sampled_from(ObjectionKind),
    action=st.sampled_from(ObjectionAction),
    exemptions=st.lists(st.sampled_from(LegalBasis), max_size=3).map(tuple),
    exempt_flows=st.lists(st.text(max_size=12), max_size=2).map(tuple),
    proxy=proxies,
)
access_records = st.builds(
    AccessRecord,
    accessor_id=TEXT,
    organisation=SHORT,
    role=TEXT,
    registered=st.booleans(),
    relationship=st.sampled_from(Relationship),
    purpose=st.sampled_from(PurposeOfUse),
    data_classes=st.lists(st.sampled_from(DataClass), max_size=4).map(tuple),
    legal_basis=st.none() | st.sampled_from(LegalBasis),
    disclosed_to=TEXT,
)
shielding_flags = st.builds(
    ShieldingFlag,
    action=st.sampled_from(ShieldingAction),
    hides=st.lists(st.sampled_from(HiddenField), max_size=3).map(tuple),
    set_by_role=TEXT,
    reason=TEXT,
)
breach_reports = st.builds(
    BreachReport,
    organisation=SHORT,
    severity=st.sampled_from(BreachSeverity),
    category=TEXT,
    explanation=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400),
    remedial_action=TEXT,
    apology_given=st.booleans(),
    individuals_affected=NON_NEG_LONG,
)
key_events = st.builds(
    KeyEvent,
    action=st.sampled_from(KeyAction),
    agent_id=SHORT,
    key_id=st.text(alphabet="0123456789abcdef", min_size=16, max_size=16),
    public_key=st.binary(min_size=32, max_size=32),
    effective_ms=LONG,
    endorsement=st.binary(max_size=64),
)
payloads = st.one_of(consent_decisions, objections, access_records, shielding_flags, breach_reports, key_events)

events = st.builds(
    Event,
    event_id=st.text(alphabet="0123456789abcdef", min_size=32, max_size=32),
    agent_id=SHORT,
    site=SHORT,
    seq=st.integers(min_value=1, max_value=2**63 - 1),
    prev_hash=st.binary(min_size=32, max_size=32),
    hlc=NON_NEG_LONG,
    recorded_ms=NON_NEG_LONG,
    patient_key=st.text(alphabet="0123456789abcdef", max_size=32),
    payload=payloads,
    subject_deceased_ms=st.none() | NON_NEG_LONG,
)


def chain_of(agent_id: str, payload_list: list[object], *, start_seq: int = 1, start_ms: int = 1_000) -> list[bytes]:
    """Encoded events forming a valid chain for ``agent_id`` (seq from start_seq, prev_hash linked)."""
    out: list[bytes] = []
    prev = bytes(32)
    for i, payload in enumerate(payload_list):
        event = Event(
            event_id=f"{i:032x}",
            agent_id=agent_id,
            site="A81001",
            seq=start_seq + i,
            prev_hash=prev,
            hlc=(start_ms + i) << 16,
            recorded_ms=start_ms + i,
            patient_key="ab" * 16,
            payload=payload,  # type: ignore[arg-type]
        )
        data = encode_event(event)
        prev = hashlib.sha256(data).digest()
        out.append(data)
    return out


def sample_decision(i: int = 0) -> ConsentDecision:
    return ConsentDecision(ConsentDirective.OPTIN, PurposeOfUse.TREAT, DataClass.ALL, "*", recorded_by_role=f"GP{i}")
