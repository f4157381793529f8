"""Objections (rec 11, 7.12): which apply to a request, and what may override them.

The opt-out's scope follows the legal gateway and the data flow (issue 14, rule 5): an s251 use under
COPI regulation 3, or under a regulation 5 approval the deployment lists as setting the opt-out aside,
is outside the NDOP and type 2; an exemption listed on an objection holds only for the flows
(references) it names, never for every flow of that legal basis.
"""

from __future__ import annotations

from consent_rules.decision._draft import Draft
from consent_rules.decision.outcome import Code
from consent_rules.decision.purposes import NDOP_PURPOSES, SECONDARY_PURPOSES, is_local_clinical_audit
from consent_rules.decision.request import Gateway, HolderKind, Identifiability
from consent_rules.state import ConsentRegister, ObjectionRegister
from consent_wire.codes import LegalBasis, ObjectionKind

__all__ = [
    "active_objections",
    "anonymised_outside",
    "note_consent_over_objections",
    "objected_since",
    "objections_allow",
]

_OBJECTION_CODE = {
    ObjectionKind.NDOP: Code.NDOP_ACTIVE,
    ObjectionKind.TYPE1: Code.TYPE1_ACTIVE,
    ObjectionKind.TYPE2: Code.TYPE2_ACTIVE,
    ObjectionKind.LOCAL_DISSENT: Code.LOCAL_DISSENT,
}
_OBJECTION_TEXT = {
    ObjectionKind.NDOP: "the national data opt-out",
    ObjectionKind.TYPE1: "a type 1 objection (no identifiable GP data leaves the practice)",
    ObjectionKind.TYPE2: "a legacy type 2 objection",
    ObjectionKind.LOCAL_DISSENT: "local dissent from sharing outside the recording organisation",
}


_PUBLIC_INTEREST_YIELDS = frozenset({ObjectionKind.NDOP, ObjectionKind.TYPE2, ObjectionKind.LOCAL_DISSENT})


# Objections to identifiable data leaving for uses beyond direct care: anonymised data fall outside them.
_IDENTIFIABLE_ONLY = frozenset({ObjectionKind.NDOP, ObjectionKind.TYPE2, ObjectionKind.TYPE1})


def anonymised_outside(d: Draft) -> bool:
    """Whether an active objection was left aside because the data asked for are anonymised."""
    if d.request.identifiability is not Identifiability.ANONYMISED:
        return False
    return any(reg.active and kind in _IDENTIFIABLE_ONLY for (kind, _), reg in d.state.objections.items())


def _objection_applies(d: Draft, kind: ObjectionKind, site: str) -> bool:
    req = d.request
    if req.identifiability is Identifiability.ANONYMISED and kind in _IDENTIFIABLE_ONLY:
        return False
    purpose, organisation, holder = req.purpose, req.requester.organisation, req.data_holder
    secondary = purpose in SECONDARY_PURPOSES and not is_local_clinical_audit(req)  # rule 7
    if kind in (ObjectionKind.NDOP, ObjectionKind.TYPE2):
        return secondary and purpose in NDOP_PURPOSES
    if kind is ObjectionKind.TYPE1:  # GP-held data leaving the practice (rule 8)
        if holder is None:
            return secondary and organisation != site
        return secondary and holder.kind is HolderKind.GP_PRACTICE and organisation != holder.organisation
    # LOCAL_DISSENT: the recorder's data shared outside it (rules 6 and 8)
    if holder is None:
        return organisation != site
    return holder.organisation == site and organisation != site


_OPT_OUTS = frozenset({ObjectionKind.NDOP, ObjectionKind.TYPE2})


def _outside_opt_out(d: Draft, kind: ObjectionKind) -> bool:
    """An s251 flow the national opt-out does not reach: COPI regulation 3, or an approval that sets it aside."""
    req = d.request
    if kind not in _OPT_OUTS or req.legal_basis is not LegalBasis.S251:
        return False
    return req.gateway is Gateway.COPI_REG3 or req.flow_ref in d.policy.ndop_exempt_flows


def _override(d: Draft, kind: ObjectionKind, reg: ObjectionRegister, basis: LegalBasis | None) -> Code | None:
    if basis is LegalBasis.STATUTORY_MANDATE:
        return Code.STATUTORY_MANDATE_OVERRIDES_OBJECTION
    if _outside_opt_out(d, kind):  # rule 5: the gateway, not only the purpose, sets the scope
        return Code.GATEWAY_OUTSIDE_OPT_OUT
    if basis is not None and basis in reg.exemptions:
        if d.request.flow_ref and d.request.flow_ref in reg.exempt_flows:  # rule 5: per data flow
            return Code.EXEMPTION_OVERRIDES_OBJECTION
        flows = ", ".join(reg.exempt_flows) or "no flow"
        d.note(
            Code.EXEMPTION_NOT_FOR_THIS_FLOW,
            f"The objection exempts {basis.value} only for the data flows it names ({flows}); this request "
            f"names {d.request.flow_ref or 'no flow'}.",
        )
    # an evidenced public interest (rule 4) sets aside the opt-outs and local dissent, not a type 1
    if basis is LegalBasis.SAFEGUARDING and kind in _PUBLIC_INTEREST_YIELDS:
        return Code.PUBLIC_INTEREST_OVERRIDES_OBJECTION
    return None


def active_objections(d: Draft) -> list[tuple[ObjectionKind, ObjectionRegister]]:
    """The active objections that cover this request, in kind order."""
    return [
        (kind, reg)
        for (kind, _), reg in sorted(d.state.objections.items(), key=lambda kv: (kv[0][0].value, kv[0][1]))
        if reg.active and _objection_applies(d, kind, reg.site)
    ]


def objected_since(d: Draft, consent: ConsentRegister) -> bool:
    """Whether an objection covering this request was registered after ``consent`` (issue 14, rule 1).

    Explicit consent sets an objection aside only as the patient's later wish; an objection made
    after it withdraws it (NDOP operational policy 6.1, UK GDPR art 7(3)).
    """
    return any(reg.stamp > consent.stamp for _, reg in active_objections(d))


def objections_allow(d: Draft, *, relying_on: LegalBasis | None) -> tuple[bool, bool]:
    """Note every applicable objection: (no objection blocks, some objection was overridden)."""
    allowed, overridden = True, False
    for kind, reg in active_objections(d):
        what = _OBJECTION_TEXT[kind]
        override = _override(d, kind, reg, relying_on)
        if override is Code.GATEWAY_OUTSIDE_OPT_OUT:
            overridden = True
            d.note(override, f"The patient registered {what}, which does not apply to this flow.{d.gateway_text()}")
            continue
        if override is not None and relying_on is not None:
            overridden = True
            d.note(override, f"The patient registered {what}; {relying_on.value} overrides it here.{d.evidence_text()}")
            continue
        allowed = False
        extra = " An s251 approval does not set it aside." if relying_on is LegalBasis.S251 else ""
        d.note(_OBJECTION_CODE[kind], f"The patient registered {what}, which covers this use.{extra}")
    return allowed, overridden


def note_consent_over_objections(d: Draft) -> None:
    for kind, _ in active_objections(d):
        d.note(
            Code.EXPLICIT_CONSENT_OVERRIDES_OBJECTION,
            f"The patient registered {_OBJECTION_TEXT[kind]}, but their explicit consent for this "
            "specific use takes precedence for the consented data.",
        )
