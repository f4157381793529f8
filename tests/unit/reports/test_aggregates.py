"""Streaming report aggregates (issue 16): the stage's pure core gives exactly the reports the raw-event
computation gives (the oracle: broker.reports.objection_rates, breach_*, disclosures), whatever the partitions,
batches, duplicates, late events and restarts from the changelog; and no aggregate carries a patient key."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.reports import breach_incidents, breach_summary, disclosures, objection_rates
from broker.reports.aggregates import (
    DAY_MS,
    AggKey,
    AggKind,
    Aggregate,
    ReportsCore,
    breach_reports,
    counts_of,
    day_window,
    decode_aggregate,
    disclosure_report,
    objection_report,
    totals_of,
)
from broker.reports.table import ReportInputError
from consent_wire.codes import (
    BreachSeverity,
    DataClass,
    LegalBasis,
    ObjectionAction,
    ObjectionKind,
    PurposeOfUse,
    Relationship,
)
from consent_wire.model import AccessRecord, BreachReport, Event, Objection

T0 = 1_760_054_400_000  # 2025-10-10T00:00:00Z, a day boundary
SITES = ("A81001", "B82002", "C83003")
PATIENTS = tuple(f"{i:032x}" for i in range(1, 9))
_ids = itertools.count(1)


def _event(payload: object, *, patient: str, site: str, day: int, tick: int) -> Event:
    n = next(_ids)
    ms = T0 + day * DAY_MS + tick
    return Event(f"{n:032x}", f"agent-{site}", site, n, bytes(32), ms << 16, ms, patient, payload)  # type: ignore[arg-type]


@st.composite
def event_lists(draw: st.DrawFn) -> list[Event]:
    events: list[Event] = []
    for _ in range(draw(st.integers(0, 40))):
        what = draw(st.sampled_from(["objection", "disclosure", "disclosure", "breach", "view", "duplicate"]))
        patient = draw(st.sampled_from(PATIENTS))
        site = draw(st.sampled_from(SITES))
        day, tick = draw(st.integers(0, 6)), draw(st.integers(0, 1000))
        if what == "objection":
            payload: object = Objection(draw(st.sampled_from(list(ObjectionKind))),
                                        draw(st.sampled_from(list(ObjectionAction))))  # fmt: skip
        elif what in ("disclosure", "view"):
            basis = draw(st.sampled_from([None, LegalBasis.IMPLIED_CONSENT_DIRECT_CARE, LegalBasis.S251]))
            classes = tuple(draw(st.sets(st.sampled_from([DataClass.GENERAL, DataClass.PSY, DataClass.ALL]),
                                         min_size=1, max_size=2)))  # fmt: skip
            to = draw(st.sampled_from(["R1", "R2"])) if what == "disclosure" else ""
            purpose = draw(st.sampled_from([PurposeOfUse.TREAT, PurposeOfUse.HRESCH]))
            payload = AccessRecord("staff", site, "GP", True, Relationship.LEGITIMATE, purpose, classes, basis, to)
        elif what == "breach":
            payload = BreachReport(site, draw(st.sampled_from(list(BreachSeverity))), "LOST", "x", "y",
                                   draw(st.booleans()), draw(st.integers(0, 5)))  # fmt: skip
            patient = ""
        else:
            if not events:
                continue
            events.append(draw(st.sampled_from(events)))  # a duplicate delivery of an earlier event
            continue
        events.append(_event(payload, patient=patient, site=site, day=day, tick=tick))
    return events


def _run(events: Sequence[Event], partitions: int, rng: random.Random) -> list[Aggregate]:
    """Events through the stage's core in random batches, restarting partitions from their changelog at random;
    the compacted topic's last record per key is what a reader sees (values through their bytes)."""
    core = ReportsCore()
    changelog: dict[int, dict[str, bytes]] = {}
    topic: dict[bytes, bytes] = {}
    by_partition: dict[int, list[Event]] = {}
    for e in events:
        if counts_of(e):
            by_partition.setdefault(PATIENTS.index(e.patient_key) % partitions if e.patient_key else 0, []).append(e)
    for partition, mine in by_partition.items():
        i = 0
        while i < len(mine):
            n = rng.randint(1, 5)
            result = core.process(partition, mine[i : i + n])
            for a in result.aggregates:
                topic[a.key.to_bytes()] = a.to_bytes()
            changelog.setdefault(partition, {}).update(result.memories)
            i += n
            if rng.random() < 0.3:  # a restart: the partition's memory rebuilt from its changelog only
                core.forget(partition)
                for patient, data in changelog[partition].items():
                    core.restore(partition, patient, data)
    return [decode_aggregate(v) for v in topic.values()]


