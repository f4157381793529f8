"""What is answered: the outcome, its obligations and the stable reason codes (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from consent_wire.codes import DataClass, LegalBasis

__all__ = ["Code", "Decision", "Obligation", "Outcome"]


class Outcome(StrEnum):
    PERMIT = "PERMIT"
    DENY = "DENY"
    PERMIT_WITH_OBLIGATIONS = "PERMIT_WITH_OBLIGATIONS"


class Obligation(StrEnum):
    REDACT_LOCATION = "REDACT_LOCATION"
    REDACT_CONTACT = "REDACT_CONTACT"
    REDACT_IDENTITY = "REDACT_IDENTITY"
    MINIMUM_DATA_SET = "MINIMUM_DATA_SET"
    ALERT_PRIVACY_OFFICER = "ALERT_PRIVACY_OFFICER"
    RECORD_ACCESS = "RECORD_ACCESS"
    WITHHOLD_DATA_CLASSES = "WITHHOLD_DATA_CLASSES"  # drop Decision.withheld from the response


class Code(StrEnum):
    """Stable machine codes, one per reason (documented in docs/reason-codes.md)."""

    DIRECT_CARE_IMPLIED_CONSENT = "DIRECT_CARE_IMPLIED_CONSENT"
    LOCAL_CLINICAL_AUDIT = "LOCAL_CLINICAL_AUDIT"
    NO_LEGITIMATE_RELATIONSHIP = "NO_LEGITIMATE_RELATIONSHIP"
    UNREGISTERED_IN_CARE_TEAM = "UNREGISTERED_IN_CARE_TEAM"
    UNREGISTERED_NOT_IN_CARE_TEAM = "UNREGISTERED_NOT_IN_CARE_TEAM"
    BREAK_GLASS = "BREAK_GLASS"
    BREAK_GLASS_NOT_ENTITLED = "BREAK_GLASS_NOT_ENTITLED"
    EXPLICIT_CONSENT = "EXPLICIT_CONSENT"
    CONSENT_WITHDRAWN = "CONSENT_WITHDRAWN"
    CONSENT_EXPIRED = "CONSENT_EXPIRED"
    DATA_CLASS_EXCLUDED = "DATA_CLASS_EXCLUDED"
    NO_CONSENT_OR_LEGAL_BASIS = "NO_CONSENT_OR_LEGAL_BASIS"
    S251_APPROVAL = "S251_APPROVAL"
    STATUTORY_MANDATE = "STATUTORY_MANDATE"
    SAFEGUARDING = "SAFEGUARDING"
    STATUTORY_MANDATE_OVERRIDES_OBJECTION = "STATUTORY_MANDATE_OVERRIDES_OBJECTION"
    EXEMPTION_OVERRIDES_OBJECTION = "EXEMPTION_OVERRIDES_OBJECTION"
    PUBLIC_INTEREST_OVERRIDES_OBJECTION = "PUBLIC_INTEREST_OVERRIDES_OBJECTION"
    EXPLICIT_CONSENT_OVERRIDES_OBJECTION = "EXPLICIT_CONSENT_OVERRIDES_OBJECTION"
    NDOP_ACTIVE = "NDOP_ACTIVE"
    TYPE1_ACTIVE = "TYPE1_ACTIVE"
    TYPE2_ACTIVE = "TYPE2_ACTIVE"
    LOCAL_DISSENT = "LOCAL_DISSENT"
    SHIELDED = "SHIELDED"
    MINIMUM_DATA_SET = "MINIMUM_DATA_SET"


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    obligations: tuple[Obligation, ...]
    reasons: tuple[str, ...]  # plain English, parallel to ``codes``
    legal_basis: LegalBasis | None  # None when denied
    codes: tuple[str, ...]
    state_version: int
    permitted: tuple[DataClass, ...] = ()
    withheld: tuple[DataClass, ...] = ()
