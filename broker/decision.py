"""The sharing decision: may this requester have these data, for this purpose, now? (pure).

Rules, from the revised Caldicott principles and the Government response to the
Caldicott review (``../shared/seed``):

- Direct care (TREAT, ETREAT, COC) within a legitimate relationship proceeds on
  implied consent (recs 2-4, principle 7) unless the patient opted out for that
  scope (an OPTOUT register) or registered local dissent. No legitimate
  relationship: DENY (principle 4, need to know).
- Unregistered staff in the care team may share for direct care (rec 3) under
  "robust safeguards": the minimum data set only (principle 3).
- Break-glass (purpose BTG, basis BREAK_GLASS or relationship BREAK_GLASS) is
  permitted, recorded and alerted to the privacy officer.
- Uses beyond direct care (HRESCH, PUBHLTH, HOPERAT, HQUALIMP, HPAYMT) need an
  explicit OPTIN covering the scope or a legal basis (S251, STATUTORY_MANDATE,
  SAFEGUARDING), and then only the minimum data set (principles 2-3, 6).
- Objections (rec 11, 7.12) stop uses that rest on a legal basis: NDOP and legacy
  type 2 stop research and planning (HRESCH, HOPERAT, HQUALIMP, HPAYMT), S251
  included; type 1 stops identifiable GP data leaving the practice for any
  secondary use; local dissent stops sharing outside the recording site. An
  objection gives way to a statutory mandate, to a basis listed as an exemption
  on it, and (NDOP/type 2 only) to an overriding public interest (SAFEGUARDING).
  Explicit consent for the very scope is the patient's own later, specific
  choice and is not blocked by a general objection (NDOP operational policy:
  the opt-out does not apply where the patient consented).
- An OPTOUT register withholds its data class; a statutory mandate overrides it.
- Shielding (rec 10.6) adds redaction obligations for the hidden fields and
  withholds PATLOC / CONTACT when they are requested and hidden.

Every decision names its reasons (plain English), stable codes, the legal basis
relied on and the state version used. Nothing here reads a clock or does I/O.

Errors::

    ValidationError (consent_wire.errors)
    +-- DecisionRequestError     BAD_DECISION_REQUEST
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from broker.state import ANY_RECIPIENT, PatientState, effective_consent, replay
from consent_wire.codes import (
    ConsentDirective,
    DataClass,
    HiddenField,
    LegalBasis,
    ObjectionKind,
    PurposeOfUse,
    Relationship,
)
from consent_wire.errors import ValidationError
from consent_wire.model import Event

__all__ = [
    "DIRECT_CARE_PURPOSES",
    "NDOP_PURPOSES",
    "SECONDARY_BASES",
    "SECONDARY_PURPOSES",
    "Code",
    "Decision",
    "DecisionRequest",
    "DecisionRequestError",
    "Obligation",
    "Outcome",
    "Requester",
    "decide",
    "decide_as_at",
]

# Direct care purposes (HL7 ActReason; Caldicott review ch. 3 "direct care").
DIRECT_CARE_PURPOSES = frozenset({PurposeOfUse.TREAT, PurposeOfUse.ETREAT, PurposeOfUse.COC})
# Uses beyond direct care (rec 7: "beyond their own care and treatment").
SECONDARY_PURPOSES = frozenset(
    {
        PurposeOfUse.HRESCH,
        PurposeOfUse.PUBHLTH,
        PurposeOfUse.HOPERAT,
        PurposeOfUse.HQUALIMP,
        PurposeOfUse.HPAYMT,
    }
)
# National data opt-out covers "research and planning" (NHS Digital NDOP operational policy).
NDOP_PURPOSES = frozenset({PurposeOfUse.HRESCH, PurposeOfUse.HOPERAT, PurposeOfUse.HQUALIMP, PurposeOfUse.HPAYMT})
# Lawful bases for secondary use without consent (principle 6; rec 7.12).
SECONDARY_BASES = frozenset({LegalBasis.S251, LegalBasis.STATUTORY_MANDATE, LegalBasis.SAFEGUARDING})

_HIDDEN_CLASS = {HiddenField.LOCATION: DataClass.PATLOC, HiddenField.CONTACT: DataClass.CONTACT}


class Outcome(StrEnum):
    PERMIT = "PERMIT"
    DENY = "DENY"
    PERMIT_WITH_OBLIGATIONS = "PERMIT_WITH_OBLIGATIONS"


class Obligation(StrEnum):
    REDACT_LOCATION = "REDACT_LOCATION"
    REDACT_CONTACT = "REDACT_CONTACT"
    REDACT_IDENTITY = "REDACT_IDENTITY"
    MINIMUM_DATA_SET = "MINIMUM_DATA_SET"
    ALERT_PRIVACY_OFFICER = "ALERT_PRIVACY_OFFICER"
    RECORD_ACCESS = "RECORD_ACCESS"
    WITHHOLD_DATA_CLASSES = "WITHHOLD_DATA_CLASSES"  # drop Decision.withheld from the response


_REDACT = {
    HiddenField.LOCATION: Obligation.REDACT_LOCATION,
    HiddenField.CONTACT: Obligation.REDACT_CONTACT,
    HiddenField.IDENTITY: Obligation.REDACT_IDENTITY,
}


class Code(StrEnum):
    """Stable machine codes, one per reason (documented in docs/reason-codes.md)."""

    DIRECT_CARE_IMPLIED_CONSENT = "DIRECT_CARE_IMPLIED_CONSENT"
    NO_LEGITIMATE_RELATIONSHIP = "NO_LEGITIMATE_RELATIONSHIP"
    UNREGISTERED_IN_CARE_TEAM = "UNREGISTERED_IN_CARE_TEAM"
    UNREGISTERED_NOT_IN_CARE_TEAM = "UNREGISTERED_NOT_IN_CARE_TEAM"
    BREAK_GLASS = "BREAK_GLASS"
    EXPLICIT_CONSENT = "EXPLICIT_CONSENT"
    CONSENT_WITHDRAWN = "CONSENT_WITHDRAWN"
    CONSENT_EXPIRED = "CONSENT_EXPIRED"
    DATA_CLASS_EXCLUDED = "DATA_CLASS_EXCLUDED"
    NO_CONSENT_OR_LEGAL_BASIS = "NO_CONSENT_OR_LEGAL_BASIS"
    S251_APPROVAL = "S251_APPROVAL"
    STATUTORY_MANDATE = "STATUTORY_MANDATE"
    SAFEGUARDING = "SAFEGUARDING"
    STATUTORY_MANDATE_OVERRIDES_OBJECTION = "STATUTORY_MANDATE_OVERRIDES_OBJECTION"
    EXEMPTION_OVERRIDES_OBJECTION = "EXEMPTION_OVERRIDES_OBJECTION"
    PUBLIC_INTEREST_OVERRIDES_OBJECTION = "PUBLIC_INTEREST_OVERRIDES_OBJECTION"
    EXPLICIT_CONSENT_OVERRIDES_OBJECTION = "EXPLICIT_CONSENT_OVERRIDES_OBJECTION"
    NDOP_ACTIVE = "NDOP_ACTIVE"
    TYPE1_ACTIVE = "TYPE1_ACTIVE"
    TYPE2_ACTIVE = "TYPE2_ACTIVE"
    LOCAL_DISSENT = "LOCAL_DISSENT"
    SHIELDED = "SHIELDED"
    MINIMUM_DATA_SET = "MINIMUM_DATA_SET"


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


class DecisionRequestError(ValidationError):
    """A request that cannot be decided (wrong patient state, no data classes, purpose ANY)."""

    reason = "BAD_DECISION_REQUEST"


@dataclass(frozen=True, slots=True)
class Requester:
    organisation: str  # ODS code; also the recipient matched against consent scopes
    role: str
    registered: bool  # registered / regulated professional
    relationship: Relationship
    care_team: bool  # member of this patient's care team


@dataclass(frozen=True, slots=True)
class DecisionRequest:
    requester: Requester
    purpose: PurposeOfUse
    patient_key: str
    data_classes: tuple[DataClass, ...]
    legal_basis: LegalBasis | None
    at_ms: int


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    obligations: tuple[Obligation, ...]
    reasons: tuple[str, ...]  # plain English, parallel to ``codes``
    legal_basis: LegalBasis | None  # None when denied
    codes: tuple[str, ...]
    state_version: int
    permitted: tuple[DataClass, ...] = ()
    withheld: tuple[DataClass, ...] = ()


@dataclass(slots=True)
class _Draft:
    """Mutable scratchpad for one decision; never leaves this module."""

    request: DecisionRequest
    state: PatientState
    codes: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    obligations: list[Obligation] = field(default_factory=list)
    withheld: list[DataClass] = field(default_factory=list)

    def note(self, code: Code, text: str) -> None:
        self.codes.append(code.value)
        self.reasons.append(text)

    def oblige(self, obligation: Obligation) -> None:
        if obligation not in self.obligations:
            self.obligations.append(obligation)

    def withhold(self, data_class: DataClass) -> None:
        if data_class not in self.withheld:
            self.withheld.append(data_class)

    def consent(self, data_class: DataClass) -> ConsentDirective | None:
        req = self.request
        reg = effective_consent(self.state, req.purpose, data_class, req.requester.organisation, req.at_ms)
        return None if reg is None else reg.directive

    def deny(self) -> Decision:
        return self.finish(None, [])

    def finish(self, basis: LegalBasis | None, permitted: list[DataClass]) -> Decision:
        obligations: tuple[Obligation, ...] = ()
        if not permitted:
            outcome, basis = Outcome.DENY, None
            self.withheld = list(dict.fromkeys([*self.request.data_classes, *self.withheld]))
        else:
            if self.withheld:
                self.oblige(Obligation.WITHHOLD_DATA_CLASSES)
            obligations = tuple(self.obligations)
            outcome = Outcome.PERMIT_WITH_OBLIGATIONS if obligations else Outcome.PERMIT
        return Decision(
            outcome,
            obligations,
            tuple(self.reasons),
            basis,
            tuple(self.codes),
            self.state.version,
            tuple(permitted),
            tuple(self.withheld),
        )


def decide(request: DecisionRequest, state: PatientState) -> Decision:
    """Decide ``request`` against ``state`` (pure; see the module docstring for the rules)."""
    _validate(request, state)
    draft = _Draft(request, state)
    if _is_break_glass(request):
        return _break_glass(draft)
    if request.purpose in DIRECT_CARE_PURPOSES:
        return _direct_care(draft)
    return _secondary(draft)


def decide_as_at(request: DecisionRequest, events: Iterable[Event], as_at_hlc: int) -> Decision:
    """Re-evaluate ``request`` against the state as it stood at ``as_at_hlc`` (events with hlc <= it)."""
    return decide(request, replay(request.patient_key, events, as_at_hlc=as_at_hlc))


def _validate(request: DecisionRequest, state: PatientState) -> None:
    if request.patient_key != state.patient_key:
        raise DecisionRequestError("the state passed is for another patient than the request")
    if not request.data_classes:
        raise DecisionRequestError("no data classes requested; ask for ALL or name the classes")
    if request.purpose is PurposeOfUse.ANY:
        raise DecisionRequestError("purpose ANY is a consent-scope wildcard; name the purpose of use")


def _is_break_glass(request: DecisionRequest) -> bool:
    """BTG, or a break-glass basis / relationship for direct care; never for research or planning."""
    if request.purpose is PurposeOfUse.BTG:
        return True
    claimed = (
        request.legal_basis is LegalBasis.BREAK_GLASS or request.requester.relationship is Relationship.BREAK_GLASS
    )
    return claimed and request.purpose in DIRECT_CARE_PURPOSES


def _requested(request: DecisionRequest) -> list[DataClass]:
    return list(dict.fromkeys(request.data_classes))


def _break_glass(d: _Draft) -> Decision:
    d.note(
        Code.BREAK_GLASS,
        "Break-glass access: permitted for an emergency; the access is recorded and the "
        "privacy officer is alerted for review.",
    )
    d.oblige(Obligation.ALERT_PRIVACY_OFFICER)
    d.oblige(Obligation.RECORD_ACCESS)
    if not d.request.requester.registered:
        d.oblige(Obligation.MINIMUM_DATA_SET)
    return d.finish(LegalBasis.BREAK_GLASS, _shield(d, _requested(d.request)))


def _direct_care(d: _Draft) -> Decision:
    req, who = d.request, d.request.requester
    if who.relationship is not Relationship.LEGITIMATE and not who.care_team:
        d.note(
            Code.NO_LEGITIMATE_RELATIONSHIP,
            f"{who.organisation} has no legitimate care relationship with the patient, so implied "
            "consent for direct care does not apply (principle 4: strict need to know).",
        )
        return d.deny()
    if not who.registered and not _unregistered_ok(d):
        return d.deny()
    allowed, overridden = _objections_allow(d, relying_on=req.legal_basis)
    if not allowed:
        return d.deny()
    consents = _apply_consents(d, fallback_ok=True)
    permitted = consents.permitted
    if overridden or consents.overridden:
        basis = LegalBasis.STATUTORY_MANDATE if req.legal_basis is None else req.legal_basis
    elif permitted and len(consents.explicit) == len(permitted):
        basis = LegalBasis.CONSENT
        d.note(Code.EXPLICIT_CONSENT, "The patient gave explicit consent covering this sharing.")
    else:
        basis = LegalBasis.IMPLIED_CONSENT_DIRECT_CARE
        if permitted:
            d.note(
                Code.DIRECT_CARE_IMPLIED_CONSENT,
                f"Direct care ({req.purpose.value}) within a legitimate relationship proceeds on "
                "implied consent (recommendations 2-4, principle 7).",
            )
    return d.finish(basis, _shield(d, permitted))


def _unregistered_ok(d: _Draft) -> bool:
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


def _secondary(d: _Draft) -> Decision:
    req = d.request
    basis = req.legal_basis if req.legal_basis in SECONDARY_BASES else None
    consents = _apply_consents(d, fallback_ok=basis is not None)
    explicit = consents.explicit
    via_basis = [c for c in consents.permitted if c not in explicit]
    if via_basis and not _objections_allow(d, relying_on=basis)[0]:
        for c in via_basis:
            d.withhold(c)
        via_basis = []
    if explicit:
        d.note(Code.EXPLICIT_CONSENT, f"The patient gave explicit consent for {req.purpose.value}.")
        _note_consent_over_objections(d)
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
    return d.finish(relied, _shield(d, permitted))


def _note_basis(d: _Draft, basis: LegalBasis) -> None:
    texts = {
        LegalBasis.S251: (Code.S251_APPROVAL, "An s251 approval sets aside the duty of confidence."),
        LegalBasis.STATUTORY_MANDATE: (Code.STATUTORY_MANDATE, "A statutory mandate requires disclosure."),
        LegalBasis.SAFEGUARDING: (
            Code.SAFEGUARDING,
            "Disclosure is justified in the overriding public interest (safeguarding).",
        ),
    }
    code, text = texts[basis]
    d.note(code, text)


@dataclass(frozen=True, slots=True)
class _Consents:
    permitted: list[DataClass]  # classes that may proceed so far
    explicit: list[DataClass]  # of those, the ones an explicit OPTIN covers
    overridden: bool  # a statutory mandate overrode an opt-out


def _apply_consents(d: _Draft, *, fallback_ok: bool) -> _Consents:
    """Apply the consent registers to each requested class.

    ``fallback_ok``: whether a class with no register may proceed (implied consent or a legal basis).
    """
    req = d.request
    mandate = req.legal_basis is LegalBasis.STATUTORY_MANDATE
    requested = _requested(req)
    permitted: list[DataClass] = []
    explicit: list[DataClass] = []
    for c in requested:
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
            _withhold_specific_optouts(d, requested)
    overridden = mandate and any(d.consent(c) is ConsentDirective.OPTOUT for c in requested)
    _note_optouts(d, permitted, overridden)
    return _Consents(permitted, explicit, overridden)


def _withhold_specific_optouts(d: _Draft, requested: list[DataClass]) -> None:
    for c in DataClass:
        if c is not DataClass.ALL and c not in requested and d.consent(c) is ConsentDirective.OPTOUT:
            d.withhold(c)


def _note_optouts(d: _Draft, permitted: list[DataClass], overridden: bool) -> None:
    purpose = d.request.purpose.value
    opted_out = [c for c in d.withheld if d.consent(c) is ConsentDirective.OPTOUT]
    if overridden:
        d.note(
            Code.STATUTORY_MANDATE_OVERRIDES_OBJECTION,
            f"The patient opted out of {purpose} sharing, but a statutory mandate requires disclosure; "
            "the patient must be told the legal basis (recommendation 7).",
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


def _note_missing_consent(d: _Draft, c: DataClass) -> None:
    if Code.NO_CONSENT_OR_LEGAL_BASIS.value in d.codes or Code.CONSENT_EXPIRED.value in d.codes:
        return
    if _expired_optin(d, c):
        d.note(
            Code.CONSENT_EXPIRED,
            f"The patient's consent for {d.request.purpose.value} was time-limited and has expired.",
        )
    else:
        d.note(
            Code.NO_CONSENT_OR_LEGAL_BASIS,
            f"{d.request.purpose.value} is a use beyond direct care: it needs the patient's explicit "
            "consent or a legal basis (s251, statutory mandate, safeguarding), and neither is present.",
        )


def _expired_optin(d: _Draft, c: DataClass) -> bool:
    req = d.request
    for (purpose, data_class, recipient), reg in d.state.consents.items():
        if (
            reg.directive is ConsentDirective.OPTIN
            and purpose in (req.purpose, PurposeOfUse.ANY)
            and data_class in (c, DataClass.ALL)
            and recipient in (req.requester.organisation, ANY_RECIPIENT)
            and reg.period_end_ms is not None
            and reg.period_end_ms <= req.at_ms
        ):
            return True
    return False


def _objection_applies(d: _Draft, kind: ObjectionKind, site: str) -> bool:
    purpose, organisation = d.request.purpose, d.request.requester.organisation
    if kind in (ObjectionKind.NDOP, ObjectionKind.TYPE2):
        return purpose in NDOP_PURPOSES
    if kind is ObjectionKind.TYPE1:
        return purpose in SECONDARY_PURPOSES and organisation != site
    return organisation != site  # LOCAL_DISSENT: sharing outside the recording organisation


def _override(kind: ObjectionKind, exemptions: tuple[LegalBasis, ...], basis: LegalBasis | None) -> Code | None:
    if basis is LegalBasis.STATUTORY_MANDATE:
        return Code.STATUTORY_MANDATE_OVERRIDES_OBJECTION
    if basis is not None and basis in exemptions:
        return Code.EXEMPTION_OVERRIDES_OBJECTION
    if basis is LegalBasis.SAFEGUARDING and kind in (ObjectionKind.NDOP, ObjectionKind.TYPE2):
        return Code.PUBLIC_INTEREST_OVERRIDES_OBJECTION
    return None


def _active_objections(d: _Draft) -> list[tuple[ObjectionKind, tuple[LegalBasis, ...]]]:
    return [
        (kind, reg.exemptions)
        for kind, reg in sorted(d.state.objections.items(), key=lambda kv: kv[0].value)
        if reg.active and _objection_applies(d, kind, reg.site)
    ]


def _objections_allow(d: _Draft, *, relying_on: LegalBasis | None) -> tuple[bool, bool]:
    """Note every applicable objection: (no objection blocks, some objection was overridden)."""
    allowed, overridden = True, False
    for kind, exemptions in _active_objections(d):
        what = _OBJECTION_TEXT[kind]
        override = _override(kind, exemptions, relying_on)
        if override is not None and relying_on is not None:
            overridden = True
            d.note(override, f"The patient registered {what}; {relying_on.value} overrides it here.")
            continue
        allowed = False
        extra = " An s251 approval does not set it aside." if relying_on is LegalBasis.S251 else ""
        d.note(_OBJECTION_CODE[kind], f"The patient registered {what}, which covers this use.{extra}")
    return allowed, overridden


def _note_consent_over_objections(d: _Draft) -> None:
    for kind, _ in _active_objections(d):
        d.note(
            Code.EXPLICIT_CONSENT_OVERRIDES_OBJECTION,
            f"The patient registered {_OBJECTION_TEXT[kind]}, but their explicit consent for this "
            "specific use takes precedence for the consented data.",
        )


def _shield(d: _Draft, permitted: list[DataClass]) -> list[DataClass]:
    shielding = d.state.shielding
    if not permitted or shielding is None or not shielding.active:
        return permitted
    hidden = [h.value.lower() for h in shielding.hides]
    d.note(
        Code.SHIELDED,
        f"The record is shielded (recommendation 10.6): the patient's {', '.join(hidden)} must be "
        "redacted from anything shared.",
    )
    for h in shielding.hides:
        d.oblige(_REDACT[h])
    blocked = {_HIDDEN_CLASS[h] for h in shielding.hides if h in _HIDDEN_CLASS}
    for c in permitted:
        if c in blocked:
            d.withhold(c)
    return [c for c in permitted if c not in blocked]
