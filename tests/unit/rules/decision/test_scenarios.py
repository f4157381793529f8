"""Named sharing-decision scenarios from the Caldicott review and the Government response.

Each docstring cites the recommendation or revised Caldicott principle it exercises
(``../shared/seed/caldicott-review-government-response.txt``).
"""

from __future__ import annotations

from dataclasses import replace

from consent_rules.decision import (
    DataHolder,
    DecisionPolicy,
    HolderKind,
    Obligation,
    Outcome,
    OverrideEvidence,
    decide,
    decide_as_at,
)
from consent_rules.state import empty_state
from consent_wire.codes import (
    ConsentDirective,
    DataClass,
    HiddenField,
    LegalBasis,
    ObjectionAction,
    ObjectionKind,
    PurposeOfUse,
    Relationship,
)

from .factories import (
    CARE_HOME,
    DAY_MS,
    GP_PRACTICE,
    HOSPITAL,
    NOW_MS,
    PATIENT,
    RESEARCH_UNIT,
    consent,
    hlc_of,
    objection,
    request,
    requester,
    researcher,
    shield,
    state_of,
)

MDS = Obligation.MINIMUM_DATA_SET
# Issue 14, rule 4: the evidence an override needs.
MANDATE = OverrideEvidence(instrument="Health Protection (Notification) Regulations 2010, reg 2")
PUBLIC = OverrideEvidence(
    justification="child at risk of significant harm (Children Act 1989 s47 enquiry)",
    approver="Caldicott Guardian, RX1",
)


def test_gp_to_hospital_direct_care_with_legitimate_relationship_is_permitted_on_implied_consent() -> None:
    """Recs 2-4 and principle 7: direct care within a legitimate relationship proceeds on implied consent."""
    state = state_of([objection(ObjectionKind.NDOP)])  # NDOP never touches direct care
    d = decide(request(requester(HOSPITAL), PurposeOfUse.TREAT), state)
    assert d.outcome is Outcome.PERMIT
    assert d.obligations == ()
    assert d.legal_basis is LegalBasis.IMPLIED_CONSENT_DIRECT_CARE
    assert d.codes == ("DIRECT_CARE_IMPLIED_CONSENT",)
    assert d.permitted == (DataClass.GENERAL,)
    assert d.state_version == 1


def test_direct_care_without_legitimate_relationship_is_denied() -> None:
    """Principle 4 (strict need to know) and rec 3: sharing is with care-team members who have a
    legitimate relationship."""
    who = requester(HOSPITAL, relationship=Relationship.NONE, care_team=False)
    d = decide(request(who, PurposeOfUse.TREAT), state_of([]))
    assert d.outcome is Outcome.DENY
    assert d.codes == ("NO_LEGITIMATE_RELATIONSHIP",)
    assert d.legal_basis is None
    assert d.obligations == ()
    assert d.permitted == ()


def test_research_without_consent_or_s251_is_denied() -> None:
    """Rec 7 / NHS Constitution: no use beyond direct care without consent or a legal basis."""
    d = decide(request(researcher(), PurposeOfUse.HRESCH), state_of([]))
    assert d.outcome is Outcome.DENY
    assert d.codes == ("NO_CONSENT_OR_LEGAL_BASIS",)
    assert d.withheld == (DataClass.GENERAL,)


def test_ndop_blocks_planning_even_with_s251_approval() -> None:
    """Rec 11 (7.12): objections are respected unless legislation mandates disclosure; s251 does not."""
    state = state_of([objection(ObjectionKind.NDOP)])
    d = decide(request(researcher("CCG01"), PurposeOfUse.HOPERAT, legal_basis=LegalBasis.S251), state)
    assert d.outcome is Outcome.DENY
    assert d.codes == ("NDOP_ACTIVE",)
    assert "s251 approval does not set it aside" in d.reasons[0]


def test_s251_research_without_objection_is_permitted_with_minimum_data_set() -> None:
    """Principle 6 (comply with the law) and principle 3: s251 is a lawful basis; minimum data only."""
    d = decide(request(researcher(), PurposeOfUse.HRESCH, legal_basis=LegalBasis.S251), state_of([]))
    assert d.outcome is Outcome.PERMIT_WITH_OBLIGATIONS
    assert d.obligations == (MDS,)
    assert d.legal_basis is LegalBasis.S251
    assert d.codes == ("S251_APPROVAL", "MINIMUM_DATA_SET")


def test_s251_research_with_ndop_is_denied() -> None:
    """Rec 11: the national data opt-out applies to s251 research uses."""
    state = state_of([objection(ObjectionKind.NDOP)])
    d = decide(request(researcher(), PurposeOfUse.HRESCH, legal_basis=LegalBasis.S251), state)
    assert d.outcome is Outcome.DENY
    assert d.codes == ("NDOP_ACTIVE",)
    assert d.legal_basis is None