def _sizes() -> dict[str, int]:
    return dict.fromkeys(SITES, 1000)


@settings(max_examples=150, deadline=None)
@given(event_lists(), st.integers(1, 4), st.integers(0, 2**32))
def test_aggregates_give_the_reports_the_raw_events_give(events: list[Event], partitions: int, seed: int) -> None:
    aggregates = _run(events, partitions, random.Random(seed))
    objectors = [a for a in aggregates if a.key.kind is AggKind.OBJECTORS]
    assert objection_report(totals_of(objectors), _sizes()) == objection_rates(events, _sizes())
    shared = [a for a in aggregates if a.key.kind is AggKind.DISCLOSURES]
    for from_day, to_day in ((None, None), (0, 3), (2, None), (None, 5), (3, 4)):
        from_ms = None if from_day is None else T0 + from_day * DAY_MS
        to_ms = None if to_day is None else T0 + to_day * DAY_MS
        totals = totals_of(shared, *day_window(from_ms, to_ms))
        assert disclosure_report(totals) == disclosures(events, from_ms=from_ms, to_ms=to_ms)
        summary, incidents = breach_reports(aggregates, from_ms, to_ms)
        assert summary == breach_summary(events, from_ms=from_ms, to_ms=to_ms)
        assert incidents == breach_incidents(events, from_ms=from_ms, to_ms=to_ms)


def test_a_late_disclosure_moves_the_next_days_first_count() -> None:
    """Distinct patients stay exact when an event arrives late: the patient counts once in a window of both days."""
    access = AccessRecord("s", "A81001", "GP", True, Relationship.LEGITIMATE, PurposeOfUse.TREAT,
                          (DataClass.GENERAL,), None, "R1")  # fmt: skip
    day3 = _event(access, patient=PATIENTS[0], site="A81001", day=3, tick=0)
    day1 = _event(access, patient=PATIENTS[0], site="A81001", day=1, tick=0)
    aggregates = _run([day3, day1], 1, random.Random(0))
    report = disclosure_report(totals_of(aggregates, *day_window(T0, T0 + 5 * DAY_MS)))
    assert [(r.disclosures, r.patients) for r in report.rows] == [(2, 1)]
    report = disclosure_report(totals_of(aggregates, *day_window(T0 + 2 * DAY_MS, T0 + 5 * DAY_MS)))
    assert [(r.disclosures, r.patients) for r in report.rows] == [(1, 1)]


def test_no_aggregate_carries_a_patient_key() -> None:
    access = AccessRecord("s", "A81001", "GP", True, Relationship.LEGITIMATE, PurposeOfUse.TREAT,
                          (DataClass.GENERAL,), None, "R1")  # fmt: skip
    objection = Objection(ObjectionKind.NDOP, ObjectionAction.REGISTER)
    events = [
        _event(access, patient=PATIENTS[1], site="A81001", day=0, tick=1),
        _event(objection, patient=PATIENTS[2], site="A81001", day=0, tick=2),
    ]
    for a in _run(events, 2, random.Random(1)):
        record = a.key.to_bytes() + a.to_bytes()
        assert all(p.encode() not in record for p in PATIENTS)


def test_windows_must_be_whole_days() -> None:
    with pytest.raises(ReportInputError, match="start of a UTC day"):
        day_window(T0 + 1, None)


def test_aggregate_round_trips_through_its_bytes() -> None:
    a = Aggregate(AggKey(AggKind.DISCLOSURES, ("A", "R|1", "TREAT"), 5, 2), {"disclosures": 3, "first:-1": 1}, {})
    assert decode_aggregate(a.to_bytes()) == a
    assert orjson.loads(a.key.to_bytes()) == ["disclosures", ["A", "R|1", "TREAT"], 5, 2]
