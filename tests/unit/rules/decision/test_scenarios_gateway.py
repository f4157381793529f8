"""Rule 5 (issue 14): the opt-out's scope follows the legal gateway and the data flow.

Sources: NHS Digital, *National data opt-out operational policy guidance*, 5.1 (opt-outs apply to
s251 support under COPI regulations 2 and 5, under CAG's standard condition, unless CAG advised for
a specific data flow that they do not) and 6.2 (they do not apply where COPI regulation 3 lifts the
duty of confidence: communicable disease and other risks to public health); the Government response
to the Caldicott review, rec 11 and 7.12 (the right to object, respected unless there is a legal basis).
Exercised through the public API: the JSON request parser and :func:`decide`.
"""

from __future__ import annotations

from dataclasses import replace

from consent_rules.decision import DecisionPolicy, Gateway, Outcome, decide, parse_request
from consent_rules.decision.request import DecisionRequest
from consent_wire.codes import LegalBasis, ObjectionKind, PurposeOfUse

from .factories import PATIENT, objection, request, researcher, state_of

CAG_REF = "21/CAG/0032"
OTHER_CAG_REF = "19/CAG/0199"
COPI_NOTICE = "COPI notice 2020-03 (reg 3(4))"


def _s251(gateway: Gateway | None = None, flow: str = "") -> DecisionRequest:
    return replace(
        request(researcher(), PurposeOfUse.HRESCH, legal_basis=LegalBasis.S251), gateway=gateway, flow_ref=flow
    )


def test_copi_regulation_3_flow_is_outside_the_national_opt_out() -> None:
    """NDOP policy 6.2: the opt-out does not apply where COPI regulation 3 is the lawful basis."""
    state = state_of([objection(ObjectionKind.NDOP)])
    d = decide(_s251(gateway=Gateway.COPI_REG3, flow=COPI_NOTICE), state)
    assert d.outcome is Outcome.PERMIT_WITH_OBLIGATIONS
    assert d.legal_basis is LegalBasis.S251
    assert d.codes == ("GATEWAY_OUTSIDE_OPT_OUT", "S251_APPROVAL", "MINIMUM_DATA_SET")
    assert COPI_NOTICE in d.reasons[0]


def test_copi_regulation_5_flow_is_blocked_by_the_national_opt_out() -> None:
    """NDOP policy 5.1: opt-outs apply to s251 support under regulation 5 (CAG's standard condition)."""
    state = state_of([objection(ObjectionKind.NDOP)])
    d = decide(_s251(gateway=Gateway.COPI_REG5, flow=CAG_REF), state)
    assert d.outcome is Outcome.DENY
    assert d.codes == ("NDOP_ACTIVE",)


def test_copi_regulation_3_does_not_set_aside_a_type_1_objection() -> None:
    """7.12: a GP objection is respected unless legislation supports mandatory disclosure; reg 3 permits,
    it does not mandate, so a type 1 still stops GP-held data leaving the practice."""
    state = state_of([objection(ObjectionKind.TYPE1)])
    d = decide(_s251(gateway=Gateway.COPI_REG3, flow=COPI_NOTICE), state)
    assert d.outcome is Outcome.DENY
    assert d.codes == ("TYPE1_ACTIVE",)


def test_a_flow_cag_exempted_from_the_opt_out_passes_and_another_flow_does_not() -> None:
    """NDOP policy 5.1: CAG may advise, case by case, that the opt-out does not apply to a specific flow."""
    state = state_of([objection(ObjectionKind.NDOP)])
    policy = DecisionPolicy(ndop_exempt_flows=frozenset({CAG_REF}))
    exempt = decide(_s251(gateway=Gateway.COPI_REG5, flow=CAG_REF), state, policy)
    other = decide(_s251(gateway=Gateway.COPI_REG5, flow=OTHER_CAG_REF), state, policy)
    assert exempt.outcome is Outcome.PERMIT_WITH_OBLIGATIONS
    assert exempt.codes[0] == "GATEWAY_OUTSIDE_OPT_OUT"
    assert other.outcome is Outcome.DENY
    assert other.codes == ("NDOP_ACTIVE",)


