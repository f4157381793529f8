"""Tamper-evident, append-only audit log of decisions and accesses (pure; recommendation 1).

Each record is canonical JSON bytes (orjson, sorted keys) holding the minimum
needed to answer "who saw my record, when and why": the patient's pseudonymous
key (never the NHS number), the accessor's staff id, organisation, role, purpose,
data classes, outcome and legal basis.

Records form a hash chain: ``h_i = sha256(h_{i-1} || record_i)`` with
``h_{-1}`` 32 zero bytes. Every ``checkpoint_every`` records the operator signs
a checkpoint, Ed25519 over ``CHECKPOINT_CONTEXT || index (8 bytes, big endian)
|| h_index``. :func:`verify` names what is wrong:

- EDITED at i: record i's bytes no longer hash to its stored hash;
- DELETED after i: an index gap, or a chain break with consecutive indexes
  (an entry removed and the rest renumbered, or entry i rewritten and re-hashed);
- REORDERED i and j: entries out of index order, or swapped in place;
- INSERTED at i: an entry whose index repeats an earlier one;
- TRUNCATED after i: a valid checkpoint covers an index the log no longer has;
- BAD_CHECKPOINT at i: a checkpoint signature that does not verify;
- CHECKPOINT_MISMATCH at i: a valid checkpoint whose head differs from the log
  (history rewritten and re-hashed from some point on).

Limits: removing the tail after the last checkpoint is only visible once the
next checkpoint exists, so checkpoints must be published out of the log
operator's reach (e.g. to the audit topic and a witness); deleting checkpoints
themselves is not detected here.

Errors::

    ValidationError (consent_wire.errors)
    +-- AuditError               AUDIT_ERROR
        +-- AuditRecordError     BAD_AUDIT_RECORD
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from consent_rules.decision import Decision, DecisionRequest
from consent_wire.codes import DataClass, LegalBasis, PurposeOfUse
from consent_wire.errors import ValidationError
from consent_wire.model import AccessRecord, Event

__all__ = [
    "CHECKPOINT_CONTEXT",
    "DEFAULT_CHECKPOINT_EVERY",
    "GENESIS_HASH",
    "AccessView",
    "AuditEntry",
    "AuditError",
    "AuditLog",
    "AuditProblem",
    "AuditRecord",
    "AuditRecordError",
    "AuditVerification",
    "Checkpoint",
    "RecordKind",
    "Tamper",
    "access_record",
    "accesses_for",
    "chain_hash",
    "checkpoint_message",
    "decision_record",
    "verify",
]

GENESIS_HASH = bytes(32)  # h_{-1}: the chain starts from 32 zero bytes (as the agent event chain does)
CHECKPOINT_CONTEXT = b"consent-broker/audit-checkpoint/v1\n"  # domain separation for signatures
# One signature per 1,000 records: Ed25519 signing costs ~50 us, so <0.1 us per record amortised,
# while an undetectable tail (records after the last checkpoint) stays at most 1,000 records long.
DEFAULT_CHECKPOINT_EVERY = 1000


class AuditError(ValidationError):
    reason = "AUDIT_ERROR"


class AuditRecordError(AuditError):
    reason = "BAD_AUDIT_RECORD"


class RecordKind(StrEnum):
    DECISION = "DECISION"  # a sharing decision (permit or deny)
    ACCESS = "ACCESS"  # a view or disclosure reported by a site


class Tamper(StrEnum):
    EDITED = "EDITED"
    DELETED = "DELETED"
    REORDERED = "REORDERED"
    INSERTED = "INSERTED"
    TRUNCATED = "TRUNCATED"
    BAD_CHECKPOINT = "BAD_CHECKPOINT"
    CHECKPOINT_MISMATCH = "CHECKPOINT_MISMATCH"


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

    def to_bytes(self) -> bytes:
        """Canonical JSON (orjson, sorted keys)."""
        return orjson.dumps(
            {
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
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise AuditRecordError(f"not an audit record: {exc}") from exc


@dataclass(frozen=True, slots=True)
class AuditEntry:
    index: int
    prev_hash: bytes
    hash: bytes
    record: bytes


@dataclass(frozen=True, slots=True)
class Checkpoint:
    index: int  # last entry covered
    head_hash: bytes  # h_index
    signature: bytes


@dataclass(frozen=True, slots=True)
class AuditProblem:
    kind: Tamper
    index: int  # where (see Tamper); -1 = before the first entry
    other_index: int | None  # the second index of a swap, the checkpoint index of a truncation
    detail: str


@dataclass(frozen=True, slots=True)
class AuditVerification:
    problems: tuple[AuditProblem, ...]
    entries_checked: int
    checkpoints_checked: int

    @property
    def ok(self) -> bool:
        return not self.problems


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


def chain_hash(prev_hash: bytes, record: bytes) -> bytes:
    return hashlib.sha256(prev_hash + record).digest()


def checkpoint_message(index: int, head_hash: bytes) -> bytes:
    return CHECKPOINT_CONTEXT + index.to_bytes(8, "big") + head_hash


def decision_record(request: DecisionRequest, decision: Decision, accessor_id: str) -> AuditRecord:
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


class AuditLog:
    """In-memory append-only chain; the adapter persists ``entries`` and ``checkpoints``."""

    def __init__(self, checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY) -> None:
        if checkpoint_every < 1:
            raise AuditError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
        self.checkpoint_every = checkpoint_every
        self._entries: list[AuditEntry] = []
        self._checkpoints: list[Checkpoint] = []

    @property
    def entries(self) -> tuple[AuditEntry, ...]:
        return tuple(self._entries)

    @property
    def checkpoints(self) -> tuple[Checkpoint, ...]:
        return tuple(self._checkpoints)

    @property
    def head(self) -> bytes:
        return self._entries[-1].hash if self._entries else GENESIS_HASH

    @property
    def checkpoint_due(self) -> bool:
        n = len(self._entries)
        last = self._checkpoints[-1].index if self._checkpoints else -1
        return n > 0 and n % self.checkpoint_every == 0 and last != n - 1

    def append(self, record: AuditRecord) -> AuditEntry:
        data = record.to_bytes()
        prev = self.head
        entry = AuditEntry(len(self._entries), prev, chain_hash(prev, data), data)
        self._entries.append(entry)
        return entry

    def checkpoint(self, signer: Ed25519PrivateKey) -> Checkpoint:
        if not self._entries:
            raise AuditError("cannot checkpoint an empty log")
        index, head = len(self._entries) - 1, self.head
        cp = Checkpoint(index, head, signer.sign(checkpoint_message(index, head)))
        self._checkpoints.append(cp)
        return cp


def verify(
    entries: Sequence[AuditEntry], checkpoints: Sequence[Checkpoint], public_key: Ed25519PublicKey
) -> AuditVerification:
    """Check the chain and every checkpoint; report each problem found (empty = intact)."""
    problems: list[AuditProblem] = []
    ordered = sorted(entries, key=lambda e: e.index)
    problems.extend(_order_problems(entries, ordered))
    hashes = _walk_chain(ordered, problems)
    for cp in sorted(checkpoints, key=lambda c: c.index):
        problem = _check_checkpoint(cp, hashes, public_key)
        if problem is not None:
            problems.append(problem)
    return AuditVerification(tuple(problems), len(entries), len(checkpoints))


def _order_problems(given: Sequence[AuditEntry], ordered: list[AuditEntry]) -> list[AuditProblem]:
    moved = [k for k in range(len(given)) if given[k].index != ordered[k].index]
    if not moved:
        return []
    first, last = given[moved[0]].index, given[moved[-1]].index
    if len(moved) == 2:
        detail = f"entries {first} and {last} are stored in each other's place"
    else:
        detail = f"{len(moved)} entries are out of index order"
    return [AuditProblem(Tamper.REORDERED, min(first, last), max(first, last), detail)]


def _walk_chain(ordered: list[AuditEntry], problems: list[AuditProblem]) -> dict[int, bytes]:
    """Follow the chain in index order; returns index -> stored hash for the entries present."""
    work = list(ordered)
    hashes: dict[int, bytes] = {}
    head, expected, p = GENESIS_HASH, 0, 0
    while p < len(work):
        e = work[p]
        if e.index < expected:
            problems.append(AuditProblem(Tamper.INSERTED, e.index, None, "index repeats an earlier entry"))
            p += 1
            continue
        if e.index > expected:
            missing = e.index - expected
            detail = f"{missing} entr{'y' if missing == 1 else 'ies'} missing before index {e.index}"
            problems.append(AuditProblem(Tamper.DELETED, expected - 1, e.index, detail))
            head = e.prev_hash
        elif e.prev_hash != head:
            q = _find_successor(work, p, head)
            if q is not None:
                other = work[q]
                problems.append(AuditProblem(Tamper.REORDERED, e.index, other.index, "entries swapped in place"))
                work[p], work[q] = replace(other, index=e.index), replace(e, index=other.index)
                continue
            detail = (
                f"chain break before index {e.index}: an entry was removed and later ones renumbered, "
                f"or entry {e.index - 1} was rewritten"
            )
            problems.append(AuditProblem(Tamper.DELETED, e.index - 1, None, detail))
            head = e.prev_hash
        if chain_hash(head, e.record) != e.hash:
            problems.append(AuditProblem(Tamper.EDITED, e.index, None, "record bytes do not match its hash"))
        head, expected = e.hash, e.index + 1
        hashes[e.index] = e.hash
        p += 1
    return hashes


def _find_successor(work: list[AuditEntry], p: int, head: bytes) -> int | None:
    for q in range(p + 1, len(work)):
        if work[q].prev_hash == head:
            return q
    return None


def _check_checkpoint(cp: Checkpoint, hashes: dict[int, bytes], public_key: Ed25519PublicKey) -> AuditProblem | None:
    try:
        public_key.verify(cp.signature, checkpoint_message(cp.index, cp.head_hash))
    except InvalidSignature:
        return AuditProblem(Tamper.BAD_CHECKPOINT, cp.index, None, "checkpoint signature does not verify")
    last = max(hashes, default=-1)
    if cp.index > last:
        detail = f"the log ends at index {last} but a signed checkpoint covers index {cp.index}"
        return AuditProblem(Tamper.TRUNCATED, last, cp.index, detail)
    stored = hashes.get(cp.index)
    if stored is not None and stored != cp.head_hash:
        detail = "the chain head differs from the signed checkpoint: history was rewritten"
        return AuditProblem(Tamper.CHECKPOINT_MISMATCH, cp.index, None, detail)
    return None


def accesses_for(entries: Sequence[AuditEntry], patient_key: str) -> list[AccessView]:
    """Everyone who accessed (or asked to access) ``patient_key``'s record, oldest first (rec 1)."""
    views: list[tuple[int, int, AccessView]] = []
    for e in entries:
        r = AuditRecord.from_bytes(e.record)
        if r.patient_key != patient_key:
            continue
        view = AccessView(r.accessor_id, r.organisation, r.role, r.purpose, r.at_ms, r.outcome, r.kind, r.disclosed_to)
        views.append((r.at_ms, e.index, view))
    return [v for _, _, v in sorted(views, key=lambda t: (t[0], t[1]))]
