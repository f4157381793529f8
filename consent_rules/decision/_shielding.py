"""Shielding obligations (rec 10.6): redact the hidden fields, withhold PATLOC / CONTACT when hidden."""

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
    """Add the redaction obligations of an active shielding flag; the classes still permitted."""
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
