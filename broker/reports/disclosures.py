"""Disclosures: what was disclosed, to whom and why (pure; recommendation 19)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from broker.reports._events import unique, within
from broker.reports.table import Table, table_of
from consent_wire.model import AccessRecord, Event

__all__ = ["DisclosureReport", "DisclosureRow", "disclosures"]


@dataclass(frozen=True, slots=True)
class DisclosureRow:
    discloser: str
    recipient: str
    purpose: str
    disclosures: int
    patients: int  # distinct patients
    data_classes: str  # ";"-joined, sorted
    legal_bases: str  # ";"-joined, sorted; "NONE" for a disclosure with no basis recorded


@dataclass(frozen=True, slots=True)
class DisclosureReport:
    rows: tuple[DisclosureRow, ...]

    def table(self) -> Table:
        return table_of("Disclosures by recipient and purpose", DisclosureRow, self.rows)


def disclosures(events: Iterable[Event], *, from_ms: int | None = None, to_ms: int | None = None) -> DisclosureReport:
    """Access records with ``disclosed_to`` grouped by (discloser, recipient, purpose) (recommendation 19)."""
    groups: dict[tuple[str, str, str], tuple[list[int], set[str], set[str], set[str]]] = {}
    for e in unique(events):
        p = e.payload
        if not isinstance(p, AccessRecord) or not p.disclosed_to or not within(e.recorded_ms, from_ms, to_ms):
            continue
        count, patients, classes, bases = groups.setdefault(
            (p.organisation, p.disclosed_to, p.purpose.value), ([0], set(), set(), set())
        )
        count[0] += 1
        patients.add(e.patient_key)
        classes.update(c.value for c in p.data_classes)
        bases.add("NONE" if p.legal_basis is None else p.legal_basis.value)
    rows = tuple(
        DisclosureRow(d, r, pu, c[0], len(pa), ";".join(sorted(cl)), ";".join(sorted(b)))
        for (d, r, pu), (c, pa, cl, b) in sorted(groups.items())
    )
    return DisclosureReport(rows)