def test_type1_objection_overridden_by_statutory_mandate_states_the_basis() -> None:
    """Rec 11 (7.12): a GP objection is respected "unless there is legislation to support mandatory
    disclosure"; rec 7: the patient is told the legal basis. Issue 14, rule 4: the mandate names its
    instrument, and the override is recorded and alerted as break-glass is."""
    state = state_of([objection(ObjectionKind.TYPE1)])
    who = researcher("NHSD")
    req = request(who, PurposeOfUse.PUBHLTH, legal_basis=LegalBasis.STATUTORY_MANDATE, evidence=MANDATE)
    d = decide(req, state)
    assert d.outcome is Outcome.PERMIT_WITH_OBLIGATIONS
    assert d.legal_basis is LegalBasis.STATUTORY_MANDATE
    assert d.codes == ("STATUTORY_MANDATE_OVERRIDES_OBJECTION", "STATUTORY_MANDATE", "MINIMUM_DATA_SET")
    assert d.obligations == (MDS, Obligation.ALERT_PRIVACY_OFFICER, Obligation.RECORD_ACCESS)
    assert "STATUTORY_MANDATE overrides it" in d.reasons[0]
    assert MANDATE.instrument in d.reasons[0]


def test_statutory_mandate_without_its_instrument_is_not_relied_on() -> None:
    """Issue 14, rule 4 (principle 6, comply with the law: a disclosure "required by law" names the law): a bare
    STATUTORY_MANDATE claim sets nothing aside."""
    state = state_of([objection(ObjectionKind.TYPE1)])
    d = decide(request(researcher("NHSD"), PurposeOfUse.PUBHLTH, legal_basis=LegalBasis.STATUTORY_MANDATE), state)
    assert d.outcome is Outcome.DENY
    assert d.codes == ("OVERRIDE_EVIDENCE_MISSING", "NO_CONSENT_OR_LEGAL_BASIS")


def test_type1_objection_blocks_secondary_use_but_not_direct_care() -> None:
    """Rec 11 (7.12, 7.14): a type 1 objection is to use "beyond their direct care"."""
    state = state_of([objection(ObjectionKind.TYPE1)])
    audit = decide(request(researcher("CSU01"), PurposeOfUse.HQUALIMP, legal_basis=LegalBasis.S251), state)
    care = decide(request(requester(HOSPITAL), PurposeOfUse.TREAT), state)
    assert audit.outcome is Outcome.DENY
    assert audit.codes == ("TYPE1_ACTIVE",)
    assert care.outcome is Outcome.PERMIT
    assert care.legal_basis is LegalBasis.IMPLIED_CONSENT_DIRECT_CARE


def test_type1_objection_does_not_stop_the_practice_auditing_its_own_records() -> None:
    """Rec 11: type 1 stops identifiable data *leaving the practice*; in-practice clinical audit is not that.
    Since issue 14 rule 7 the practice's own audit by the care team is direct care (seed 3.2), so it rests on
    implied consent rather than on the s251 approval it names."""
    state = state_of([objection(ObjectionKind.TYPE1, site=GP_PRACTICE)])
    who = requester(GP_PRACTICE, "GP")
    d = decide(request(who, PurposeOfUse.HQUALIMP, legal_basis=LegalBasis.S251), state)
    assert d.outcome is Outcome.PERMIT
    assert d.legal_basis is LegalBasis.IMPLIED_CONSENT_DIRECT_CARE


def test_local_clinical_audit_by_the_care_team_is_direct_care() -> None:
    """Seed 3.2: direct care "also includes activity such as audit ... carried out by people who have a
    legitimate relationship for that person's care" (issue 14, rule 7; NDOP operational policy: the opt-out
    does not apply to direct care). Neither the NDOP nor a type 1 stops it; the same audit by a commissioning
    support unit with no care relationship is a secondary use and is stopped."""
    state = state_of([objection(ObjectionKind.NDOP), objection(ObjectionKind.TYPE1)])
    care_team = decide(request(requester(HOSPITAL, "CONSULTANT"), PurposeOfUse.HQUALIMP), state)
    csu = decide(request(researcher("CSU01"), PurposeOfUse.HQUALIMP, legal_basis=LegalBasis.S251), state)
    assert care_team.outcome is Outcome.PERMIT
    assert care_team.legal_basis is LegalBasis.IMPLIED_CONSENT_DIRECT_CARE
    assert care_team.codes == ("LOCAL_CLINICAL_AUDIT", "DIRECT_CARE_IMPLIED_CONSENT")
    assert csu.outcome is Outcome.DENY


def test_local_clinical_audit_still_honours_the_patients_refusal_of_audit() -> None:
    """Recs 7-8: a recorded refusal for operations (of which audit is a kind, HL7 ActReason) is followed even
    when the audit is direct care (issue 14, rules 3 and 7)."""
    state = state_of([consent(ConsentDirective.OPTOUT, PurposeOfUse.HOPERAT)])
    d = decide(request(requester(HOSPITAL, "CONSULTANT"), PurposeOfUse.HQUALIMP), state)
    assert d.outcome is Outcome.DENY
    assert d.codes == ("LOCAL_CLINICAL_AUDIT", "CONSENT_WITHDRAWN")


