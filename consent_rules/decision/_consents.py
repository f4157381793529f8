"""Consent registers applied to each requested data class: explicit OPTIN, OPTOUT, expiry."""

from __future__ import annotations

from dataclasses import dataclass

from consent_rules.decision._draft import Draft, requested
from consent_rules.decision.outcome import Code
from consent_rules.hierarchy import is_a
from consent_rules.state import ANY_RECIPIENT
from consent_wire.codes import ConsentDirective, DataClass, LegalBasis

__all__ = ["Consents", "apply_consents"]


@dataclass(frozen=True, slots=True)
class Consents:
    permitted: list[DataClass]  # classes that may proceed so far
    explicit: list[DataClass]  # of those, the ones an explicit OPTIN covers
    overridden: bool  # a statutory mandate overrode an opt-out


def apply_consents(d: Draft, *, fallback_ok: bool) -> Consents:
    """Apply the consent registers to each requested class.

    ``fallback_ok``: whether a class with no register may proceed (implied consent or a legal basis).
    """
    req = d.request
    mandate = req.legal_basis is LegalBasis.STATUTORY_MANDATE
    classes = requested(req)
    permitted: list[DataClass] = []
    explicit: list[DataClass] = []
    for c in classes:
        directive = d.consent(c)
        if directive is ConsentDirective.OPTOUT and not mandate:
            d.withhold(c)
        elif directive is ConsentDirective.OPTIN:
            permitted.append(c)
            explicit.append(c)
        elif fallback_ok:
            permitted.append(c)
        else:
            d.withhold(c)
            _note_missing_consent(d, c)
        if c is DataClass.ALL and c in permitted and not mandate:
            _withhold_specific_optouts(d, classes)
    overridden = mandate and any(d.consent(c) is ConsentDirective.OPTOUT for c in classes)
    _note_optouts(d, permitted, overridden)
    return Consents(permitted, explicit, overridden)


def _withhold_specific_optouts(d: Draft, classes: list[DataClass]) -> None:
    for c in DataClass:
        if c is not DataClass.ALL and c not in classes and d.consent(c) is ConsentDirective.OPTOUT:
            d.withhold(c)


def _note_optouts(d: Draft, permitted: list[DataClass], overridden: bool) -> None:
    purpose = d.request.purpose.value
    opted_out = [c for c in d.withheld if d.consent(c) is ConsentDirective.OPTOUT]
    if overridden:
        d.note(
            Code.STATUTORY_MANDATE_OVERRIDES_OBJECTION,
            f"The patient opted out of {purpose} sharing, but a statutory mandate requires disclosure; "
            "the patient must be told the legal basis (recommendation 7)." + d.evidence_text(),
        )
    elif opted_out and permitted:
        names = ", ".join(c.value for c in opted_out)
        d.note(
            Code.DATA_CLASS_EXCLUDED,
            f"The patient opted out of sharing {names} for {purpose}; that data is withheld and the "
            "rest may be shared.",
        )
    elif opted_out:
        d.note(
            Code.CONSENT_WITHDRAWN,
            f"The patient has refused or withdrawn consent to share this data for {purpose}.",
        )


def _note_missing_consent(d: Draft, c: DataClass) -> None:
    if Code.NO_CONSENT_OR_LEGAL_BASIS.value in d.codes or Code.CONSENT_EXPIRED.value in d.codes:
        return
    if _expired_optin(d, c):
        d.note(
            Code.CONSENT_EXPIRED,
            f"The patient's consent for {d.request.purpose_code} was time-limited and has expired.",
        )
    else:
        d.note(
            Code.NO_CONSENT_OR_LEGAL_BASIS,
            f"{d.request.purpose_code} is a use beyond direct care: it needs the patient's explicit "
            "consent or a legal basis (s251, statutory mandate, safeguarding), and neither is present.",
        )


def _expired_optin(d: Draft, c: DataClass) -> bool:
    req = d.request
    for (purpose, data_class, recipient), reg in d.state.consents.items():
        if (
            reg.directive is ConsentDirective.OPTIN
            and is_a(req.purpose, purpose)
            and data_class in (c, DataClass.ALL)
            and recipient in (req.requester.organisation, ANY_RECIPIENT)
            and reg.period_end_ms is not None
            and reg.period_end_ms <= req.at_ms
        ):
            return True
    return False
