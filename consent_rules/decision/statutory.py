"""Classes of information a statute restricts beyond the common-law duty of confidence (issue 14), pure.

They are not :class:`~consent_wire.codes.DataClass` values (an enum on the wire, where a new symbol is
not FULL_TRANSITIVE compatible): a request says which of them the data asked for include
(``DecisionRequest.statutory_classes``), and each is withheld by default - obligation
``WITHHOLD_<CLASS>`` and code ``STATUTORY_RESTRICTION`` - unless the route the decision took is one its
statute allows:

- ``FERTILITY``: Human Fertilisation and Embryology Act 1990 s33A (information identifying a person
  as treated at a licensed clinic): disclosure with the person's consent, under a court order or other
  legal requirement, or to avert imminent danger to the person when consent cannot be obtained.
- ``GENDER_HISTORY``: Gender Recognition Act 2004 s22 (protected information about a gender
  recognition application or a person's gender before it): disclosure with consent, for legal
  proceedings or a court order, or for medical purposes by a health professional where the person
  cannot give consent (Gender Recognition (Disclosure of Information) Order 2005, SI 2005/635).
- ``ADOPTION``: adoption case records (Adoption and Children Act 2002; Adoption Agencies Regulations
  2005, regs 41-42): disclosure as the regulations or a court allow, or to the adopted person.

Allowed routes, as the decision's codes and basis show them: the person's own explicit consent
(``EXPLICIT_CONSENT``) or their own request (``PATIENT_ACCESS``); an evidenced statutory mandate
(basis STATUTORY_MANDATE: the court order or statute is its instrument); break-glass (an emergency in
which the person cannot consent) for FERTILITY and GENDER_HISTORY only. A proxy's request is not the
person's consent, so it does not open them.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from consent_rules.decision.outcome import Code, Obligation
from consent_wire.codes import LegalBasis

__all__ = ["StatutoryClass", "allowed", "withhold_obligation"]


class StatutoryClass(StrEnum):
    FERTILITY = "FERTILITY"  # HFE Act 1990 s33A
    GENDER_HISTORY = "GENDER_HISTORY"  # GRA 2004 s22
    ADOPTION = "ADOPTION"  # Adoption and Children Act 2002; Adoption Agencies Regulations 2005


_EMERGENCY_ALLOWED = frozenset({StatutoryClass.FERTILITY, StatutoryClass.GENDER_HISTORY})
_WITHHOLD = {
    StatutoryClass.FERTILITY: Obligation.WITHHOLD_FERTILITY_DATA,
    StatutoryClass.GENDER_HISTORY: Obligation.WITHHOLD_GENDER_HISTORY,
    StatutoryClass.ADOPTION: Obligation.WITHHOLD_ADOPTION_RECORDS,
}


def allowed(cls: StatutoryClass, basis: LegalBasis | None, codes: Iterable[str]) -> bool:
    """Whether the route a permitted decision took is one the class's statute allows."""
    given = set(codes)
    if Code.EXPLICIT_CONSENT.value in given or Code.PATIENT_ACCESS.value in given:
        return True
    if basis is LegalBasis.STATUTORY_MANDATE:
        return True
    return basis is LegalBasis.BREAK_GLASS and cls in _EMERGENCY_ALLOWED


def withhold_obligation(cls: StatutoryClass) -> Obligation:
    return _WITHHOLD[cls]