def test_shielded_child_record_shared_for_direct_care_with_location_redacted() -> None:
    """Rec 10.6: 'shielding requirements' on a child's record protect location and/or identity while care
    continues."""
    state = state_of([shield((HiddenField.LOCATION, HiddenField.CONTACT))])
    classes = (DataClass.GENERAL, DataClass.PATLOC)
    d = decide(request(requester(HOSPITAL, "PAEDIATRICIAN"), PurposeOfUse.TREAT, classes), state)
    assert d.outcome is Outcome.PERMIT_WITH_OBLIGATIONS
    assert d.obligations == (
        Obligation.REDACT_CONTACT,
        Obligation.REDACT_LOCATION,
        Obligation.WITHHOLD_DATA_CLASSES,
    )
    assert d.permitted == (DataClass.GENERAL,)
    assert d.withheld == (DataClass.PATLOC,)
    assert d.codes == ("DIRECT_CARE_IMPLIED_CONSENT", "SHIELDED")
    assert "CHILD_PROTECTION" not in " ".join(d.reasons)  # the shielding reason itself is not disclosed


def test_shielded_record_request_for_location_only_is_denied() -> None:
    """Rec 10.6: the protected location is never released by a decision."""
    state = state_of([shield((HiddenField.LOCATION,))])
    d = decide(request(requester(HOSPITAL), PurposeOfUse.COC, (DataClass.PATLOC,)), state)
    assert d.outcome is Outcome.DENY
    assert d.withheld == (DataClass.PATLOC,)
    assert "SHIELDED" in d.codes


def test_unregistered_care_home_worker_in_care_team_is_permitted_minimum_data_set() -> None:
    """Rec 3 and principle 7: care teams include unregistered staff giving direct care, with robust safeguards."""
    who = requester(CARE_HOME, "CARE_WORKER", registered=False, care_team=True)
    d = decide(request(who, PurposeOfUse.COC), state_of([]))
    assert d.outcome is Outcome.PERMIT_WITH_OBLIGATIONS
    assert d.obligations == (MDS,)
    assert d.legal_basis is LegalBasis.IMPLIED_CONSENT_DIRECT_CARE
    assert d.codes == ("UNREGISTERED_IN_CARE_TEAM", "DIRECT_CARE_IMPLIED_CONSENT")


def test_unregistered_worker_outside_the_care_team_is_denied() -> None:
    """Principle 4: access on a strict need-to-know basis; rec 3 covers only care-team members."""
    who = requester(CARE_HOME, "CARE_WORKER", registered=False, care_team=False)
    d = decide(request(who, PurposeOfUse.TREAT), state_of([]))
    assert d.outcome is Outcome.DENY
    assert d.codes == ("UNREGISTERED_NOT_IN_CARE_TEAM",)


def test_break_glass_is_permitted_recorded_and_alerted() -> None:
    """Rec 1 (audit of who accessed) and design 6: break-glass is allowed, recorded and alerted."""
    who = requester("RXA", "A_AND_E_DOCTOR", relationship=Relationship.NONE, care_team=False)
    state = state_of([consent(ConsentDirective.OPTOUT, PurposeOfUse.ANY)])
    d = decide(request(who, PurposeOfUse.BTG), state)
    assert d.outcome is Outcome.PERMIT_WITH_OBLIGATIONS
    assert d.obligations == (Obligation.ALERT_PRIVACY_OFFICER, Obligation.RECORD_ACCESS)
    assert d.legal_basis is LegalBasis.BREAK_GLASS
    assert d.codes == ("BREAK_GLASS",)


def test_withdrawal_of_consent_stops_research_sharing() -> None:
    """Rec 7-8: consent decisions are reliably recorded; a later withdrawal takes effect."""
    given = consent(ConsentDirective.OPTIN, PurposeOfUse.HRESCH, at_ms=NOW_MS - 9 * DAY_MS)
    withdrawn = consent(ConsentDirective.OPTOUT, PurposeOfUse.HRESCH, at_ms=NOW_MS - DAY_MS)
    before = decide(request(researcher(), PurposeOfUse.HRESCH), state_of([given]))
    after = decide(request(researcher(), PurposeOfUse.HRESCH), state_of([withdrawn, given]))
    assert before.outcome is Outcome.PERMIT_WITH_OBLIGATIONS
    assert after.outcome is Outcome.DENY
    assert after.codes == ("CONSENT_WITHDRAWN",)
    assert after.state_version == 2


def test_decision_as_at_last_week_differs_from_today() -> None:
    """Design 6 and rec 1: every decision can be re-evaluated as at a past time."""
    events = [
        consent(ConsentDirective.OPTIN, PurposeOfUse.HRESCH, at_ms=NOW_MS - 30 * DAY_MS),
        objection(ObjectionKind.NDOP, at_ms=NOW_MS - 3 * DAY_MS),
        consent(ConsentDirective.OPTOUT, PurposeOfUse.HRESCH, at_ms=NOW_MS - 2 * DAY_MS),
    ]
    last_week = NOW_MS - 7 * DAY_MS
    then = decide_as_at(request(researcher(), PurposeOfUse.HRESCH, at_ms=last_week), events, hlc_of(last_week))
    today = decide_as_at(request(researcher(), PurposeOfUse.HRESCH), events, hlc_of(NOW_MS))
    assert (then.outcome, then.legal_basis, then.state_version) == (
        Outcome.PERMIT_WITH_OBLIGATIONS,
        LegalBasis.CONSENT,
        1,
    )
    assert (today.outcome, today.codes, today.state_version) == (Outcome.DENY, ("CONSENT_WITHDRAWN",), 3)


