"""The data-sharing agreement check (rec 20; issue 14); internal to :mod:`consent_rules.decision`."""

from __future__ import annotations

from dataclasses import replace

from consent_rules.decision._draft import Draft
from consent_rules.decision.outcome import Code
from consent_rules.decision.purposes import is_direct_care

__all__ = ["agreement_allows"]


def agreement_allows(d: Draft) -> bool:
    """Whether the request may go on under its agreement; narrows its data classes to those covered.

    In scope when the deployment requires agreements (``policy.agreements_required``) and the request
    is from unregistered staff or for a use beyond direct care. Notes why when it may not.
    """
    req, policy = d.request, d.policy
    if not policy.agreements_required or (req.requester.registered and is_direct_care(req)):
        return True
    dsa = policy.agreements.get(req.agreement_ref) if req.agreement_ref else None
    if dsa is None:
        named = f"names {req.agreement_ref!r}, which is not in the register" if req.agreement_ref else "names none"
        d.note(
            Code.AGREEMENT_MISSING,
            f"Sharing with unregistered staff or beyond direct care needs a registered data-sharing agreement "
            f"(recommendation 20); this request {named}.",
        )
        return False
    failure = _failure(d, dsa.reference, dsa.in_force(req.at_ms), req.requester.organisation in dsa.parties)
    if failure is None and not dsa.covers_purpose(req.purpose):
        failure = (Code.AGREEMENT_PURPOSE_NOT_COVERED, f"does not cover {req.purpose.value}")
    if failure is not None:
        d.note(failure[0], f"The data-sharing agreement {dsa.reference} {failure[1]}.")
        return False
    covered = tuple(c for c in req.data_classes if dsa.covers_class(c))
    for c in req.data_classes:
        if c not in covered:
            d.withhold(c)
    if len(covered) < len(req.data_classes):
        d.note(
            Code.DATA_CLASS_NOT_IN_AGREEMENT,
            f"The data-sharing agreement {dsa.reference} does not cover some classes asked for; they are withheld.",
        )
    if not covered:
        return False
    d.note(Code.UNDER_AGREEMENT, f"Shared under the data-sharing agreement {dsa.reference}.")
    d.request = replace(req, data_classes=covered)
    return True


def _failure(d: Draft, reference: str, in_force: bool, party: bool) -> tuple[Code, str] | None:
    if not in_force:
        return Code.AGREEMENT_EXPIRED, "has expired"
    if not party:
        return Code.AGREEMENT_NOT_A_PARTY, f"does not name {d.request.requester.organisation} as a party"
    return None
