"""The register of data-sharing agreements a deployment holds (rec 20; issue 14), pure data.

Recommendation 20 of the Caldicott review (accepted, 12.5): data controller to data controller
data-sharing agreements set out the common rules of a sharing operation, "particularly to support
issues around sharing with non-registered, non-regulated staff". A deployment passes its register in
:class:`~consent_rules.decision.policy.DecisionPolicy`; when it says agreements are required, a request
from unregistered staff or for a use beyond direct care names its agreement (``agreement_ref``) and
the decision checks it: it exists, has not expired, the requester's organisation is a party, it covers
the purpose (or a broader purpose, by the ActReason hierarchy) and the data classes asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

from consent_rules.hierarchy import is_a
from consent_wire.codes import DataClass, PurposeOfUse

__all__ = ["DataSharingAgreement"]


@dataclass(frozen=True, slots=True)
class DataSharingAgreement:
    reference: str  # the agreement's identifier, e.g. "DSA-2025-014"
    parties: frozenset[str]  # ODS codes of the organisations party to it
    purposes: frozenset[PurposeOfUse]  # a purpose covers its kinds (ANY covers every purpose)
    data_classes: frozenset[DataClass]  # ALL covers every class
    expires_ms: int | None = None  # exclusive; None = open-ended (review dates are the parties' matter)

    def covers_purpose(self, purpose: PurposeOfUse) -> bool:
        return any(is_a(purpose, p) for p in self.purposes)

    def covers_class(self, data_class: DataClass) -> bool:
        return DataClass.ALL in self.data_classes or data_class in self.data_classes

    def in_force(self, at_ms: int) -> bool:
        return self.expires_ms is None or at_ms < self.expires_ms
