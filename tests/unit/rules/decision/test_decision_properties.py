"""Invariants of decide() over random states and requests, plus its typed input errors."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent_rules.decision import (
    DEFAULT_BREAK_GLASS_ROLES,
    DIRECT_CARE_PURPOSES,
    NDOP_PURPOSES,
    SECONDARY_PURPOSES,
    DataHolder,
    DecisionRequest,
    DecisionRequestError,
    Gateway,
    HolderKind,
    Identifiability,
    Obligation,
    Outcome,
    OverrideEvidence,
    Requester,
    Subject,
    decide,
)
from consent_rules.decision.purposes import is_local_clinical_audit
from consent_rules.hierarchy import REQUEST_ONLY_PARENT, RequestOnlyPurpose, ancestors, descendants
from consent_rules.state import NATIONAL, PatientState, apply, empty_state, merge, replay
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
from consent_wire.model import ConsentDecision, Event, Objection, Payload, ProxyAuthority, ShieldingFlag

from .factories import NOW_MS, PATIENT, event, request, requester

ORGS = ["RX1", "A81001", "RESLAB1"]

# issue 14, proxies: recorded by the person, a parent, an attorney, or a proxy without authority over
# health (rejected by the reconciler)
PROXIES = st.none() | st.sampled_from(
    [
        ProxyAuthority(ProxyAuthorityKind.PARENTAL_RESPONSIBILITY),
        ProxyAuthority(ProxyAuthorityKind.LPA_HEALTH_WELFARE, "7000-1234-5678"),
        ProxyAuthority(ProxyAuthorityKind.LPA_PROPERTY_FINANCIAL, "7000-8765-4321"),
    ]
)
payloads: st.SearchStrategy[Payload] = st.one_of(
    st.builds(
        ConsentDecision,
        st.sampled_from(ConsentDirective),
        st.sampled_from(PurposeOfUse),
        st.sampled_from(DataClass),
        st.sampled_from([*ORGS, "*"]),
        proxy=PROXIES,
    ),
    st.builds(
        Objection,
        st.sampled_from(ObjectionKind),
        st.sampled_from(ObjectionAction),
        st.lists(st.sampled_from(LegalBasis), max_size=2).map(tuple),
        st.lists(st.just("21/CAG/0032"), max_size=1).map(tuple),  # rule 5: exemptions per flow
        proxy=PROXIES,
    ),
    st.builds(
        ShieldingFlag,
        st.sampled_from(ShieldingAction),
        st.lists(st.sampled_from(HiddenField), min_size=1, max_size=3).map(tuple),
        st.sampled_from(["GP", "RECEPTIONIST"]),  # rule 10: an unauthorised SET is quarantined
    ),
)


@st.composite
def states(draw: st.DrawFn) -> PatientState:
    ps = draw(st.lists(payloads, max_size=6))
    sites = draw(st.lists(st.sampled_from(ORGS), min_size=len(ps), max_size=len(ps)))
    evs: list[Event] = [
        event(p, at_ms=NOW_MS - (i + 1) * 1000, site=s) for i, (p, s) in enumerate(zip(ps, sites, strict=True))
    ]
    return replay(PATIENT, evs)


_requests = st.builds(
    DecisionRequest,
    st.builds(
        Requester,
        st.sampled_from(ORGS),
        st.sampled_from(["GP", "CARE_WORKER", "RESEARCHER"]),
        st.booleans(),
        st.sampled_from(Relationship),
        st.booleans(),
    ),
    st.sampled_from([p for p in PurposeOfUse if p is not PurposeOfUse.ANY]),
    st.just(PATIENT),
    st.lists(st.sampled_from(DataClass), min_size=1, max_size=3).map(tuple),
    st.none() | st.sampled_from(LegalBasis),
    st.just(NOW_MS),
    st.none() | st.builds(DataHolder, st.sampled_from(ORGS), st.sampled_from(HolderKind)),
    st.none()
    | st.builds(
        OverrideEvidence,
        st.sampled_from(["", "Court order"]),
        st.sampled_from(["", "harm"]),
        st.sampled_from(["", "Caldicott Guardian"]),
    ),
    st.none() | st.sampled_from(Gateway),  # rule 5
    st.sampled_from(["", "21/CAG/0032"]),
    st.just(""),
    st.sampled_from(Identifiability),
    subject=st.builds(Subject, st.none() | st.integers(0, 20), st.none() | st.booleans(), st.booleans()),
)


def _with_detail(req: DecisionRequest, detail: RequestOnlyPurpose | None) -> DecisionRequest:
    """The request for a request-only ActReason code (issue 14, vocabulary), decided as its parent."""
    return req if detail is None else replace(req, purpose=REQUEST_ONLY_PARENT[detail], purpose_detail=detail)


requests = st.builds(_with_detail, _requests, st.none() | st.none() | st.sampled_from(RequestOnlyPurpose))


@settings(max_examples=300, deadline=None)
@given(requests, states())
def test_decision_is_well_formed(req: DecisionRequest, state: PatientState) -> None:
    d = decide(req, state)
    assert d == decide(req, state)  # deterministic
    assert len(d.codes) == len(d.reasons) > 0
    assert d.state_version == state.version
    assert set(req.data_classes) <= set(d.permitted) | set(d.withheld)
    assert not set(d.permitted) & set(d.withheld)
    if d.outcome is Outcome.DENY:
        assert (d.permitted, d.obligations, d.legal_basis) == ((), (), None)
    else:
        assert d.permitted and d.legal_basis is not None
        assert (d.outcome is Outcome.PERMIT_WITH_OBLIGATIONS) == bool(d.obligations)


@settings(max_examples=300, deadline=None)
@given(requests, states())
def test_shielded_fields_are_never_released(req: DecisionRequest, state: PatientState) -> None:
    d = decide(req, state)
    sh = state.shielding
    if d.outcome is Outcome.DENY or sh is None or not sh.active:
        return
    if HiddenField.LOCATION in sh.hides:
        assert Obligation.REDACT_LOCATION in d.obligations
        assert DataClass.PATLOC not in d.permitted
    if HiddenField.CONTACT in sh.hides:
        assert Obligation.REDACT_CONTACT in d.obligations
        assert DataClass.CONTACT not in d.permitted


@settings(max_examples=300, deadline=None)
@given(requests, states())
def test_a_pending_quarantined_shielding_request_is_never_released_either(
    req: DecisionRequest, state: PatientState
) -> None:
    """Issue 14, rule 10: a protective request never fails open (until an authorised answer)."""
    d = decide(req, state)
    q = state.pending_quarantine
    if d.outcome is Outcome.DENY or q is None:
        return
    assert "SHIELDING_QUARANTINED" in d.codes
    if HiddenField.LOCATION in q.hides:
        assert Obligation.REDACT_LOCATION in d.obligations
        assert DataClass.PATLOC not in d.permitted


@settings(max_examples=300, deadline=None)
@given(requests, states())
def test_secondary_permits_carry_minimum_data_set(req: DecisionRequest, state: PatientState) -> None:
    d = decide(req, state)
    if req.purpose in SECONDARY_PURPOSES and not is_local_clinical_audit(req) and d.outcome is not Outcome.DENY:
        assert Obligation.MINIMUM_DATA_SET in d.obligations
        assert d.legal_basis in (
            LegalBasis.CONSENT,
            LegalBasis.S251,
            LegalBasis.STATUTORY_MANDATE,
            LegalBasis.SAFEGUARDING,
            LegalBasis.BREAK_GLASS,
        )


@settings(max_examples=300, deadline=None)
@given(requests, states())
def test_active_ndop_blocks_s251_research_and_planning(req: DecisionRequest, state: PatientState) -> None:
    ndop = state.objections.get((ObjectionKind.NDOP, NATIONAL))
    if ndop is None or not ndop.active or req.purpose not in NDOP_PURPOSES:
        return
    if req.legal_basis is not LegalBasis.S251:
        return
    if LegalBasis.S251 in ndop.exemptions and req.flow_ref and req.flow_ref in ndop.exempt_flows:
        return  # exempt for this very flow (rule 5)
    if (req.gateway is Gateway.COPI_REG3 and req.flow_ref) or req.identifiability is Identifiability.ANONYMISED:
        return  # outside the opt-out: NDOP 6.2 (rule 5), anonymised data
    d = decide(req, state)
    assert d.legal_basis is not LegalBasis.S251


@settings(max_examples=200, deadline=None)
@given(requests)
def test_direct_care_without_relationship_is_denied_unless_break_glass(req: DecisionRequest) -> None:
    who = req.requester
    if req.purpose not in DIRECT_CARE_PURPOSES or who.relationship is not Relationship.NONE or who.care_team:
        return
    d = decide(req, empty_state(PATIENT))
    if req.legal_basis is LegalBasis.BREAK_GLASS and who.role in DEFAULT_BREAK_GLASS_ROLES:
        assert Obligation.ALERT_PRIVACY_OFFICER in d.obligations
    elif req.legal_basis is LegalBasis.BREAK_GLASS:
        # rule 9; only notes come first: a gateway named on a direct-care request (GATEWAY_NOT_RELIED_ON, rule 5)
        # and a deceased subject (DECEASED_CONFIDENTIALITY_CONTINUES, issue 14)
        assert (d.outcome, d.codes[-1]) == (Outcome.DENY, "BREAK_GLASS_NOT_ENTITLED")
        notes = {"GATEWAY_NOT_RELIED_ON"} | ({"DECEASED_CONFIDENTIALITY_CONTINUES"} if req.subject.deceased else set())
        assert set(d.codes[:-1]) <= notes
    elif req.legal_basis is LegalBasis.SAFEGUARDING and req.evidence and req.evidence.supports(req.legal_basis):
        assert "SAFEGUARDING_OVERRIDES_RELATIONSHIP" in d.codes  # rule 4
        if d.outcome is Outcome.DENY:
            # the override lifts the relationship limit only: unregistered staff outside the care team stay
            # refused (rec 3), so nothing is shared and there is nothing to alert
            assert not who.registered and d.codes[-1] == "UNREGISTERED_NOT_IN_CARE_TEAM"
        else:
            assert Obligation.ALERT_PRIVACY_OFFICER in d.obligations
    else:
        assert d.outcome is Outcome.DENY
        assert d.codes[-1] == "NO_LEGITIMATE_RELATIONSHIP"


def _claims_an_override(req: DecisionRequest) -> bool:
    """Break-glass (rule 9) and an evidenced statutory mandate (rec 11, rule 4) set a refusal aside by design."""
    return (
        req.purpose is PurposeOfUse.BTG
        or req.legal_basis in (LegalBasis.BREAK_GLASS, LegalBasis.STATUTORY_MANDATE)
        or req.requester.relationship is Relationship.BREAK_GLASS
    )


@settings(max_examples=300, deadline=None)
@given(requests, states(), st.sampled_from(PurposeOfUse), st.data())
def test_a_refusal_for_a_purpose_covers_every_descendant_code(
    req: DecisionRequest, state: PatientState, refused: PurposeOfUse, data: st.DataObject
) -> None:
    """Issue 14, rule 3 (HL7 v3 ActReason): a refusal for a purpose covers every kind of it; being later than
    everything else in the state, it also wins over anything earlier (rule 2)."""
    kinds: list[tuple[PurposeOfUse, RequestOnlyPurpose | None]] = [
        (p, None) for p in sorted(descendants(refused) - {PurposeOfUse.ANY})
    ]
    # the request-only codes (HLEGAL, HDECD, THREAT) are kinds of their parent too (issue 14, vocabulary)
    kinds += [(parent, code) for code, parent in REQUEST_ONLY_PARENT.items() if parent in descendants(refused)]
    purpose, detail = data.draw(st.sampled_from(kinds))
    req = replace(req, purpose=purpose, purpose_detail=detail)
    if _claims_an_override(req):
        return
    refusal = event(ConsentDecision(ConsentDirective.OPTOUT, refused, DataClass.ALL, "*"), at_ms=NOW_MS)
    d = decide(req, apply(state, refusal))
    assert d.outcome is Outcome.DENY
    assert d.permitted == ()


def test_state_of_another_patient_is_rejected() -> None:
    with pytest.raises(DecisionRequestError) as exc:
        decide(request(requester(), PurposeOfUse.TREAT), empty_state("ffff"))
    assert exc.value.reason == "BAD_DECISION_REQUEST"


def test_request_without_data_classes_is_rejected() -> None:
    with pytest.raises(DecisionRequestError, match="no data classes"):
        decide(request(requester(), PurposeOfUse.TREAT, ()), empty_state(PATIENT))


def test_purpose_any_is_rejected() -> None:
    with pytest.raises(DecisionRequestError, match="purpose ANY"):
        decide(request(requester(), PurposeOfUse.ANY), empty_state(PATIENT))


@settings(max_examples=200, deadline=None)
@given(requests, states())
def test_break_glass_is_permitted_only_to_entitled_roles(req: DecisionRequest, state: PatientState) -> None:
    """Issue 14, rule 9: whatever the state, a break-glass request from a role outside the list is denied."""
    d = decide(replace(req, purpose=PurposeOfUse.BTG, purpose_detail=None), state)
    if req.requester.role in DEFAULT_BREAK_GLASS_ROLES:
        assert "BREAK_GLASS" in d.codes  # permitted, unless shielding withholds every class asked for
    else:
        assert d.outcome is Outcome.DENY
        assert d.codes[-1] == "BREAK_GLASS_NOT_ENTITLED"


@settings(max_examples=200, deadline=None)
@given(requests, st.lists(payloads, max_size=6), st.randoms(use_true_random=False))
def test_order_of_arrival_never_changes_an_answer(req: DecisionRequest, ps: list[Payload], rnd: random.Random) -> None:
    """Issue 14 acceptance: the decision is a function of the events, not of the order they arrived in."""
    evs = [event(p, at_ms=NOW_MS - (i + 1) * 1000, site=ORGS[i % len(ORGS)]) for i, p in enumerate(ps)]
    shuffled = list(evs)
    rnd.shuffle(shuffled)
    half = len(evs) // 2
    merged = merge(replay(PATIENT, shuffled[:half]), replay(PATIENT, shuffled[half:]))
    expected = decide(req, replay(PATIENT, evs))
    assert decide(req, replay(PATIENT, shuffled)) == expected
    assert decide(req, merged) == expected


@settings(max_examples=300, deadline=None)
@given(requests, states(), st.data())
def test_a_later_withdrawal_always_wins_over_anything_earlier_it_covers(
    req: DecisionRequest, state: PatientState, data: st.DataObject
) -> None:
    """Issue 14, rule 2: withdrawal takes effect when made, for everything it covers - whatever purpose, class
    and recipient specificity the earlier registers had (short of break-glass or a statutory mandate)."""
    if _claims_an_override(req):
        return
    c = data.draw(st.sampled_from(req.data_classes))
    purpose = data.draw(st.sampled_from(ancestors(req.purpose)))
    data_class = data.draw(st.sampled_from([c, DataClass.ALL]))
    recipient = data.draw(st.sampled_from([req.requester.organisation, "*"]))
    # the most specific permission there can be, just before the withdrawal
    narrowest = ConsentDecision(ConsentDirective.OPTIN, req.purpose, c, req.requester.organisation)
    if data.draw(st.booleans()):
        state = apply(state, event(narrowest, at_ms=NOW_MS - 1))
    withdrawal = event(ConsentDecision(ConsentDirective.OPTOUT, purpose, data_class, recipient), at_ms=NOW_MS)
    d = decide(req, apply(state, withdrawal))
    assert c not in d.permitted
    if data_class is DataClass.ALL:
        assert d.outcome is Outcome.DENY
