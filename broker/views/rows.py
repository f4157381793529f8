"""What each topic record contributes to the API's views (pure: records in, rows out).

A :class:`ViewBatch` collects the rows of one fetched batch of one topic together with the next
offset of each partition, so the store writes rows and positions in one transaction (a restart
resumes from exactly what was written, issue 16).

- state topic: the patient's latest state record (a tombstone deletes it);
- reports topic: the report aggregates (the latest value per key wins; :mod:`broker.reports.aggregates`);
- events topic: state-changing events (consent, objection, shielding) go to the patient's history,
  the only events an "as at" decision replays (access records are not needed for it); objections,
  breach reports and access records naming a recipient go to the report events.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from broker.audit import AuditEntry
from consent_rules.state import affects_state
from consent_wire.model import AccessRecord, BreachReport, Event, Objection

__all__ = ["AuditTreeRow", "HistoryRow", "ReportRow", "ViewBatch", "event_rows", "state_row"]


@dataclass(frozen=True, slots=True)
class HistoryRow:
    patient_key: str
    hlc: int
    event_id: str
    record: bytes  # the verified event as on the events topic


@dataclass(frozen=True, slots=True)
class ReportRow:
    event_id: str
    recorded_ms: int
    record: bytes


@dataclass(frozen=True, slots=True)
class AuditTreeRow:
    """The audit follower's Merkle tree at a batch's positions: its size and root (what its files must show when
    reopened) and the newest cosigned checkpoint it had read."""

    size: int
    root: bytes
    checkpoint: str | None
    checkpoint_size: int


@dataclass(slots=True)
class ViewBatch:
    topic: str
    positions: dict[int, int] = field(default_factory=dict)  # partition -> next offset to read
    states: dict[str, bytes | None] = field(default_factory=dict)  # None = deleted (tombstone)
    history: list[HistoryRow] = field(default_factory=list)
    reports: list[ReportRow] = field(default_factory=list)
    aggregates: dict[bytes, tuple[str, int, bytes]] = field(default_factory=dict)  # key -> (kind, day, value)
    audit: list[tuple[str, AuditEntry]] = field(default_factory=list)  # (patient key, entry) for the access log
    audit_tree: AuditTreeRow | None = None

    def advance(self, partition: int, offset: int) -> None:
        self.positions[partition] = max(self.positions.get(partition, 0), offset + 1)

    def __bool__(self) -> bool:
        return bool(self.positions)


def state_row(batch: ViewBatch, partition: int, offset: int, key: bytes | None, value: bytes | None) -> None:
    """A state-topic record: the latest one per patient wins within the batch."""
    batch.advance(partition, offset)
    if key is not None:
        batch.states[key.decode()] = value


def event_rows(batch: ViewBatch, partition: int, offset: int, event: Event | None, record: bytes) -> None:
    """An events-topic record (``event`` None: it did not decode, only the position moves)."""
    batch.advance(partition, offset)
    if event is None:
        return
    if affects_state(event) and event.patient_key:
        batch.history.append(HistoryRow(event.patient_key, event.hlc, event.event_id, record))
    p = event.payload
    if isinstance(p, Objection | BreachReport) or (isinstance(p, AccessRecord) and p.disclosed_to):
        batch.reports.append(ReportRow(event.event_id, event.recorded_ms, record))