def test_explicit_research_consent_is_permitted_with_minimum_data_set() -> None:
    """Rec 7 and principle 3: explicit consent makes research lawful; still only the minimum data."""
    state = state_of([consent(ConsentDirective.OPTIN, PurposeOfUse.HRESCH, recipient=RESEARCH_UNIT)])
    d = decide(request(researcher(), PurposeOfUse.HRESCH), state)
    assert d.outcome is Outcome.PERMIT_WITH_OBLIGATIONS
    assert d.obligations == (MDS,)
    assert d.legal_basis is LegalBasis.CONSENT
    assert d.codes == ("EXPLICIT_CONSENT", "MINIMUM_DATA_SET")


def test_explicit_consent_for_another_recipient_does_not_cover_this_one() -> None:
    """Rec 7-8: a consent's scope (recipient) is honoured exactly."""
    state = state_of([consent(ConsentDirective.OPTIN, PurposeOfUse.HRESCH, recipient="OTHERLAB")])
    d = decide(request(researcher(), PurposeOfUse.HRESCH), state)
    assert d.outcome is Outcome.DENY
    assert d.codes == ("NO_CONSENT_OR_LEGAL_BASIS",)


def test_explicit_consent_takes_precedence_over_a_general_ndop() -> None:
    """Rec 11 and NDOP operational policy 6.1: the opt-out does not apply where the patient consented to the
    specific use. The consent here is *later* than the opt-out (issue 14, rule 1: until then this test had
    the consent before the opt-out, which now loses to it)."""
    ndop = objection(ObjectionKind.NDOP, at_ms=NOW_MS - 20 * DAY_MS)
    state = state_of([ndop, consent(ConsentDirective.OPTIN, PurposeOfUse.HRESCH, at_ms=NOW_MS - 10 * DAY_MS)])
    d = decide(request(researcher(), PurposeOfUse.HRESCH), state)
    assert d.outcome is Outcome.PERMIT_WITH_OBLIGATIONS
    assert d.codes == ("EXPLICIT_CONSENT", "EXPLICIT_CONSENT_OVERRIDES_OBJECTION", "MINIMUM_DATA_SET")


def test_later_ndop_wins_over_an_earlier_explicit_research_consent() -> None:
    """Issue 14, rule 1: explicit consent overrides an objection only when it is the patient's later wish
    (NDOP operational policy 6.1; UK GDPR art 7(3): a later objection withdraws what came before)."""
    given = consent(ConsentDirective.OPTIN, PurposeOfUse.HRESCH, at_ms=NOW_MS - 30 * DAY_MS)
    state = state_of([given, objection(ObjectionKind.NDOP, at_ms=NOW_MS - 20 * DAY_MS)])
    d = decide(request(researcher(), PurposeOfUse.HRESCH), state)
    assert d.outcome is Outcome.DENY
    assert d.codes == ("NDOP_ACTIVE",)


def test_any_purpose_permit_is_not_explicit_consent_to_research() -> None:
    """NDOP operational policy 6.1: consent that sets the opt-out aside is consent to a *specific* use; a base
    "any purpose" permit (e.g. a FHIR privacy Consent whose base provision is permit) is not (issue 14,
    rule 1). It still stands for direct care (recs 2-4)."""
    base_permit = consent(ConsentDirective.OPTIN, PurposeOfUse.ANY, at_ms=NOW_MS - 30 * DAY_MS)
    bare = decide(request(researcher(), PurposeOfUse.HRESCH), state_of([base_permit]))
    later_ndop = state_of([base_permit, objection(ObjectionKind.NDOP, at_ms=NOW_MS - 20 * DAY_MS)])
    planning = decide(request(researcher("CCG01"), PurposeOfUse.HOPERAT), later_ndop)
    care = decide(request(requester(HOSPITAL), PurposeOfUse.TREAT), state_of([base_permit]))
    assert bare.outcome is Outcome.DENY
    assert bare.codes == ("NO_CONSENT_OR_LEGAL_BASIS",)
    assert planning.outcome is Outcome.DENY
    assert "EXPLICIT_CONSENT_OVERRIDES_OBJECTION" not in planning.codes
    assert care.outcome is Outcome.PERMIT
    assert care.legal_basis is LegalBasis.CONSENT


def test_explicit_consent_for_research_does_not_set_aside_ndop_for_planning() -> None:
    """NDOP operational policy 6.1: consent overrides the opt-out only for the use it names (issue 14, rule 1)."""
    ndop = objection(ObjectionKind.NDOP, at_ms=NOW_MS - 20 * DAY_MS)
    state = state_of([ndop, consent(ConsentDirective.OPTIN, PurposeOfUse.HRESCH, at_ms=NOW_MS - DAY_MS)])
    d = decide(request(researcher(), PurposeOfUse.HOPERAT, legal_basis=LegalBasis.S251), state)
    assert d.outcome is Outcome.DENY
    assert d.codes == ("NDOP_ACTIVE",)


