"""What is asked: who requests which data of which patient, for what purpose, when (pure).

Errors::

    ValidationError (consent_wire.errors)
    +-- DecisionRequestError     BAD_DECISION_REQUEST
"""

from __future__ import annotations

from dataclasses import dataclass

from consent_wire.codes import DataClass, LegalBasis, PurposeOfUse, Relationship
from consent_wire.errors import ValidationError

__all__ = ["DecisionRequest", "DecisionRequestError", "Requester"]


class DecisionRequestError(ValidationError):
    """A request that cannot be decided (wrong patient state, no data classes, purpose ANY)."""

    reason = "BAD_DECISION_REQUEST"


@dataclass(frozen=True, slots=True)
class Requester:
    organisation: str  # ODS code; also the recipient matched against consent scopes
    role: str
    registered: bool  # registered / regulated professional
    relationship: Relationship
    care_team: bool  # member of this patient's care team


@dataclass(frozen=True, slots=True)
class DecisionRequest:
    requester: Requester
    purpose: PurposeOfUse
    patient_key: str
    data_classes: tuple[DataClass, ...]
    legal_basis: LegalBasis | None
    at_ms: int
