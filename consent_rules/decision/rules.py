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
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from consent_rules.decision._direct_care import break_glass, direct_care
from consent_rules.decision._draft import Draft
from consent_rules.decision._secondary import secondary
from consent_rules.decision.outcome import Code, Decision
from consent_rules.decision.policy import DEFAULT_POLICY, DecisionPolicy
from consent_rules.decision.purposes import DIRECT_CARE_PURPOSES, is_direct_care
from consent_rules.decision.request import DecisionRequest, DecisionRequestError
from consent_rules.state import PatientState, replay
from consent_wire.codes import LegalBasis, PurposeOfUse, Relationship
from consent_wire.model import Event

__all__ = ["decide", "decide_as_at"]


def decide(request: DecisionRequest, state: PatientState, policy: DecisionPolicy = DEFAULT_POLICY) -> Decision:
    """Decide ``request`` against ``state`` under ``policy`` (pure; the rules are in the module docstring)."""
    _validate(request, state)
    draft = Draft(request, state, policy)
    request = draft.request = _evidenced(draft)
    if _is_break_glass(request):
        return break_glass(draft)
    if is_direct_care(request):
        return direct_care(draft)
    return secondary(draft)


def decide_as_at(
    request: DecisionRequest, events: Iterable[Event], as_at_hlc: int, policy: DecisionPolicy = DEFAULT_POLICY
) -> Decision:
    """Re-evaluate ``request`` against the state as it stood at ``as_at_hlc`` (events with hlc <= it)."""
    return decide(request, replay(request.patient_key, events, as_at_hlc=as_at_hlc), policy)


def _validate(request: DecisionRequest, state: PatientState) -> None:
    if request.patient_key != state.patient_key:
        raise DecisionRequestError("the state passed is for another patient than the request")
    if not request.data_classes:
        raise DecisionRequestError("no data classes requested; ask for ALL or name the classes")
    if request.purpose is PurposeOfUse.ANY:
        raise DecisionRequestError("purpose ANY is a consent-scope wildcard; name the purpose of use")


def _evidenced(d: Draft) -> DecisionRequest:
    """The request with an override basis dropped when its evidence is missing (issue 14, rule 4)."""
    req = d.request
    basis = req.legal_basis
    if basis not in (LegalBasis.STATUTORY_MANDATE, LegalBasis.SAFEGUARDING):
        return req
    if req.evidence is not None and req.evidence.supports(basis):
        return req
    needs = (
        "the instrument it rests on" if basis is LegalBasis.STATUTORY_MANDATE else "a justification and its approver"
    )
    d.note(
        Code.OVERRIDE_EVIDENCE_MISSING,
        f"{basis.value} was claimed without {needs}, so it is not relied on; send them in the request's evidence.",
    )
    return replace(req, legal_basis=None)


def _is_break_glass(request: DecisionRequest) -> bool:
    """BTG, or a break-glass basis / relationship for direct care; never for research or planning."""
    if request.purpose is PurposeOfUse.BTG:
        return True
    claimed = (
        request.legal_basis is LegalBasis.BREAK_GLASS or request.requester.relationship is Relationship.BREAK_GLASS
    )
    return claimed and request.purpose in DIRECT_CARE_PURPOSES
