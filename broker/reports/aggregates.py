"""Streaming report aggregates (pure): what the ``reports`` stage keeps and writes, and how a report is read back.

The ``reports`` stage (:mod:`broker.pipeline`) reads the events topic (key patient) and keeps, per input
partition:

- a small memory per patient (:class:`PatientMemory`, the stage's changelog, co-partitioned with the events):
  the latest objection of each kind, the days on which each (discloser, recipient, purpose) disclosed the
  patient's record with per-day tallies, and the last :data:`RECENT_IDS` disclosure event ids (duplicates
  count once);
- the partition's running counts (:class:`ReportsCore`), a pure function of those memories, so a restart
  rebuilds them from the changelog.

It writes, in the same Kafka transaction as the memories and the input offsets, every aggregate a batch
changed to the compacted reports topic: key = the aggregate key (:class:`AggKey`: kind, group, UTC day,
source partition), value = the partition's running counts (JSON, ``consent_wire/topic_schemas/reports``).
No patient key is ever in an aggregate. Aggregates:

- ``objectors`` per practice: patients whose latest objection (any kind, merge order ``(hlc, agent, event
  id)``) is a REGISTER, counted at the practice that recorded it (as :func:`~broker.reports.objection_rates`);
- ``disclosures`` per (discloser, recipient, purpose, day): disclosures, data classes and legal bases, and
  ``first:<p>``: patients whose previous disclosure day in the group was ``p`` (-1: none), so the distinct
  patients of a window ``[a, b)`` of days are the ``first:<p>`` with ``p < a`` summed over its days: exact;
- ``breach`` per event id: the incident itself (a breach report names no patient), from which the summary is
  counted when read.

Readers sum the partitions and days (:func:`totals_of`; the API's view keeps the same sums in SQL, updated as
aggregates arrive) and :func:`objection_report`, :func:`disclosure_report`, :func:`breach_reports` give exactly
the reports :mod:`broker.reports` computes from the raw events, for windows of whole UTC days.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from broker.reports.breaches import BreachIncidents, BreachSummary, incidents_of, summary_of
from broker.reports.disclosures import DisclosureReport, DisclosureRow
from broker.reports.objections import ObjectionRateReport, rates_of
from broker.reports.table import ReportInputError
from consent_wire.codes import BreachSeverity, ObjectionAction, ObjectionKind
from consent_wire.model import AccessRecord, BreachReport, Event, Objection

__all__ = [
    "DAY_MS",
    "RECENT_IDS",
    "AggKey",
    "AggKind",
    "Aggregate",
    "BatchResult",
    "ObjectionMark",
    "PatientMemory",
    "ReportsCore",
    "aggregate_events",
    "breach_aggregate",
    "breach_reports",
    "count_rows",
    "counts_of",
    "day_window",
    "decode_aggregate",
    "disclosure_report",
    "objection_report",
    "totals_of",
]

DAY_MS = 86_400_000
RECENT_IDS = 64  # disclosure event ids remembered per patient (a replayed event counts once)
Group = tuple[str, ...]


class AggKind(StrEnum):
    OBJECTORS = "objectors"
    DISCLOSURES = "disclosures"
    BREACH = "breach"


@dataclass(frozen=True, slots=True, order=True)
class AggKey:
    """``kind``, its group (practice; discloser, recipient, purpose; breach event id), UTC day, source partition."""

    kind: AggKind
    group: Group
    day: int = -1  # -1: not per day
    partition: int = -1  # -1: one record whatever the partition (a breach's event id)

    def to_bytes(self) -> bytes:
        return orjson.dumps([self.kind.value, list(self.group), self.day, self.partition])


@dataclass(frozen=True, slots=True)
class Aggregate:
    """One record of the reports topic, decoded."""

    key: AggKey
    counts: Mapping[str, int]
    detail: Mapping[str, Any]  # a breach's incident fields; empty otherwise

    def to_bytes(self) -> bytes:
        k = self.key
        body: dict[str, Any] = {"kind": k.kind.value, "group": list(k.group), "day": k.day, "partition": k.partition}
        body["counts"] = dict(sorted(self.counts.items()))
        if self.detail:
            body["detail"] = dict(self.detail)
        return orjson.dumps(body)


def decode_aggregate(value: bytes) -> Aggregate:
    """A reports-topic value (ValueError, KeyError or TypeError on a malformed one)."""
    raw = orjson.loads(value)
    key = AggKey(AggKind(raw["kind"]), tuple(str(g) for g in raw["group"]), int(raw["day"]), int(raw["partition"]))
    counts = {str(k): int(v) for k, v in raw["counts"].items()}
    return Aggregate(key, counts, dict(raw.get("detail", {})))


# --- the stage's memory per patient ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ObjectionMark:
    hlc: int
    agent_id: str
    event_id: str
    register: bool
    site: str

    @property
    def order(self) -> tuple[int, str, str]:
        return (self.hlc, self.agent_id, self.event_id)


@dataclass(slots=True)
class PatientMemory:
    objections: dict[str, ObjectionMark] = field(default_factory=dict)  # kind -> latest
    disclosures: dict[Group, dict[int, Counter[str]]] = field(default_factory=dict)  # group -> day -> tallies
    recent: list[str] = field(default_factory=list)  # last RECENT_IDS disclosure event ids

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "objections": {
                    k: [m.hlc, m.agent_id, m.event_id, m.register, m.site] for k, m in self.objections.items()
                },
                "disclosures": [
                    [list(g), {str(d): dict(c) for d, c in days.items()}] for g, days in self.disclosures.items()
                ],
                "recent": self.recent,
            },
            option=orjson.OPT_SORT_KEYS,
        )

    @staticmethod
    def from_bytes(data: bytes) -> PatientMemory:
        raw = orjson.loads(data)
        objections = {k: ObjectionMark(int(h), str(a), str(e), bool(r), str(s)) for k, (h, a, e, r, s) in
                      raw["objections"].items()}  # fmt: skip
        disclosures = {
            tuple(g): {int(d): Counter({str(k): int(v) for k, v in c.items()}) for d, c in days.items()}
            for g, days in raw["disclosures"]
        }
        return PatientMemory(objections, disclosures, [str(i) for i in raw["recent"]])

    def contributions(self) -> dict[AggKey, Counter[str]]:
        """What this patient adds to its partition's counts (keys without partition: the caller sets it)."""
        out: dict[AggKey, Counter[str]] = {}
        registered = [m for m in self.objections.values() if m.register]
        if registered:
            site = max(registered, key=lambda m: m.order).site
            out[AggKey(AggKind.OBJECTORS, (site,))] = Counter(objectors=1)
        for group, days in self.disclosures.items():
            previous = -1
            for day in sorted(days):
                tally = Counter(days[day])
                tally[f"first:{previous}"] += 1
                out[AggKey(AggKind.DISCLOSURES, group, day)] = tally
                previous = day
        return out

    def apply(self, event: Event) -> bool:
        """Take ``event`` into the memory; False if it changes nothing the reports count."""
        p = event.payload
        if isinstance(p, Objection):
            mark = ObjectionMark(event.hlc, event.agent_id, event.event_id, p.action is ObjectionAction.REGISTER,
                                 event.site)  # fmt: skip
            held = self.objections.get(p.kind.value)
            if held is not None and held.order >= mark.order:
                return False
            self.objections[p.kind.value] = mark
            return True
        if isinstance(p, AccessRecord) and p.disclosed_to:
            if event.event_id in self.recent:
                return False
            self.recent = [*self.recent, event.event_id][-RECENT_IDS:]
            group = (p.organisation, p.disclosed_to, p.purpose.value)
            tally = self.disclosures.setdefault(group, {}).setdefault(event.recorded_ms // DAY_MS, Counter())
            tally["disclosures"] += 1
            for c in p.data_classes:
                tally[f"class:{c.value}"] += 1
            tally[f"basis:{'NONE' if p.legal_basis is None else p.legal_basis.value}"] += 1
            return True
        return False


def counts_of(event: Event) -> bool:
    """Whether ``event`` is one the reports count (objection, disclosure, breach report)."""
    p = event.payload
    return isinstance(p, Objection | BreachReport) or (isinstance(p, AccessRecord) and bool(p.disclosed_to))


def breach_aggregate(event: Event, report: BreachReport) -> Aggregate:
    detail = {
        "organisation": report.organisation,
        "recorded_ms": event.recorded_ms,
        "severity": report.severity.value,
        "category": report.category,
        "explanation": report.explanation,
        "remedial_action": report.remedial_action,
        "apology_given": report.apology_given,
        "individuals_affected": report.individuals_affected,
    }
    return Aggregate(AggKey(AggKind.BREACH, (event.event_id,)), Counter(breaches=1), detail)


# --- the stage's core: memories and running counts per partition -----------------------------------------------


@dataclass(slots=True)
class BatchResult:
    aggregates: list[Aggregate]
    memories: dict[str, bytes]  # patient key -> its memory record (the changelog)


class ReportsCore:
    """Per input partition: patient memories and the running counts derived from them."""

    def __init__(self) -> None:
        self.memories: dict[int, dict[str, PatientMemory]] = {}
        self.totals: dict[int, dict[AggKey, Counter[str]]] = {}

    def __len__(self) -> int:
        return sum(len(m) for m in self.memories.values())

    def restore(self, partition: int, patient: str, data: bytes) -> None:
        memories = self.memories.setdefault(partition, {})
        old = memories.get(patient)
        memory = PatientMemory.from_bytes(data)
        self._change(partition, old.contributions() if old else {}, memory.contributions())
        memories[patient] = memory

    def forget(self, partition: int) -> None:
        self.memories.pop(partition, None)
        self.totals.pop(partition, None)

    def process(self, partition: int, events: Iterable[Event]) -> BatchResult:
        memories = self.memories.setdefault(partition, {})
        before: dict[str, dict[AggKey, Counter[str]]] = {}
        breaches: dict[str, Aggregate] = {}
        for event in events:
            if isinstance(event.payload, BreachReport):
                breaches[event.event_id] = breach_aggregate(event, event.payload)
                continue
            patient = event.patient_key
            if isinstance(event.payload, Objection) and not patient:
                continue  # the objection report counts patients
            memory = memories.get(patient)
            if memory is None:
                memory = memories[patient] = PatientMemory()
            if patient not in before:
                before[patient] = memory.contributions()
            memory.apply(event)
        changed: set[AggKey] = set()
        records: dict[str, bytes] = {}
        for patient, old in before.items():
            memory = memories[patient]
            new = memory.contributions()
            if new != old:
                changed |= self._change(partition, old, new)
            records[patient] = memory.to_bytes()
        totals = self.totals.setdefault(partition, {})
        aggregates = [
            Aggregate(AggKey(k.kind, k.group, k.day, partition), +totals.get(k, Counter()), {}) for k in sorted(changed)
        ]
        return BatchResult([*aggregates, *breaches.values()], records)

    def _change(self, partition: int, old: dict[AggKey, Counter[str]], new: dict[AggKey, Counter[str]]) -> set[AggKey]:
        totals = self.totals.setdefault(partition, {})
        changed: set[AggKey] = set()
        for key in old.keys() | new.keys():
            if old.get(key) == new.get(key):
                continue
            tally = totals.setdefault(key, Counter())
            tally.update(new.get(key, Counter()))
            tally.subtract(old.get(key, Counter()))
            tally = +tally  # drops zero counts
            if tally:
                totals[key] = tally
            else:
                del totals[key]
            changed.add(key)
        return changed


# --- reading the reports back ----------------------------------------------------------------------------------


def count_rows(aggregate: Aggregate) -> list[tuple[str, int, int]]:
    """``(name, previous day, count)`` per count of an aggregate (previous day -2 for all but ``first``): the rows
    a view sums in SQL (:func:`totals_of` is the same sum in Python)."""
    rows = []
    for name, n in aggregate.counts.items():
        if name.startswith("first:"):
            rows.append(("first", int(name[6:]), n))
        else:
            rows.append((name, -2, n))
    return rows


def totals_of(
    aggregates: Iterable[Aggregate], first_day: int = -1, end_day: int | None = None
) -> dict[Group, Counter[str]]:
    """The counts per group summed over partitions and the days ``[first_day, end_day)``; ``first`` counts whose
    previous day is before ``first_day`` become ``patients`` (the distinct patients of the window)."""
    totals: dict[Group, Counter[str]] = {}
    window_start = max(first_day, 0)  # days are >= 0: a window from before them starts with them
    for a in aggregates:
        k = a.key
        if k.day < first_day or (end_day is not None and k.day >= end_day):
            continue
        tally = totals.setdefault(k.group, Counter())
        for name, previous, n in count_rows(a):
            if name == "first":
                if previous < window_start:
                    tally["patients"] += n
            else:
                tally[name] += n
    return totals


def objection_report(totals: Mapping[Group, Mapping[str, int]], list_sizes: Mapping[str, int]) -> ObjectionRateReport:
    """The objection-rate report (every objection kind) from the ``objectors`` totals per practice."""
    objectors = {g[0]: t.get("objectors", 0) for g, t in totals.items() if t.get("objectors", 0)}
    counted = tuple(sorted(ObjectionKind, key=lambda k: k.value))
    return rates_of(objectors, list_sizes, counted)


def day_window(from_ms: int | None, to_ms: int | None) -> tuple[int, int | None]:
    """``[from_ms, to_ms)`` as UTC days ``[first, end)``; the aggregates are per day, so both are whole days."""
    for name, ms in (("from", from_ms), ("to", to_ms)):
        if ms is not None and ms % DAY_MS:
            raise ReportInputError(f"{name} must be the start of a UTC day: reports are counted per day")
    return (0 if from_ms is None else from_ms // DAY_MS), (None if to_ms is None else to_ms // DAY_MS)


_LISTED = frozenset({"class:", "basis:"})  # the count names a disclosure row lists (data classes, legal bases)


def disclosure_report(totals: Mapping[Group, Mapping[str, int]]) -> DisclosureReport:
    """Disclosures by (discloser, recipient, purpose) from the ``disclosures`` totals of a window (``totals_of``)."""
    rows = []
    for (discloser, recipient, purpose), tally in sorted(totals.items()):
        if tally.get("disclosures", 0) <= 0:
            continue
        classes: list[str] = []
        bases: list[str] = []
        for name, n in tally.items():  # one pass over the names (a report has thousands of groups)
            if n > 0 and name[:6] in _LISTED:
                (classes if name[0] == "c" else bases).append(name[6:])
        classes.sort()
        bases.sort()
        rows.append(DisclosureRow(discloser, recipient, purpose, tally["disclosures"], tally.get("patients", 0),
                                  ";".join(classes), ";".join(bases)))  # fmt: skip
    return DisclosureReport(tuple(rows))


def breach_reports(
    aggregates: Iterable[Aggregate], from_ms: int | None, to_ms: int | None
) -> tuple[BreachSummary, BreachIncidents]:
    """The breach summary and incident list of ``[from_ms, to_ms)`` (recording time) from the ``breach`` records."""
    items: list[tuple[str, int, str, BreachReport]] = []
    for a in aggregates:
        if a.key.kind is not AggKind.BREACH:
            continue
        d = a.detail
        at = int(d["recorded_ms"])
        if (from_ms is not None and at < from_ms) or (to_ms is not None and at >= to_ms):
            continue
        report = BreachReport(str(d["organisation"]), BreachSeverity(d["severity"]), str(d["category"]),
                              str(d["explanation"]), str(d["remedial_action"]), bool(d["apology_given"]),
                              int(d["individuals_affected"]))  # fmt: skip
        items.append((report.organisation, at, a.key.group[0], report))
    items.sort(key=lambda t: t[:3])
    return summary_of(r for *_, r in items), incidents_of((at, r) for _, at, _, r in items)


def aggregate_events(events: Sequence[Event], partitions: int = 1) -> list[Aggregate]:
    """Every aggregate of ``events`` as the stage would leave them on the (compacted) topic: for tests and
    in-memory backends; events are spread over ``partitions`` by patient as the events topic is."""
    core = ReportsCore()
    latest: dict[AggKey, Aggregate] = {}
    for e in events:
        if not counts_of(e):
            continue
        partition = hash(e.patient_key or e.site) % partitions
        for a in core.process(partition, [e]).aggregates:
            latest[a.key] = a
    return list(latest.values())
