"""The audit hash chain with signed checkpoints, and its verification (pure; recommendation 1).

An entry holds one record's canonical bytes (:class:`broker.audit.records.AuditRecord`).
Records form a hash chain: ``h_i = sha256(h_{i-1} || record_i)`` with
``h_{-1}`` 32 zero bytes. Every ``checkpoint_every`` records the operator signs
a checkpoint, Ed25519 over ``CHECKPOINT_CONTEXT || index (8 bytes, big endian)
|| h_index``. :class:`AuditLog` is the one implementation of chaining and of
the checkpoint cadence: the unit tests drive it in memory, and the Kafka
appender (:mod:`broker.audit.appender`) drives it in production, resuming from
the :class:`ChainPosition` of the stored log. :func:`verify` names what is wrong:

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
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from broker.audit.errors import AuditError

__all__ = [
    "CHECKPOINT_CONTEXT",
    "DEFAULT_CHECKPOINT_EVERY",
    "GENESIS_HASH",
    "AuditEntry",
    "AuditLog",
    "AuditProblem",
    "AuditVerification",
    "CanonicalRecord",
    "ChainPosition",
    "Checkpoint",
    "Tamper",
    "chain_hash",
    "checkpoint_message",
    "describe_problem",
    "verify",
]

GENESIS_HASH = bytes(32)  # h_{-1}: the chain starts from 32 zero bytes (as the agent event chain does)
CHECKPOINT_CONTEXT = b"consent-broker/audit-checkpoint/v1\n"  # domain separation for signatures
# One signature per 1,000 records: Ed25519 signing costs ~50 us, so <0.1 us per record amortised,
# while an undetectable tail (records after the last checkpoint) stays at most 1,000 records long.
DEFAULT_CHECKPOINT_EVERY = 1000


class CanonicalRecord(Protocol):
    """What the chain hashes: a record's canonical bytes (an :class:`~broker.audit.records.AuditRecord`)."""

    def to_bytes(self) -> bytes: ...


class Tamper(StrEnum):
    EDITED = "EDITED"
    DELETED = "DELETED"
    REORDERED = "REORDERED"
    INSERTED = "INSERTED"
    TRUNCATED = "TRUNCATED"
    BAD_CHECKPOINT = "BAD_CHECKPOINT"
    CHECKPOINT_MISMATCH = "CHECKPOINT_MISMATCH"


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


def chain_hash(prev_hash: bytes, record: bytes) -> bytes:
    return hashlib.sha256(prev_hash + record).digest()


def checkpoint_message(index: int, head_hash: bytes) -> bytes:
    return CHECKPOINT_CONTEXT + index.to_bytes(8, "big") + head_hash


@dataclass(frozen=True, slots=True)
class ChainPosition:
    """Where a chain stands: all that is needed to continue it without holding its entries."""

    next_index: int = 0
    head_hash: bytes = GENESIS_HASH  # h_{next_index - 1}
    last_checkpoint: int = -1  # the index the newest checkpoint covers; -1 = none yet


class AuditLog:
    """Append-only chain; the adapter persists each entry and checkpoint as it is made.

    ``start`` continues a chain stored elsewhere; ``retain=False`` keeps only the position (the
    appender's mode: the topic holds the entries), so ``entries`` and ``checkpoints`` stay empty.
    """

    def __init__(
        self,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        *,
        start: ChainPosition | None = None,
        retain: bool = True,
    ) -> None:
        if checkpoint_every < 1:
            raise AuditError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
        self.checkpoint_every = checkpoint_every
        self._position = start or ChainPosition()
        self._retain = retain
        self._entries: list[AuditEntry] = []
        self._checkpoints: list[Checkpoint] = []

    @property
    def entries(self) -> tuple[AuditEntry, ...]:
        """The entries this log appended and retained (a resumed log starts with none)."""
        return tuple(self._entries)

    @property
    def checkpoints(self) -> tuple[Checkpoint, ...]:
        return tuple(self._checkpoints)

    @property
    def position(self) -> ChainPosition:
        return self._position

    @property
    def head(self) -> bytes:
        return self._position.head_hash

    @property
    def checkpoint_due(self) -> bool:
        """True right after entries ``N-1, 2N-1, ...`` (``N = checkpoint_every``) unless already signed."""
        n, last = self._position.next_index, self._position.last_checkpoint
        return n > 0 and n % self.checkpoint_every == 0 and last != n - 1

    @property
    def unsigned(self) -> bool:
        """True if entries after the newest checkpoint exist (a final checkpoint would cover them)."""
        return self._position.last_checkpoint < self._position.next_index - 1

    def append(self, record: CanonicalRecord) -> AuditEntry:
        data = record.to_bytes()
        pos = self._position
        entry = AuditEntry(pos.next_index, pos.head_hash, chain_hash(pos.head_hash, data), data)
        self._position = replace(pos, next_index=entry.index + 1, head_hash=entry.hash)
        if self._retain:
            self._entries.append(entry)
        return entry

    def checkpoint(self, signer: Ed25519PrivateKey) -> Checkpoint:
        pos = self._position
        if pos.next_index == 0:
            raise AuditError("cannot checkpoint an empty log")
        index, head = pos.next_index - 1, pos.head_hash
        cp = Checkpoint(index, head, signer.sign(checkpoint_message(index, head)))
        self._position = replace(pos, last_checkpoint=index)
        if self._retain:
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


def describe_problem(p: AuditProblem) -> str:
    """One line for a terminal: ``EDITED at index 3``, ``REORDERED 4<->5`` ... and the detail."""
    if p.kind is Tamper.REORDERED:
        where = f"{p.index}<->{p.other_index}"
    elif p.kind in (Tamper.DELETED, Tamper.TRUNCATED):
        where = f"after index {p.index}"
    else:
        where = f"at index {p.index}"
    return f"{p.kind.value} {where}: {p.detail}"
