"""FHIR Consent (R4 and R5) -> consent decisions and objections (pure).

Every refusal names the element and says which kind it is: :class:`FhirInvalidError` (``FHIR_INVALID``:
the resource is not valid FHIR) or :class:`FhirUnsupportedError` (``FHIR_UNSUPPORTED``: valid FHIR the
product refuses because it cannot carry its meaning). Nothing is ignored that changes what is
permitted: an element the product cannot represent is a refusal, never dropped. docs/fhir.md has the
full table.

R4 (validated with the ``fhir.resources.R4B`` models, whose Consent equals R4's):

- ``scope``: ``patient-privacy`` imports as sharing directives; ``research`` too, with the purpose
  defaulting to HRESCH (research) where a provision names none; ``treatment`` (consent to a procedure)
  and ``adr`` (advance directive) are not sharing directives: refused, FHIR_UNSUPPORTED.
- invariants: ppc-1 (``policy`` or ``policyRule``) and ppc-2..5 (a ``patient`` for every scope), FHIR_INVALID.
- ``status``: ``active`` imports; an objection (``policyRule`` in the objection-kind system) is
  REGISTER when active and WITHDRAW when inactive; every other status (``draft``, ``proposed``,
  ``rejected``, ``inactive``, ``entered-in-error``) is FHIR_UNSUPPORTED: it is not in force.
- ``provision``: required by policy (FHIR_UNSUPPORTED without one). The root's ``type`` may be absent
  (HL7's basic example): then ``policyRule`` v3-ActCode OPTIN/OPTINR = permit, OPTOUT/OPTOUTE = deny.
  Nested provisions of any depth are exceptions that inherit what they do not restate.
- in a provision: ``purpose`` (v3-ActReason), ``securityLabel`` (data classes), ``actor`` with role
  v3-ParticipationType PRCP or IRCP identifying an organisation by ODS code, ``period`` (partial dates:
  :mod:`consent_wire.fhir_dates`), ``action`` access/use/disclose (all three are sharing). ``class``,
  ``code``, ``data``, ``dataPeriod``, other actor roles and ``action`` collect/correct: FHIR_UNSUPPORTED.

R5 (``fhir.resources`` R5 models): ``decision`` is the base rule (a blanket event over ``grantee``
and ``period``); each ``provision[]`` is an exception that negates its parent's rule (R5 3.1.2, "provisions
assumed to be a negation of the previous level"); ``regulatoryBasis`` carries the objection kind
when there is one, and is otherwise context (it changes nothing that is permitted).

One resource expands to at most :data:`MAX_FHIR_EVENTS` events (purposes x classes x recipients per
provision, summed over nested provisions), counted before any is built: more is FHIR_TOO_MANY_EVENTS.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from consent_wire.codes import (
    ACT_CODE_SYSTEM,
    ACT_REASON_SYSTEM,
    ConsentDirective,
    DataClass,
    ObjectionAction,
    ObjectionKind,
    PurposeOfUse,
)
from consent_wire.errors import FhirExpansionError, FhirInvalidError, FhirUnsupportedError
from consent_wire.fhir_dates import period_bound_ms
from consent_wire.model import ANY_RECIPIENT, ConsentDecision, Objection

__all__ = [
    "CONSENT_SCOPE_SYSTEM",
    "DATA_CLASS_CODES",
    "LOCAL_DATA_CLASS_SYSTEM",
    "MAX_FHIR_EVENTS",
    "OBJECTION_KIND_SYSTEM",
    "ODS_SYSTEM",
    "PARTICIPATION_SYSTEM",
    "r4_events",
    "r5_events",
]

CONSENT_SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
PARTICIPATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
CONSENT_ACTION_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentaction"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
LOCAL_DATA_CLASS_SYSTEM = "urn:uk-nhs-consent:data-class"  # local: GENERAL, CONTACT (no HL7 code)
OBJECTION_KIND_SYSTEM = "urn:uk-nhs-consent:objection-kind"  # local: codes.ObjectionKind
# Events one Consent may expand into. A real directive is a handful; the edge agent's outbox batch is 500
# events (edge_agent.config batch_max_events), so one resource fills at most half a batch. 219 KiB of FHIR
# expanded into 99,000 events before this bound (issue 12, item 10).
MAX_FHIR_EVENTS = 256
RECIPIENT_ROLES = ("PRCP", "IRCP")  # primary information recipient, information recipient
SHARING_ACTIONS = ("access", "use", "disclose")
# Data class <-> (system, code). PATLOC is exported as v3-ActCode LOCIS (location information
# sensitivity): "PATLOC" is not a v3-ActCode code. GENERAL and CONTACT have no HL7 code.
DATA_CLASS_CODES: dict[DataClass, tuple[str, str]] = {
    **{c: (ACT_CODE_SYSTEM, c.value) for c in DataClass if c not in (DataClass.ALL, DataClass.PATLOC)},
    DataClass.PATLOC: (ACT_CODE_SYSTEM, "LOCIS"),
    DataClass.GENERAL: (LOCAL_DATA_CLASS_SYSTEM, DataClass.GENERAL.value),
    DataClass.CONTACT: (LOCAL_DATA_CLASS_SYSTEM, DataClass.CONTACT.value),
}
_CLASS_BY_CODE = {code: cls for cls, code in DATA_CLASS_CODES.items()}
_CLASS_BY_CODE[(ACT_CODE_SYSTEM, "PATLOC")] = DataClass.PATLOC  # read what earlier releases wrote
_DIRECTIVE_BY_POLICY = {"OPTIN": "permit", "OPTINR": "permit", "OPTOUT": "deny", "OPTOUTE": "deny"}
_PRIVACY_SCOPES = {"patient-privacy": PurposeOfUse.ANY, "research": PurposeOfUse.HRESCH}
_REFUSED_SCOPES = {
    "treatment": "a consent to treatment is not a sharing directive; record it in the clinical system",
    "adr": "an advance directive is not a sharing directive; record it in the clinical system",
}
_NOT_IN_FORCE = {
    "draft": "a draft is not yet in force",
    "proposed": "a proposed consent is not yet agreed",
    "rejected": "a rejected consent was never in force",
    "inactive": "an inactive consent is no longer in force (withdraw it with a new active Consent)",
    "entered-in-error": "a Consent entered in error says nothing",
    "not-done": "a consent not done says nothing",
    "unknown": "its status is unknown",
}
# (model attribute, FHIR element): fhir.resources names ``class`` ``class_fhir``
_UNSUPPORTED_PROVISION_FIELDS = (
    ("class_fhir", "class"),
    ("code", "code"),
    ("data", "data"),
    ("dataPeriod", "dataPeriod"),
    ("documentType", "documentType"),
    ("resourceType", "resourceType"),
    ("expression", "expression"),
)
R4_STATUSES = ("draft", "proposed", "active", "rejected", "inactive", "entered-in-error")
R5_STATUSES = ("draft", "active", "inactive", "not-done", "entered-in-error", "unknown")
Payload = ConsentDecision | Objection


@dataclass(frozen=True, slots=True)
class _Rule:
    """What a provision inherits from its parent."""

    purposes: tuple[PurposeOfUse, ...]
    classes: tuple[DataClass, ...] = (DataClass.ALL,)
    recipients: tuple[str, ...] = (ANY_RECIPIENT,)
    period: tuple[int | None, int | None] = (None, None)


class _Events:
    def __init__(self) -> None:
        self.out: list[Payload] = []

    def add(self, directive: ConsentDirective, rule: _Rule) -> None:
        count = len(rule.purposes) * len(rule.classes) * len(rule.recipients)
        if len(self.out) + count > MAX_FHIR_EVENTS:
            raise FhirExpansionError(
                f"Consent expands to more than {MAX_FHIR_EVENTS} events (purposes x security labels x "
                "actors, summed over provisions); split it into several Consents"
            )
        self.out.extend(
            ConsentDecision(directive, purpose, data_class, recipient, rule.period[0], rule.period[1])
            for purpose in rule.purposes
            for data_class in rule.classes
            for recipient in rule.recipients
        )


# --- R4 -------------------------------------------------------------------------------------------


def r4_events(consent: Any) -> list[Payload]:
    """The events an R4 Consent (a validated ``fhir.resources.R4B`` model) holds."""
    _no_modifier_extensions(consent, "Consent")
    if consent.policy is None and consent.policyRule is None:
        raise FhirInvalidError("Consent breaks invariant ppc-1: it needs a policy or a policyRule")
    if consent.patient is None:
        raise FhirInvalidError("Consent breaks invariants ppc-2..5: Consent.patient is required for every scope")
    _required_code(consent.status, R4_STATUSES, "Consent.status")
    if consent.provision is not None and consent.provision.type is not None:
        _required_code(consent.provision.type, ("permit", "deny"), "Consent.provision.type")
    default_purpose = _r4_scope(consent.scope)
    kinds = _codes(consent.policyRule, OBJECTION_KIND_SYSTEM)
    if kinds:
        return [_objection(kinds[0], consent.status)]
    if consent.status != "active":
        raise FhirUnsupportedError(
            f"Consent.status {consent.status!r}: {_not_in_force(consent.status)}; only active imports"
        )
    if consent.provision is None:
        raise FhirUnsupportedError("Consent.provision is missing: nothing says what is permitted or denied")
    root_type = consent.provision.type
    if root_type is None:
        policy = [c for c in _codes(consent.policyRule, ACT_CODE_SYSTEM) if c in _DIRECTIVE_BY_POLICY]
        if not policy:
            raise FhirUnsupportedError(
                "Consent.provision.type is missing and Consent.policyRule is not v3-ActCode OPTIN/OPTINR/OPTOUT/OPTOUTE"
            )
        root_type = _DIRECTIVE_BY_POLICY[policy[0]]
    events = _Events()
    _r4_provision(consent.provision, root_type, _Rule((default_purpose,)), events, "Consent.provision")
    return events.out


def _r4_scope(scope: Any) -> PurposeOfUse:
    codes = _codes(scope, CONSENT_SCOPE_SYSTEM)
    for code in codes:
        if code in _PRIVACY_SCOPES:
            return _PRIVACY_SCOPES[code]
        if code in _REFUSED_SCOPES:
            raise FhirUnsupportedError(f"Consent.scope {code!r}: {_REFUSED_SCOPES[code]}")
    raise FhirUnsupportedError(
        f"Consent.scope must be {CONSENT_SCOPE_SYSTEM} patient-privacy or research for a sharing directive"
    )


def _r4_provision(provision: Any, kind: str | None, parent: _Rule, events: _Events, where: str) -> None:
    if kind is None:
        raise FhirUnsupportedError(f"{where}.type is missing: a nested provision must say permit or deny")
    _required_code(kind, ("permit", "deny"), f"{where}.type")
    rule = _rule(provision, parent, where)
    events.add(ConsentDirective.OPTIN if kind == "permit" else ConsentDirective.OPTOUT, rule)
    for i, child in enumerate(provision.provision or ()):
        _r4_provision(child, child.type, rule, events, f"{where}.provision[{i}]")


# --- R5 -------------------------------------------------------------------------------------------


def r5_events(consent: Any) -> list[Payload]:
    """The events an R5 Consent (a validated ``fhir.resources`` R5 model) holds."""
    _no_modifier_extensions(consent, "Consent")
    _required_code(consent.status, R5_STATUSES, "Consent.status")
    if consent.decision is not None:
        _required_code(consent.decision, ("permit", "deny"), "Consent.decision")
    if consent.subject is None:
        raise FhirUnsupportedError("Consent.subject is missing: this product records consents about a patient")
    kinds = []
    for concept in consent.regulatoryBasis or ():
        kinds.extend(_codes(concept, OBJECTION_KIND_SYSTEM))
    if kinds:
        return [_objection(kinds[0], consent.status)]
    if consent.status != "active":
        raise FhirUnsupportedError(
            f"Consent.status {consent.status!r}: {_not_in_force(consent.status)}; only active imports"
        )
    if consent.decision not in ("permit", "deny"):
        raise FhirUnsupportedError("Consent.decision is missing: R5 needs the base decision (permit or deny)")
    recipients = _recipients(consent.grantee or (), "Consent.grantee", roles=False)
    period = _period(consent.period, "Consent.period") if consent.period is not None else (None, None)
    root = _Rule((PurposeOfUse.ANY,), recipients=recipients or (ANY_RECIPIENT,), period=period)
    events = _Events()
    events.add(_directive(consent.decision), root)
    for i, provision in enumerate(consent.provision or ()):
        _r5_provision(provision, _flip(consent.decision), root, events, f"Consent.provision[{i}]")
    return events.out


def _r5_provision(provision: Any, kind: str, parent: _Rule, events: _Events, where: str) -> None:
    rule = _rule(provision, parent, where)
    events.add(_directive(kind), rule)
    for i, child in enumerate(provision.provision or ()):
        _r5_provision(child, _flip(kind), rule, events, f"{where}.provision[{i}]")


def _flip(kind: str) -> str:
    return "deny" if kind == "permit" else "permit"


def _directive(kind: str) -> ConsentDirective:
    return ConsentDirective.OPTIN if kind == "permit" else ConsentDirective.OPTOUT


# --- shared ---------------------------------------------------------------------------------------


def _rule(provision: Any, parent: _Rule, where: str) -> _Rule:
    _no_modifier_extensions(provision, where)
    for attribute, name in _UNSUPPORTED_PROVISION_FIELDS:
        if getattr(provision, attribute, None):
            raise FhirUnsupportedError(
                f"{where}.{name}: rules about particular resources, types or codes cannot be represented; "
                "the product's rules are by purpose, security label, recipient and period"
            )
    _actions(provision.action, where)
    purposes = _purposes(provision.purpose, where)
    classes = _classes(provision.securityLabel, where)
    recipients = _recipients(provision.actor or (), f"{where}.actor", roles=True)
    period = _period(provision.period, f"{where}.period") if provision.period is not None else parent.period
    return _Rule(
        purposes or parent.purposes,
        classes or parent.classes,
        recipients or parent.recipients,
        period,
    )


def _actions(concepts: Any, where: str) -> None:
    for i, concept in enumerate(concepts or ()):
        for coding in concept.coding or ():
            if coding.system != CONSENT_ACTION_SYSTEM or coding.code not in SHARING_ACTIONS:
                raise FhirUnsupportedError(
                    f"{where}.action[{i}] {coding.system}|{coding.code}: only consentaction access, use and "
                    "disclose (sharing) can be represented"
                )
        if not concept.coding:
            raise FhirUnsupportedError(f"{where}.action[{i}] has no coding: its meaning cannot be checked")


def _purposes(codings: Any, where: str) -> tuple[PurposeOfUse, ...]:
    out = []
    for i, c in enumerate(codings or ()):
        if c.system != ACT_REASON_SYSTEM or c.code not in PurposeOfUse.__members__ or c.code == "ANY":
            raise FhirUnsupportedError(f"{where}.purpose[{i}] {c.system}|{c.code} is not a supported v3-ActReason code")
        out.append(PurposeOfUse(c.code))
    return tuple(out)


def _classes(codings: Any, where: str) -> tuple[DataClass, ...]:
    out = []
    for i, c in enumerate(codings or ()):
        data_class = _CLASS_BY_CODE.get((str(c.system), str(c.code)))
        if data_class is None:
            raise FhirUnsupportedError(f"{where}.securityLabel[{i}] {c.system}|{c.code} is not a supported data class")
        out.append(data_class)
    return tuple(out)


def _recipients(actors: Iterable[Any], where: str, *, roles: bool) -> tuple[str, ...]:
    out = []
    for i, actor in enumerate(actors):
        reference = actor.reference if roles else actor
        if roles:
            role_codes = _codes(actor.role, PARTICIPATION_SYSTEM)
            if not any(code in RECIPIENT_ROLES for code in role_codes):
                raise FhirUnsupportedError(
                    f"{where}[{i}].role must be v3-ParticipationType PRCP or IRCP (a recipient of the information)"
                )
        identifier = reference.identifier if reference is not None else None
        if identifier is None or identifier.system != ODS_SYSTEM or not identifier.value:
            raise FhirUnsupportedError(
                f"{where}[{i}] must identify an organisation by identifier ({ODS_SYSTEM}); a literal reference cannot "
                "be resolved here"
            )
        out.append(str(identifier.value))
    return tuple(out)


def _period(period: Any, where: str) -> tuple[int | None, int | None]:
    start = period_bound_ms(period.start, end=False, where=f"{where}.start")
    end = period_bound_ms(period.end, end=True, where=f"{where}.end")
    if start is not None and end is not None and end <= start:
        raise FhirInvalidError(f"{where}.end is not after its start (FHIR per-1)")
    return start, end


def _objection(kind: str, status: str) -> Objection:
    if kind not in ObjectionKind.__members__:
        raise FhirUnsupportedError(f"objection kind {kind!r} is not one of {sorted(ObjectionKind.__members__)}")
    actions = {"active": ObjectionAction.REGISTER, "inactive": ObjectionAction.WITHDRAW}
    if status not in actions:
        raise FhirUnsupportedError(f"objection Consent.status must be active or inactive, got {status!r}")
    return Objection(ObjectionKind(kind), actions[status])


def _required_code(code: str, allowed: tuple[str, ...], where: str) -> None:
    """fhir.resources checks a code's syntax, not its required binding: this does."""
    if code not in allowed:
        raise FhirInvalidError(f"{where} {str(code)[:40]!r} is not one of {', '.join(allowed)} (required binding)")


def _not_in_force(status: str) -> FhirUnsupportedError:
    why = _NOT_IN_FORCE.get(status, "it is not in force")
    return FhirUnsupportedError(f"Consent.status {status!r}: {why}; only active imports")


def _no_modifier_extensions(element: Any, where: str) -> None:
    if getattr(element, "modifierExtension", None):
        raise FhirUnsupportedError(f"{where}.modifierExtension changes the meaning in a way this product cannot know")


def _codes(concept: Any, system: str) -> list[str]:
    if concept is None:
        return []
    return [str(c.code) for c in concept.coding or () if c.system == system and c.code]
