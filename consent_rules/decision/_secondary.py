"""Uses beyond direct care: explicit consent or a legal basis, then the minimum data set only."""

from __future__ import annotations

from consent_rules.decision._consents import apply_consents
from consent_rules.decision._draft import Draft
from consent_rules.decision._objections import (
    anonymised_outside,
    note_consent_over_objections,
    objected_since,
    objections_allow,
)
from consent_rules.decision._shielding import shield
from consent_rules.decision.outcome import Code, Decision, Obligation
from consent_rules.decision.purposes import SECONDARY_BASES
from consent_wire.codes import DataClass, LegalBasis

__all__ = ["secondary"]


def secondary(d: Draft) -> Decision:
    req = d.request
    if anonymised_outside(d):
        d.note(
            Code.ANONYMISED_OUTSIDE_OPT_OUT,
            "The data asked for are anonymised (ICO code of practice), so the patient's opt-outs do not apply; "
            "their explicit refusals still do.",
        )
    basis = req.legal_basis if req.legal_basis in SECONDARY_BASES else None
    consents = apply_consents(d, fallback_ok=basis is not None)
    explicit = [c for c in consents.explicit if not _objected_since_consent(d, c)]
    via_basis = [c for c in consents.permitted if c not in explicit]
    if via_basis and not objections_allow(d, relying_on=basis)[0]:
        for c in via_basis:
            d.withhold(c)
        via_basis = []
    if explicit:
        d.note(Code.EXPLICIT_CONSENT, f"The patient gave explicit consent for {req.purpose_code}.")
        note_consent_over_objections(d)
    if via_basis and basis is not None:
        _note_basis(d, basis)
    permitted = [c for c in consents.permitted if c in explicit or c in via_basis]
    if permitted:
        d.oblige(Obligation.MINIMUM_DATA_SET)
        d.note(
            Code.MINIMUM_DATA_SET,
            "Use beyond direct care: only the minimum data set for the purpose may be shared (principles 2 and 3).",
        )
    relied = basis if via_basis else LegalBasis.CONSENT
    return d.finish(relied, shield(d, permitted))


def _objected_since_consent(d: Draft, c: DataClass) -> bool:
    """An explicit consent older than an objection covering the request rests on a legal basis alone."""
    reg = d.consent_register(c)
    return reg is not None and objected_since(d, reg)


def _note_basis(d: Draft, basis: LegalBasis) -> None:
    texts = {
        LegalBasis.S251: (Code.S251_APPROVAL, "An s251 approval sets aside the duty of confidence."),
        LegalBasis.STATUTORY_MANDATE: (Code.STATUTORY_MANDATE, "A statutory mandate requires disclosure."),
        LegalBasis.SAFEGUARDING: (
            Code.SAFEGUARDING,
            "Disclosure is justified in the overriding public interest (safeguarding).",
        ),
    }
    code, text = texts[basis]
    d.note(code, text + d.evidence_text() + (d.gateway_text() if basis is LegalBasis.S251 else ""))
