"""What is asked: who requests which data of which patient, for what purpose, when (pure).

Errors::

    ValidationError (consent_wire.errors)
    +-- DecisionRequestError     BAD_DECISION_REQUEST
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from consent_rules.decision.statutory import StatutoryClass
from consent_rules.decision.subject import AccessRight, Subject
from consent_rules.hierarchy import RequestOnlyPurpose
from consent_wire.codes import DataClass, LegalBasis, PurposeOfUse, Relationship
from consent_wire.errors import ValidationError

__all__ = [
    "DataHolder",
    "DecisionRequest",
    "DecisionRequestError",
    "Gateway",
    "HolderKind",
    "Identifiability",
    "OverrideEvidence",
    "Requester",
]


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


class HolderKind(StrEnum):
    """The kind of organisation that holds the data asked for (issue 14, rule 8)."""

    GP_PRACTICE = "GP_PRACTICE"  # the only holder whose data a type 1 objection covers
    HOSPITAL = "HOSPITAL"
    COMMUNITY = "COMMUNITY"  # community, mental health and other NHS providers
    SOCIAL_CARE = "SOCIAL_CARE"
    OTHER = "OTHER"


class Gateway(StrEnum):
    """The legal gateway a use beyond direct care relies on, where it changes the opt-out's scope (rule 5).

    Both are regulations of the Health Service (Control of Patient Information) Regulations 2002
    (COPI), made under s251 of the NHS Act 2006, so they refine the legal basis S251:

    - ``COPI_REG3``: regulation 3, communicable disease and other risks to public health (e.g. the
      COVID-19 notices under reg 3(4)). The national data opt-out does not apply to it (NDOP
      operational policy guidance 6.2).
    - ``COPI_REG2`` / ``COPI_REG5``: regulation 2 (neoplasia) or 5 (general medical purposes), support
      on the advice of the Confidentiality Advisory Group (the usual "s251 approval"). The opt-out
      applies under CAG's standard condition unless CAG advised, case by case, that it does not apply
      to that specific data flow (NDOP operational policy guidance 5.1); a deployment lists those
      flows in ``DecisionPolicy.ndop_exempt_flows``.
    """

    COPI_REG2 = "COPI_REG2"
    COPI_REG3 = "COPI_REG3"
    COPI_REG5 = "COPI_REG5"


class Identifiability(StrEnum):
    """How identifiable the data asked for are to their recipient (issue 14; seed 7.3-7.7, rec 10 of the review).

    The national data opt-out covers confidential patient information, "identifiable or likely
    identifiable" (NDOP operational policy guidance); data anonymised in line with the ICO's code fall
    outside it. Pseudonymised data are still likely identifiable to someone, so they are decided on
    as identifiable.
    """

    IDENTIFIABLE = "IDENTIFIABLE"
    PSEUDONYMISED = "PSEUDONYMISED"
    ANONYMISED = "ANONYMISED"


@dataclass(frozen=True, slots=True)
class DataHolder:
    organisation: str  # ODS code
    kind: HolderKind


@dataclass(frozen=True, slots=True)
class OverrideEvidence:
    """What an override of the patient's wishes rests on (issue 14, rule 4).

    A STATUTORY_MANDATE applies only when it names its ``instrument`` (the statute, regulation,
    direction or court order); SAFEGUARDING only with a ``justification`` and the ``approver`` who
    signed it off (e.g. the Caldicott Guardian). Free text, recorded with the decision's reasons.
    """

    instrument: str = ""
    justification: str = ""
    approver: str = ""

    def supports(self, basis: LegalBasis) -> bool:
        """Whether this evidence is enough for ``basis`` to override anything."""
        if basis is LegalBasis.STATUTORY_MANDATE:
            return bool(self.instrument.strip())
        if basis is LegalBasis.SAFEGUARDING:
            return bool(self.justification.strip() and self.approver.strip())
        return True

    def describe(self, basis: LegalBasis) -> str:
        """The evidence in one sentence, for the decision's reasons."""
        if basis is LegalBasis.STATUTORY_MANDATE:
            return f" Instrument relied on: {self.instrument}."
        if basis is LegalBasis.SAFEGUARDING:
            return f" Justification: {self.justification}; approved by {self.approver}."
        return ""


@dataclass(frozen=True, slots=True)
class DecisionRequest:
    requester: Requester
    purpose: PurposeOfUse
    patient_key: str
    data_classes: tuple[DataClass, ...]
    legal_basis: LegalBasis | None
    at_ms: int
    # who holds the data asked for; None = not said (an objection is then taken to cover the data of
    # the organisation that recorded it)
    data_holder: DataHolder | None = None
    evidence: OverrideEvidence | None = None  # required for a mandate or safeguarding to override (rule 4)
    # the legal gateway an s251 use relies on (rule 5); None = not said (regulation 5 is assumed)
    gateway: Gateway | None = None
    # the reference of the data flow asked under: the CAG approval ("21/CAG/0032"), the COPI notice or
    # the data-sharing agreement; exemptions on an objection hold only for the flows it names (rule 5)
    flow_ref: str = ""
    # the data-sharing agreement the request is made under (rec 20); checked when the deployment
    # requires agreements, for unregistered staff and uses beyond direct care
    agreement_ref: str = ""
    identifiability: Identifiability = Identifiability.IDENTIFIABLE
    # a request from the patient's side (PATRQT / FAMRQT / PWATRNY) names the right it is made under
    access_right: AccessRight | None = None
    # classes of information a statute restricts that the data asked for include (withheld by default)
    statutory_classes: tuple[StatutoryClass, ...] = ()
    subject: Subject = field(default_factory=Subject)  # what is known of the patient (age, Gillick competence, death)
    # the finer ActReason code asked for (HLEGAL, HDECD, THREAT), whose parent is ``purpose``; its own
    # conditions apply before the parent's rules (issue 14, vocabulary); None = ``purpose`` itself
    purpose_detail: RequestOnlyPurpose | None = None

    @property
    def purpose_code(self) -> str:
        """The ActReason code as asked (the finer code when one was named)."""
        return self.purpose.value if self.purpose_detail is None else self.purpose_detail.value
