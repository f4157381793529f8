"""Shielding obligations (rec 10.6): redact the hidden fields, withhold PATLOC / CONTACT when hidden.

A shielding SET from a role without authority is held in quarantine (issue 14, rule 10). Until an
authorised SET or CLEAR answers it, decisions honour it provisionally (SHIELDING_QUARANTINED): a
protective request never fails open, and the safeguarding lead, alerted by the reconciler, decides.
"""

from __future__ import annotations

from consent_rules.decision._draft import Draft
from consent_rules.decision.outcome import Code, Obligation
from consent_wire.codes import DataClass, HiddenField

__all__ = ["shield"]

_HIDDEN_CLASS = {HiddenField.LOCATION: DataClass.PATLOC, HiddenField.CONTACT: DataClass.CONTACT}
_REDACT = {
    HiddenField.LOCATION: Obligation.REDACT_LOCATION,
    HiddenField.CONTACT: Obligation.REDACT_CONTACT,
    HiddenField.IDENTITY: Obligation.REDACT_IDENTITY,
}


def shield(d: Draft, permitted: list[DataClass]) -> list[DataClass]:
    """Add the redaction obligations of an active (or quarantined) shielding flag; the classes still permitted."""
    permitted = _hide(d, permitted, _active_hides(d))
    pending = d.state.pending_quarantine
    if permitted and pending is not None:
        d.note(
            Code.SHIELDING_QUARANTINED,
            f"A request to shield the patient's {', '.join(h.value.lower() for h in pending.hides)} by a role "
            "without that authority awaits the safeguarding lead; it is honoured until they decide.",
        )
        permitted = _hide(d, permitted, pending.hides, note=False)
    return permitted


def _active_hides(d: Draft) -> tuple[HiddenField, ...]:
    shielding = d.state.shielding
    return () if shielding is None or not shielding.active else shielding.hides


def _hide(
    d: Draft, permitted: list[DataClass], hides: tuple[HiddenField, ...], *, note: bool = True
) -> list[DataClass]:
    if not permitted or not hides:
        return permitted
    if note:
        d.note(
            Code.SHIELDED,
            f"The record is shielded (recommendation 10.6): the patient's {', '.join(h.value.lower() for h in hides)} "
            "must be redacted from anything shared.",
        )
    for h in hides:
        d.oblige(_REDACT[h])
    blocked = {_HIDDEN_CLASS[h] for h in hides if h in _HIDDEN_CLASS}
    for c in permitted:
        if c in blocked:
            d.withhold(c)
    return [c for c in permitted if c not in blocked]
