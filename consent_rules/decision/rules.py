"""The sharing decision: may this requester have these data, for this purpose, now? (pure).

Rules (the full table with sources, codes and the choices made: ``docs/decision-rules.md``), from the
revised Caldicott principles and the Government response to the Caldicott review (``../shared/seed``),
NHS Digital's NDOP and type 1 guidance and the HL7 ActReason hierarchy:

- HLEGAL, THREAT and HDECD (request-only ActReason codes) are decided as their parent once their
  own condition holds: an evidenced mandate or consent, evidenced safeguarding or a mandate, a
  deceased patient's personal representative or a mandate (issue 14, vocabulary).
- Override evidence first (issue 14, rule 4): STATUTORY_MANDATE without its instrument, or
  SAFEGUARDING without justification and approver, is dropped (OVERRIDE_EVIDENCE_MISSING). An
  override relied on is recorded in the reasons and alerted as break-glass is.
- Break-glass (purpose BTG, or basis / relationship BREAK_GLASS for direct care) is for the roles in
  ``policy.break_glass_roles`` only (rule 9): permitted, recorded and alerted; others denied.
- Direct care (TREAT and its kinds; local clinical audit by the care team, rule 7) within a
  legitimate relationship proceeds on implied consent (recs 2-4, principle 7) unless the patient
  refused it or local dissent covers it; no relationship: DENY (principle 4) unless evidenced
  safeguarding sets the limit aside. Unregistered care-team staff get the minimum data set (rec 3).
- Uses beyond direct care need explicit consent to that use or a legal basis (S251, mandate,
  safeguarding), then the minimum data set only (principles 2-3, 6). An any-purpose permit is not
  explicit consent beyond direct care, and an objection later than a consent wins over it (rule 1).
- Objections (rec 11, 7.12): NDOP / type 2 stop research and planning, S251 included; type 1 stops
  GP-held data leaving the practice (rule 8); local dissent stops its recorder's data leaving it.
  They belong to their recorders (rule 6) and give way to a statutory mandate, to a basis listed as
  an exemption and (not type 1) to evidenced safeguarding.
- Consent registers match by the purpose hierarchy (rule 3) and a later withdrawal wins over an
  earlier, narrower permission (rule 2); a statutory mandate overrides an OPTOUT.
- Shielding (rec 10.6) adds redaction obligations and withholds PATLOC / CONTACT when hidden; a
  shielding request held in quarantine (rule 10) is honoured the same way until answered.
- The opt-out's scope follows the COPI gateway and the data flow (rule 5); anonymised data fall
  outside the opt-outs; exemptions on an objection hold for the flows they name.
- Where the deployment requires it, unregistered staff and uses beyond direct care name a registered
  data-sharing agreement (rec 20). The patient's side (the patient, a parent, an attorney, a deputy, a
  personal representative) is decided on its own route; death lifts nothing. The patient has died if
  the request says so or the state records it (a GP practice's statement, Event v5; issue 14). Statutorily restricted
  classes (fertility, gender history, adoption) are withheld unless consent, the person's own request,
  a mandate or (not adoption) an emergency opens them. A decision that sets a wish aside carries a
  plain-English notice for the patient.

Every decision names its reasons (plain English), stable codes, the legal basis relied on and the
state version used. Nothing here reads a clock or does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from consent_rules.decision._agreements import agreement_allows
from consent_rules.decision._direct_care import break_glass, direct_care
from consent_rules.decision._draft import Draft
from consent_rules.decision._secondary import secondary
from consent_rules.decision._subject_access import subject_access
from consent_rules.decision._vocabulary import purpose_condition_holds
from consent_rules.decision.outcome import Code, Decision
from consent_rules.decision.policy import DEFAULT_POLICY, DecisionPolicy
from consent_rules.decision.purposes import DIRECT_CARE_PURPOSES, is_direct_care
from consent_rules.decision.request import DecisionRequest, DecisionRequestError
from consent_rules.hierarchy import REQUEST_ONLY_PARENT
from consent_rules.state import PatientState, replay
from consent_wire.codes import LegalBasis, PurposeOfUse, Relationship
from consent_wire.model import Event

__all__ = ["decide", "decide_as_at"]


def decide(request: DecisionRequest, state: PatientState, policy: DecisionPolicy = DEFAULT_POLICY) -> Decision:
    """Decide ``request`` against ``state`` under ``policy`` (pure; the rules are in the module docstring)."""
    _validate(request, state)
    if state.is_deceased and not request.subject.deceased:  # the state's death ORed with the request's
        request = replace(request, subject=replace(request.subject, deceased=True))
    draft = Draft(request, state, policy)
    request = draft.request = _evidenced(draft)
    if request.subject.deceased:  # confidentiality and every objection continue after death (issue 14)
        draft.note(
            Code.DECEASED_CONFIDENTIALITY_CONTINUES,
            "The patient has died; the duty of confidence and their objections continue after death.",
        )
    if not purpose_condition_holds(draft):  # HLEGAL, THREAT, HDECD: their parent's rules, on a condition
        return draft.deny()
    if request.access_right is not None:  # the patient or their proxy (PATRQT, FAMRQT, PWATRNY)
        return subject_access(draft)
    if _is_break_glass(request):
        return break_glass(draft)
    if not agreement_allows(draft):  # rec 20: unregistered staff and secondary uses name their agreement
        return draft.deny()
    if is_direct_care(draft.request):
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
    detail = request.purpose_detail
    if detail is not None and REQUEST_ONLY_PARENT[detail] is not request.purpose:
        raise DecisionRequestError(
            f"purpose {detail.value} is decided as {REQUEST_ONLY_PARENT[detail].value}, not {request.purpose.value}"
        )


def _evidenced(d: Draft) -> DecisionRequest:
    """The request with an override basis dropped when its evidence is missing (issue 14, rule 4), and a
    gateway dropped when it is not an s251 use naming its notice or approval (rule 5)."""
    req = d.request
    if req.gateway is not None and (req.legal_basis is not LegalBasis.S251 or not req.flow_ref.strip()):
        d.note(
            Code.GATEWAY_NOT_RELIED_ON,
            f"The gateway {req.gateway.value} refines an s251 basis and needs the reference of its notice or "
            "approval (flow_ref), so it is not relied on.",
        )
        req = replace(req, gateway=None)
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
