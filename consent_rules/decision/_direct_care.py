"""Direct care (TREAT, ETREAT, COC) and break-glass access."""

from __future__ import annotations

from consent_rules.decision._consents import apply_consents
from consent_rules.decision._draft import Draft, requested
from consent_rules.decision._objections import objections_allow
from consent_rules.decision._shielding import shield
from consent_rules.decision.outcome import Code, Decision, Obligation
from consent_rules.decision.purposes import is_local_clinical_audit
from consent_wire.codes import LegalBasis, Relationship

__all__ = ["break_glass", "direct_care"]


def break_glass(d: Draft) -> Decision:
    role = d.request.requester.role
    if role not in d.policy.break_glass_roles:
        d.note(
            Code.BREAK_GLASS_NOT_ENTITLED,
            f"Break-glass is for entitled clinical roles only and {role!r} is not one of them; ask a "
            "clinician in the care team, or have the role added to the configured break-glass roles.",
        )
        return d.deny()
    d.note(
        Code.BREAK_GLASS,
        "Break-glass access: permitted for an emergency; the access is recorded and the "
        "privacy officer is alerted for review.",
    )
    d.oblige(Obligation.ALERT_PRIVACY_OFFICER)
    d.oblige(Obligation.RECORD_ACCESS)
    if not d.request.requester.registered:
        d.oblige(Obligation.MINIMUM_DATA_SET)
    return d.finish(LegalBasis.BREAK_GLASS, shield(d, requested(d.request)))


def direct_care(d: Draft) -> Decision:
    req, who = d.request, d.request.requester
    if is_local_clinical_audit(req):
        d.note(
            Code.LOCAL_CLINICAL_AUDIT,
            "Clinical audit by the patient's care team is direct care (Government response 3.2): the "
            "national data opt-out and a type 1 objection do not apply to it.",
        )
    safeguarding = req.legal_basis is LegalBasis.SAFEGUARDING  # evidenced, or dropped by decide (rule 4)
    outsider = who.relationship is not Relationship.LEGITIMATE and not who.care_team
    if outsider and safeguarding:
        d.note(
            Code.SAFEGUARDING_OVERRIDES_RELATIONSHIP,
            f"{who.organisation} has no care relationship with the patient, but an approved safeguarding "
            f"disclosure is in the overriding public interest: minimum data only.{d.evidence_text()}",
        )
        d.oblige(Obligation.MINIMUM_DATA_SET)
    elif outsider:
        d.note(
            Code.NO_LEGITIMATE_RELATIONSHIP,
            f"{who.organisation} has no legitimate care relationship with the patient, so implied "
            "consent for direct care does not apply (principle 4: strict need to know).",
        )
        return d.deny()
    if not who.registered and not _unregistered_ok(d):
        return d.deny()
    allowed, overridden = objections_allow(d, relying_on=req.legal_basis)
    if not allowed:
        return d.deny()
    consents = apply_consents(d, fallback_ok=True)
    permitted = consents.permitted
    if overridden or consents.overridden or (outsider and safeguarding):
        basis = LegalBasis.STATUTORY_MANDATE if req.legal_basis is None else req.legal_basis
    elif permitted and len(consents.explicit) == len(permitted):
        basis = LegalBasis.CONSENT
        d.note(Code.EXPLICIT_CONSENT, "The patient gave explicit consent covering this sharing.")
    else:
        basis = LegalBasis.IMPLIED_CONSENT_DIRECT_CARE
        if permitted:
            d.note(
                Code.DIRECT_CARE_IMPLIED_CONSENT,
                f"Direct care ({req.purpose_code}) within a legitimate relationship proceeds on "
                "implied consent (recommendations 2-4, principle 7).",
            )
    return d.finish(basis, shield(d, permitted))


def _unregistered_ok(d: Draft) -> bool:
    who = d.request.requester
    if not who.care_team:
        d.note(
            Code.UNREGISTERED_NOT_IN_CARE_TEAM,
            f"The requester ({who.role}) is not a registered professional and not in the patient's care team.",
        )
        return False
    d.note(
        Code.UNREGISTERED_IN_CARE_TEAM,
        f"The requester ({who.role}) is an unregistered member of the care team: sharing for direct "
        "care is allowed with the minimum data set only (recommendation 3).",
    )
    d.oblige(Obligation.MINIMUM_DATA_SET)
    return True
