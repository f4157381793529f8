"""The conditions HLEGAL, THREAT and HDECD add to their parent purpose (issue 14, vocabulary); internal
to :mod:`consent_rules.decision`.

A request naming one of these ActReason codes is decided as a request for its parent (HOPERAT,
PUBHLTH) once the code's own condition holds; otherwise it is denied with ``PURPOSE_NEEDS_BASIS`` or
``PATIENT_NOT_DECEASED``. Each condition maps the code onto a rule that already needs evidence:

- HLEGAL (legal proceedings): an evidenced STATUTORY_MANDATE (the court order or statute, rule 4)
  or the patient's explicit CONSENT.
- THREAT (a serious threat to health or safety): the overriding public interest, i.e. evidenced
  SAFEGUARDING (justification and approver, rule 4), or an evidenced STATUTORY_MANDATE.
- HDECD (a deceased person's information): the patient has died; then their personal
  representative (Access to Health Records Act 1990 s3(1)(f), the patient-side route) or an
  evidenced STATUTORY_MANDATE (e.g. a coroner's request, Coroners and Justice Act 2009 sch 5).
"""

from __future__ import annotations

from consent_rules.decision._draft import Draft
from consent_rules.decision.outcome import Code
from consent_rules.decision.subject import AccessRight
from consent_rules.hierarchy import RequestOnlyPurpose
from consent_wire.codes import LegalBasis

__all__ = ["purpose_condition_holds"]

_BASES = {
    RequestOnlyPurpose.HLEGAL: frozenset({LegalBasis.STATUTORY_MANDATE, LegalBasis.CONSENT}),
    RequestOnlyPurpose.THREAT: frozenset({LegalBasis.SAFEGUARDING, LegalBasis.STATUTORY_MANDATE}),
    RequestOnlyPurpose.HDECD: frozenset({LegalBasis.STATUTORY_MANDATE}),
}
_NEEDS = {
    RequestOnlyPurpose.HLEGAL: "a statutory mandate naming its instrument (court order, statute) or the "
    "patient's explicit consent",
    RequestOnlyPurpose.THREAT: "the overriding public interest (SAFEGUARDING with its justification and "
    "approver) or a statutory mandate naming its instrument",
    RequestOnlyPurpose.HDECD: "the deceased patient's personal representative (Access to Health Records Act "
    "1990) or a statutory mandate naming its instrument",
}


def purpose_condition_holds(d: Draft) -> bool:
    """Whether the request's finer purpose (if any) may be decided as its parent; notes why not."""
    req = d.request
    detail = req.purpose_detail
    if detail is None:
        return True
    if detail is RequestOnlyPurpose.HDECD:
        if not req.subject.deceased:
            d.note(
                Code.PATIENT_NOT_DECEASED,
                "HDECD is for a deceased person's information; neither the request nor the consent state says "
                "the patient has died.",
            )
            return False
        if req.access_right is AccessRight.PERSONAL_REPRESENTATIVE:
            return True
    if req.legal_basis in _BASES[detail]:
        return True
    d.note(
        Code.PURPOSE_NEEDS_BASIS,
        f"{detail.value} (a kind of {req.purpose.value}) needs {_NEEDS[detail]}; none was relied on.",
    )
    return False
