"""What an agent's key may record: its site and capabilities, from the operator-signed registration.

The operator root signs each key's REGISTER or ROTATE event (``KeyEvent`` v2), naming the agent's site
(an ODS code) and the :class:`~consent_wire.codes.Capability` values the key may exercise. The core's
verifier checks every authentic event against the authority of the key that signed it
(:func:`refusal`), so a compromised site cannot record events, or fake access-log entries, for
another site, nor exercise a capability it was not granted:

- ``event.site`` must be the key's site (``SITE_MISMATCH``);
- an access record's or breach report's ``organisation`` must be the key's site (``SITE_MISMATCH``);
- each payload needs its capability (``CAPABILITY_DENIED``): a consent decision ``CONSENT``; a type 1
  objection ``TYPE1_OBJECTION``, any other objection ``OBJECTION``; an access record ``ACCESS_RECORD``;
  a shielding SET ``SHIELDING_SET`` and a CLEAR ``SHIELDING_CLEAR``; a breach report ``BREACH_REPORT``;
  a key event recorded as an event needs a capability no key carries (key events travel on the keys
  topic, signed by the operator root);
- a statement of the person's death or its withdrawal (``Event.subject_deceased_ms``, Event v5) only
  from a key of a GP practice (``DECEASED_STATUS_NOT_GP``): the registered practice receives the
  Personal Demographics Service's death notifications (and their withdrawal). No new capability is
  needed or possible: ``Capability`` has no reader default in KeyEvent v2, so a new symbol would not
  be FULL_TRANSITIVE; a practice's key is already identified by its ODS practice code.

Grants are checked when signed and when applied (:func:`check_grant`): a granting registration names a
valid ODS code, and ``TYPE1_OBJECTION`` only for a GP practice (ODS practice codes are one letter and
five digits, e.g. ``A81001``; NHS Digital ODS "GP practice" code format). A **v1 registration** (no
site, no capabilities: written before authority existed) resolves to an empty authority: its key
still verifies (so its batches are acked and its chain advances) but every event it signs is refused
with ``CAPABILITY_DENIED``. That is the secure default; re-issue such a key with ``consent-broker keys
rotate --site ... --capability ...``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from consent_wire.codes import Capability, ObjectionKind, ShieldingAction
from consent_wire.errors import (
    CapabilityDeniedError,
    DeceasedStatusDeniedError,
    InvalidKeyEventError,
    SiteMismatchError,
)
from consent_wire.model import AccessRecord, BreachReport, ConsentDecision, Event, Objection, Payload, ShieldingFlag

__all__ = ["Authority", "check_grant", "grantable", "is_gp_practice", "refusal", "required_capability"]

# ODS codes: 3-10 upper-case letters and digits (the edge agent's configuration check uses the same).
_ODS_CODE = re.compile(r"^[A-Z0-9]{3,10}$")
# ODS GP practice codes: one letter (the region or country: A-Y England, W Wales ...) and five digits.
_GP_PRACTICE = re.compile(r"^[A-Z][0-9]{5}$")


@dataclass(frozen=True, slots=True)
class Authority:
    """A key's site and capabilities; ``site == ""`` (a v1 registration) grants nothing."""

    site: str = ""
    capabilities: frozenset[Capability] = frozenset()


def is_gp_practice(site: str) -> bool:
    return bool(_GP_PRACTICE.match(site))


def grantable(site: str) -> tuple[Capability, ...]:
    """Every capability a key of ``site`` may be granted (all but TYPE1_OBJECTION off a GP practice)."""
    return tuple(c for c in Capability if c is not Capability.TYPE1_OBJECTION or is_gp_practice(site))


def check_grant(agent_id: str, site: str, capabilities: tuple[Capability, ...]) -> None:
    """Refuse (InvalidKeyEventError) a grant that names capabilities without a valid site, or type 1 off a practice."""
    if not site and not capabilities:
        return  # a v1-style registration: no authority
    if not _ODS_CODE.match(site):
        raise InvalidKeyEventError(
            f"agent {agent_id!r}: site {site[:32]!r} is not an ODS code (3-10 of A-Z, 0-9); a key with "
            "capabilities must name its site"
        )
    if Capability.TYPE1_OBJECTION in capabilities and not is_gp_practice(site):
        raise InvalidKeyEventError(
            f"agent {agent_id!r}: TYPE1_OBJECTION is only for a GP practice's key (ODS code of one letter and five "
            f"digits); site {site!r} is not a practice"
        )


def required_capability(payload: Payload) -> Capability | None:
    """The capability recording ``payload`` needs; None for a payload no key may record (a key event)."""
    if isinstance(payload, ConsentDecision):
        return Capability.CONSENT
    if isinstance(payload, Objection):
        return Capability.TYPE1_OBJECTION if payload.kind is ObjectionKind.TYPE1 else Capability.OBJECTION
    if isinstance(payload, AccessRecord):
        return Capability.ACCESS_RECORD
    if isinstance(payload, ShieldingFlag):
        return Capability.SHIELDING_SET if payload.action is ShieldingAction.SET else Capability.SHIELDING_CLEAR
    if isinstance(payload, BreachReport):
        return Capability.BREACH_REPORT
    return None


def refusal(event: Event, authority: Authority) -> tuple[str, str] | None:
    """(reason, message) if the signing key's authority does not cover ``event``; None if it does."""
    who = f"agent {event.agent_id!r} seq {event.seq}"
    if not authority.site:
        return CapabilityDeniedError.reason, (
            f"{who}: its key was registered without a site or capabilities (KeyEvent v1) and may record nothing; "
            "re-issue it with `consent-broker keys rotate --site ODS --capability ...`"
        )
    if event.site != authority.site:
        return (
            SiteMismatchError.reason,
            f"{who}: event for site {event.site[:32]!r}, but its key is for {authority.site!r}",
        )
    payload = event.payload
    if isinstance(payload, AccessRecord | BreachReport) and payload.organisation != authority.site:
        kind = "access record" if isinstance(payload, AccessRecord) else "breach report"
        return SiteMismatchError.reason, (
            f"{who}: {kind} for organisation {payload.organisation[:32]!r}, but its key is for {authority.site!r}"
        )
    needed = required_capability(payload)
    if needed is None or needed not in authority.capabilities:
        granted = ",".join(sorted(authority.capabilities)) or "none"
        what = needed.value if needed is not None else f"a {type(payload).__name__} payload (never an agent's)"
        return CapabilityDeniedError.reason, f"{who}: needs {what}; its key carries {granted}"
    if event.subject_deceased_ms is not None and not is_gp_practice(authority.site):
        return DeceasedStatusDeniedError.reason, (
            f"{who}: states the person's death (or withdraws it), which only a GP practice's key may; "
            f"its key is for {authority.site!r}"
        )
    return None