def test_an_exemption_on_an_objection_holds_for_the_flow_it_names_only() -> None:
    """Rec 11: objections carry the bases that still override them - for the data flow named, not for
    every flow of that legal basis (issue 14, rule 5)."""
    state = state_of([objection(ObjectionKind.NDOP, exemptions=(LegalBasis.S251,), exempt_flows=(CAG_REF,))])
    named = decide(_s251(gateway=Gateway.COPI_REG5, flow=CAG_REF), state)
    other = decide(_s251(gateway=Gateway.COPI_REG5, flow=OTHER_CAG_REF), state)
    unnamed = decide(_s251(), state)
    assert named.outcome is Outcome.PERMIT_WITH_OBLIGATIONS
    assert named.codes[0] == "EXEMPTION_OVERRIDES_OBJECTION"
    assert other.outcome is Outcome.DENY
    assert other.codes == ("EXEMPTION_NOT_FOR_THIS_FLOW", "NDOP_ACTIVE")
    assert unnamed.codes == ("EXEMPTION_NOT_FOR_THIS_FLOW", "NDOP_ACTIVE")


def test_an_exemption_naming_no_flow_exempts_nothing() -> None:
    """Issue 14, rule 5: an exemption listed without its flow (an Objection v1 event) must not exempt
    every flow of that kind; the patient's objection stands."""
    state = state_of([objection(ObjectionKind.NDOP, exemptions=(LegalBasis.S251,))])
    d = decide(_s251(gateway=Gateway.COPI_REG5, flow=CAG_REF), state)
    assert d.outcome is Outcome.DENY
    assert d.codes == ("EXEMPTION_NOT_FOR_THIS_FLOW", "NDOP_ACTIVE")


def test_a_gateway_without_its_reference_or_without_s251_is_not_relied_on() -> None:
    """NDOP policy 5.1: the data controller must satisfy itself of the approval (by its letter or
    minutes), so a gateway is relied on only with the flow's reference and an s251 basis."""
    state = state_of([objection(ObjectionKind.NDOP)])
    bare = decide(_s251(gateway=Gateway.COPI_REG3), state)
    no_s251 = decide(replace(_s251(gateway=Gateway.COPI_REG3, flow=COPI_NOTICE), legal_basis=None), state)
    assert bare.outcome is Outcome.DENY
    assert bare.codes == ("GATEWAY_NOT_RELIED_ON", "NDOP_ACTIVE")
    assert no_s251.outcome is Outcome.DENY
    assert no_s251.codes[0] == "GATEWAY_NOT_RELIED_ON"


def test_gateway_and_flow_travel_in_the_json_request() -> None:
    """The decision API's JSON: gateway and flow_ref are optional fields (old clients unchanged)."""
    body = {
        "nhs_number": "9434765919",
        "purpose": "HRESCH",
        "data_classes": ["GENERAL"],
        "legal_basis": "S251",
        "gateway": "COPI_REG3",
        "flow_ref": COPI_NOTICE,
        "requester": {
            "organisation": "RESLAB1",
            "role": "RESEARCHER",
            "registered": True,
            "relationship": "NONE",
            "care_team": False,
        },
    }
    parsed = parse_request(body, lambda _: PATIENT, 1_760_000_000_000)
    assert (parsed.request.gateway, parsed.request.flow_ref) == (Gateway.COPI_REG3, COPI_NOTICE)
    d = decide(parsed.request, state_of([objection(ObjectionKind.NDOP)]))
    assert d.codes[0] == "GATEWAY_OUTSIDE_OPT_OUT"
    old = parse_request({k: v for k, v in body.items() if k not in ("gateway", "flow_ref")}, lambda _: PATIENT, 0)
    assert (old.request.gateway, old.request.flow_ref) == (None, "")