def test_psy_opt_out_withholds_psy_and_permits_the_rest() -> None:
    """Principle 3-4 and rec 7-8: a consent decision about one data class is honoured, the rest shared."""
    state = state_of([consent(ConsentDirective.OPTOUT, PurposeOfUse.ANY, DataClass.PSY)])
    classes = (DataClass.GENERAL, DataClass.PSY)
    d = decide(request(requester(HOSPITAL), PurposeOfUse.TREAT, classes), state)
    assert d.outcome is Outcome.PERMIT_WITH_OBLIGATIONS
    assert d.obligations == (Obligation.WITHHOLD_DATA_CLASSES,)
    assert (d.permitted, d.withheld) == ((DataClass.GENERAL,), (DataClass.PSY,))
    assert d.codes == ("DATA_CLASS_EXCLUDED", "DIRECT_CARE_IMPLIED_CONSENT")
    assert "PSY" in d.reasons[0]


def test_psy_opt_out_withholds_psy_from_a_request_for_all() -> None:
    """Principle 3: ALL minus the class the patient excluded."""
    state = state_of([consent(ConsentDirective.OPTOUT, PurposeOfUse.TREAT, DataClass.PSY)])
    d = decide(request(requester(HOSPITAL), PurposeOfUse.TREAT, (DataClass.ALL,)), state)
    assert d.outcome is Outcome.PERMIT_WITH_OBLIGATIONS
    assert (d.permitted, d.withheld) == ((DataClass.ALL,), (DataClass.PSY,))


def test_psy_only_request_with_psy_opt_out_is_denied() -> None:
    """Rec 7-8: the patient's recorded dissent for that class is followed."""
    state = state_of([consent(ConsentDirective.OPTOUT, PurposeOfUse.ANY, DataClass.PSY)])
    d = decide(request(requester(HOSPITAL), PurposeOfUse.TREAT, (DataClass.PSY,)), state)
    assert d.outcome is Outcome.DENY
    assert d.codes == ("CONSENT_WITHDRAWN",)


def test_time_bounded_research_consent_expired_is_denied() -> None:
    """Rec 7-8 and principle 1 (continuing uses regularly reviewed): a consent period ends."""
    ev = consent(
        ConsentDirective.OPTIN,
        PurposeOfUse.HRESCH,
        start_ms=NOW_MS - 400 * DAY_MS,
        end_ms=NOW_MS - 35 * DAY_MS,
        at_ms=NOW_MS - 400 * DAY_MS,
    )
    inside = decide(request(researcher(), PurposeOfUse.HRESCH, at_ms=NOW_MS - 100 * DAY_MS), state_of([ev]))
    expired = decide(request(researcher(), PurposeOfUse.HRESCH), state_of([ev]))
    assert inside.outcome is Outcome.PERMIT_WITH_OBLIGATIONS
    assert expired.outcome is Outcome.DENY
    assert expired.codes == ("CONSENT_EXPIRED",)


def test_biometric_monitoring_data_shared_for_direct_care() -> None:
    """Rec 17: biometric monitoring devices conform to IG good practice - their readings are shared for
    direct care under the same rules, and an objection to secondary use still holds."""
    state = state_of([objection(ObjectionKind.NDOP)])
    who = requester("RMS01", "REMOTE_MONITORING_NURSE")
    care = decide(request(who, PurposeOfUse.TREAT), state)
    research = decide(request(researcher(), PurposeOfUse.HRESCH, legal_basis=LegalBasis.S251), state)
    assert care.outcome is Outcome.PERMIT
    assert care.legal_basis is LegalBasis.IMPLIED_CONSENT_DIRECT_CARE
    assert research.outcome is Outcome.DENY


def test_local_dissent_blocks_shared_care_record_for_direct_care() -> None:
    """Design 6: direct care proceeds on implied consent *unless the person dissented*."""
    state = state_of([objection(ObjectionKind.LOCAL_DISSENT)])
    d = decide(request(requester(HOSPITAL), PurposeOfUse.TREAT), state)
    own_gp = decide(request(requester(GP_PRACTICE, "GP"), PurposeOfUse.TREAT), state)
    assert d.outcome is Outcome.DENY
    assert d.codes == ("LOCAL_DISSENT",)
    assert own_gp.outcome is Outcome.PERMIT


def test_safeguarding_overrides_ndop_but_not_type1() -> None:
    """Rec 11 (7.12): overriding public interest sets NDOP aside; a type 1 yields only to legislation. Issue 14,
    rule 4: the public interest carries its justification and approver."""
    ndop = state_of([objection(ObjectionKind.NDOP)])
    type1 = state_of([objection(ObjectionKind.TYPE1)])
    req = request(researcher("LA01"), PurposeOfUse.HOPERAT, legal_basis=LegalBasis.SAFEGUARDING, evidence=PUBLIC)
    d = decide(req, ndop)
    assert d.codes == (
        "PUBLIC_INTEREST_OVERRIDES_OBJECTION",
        "SAFEGUARDING",
        "MINIMUM_DATA_SET",
    )
    assert "Caldicott Guardian" in d.reasons[0]
    assert decide(req, type1).outcome is Outcome.DENY


