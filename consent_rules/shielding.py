"""Shielding policy: who may set or clear a shielding flag (pure).

A shielding flag hides a patient's location, identity or contact details from
every recipient (e.g. a child protection or domestic abuse case). Setting or,
worse, clearing one by someone without the authority to do so would expose the
patient, so a flag whose ``set_by_role`` is not authorised is never applied to
the state: the reconciler dead-letters it with a stable reason code.

Tree::

    ValidationError                      (consent_wire.errors)
    +-- ShieldingPolicyError             SHIELDING_POLICY
        +-- UnauthorisedShieldingSetError    UNAUTHORISED_SHIELDING_SET
        +-- UnauthorisedShieldingClearError  UNAUTHORISED_SHIELDING_CLEAR
"""

from __future__ import annotations

from consent_wire.codes import ShieldingAction
from consent_wire.errors import ValidationError
from consent_wire.model import ShieldingFlag

__all__ = [
    "SHIELDING_ROLES",
    "ShieldingPolicyError",
    "UnauthorisedShieldingClearError",
    "UnauthorisedShieldingSetError",
    "check_shielding",
    "shielding_rejection",
]

# Roles with authority over shielding, from the shared state contract: the
# Caldicott Guardian (the organisation's confidentiality lead), the
# safeguarding lead, and the patient's GP (who holds the record).
SHIELDING_ROLES = frozenset({"CALDICOTT_GUARDIAN", "SAFEGUARDING_LEAD", "GP"})


class ShieldingPolicyError(ValidationError):
    """A shielding flag set or cleared by a role without that authority."""

    reason = "SHIELDING_POLICY"


class UnauthorisedShieldingSetError(ShieldingPolicyError):
    reason = "UNAUTHORISED_SHIELDING_SET"


class UnauthorisedShieldingClearError(ShieldingPolicyError):
    reason = "UNAUTHORISED_SHIELDING_CLEAR"


def check_shielding(flag: ShieldingFlag) -> None:
    """Raise a :class:`ShieldingPolicyError` unless ``flag.set_by_role`` may do ``flag.action``."""
    if flag.set_by_role in SHIELDING_ROLES:
        return
    allowed = ", ".join(sorted(SHIELDING_ROLES))
    if flag.action is ShieldingAction.CLEAR:
        raise UnauthorisedShieldingClearError(
            f"role {flag.set_by_role!r} may not clear a shielding flag; allowed roles: {allowed}"
        )
    raise UnauthorisedShieldingSetError(
        f"role {flag.set_by_role!r} may not set a shielding flag; allowed roles: {allowed}"
    )


def shielding_rejection(flag: ShieldingFlag) -> str | None:
    """The reason code :func:`check_shielding` would raise, or ``None`` when authorised."""
    try:
        check_shielding(flag)
    except ShieldingPolicyError as exc:
        return exc.reason
    return None
