"""Data breaches by organisation and IG SIRI severity, and the incident list (pure; recommendation 6:
every organisation publishes all such data breaches).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from broker.reports._events import unique, within
from broker.reports.table import Table, table_of
from consent_wire.codes import BreachSeverity
from consent_wire.model import BreachReport, Event

__all__ = [
    "BreachIncidentRow",
    "BreachIncidents",
    "BreachSummary",
    "BreachSummaryRow",
    "breach_incidents",
    "breach_summary",
    "incidents_of",
    "summary_of",
]


@dataclass(frozen=True, slots=True)
class BreachSummaryRow:
    organisation: str
    level_0: int
    level_1: int
    level_2: int  # reportable to the ICO and the Department
    total: int
    individuals_affected: int
    apologies_given: int


@dataclass(frozen=True, slots=True)
class BreachSummary:
    rows: tuple[BreachSummaryRow, ...]

    def table(self) -> Table:
        return table_of("Data breaches by organisation and IG SIRI severity", BreachSummaryRow, self.rows)


@dataclass(frozen=True, slots=True)
class BreachIncidentRow:
    organisation: str
    date: str  # ISO date (UTC) recorded
    severity: BreachSeverity
    category: str
    explanation: str
    remedial_action: str
    apology_given: bool
    individuals_affected: int


@dataclass(frozen=True, slots=True)
class BreachIncidents:
    rows: tuple[BreachIncidentRow, ...]

    def table(self) -> Table:
        return table_of("Data breaches (for publication)", BreachIncidentRow, self.rows)


def _breaches(events: Iterable[Event], from_ms: int | None, to_ms: int | None) -> list[tuple[Event, BreachReport]]:
    out = [
        (e, e.payload)
        for e in unique(events)
        if isinstance(e.payload, BreachReport) and within(e.recorded_ms, from_ms, to_ms)
    ]
    return sorted(out, key=lambda t: (t[1].organisation, t[0].recorded_ms, t[0].event_id))


def breach_summary(events: Iterable[Event], *, from_ms: int | None = None, to_ms: int | None = None) -> BreachSummary:
    """Breaches per data controller by severity, in ``[from_ms, to_ms)`` of recording time."""
    return summary_of(b for _, b in _breaches(events, from_ms, to_ms))


_SEVERITY_COLUMN = {severity: i for i, severity in enumerate(BreachSeverity)}  # the summary's count columns


def summary_of(reports: Iterable[BreachReport]) -> BreachSummary:
    """The summary of these breach reports (each counted once: the caller has removed duplicates)."""
    acc: dict[str, list[int]] = {}
    for b in reports:
        row = acc.setdefault(b.organisation, [0, 0, 0, 0, 0])
        row[_SEVERITY_COLUMN[b.severity]] += 1
        row[3] += b.individuals_affected
        row[4] += int(b.apology_given)
    rows = tuple(
        BreachSummaryRow(org, v[0], v[1], v[2], v[0] + v[1] + v[2], v[3], v[4]) for org, v in sorted(acc.items())
    )
    return BreachSummary(rows)


def breach_incidents(
    events: Iterable[Event], *, from_ms: int | None = None, to_ms: int | None = None
) -> BreachIncidents:
    """Every breach in the period, one row each, as the board publishes them (recommendation 6)."""
    return incidents_of((e.recorded_ms, b) for e, b in _breaches(events, from_ms, to_ms))


def incidents_of(items: Iterable[tuple[int, BreachReport]]) -> BreachIncidents:
    """One row per ``(recorded_ms, report)``, in the order given (organisation, time, event id)."""
    rows = tuple(
        BreachIncidentRow(
            b.organisation,
            datetime.fromtimestamp(recorded_ms / 1000, tz=UTC).date().isoformat(),
            b.severity,
            b.category,
            b.explanation,
            b.remedial_action,
            b.apology_given,
            b.individuals_affected,
        )
        for recorded_ms, b in items
    )
    return BreachIncidents(rows)