def test_bare_safeguarding_flag_from_a_researcher_is_not_enough() -> None:
    """Issue 14, rule 4 (rec 11, 7.12: the public interest must be justified; principle 1: justify the purpose):
    without a justification *and* an approver, a SAFEGUARDING claim sets no objection aside."""
    state = state_of([objection(ObjectionKind.NDOP)])
    unapproved = OverrideEvidence(justification=PUBLIC.justification)
    for evidence in (None, unapproved):
        req = request(researcher(), PurposeOfUse.HRESCH, legal_basis=LegalBasis.SAFEGUARDING, evidence=evidence)
        d = decide(req, state)
        assert (d.outcome, d.codes) == (Outcome.DENY, ("OVERRIDE_EVIDENCE_MISSING", "NO_CONSENT_OR_LEGAL_BASIS"))


def test_evidenced_safeguarding_sets_aside_local_dissent_and_the_relationship_limit() -> None:
    """Issue 14, rule 4: where the law allows (rec 11, 7.12: overriding public interest; the Caldicott review's
    "duty to share" for safeguarding, principle 7), an approved safeguarding disclosure sets aside local dissent
    and the need for a legitimate care relationship - minimum data only, recorded and alerted."""
    state = state_of([objection(ObjectionKind.LOCAL_DISSENT)])
    social_worker = requester("LA01", "SOCIAL_WORKER", relationship=Relationship.NONE, care_team=False)
    req = request(social_worker, PurposeOfUse.COC, legal_basis=LegalBasis.SAFEGUARDING, evidence=PUBLIC)
    d = decide(req, state)
    bare = decide(replace(req, evidence=None), state)
    assert d.outcome is Outcome.PERMIT_WITH_OBLIGATIONS
    assert d.legal_basis is LegalBasis.SAFEGUARDING
    assert d.codes == ("SAFEGUARDING_OVERRIDES_RELATIONSHIP", "PUBLIC_INTEREST_OVERRIDES_OBJECTION")
    assert d.obligations == (MDS, Obligation.ALERT_PRIVACY_OFFICER, Obligation.RECORD_ACCESS)
    assert bare.outcome is Outcome.DENY
    assert bare.codes == ("OVERRIDE_EVIDENCE_MISSING", "NO_LEGITIMATE_RELATIONSHIP")


def test_exemption_listed_on_the_objection_overrides_it_for_the_flow_it_names() -> None:
    """Rec 11: objections carry the bases that still override them (for the data flow named: issue 14,
    rule 5; the other flows are in test_scenarios_gateway.py)."""
    state = state_of([objection(ObjectionKind.NDOP, exemptions=(LegalBasis.S251,), exempt_flows=("21/CAG/0032",))])
    req = request(researcher(), PurposeOfUse.HRESCH, legal_basis=LegalBasis.S251)
    d = decide(replace(req, flow_ref="21/CAG/0032"), state)
    assert d.outcome is Outcome.PERMIT_WITH_OBLIGATIONS
    assert d.codes[0] == "EXEMPTION_OVERRIDES_OBJECTION"


def test_withdrawn_ndop_no_longer_blocks_s251_research() -> None:
    """Rec 11: a patient may withdraw their objection; the latest decision counts."""
    state = state_of(
        [
            objection(ObjectionKind.NDOP, at_ms=NOW_MS - 9 * DAY_MS),
            objection(ObjectionKind.NDOP, ObjectionAction.WITHDRAW, at_ms=NOW_MS - DAY_MS),
        ]
    )
    d = decide(request(researcher(), PurposeOfUse.HRESCH, legal_basis=LegalBasis.S251), state)
    assert d.outcome is Outcome.PERMIT_WITH_OBLIGATIONS
    assert d.legal_basis is LegalBasis.S251


def test_statutory_mandate_overrides_direct_care_opt_out_and_says_so() -> None:
    """Rec 7: where wishes cannot be followed the patient is told the reasons, including the legal basis. Since
    issue 14 rule 4 the mandate names its instrument and the override is recorded and alerted (so the outcome is
    PERMIT_WITH_OBLIGATIONS, not PERMIT)."""
    state = state_of([consent(ConsentDirective.OPTOUT, PurposeOfUse.TREAT)])
    req = request(requester(HOSPITAL), PurposeOfUse.TREAT, legal_basis=LegalBasis.STATUTORY_MANDATE, evidence=MANDATE)
    d = decide(req, state)
    assert d.outcome is Outcome.PERMIT_WITH_OBLIGATIONS
    assert d.obligations == (Obligation.ALERT_PRIVACY_OFFICER, Obligation.RECORD_ACCESS)
    assert d.legal_basis is LegalBasis.STATUTORY_MANDATE
    assert d.codes == ("STATUTORY_MANDATE_OVERRIDES_OBJECTION",)
    assert MANDATE.instrument in d.reasons[0]


def test_implied_consent_is_not_a_basis_for_research() -> None:
    """Rec 7: implied consent covers only the patient's own care and treatment."""
    req = request(researcher(), PurposeOfUse.HRESCH, legal_basis=LegalBasis.IMPLIED_CONSENT_DIRECT_CARE)
    d = decide(req, empty_state(PATIENT))
    assert d.outcome is Outcome.DENY
    assert d.state_version == 0


