"""What one audit entry says: the record of a decision or an access, and a patient's view of them (pure).

Each record is canonical JSON bytes (orjson, sorted keys) holding the minimum needed to answer
"who saw my record, when and why": the patient's pseudonymous key (never the NHS number), the
accessor's staff id, organisation, role, purpose, data classes, outcome and legal basis. These
bytes are what :mod:`broker.audit.log` hashes into the chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from broker.audit.errors import AuditRecordError
from broker.audit.log import AuditEntry
from consent_rules.decision import Decision, DecisionRequest, patient_notice
from consent_wire.codes import DataClass, LegalBasis, PurposeOfUse
from consent_wire.model import AccessRecord, Event

__all__ = [
    "AccessView",
    "AuditRecord",
    "RecordKind",
    "access_record",
    "accesses_for",
    "decision_record",
    "read_record",
]


class RecordKind(StrEnum):
    DECISION = "DECISION"  # a sharing decision (permit or deny)
    ACCESS = "ACCESS"  # a view or disclosure reported by a site
    READ = "READ"  # a read of the patient's data through the core's API (state, access log, "as at")


@dataclass(frozen=True, slots=True)
class AuditRecord:
    kind: RecordKind
    at_ms: int
    patient_key: str  # keyed pseudonym, never an NHS number
    accessor_id: str  # pseudonymous staff id
    organisation: str
    role: str
    purpose: PurposeOfUse
    data_classes: tuple[DataClass, ...]
    outcome: str  # Outcome value for decisions; "VIEWED" / "DISCLOSED" for accesses
    legal_basis: LegalBasis | None = None
    codes: tuple[str, ...] = ()
    state_version: int = 0
    disclosed_to: str = ""
    client_id: str = ""  # the authenticated API client (OAuth client id); "" for site-reported accesses

    def to_bytes(self) -> bytes:
        """Canonical JSON (orjson, sorted keys); ``client_id`` only when set, so older entries hash as before."""
        extra = {"client_id": self.client_id} if self.client_id else {}
        return orjson.dumps(
            {
                **extra,
                "kind": self.kind.value,
                "at_ms": self.at_ms,
                "patient_key": self.patient_key,
                "accessor_id": self.accessor_id,
                "organisation": self.organisation,
                "role": self.role,
                "purpose": self.purpose.value,
                "data_classes": [c.value for c in self.data_classes],
                "outcome": self.outcome,
                "legal_basis": None if self.legal_basis is None else self.legal_basis.value,
                "codes": list(self.codes),
                "state_version": self.state_version,
                "disclosed_to": self.disclosed_to,
            },
            option=orjson.OPT_SORT_KEYS,
        )

    @staticmethod
    def from_bytes(data: bytes) -> AuditRecord:
        try:
            o: dict[str, Any] = orjson.loads(data)
            basis = o["legal_basis"]
            return AuditRecord(
                RecordKind(o["kind"]),
                int(o["at_ms"]),
                str(o["patient_key"]),
                str(o["accessor_id"]),
                str(o["organisation"]),
                str(o["role"]),
                PurposeOfUse(o["purpose"]),
                tuple(DataClass(c) for c in o["data_classes"]),
                str(o["outcome"]),
                None if basis is None else LegalBasis(basis),
                tuple(str(c) for c in o["codes"]),
                int(o["state_version"]),
                str(o["disclosed_to"]),
                str(o.get("client_id", "")),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise AuditRecordError(f"not an audit record: {exc}") from exc


@dataclass(frozen=True, slots=True)
class AccessView:
    """One line of a patient's "who accessed my record" list."""

    accessor_id: str
    organisation: str
    role: str
    purpose: PurposeOfUse
    at_ms: int
    outcome: str
    kind: RecordKind
    disclosed_to: str
    notice: str | None = None  # plain English when the patient's wish was set aside (rec 7, principle 8)
    index: int = -1  # the entry's leaf index in the audit log
    record: bytes = b""  # the entry's canonical bytes (the Merkle leaf), so a reader can check its proof


def decision_record(request: DecisionRequest, decision: Decision, accessor_id: str, client_id: str = "") -> AuditRecord:
    who = request.requester
    return AuditRecord(
        RecordKind.DECISION,
        request.at_ms,
        request.patient_key,
        accessor_id,
        who.organisation,
        who.role,
        request.purpose,
        request.data_classes,
        decision.outcome.value,
        decision.legal_basis,
        decision.codes,
        decision.state_version,
        client_id=client_id,
    )


def read_record(
    *,
    at_ms: int,
    patient_key: str,
    accessor_id: str,
    organisation: str,
    role: str,
    purpose: PurposeOfUse,
    what: str,
    client_id: str,
) -> AuditRecord:
    """The audit record of a read of a patient's data through the API (``what``: CONSENT, ACCESSES, AS_AT)."""
    return AuditRecord(
        RecordKind.READ,
        at_ms,
        patient_key,
        accessor_id,
        organisation,
        role,
        purpose,
        (),
        f"READ_{what}",
        client_id=client_id,
    )


def access_record(event: Event) -> AuditRecord:
    """The audit record of an access event; raises :class:`AuditRecordError` for other payloads."""
    p = event.payload
    if not isinstance(p, AccessRecord):
        raise AuditRecordError(f"event {event.event_id} carries {type(p).__name__}, not an AccessRecord")
    return AuditRecord(
        RecordKind.ACCESS,
        event.recorded_ms,
        event.patient_key,
        p.accessor_id,
        p.organisation,
        p.role,
        p.purpose,
        p.data_classes,
        "DISCLOSED" if p.disclosed_to else "VIEWED",
        p.legal_basis,
        disclosed_to=p.disclosed_to,
    )


def accesses_for(entries: Sequence[AuditEntry], patient_key: str) -> list[AccessView]:
    """Everyone who accessed (or asked to access) ``patient_key``'s record, oldest first (rec 1)."""
    views: list[tuple[int, int, AccessView]] = []
    for e in entries:
        r = AuditRecord.from_bytes(e.record)
        if r.patient_key != patient_key:
            continue
        notice = None
        if r.kind is RecordKind.DECISION:
            notice = patient_notice(r.codes, r.purpose, r.organisation, permitted=r.outcome != "DENY")
        view = AccessView(
            r.accessor_id,
            r.organisation,
            r.role,
            r.purpose,
            r.at_ms,
            r.outcome,
            r.kind,
            r.disclosed_to,
            notice,
            e.index,
            e.record,
        )
        views.append((r.at_ms, e.index, view))
    return [v for _, _, v in sorted(views, key=lambda t: (t[0], t[1]))]
