"""The purposes of use and legal bases the rules group together (pure constants)."""

from __future__ import annotations

from consent_wire.codes import LegalBasis, PurposeOfUse

__all__ = ["DIRECT_CARE_PURPOSES", "NDOP_PURPOSES", "SECONDARY_BASES", "SECONDARY_PURPOSES"]

# Direct care purposes (HL7 ActReason; Caldicott review ch. 3 "direct care").
DIRECT_CARE_PURPOSES = frozenset({PurposeOfUse.TREAT, PurposeOfUse.ETREAT, PurposeOfUse.COC})
# Uses beyond direct care (rec 7: "beyond their own care and treatment").
SECONDARY_PURPOSES = frozenset(
    {
        PurposeOfUse.HRESCH,
        PurposeOfUse.PUBHLTH,
        PurposeOfUse.HOPERAT,
        PurposeOfUse.HQUALIMP,
        PurposeOfUse.HPAYMT,
    }
)
# National data opt-out covers "research and planning" (NHS Digital NDOP operational policy).
NDOP_PURPOSES = frozenset({PurposeOfUse.HRESCH, PurposeOfUse.HOPERAT, PurposeOfUse.HQUALIMP, PurposeOfUse.HPAYMT})
# Lawful bases for secondary use without consent (principle 6; rec 7.12).
SECONDARY_BASES = frozenset({LegalBasis.S251, LegalBasis.STATUTORY_MANDATE, LegalBasis.SAFEGUARDING})
