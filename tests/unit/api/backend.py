"""An in-memory :class:`broker.api.ApiBackend` for handler tests (no Kafka, fixed clock)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.api.codec import HealthInfo
from broker.audit import AuditEntry, AuditLog, AuditRecord, access_record
from broker.audit.note import NoteSigner
from broker.audit.requests import AuditReceipt
from broker.audit.tlog import InclusionProof, sign_checkpoint
from broker.audit.tree import MerkleLog
from broker.reports.aggregates import AggKind, Aggregate, aggregate_events, totals_of
from consent_rules.state import PatientState, replay
from consent_wire.codes import (
    BreachSeverity,
    ConsentDirective,
    DataClass,
    HiddenField,
    LegalBasis,
    ObjectionAction,
    ObjectionKind,
    PurposeOfUse,
    Relationship,
    ShieldingAction,
)
from consent_wire.identity import patient_key
from consent_wire.model import AccessRecord, BreachReport, ConsentDecision, Event, Objection, Payload, ShieldingFlag

SECRET = bytes(range(32))  # a fixed test secret: pseudonyms are reproducible
NHS = "9434765919"  # valid (modulus 11), used by the NHS in examples
OTHER_NHS = "9434765927"
NOW_MS = 1_790_000_000_000
DAY_MS = 86_400_000
PRACTICE = "A81001"
READER = "?accessor_id=staff-9&role=GP&purpose=TREAT"  # who reads a patient's data, recorded on the audit trail

_ids = itertools.count(1)


def key_of(nhs: str) -> str:
    return patient_key(SECRET, nhs)


def ev(payload: Payload, *, at_ms: int, nhs: str | None = NHS, site: str = PRACTICE) -> Event:
    n, patient = next(_ids), key_of(nhs) if nhs else ""
    return Event(f"{n:032x}", f"agent-{site}", site, n, bytes(32), at_ms << 16, at_ms, patient, payload)


def access(org: str, to: str = "", *, at_ms: int = NOW_MS - DAY_MS, nhs: str = NHS) -> Event:
    payload = AccessRecord("staff-1", org, "GP", True, Relationship.LEGITIMATE, PurposeOfUse.TREAT,
                           (DataClass.GENERAL,), LegalBasis.IMPLIED_CONSENT_DIRECT_CARE, to)  # fmt: skip
    return ev(payload, at_ms=at_ms, nhs=nhs)


def objection(kind: ObjectionKind = ObjectionKind.NDOP, *, at_ms: int = NOW_MS - 5 * DAY_MS,
              nhs: str = NHS, action: ObjectionAction = ObjectionAction.REGISTER) -> Event:  # fmt: skip
    return ev(Objection(kind, action, ()), at_ms=at_ms, nhs=nhs)


def consent(directive: ConsentDirective, purpose: PurposeOfUse, *, at_ms: int) -> Event:
    return ev(ConsentDecision(directive, purpose, DataClass.ALL, "*", None, None, "GP"), at_ms=at_ms)


def shield(at_ms: int = NOW_MS - 2 * DAY_MS) -> Event:
    hides = (HiddenField.LOCATION, HiddenField.CONTACT)
    return ev(ShieldingFlag(ShieldingAction.SET, hides, "SAFEGUARDING_LEAD", "CHILD_PROTECTION"), at_ms=at_ms)


def breach(org: str, severity: BreachSeverity, at_ms: int = NOW_MS - DAY_MS) -> Event:
    payload = BreachReport(org, severity, "DISCLOSED_IN_ERROR", "letter to wrong address", "retrained", True, 1)
    return ev(payload, at_ms=at_ms, nhs=None, site=org)


@dataclass
class MemoryBackend:
    stored: list[Event] = field(default_factory=list)
    list_sizes: Mapping[str, int] = field(default_factory=dict)
    ready: bool = True
    log: AuditLog = field(default_factory=lambda: AuditLog(checkpoint_every=1000))
    tree: MerkleLog = field(default_factory=MerkleLog)
    log_key: NoteSigner = field(default_factory=lambda: NoteSigner("test/audit", Ed25519PrivateKey.generate()))
    cosigned_size: int | None = None  # None: every entry is under the checkpoint

    def add(self, *events: Event) -> None:
        self.stored.extend(events)
        for e in events:
            if isinstance(e.payload, AccessRecord):
                self._append(access_record(e))

    def _append(self, record: AuditRecord) -> AuditEntry:
        entry = self.log.append(record)
        self.tree.append(entry.record)
        return entry

    def audit_proof(self, index: int) -> InclusionProof | None:
        size = self.tree.size if self.cosigned_size is None else self.cosigned_size
        if index >= size:
            return None
        note = sign_checkpoint(self.log_key, "test/audit", size, self.tree.root(size)).to_text()
        return InclusionProof(index, size, self.tree.inclusion_proof(index, size), note)

    def patient_key(self, nhs_number: str) -> str:
        return key_of(nhs_number)

    async def state(self, patient_key: str) -> PatientState:
        return replay(patient_key, self.stored)

    def key_of_digits(self, digits: str) -> str:
        return key_of(digits)

    async def known_states(self, patient_keys: Sequence[str]) -> Mapping[str, PatientState]:
        states = {key: replay(key, self.stored) for key in set(patient_keys)}
        return {key: state for key, state in states.items() if state.version}

    async def history(self, patient_key: str) -> Sequence[Event]:
        return [e for e in self.stored if e.patient_key == patient_key]

    def reports_version(self) -> int | None:
        return len(self.stored)  # events are only ever added

    async def report_aggregates(self, kind: AggKind) -> list[Aggregate]:
        """As the reports stage leaves them (over three partitions)."""
        return [a for a in aggregate_events(self.stored, partitions=3) if a.key.kind is kind]

    async def report_totals(
        self, kind: AggKind, first_day: int = -1, end_day: int | None = None
    ) -> Mapping[tuple[str, ...], Mapping[str, int]]:
        return totals_of(await self.report_aggregates(kind), first_day, end_day)

    async def audit_entries(self, patient_key: str, after: int = -1, limit: int = -1) -> Sequence[AuditEntry]:
        mine = [e for e in self.log.entries if AuditRecord.from_bytes(e.record).patient_key == patient_key]
        mine = [e for e in mine if e.index > after]
        return mine if limit < 0 else mine[:limit]

    async def state_with_event(self, event_id: str) -> PatientState | None:
        for key in {e.patient_key for e in self.stored if e.patient_key}:
            state = replay(key, self.stored)
            stamps = [r.stamp for r in state.consents.values()] + [r.stamp for r in state.objections.values()]
            if any(stamp.event_id == event_id for stamp in stamps):
                return state
        return None

    async def record(self, record: AuditRecord) -> AuditReceipt:
        return AuditReceipt(self._append(record).index)

    def now_ms(self) -> int:
        return NOW_MS

    def health(self) -> HealthInfo:
        return HealthInfo(self.ready, 1, len(self.stored), len(self.log.entries), audit_indexed=len(self.log.entries))
