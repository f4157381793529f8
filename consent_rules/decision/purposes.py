"""The purposes of use and legal bases the rules group together (pure constants).

Each group is a set of subtrees of the purpose hierarchy (:mod:`consent_rules.hierarchy`), so a
narrower code always falls in the group of the broader one (issue 14, rule 3).
"""

from __future__ import annotations

from consent_rules.decision.request import DecisionRequest
from consent_rules.hierarchy import descendants
from consent_wire.codes import LegalBasis, PurposeOfUse, Relationship

__all__ = [
    "AUDIT_PURPOSES",
    "DIRECT_CARE_PURPOSES",
    "NDOP_PURPOSES",
    "SECONDARY_BASES",
    "SECONDARY_PURPOSES",
    "is_direct_care",
    "is_local_clinical_audit",
]

# Direct care: TREAT and its kinds (HL7 ActReason; Caldicott review ch. 3 "direct care"). BTG, a kind
# of ETREAT, is left out: it is the break-glass route, decided on its own (rule 9).
DIRECT_CARE_PURPOSES = descendants(PurposeOfUse.TREAT) - {PurposeOfUse.BTG}
# National data opt-out covers "research and planning" (NHS Digital NDOP operational policy).
NDOP_PURPOSES = descendants(PurposeOfUse.HRESCH) | descendants(PurposeOfUse.HOPERAT) | descendants(PurposeOfUse.HPAYMT)
# Uses beyond direct care (rec 7: "beyond their own care and treatment").
SECONDARY_PURPOSES = NDOP_PURPOSES | descendants(PurposeOfUse.PUBHLTH)
# Lawful bases for secondary use without consent (principle 6; rec 7.12).
SECONDARY_BASES = frozenset({LegalBasis.S251, LegalBasis.STATUTORY_MANDATE, LegalBasis.SAFEGUARDING})
# Clinical audit (HL7 ActReason HQUALIMP, a kind of HOPERAT).
AUDIT_PURPOSES = descendants(PurposeOfUse.HQUALIMP)


def is_local_clinical_audit(request: DecisionRequest) -> bool:
    """Audit by the patient's care team, which is direct care (seed 3.2; issue 14, rule 7).

    Seed 3.2: direct care "also includes activity such as audit ... where these are carried out by
    people who have a legitimate relationship for that person's care". The same audit by anyone else
    (a commissioning support unit, a national audit) is a use beyond direct care.
    """
    who = request.requester
    return request.purpose in AUDIT_PURPOSES and who.relationship is Relationship.LEGITIMATE and who.care_team


def is_direct_care(request: DecisionRequest) -> bool:
    """A direct-care purpose, or local clinical audit by the care team."""
    return request.purpose in DIRECT_CARE_PURPOSES or is_local_clinical_audit(request)
