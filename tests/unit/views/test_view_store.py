"""The API's persistent views (issue 16): rows and positions in one transaction, resumed after a reopen."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from broker.audit import AuditEntry
from broker.reports.aggregates import AggKey, AggKind, Aggregate, totals_of
from broker.views import LruCache, ViewBatch, ViewStore, event_rows, state_row
from broker.views import store as store_module
from consent_wire.codes import ConsentDirective, DataClass, PurposeOfUse, Relationship
from consent_wire.model import AccessRecord, ConsentDecision, Event
from tests.unit.rules.state.strategies import BASE_MS, PATIENT, hlc_of, make_event


def consent(ms: int) -> Event:
    return make_event(
        ConsentDecision(ConsentDirective.OPTIN, PurposeOfUse.TREAT, DataClass.GENERAL, "RX1"), hlc=hlc_of(ms)
    )


def access(disclosed_to: str = "") -> Event:
    record = AccessRecord("c0ffee", "RX1", "GP", True, Relationship.LEGITIMATE, PurposeOfUse.TREAT,
                          (DataClass.GENERAL,), None, disclosed_to)  # fmt: skip
    return make_event(record, hlc=hlc_of(BASE_MS))


async def test_rows_and_positions_survive_a_reopen_and_the_latest_state_record_wins(tmp_path: Path) -> None:
    path = tmp_path / "views.sqlite3"
    store = ViewStore(path)
    batch = ViewBatch("t.state")
    state_row(batch, 0, 7, PATIENT.encode(), b"old")
    state_row(batch, 0, 9, PATIENT.encode(), b"new")
    state_row(batch, 2, 3, b"gone", None)
    await store.write(batch)
    store.close()

    reopened = ViewStore(path)
    assert await reopened.positions("t.state") == {0: 10, 2: 4}
    assert await reopened.positions("t.events") == {}
    assert await reopened.state_record(PATIENT) == b"new"
    assert await reopened.state_record("gone") is None
    reopened.close()


async def test_history_holds_state_changes_in_hlc_order_and_reports_hold_disclosures_only(tmp_path: Path) -> None:
    store = ViewStore(tmp_path / "v.sqlite3")
    later, earlier, viewed, disclosed = consent(BASE_MS + 5), consent(BASE_MS), access(), access("RESLAB1")
    batch = ViewBatch("t.events")
    for offset, event in enumerate((later, earlier, viewed, disclosed)):
        event_rows(batch, 1, offset, event, event.event_id.encode())
    event_rows(batch, 1, 4, None, b"garbage")  # undecodable: only the position moves
    await store.write(batch)
    await store.write(batch)  # a re-read batch (after a restart before the audit cursor) adds nothing
    assert await store.history_records(PATIENT) == [earlier.event_id.encode(), later.event_id.encode()]
    assert await store.report_records() == [disclosed.event_id.encode()]
    assert await store.positions("t.events") == {1: 5}
    assert (await store.counts())["history"] == 2
    store.close()


async def test_the_audit_index_answers_per_patient_in_chain_order_and_ignores_a_second_copy(tmp_path: Path) -> None:
    store = ViewStore(tmp_path / "v.sqlite3")
    entries = [AuditEntry(i, bytes(32), bytes([i]) * 32, b"record-%d" % i) for i in range(4)]
    await store.add_audit([("a", entries[2]), ("b", entries[1]), ("a", entries[0])])
    await store.add_audit([("a", entries[0]), ("a", entries[3])])
    assert [e.index for e in await store.audit_entries("a")] == [0, 2, 3]
    assert await store.audit_entries("b") == [entries[1]]
    assert await store.audit_next_index() == 4
    store.close()


def test_the_cache_keeps_the_most_recently_used_up_to_its_capacity() -> None:
    cache: LruCache[str, int] = LruCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c"), len(cache)) == (1, None, 3, 2)
    cache.discard("a")
    assert cache.get("a") is None
    with pytest.raises(ValueError, match="positive"):
        LruCache(0)


async def test_an_access_log_page_is_one_index_range_read_in_chain_order(tmp_path: Path) -> None:
    """Issue 16: a patient with 1,000 entries reads a page through ``audit_by_patient``, never a scan or a sort."""
    store = ViewStore(tmp_path / "v.sqlite3")
    entries = [AuditEntry(i, bytes(32), bytes(32), b"r%d" % i) for i in range(2500)]
    await store.add_audit([("a" if i % 5 < 2 else f"p{i}", e) for i, e in enumerate(entries)])
    mine = [e.index for e in await store.audit_entries("a")]
    assert len(mine) == 1000
    first = await store.audit_entries("a", limit=300)
    second = await store.audit_entries("a", after=first[-1].index, limit=300)
    assert [e.index for e in first + second] == mine[:600]
    assert await store.audit_entries("a", after=mine[-1]) == []
    plan = " ".join(await store.query_plan(store_module._AUDIT_PAGE, ("a", -1, 100)))
    assert "USING INDEX audit_by_patient" in plan or "USING COVERING INDEX audit_by_patient" in plan, plan
    assert "TEMP B-TREE" not in plan and "SCAN" not in plan, plan
    store.close()


async def test_report_totals_follow_the_latest_aggregates_and_sum_as_totals_of_does(tmp_path: Path) -> None:
    """The view keeps per-group sums in SQL, moved by each new value of a key: the same as summing the latest values."""
    path = tmp_path / "v.sqlite3"
    store = ViewStore(path)
    rng = random.Random(5)
    latest: dict[bytes, Aggregate] = {}
    for offset in range(60):
        batch = ViewBatch("t.reports")
        for _ in range(rng.randint(1, 6)):
            group = (rng.choice("AB"), rng.choice(("R1", "R2")), "TREAT")
            key = AggKey(AggKind.DISCLOSURES, group, rng.randrange(5), rng.randrange(3))
            counts = {"disclosures": rng.randrange(1, 9), f"class:{rng.choice('XY')}": rng.randrange(0, 3),
                      f"first:{rng.randrange(-1, key.day)}": rng.randrange(0, 4)}  # fmt: skip
            a = Aggregate(key, {k: v for k, v in counts.items() if v}, {})
            batch.aggregates[key.to_bytes()] = (key.kind.value, key.day, a.to_bytes())
            latest[key.to_bytes()] = a
        batch.advance(0, offset)
        await store.write(batch)
    objectors = Aggregate(AggKey(AggKind.OBJECTORS, ("A",), -1, 0), {"objectors": 3}, {})
    batch = ViewBatch("t.reports")
    batch.advance(0, 60)
    batch.aggregates[objectors.key.to_bytes()] = ("objectors", -1, objectors.to_bytes())
    await store.write(batch)
    store.close()
    reopened = ViewStore(path)
    windows = ((-1, None), (0, None), (0, 5), (2, 4), (3, None))  # the first two: the all-time rows
    for first, end in windows:
        assert await reopened.report_totals("disclosures", first, end) == totals_of(latest.values(), first, end)
    assert await reopened.report_totals("objectors") == {("A",): {"objectors": 3}}
    assert await reopened.positions("t.reports") == {0: 61}
    plan = " ".join(await reopened.query_plan(store_module._TOTALS, ("disclosures", 0, 5, "disclosures", 0, 0, 5)))
    assert "SCAN" not in plan, plan
    plan = " ".join(await reopened.query_plan(store_module._ALLTIME, ("disclosures",)))
    assert "SCAN" not in plan, plan
    reopened.close()

    # a store written before the all-time rows existed gets them from its per-day sums when opened
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM report_alltime")
    upgraded = ViewStore(path)
    assert (await upgraded.counts())["report_alltime"] > 0
    assert await upgraded.report_totals("disclosures") == totals_of(latest.values())
    assert await upgraded.report_totals("objectors") == {("A",): {"objectors": 3}}
    upgraded.close()
