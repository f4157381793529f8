"""Requests from the patient's side (PATRQT, FAMRQT, PWATRNY); internal to :mod:`consent_rules.decision`."""

from __future__ import annotations

from consent_rules.decision._draft import Draft, requested
from consent_rules.decision._shielding import shield
from consent_rules.decision.outcome import Code, Decision, Obligation
from consent_rules.decision.subject import ADULT_AGE, AccessRight
from consent_wire.codes import LegalBasis

__all__ = ["subject_access"]

_PROXY_FOR_LIVING = frozenset({AccessRight.LASTING_POWER_OF_ATTORNEY, AccessRight.COURT_DEPUTY})


def subject_access(d: Draft) -> Decision:
    """The patient, or someone with authority to act for them, asking for the patient's own record."""
    right, subject = d.request.access_right, d.request.subject
    assert right is not None  # the caller routes only such requests here
    refusal = _refusal(right, subject.deceased, subject.age_years, subject.gillick_competent)
    if refusal is not None:
        d.note(*refusal)
        return d.deny()
    code = Code.PATIENT_ACCESS if right is AccessRight.SELF else Code.PROXY_ACCESS
    d.note(
        code,
        f"A request from the patient's side ({right.value}): their own record is theirs to see; the access "
        "is recorded in their access log.",
    )
    d.oblige(Obligation.RECORD_ACCESS)
    return d.finish(LegalBasis.CONSENT, shield(d, requested(d.request)))


def _refusal(right: AccessRight, deceased: bool, age: int | None, gillick: bool | None) -> tuple[Code, str] | None:
    if deceased:
        if right is AccessRight.PERSONAL_REPRESENTATIVE:
            return None
        return (
            Code.PROXY_AUTHORITY_ENDED,
            "The patient has died: confidentiality continues, a lasting power of attorney or deputyship ends, and "
            "access is for their personal representative (Access to Health Records Act 1990).",
        )
    if right is AccessRight.PERSONAL_REPRESENTATIVE:
        return Code.PROXY_AUTHORITY_ENDED, "A personal representative acts only after the patient's death."
    if right is AccessRight.PARENTAL_RESPONSIBILITY:
        if age is None:
            return Code.CHILD_AGE_UNKNOWN, "Access with parental responsibility needs the child's age."
        if age >= ADULT_AGE or gillick:
            return (
                Code.CHILD_DECIDES,
                "The young person is 16 or over, or Gillick competent: their record is theirs to share, so "
                "access with parental responsibility needs their consent.",
            )
    return None