def test_break_glass_cannot_be_claimed_for_research() -> None:
    """Principle 1 (justify the purpose): break-glass is an emergency-care route, not a research basis."""
    who = researcher()
    d = decide(request(who, PurposeOfUse.HRESCH, legal_basis=LegalBasis.BREAK_GLASS), state_of([]))
    assert d.outcome is Outcome.DENY
    assert d.codes == ("NO_CONSENT_OR_LEGAL_BASIS",)


def test_later_unqualified_opt_out_wins_over_an_earlier_consent_for_one_recipient() -> None:
    """Rule 2 (issue 14): withdrawal takes effect when made, for everything it covers (UK GDPR art 7(3): consent
    may be withdrawn at any time; recs 7-8: the patient's recorded decision is followed). A consent naming one
    recipient does not survive the patient's later opt-out from all sharing."""
    given = consent(ConsentDirective.OPTIN, PurposeOfUse.HRESCH, recipient=RESEARCH_UNIT, at_ms=NOW_MS - 9 * DAY_MS)
    withdrawn = consent(ConsentDirective.OPTOUT, PurposeOfUse.ANY, at_ms=NOW_MS - DAY_MS)
    d = decide(request(researcher(), PurposeOfUse.HRESCH), state_of([given, withdrawn]))
    assert d.outcome is Outcome.DENY
    assert d.codes == ("CONSENT_WITHDRAWN",)


def test_later_consent_for_one_recipient_still_wins_over_an_earlier_general_opt_out() -> None:
    """Rule 2 (issue 14) is about withdrawals: a later, specific permission is the patient's newer wish (rec 7)
    and is honoured for that recipient only."""
    withdrawn = consent(ConsentDirective.OPTOUT, PurposeOfUse.ANY, at_ms=NOW_MS - 9 * DAY_MS)
    given = consent(ConsentDirective.OPTIN, PurposeOfUse.HRESCH, recipient=RESEARCH_UNIT, at_ms=NOW_MS - DAY_MS)
    state = state_of([given, withdrawn])
    d = decide(request(researcher(), PurposeOfUse.HRESCH), state)
    other = decide(request(researcher("OTHERLAB"), PurposeOfUse.HRESCH), state)
    assert d.outcome is Outcome.PERMIT_WITH_OBLIGATIONS
    assert d.legal_basis is LegalBasis.CONSENT
    assert other.outcome is Outcome.DENY


def test_refusal_for_treatment_covers_coordination_of_care_and_emergency_treatment() -> None:
    """Issue 14, rule 3: in HL7 v3 ActReason, COC and ETREAT are kinds of TREAT, so a refusal for TREAT covers
    them (recs 7-8: the patient's recorded dissent is followed)."""
    state = state_of([consent(ConsentDirective.OPTOUT, PurposeOfUse.TREAT)])
    for purpose in (PurposeOfUse.COC, PurposeOfUse.ETREAT):
        d = decide(request(requester(HOSPITAL), purpose), state)
        assert (purpose, d.outcome, d.codes) == (purpose, Outcome.DENY, ("CONSENT_WITHDRAWN",))


def test_refusal_for_operations_covers_quality_improvement() -> None:
    """Issue 14, rule 3: HQUALIMP is a kind of HOPERAT (HL7 v3 ActReason); a narrower code never escapes a
    broader refusal, whatever basis is claimed short of a statutory mandate (rec 11)."""
    state = state_of([consent(ConsentDirective.OPTOUT, PurposeOfUse.HOPERAT)])
    d = decide(request(researcher("CSU01"), PurposeOfUse.HQUALIMP, legal_basis=LegalBasis.S251), state)
    assert d.outcome is Outcome.DENY
    assert d.codes == ("CONSENT_WITHDRAWN",)


def test_permission_for_a_narrower_purpose_never_implies_the_broader_one() -> None:
    """Issue 14, rule 3 (HL7 v3 ActReason): consent to quality improvement is not consent to all healthcare
    operations; consent to operations does cover quality improvement, a kind of it (NDOP policy 6.1)."""
    narrow = state_of([consent(ConsentDirective.OPTIN, PurposeOfUse.HQUALIMP, recipient="CSU01")])
    broad = state_of([consent(ConsentDirective.OPTIN, PurposeOfUse.HOPERAT, recipient="CSU01")])
    wider_use = decide(request(researcher("CSU01"), PurposeOfUse.HOPERAT), narrow)
    narrower_use = decide(request(researcher("CSU01"), PurposeOfUse.HQUALIMP), broad)
    assert wider_use.outcome is Outcome.DENY
    assert wider_use.codes == ("NO_CONSENT_OR_LEGAL_BASIS",)
    assert narrower_use.outcome is Outcome.PERMIT_WITH_OBLIGATIONS
    assert narrower_use.legal_basis is LegalBasis.CONSENT


