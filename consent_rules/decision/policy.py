"""What a deployment configures about the decision (pure data, passed in to :func:`decide`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from consent_rules.decision.agreements import DataSharingAgreement

__all__ = ["DEFAULT_BREAK_GLASS_ROLES", "DEFAULT_POLICY", "DecisionPolicy"]

# Roles entitled to break-glass (issue 14, rule 9): registered clinicians who give emergency care.
# A default only, after the NHS Summary Care Record's emergency access ("self-claimed legitimate
# relationship", open to registered clinicians in direct care roles, not to administrative staff);
# a deployment names its own in settings and passes them in. Role codes are matched exactly.
DEFAULT_BREAK_GLASS_ROLES = frozenset(
    {
        "A_AND_E_DOCTOR",
        "CONSULTANT",
        "DOCTOR",
        "ED_DOCTOR",
        "GP",
        "MIDWIFE",
        "NURSE",
        "PAEDIATRICIAN",
        "PARAMEDIC",
    }
)


@dataclass(frozen=True, slots=True)
class DecisionPolicy:
    break_glass_roles: frozenset[str] = DEFAULT_BREAK_GLASS_ROLES
    # References of the s251 data flows (COPI regulation 2 or 5) for which CAG advised, case by case,
    # that the national data opt-out does not apply (issue 14, rule 5; NDOP operational policy
    # guidance 5.1). Which flows those are is CAG's register, not ours: a deployment lists them, none
    # by default.
    ndop_exempt_flows: frozenset[str] = frozenset()
    # The register of data-sharing agreements by reference (rec 20), and whether requests from
    # unregistered staff and uses beyond direct care must name one (off by default: a deployment
    # turns it on once its register is loaded).
    agreements: Mapping[str, DataSharingAgreement] = field(default_factory=dict)
    agreements_required: bool = False


DEFAULT_POLICY = DecisionPolicy()