def test_local_dissent_withdrawn_at_one_organisation_still_holds_at_another() -> None:
    """Issue 14, rule 6: local dissent belongs to the organisation that recorded it (design 6: direct care
    proceeds *unless the person dissented*); a withdrawal recorded at the hospital does not clear the dissent
    the patient gave their practice. Withdrawing it at the practice does."""
    dissent = objection(ObjectionKind.LOCAL_DISSENT, at_ms=NOW_MS - 20 * DAY_MS, site=GP_PRACTICE)
    elsewhere = objection(
        ObjectionKind.LOCAL_DISSENT, ObjectionAction.WITHDRAW, at_ms=NOW_MS - 10 * DAY_MS, site=HOSPITAL
    )
    at_practice = objection(
        ObjectionKind.LOCAL_DISSENT, ObjectionAction.WITHDRAW, at_ms=NOW_MS - 5 * DAY_MS, site=GP_PRACTICE
    )
    still = decide(request(requester(HOSPITAL), PurposeOfUse.TREAT), state_of([dissent, elsewhere]))
    cleared = decide(request(requester(HOSPITAL), PurposeOfUse.TREAT), state_of([dissent, elsewhere, at_practice]))
    assert still.outcome is Outcome.DENY
    assert still.codes == ("LOCAL_DISSENT",)
    assert cleared.outcome is Outcome.PERMIT


def test_type1_is_withdrawn_only_where_it_was_registered() -> None:
    """Issue 14, rule 6 (NHS Digital type 1 guidance: the objection is recorded, and withdrawn, by the patient's
    GP practice; rec 11). The practice is taken to be the site that recorded the objection, since events carry
    no registered-practice field: a withdrawal recorded at a hospital does not lift it."""
    type1 = objection(ObjectionKind.TYPE1, at_ms=NOW_MS - 20 * DAY_MS, site=GP_PRACTICE)
    elsewhere = objection(ObjectionKind.TYPE1, ObjectionAction.WITHDRAW, at_ms=NOW_MS - 10 * DAY_MS, site=HOSPITAL)
    d = decide(
        request(researcher("CSU01"), PurposeOfUse.HQUALIMP, legal_basis=LegalBasis.S251),
        state_of([type1, elsewhere]),
    )
    assert d.outcome is Outcome.DENY
    assert d.codes == ("TYPE1_ACTIVE",)


def test_break_glass_by_a_role_not_entitled_to_it_is_denied() -> None:
    """Issue 14, rule 9: break-glass is for entitled clinical roles, a configured list (principle 4: access on
    a strict need-to-know basis; rec 1: access is audited). Anyone else is denied, not permitted with
    obligations; the list is passed in, so a deployment can name its own roles."""
    who = requester("RXA", "RECEPTIONIST", registered=False, relationship=Relationship.NONE, care_team=False)
    d = decide(request(who, PurposeOfUse.BTG), state_of([]))
    claimed = decide(request(who, PurposeOfUse.ETREAT, legal_basis=LegalBasis.BREAK_GLASS), state_of([]))
    local = decide(
        request(who, PurposeOfUse.BTG), state_of([]), DecisionPolicy(break_glass_roles=frozenset({"RECEPTIONIST"}))
    )
    assert (d.outcome, d.codes, d.obligations) == (Outcome.DENY, ("BREAK_GLASS_NOT_ENTITLED",), ())
    assert "RECEPTIONIST" in d.reasons[0]
    assert claimed.codes == ("BREAK_GLASS_NOT_ENTITLED",)
    assert local.outcome is Outcome.PERMIT_WITH_OBLIGATIONS
    assert local.legal_basis is LegalBasis.BREAK_GLASS


def test_type1_covers_gp_held_data_only() -> None:
    """Issue 14, rule 8 (NHS Digital type 1 guidance: a type 1 stops identifiable data *held by the GP
    practice* leaving it for purposes beyond direct care; rec 11). The request names who holds the data: the
    hospital's own data are not blocked by the patient's GP type 1, the practice's data are."""
    state = state_of([objection(ObjectionKind.TYPE1, site=GP_PRACTICE)])
    asked = request(researcher("CSU01"), PurposeOfUse.HQUALIMP, legal_basis=LegalBasis.S251)
    hospital = decide(replace(asked, data_holder=DataHolder(HOSPITAL, HolderKind.HOSPITAL)), state)
    practice = decide(replace(asked, data_holder=DataHolder(GP_PRACTICE, HolderKind.GP_PRACTICE)), state)
    assert hospital.outcome is Outcome.PERMIT_WITH_OBLIGATIONS
    assert hospital.legal_basis is LegalBasis.S251
    assert practice.outcome is Outcome.DENY
    assert practice.codes == ("TYPE1_ACTIVE",)


def test_local_dissent_covers_the_data_its_recorder_holds() -> None:
    """Issue 14, rules 6 and 8: dissent recorded at the practice stops the practice's data leaving it; it does
    not stop the hospital sharing its own record for direct care (design 6)."""
    state = state_of([objection(ObjectionKind.LOCAL_DISSENT, site=GP_PRACTICE)])
    asked = request(requester(CARE_HOME, "NURSE"), PurposeOfUse.TREAT)
    hospital = decide(replace(asked, data_holder=DataHolder(HOSPITAL, HolderKind.HOSPITAL)), state)
    practice = decide(replace(asked, data_holder=DataHolder(GP_PRACTICE, HolderKind.GP_PRACTICE)), state)
    assert hospital.outcome is Outcome.PERMIT
    assert practice.codes == ("LOCAL_DISSENT",)
